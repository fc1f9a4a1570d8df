//! `fqc compile MODEL -o OUT.fqc`: the float model to an integer-only `.fqc` artifact.
//!
//! Thin over `fqc_passes::schedule::compile_gradual`: this file turns flags into a
//! [`Schedule`] and a [`PassContext`] (calibration batches from `--calib X.npy`,
//! `--data D.npz`, or the `--train` set), runs the driver with the fine-tuning hook
//! [`tune::finetune_hook`] picks — none (post-training quantization; `--schedule`
//! steps the bits down gradually), or with `--train SET` the built-in QAT trainer
//! (`fqc_train::QatFineTune`; `--weights`/`--act-bits` without `--schedule` then step
//! down METHOD.md's default schedule to those bits, `--one-shot` goes straight to them;
//! it prints one line per stage and, after the compile, the integer-only graph's
//! validation top-1) — writes the artifact with
//! `fqc_runtime::artifact::save_file`, and prints the report: time per pass, one line per
//! layer (bits, MACs, weight sparsity), the calibration notes, where the boundary float
//! ops are, the artifact's size next to the ONNX file's, and `integer-only: yes` or
//! `integer-only: no (N float islands: ...)` naming the nodes of each island ([`report`];
//! `--require-integer-only` makes an island an error). `--test SET`, `--save-stages DIR` and `--summary-json F` measure the
//! result and every stage ([`check`]).
//!
//! `--stop-after PASS` prints the IR at that pass; before `integerize` no artifact is
//! written (a fake-quant graph is not one). The output may never be the input file.

mod check;
mod report;
mod sanity;
mod tune;

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use fqc_ir::Tensor;
use fqc_passes::schedule::{
    compile_gradual_observed, CompileOutput, Schedule, StageBits, DEFAULT_SCHEDULE,
};
use fqc_passes::{CalibMethod, PassContext, PipelineOptions, QuantConfig, WeightBits};

use crate::commands::eval::{hits, predictions};
use crate::commands::run::{output_width, Engine};
use crate::out::{out, outln};
use fqc_files::Guard;

/// Calibration batch size (images per interpreter call while calibrating).
const CALIB_BATCH: usize = 64;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Float model (.onnx or .fqir).
    model: PathBuf,
    /// Where to write the compiled artifact (.fqc).
    #[arg(short = 'o', long = "output")]
    output: PathBuf,
    #[command(flatten)]
    shapes: crate::model::ShapeArgs,
    /// Calibration inputs: a float32 (or uint8) NCHW .npy in the model's input convention.
    #[arg(long, conflicts_with = "data")]
    calib: Option<PathBuf>,
    /// Calibration images from a labelled .npz (the labels are not used).
    #[arg(long)]
    data: Option<PathBuf>,
    /// Split of --data to calibrate on.
    #[arg(long, default_value = "train", requires = "data")]
    split: String,
    /// Number of images to calibrate on (the first ones of --calib / --data).
    #[arg(long, default_value_t = 256)]
    calib_images: usize,
    /// After compiling, compare the quantized model with the float one on up to this
    /// many held-out images (top-1 agreement, output cosine; a warning below 90%
    /// agreement); 0 skips the check.
    #[arg(long, default_value_t = 256, value_parser = crate::limits::images())]
    check_images: usize,
    /// Weight bits of a one-stage compile: `ternary` (= 2) or 3..8.
    #[arg(long, conflicts_with = "schedule")]
    weights: Option<String>,
    /// Activation bits of a one-stage compile, 2..8.
    #[arg(long, conflicts_with = "schedule", value_parser = clap::value_parser!(u8).range(2..=8))]
    act_bits: Option<u8>,
    /// Bits of the network input quantizer, 2..8.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u8).range(2..=8))]
    input_bits: u8,
    /// Gradual requantization: stages `wXaY` (`wt` = ternary), e.g. `w8a8,w4a6,w3a4,w2a4`.
    #[arg(long)]
    schedule: Option<String>,
    /// Per-layer bits, `NAME=wXaY` (NAME: node name or weight name such as `conv1`) for
    /// every stage, or `NAME=wXaY@A-B` for stages A..B only (counted from 1, e.g.
    /// `conv1=w8@1-4`: 8-bit weights until stage 4, the schedule's bits after);
    /// repeatable, a later one wins where both hold.
    #[arg(long = "layer", value_name = "NAME=wXaY[@A-B]")]
    layers: Vec<String>,
    /// Calibration method: `mse`, `minmax` or `percentile:P` (e.g. `percentile:99.99`).
    #[arg(long, default_value = "mse")]
    calib_method: String,
    /// Print the IR after this pass (repeatable; in every stage of a schedule).
    #[arg(long = "print-after", value_name = "PASS")]
    print_after: Vec<String>,
    /// Print the IR after every pass.
    #[arg(long)]
    print_all: bool,
    /// Stop after this pass and print the IR there.
    #[arg(long, value_name = "PASS")]
    stop_after: Option<String>,
    /// Fail instead of keeping float islands (ops with no exact integer form, which
    /// otherwise stay float between a dequantize and a quantize and are listed in the
    /// report).
    #[arg(long)]
    require_integer_only: bool,
    /// Fine-tuning options.
    #[command(flatten)]
    tune: tune::TrainArgs,
    /// Measuring options.
    #[command(flatten)]
    check: check::CheckArgs,
}

