//! Gradual requantization: schedule parsing (good and bad), per-layer overrides reaching
//! the stage configs and the quantized graph, the fine-tuning hook's contract (called
//! once per stage with the stage's config; latent weights, ranges and weight scales it
//! sets are what the next stage quantizes), and `NoFineTune` reproducing the one-shot
//! pipeline at the last stage's bits. On the bundled MNIST CNN.

use std::path::PathBuf;

use fqc_dataset::LabelledSet;
use fqc_ir::{DType, Graph, Op, Scale, Tensor, TensorData};
use fqc_passes::schedule::{
    compile_gradual, compile_gradual_observed, weight_sparsity, FineTune, LayerOverride,
    NoFineTune, Schedule, StageBits, StageHandle, StageInfo, DEFAULT_SCHEDULE,
};
use fqc_passes::{
    pipeline, LayerBits, PassContext, PassError, PipelineOptions, QuantConfig, Range, WeightBits,
};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn model() -> Graph {
    fqc_onnx::import_file(&root().join("examples/mnist/mnist_cnn.onnx")).expect("model imports")
}

fn context() -> PassContext {
    let data = LabelledSet::load_npz(&root().join("examples/mnist/mnist10k.npz"), "train")
        .expect("data loads");
    PassContext {
        calib_inputs: vec![data.batch(0, 32)],
        ..PassContext::default()
    }
}

fn usage_msg(e: PassError) -> String {
    match e {
        PassError::Usage(m) => m,
        other => panic!("expected a usage error, got {other}"),
    }
}

#[test]
fn parses_good_schedules() {
    let s = Schedule::parse(DEFAULT_SCHEDULE).unwrap();
    let want = [
        (WeightBits::Bits(8), 8),
        (WeightBits::Bits(4), 6),
        (WeightBits::Bits(3), 4),
        (WeightBits::Ternary, 4),
    ];
    let got: Vec<_> = s
        .stages
        .iter()
        .map(|st| (st.weights, st.act_bits))
        .collect();
    assert_eq!(got, want);
    assert_eq!(s.to_string(), "w8a8,w4a6,w3a4,wta4");
    let t = Schedule::parse(" wta2 , w2a8 ").unwrap();
    assert_eq!(
        t.stages,
        vec![
            StageBits {
                weights: WeightBits::Ternary,
                act_bits: 2
            },
            StageBits {
                weights: WeightBits::Ternary,
                act_bits: 8
            }
        ]
    );
    assert_eq!(Schedule::parse("w5a3").unwrap().stages.len(), 1);
}

#[test]
fn rejects_bad_schedules_with_the_offending_piece() {
    for (spec, piece) in [
        ("", "empty schedule"),
        ("w9a4", "`w9a4`"),
        ("w8a8,w4a1", "stage 2"),
        ("w8a8,w4a1", "activation bits must be 2..8"),
        ("w4", "needs both"),
        ("a4", "needs both"),
        ("x4a4", "expected `wXaY`"),
        ("w8a8,", "stage 2"),
        ("w4a4a4", "activation bits"),
        ("w1a4", "weight bits"),
        ("wa4", "weight bits"),
    ] {
        let msg = usage_msg(Schedule::parse(spec).expect_err(spec));
        assert!(
            msg.contains(piece),
            "`{spec}`: `{piece}` missing from: {msg}"
        );
    }
    for (spec, piece) in [
        ("conv1", "expected NAME=wXaY"),
        ("=w8a8", "name is empty"),
        ("conv1=w9", "weight bits"),
        ("conv1=", "expected `wXaY`"),
        ("conv1=b8", "expected `wXaY`"),
    ] {
        let msg = usage_msg(Schedule::parse_layer(spec).expect_err(spec));
        assert!(
            msg.contains(piece),
            "`{spec}`: `{piece}` missing from: {msg}"
        );
    }
}

