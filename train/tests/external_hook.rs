//! The external fine-tuning hook on the bundled MNIST CNN: each stage is exported as
//! QDQ ONNX that onnx's checker accepts and ONNX Runtime runs (the fixture script
//! `scripts/edit_weights.py` checks both), the export computes what fqc's fake-quant
//! stage computes, edits the script makes to weights and activation scales reach the
//! stages and the final graph, and structure changes, failing commands, missing outputs
//! and changed zero points are clear errors.

use std::path::{Path, PathBuf};

use fqc_dataset::LabelledSet;
use fqc_ir::{Graph, Op, Scale, Tensor, ValueDef};
use fqc_passes::schedule::{compile_gradual, CompileOutput, NoFineTune, Schedule};
use fqc_passes::{PassContext, PassError, PipelineOptions, QuantConfig};
use fqc_train::external::ExternalCommand;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn model() -> Graph {
    fqc_onnx::import_file(&root().join("examples/mnist/mnist_cnn.onnx")).expect("model imports")
}

fn data() -> LabelledSet {
    LabelledSet::load_npz(&root().join("examples/mnist/mnist10k.npz"), "train").expect("data")
}

fn context() -> PassContext {
    let d = data();
    PassContext {
        config: QuantConfig::default(),
        calib_inputs: vec![d.batch(0, 64), d.batch(64, 128)],
        ..PassContext::default()
    }
}

fn work_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("fqc_external_hook_{}_{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn script_cmd(mode: &str) -> String {
    let script = root().join("train/tests/scripts/edit_weights.py");
    format!("python3 '{}' {mode} {{in}} {{out}}", script.display())
}

fn run(
    schedule: &str,
    hook: &mut dyn fqc_passes::schedule::FineTune,
) -> (Result<CompileOutput, PassError>, PassContext) {
    run_opts(schedule, hook, &PipelineOptions::default())
}

fn run_opts(
    schedule: &str,
    hook: &mut dyn fqc_passes::schedule::FineTune,
    opts: &PipelineOptions,
) -> (Result<CompileOutput, PassError>, PassContext) {
    let mut cx = context();
    let s = Schedule::parse(schedule).unwrap();
    let out = compile_gradual(&model(), &s, &mut cx, hook, opts);
    (out, cx)
}

/// Stops after the last stage (before `integerize`, whose `dce` clears the ranges).
fn fake_quant_only() -> PipelineOptions {
    PipelineOptions {
        stop_after: Some("fuse-activation".into()),
        ..PipelineOptions::default()
    }
}

fn layer_weight<'g>(g: &'g Graph, layer: &str) -> &'g Tensor {
    let (_, d) = g.nodes().find(|(_, d)| d.name == layer).expect("layer");
    g.const_tensor(d.inputs[1]).expect("const weight")
}

/// The per-channel weight scales of `layer` in a fake-quant graph.
fn weight_scales(g: &Graph, layer: &str) -> Vec<f32> {
    let (_, d) = g.nodes().find(|(_, d)| d.name == layer).expect("layer");
    let ValueDef::Node(dq) = g.value(d.inputs[1]).def else {
        panic!("the weight of {layer} is not dequantized")
    };
    let wq = g.node(dq).inputs[0];
    let Some(Scale::Channel { scales, .. }) = &g.ty(wq).scale else {
        panic!("no per-channel scales on {layer}")
    };
    g.const_tensor(*scales).unwrap().as_f32().unwrap().to_vec()
}

fn msg(e: PassError) -> String {
    match e {
        PassError::Usage(m) => m,
        other => panic!("expected a usage error, got {other}"),
    }
}