pub fn main(args: Args) -> Result<()> {
    let schedule = schedule(&args)?;
    let calib = parse_calib_method(&args.calib_method)?;
    claim_files(&args, &schedule)?;
    if args.calib.is_none() && args.data.is_none() && args.tune.train.is_none() {
        bail!(
            "no calibration data: give --data IMAGES.npz (labelled images, e.g. the training split) or --calib INPUTS.npy"
        );
    }
    if crate::model::format_of(&args.model)? == crate::model::Format::Artifact {
        bail!(
            "{} is already a compiled artifact; `fqc compile` takes the float model (.onnx or .fqir)",
            args.model.display()
        );
    }
    let graph = crate::model::load_with(&args.model, &args.shapes.input_shape)?;
    if graph.inputs().len() != 1 {
        bail!(
            "the model has {} inputs; `fqc compile` calibrates models with exactly one",
            graph.inputs().len()
        );
    }
    let calibration = calibration(&args)?;
    let mut cx = PassContext {
        config: QuantConfig {
            input_bits: args.input_bits,
            calib,
            require_integer_only: args.require_integer_only,
            ..QuantConfig::default()
        },
        calib_inputs: calibration.batches,
        ..PassContext::default()
    };
    let opts = PipelineOptions {
        print_after: args.print_after.clone(),
        print_all: args.print_all,
        stop_after: args.stop_after.clone(),
    };
    let (mut hook, val) = tune::finetune_hook(&args.tune, &args.output, output_width(&graph))?;
    let mut checker = check::Checker::new(&args.check)?;
    let wants_stages = checker.wants_stages();
    let out = {
        let mut observe = |s: &_, fq: &_, int: &_| {
            checker
                .observe(s, fq, int)
                .map_err(|e| fqc_passes::PassError::Usage(format!("{e:#}")))
        };
        let observer: Option<&mut fqc_passes::schedule::StageObserver<'_>> =
            wants_stages.then_some(&mut observe);
        compile_gradual_observed(&graph, &schedule, &mut cx, hook.as_dyn(), &opts, observer)?
    };
    print_ir(&out)?;
    if let Some(pass) = &out.stopped_after {
        if !args.print_all && !args.print_after.contains(pass) {
            out!("{}", fqc_ir::text::print(&out.graph))?;
        }
        let names = fqc_passes::pipeline().names();
        let pos = |n: &str| names.iter().position(|p| *p == n);
        if pos(pass) < pos("integerize") || pos("integerize").is_none() {
            outln!(
                "stopped after `{pass}` (before integerize): no artifact written to {}",
                args.output.display()
            )?;
            return Ok(());
        }
    }
    let bytes = fqc_runtime::artifact::try_save(&out.graph)
        .with_context(|| format!("cannot write {}", args.output.display()))?;
    fqc_files::write(&args.output, &bytes)?;
    let report = report::report(&args, &schedule, &out, &cx, &calibration.note, bytes.len())?;
    out!("{report}")?;
    let mut val_top1 = None;
    if let Some(val) = &val {
        if out.stopped_after.is_none() {
            let mut jit = Engine::from_graph(out.graph.clone(), true, 2)?;
            let acc = hits(&predictions(&mut jit, val, val.len(), 256)?, &val.y) as f64
                / val.len().max(1) as f64;
            outln!(
                "integer-only val top-1: {:.2}% ({} images)",
                100.0 * acc,
                val.len()
            )?;
            val_top1 = Some(acc);
        }
    }
    let float_check = if out.stopped_after.is_none() {
        let held_out = match &val {
            Some(val) => sanity::HeldOut::from_set(val, "validation images of the fine-tuning"),
            None => calibration.held_out,
        };
        sanity::check(&graph, &out.graph, &held_out, args.check_images)?
    } else {
        None
    };
    let test = if out.stopped_after.is_none() {
        checker.finish(out.fake_quant.as_ref(), &out.graph)?
    } else {
        None
    };
    checker.write_summary(check::Summary {
        model: &args.model,
        output: &args.output,
        schedule: schedule.to_string(),
        trained: hook.stage_reports(),
        val_integer_top1: val_top1,
        float_check,
        test,
    })
}

