//! `fqc compile MODEL -o OUT.fqc`: the float model to an integer-only `.fqc` artifact.
//!
//! Thin over `fqc_passes::schedule::compile_gradual`: this file turns flags into a
//! [`Schedule`] and a [`PassContext`] (calibration batches from `--calib X.npy`,
//! `--data D.npz`, or the `--train` set), runs the driver with the fine-tuning hook
//! [`finetune_hook`] picks — [`NoFineTune`] (post-training quantization; `--schedule`
//! steps the bits down gradually), or with `--train SET` the built-in QAT trainer
//! (`fqc_train::QatFineTune`; `--weights`/`--act-bits` without `--schedule` then step
//! down METHOD.md's default schedule to those bits, `--one-shot` goes straight to them;
//! it prints one line per stage and, after the compile, the integer-only graph's
//! validation top-1) — writes the artifact with
//! `fqc_runtime::artifact::save_file`, and prints the report: time per pass, one line per
//! layer (bits, MACs, weight sparsity), the calibration notes, where the boundary float
//! ops are, the artifact's size next to the ONNX file's, and `integer-only: yes|no`.
//!
//! `--stop-after PASS` prints the IR at that pass; before `integerize` no artifact is
//! written (a fake-quant graph is not one). The output may never be the input file.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use fqc_dataset::LabelledSet;
use fqc_ir::{Graph, Tensor};
use fqc_passes::schedule::{
    compile_gradual, CompileOutput, FineTune, NoFineTune, Schedule, StageBits, DEFAULT_SCHEDULE,
};
use fqc_passes::{CalibMethod, PassContext, PipelineOptions, QuantConfig, WeightBits};

/// Calibration batch size (images per interpreter call while calibrating).
const CALIB_BATCH: usize = 64;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Float model (.onnx or .fqir).
    model: PathBuf,
    /// Where to write the compiled artifact (.fqc).
    #[arg(short = 'o', long = "output")]
    output: PathBuf,
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
    /// Per-layer bits for every stage, `NAME=wXaY` (NAME: node name or weight name such
    /// as `conv1`); repeatable.
    #[arg(long = "layer", value_name = "NAME=wXaY")]
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
    /// Fine-tuning options (boxed: they would make every command's arguments large).
    #[command(flatten)]
    tune: Box<TrainArgs>,
}

/// The `--train` options of [`Args`].
#[derive(Debug, clap::Args)]
struct TrainArgs {
    /// Quantization-aware fine-tuning on this labelled set (.npz) at every stage.
    #[arg(long, value_name = "SET")]
    train: Option<PathBuf>,
    /// Split of --train to train on.
    #[arg(long, default_value = "train", requires = "train")]
    train_split: String,
    /// Validation set for fine-tuning (default: a held-out 10% of --train).
    #[arg(long, value_name = "SET", requires = "train")]
    val: Option<PathBuf>,
    /// Split of --val.
    #[arg(long, default_value = "test", requires = "val")]
    val_split: String,
    /// Training epochs per stage (at most; see --patience).
    #[arg(long, requires = "train")]
    epochs_per_stage: Option<usize>,
    /// Only the final stage (quantize straight to the target bits, then fine-tune).
    #[arg(long, requires = "train")]
    one_shot: bool,
    /// Train against the float model's outputs instead of the labels.
    #[arg(long, requires = "train")]
    distill: bool,
    /// Peak learning rate (cosine decay per stage; default 5e-4 for adam, 0.01 for sgd).
    #[arg(long, requires = "train")]
    lr: Option<f64>,
    /// Training batch size.
    #[arg(long, requires = "train")]
    batch_size: Option<usize>,
    /// Optimizer: `adam` or `sgd` (momentum 0.9).
    #[arg(long, requires = "train")]
    optimizer: Option<String>,
    /// Weight decay of the latent weights.
    #[arg(long, requires = "train")]
    weight_decay: Option<f64>,
    /// Seed of the shuffling and the validation hold-out.
    #[arg(long, default_value_t = 0, requires = "train")]
    seed: u64,
    /// Fine-tune every stage with an external command instead, e.g.
    /// `python3 tune.py {in} {out}`: `{in}` is the stage as QDQ ONNX, the command writes
    /// the same model with new weights/scales to `{out}`.
    #[arg(long, value_name = "CMD", conflicts_with = "train")]
    finetune_cmd: Option<String>,
    /// Folder for --finetune-cmd's stage files (default: OUTPUT.finetune).
    #[arg(long, value_name = "DIR", requires = "finetune_cmd")]
    finetune_dir: Option<PathBuf>,
    /// Use only the first N training images (quick runs).
    #[arg(long, requires = "train")]
    train_images: Option<usize>,
    /// Early stop: end a stage after N epochs without a better validation accuracy
    /// (0: never).
    #[arg(long, requires = "train")]
    patience: Option<usize>,
}