#[test]
fn edits_reach_the_stages_and_the_final_graph() {
    let dir = work_dir("edit");
    let mut hook = ExternalCommand::new(script_cmd("edit"), &dir).unwrap();
    let (out, cx) = run("w8a8,w4a6", &mut hook);
    let out = out.expect("compiles with the hook");
    let (base, base_cx) = run_opts("w8a8,w4a6", &mut NoFineTune, &fake_quant_only());
    let base = base.unwrap();
    let (hooked_fq, hooked_cx) = {
        let mut again = ExternalCommand::new(script_cmd("edit"), work_dir("edit2")).unwrap();
        let (o, c) = run_opts("w8a8,w4a6", &mut again, &fake_quant_only());
        let _ = std::fs::remove_dir_all(again.work_dir());
        (o.unwrap(), c)
    };

    // Both stages' files are there, and both stages were fine-tuned.
    assert!(dir.join("stage1_w8a8.onnx").is_file());
    assert!(dir.join("stage2_w4a6.out.onnx").is_file());
    assert_eq!(out.stages.len(), 2);
    assert!(out.stages.iter().all(|s| s.fine_tuned), "{:?}", out.stages);
    assert!(base.stages.iter().all(|s| !s.fine_tuned));

    // conv1's latent weights: the folded master's, ×1.5 per stage.
    assert_eq!(hook.history.len(), 2);
    let conv1 = hook.history[0].latent.clone();
    assert_eq!(conv1.len(), 1, "{:?}", hook.history[0]);
    // fc1's weight scales: the stage's ×1.1 (the last stage's are in the final graph).
    assert_eq!(
        hook.history[1].weight_scales.len(),
        1,
        "{:?}",
        hook.history[1]
    );
    let fc1 = &hook.history[1].weight_scales[0];
    let fq = out.fake_quant.as_ref().unwrap();
    let want: Vec<f32> = weight_scales(base.fake_quant.as_ref().unwrap(), fc1)
        .iter()
        .map(|s| s * 1.1)
        .collect();
    for (w, g) in want.iter().zip(weight_scales(fq, fc1)) {
        assert!((w - g).abs() <= 1e-6 * w, "{w} {g}");
    }
    let master = layer_weight(&out.float, &conv1[0]).as_f32().unwrap();
    let latent = cx.latent[&conv1[0]].as_f32().unwrap();
    for (m, l) in master.iter().zip(latent) {
        assert!((m * 2.25 - l).abs() <= 1e-5 * (1.0 + m.abs()), "{m} {l}");
    }
    // conv2's bias: the folded master's + 0.25 per stage, in the final float master.
    assert_eq!(hook.history[0].biases.len(), 1, "{:?}", hook.history[0]);
    let conv2 = &hook.history[0].biases[0];
    assert_eq!(&hook.history[1].biases[0], conv2);
    let bias = |g: &Graph| -> Vec<f32> {
        let (_, d) = g.nodes().find(|(_, d)| &d.name == conv2).expect("conv2");
        g.const_tensor(d.inputs[2])
            .unwrap()
            .as_f32()
            .unwrap()
            .to_vec()
    };
    for (b0, b2) in bias(&base.float).iter().zip(bias(&out.float)) {
        assert!((b0 + 0.5 - b2).abs() < 1e-5, "{b0} {b2}");
    }
    // Other layers untouched.
    for (name, t) in &cx.latent {
        if name != &conv1[0] {
            assert_eq!(t, &base_cx.latent[name], "{name}");
        }
    }

    // One activation range changed per stage (the same point), its scale ×1.25 each
    // time, and the final fake-quant graph quantizes that point at that scale.
    let (v, r1) = hook.history[0].ranges[0];
    assert_eq!(hook.history[0].ranges.len(), 1);
    let (v2, r2) = hook.history[1].ranges[0];
    assert_eq!(v, v2);
    // Stage 1's calibration (a one-stage w8a8 compile calibrates the same way; the
    // two-stage compile without the hook re-calibrates at 6 bits in stage 2).
    let (_, w8_cx) = run_opts("w8a8", &mut NoFineTune, &fake_quant_only());
    let calibrated = w8_cx.ranges[&v];
    assert!(calibrated.lo >= 0.0, "an unsigned point: {calibrated:?}");
    let s8 = calibrated.hi / 255.0;
    assert!(
        ((r1.hi / 255.0) / (s8 * 1.25) - 1.0).abs() < 1e-5,
        "{r1:?} {calibrated:?}"
    );
    assert!(
        ((r2.hi / 63.0) / (r1.hi / 63.0 * 1.25) - 1.0).abs() < 1e-5,
        "{r2:?} {r1:?}"
    );
    assert_eq!(hooked_cx.ranges[&v], r2);
    assert_eq!(Some(fq), hooked_fq.fake_quant.as_ref(), "deterministic");
    // (`fuse-activation` moved the quantizer of the ReLU's output before the ReLU, so
    // it is found by its scale.)
    let scales = |g: &Graph| -> Vec<f32> {
        g.nodes()
            .filter_map(|(_, d)| match d.op {
                Op::Quantize { scale, .. } => Some(scale.0),
                _ => None,
            })
            .collect()
    };
    let want = r2.hi / 63.0;
    assert!(scales(fq).contains(&want), "{want} in {:?}", scales(fq));
    assert!(!scales(base.fake_quant.as_ref().unwrap()).contains(&want));

    // The integer graph computes what the fine-tuned fake-quant graph computes, which
    // differs from the graph without the hook.
    let x = data().batch(0, 8);
    let y = fqc_ir::run(&out.graph, std::slice::from_ref(&x)).unwrap();
    let yf = fqc_ir::run(fq, std::slice::from_ref(&x)).unwrap();
    let yb = fqc_ir::run(base.fake_quant.as_ref().unwrap(), &[x]).unwrap();
    assert_ne!(yf, yb);
    let (a, b) = (y[0].as_f32().unwrap(), yf[0].as_f32().unwrap());
    let diff = a.iter().zip(b).fold(0f32, |m, (p, q)| m.max((p - q).abs()));
    assert!(
        diff < 1e-3 * b.iter().fold(1f32, |m, v| m.max(v.abs())),
        "{diff}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_export_computes_the_fake_quant_stage_in_onnx_runtime() {
    let dir = work_dir("identity");
    std::fs::create_dir_all(&dir).unwrap();
    let x = data().batch(0, 16);
    let xin = dir.join("x.npy");
    std::fs::write(&xin, fqc_dataset::npy::write(&x)).unwrap();
    let yout = dir.join("y.npy");
    let cmd = format!(
        "{} --input '{}' --ort-out '{}'",
        script_cmd("identity"),
        xin.display(),
        yout.display()
    );
    for schedule in ["w8a8", "w4a6", "wta4"] {
        let mut hook = ExternalCommand::new(&cmd, &dir).unwrap();
        let (out, _) = run(schedule, &mut hook);
        let out = out.expect("compiles");
        assert!(
            !out.stages[0].fine_tuned,
            "an unchanged model changes nothing"
        );
        let ort = fqc_dataset::npy::read(&std::fs::read(&yout).unwrap()).unwrap();
        let fq = out.fake_quant.as_ref().unwrap();
        let ours = fqc_ir::run(fq, std::slice::from_ref(&x)).unwrap();
        let (a, b) = (ours[0].as_f32().unwrap(), ort.as_f32().unwrap());
        assert_eq!(ours[0].shape, ort.shape);
        let scale = a.iter().fold(0f32, |m, v| m.max(v.abs()));
        let diff = a.iter().zip(b).fold(0f32, |m, (p, q)| m.max((p - q).abs()));
        assert!(
            diff <= 1e-4 * scale.max(1.0),
            "{schedule}: ORT vs fqc fake-quant max |diff| {diff} (logit scale {scale})"
        );
        let _ = std::fs::remove_file(&yout);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

fn expect_error(mode: &str) -> String {
    let dir = work_dir(mode);
    let mut hook = ExternalCommand::new(script_cmd(mode), &dir).unwrap();
    let (out, _) = run("w8a8,w4a6", &mut hook);
    let e = msg(out.expect_err("the hook fails"));
    let _ = std::fs::remove_dir_all(&dir);
    assert!(e.starts_with("fine-tuning stage 1/2 (w8a8): "), "{e}");
    assert!(!e.contains('\n'), "one line: {e}");
    e
}

#[test]
fn a_structure_change_is_refused() {
    let e = expect_error("drop-node");
    assert!(e.contains("structure of the model changed"), "{e}");
    assert!(e.contains("Relu"), "names the node: {e}");
}

#[test]
fn a_failing_command_is_reported_with_its_stderr() {
    let e = expect_error("fail");
    assert!(e.contains("exit status 3"), "{e}");
    assert!(e.contains("boom: the training script crashed"), "{e}");
    assert!(e.contains("edit_weights.py"), "names the command: {e}");
}

#[test]
fn a_missing_output_is_reported() {
    let e = expect_error("no-output");
    assert!(
        e.contains("wrote no") && e.contains("stage1_w8a8.out.onnx"),
        "{e}"
    );
}

#[test]
fn a_changed_zero_point_is_refused() {
    let e = expect_error("zero-point");
    assert!(e.contains("zero point") && e.contains("zero_point"), "{e}");
}

#[test]
fn the_template_must_name_in_and_out() {
    let e = ExternalCommand::new("python3 train.py {in}", work_dir("tmpl")).unwrap_err();
    assert!(e.to_string().contains("{out}"), "{e}");
}

#[test]
fn paths_are_shell_quoted() {
    let hook = ExternalCommand::new("cp {in} {out}", work_dir("quote")).unwrap();
    let line = hook.command_line(Path::new("/a b/it's.onnx"), Path::new("/o.onnx"));
    assert_eq!(line, r"cp '/a b/it'\''s.onnx' '/o.onnx'");
}