/// Records every file the compile reads and claims every file it will write (the
/// artifact, `--summary-json`, the `--save-stages` and `--finetune-cmd` stage files),
/// so an output that would overwrite an input is refused before any work (see
/// `fqc_files`).
fn claim_files(args: &Args, schedule: &Schedule) -> Result<()> {
    let mut files = Guard::new();
    files.input("the model", &args.model);
    let inputs = [("--calib", &args.calib), ("--data", &args.data)];
    for (role, path) in inputs.into_iter().chain(args.tune.inputs()) {
        if let Some(p) = path {
            files.input(role, p);
        }
    }
    if let Some(p) = args.check.test_set() {
        files.input("--test", p);
    }
    files.output("-o", &args.output)?;
    if let Some(p) = args.check.summary_json() {
        files.output("--summary-json", p)?;
    }
    let labels: Vec<String> = schedule.stages.iter().map(|s| s.to_string()).collect();
    for path in args.check.stage_files(&labels)? {
        files.output("--save-stages", &path)?;
    }
    for path in args.tune.stage_files(&args.output, &labels)? {
        files.output("--finetune-dir", &path)?;
    }
    Ok(())
}

/// The schedule from `--schedule`, or one stage from `--weights`/`--act-bits` (default
/// ternary weights, 4-bit activations), with the `--layer` overrides.
fn schedule(args: &Args) -> Result<Schedule> {
    let mut s = match &args.schedule {
        Some(spec) => Schedule::parse(spec)?,
        None => {
            let w = match &args.weights {
                Some(w) => WeightBits::parse(w).with_context(|| {
                    format!("--weights `{w}`: expected `ternary` (= 2) or 3..8")
                })?,
                None => WeightBits::Ternary,
            };
            let target = StageBits {
                weights: w,
                act_bits: args.act_bits.unwrap_or(4),
            };
            if args.tune.train.is_some() {
                gradual_to(target)?
            } else {
                Schedule::one_shot(target.weights, target.act_bits)
            }
        }
    };
    if args.tune.one_shot {
        if let Some(last) = s.stages.last().copied() {
            s.stages = vec![last];
        }
    }
    for l in &args.layers {
        s.add_layer_override(l)?;
    }
    Ok(s)
}

/// METHOD.md's default schedule stepped down to `target`: every default stage with
/// its bits raised to at least the target's, duplicates and the target dropped, then
/// the target (`w2a4` gives `w8a8,w4a6,w3a4,w2a4`; `w4a4` gives `w8a8,w4a6,w4a4`).
fn gradual_to(target: StageBits) -> Result<Schedule> {
    let default = Schedule::parse(DEFAULT_SCHEDULE)?;
    let mut stages: Vec<StageBits> = Vec::new();
    for s in default.stages {
        let w = if s.weights.bits() >= target.weights.bits() {
            s.weights
        } else {
            target.weights
        };
        let st = StageBits {
            weights: w,
            act_bits: s.act_bits.max(target.act_bits),
        };
        if st != target && !stages.contains(&st) {
            stages.push(st);
        }
    }
    stages.push(target);
    Ok(Schedule {
        stages,
        per_layer: BTreeMap::new(),
    })
}

fn parse_calib_method(s: &str) -> Result<CalibMethod> {
    match s {
        "mse" => Ok(CalibMethod::Mse),
        "minmax" => Ok(CalibMethod::MinMax),
        "percentile" => Ok(CalibMethod::Percentile(99.99)),
        _ => {
            let p = s
                .strip_prefix("percentile:")
                .and_then(|p| p.parse::<f32>().ok())
                .filter(|p| *p > 0.0 && *p <= 100.0);
            p.map(CalibMethod::Percentile).with_context(|| {
                format!(
                    "--calib-method `{s}`: expected mse, minmax or percentile:P with 0 < P <= 100"
                )
            })
        }
    }
}