#[test]
fn layer_overrides_reach_weights_for_and_acts_for() {
    let mut s = Schedule::parse("w4a6,wta4").unwrap();
    s.add_layer_override("/conv1/Conv=w8a8").unwrap();
    s.add_layer_override("/fc2/Gemm=a8").unwrap();
    s.add_layer_override("a=b=wt").unwrap();
    assert_eq!(
        s.per_layer.get("a=b"),
        Some(&vec![LayerOverride {
            bits: LayerBits {
                weights: Some(WeightBits::Ternary),
                acts: None
            },
            stages: None
        }])
    );
    let base = QuantConfig {
        input_bits: 7,
        ..QuantConfig::default()
    };
    for (i, (w, a)) in [(WeightBits::Bits(4), 6), (WeightBits::Ternary, 4)]
        .into_iter()
        .enumerate()
    {
        let c = s.stage_config(i, &base);
        assert_eq!(c.input_bits, 7);
        assert_eq!(c.weights_for("/conv1/Conv"), WeightBits::Bits(8));
        assert_eq!(c.acts_for("/conv1/Conv"), 8);
        assert_eq!(c.weights_for("/fc2/Gemm"), w);
        assert_eq!(c.acts_for("/fc2/Gemm"), 8);
        assert_eq!(c.weights_for("/conv2/Conv"), w);
        assert_eq!(c.acts_for("/conv2/Conv"), a);
    }
}

#[test]
fn staged_layer_overrides_hold_in_their_stages_only() {
    let mut s = Schedule::parse("w8a8,w4a6,wta4").unwrap();
    s.add_layer_override("conv1=w8@1-2").unwrap();
    s.add_layer_override("fc2=a8@3").unwrap();
    s.add_layer_override("fc2=w6").unwrap();
    s.add_layer_override("fc2=w5@2").unwrap();
    assert_eq!(
        s.to_string(),
        "w8a8,w4a6,wta4 conv1=w8@1-2 fc2=a8@3 fc2=w6 fc2=w5@2"
    );
    let base = QuantConfig::default();
    let w = |i: usize, layer: &str| s.stage_config(i, &base).weights_for(layer);
    let a = |i: usize, layer: &str| s.stage_config(i, &base).acts_for(layer);
    assert_eq!(w(0, "conv1"), WeightBits::Bits(8));
    assert_eq!(w(1, "conv1"), WeightBits::Bits(8));
    assert_eq!(w(2, "conv1"), WeightBits::Ternary);
    assert_eq!(a(1, "conv1"), 6);
    // fc2: w6 in every stage, except stage 2 where the later `w5@2` wins; a8 in stage 3.
    assert_eq!(
        (0..3).map(|i| w(i, "fc2")).collect::<Vec<_>>(),
        [
            WeightBits::Bits(6),
            WeightBits::Bits(5),
            WeightBits::Bits(6)
        ]
    );
    assert_eq!((0..3).map(|i| a(i, "fc2")).collect::<Vec<_>>(), [8, 6, 8]);

    for (spec, piece) in [
        ("conv1=w8@0", "counted from 1"),
        ("conv1=w8@3-2", "counted from 1"),
        ("conv1=w8@x", "counted from 1"),
        ("conv1=w8@", "counted from 1"),
        ("conv1=w8@1-4", "stage 4 is past the schedule's 3 stage(s)"),
        ("conv1=w9@1", "weight bits"),
    ] {
        let msg = usage_msg(s.clone().add_layer_override(spec).expect_err(spec));
        assert!(
            msg.contains(piece),
            "`{spec}`: `{piece}` missing from: {msg}"
        );
    }
}

#[test]
fn a_layer_held_at_8_bits_until_a_stage_is_ternary_after_it() {
    let opts = PipelineOptions {
        stop_after: Some("fuse-activation".into()),
        ..PipelineOptions::default()
    };
    let (w8, t) = (WeightBits::Bits(8), WeightBits::Ternary);
    for (held, expected, stages) in [("1", DType::Ternary, [w8, t]), ("1-2", DType::I8, [w8, w8])] {
        let mut s = Schedule::parse("w8a8,wta4").unwrap();
        s.add_layer_override(&format!("conv1=w8@{held}")).unwrap();
        let mut seen = StageWeights::default();
        let out = compile_gradual(&model(), &s, &mut context(), &mut seen, &opts).unwrap();
        assert_eq!(weight_dtype(&out.graph, "/conv1/Conv"), expected, "@{held}");
        assert_eq!(weight_dtype(&out.graph, "/conv2/Conv"), DType::Ternary);
        assert_eq!(seen.conv1, stages, "@{held}");
    }
}

