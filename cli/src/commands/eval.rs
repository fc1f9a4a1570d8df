//! `fqc eval MODEL --data FILE [--split test]`: top-1 accuracy on a labelled `.npz`.
//!
//! A `.fqc` runs on the JIT (`--interp` selects the interpreter; both give identical
//! logits, so identical accuracy); `.onnx` / `.fqir` on the interpreter. Images are fed
//! exactly as every fqc command feeds them (`LabelledSet::batch`: raw pixel values as
//! float32; normalisation lives in the model). `--json` prints the result as one JSON
//! object for scripts.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use fqc_dataset::LabelledSet;

use super::run::Engine;
use crate::limits;
use crate::out::outln;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Model file (.onnx, .fqir, or a compiled .fqc).
    model: PathBuf,
    /// Labelled images (.npz with x_<split>/y_<split>, or x/y).
    #[arg(long)]
    data: PathBuf,
    /// Which split of the file to use.
    #[arg(long, default_value = "test")]
    split: String,
    /// Images per call, 1..=1048576.
    #[arg(long, default_value_t = 256, value_parser = limits::batch())]
    batch: usize,
    /// Worker threads, 1..=1024, clamped to the machine's cores (the batch is split
    /// between them).
    #[arg(long, default_value_t = 2, value_parser = limits::threads())]
    threads: usize,
    /// Evaluate only the first N images.
    #[arg(long)]
    limit: Option<usize>,
    /// Run with the reference interpreter, not the JIT (always so for .onnx/.fqir).
    #[arg(long)]
    interp: bool,
    /// Print one JSON object (top1, correct, images, seconds, engine) instead of the line.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    shapes: crate::model::ShapeArgs,
}

pub fn main(args: Args) -> Result<()> {
    let threads = limits::clamp_threads(args.threads, 2);
    let mut engine = Engine::new(&args.model, args.interp, threads, &args.shapes.input_shape)?;
    let set = labelled_set(&args.data, &args.split)?;
    let n = args.limit.map_or(set.len(), |l| l.min(set.len()));
    if n == 0 {
        bail!(
            "{}: split `{}` holds no images",
            args.data.display(),
            args.split
        );
    }
    if let Some(classes) = engine.classes() {
        set.check_labels(classes)
            .with_context(|| format!("{} (split `{}`)", args.data.display(), args.split))?;
    }
    let started = Instant::now();
    let pred = predictions(&mut engine, &set, n, args.batch)?;
    let correct = hits(&pred, &set.y);
    let secs = started.elapsed().as_secs_f64();
    if args.json {
        let v = serde_json::json!({
            "model": args.model,
            "data": args.data,
            "split": args.split,
            "top1": correct as f64 / n as f64,
            "correct": correct,
            "images": n,
            "seconds": secs,
            "engine": engine.name(),
        });
        outln!("{v}")?;
        return Ok(());
    }
    outln!(
        "top-1: {:.2}% ({correct}/{n}) on split `{}` of {} [{:.1} images/s, {}]",
        100.0 * correct as f64 / n as f64,
        args.split,
        args.data.display(),
        n as f64 / secs,
        engine.name()
    )?;
    Ok(())
}

/// Opens split `split` of a labelled set and checks its images are finite numbers.
pub(crate) fn labelled_set(path: &Path, split: &str) -> Result<LabelledSet> {
    let set = LabelledSet::open(path, split)?;
    set.check_finite()
        .with_context(|| format!("{} (split `{split}`)", path.display()))?;
    Ok(set)
}

/// The top-1 class of each of the first `n` images of `set`, run in batches of `batch`.
/// The labels are checked against the model's output width once the first batch has
/// run: a label that is not one of the model's classes is an error, not a miss.
pub(crate) fn predictions(
    engine: &mut Engine,
    set: &LabelledSet,
    n: usize,
    batch: usize,
) -> Result<Vec<usize>> {
    let n = n.min(set.len());
    let mut pred = Vec::with_capacity(n);
    for start in (0..n).step_by(batch.max(1)) {
        let end = (start + batch.max(1)).min(n);
        let out = engine.run(&[set.batch(start, end)])?;
        let scores = out
            .first()
            .and_then(|t| t.as_f32())
            .context("the model's first output is not float scores")?;
        let classes = scores.len() / (end - start);
        if start == 0 {
            set.check_labels(classes)?;
        }
        pred.extend(scores.chunks(classes.max(1)).map(|row| {
            row.iter()
                .enumerate()
                .fold(0, |b, (j, x)| if *x > row[b] { j } else { b })
        }));
    }
    Ok(pred)
}

/// How many predictions equal their label.
pub(crate) fn hits(pred: &[usize], labels: &[i64]) -> usize {
    pred.iter()
        .zip(labels)
        .filter(|(p, y)| **p as i64 == **y)
        .count()
}
