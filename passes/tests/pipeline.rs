//! The pipeline up to the fake-quant graph on the bundled MNIST CNN: structure (verifies,
//! no relu left, every layer weight quantized, input normalisation not split), calibration
//! (a positive range for every activation point), and post-training accuracy of the
//! fake-quant model against the float model on the first 500 test digits.

mod common;

use std::path::PathBuf;

use fqc_dataset::LabelledSet;
use fqc_ir::{BinaryOp, Graph, Op, Tensor};
use fqc_passes::quantize_activations::activation_points;
use fqc_passes::{pipeline, PassContext, PipelineOptions, QuantConfig, WeightBits};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn model() -> Graph {
    fqc_onnx::import_file(&root().join("examples/mnist/mnist_cnn.onnx")).expect("model imports")
}

fn data(split: &str) -> LabelledSet {
    LabelledSet::load_npz(&root().join("examples/mnist/mnist10k.npz"), split).expect("data loads")
}

fn context(weights: WeightBits, act_bits: u8) -> PassContext {
    PassContext {
        config: QuantConfig {
            weights,
            act_bits,
            ..QuantConfig::default()
        },
        calib_inputs: vec![data("train").batch(0, 64)],
        ..PassContext::default()
    }
}

fn run_to(g: &mut Graph, cx: &mut PassContext, stop: &str) {
    let opts = PipelineOptions {
        stop_after: Some(stop.into()),
        ..PipelineOptions::default()
    };
    pipeline()
        .run(g, cx, &opts)
        .expect("pipeline runs and verifies");
}

/// Top-1 accuracy (percent) of `g` on the first `n` test digits.
/// Correct answers of `g` on the first `n` test digits.
fn accuracy(g: &Graph, n: usize, run: impl Fn(&Graph, &[Tensor]) -> Vec<Tensor>) -> usize {
    let test = data("test");
    let mut correct = 0;
    for start in (0..n).step_by(100) {
        let end = (start + 100).min(n);
        let out = run(g, &[test.batch(start, end)]);
        let pred = common::argmax_rows(&out[0]);
        correct += pred
            .iter()
            .zip(&test.y[start..end])
            .filter(|(&p, &y)| p as i64 == y)
            .count();
    }
    correct
}

fn float_run(g: &Graph, x: &[Tensor]) -> Vec<Tensor> {
    fqc_ir::run(g, x).expect("float model runs")
}

/// Checks the fake-quant structure and returns its test accuracy on `n` digits.
fn fake_quant_accuracy(weights: WeightBits, act_bits: u8, n: usize) -> (usize, Vec<String>) {
    let mut g = model();
    let mut cx = context(weights, act_bits);
    run_to(&mut g, &mut cx, "fuse-activation");
    assert!(
        g.nodes()
            .all(|(_, d)| !matches!(d.op, Op::Relu | Op::Clip { .. })),
        "a relu survived fusion"
    );
    let mut layers = 0;
    for (_, d) in g.nodes() {
        if matches!(d.op, Op::Conv { .. } | Op::Gemm { .. }) {
            layers += 1;
            let w = d.inputs[1];
            let p = g
                .nodes()
                .find(|(_, p)| p.output == w)
                .expect("weight is computed");
            assert_eq!(
                p.1.op,
                Op::Dequantize,
                "weight of {} is not dequantized",
                d.name
            );
            let q = p.1.inputs[0];
            assert!(
                g.is_const(q) && g.ty(q).dtype.is_low_bit(),
                "weight of {} is not a quantized constant",
                d.name
            );
            let want = match weights {
                WeightBits::Ternary => fqc_ir::DType::Ternary,
                WeightBits::Bits(b) => fqc_ir::DType::int(true, b).unwrap(),
            };
            assert_eq!(g.ty(q).dtype, want);
        }
    }
    assert_eq!(layers, 4);
    // The input normalisation stays whole: the input quantizer reads the `div` result.
    let quantizers: Vec<_> = g
        .nodes()
        .filter(|(_, d)| matches!(d.op, Op::Quantize { .. }))
        .collect();
    assert_eq!(quantizers.len(), 4, "input + three hidden activations");
    let first = quantizers[0].1.inputs[0];
    let norm = g
        .nodes()
        .find(|(_, d)| d.output == first)
        .expect("quantizer input computed");
    assert_eq!(norm.1.op, Op::Binary(BinaryOp::Div));
    assert!(g
        .nodes()
        .all(|(_, d)| !(matches!(d.op, Op::Quantize { .. }) && d.inputs[0] == g.inputs()[0])));
    (accuracy(&g, n, common::run_checked), cx.notes.clone())
}

#[test]
fn calibration_gives_every_activation_point_a_positive_range() {
    let mut g = model();
    let mut cx = context(WeightBits::Bits(8), 8);
    run_to(&mut g, &mut cx, "calibrate");
    let points = activation_points(&g);
    // normalised input, relu1, relu2, relu_fc; not the logits, not the raw input.
    assert_eq!(points.len(), 4);
    assert!(!points.contains(&g.inputs()[0]) && !points.contains(&g.outputs()[0]));
    for v in points {
        let r = cx.ranges.get(&v).expect("every point has a range");
        assert!(r.hi > 0.0 && r.lo <= 0.0, "range {r:?}");
    }
    assert!(
        cx.notes.iter().any(|n| n.contains("lowest:")),
        "{:?}",
        cx.notes
    );
}

/// Post-training quantization of the MNIST CNN, exactly: calibration, quantization and
/// the fake-quant interpreter are deterministic, so each count is what this pipeline
/// gives (first 500 test digits): the float model 490, w8a8 490, w4a4 491, and ternary
/// weights without fine-tuning 73 — the collapse `fqc compile` warns about.
#[test]
fn mnist_post_training_accuracy() {
    let n = 500;
    let fp = accuracy(&model(), n, float_run);
    let (w8a8, notes) = fake_quant_accuracy(WeightBits::Bits(8), 8, n);
    let (w4a4, _) = fake_quant_accuracy(WeightBits::Bits(4), 4, n);
    let (t2a4, _) = fake_quant_accuracy(WeightBits::Ternary, 4, n);
    println!(
        "MNIST first {n} test digits: FP {fp}, w8a8 {w8a8}, w4a4 {w4a4}, w2(ternary)a4 {t2a4}"
    );
    for note in notes {
        println!("{note}");
    }
    assert_eq!((fp, w8a8, w4a4, t2a4), (490, 490, 491, 73));
}

#[test]
fn full_pipeline_keeps_w8a8_accuracy() {
    let n = 500;
    let fp = accuracy(&model(), n, float_run);
    let mut g = model();
    let mut cx = context(WeightBits::Bits(8), 8);
    let records = pipeline()
        .run(&mut g, &mut cx, &PipelineOptions::default())
        .expect("the whole pipeline runs and verifies");
    let names: Vec<&str> = records.iter().map(|r| r.name).collect();
    assert_eq!(names.last(), Some(&"dce"));
    assert!(g
        .nodes()
        .all(|(_, d)| !matches!(d.op, Op::Conv { .. } | Op::Gemm { .. } | Op::Relu)));
    let acc = accuracy(&g, n, |g, x| fqc_ir::run(g, x).expect("integer graph runs"));
    assert_eq!(
        (fp, acc),
        (490, 490),
        "integer w8a8 {acc} vs FP {fp} of {n}"
    );
}