/// Records conv1's weight bits at every stage.
#[derive(Default)]
struct StageWeights {
    conv1: Vec<WeightBits>,
}

impl FineTune for StageWeights {
    fn after_stage(&mut self, _: &StageInfo, h: &mut StageHandle<'_>) -> fqc_passes::Result<()> {
        self.conv1.push(h.layer("/conv1/Conv").unwrap().weights);
        Ok(())
    }
}

/// The dtype of the quantized weight layer `layer` reads in a fake-quant graph.
fn weight_dtype(g: &Graph, layer: &str) -> DType {
    let (_, node) = g.nodes().find(|(_, d)| d.name == layer).expect("layer");
    let dq = node.inputs[1];
    let (_, dqn) = g.nodes().find(|(_, d)| d.output == dq).expect("dequantize");
    assert_eq!(dqn.op, Op::Dequantize);
    g.ty(dqn.inputs[0]).dtype
}

/// The per-channel scales of layer `layer`'s weight in a fake-quant graph.
fn weight_scales(g: &Graph, layer: &str) -> Vec<f32> {
    let (_, node) = g.nodes().find(|(_, d)| d.name == layer).expect("layer");
    let (_, dqn) = g.nodes().find(|(_, d)| d.output == node.inputs[1]).unwrap();
    let Some(Scale::Channel { scales, .. }) = g.ty(dqn.inputs[0]).scale else {
        panic!("per-channel weight scale expected");
    };
    g.const_tensor(scales).unwrap().as_f32().unwrap().to_vec()
}

#[test]
fn layer_overrides_by_alias_reach_the_quantized_graph() {
    let mut s = Schedule::parse("wta4").unwrap();
    s.add_layer_override("conv1=w8a8").unwrap();
    s.add_layer_override("fc2.weight=w6").unwrap();
    let opts = PipelineOptions {
        stop_after: Some("fuse-activation".into()),
        ..PipelineOptions::default()
    };
    let out = compile_gradual(&model(), &s, &mut context(), &mut NoFineTune, &opts).unwrap();
    assert_eq!(out.stopped_after.as_deref(), Some("fuse-activation"));
    assert_eq!(weight_dtype(&out.graph, "/conv1/Conv"), DType::I8);
    assert_eq!(weight_dtype(&out.graph, "/conv2/Conv"), DType::Ternary);
    assert_eq!(
        weight_dtype(&out.graph, "/fc2/Gemm"),
        DType::int(true, 6).unwrap()
    );
    let mut bad = Schedule::parse("wta4").unwrap();
    bad.add_layer_override("conv9=w8a8").unwrap();
    let e = compile_gradual(&model(), &bad, &mut context(), &mut NoFineTune, &opts).unwrap_err();
    let msg = usage_msg(e);
    assert!(
        msg.contains("conv9") && msg.contains("/conv1/Conv"),
        "{msg}"
    );
}

/// Records every call; zeroes conv2's latent weights at stage 1, widens an activation
/// range at stage 0, and sets fc1's weight scales at the last stage.
#[derive(Default)]
struct Recorder {
    calls: Vec<(usize, usize, WeightBits, u8, WeightBits)>,
    widened: Option<(fqc_ir::Value, Range)>,
    fc1_scales: Vec<f32>,
    conv2_sparsity_seen: Vec<Option<f64>>,
}

