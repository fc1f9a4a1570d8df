//! Gradual requantization (METHOD.md, "Gradual quantization with fine-tuning hooks"):
//! the driver that steps a float graph down a [`Schedule`] of bit widths, calling a
//! [`FineTune`] hook after every stage, and ends with the integer-only graph.
//!
//! [`compile_gradual`]:
//!
//! 1. folds BatchNorm once into a float *master* (`fold-batchnorm`), so every stage and
//!    the hook see the folded form, and sets `cx.latent` to the master's Conv/Gemm
//!    weights — the latent float weights kept beside the quantized view;
//! 2. for every stage: sets `cx.config` from the stage's bits (with the per-layer
//!    overrides), runs `calibrate` → `quantize-weights` (which quantizes `cx.latent`) →
//!    `quantize-activations` → `fuse-activation` on a fresh copy of the master, and calls
//!    the hook; if the hook changed latent weights, ranges, weight scales or biases, the
//!    stage is re-quantized from them (without re-calibrating); biases the hook set are
//!    written into the master first, so later stages and the integer graph use them;
//! 3. after the last stage runs the rest of [`crate::pipeline`] — `integerize`,
//!    `const-fold`, `dce` — on the last fake-quant graph.
//!
//! Every stage is built from the master, never from the previous stage's quantized
//! graph, so quantization error does not compound: a stage differs from the previous one
//! only by its bits and by what the hook changed. Activation ranges a hook sets are kept
//! in later stages (a learned clip is in real units, valid at any bit width); weight
//! scales a hook sets are kept while the layer's weight bits stay the same (a weight's
//! full-scale range depends on its bits: ternary's `0.86·σ` vs `max|w|` at 8 bits).
//! Copies of the master share constant payloads (`Arc`), so a stage costs no weight copy.
//!
//! The sub-pipelines are [`PassManager`]s of the same pass structs [`crate::pipeline`]
//! uses; names in [`PipelineOptions`] are those of the full pipeline. `print_after`
//! prints after that pass in every stage; `stop_after` a per-stage pass stops in the last
//! stage, before its hook, and returns the graph at that point — except
//! `fuse-activation`, which ends a stage: the last stage completes, hook included, and its
//! fake-quant graph is returned.
//!
//! A single-stage schedule is one-shot post-training quantization: with [`NoFineTune`]
//! it produces exactly what [`crate::pipeline`] produces at that stage's bits.

mod bias;
mod handle;
mod inspect;
mod spec;

use std::collections::{BTreeMap, HashMap, HashSet};

use fqc_ir::{Graph, Op, Value};

use crate::calibrate::Calibrate;
use crate::context::{PassContext, Range, WeightBits};
use crate::fold_batchnorm::FoldBatchNorm;
use crate::fuse_activation::FuseActivation;
use crate::quantize_activations::QuantizeActivations;
use crate::quantize_weights::QuantizeWeights;
use crate::{Pass, PassError, PassManager, PassRecord, PipelineOptions, Result};

pub use handle::{ActPoint, FineTune, LayerInfo, LayerKind, NoFineTune, StageHandle, StageInfo};
pub use inspect::{act_points, layer_infos, weight_sparsity};
pub use spec::{write_bits, LayerOverride, Schedule, StageBits, DEFAULT_SCHEDULE};

/// A pass run, with the stage it ran in (`None`: once, before or after the stages).
#[derive(Debug, Clone)]
pub struct StageRecord {
    pub stage: Option<usize>,
    pub record: PassRecord,
}

/// What one stage produced (for the compile report and for hooks' callers).
#[derive(Debug, Clone)]
pub struct StageSummary {
    pub info: StageInfo,
    /// Layers as quantized at the end of the stage (after the hook).
    pub layers: Vec<LayerInfo>,
    pub acts: Vec<ActPoint>,
    /// Whether the hook changed anything (and the stage was re-quantized).
    pub fine_tuned: bool,
    /// Notes passes made during the stage.
    pub notes: Vec<String>,
}

/// The result of [`compile_gradual`].
#[derive(Debug, Clone)]
pub struct CompileOutput {
    /// The integer-only graph, or the graph where `stop_after` stopped.
    pub graph: Graph,
    /// The float master (after BN folding).
    pub float: Graph,
    /// The last stage's fake-quant graph (None if stopped before the first stage ended).
    pub fake_quant: Option<Graph>,
    pub records: Vec<StageRecord>,
    pub stages: Vec<StageSummary>,
    /// The pass `stop_after` stopped at, if it stopped before the end of the pipeline.
    pub stopped_after: Option<String>,
}