pub fn main(args: Args) -> Result<()> {
    let schedule = schedule(&args)?;
    let calib = parse_calib_method(&args.calib_method)?;
    refuse_overwrite(&args.model, &args.output)?;
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
    let graph = crate::model::load(&args.model)?;
    if graph.inputs().len() != 1 {
        bail!(
            "the model has {} inputs; `fqc compile` calibrates models with exactly one",
            graph.inputs().len()
        );
    }
    let (calib_inputs, calib_note) = calibration(&args)?;
    let mut cx = PassContext {
        config: QuantConfig {
            input_bits: args.input_bits,
            calib,
            ..QuantConfig::default()
        },
        calib_inputs,
        ..PassContext::default()
    };
    let opts = PipelineOptions {
        print_after: args.print_after.clone(),
        print_all: args.print_all,
        stop_after: args.stop_after.clone(),
    };
    let (mut hook, val) = finetune_hook(&args)?;
    let out = compile_gradual(&graph, &schedule, &mut cx, hook.as_mut(), &opts)?;
    print_ir(&out);
    if let Some(pass) = &out.stopped_after {
        if !args.print_all && !args.print_after.contains(pass) {
            print!("{}", fqc_ir::text::print(&out.graph));
        }
        let names = fqc_passes::pipeline().names();
        let pos = |n: &str| names.iter().position(|p| *p == n);
        if pos(pass) < pos("integerize") || pos("integerize").is_none() {
            println!(
                "stopped after `{pass}` (before integerize): no artifact written to {}",
                args.output.display()
            );
            return Ok(());
        }
    }
    let report = report(&args, &schedule, &out, &cx, &calib_note)?;
    print!("{report}");
    if let Some(val) = &val {
        if out.stopped_after.is_none() {
            let acc = integer_accuracy(&out.graph, val)?;
            println!(
                "integer-only val top-1: {:.2}% ({} images)",
                100.0 * acc,
                val.len()
            );
        }
    }
    Ok(())
}