impl FineTune for Recorder {
    fn after_stage(
        &mut self,
        stage: &StageInfo,
        h: &mut StageHandle<'_>,
    ) -> fqc_passes::Result<()> {
        self.calls.push((
            stage.index,
            stage.count,
            stage.config.weights,
            stage.config.act_bits,
            h.layer("/conv2/Conv").unwrap().weights,
        ));
        assert_eq!(h.config(), &stage.config);
        assert!(h
            .float_graph()
            .nodes()
            .all(|(_, d)| !matches!(d.op, Op::BatchNorm { .. })));
        assert_eq!(h.layers().len(), 4);
        self.conv2_sparsity_seen
            .push(h.layer("/conv2/Conv").unwrap().sparsity);
        match stage.index {
            0 => {
                let act = h.activations().iter().find(|a| !a.is_input).unwrap().value;
                let r = h.range(act).unwrap();
                let wide = Range {
                    lo: r.lo,
                    hi: r.hi * 3.0,
                };
                h.set_range(act, wide)?;
                self.widened = Some((act, wide));
            }
            1 => {
                let w = h.latent("/conv2/Conv").unwrap().clone();
                let zeros = Tensor {
                    shape: w.shape.clone(),
                    data: TensorData::F32(vec![0.0; w.numel()]),
                };
                // Checks come before anything changes.
                assert!(h
                    .set_latent("/conv2/Conv", Tensor::f32(vec![1], vec![0.0]).unwrap())
                    .is_err());
                assert!(h.set_latent("/nope", zeros.clone()).is_err());
                h.set_latent("/conv2/Conv", zeros)?;
            }
            _ => {
                let n = h.weight_scales("/fc1/Gemm").unwrap().len();
                assert!(h.set_weight_scales("/fc1/Gemm", vec![0.5; n + 1]).is_err());
                assert!(h.set_weight_scales("/fc1/Gemm", vec![-1.0; n]).is_err());
                self.fc1_scales = (0..n).map(|i| 0.01 + i as f32 * 1e-4).collect();
                h.set_weight_scales("/fc1/Gemm", self.fc1_scales.clone())?;
            }
        }
        Ok(())
    }
}

#[test]
fn hook_is_called_per_stage_and_its_updates_are_quantized() {
    let s = Schedule::parse("w8a8,w4a6,wta4").unwrap();
    let mut cx = context();
    let mut hook = Recorder::default();
    let opts = PipelineOptions {
        stop_after: Some("fuse-activation".into()),
        ..PipelineOptions::default()
    };
    let out = compile_gradual(&model(), &s, &mut cx, &mut hook, &opts).unwrap();
    assert_eq!(
        hook.calls,
        vec![
            (0, 3, WeightBits::Bits(8), 8, WeightBits::Bits(8)),
            (1, 3, WeightBits::Bits(4), 6, WeightBits::Bits(4)),
            (2, 3, WeightBits::Ternary, 4, WeightBits::Ternary),
        ]
    );
    // Before the zeroing, conv2's weights were not all zero.
    assert!(hook.conv2_sparsity_seen[1].unwrap() < 0.5);
    // The zeroed latent weights: re-quantized in stage 1 and all-zero ternary in stage 2.
    assert_eq!(out.stages.len(), 3);
    assert!(out.stages[1].fine_tuned);
    assert_eq!(hook.conv2_sparsity_seen[2], Some(1.0));
    let fq = out.fake_quant.as_ref().unwrap();
    assert_eq!(weight_dtype(fq, "/conv2/Conv"), DType::Ternary);
    assert_eq!(weight_sparsity(fq, "/conv2/Conv"), Some(1.0));
    assert!(weight_sparsity(fq, "/conv1/Conv").unwrap() < 1.0);
    // The widened range survives later calibrations.
    let (v, r) = hook.widened.unwrap();
    assert_eq!(cx.ranges.get(&v), Some(&r));
    // The scales set at the last stage are the final graph's.
    assert_eq!(weight_scales(&out.graph, "/fc1/Gemm"), hook.fc1_scales);
}