/// The passes run on every stage, in pipeline order (after `fold-batchnorm`).
const STAGE_PASSES: [&str; 4] = [
    "calibrate",
    "quantize-weights",
    "quantize-activations",
    LAST_STAGE_PASS,
];
/// The pass that ends a stage: stopping after it returns the last stage's fake-quant
/// graph after its hook.
const LAST_STAGE_PASS: &str = "fuse-activation";

/// Called after every stage with its summary, its fake-quant graph and that graph made
/// integer-only by the pipeline's tail (what a schedule ending at this stage would
/// produce): to save or evaluate every stage of one gradual run.
pub type StageObserver<'a> = dyn FnMut(&StageSummary, &Graph, &Graph) -> Result<()> + 'a;

/// Runs `schedule` over `float_graph` (see the module docs).
pub fn compile_gradual(
    float_graph: &Graph,
    schedule: &Schedule,
    cx: &mut PassContext,
    hook: &mut dyn FineTune,
    opts: &PipelineOptions,
) -> Result<CompileOutput> {
    compile_gradual_observed(float_graph, schedule, cx, hook, opts, None)
}

/// [`compile_gradual`], calling `observe` after every completed stage (see
/// [`StageObserver`]). Integerizing a stage copy uses the stage's context as the final
/// tail does; its notes and records are dropped, so the output is the same as without
/// an observer.
pub fn compile_gradual_observed(
    float_graph: &Graph,
    schedule: &Schedule,
    cx: &mut PassContext,
    hook: &mut dyn FineTune,
    opts: &PipelineOptions,
    mut observe: Option<&mut StageObserver<'_>>,
) -> Result<CompileOutput> {
    let full = crate::pipeline();
    let names = full.names();
    check_names(&names, opts)?;
    if schedule.stages.is_empty() {
        return Err(PassError::Usage("the schedule has no stages".into()));
    }
    let schedule = resolve_layer_names(float_graph, schedule)?;
    crate::finite::check_constants(float_graph)?;
    crate::finite::check_calibration(&cx.calib_inputs)?;
    let base = cx.config.clone();
    let mut out = CompileOutput {
        graph: float_graph.clone(),
        float: Graph::default(),
        fake_quant: None,
        records: Vec::new(),
        stages: Vec::new(),
        stopped_after: None,
    };

    // 1. The float master.
    let mut master = float_graph.clone();
    let fold: Vec<Box<dyn Pass>> = vec![Box::new(FoldBatchNorm)];
    if run_sub(fold, &mut master, cx, opts, true, None, &mut out.records)? {
        out.stopped_after = opts.stop_after.clone();
        out.float = master.clone();
        out.graph = master;
        return Ok(out);
    }
    cx.latent = inspect::layer_weights(&master);
    out.float = master.clone();

    // 2. The stages.
    let count = schedule.stages.len();
    let mut pinned_ranges: BTreeMap<Value, Range> = BTreeMap::new();
    let mut pinned_scales: BTreeMap<String, (WeightBits, Vec<f32>)> = BTreeMap::new();
    let mut fake_quant = master.clone();
    for i in 0..count {
        cx.config = schedule.stage_config(i, &base);
        let info = StageInfo {
            index: i,
            count,
            config: cx.config.clone(),
            label: schedule.stages[i].to_string(),
        };
        // Stopping after the last per-stage pass still completes the stage (its hook).
        let last = i + 1 == count && opts.stop_after.as_deref() != Some(LAST_STAGE_PASS);
        let notes_before = cx.notes.len();
        // Weight scales set by a hook hold while the layer's bits stay the same.
        pinned_scales.retain(|layer, (bits, _)| cx.config.weights_for(layer) == *bits);
        let mut g = master.clone();
        let stopped = run_stage(
            &mut g,
            cx,
            opts,
            last,
            Some(i),
            true,
            &pinned_ranges,
            &pinned_scales,
            &mut out.records,
        )?;
        if stopped {
            out.stopped_after = opts.stop_after.clone();
            out.graph = g;
            return Ok(out);
        }
        let layers = inspect::layer_infos(&master, &g, &cx.config, &cx.batchnorm_folded);
        let acts = inspect::act_points(&master, cx);
        let mut scales: BTreeMap<String, Vec<f32>> = inspect::current_scales(&master, &g);
        let mut scales_set = Vec::new();
        let mut biases: BTreeMap<String, Vec<f32>> = BTreeMap::new();
        let mut handle = StageHandle {
            float: &master,
            fake_quant: &g,
            cx,
            layers: &layers,
            acts: &acts,
            scales: &mut scales,
            scales_set: &mut scales_set,
            biases: &mut biases,
            changed: false,
        };
        let before: HashMap<Value, Range> = handle.cx.ranges.clone();
        hook.after_stage(&info, &mut handle)?;
        let fine_tuned = handle.changed();
        if fine_tuned {
            for (v, r) in &cx.ranges {
                if before.get(v) != Some(r) {
                    pinned_ranges.insert(*v, *r);
                }
            }
            for layer in scales_set {
                if let Some(s) = scales.remove(&layer) {
                    pinned_scales.insert(layer.clone(), (cx.config.weights_for(&layer), s));
                }
            }
            for (layer, b) in &biases {
                let kind = layers
                    .iter()
                    .find(|l| &l.name == layer)
                    .map_or(handle::LayerKind::Conv, |l| l.kind);
                bias::set_layer_bias(&mut master, layer, kind, b)?;
            }
            g = master.clone();
            run_stage(
                &mut g,
                cx,
                opts,
                false,
                Some(i),
                false,
                &pinned_ranges,
                &pinned_scales,
                &mut out.records,
            )?;
        }
        let mut notes: Vec<String> = cx.notes.drain(notes_before..).collect();
        if count > 1 {
            for n in &notes {
                cx.notes
                    .push(format!("stage {}/{count} ({}): {n}", i + 1, info.label));
            }
        } else {
            cx.notes.extend(notes.iter().cloned());
        }
        notes.dedup();
        out.stages.push(StageSummary {
            layers: inspect::layer_infos(&master, &g, &cx.config, &cx.batchnorm_folded),
            acts: inspect::act_points(&master, cx),
            info,
            fine_tuned,
            notes,
        });
        if let (Some(observe), Some(summary)) = (observe.as_mut(), out.stages.last()) {
            let mut integer = g.clone();
            let notes_len = cx.notes.len();
            let quiet = PipelineOptions::default();
            run_sub(
                tail_passes(&names),
                &mut integer,
                cx,
                &quiet,
                false,
                Some(i),
                &mut Vec::new(),
            )?;
            cx.notes.truncate(notes_len);
            observe(summary, &g, &integer)?;
        }
        fake_quant = g;
    }
    out.float = master.clone();
    out.fake_quant = Some(fake_quant.clone());
    if opts.stop_after.as_deref() == Some(LAST_STAGE_PASS) {
        out.stopped_after = opts.stop_after.clone();
        out.graph = fake_quant;
        return Ok(out);
    }

    // 3. The tail of the pipeline: integerize, const-fold, dce.
    let mut g = fake_quant;
    let tail = tail_passes(&names);
    if run_sub(tail, &mut g, cx, opts, true, None, &mut out.records)?
        && names.last().copied() != opts.stop_after.as_deref()
    {
        out.stopped_after = opts.stop_after.clone();
    }
    out.graph = g;
    Ok(out)
}

