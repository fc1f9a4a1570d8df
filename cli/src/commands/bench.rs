//! `fqc bench MODEL.fqc [--batch N] [--threads N] [--runs 30] [--warmup 5]`: JIT speed.
//!
//! Prints the JIT compile time, then, after warm-up runs, the median wall time of one
//! run of a batch over `--runs` runs, images/s (batch / median) and GMAC/s (the
//! graph's `qconv` + `qgemm` MACs per image × batch / median). The input is a fixed
//! pseudo-random image batch (speed does not depend on pixel values). This is a
//! benchmark to commit as a report, never a timed test.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use fqc_ir::{Tensor, TensorData};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Compiled model (.fqc).
    model: PathBuf,
    /// Images per run.
    #[arg(long, default_value_t = 1)]
    batch: usize,
    /// Worker threads (the batch is split between them).
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Timed runs (the median is reported).
    #[arg(long, default_value_t = 30)]
    runs: usize,
    /// Untimed runs before timing.
    #[arg(long, default_value_t = 5)]
    warmup: usize,
}

pub fn main(args: Args) -> Result<()> {
    if args.batch == 0 || args.runs == 0 {
        bail!("--batch and --runs must be at least 1");
    }
    let shown = args.model.display();
    let graph = crate::model::load(&args.model)?;
    let model = fqc_runtime::Model::from_graph(graph).with_context(|| format!("{shown}"))?;
    let mut session = model.session().threads(args.threads);
    let mut shape = vec![args.batch];
    shape.extend(model.input_item_shape());
    let numel: usize = shape.iter().product();
    let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
    let data = (0..numel)
        .map(|_| {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 56) as f32
        })
        .collect();
    let x = Tensor {
        shape,
        data: TensorData::F32(data),
    };
    for _ in 0..args.warmup {
        session.run(&x)?;
    }
    let mut times = Vec::with_capacity(args.runs);
    for _ in 0..args.runs {
        let t = Instant::now();
        std::hint::black_box(session.run(&x)?);
        times.push(t.elapsed().as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    let median = times[times.len() / 2];
    let macs = model.macs_per_image() as f64 * args.batch as f64;
    println!("model: {shown}");
    println!(
        "JIT compile: {:.2} ms ({} MACs/image)",
        model.compile_time().as_secs_f64() * 1e3,
        model.macs_per_image()
    );
    println!(
        "batch {}, {} thread(s), median of {} runs after {} warm-up: {:.3} ms (min {:.3} ms, max {:.3} ms)",
        args.batch,
        args.threads.max(1),
        args.runs,
        args.warmup,
        median * 1e3,
        times[0] * 1e3,
        times[times.len() - 1] * 1e3
    );
    println!(
        "{:.0} images/s, {:.2} GMAC/s",
        args.batch as f64 / median,
        macs / median / 1e9
    );
    Ok(())
}