#[test]
fn no_fine_tune_equals_the_one_shot_pipeline() {
    let s = Schedule::parse("w8a8,wta4").unwrap();
    let mut cx = context();
    let out = compile_gradual(
        &model(),
        &s,
        &mut cx,
        &mut NoFineTune,
        &PipelineOptions::default(),
    )
    .unwrap();
    assert!(out.stopped_after.is_none());
    assert!(out.stages.iter().all(|st| !st.fine_tuned));
    let mut one = context();
    one.config = QuantConfig {
        weights: WeightBits::Ternary,
        act_bits: 4,
        ..QuantConfig::default()
    };
    let mut g = model();
    pipeline()
        .run(&mut g, &mut one, &PipelineOptions::default())
        .unwrap();
    assert_eq!(fqc_ir::text::print(&out.graph), fqc_ir::text::print(&g));
    let x = context().calib_inputs[0].clone();
    assert_eq!(
        fqc_ir::run(&out.graph, std::slice::from_ref(&x)).unwrap(),
        fqc_ir::run(&g, &[x]).unwrap()
    );
}

#[test]
fn stop_after_and_unknown_passes() {
    let s = Schedule::parse("w8a8,wta4").unwrap();
    let opts = PipelineOptions {
        stop_after: Some("fold-batchnorm".into()),
        ..PipelineOptions::default()
    };
    let mut hook = Recorder::default();
    let out = compile_gradual(&model(), &s, &mut context(), &mut hook, &opts).unwrap();
    assert_eq!(out.stopped_after.as_deref(), Some("fold-batchnorm"));
    assert!(hook.calls.is_empty());
    assert!(out.stages.is_empty());
    assert!(out
        .graph
        .nodes()
        .all(|(_, d)| !matches!(d.op, Op::BatchNorm { .. })));
    let printed = PipelineOptions {
        print_after: vec!["quantize-weights".into()],
        ..PipelineOptions::default()
    };
    let out = compile_gradual(&model(), &s, &mut context(), &mut NoFineTune, &printed).unwrap();
    let prints: Vec<_> = out
        .records
        .iter()
        .filter(|r| r.record.printed.is_some())
        .map(|r| (r.stage, r.record.name))
        .collect();
    assert_eq!(
        prints,
        vec![(Some(0), "quantize-weights"), (Some(1), "quantize-weights")]
    );
    for bad in ["fold-batchnrom", "integerise"] {
        let opts = PipelineOptions {
            stop_after: Some(bad.into()),
            ..PipelineOptions::default()
        };
        let e = compile_gradual(&model(), &s, &mut context(), &mut NoFineTune, &opts);
        let msg = usage_msg(e.unwrap_err());
        assert!(msg.contains(bad) && msg.contains("calibrate"), "{msg}");
    }
}

/// The observer sees every stage once, in order; each stage's integer graph is what a
/// schedule ending at that stage produces, and the last one is the compile's output.
#[test]
fn observer_sees_each_stage_integerized() {
    let s = Schedule::parse("w8a8,wta4").unwrap();
    let mut seen: Vec<(String, Graph)> = Vec::new();
    let mut observe = |st: &fqc_passes::schedule::StageSummary, _fq: &Graph, int: &Graph| {
        seen.push((st.info.label.clone(), int.clone()));
        Ok(())
    };
    let out = compile_gradual_observed(
        &model(),
        &s,
        &mut context(),
        &mut NoFineTune,
        &PipelineOptions::default(),
        Some(&mut observe),
    )
    .unwrap();
    let labels: Vec<&str> = seen.iter().map(|(l, _)| l.as_str()).collect();
    assert_eq!(labels, ["w8a8", "wta4"]);
    let plain = compile_gradual(
        &model(),
        &s,
        &mut context(),
        &mut NoFineTune,
        &PipelineOptions::default(),
    )
    .unwrap();
    assert_eq!(
        fqc_ir::text::print(&out.graph),
        fqc_ir::text::print(&plain.graph)
    );
    assert_eq!(
        fqc_ir::text::print(&seen[1].1),
        fqc_ir::text::print(&out.graph)
    );
    let first = compile_gradual(
        &model(),
        &Schedule::parse("w8a8").unwrap(),
        &mut context(),
        &mut NoFineTune,
        &PipelineOptions::default(),
    )
    .unwrap();
    assert_eq!(
        fqc_ir::text::print(&seen[0].1),
        fqc_ir::text::print(&first.graph)
    );
}
