//! JIT ≡ integer interpreter on the bundled MNIST CNN, compiled by `fqc_passes` at
//! ternary weights / 4-bit activations and at w8a8, on 64 test images (and batch 1),
//! with the automatic choice of forms (native where AVX2 is) and with the JIT'd dense
//! form forced.

use std::path::PathBuf;

mod common;

use fqc_codegen::{CompileOptions, ConvForm};
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

/// Checks the automatic choice (its forms include `expect_forms`: `(with AVX2,
/// without)`) and the JIT'd forms forced, against the interpreter.
fn check(g: &Graph, expect_forms: (&[&str], &[&str])) {
    let test = LabelledSet::load_npz(&root().join("examples/mnist/mnist10k.npz"), "test")
        .expect("data loads");
    let jit = fqc_codegen::compile(g).expect("JIT compiles the model");
    let forms: Vec<&str> = jit.kernel_forms().iter().map(|(_, f)| *f).collect();
    let expect = if common::is_avx2() {
        expect_forms.0
    } else {
        expect_forms.1
    };
    for f in expect {
        assert!(forms.contains(f), "expected a {f} kernel in {forms:?}");
    }
    let opts = CompileOptions {
        force_form: Some(ConvForm::Dense),
        ..CompileOptions::default()
    };
    let dense = fqc_codegen::compile_with(g, &opts).expect("JIT compiles the model");
    for (s, e) in [(0, 64), (100, 101)] {
        let x = test.batch(s, e);
        let want = fqc_ir::interp::run(g, std::slice::from_ref(&x)).unwrap();
        let got = jit.run(std::slice::from_ref(&x)).unwrap();
        assert_eq!(got, want, "images {s}..{e}");
        assert_eq!(dense.run(&[x]).unwrap(), want, "images {s}..{e}, dense");
    }
}

#[test]
fn mnist_ternary_a4_matches_interpreter() {
    check(
        &compiled(WeightBits::Ternary, 4),
        (
            &[
                // The trained model's 4-bit thresholds have exact affine forms.
                "native-a+requantize(affine)",
                "native-pool",
                "native-gemv-a",
                "requantize",
            ],
            &["ternary", "requantize", "pool"],
        ),
    );
}

#[test]
fn mnist_w8a8_matches_interpreter() {
    check(
        &compiled(WeightBits::Bits(8), 8),
        (
            // 8-bit outputs: the convolutions' 255 thresholds by the affine form (the
            // gemv's short rows keep the JIT'd `requantize`).
            &[
                "native-b+requantize(affine)",
                "native-pool",
                "native-gemv-b",
                "requantize",
            ],
            &["dense", "requantize", "pool"],
        ),
    );
}