/// The calibration batches, a line saying where they came from, and the held-out
/// images the quantized model is checked on against the float one.
struct Calibration {
    batches: Vec<Tensor>,
    note: String,
    held_out: sanity::HeldOut,
}

/// Reads the calibration images: the first `--calib-images` of `--calib` or of the
/// `--data` / `--train` split; the images after them (up to `--check-images`) are held
/// out for [`sanity::check`], or, when none are left, the calibration images themselves.
fn calibration(args: &Args) -> Result<Calibration> {
    if args.calib_images == 0 {
        bail!("--calib-images must be at least 1");
    }
    let check = args.check_images;
    if let Some(path) = &args.calib {
        let t = super::read_input(path)?;
        let total = t.shape.first().copied().unwrap_or(0);
        let n = total.min(args.calib_images);
        if n == 0 || t.shape.len() < 2 {
            bail!(
                "{}: no calibration images (shape {:?})",
                path.display(),
                t.shape
            );
        }
        let shown = path.display();
        let held_out = if total > n {
            let m = (total - n).min(check);
            sanity::HeldOut::new(
                items(&t, n, n + m),
                format!("{m} held-out inputs of {shown} (after the calibration inputs)"),
            )
        } else {
            sanity::HeldOut::new(
                items(&t, 0, n.min(check)),
                format!(
                    "{} calibration inputs of {shown} (all were used to calibrate: none held out)",
                    n.min(check)
                ),
            )
        };
        return Ok(Calibration {
            batches: batches_of(&t, n),
            note: format!("{n} inputs from {shown}"),
            held_out,
        });
    }
    let (path, split) = match (&args.data, &args.tune.train) {
        (Some(p), _) => (p, &args.split),
        (None, Some(p)) => (p, &args.tune.train_split),
        (None, None) => bail!("no calibration data"),
    };
    let set = crate::commands::eval::labelled_set(path, split)?;
    let n = set.len().min(args.calib_images);
    if n == 0 {
        bail!("{}: split `{split}` holds no images", path.display());
    }
    let batches = (0..n)
        .step_by(CALIB_BATCH)
        .map(|s| set.batch(s, (s + CALIB_BATCH).min(n)))
        .collect();
    let shown = format!("split `{split}` of {}", path.display());
    let held_out = if set.len() > n {
        let m = (set.len() - n).min(check);
        sanity::HeldOut::new(
            set.batch(n, n + m),
            format!("{m} held-out images of {shown} (after the calibration images)"),
        )
    } else {
        let m = n.min(check);
        sanity::HeldOut::new(
            set.batch(0, m),
            format!(
                "{m} calibration images of {shown} (all were used to calibrate: none held out)"
            ),
        )
    };
    Ok(Calibration {
        batches,
        note: format!("{n} images of {shown}"),
        held_out,
    })
}

/// Items `start..end` of `t` (axis 0).
fn items(t: &Tensor, start: usize, end: usize) -> Tensor {
    let item: usize = t.shape[1..].iter().product();
    let data = t.as_f32().unwrap_or_default();
    let mut shape = t.shape.clone();
    shape[0] = end - start;
    Tensor::f32(shape, data[start * item..end * item].to_vec()).unwrap_or_else(|| t.clone())
}

/// The first `n` items of `t` (axis 0) in batches of [`CALIB_BATCH`].
fn batches_of(t: &Tensor, n: usize) -> Vec<Tensor> {
    let item: usize = t.shape[1..].iter().product();
    let data = t.as_f32().unwrap_or_default();
    (0..n)
        .step_by(CALIB_BATCH)
        .map(|s| {
            let e = (s + CALIB_BATCH).min(n);
            let mut shape = t.shape.clone();
            shape[0] = e - s;
            Tensor::f32(shape, data[s * item..e * item].to_vec()).unwrap_or_else(|| t.clone())
        })
        .collect()
}

/// Prints the IR every pass recorded (`--print-after`, `--print-all`).
fn print_ir(out: &CompileOutput) -> Result<()> {
    let count = out.stages.len().max(1);
    for r in &out.records {
        if let Some(text) = &r.record.printed {
            match r.stage {
                Some(i) => outln!("; IR after {} (stage {}/{count})", r.record.name, i + 1)?,
                None => outln!("; IR after {}", r.record.name)?,
            }
            out!("{text}")?;
        }
    }
    Ok(())
}
