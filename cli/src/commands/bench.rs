//! `fqc bench MODEL.fqc [--batch N] [--threads N] [--runs 30] [--warmup 5] [--min-secs S]
//! [--json]`: JIT speed.
//!
//! Prints the JIT compile time and the kernel forms the steps got, then, after warm-up runs, the median wall time of one
//! run of a batch over at least `--runs` timed runs (more if needed to fill at least
//! `--min-secs` seconds of timing, as the peer harness in `../shared/bench` does),
//! images/s (batch / median) and GMAC/s (the graph's `qconv` + `qgemm` MACs per
//! image × batch / median). `--json` prints the same figures as one JSON object on one
//! line instead (`model`, `batch`, `threads`, `runs`, `median_ms`, `min_ms`,
//! `compile_ms`, `macs_per_image`, `gmacs`, `images_per_s`, `fqc_bytes`: the model
//! file's size), for `scripts/bench_peers.sh`. The input is a fixed pseudo-random image
//! batch, or `--input X.npy` (its first `--batch` images, repeated if it holds fewer),
//! to time the model on the data it will see. This is a benchmark to commit as a
//! report, never a timed test.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use fqc_ir::{Tensor, TensorData};

use crate::limits;
use crate::out::outln;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Compiled model (.fqc).
    model: PathBuf,
    /// Images per run, 1..=1048576 (and the batch may hold at most 2^30 input
    /// elements).
    #[arg(long, default_value_t = 1, value_parser = limits::batch())]
    batch: usize,
    /// Worker threads, 1..=1024, clamped to the machine's cores (the batch is split
    /// between them; one image has its convolutions' output channels split instead).
    #[arg(long, default_value_t = 1, value_parser = limits::threads())]
    threads: usize,
    /// Timed runs, at least, 1..=1000000 (the median is reported).
    #[arg(long, default_value_t = 30, value_parser = limits::runs())]
    runs: usize,
    /// Untimed runs before timing, 0..=1000000.
    #[arg(long, default_value_t = 5, value_parser = limits::warmup())]
    warmup: usize,
    /// Keep timing runs until at least this many seconds have passed (0..=3600; and at
    /// least `--runs` runs were timed; at most 100000 runs).
    #[arg(long, default_value_t = 0.0)]
    min_secs: f64,
    /// Print one JSON object line instead of text.
    #[arg(long)]
    json: bool,
    /// Time on these images (.npy, float32 or uint8 NCHW) instead of pseudo-random
    /// pixels.
    #[arg(long)]
    input: Option<PathBuf>,
}

