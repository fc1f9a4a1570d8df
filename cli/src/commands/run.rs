//! `fqc run MODEL --input X.npy [--output Y.npy] [--interp]`: run a model.
//!
//! A compiled `.fqc` runs on the JIT (`fqc_runtime::Model`, compiled once, then a
//! session); `--interp` selects the reference interpreter instead, which is also what
//! runs `.onnx` / `.fqir` models (float graphs the JIT does not lower). Both print the
//! same numbers for a `.fqc` (the JIT is bit-exact). Input: a float32 NCHW `.npy` (uint8 pixels are accepted and cast, see `fqc-dataset`),
//! batch = first dimension. Output: float32 `.npy` files, or a summary on stdout.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use fqc_files::Guard;
use fqc_ir::interp::{run_with, RunOptions};
use fqc_ir::{Tensor, TensorData};

use crate::limits;
use crate::out::outln;

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
    /// Worker threads, 1..=1024, clamped to the machine's cores (the batch is split
    /// between them; one image has its convolutions' output channels split instead).
    #[arg(long, default_value_t = 1, value_parser = limits::threads())]
    threads: usize,
    /// Run the model this many times, 1..=1000000, and print the median wall time of
    /// one run (after one warm-up run); the import time is printed separately.
    #[arg(long, default_value_t = 1, value_parser = limits::runs())]
    repeat: usize,
    /// Run with the reference interpreter, not the JIT (always so for .onnx/.fqir).
    #[arg(long)]
    interp: bool,
    #[command(flatten)]
    shapes: crate::model::ShapeArgs,
}

/// The engine a run uses (shared with `fqc eval`).
pub(crate) enum Engine {
    Interp(fqc_ir::Graph, RunOptions),
    Jit(Box<fqc_runtime::Session>),
}

impl Engine {
    /// The interpreter for float models or with `--interp`, else the JIT.
    pub(crate) fn new(
        path: &std::path::Path,
        interp: bool,
        threads: usize,
        shapes: &[fqc_onnx::InputShape],
    ) -> Result<Engine> {
        let graph = crate::model::load_with(path, shapes)?;
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

    /// The width of the first output (the class count of a classifier), when fixed.
    pub(crate) fn classes(&self) -> Option<usize> {
        match self {
            Engine::Interp(g, _) => output_width(g),
            Engine::Jit(s) => Some(s.model().output_item_len()),
        }
    }

    /// How many outputs a run returns (the JIT session returns the first).
    pub(crate) fn outputs(&self) -> usize {
        match self {
            Engine::Interp(g, _) => g.outputs().len(),
            Engine::Jit(_) => 1,
        }
    }

    pub(crate) fn name(&self) -> &'static str {
        match self {
            Engine::Interp(..) => "interpreter",
            Engine::Jit(_) => "JIT",
        }
    }
}

pub fn main(args: Args) -> Result<()> {
    let threads = limits::clamp_threads(args.threads, 1);
    let mut files = Guard::new();
    files
        .input("the model", &args.model)
        .input("--input", &args.input);
    if let Some(out) = &args.output {
        files.output("--output", out)?;
    }
    let started = Instant::now();
    let mut engine = Engine::new(&args.model, args.interp, threads, &args.shapes.input_shape)?;
    let load_time = started.elapsed();
    let input = super::read_input(&args.input)?;
    if let Engine::Interp(graph, _) = &engine {
        if graph.inputs().len() != 1 {
            bail!(
                "the model has {} inputs; `fqc run` feeds exactly one",
                graph.inputs().len()
            );
        }
    }
    let paths = match &args.output {
        Some(path) => {
            let paths = output_paths(path, engine.outputs());
            for p in &paths[1..] {
                files.output("--output", p)?;
            }
            paths
        }
        None => Vec::new(),
    };
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
        outln!(
            "load {:.1} ms; run ({}): median {:.2} ms, min {:.2} ms, max {:.2} ms over {} runs ({} thread(s), batch {})",
            load_time.as_secs_f64() * 1e3,
            engine.name(),
            times[times.len() / 2],
            times[0],
            times[times.len() - 1],
            times.len(),
            threads,
            input[0].shape.first().copied().unwrap_or(1)
        )?;
    }
    if paths.is_empty() {
        for (i, t) in outputs.iter().enumerate() {
            summarize(i, t)?;
        }
        return Ok(());
    }
    for (p, t) in paths.iter().zip(&outputs) {
        fqc_files::write(p, &fqc_dataset::npy::write(t))?;
        outln!("wrote {} {:?}", p.display(), t.shape)?;
    }
    Ok(())
}

/// Where a run's `count` outputs go: `path` for the first, `<stem>_<i>.npy` beside it
/// for output `i` ≥ 1.
fn output_paths(path: &Path, count: usize) -> Vec<PathBuf> {
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    (0..count.max(1))
        .map(|i| match i {
            0 => path.to_path_buf(),
            _ => path.with_file_name(format!("{stem}_{i}.npy")),
        })
        .collect()
}

/// The last extent of `g`'s first output (a classifier's class count), when fixed.
pub(crate) fn output_width(g: &fqc_ir::Graph) -> Option<usize> {
    let out = *g.outputs().first()?;
    usize::try_from(g.ty(out).shape.0.last()?.fixed()?).ok()
}

/// One line per output: shape, and the arg-max per batch item for class scores.
fn summarize(i: usize, t: &Tensor) -> Result<()> {
    let TensorData::F32(v) = &t.data else {
        outln!("output {i}: {:?}", t.shape)?;
        return Ok(());
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
    outln!(
        "output {i}: shape {:?}, argmax per item {:?}",
        t.shape,
        argmax
    )?;
    Ok(())
}