/// The fine-tuning hook of this compile — the one place it is chosen: the built-in
/// QAT trainer with `--train`, the user's command with `--finetune-cmd`, else none
/// (post-training quantization). With the trainer,
/// also the validation set it uses (for the integer-only accuracy after the compile).
fn finetune_hook(args: &Args) -> Result<(Box<dyn FineTune>, Option<LabelledSet>)> {
    if let Some(cmd) = &args.tune.finetune_cmd {
        let dir = args.tune.finetune_dir.clone().unwrap_or_else(|| {
            let mut d = args.output.clone().into_os_string();
            d.push(".finetune");
            PathBuf::from(d)
        });
        let hook = fqc_train::external::ExternalCommand::new(cmd.clone(), dir)?;
        return Ok((Box::new(hook), None));
    }
    let Some(train_path) = &args.tune.train else {
        return Ok((Box::new(NoFineTune), None));
    };
    let mut cfg = fqc_train::TrainConfig::default();
    if let Some(o) = &args.tune.optimizer {
        cfg.optimizer = fqc_train::OptimizerKind::parse(o)
            .with_context(|| format!("--optimizer `{o}`: expected adam or sgd"))?;
    }
    if let Some(e) = args.tune.epochs_per_stage {
        cfg.epochs_per_stage = e;
    }
    if let Some(b) = args.tune.batch_size {
        if b == 0 {
            bail!("--batch-size must be at least 1");
        }
        cfg.batch_size = b;
    }
    if let Some(lr) = args.tune.lr {
        if !(lr.is_finite() && lr > 0.0) {
            bail!("--lr must be positive");
        }
        cfg.lr = Some(lr);
    }
    if let Some(wd) = args.tune.weight_decay {
        cfg.weight_decay = wd;
    }
    if let Some(p) = args.tune.patience {
        cfg.patience = (p > 0).then_some(p);
    }
    cfg.seed = args.tune.seed;
    cfg.distill = args.tune.distill;
    cfg.max_train_images = args.tune.train_images;
    let train = LabelledSet::open(train_path, &args.tune.train_split)?;
    let train = match args.tune.train_images {
        Some(n) if n < train.len() => fqc_train::trainer::first(&train, n),
        _ => train,
    };
    let (train, val) = match &args.tune.val {
        Some(p) => (train, LabelledSet::open(p, &args.tune.val_split)?),
        None => fqc_train::trainer::split_holdout(&train, cfg.val_fraction, cfg.seed),
    };
    let ntrain = train.len();
    let hook = fqc_train::QatFineTune::new(train, Some(val.clone()), cfg.clone())?;
    println!(
        "fine-tuning: {ntrain} training / {} validation images, {} epochs per stage, batch {}, {} lr {}{}",
        val.len(),
        cfg.epochs_per_stage,
        cfg.batch_size,
        match cfg.optimizer {
            fqc_train::OptimizerKind::Adam => "adam",
            fqc_train::OptimizerKind::Sgd => "sgd",
        },
        cfg.lr(),
        if cfg.distill { ", distilling from the float model" } else { "" }
    );
    Ok((Box::new(hook), Some(val)))
}