/// Runs one stage's passes on `g` (a fresh master copy): with `calibrate` on the first
/// run of a stage, without on the re-quantization after a hook; then re-applies the
/// pinned ranges and weight scales. Returns whether `stop_after` stopped it.
#[allow(clippy::too_many_arguments)]
fn run_stage(
    g: &mut Graph,
    cx: &mut PassContext,
    opts: &PipelineOptions,
    may_stop: bool,
    stage: Option<usize>,
    calibrate: bool,
    pinned_ranges: &BTreeMap<Value, Range>,
    pinned_scales: &BTreeMap<String, (WeightBits, Vec<f32>)>,
    records: &mut Vec<StageRecord>,
) -> Result<bool> {
    if calibrate {
        let calib: Vec<Box<dyn Pass>> = vec![Box::new(Calibrate)];
        let stopped = run_sub(calib, g, cx, opts, may_stop, stage, records)?;
        cx.ranges
            .extend(pinned_ranges.iter().map(|(v, r)| (*v, *r)));
        if stopped {
            return Ok(true);
        }
    }
    let mut passes: Vec<Box<dyn Pass>> = vec![Box::new(QuantizeWeights)];
    if !pinned_scales.is_empty() {
        passes.push(Box::new(inspect::SetWeightScales {
            scales: pinned_scales
                .iter()
                .map(|(k, (_, s))| (k.clone(), s.clone()))
                .collect(),
            latent: cx.latent.clone(),
        }));
    }
    passes.push(Box::new(QuantizeActivations));
    passes.push(Box::new(FuseActivation));
    run_sub(passes, g, cx, opts, may_stop, stage, records)
}

