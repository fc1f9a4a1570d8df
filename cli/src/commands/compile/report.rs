//! The report `fqc compile` prints after a compile: time per pass, one line per stage
//! and per layer (bits, MACs, weight sparsity), where the boundary float ops are, the
//! artifact's size next to the input's, and `integer-only: yes|no`. It only reads the
//! compile's output; writing the artifact first lets it report the size on disk.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use anyhow::Result;
use fqc_ir::Graph;
use fqc_passes::schedule::{CompileOutput, Schedule};
use fqc_passes::{CalibMethod, PassContext, WeightBits};

use super::Args;

/// Builds the report (see the module docs) of a compile whose artifact, `size` bytes,
/// has been written.
pub(super) fn report(
    args: &Args,
    schedule: &Schedule,
    out: &CompileOutput,
    cx: &PassContext,
    calib_note: &str,
    size: usize,
) -> Result<String> {
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
    artifact_summary(w, args, &out.graph, size);
    let _ = writeln!(w, "integer-only: {}", boundary.verdict());
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

fn artifact_summary(w: &mut String, args: &Args, g: &Graph, size: usize) {
    let mut ops: BTreeMap<&str, usize> = BTreeMap::new();
    for (_, d) in g.nodes() {
        *ops.entry(d.op.name()).or_default() += 1;
    }
    let ops: Vec<String> = ops.iter().map(|(k, v)| format!("{k} {v}")).collect();
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
        thousands(size as u64),
        args.model.display(),
        thousands(input),
        input as f64 / size.max(1) as f64
    );
}
