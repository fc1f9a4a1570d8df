//! `fqc compile MODEL -o OUT.fqc`: the float model to an integer-only `.fqc` artifact.
//!
//! Thin over `fqc_passes::schedule::compile_gradual`: this file turns flags into a
//! [`Schedule`] and a [`PassContext`] (calibration batches from `--calib X.npy` or
//! `--data D.npz`), runs the driver with [`NoFineTune`] (post-training quantization;
//! `--schedule` steps the bits down gradually), writes the artifact with
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
use fqc_passes::schedule::{compile_gradual, CompileOutput, NoFineTune, Schedule};
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
}

pub fn main(args: Args) -> Result<()> {
    let schedule = schedule(&args)?;
    let calib = parse_calib_method(&args.calib_method)?;
    refuse_overwrite(&args.model, &args.output)?;
    if args.calib.is_none() && args.data.is_none() {
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
    let out = compile_gradual(&graph, &schedule, &mut cx, &mut NoFineTune, &opts)?;
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
            Schedule::one_shot(w, args.act_bits.unwrap_or(4))
        }
    };
    for l in &args.layers {
        s.add_layer_override(l)?;
    }
    Ok(s)
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
        let set = LabelledSet::load_npz(path, &args.split)?;
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
    let kind = if schedule.stages.len() == 1 {
        "one stage: post-training quantization"
    } else {
        "gradual requantization, no fine-tuning hook"
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
