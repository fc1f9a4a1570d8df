//! `fqc run MODEL --input X.npy [--output Y.npy] [--interp]`: run a model.
//!
//! A compiled `.fqc` runs on the JIT (`fqc_runtime::Model`, compiled once, then a
//! session); `--interp` selects the reference interpreter instead, which is also what
//! runs `.onnx` / `.fqir` models (float graphs the JIT does not lower). Both print the
//! same numbers for a `.fqc` (the JIT is bit-exact). Input: a float32 NCHW `.npy` (uint8 pixels are accepted and cast, see `fqc-dataset`),
//! batch = first dimension. Output: float32 `.npy` files, or a summary on stdout.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use fqc_ir::interp::{run_with, RunOptions};
use fqc_ir::{Tensor, TensorData};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Model file (.onnx, .fqir, or a compiled .fqc).
    model: PathBuf,
    /// Input tensor (.npy, float32 NCHW; uint8 is read as raw pixel values).
    #[arg(long)]
    input: PathBuf,
    /// Where to write the output (.npy). Further outputs of a multi-output model go to
    /// `<stem>_1.npy`, `<stem>_2.npy`, … beside it. Without it, a summary is printed.
    #[arg(long)]
    output: Option<PathBuf>,
    /// Worker threads (the batch is split between them; one image has its
    /// convolutions' output channels split instead).
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Run the model this many times and print the median wall time of one run
    /// (after one warm-up run); the import time is printed separately.
    #[arg(long, default_value_t = 1)]
    repeat: usize,
    /// Run with the reference interpreter, not the JIT (always so for .onnx/.fqir).
    #[arg(long)]
    interp: bool,
}

/// The engine a run uses (shared with `fqc eval`).
pub(crate) enum Engine {
    Interp(fqc_ir::Graph, RunOptions),
    Jit(Box<fqc_runtime::Session>),
}

impl Engine {
    /// The interpreter for float models or with `--interp`, else the JIT.
    pub(crate) fn new(path: &std::path::Path, interp: bool, threads: usize) -> Result<Engine> {
        let graph = crate::model::load(path)?;
        let artifact = crate::model::format_of(path)? == crate::model::Format::Artifact;
        Engine::from_graph(graph, artifact && !interp, threads)
            .with_context(|| format!("{}: JIT compile (try --interp)", path.display()))
    }

    /// The JIT for an integer-only `graph` when `jit`, else the interpreter.
    pub(crate) fn from_graph(graph: fqc_ir::Graph, jit: bool, threads: usize) -> Result<Engine> {
        if !jit {
            return Ok(Engine::Interp(graph, RunOptions { threads }));
        }
        let model = fqc_runtime::Model::from_graph(graph)?;
        Ok(Engine::Jit(Box::new(model.session().threads(threads))))
    }

    pub(crate) fn run(&mut self, input: &[Tensor]) -> Result<Vec<Tensor>> {
        Ok(match self {
            Engine::Interp(g, opts) => run_with(g, input, opts)?,
            Engine::Jit(s) => {
                let [x] = input else {
                    bail!("the JIT session feeds exactly one input");
                };
                vec![s.run(x)?]
            }
        })
    }

    pub(crate) fn name(&self) -> &'static str {
        match self {
            Engine::Interp(..) => "interpreter",
            Engine::Jit(_) => "JIT",
        }
    }
}

pub fn main(args: Args) -> Result<()> {
    let started = Instant::now();
    let threads = args.threads.max(1);
    let mut engine = Engine::new(&args.model, args.interp, threads)?;
    let load_time = started.elapsed();
    let bytes = std::fs::read(&args.input)
        .with_context(|| format!("cannot read {}", args.input.display()))?;
    let input = fqc_dataset::npy::read(&bytes)
        .and_then(fqc_dataset::to_model_input)
        .with_context(|| format!("{}", args.input.display()))?;
    if let Engine::Interp(graph, _) = &engine {
        if graph.inputs().len() != 1 {
            bail!(
                "the model has {} inputs; `fqc run` feeds exactly one",
                graph.inputs().len()
            );
        }
    }
    if let Some(out) = &args.output {
        if out == &args.input {
            bail!("--output would overwrite the input file {}", out.display());
        }
    }
    let input = [input];
    let mut outputs = engine.run(&input)?;
    if args.repeat > 1 {
        let mut times = Vec::with_capacity(args.repeat);
        for _ in 0..args.repeat {
            let t = Instant::now();
            outputs = engine.run(&input)?;
            times.push(t.elapsed().as_secs_f64() * 1e3);
        }
        times.sort_by(f64::total_cmp);
        println!(
            "load {:.1} ms; run ({}): median {:.2} ms, min {:.2} ms, max {:.2} ms over {} runs ({} thread(s), batch {})",
            load_time.as_secs_f64() * 1e3,
            engine.name(),
            times[times.len() / 2],
            times[0],
            times[times.len() - 1],
            times.len(),
            threads,
            input[0].shape.first().copied().unwrap_or(1)
        );
    }
    match &args.output {
        Some(path) => {
            for (i, t) in outputs.iter().enumerate() {
                let p = if i == 0 {
                    path.clone()
                } else {
                    let stem = path
                        .file_stem()
                        .map(|s| s.to_string_lossy().into_owned())
                        .unwrap_or_default();
                    path.with_file_name(format!("{stem}_{i}.npy"))
                };
                super::write_atomically(&p, &fqc_dataset::npy::write(t))?;
                println!("wrote {} {:?}", p.display(), t.shape);
            }
        }
        None => outputs
            .iter()
            .enumerate()
            .for_each(|(i, t)| summarize(i, t)),
    }
    Ok(())
}

/// One line per output: shape, and the arg-max per batch item for class scores.
fn summarize(i: usize, t: &Tensor) {
    let TensorData::F32(v) = &t.data else {
        println!("output {i}: {:?}", t.shape);
        return;
    };
    let items = t.shape.first().copied().unwrap_or(1).max(1);
    let per = v.len() / items;
    let argmax: Vec<usize> = v
        .chunks(per.max(1))
        .map(|c| {
            c.iter()
                .enumerate()
                .fold(0, |b, (j, x)| if *x > c[b] { j } else { b })
        })
        .collect();
    println!(
        "output {i}: shape {:?}, argmax per item {:?}",
        t.shape, argmax
    );
}