/// Top-1 of the integer-only graph on `set` (the runtime's JIT).
fn integer_accuracy(g: &Graph, set: &LabelledSet) -> Result<f64> {
    let model = fqc_runtime::Model::from_graph(g.clone())?;
    let mut session = model.session();
    let mut correct = 0usize;
    for start in (0..set.len()).step_by(256) {
        let end = (start + 256).min(set.len());
        let y = session.run(&set.batch(start, end))?;
        let logits = y.as_f32().context("the model's output is not f32")?;
        let classes = logits.len() / (end - start).max(1);
        for (i, row) in logits.chunks(classes.max(1)).enumerate() {
            let pred = row
                .iter()
                .enumerate()
                .fold(
                    (0, f32::NEG_INFINITY),
                    |b, (j, &v)| if v > b.1 { (j, v) } else { b },
                )
                .0;
            correct += usize::from(pred as i64 == set.y[start + i]);
        }
    }
    Ok(correct as f64 / set.len().max(1) as f64)
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

/// Refuses an output path that is the input file (also through links or `..`).
fn refuse_overwrite(model: &Path, output: &Path) -> Result<()> {
    let same = match (model.canonicalize(), output.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => model == output,
    };
    if same {
        bail!(
            "-o {} would overwrite the input model; choose another output path",
            output.display()
        );
    }
    Ok(())
}

/// The calibration batches and a line saying where they came from.
fn calibration(args: &Args) -> Result<(Vec<Tensor>, String)> {
    if args.calib_images == 0 {
        bail!("--calib-images must be at least 1");
    }
    let (batches, what) = if let Some(path) = &args.calib {
        let bytes =
            std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        let t = fqc_dataset::npy::read(&bytes)
            .and_then(fqc_dataset::to_model_input)
            .with_context(|| format!("{}", path.display()))?;
        let n = t.shape.first().copied().unwrap_or(0).min(args.calib_images);
        if n == 0 || t.shape.len() < 2 {
            bail!(
                "{}: no calibration images (shape {:?})",
                path.display(),
                t.shape
            );
        }
        (
            batches_of(&t, n),
            format!("{n} inputs from {}", path.display()),
        )
    } else if let Some(path) = &args.data {
        let set = LabelledSet::open(path, &args.split)?;
        let n = set.len().min(args.calib_images);
        if n == 0 {
            bail!("{}: split `{}` holds no images", path.display(), args.split);
        }
        let batches = (0..n)
            .step_by(CALIB_BATCH)
            .map(|s| set.batch(s, (s + CALIB_BATCH).min(n)))
            .collect();
        (
            batches,
            format!("{n} images of split `{}` of {}", args.split, path.display()),
        )
    } else if let Some(path) = &args.tune.train {
        let set = LabelledSet::open(path, &args.tune.train_split)?;
        let n = set.len().min(args.calib_images);
        if n == 0 {
            bail!(
                "{}: split `{}` holds no images",
                path.display(),
                args.tune.train_split
            );
        }
        let batches = (0..n)
            .step_by(CALIB_BATCH)
            .map(|s| set.batch(s, (s + CALIB_BATCH).min(n)))
            .collect();
        (
            batches,
            format!(
                "{n} images of split `{}` of {}",
                args.tune.train_split,
                path.display()
            ),
        )
    } else {
        bail!("no calibration data");
    };
    Ok((batches, what))
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
fn print_ir(out: &CompileOutput) {
    let count = out.stages.len().max(1);
    for r in &out.records {
        if let Some(text) = &r.record.printed {
            match r.stage {
                Some(i) => println!("; IR after {} (stage {}/{count})", r.record.name, i + 1),
                None => println!("; IR after {}", r.record.name),
            }
            print!("{text}");
        }
    }
}

/// Writes the artifact and builds the report (see the module docs).
fn report(
    args: &Args,
    schedule: &Schedule,
    out: &CompileOutput,
    cx: &PassContext,
    calib_note: &str,
) -> Result<String> {
    fqc_runtime::artifact::save_file(&args.output, &out.graph)
        .with_context(|| format!("cannot write {}", args.output.display()))?;
    let mut r = String::new();
    let w = &mut r;
    let _ = writeln!(
        w,
        "compiled {} -> {}",
        args.model.display(),
        args.output.display()
    );
    let tuning = if args.tune.train.is_some() {
        Some("quantization-aware fine-tuning")
    } else if args.tune.finetune_cmd.is_some() {
        Some("fine-tuned by --finetune-cmd")
    } else {
        None
    };
    let kind = match (schedule.stages.len() == 1, tuning) {
        (true, None) => "one stage: post-training quantization".to_string(),
        (false, None) => "gradual requantization, no fine-tuning hook".to_string(),
        (true, Some(t)) => format!("one stage, {t}"),
        (false, Some(t)) => format!("gradual requantization, {t}"),
    };
    let _ = writeln!(w, "schedule: {schedule} ({kind})");
    let _ = writeln!(
        w,
        "calibration: {calib_note}, method {}",
        method_name(cx.config.calib)
    );
    for n in &cx.notes {
        let _ = writeln!(w, "  {n}");
    }
    pass_times(w, out);
    stages(w, out);
    layers(w, out);
    let boundary = fqc_passes::integer_only_report(&out.graph);
    let _ = writeln!(
        w,
        "boundary: input quantizers [{}]; output dequantizers [{}]; trailing float ops [{}]",
        boundary.input_quantizers.join(", "),
        boundary.output_dequantizers.join(", "),
        boundary.trailing.join(", ")
    );
    artifact_summary(w, args, &out.graph)?;
    if boundary.is_integer_only() {
        let _ = writeln!(w, "integer-only: yes");
    } else {
        let ops: Vec<String> = boundary
            .float_ops
            .iter()
            .map(|(n, op, why)| format!("{n} ({op}): {why}"))
            .collect();
        let _ = writeln!(
            w,
            "integer-only: no ({} float ops inside the boundary: {})",
            ops.len(),
            ops.join("; ")
        );
    }
    Ok(r)
}

fn method_name(m: CalibMethod) -> String {
    match m {
        CalibMethod::Mse => "mse".into(),
        CalibMethod::MinMax => "minmax".into(),
        CalibMethod::Percentile(p) => format!("percentile:{p}"),
    }
}

fn pass_times(w: &mut String, out: &CompileOutput) {
    let count = out.stages.len();
    let _ = writeln!(w, "passes:");
    let mut total = 0.0;
    for r in &out.records {
        let ms = r.record.time.as_secs_f64() * 1e3;
        total += ms;
        let stage = match r.stage {
            Some(i) if count > 1 => format!(
                "stage {}/{count} {}",
                i + 1,
                out.stages.get(i).map_or("", |s| s.info.label.as_str())
            ),
            _ => String::new(),
        };
        let _ = writeln!(w, "  {:<22} {:>10.2} ms  {stage}", r.record.name, ms);
    }
    let _ = writeln!(w, "  {:<22} {:>10.2} ms", "total", total);
}

/// One line per stage of a multi-stage schedule: its bits, the weight sparsity per
/// layer of its fake-quant graph, and whether a hook fine-tuned it.
fn stages(w: &mut String, out: &CompileOutput) {
    if out.stages.len() < 2 {
        return;
    }
    let _ = writeln!(w, "stages (fake-quant graphs):");
    for s in &out.stages {
        let zeros: Vec<String> = s
            .layers
            .iter()
            .map(|l| {
                l.sparsity
                    .map_or("-".to_string(), |z| format!("{:.1}%", 100.0 * z))
            })
            .collect();
        let _ = writeln!(
            w,
            "  {}/{} {:<6} zero weights per layer [{}]; {} activation quantizers; fine-tuned: {}",
            s.info.index + 1,
            s.info.count,
            s.info.label,
            zeros.join(", "),
            s.acts.len(),
            if s.fine_tuned { "yes" } else { "no" }
        );
    }
}

fn layers(w: &mut String, out: &CompileOutput) {
    let Some(last) = out.stages.last() else {
        return;
    };
    let outputs: Vec<&str> = out
        .float
        .nodes()
        .filter(|(_, d)| out.float.outputs().contains(&d.output))
        .map(|(_, d)| d.name.as_str())
        .collect();
    let _ = writeln!(
        w,
        "layers:\n  {:<16} {:>7} {:>10} {:>12} {:>13}",
        "name", "weights", "act in>out", "MACs/image", "zero weights"
    );
    let mut total = 0u64;
    for l in &last.layers {
        total += l.macs;
        let wb = match l.weights {
            WeightBits::Ternary => "t2".to_string(),
            WeightBits::Bits(b) => format!("i{b}"),
        };
        let inb = l.in_bits.map_or("f32".to_string(), |b| format!("a{b}"));
        let outb = if outputs.contains(&l.name.as_str()) {
            "f32".to_string()
        } else {
            format!("a{}", l.out_bits)
        };
        let sparsity = l
            .sparsity
            .map_or("-".to_string(), |s| format!("{:.1}%", 100.0 * s));
        let _ = writeln!(
            w,
            "  {:<16} {:>7} {:>10} {:>12} {:>13}",
            l.name,
            wb,
            format!("{inb}>{outb}"),
            thousands(l.macs),
            sparsity
        );
    }
    let _ = writeln!(
        w,
        "  {:<16} {:>7} {:>10} {:>12}",
        "total",
        "",
        "",
        thousands(total)
    );
}

fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn artifact_summary(w: &mut String, args: &Args, g: &Graph) -> Result<()> {
    let mut ops: BTreeMap<&str, usize> = BTreeMap::new();
    for (_, d) in g.nodes() {
        *ops.entry(d.op.name()).or_default() += 1;
    }
    let ops: Vec<String> = ops.iter().map(|(k, v)| format!("{k} {v}")).collect();
    let size = std::fs::metadata(&args.output)
        .with_context(|| format!("cannot read {}", args.output.display()))?
        .len();
    let input = std::fs::metadata(&args.model).map(|m| m.len()).unwrap_or(0);
    let _ = writeln!(
        w,
        "artifact: {} nodes ({}); {} constants",
        g.order().len(),
        ops.join(", "),
        g.num_consts()
    );
    let _ = writeln!(
        w,
        "size: {} {} bytes; input {} {} bytes ({:.1}x smaller)",
        args.output.display(),
        thousands(size),
        args.model.display(),
        thousands(input),
        input as f64 / size.max(1) as f64
    );
    Ok(())
}