/// `form ×count, …` over the compiled steps, in order of first use.
fn form_counts(forms: &[(String, &'static str)]) -> String {
    let mut counts: Vec<(&str, usize)> = Vec::new();
    for (_, f) in forms {
        match counts.iter_mut().find(|(g, _)| g == f) {
            Some((_, n)) => *n += 1,
            None => counts.push((f, 1)),
        }
    }
    let parts: Vec<String> = counts.iter().map(|(f, n)| format!("{f} ×{n}")).collect();
    parts.join(", ")
}

/// Upper bound on timed runs when `--min-secs` asks for more than `--runs`.
const MAX_RUNS: usize = 100_000;

/// `s` as a JSON string literal.
fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// `numel` pixel values 0..=255 from a fixed-seed LCG.
fn pseudo_random_pixels(numel: usize) -> Result<Vec<f32>> {
    let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
    let mut v = buffer(numel)?;
    v.extend((0..numel).map(|_| {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (seed >> 56) as f32
    }));
    Ok(v)
}

/// An empty vector with room for `numel` values, or an error (not an abort) when the
/// memory is not there.
fn buffer(numel: usize) -> Result<Vec<f32>> {
    let mut v = Vec::new();
    v.try_reserve_exact(numel)
        .with_context(|| format!("cannot allocate an input of {numel} elements"))?;
    Ok(v)
}

/// The first `shape[0]` images of the `.npy` at `path` (cycled if it holds fewer),
/// checked against the model's image shape `shape[1..]`.
fn images_from(path: &std::path::Path, shape: &[usize], numel: usize) -> Result<Vec<f32>> {
    let shown = path.display();
    let t = super::read_input(path)?;
    let TensorData::F32(v) = t.data else {
        bail!("{shown}: expected float32 or uint8 images");
    };
    if t.shape.len() != shape.len() || t.shape[1..] != shape[1..] || t.shape[0] == 0 {
        bail!(
            "{shown}: images of shape {:?} do not fit the model's input [N, {}]",
            t.shape,
            shape[1..]
                .iter()
                .map(usize::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    let mut out = buffer(numel)?;
    out.extend(v.iter().copied().cycle().take(numel));
    Ok(out)
}

pub fn main(args: Args) -> Result<()> {
    if !(args.min_secs.is_finite() && (0.0..=3600.0).contains(&args.min_secs)) {
        bail!("--min-secs must be a number of seconds from 0 to 3600");
    }
    let threads = limits::clamp_threads(args.threads, 1);
    let shown = args.model.display();
    let fqc_bytes = std::fs::metadata(&args.model)
        .with_context(|| format!("cannot read {shown}"))?
        .len();
    let graph = crate::model::load(&args.model)?;
    if !graph
        .nodes()
        .any(|(_, n)| matches!(n.op, fqc_ir::Op::Quantize { .. }))
    {
        bail!("{shown}: a float model; bench times compiled models (`fqc compile` it first)");
    }
    let model = fqc_runtime::Model::from_graph(graph).with_context(|| format!("{shown}"))?;
    let mut session = model.session().threads(threads);
    let mut shape = vec![args.batch];
    shape.extend(model.input_item_shape());
    let numel = limits::input_elements(&shape).with_context(|| {
        format!(
            "--batch {}: an input of shape {shape:?} is more than the limit of {} elements",
            args.batch,
            limits::MAX_INPUT_ELEMENTS
        )
    })?;
    let data = match &args.input {
        Some(path) => images_from(path, &shape, numel)?,
        None => pseudo_random_pixels(numel)?,
    };
    let x = Tensor {
        shape,
        data: TensorData::F32(data),
    };
    for _ in 0..args.warmup {
        session.run(&x)?;
    }
    let mut times = Vec::with_capacity(args.runs);
    let start = Instant::now();
    while times.len() < args.runs
        || (start.elapsed().as_secs_f64() < args.min_secs && times.len() < MAX_RUNS)
    {
        let t = Instant::now();
        std::hint::black_box(session.run(&x)?);
        times.push(t.elapsed().as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    let median = times[times.len() / 2];
    let macs = model.macs_per_image() as f64 * args.batch as f64;
    let compile_ms = model.compile_time().as_secs_f64() * 1e3;
    let images_per_s = args.batch as f64 / median;
    let gmacs = macs / median / 1e9;
    if args.json {
        outln!(
            "{{\"model\":{},\"batch\":{},\"threads\":{},\"runs\":{},\"median_ms\":{:.4},\"min_ms\":{:.4},\"compile_ms\":{:.3},\"macs_per_image\":{},\"gmacs\":{:.3},\"images_per_s\":{:.2},\"fqc_bytes\":{}}}",
            json_string(&shown.to_string()),
            args.batch,
            threads,
            times.len(),
            median * 1e3,
            times[0] * 1e3,
            compile_ms,
            model.macs_per_image(),
            gmacs,
            images_per_s,
            fqc_bytes
        )?;
        return Ok(());
    }
    outln!("model: {shown}")?;
    outln!(
        "JIT compile: {compile_ms:.2} ms ({} MACs/image)",
        model.macs_per_image()
    )?;
    outln!("kernels: {}", form_counts(model.kernel_forms()))?;
    outln!(
        "batch {}, {} thread(s), median of {} runs after {} warm-up: {:.3} ms (min {:.3} ms, max {:.3} ms)",
        args.batch,
        threads,
        times.len(),
        args.warmup,
        median * 1e3,
        times[0] * 1e3,
        times[times.len() - 1] * 1e3
    )?;
    let pct = |p: usize| times[(times.len() - 1) * p / 100] * 1e3;
    outln!(
        "percentiles: p10 {:.3} ms, p25 {:.3} ms, p75 {:.3} ms, p90 {:.3} ms",
        pct(10),
        pct(25),
        pct(75),
        pct(90)
    )?;
    outln!("{images_per_s:.0} images/s, {gmacs:.2} GMAC/s")?;
    Ok(())
}
