//! `fqc run MODEL --input X.npy [--output Y.npy]`: run the reference interpreter.
//!
//! Input: a float32 NCHW `.npy` (uint8 pixels are accepted and cast, see `fqc-dataset`),
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
    /// Worker threads (the batch is split between them).
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Run the model this many times and print the median wall time of one run
    /// (after one warm-up run); the import time is printed separately.
    #[arg(long, default_value_t = 1)]
    repeat: usize,
}

pub fn main(args: Args) -> Result<()> {
    let started = Instant::now();
    let graph = crate::model::load(&args.model)?;
    let load_time = started.elapsed();
    let bytes = std::fs::read(&args.input)
        .with_context(|| format!("cannot read {}", args.input.display()))?;
    let input = fqc_dataset::npy::read(&bytes)
        .and_then(fqc_dataset::to_model_input)
        .with_context(|| format!("{}", args.input.display()))?;
    if graph.inputs().len() != 1 {
        bail!(
            "the model has {} inputs; `fqc run` feeds exactly one",
            graph.inputs().len()
        );
    }
    if let Some(out) = &args.output {
        if out == &args.input {
            bail!("--output would overwrite the input file {}", out.display());
        }
    }
    let opts = RunOptions {
        threads: args.threads.max(1),
    };
    let input = [input];
    let mut outputs = run_with(&graph, &input, &opts)?;
    if args.repeat > 1 {
        let mut times = Vec::with_capacity(args.repeat);
        for _ in 0..args.repeat {
            let t = Instant::now();
            outputs = run_with(&graph, &input, &opts)?;
            times.push(t.elapsed().as_secs_f64() * 1e3);
        }
        times.sort_by(f64::total_cmp);
        println!(
            "load {:.1} ms; run: median {:.2} ms, min {:.2} ms, max {:.2} ms over {} runs ({} thread(s), batch {})",
            load_time.as_secs_f64() * 1e3,
            times[times.len() / 2],
            times[0],
            times[times.len() - 1],
            times.len(),
            opts.threads,
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
