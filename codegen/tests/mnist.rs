//! JIT ≡ integer interpreter on the bundled MNIST CNN, compiled by `fqc_passes` at
//! ternary weights / 4-bit activations and at w8a8, on 64 test images (and batch 1).

use std::path::PathBuf;

use fqc_dataset::LabelledSet;
use fqc_ir::Graph;
use fqc_passes::schedule::{compile_gradual, NoFineTune, Schedule};
use fqc_passes::{PassContext, PipelineOptions, WeightBits};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn compiled(weights: WeightBits, act_bits: u8) -> Graph {
    let model = fqc_onnx::import_file(&root().join("examples/mnist/mnist_cnn.onnx")).unwrap();
    let train = LabelledSet::load_npz(&root().join("examples/mnist/mnist10k.npz"), "train")
        .expect("data loads");
    let mut cx = PassContext {
        calib_inputs: vec![train.batch(0, 64)],
        ..PassContext::default()
    };
    let s = Schedule::one_shot(weights, act_bits);
    let out = compile_gradual(
        &model,
        &s,
        &mut cx,
        &mut NoFineTune,
        &PipelineOptions::default(),
    )
    .expect("compiles");
    out.graph
}

fn check(g: &Graph, expect_forms: &[&str]) {
    let test = LabelledSet::load_npz(&root().join("examples/mnist/mnist10k.npz"), "test")
        .expect("data loads");
    let jit = fqc_codegen::compile(g).expect("JIT compiles the model");
    let forms: Vec<&str> = jit.kernel_forms().iter().map(|(_, f)| *f).collect();
    for f in expect_forms {
        assert!(forms.contains(f), "expected a {f} kernel in {forms:?}");
    }
    for (s, e) in [(0, 64), (100, 101)] {
        let x = test.batch(s, e);
        let want = fqc_ir::interp::run(g, std::slice::from_ref(&x)).unwrap();
        let got = jit.run(&[x]).unwrap();
        assert_eq!(got, want, "images {s}..{e}");
    }
}

#[test]
fn mnist_ternary_a4_matches_interpreter() {
    check(
        &compiled(WeightBits::Ternary, 4),
        &["ternary", "requantize", "pool"],
    );
}

#[test]
fn mnist_w8a8_matches_interpreter() {
    check(
        &compiled(WeightBits::Bits(8), 8),
        &["dense", "requantize", "pool"],
    );
}