/// Runs `passes` as a [`PassManager`] with the parts of `opts` that name them (a
/// `stop_after` only when `may_stop`); returns whether it stopped early.
fn run_sub(
    passes: Vec<Box<dyn Pass>>,
    g: &mut Graph,
    cx: &mut PassContext,
    opts: &PipelineOptions,
    may_stop: bool,
    stage: Option<usize>,
    records: &mut Vec<StageRecord>,
) -> Result<bool> {
    let pm = PassManager::new(passes);
    let names = pm.names();
    let stop_after = opts
        .stop_after
        .clone()
        .filter(|s| may_stop && names.contains(&s.as_str()));
    let sub = PipelineOptions {
        print_after: opts
            .print_after
            .iter()
            .filter(|p| names.contains(&p.as_str()))
            .cloned()
            .collect(),
        print_all: opts.print_all,
        stop_after: stop_after.clone(),
    };
    let recs = pm.run(g, cx, &sub)?;
    let stopped = stop_after.is_some_and(|s| recs.last().is_some_and(|r| r.name == s));
    records.extend(recs.into_iter().map(|record| StageRecord { stage, record }));
    Ok(stopped)
}

/// The passes of the full pipeline after `fuse-activation` (integerize, const-fold,
/// dce), as the same structs [`crate::pipeline`] builds.
fn tail_passes(names: &[&str]) -> Vec<Box<dyn Pass>> {
    let mut passes: Vec<Box<dyn Pass>> = Vec::new();
    for n in names.iter().skip_while(|n| **n != LAST_STAGE_PASS).skip(1) {
        match *n {
            "integerize" => passes.push(Box::new(crate::integerize::Integerize)),
            "const-fold" => passes.push(Box::new(crate::const_fold::ConstFold)),
            "dce" => passes.push(Box::new(crate::dce::Dce)),
            _ => {}
        }
    }
    passes
}

/// Unknown pass names in `opts` are an error before anything runs.
fn check_names(names: &[&str], opts: &PipelineOptions) -> Result<()> {
    for n in opts.print_after.iter().chain(opts.stop_after.iter()) {
        if !names.contains(&n.as_str()) {
            return Err(PassError::Usage(format!(
                "unknown pass `{n}` (passes: {})",
                names.join(", ")
            )));
        }
    }
    debug_assert!(STAGE_PASSES.iter().all(|p| names.contains(p)));
    Ok(())
}

/// The schedule with every per-layer override keyed by its Conv/Gemm node name: a name
/// is a node name, or the layer's weight name with or without `.weight` (`conv1`).
fn resolve_layer_names(g: &Graph, schedule: &Schedule) -> Result<Schedule> {
    let layers: Vec<(String, Option<String>)> = g
        .nodes()
        .filter(|(_, d)| matches!(d.op, Op::Conv { .. } | Op::Gemm { .. }))
        .map(|(_, d)| {
            let w = d.inputs.get(1).and_then(|&w| g.value(w).name.clone());
            (d.name.clone(), w)
        })
        .collect();
    let mut out = schedule.clone();
    out.per_layer.clear();
    let mut seen = HashSet::new();
    for (name, overrides) in &schedule.per_layer {
        let hits: Vec<&String> = layers
            .iter()
            .filter(|(n, w)| {
                n == name
                    || w.as_deref() == Some(name.as_str())
                    || w.as_deref().and_then(|w| w.strip_suffix(".weight")) == Some(name.as_str())
            })
            .map(|(n, _)| n)
            .collect();
        match hits.as_slice() {
            [one] if seen.insert((*one).clone()) => {
                out.per_layer.insert((*one).clone(), overrides.clone());
            }
            [one] => {
                return Err(PassError::Usage(format!(
                    "layer `{one}` is overridden twice (as `{name}` and another name)"
                )))
            }
            _ => {
                return Err(PassError::Usage(format!(
                    "--layer `{name}`: {} (layers: {})",
                    if hits.is_empty() {
                        "no such conv/gemm layer"
                    } else {
                        "names more than one layer"
                    },
                    layers
                        .iter()
                        .map(|(n, w)| match w {
                            Some(w) => format!("{n} [{w}]"),
                            None => n.clone(),
                        })
                        .collect::<Vec<_>>()
                        .join(", ")
                )))
            }
        }
    }
    Ok(out)
}
