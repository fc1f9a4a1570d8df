//! Snapshots of the Cranelift IR generated for one small ternary convolution (weights
//! as add/sub of input taps, zero weights skipped, 8-column vector path) and one small
//! dense convolution (in-place 8-column form: tap pairs interleaved word-wise, i16
//! multiply-add pairs, a block of output channels). Review changes with
//! `cargo insta review`.

mod common;

use common::*;
use fqc_codegen::ConvForm;
use fqc_ir::{DType, Graph, Op, Window};

fn conv_graph(wdt: DType, weights: Vec<i64>) -> Graph {
    let mut g = Graph::new("snap");
    let x = quantized_input(&mut g, "x", &[2, 4, 9], int_dtype(false, 4));
    let w = konst(&mut g, wdt, &[2, 2, 1, 2], store(wdt, weights));
    let b = konst(&mut g, DType::I32, &[2], store(DType::I32, vec![5, -7]));
    let window = Window {
        kernel: [1, 2],
        strides: [1, 1],
        pads: [0, 1, 0, 0],
        dilations: [1, 1],
        ceil_mode: false,
    };
    let y = node(
        &mut g,
        Op::QConv { window, group: 1 },
        vec![x, w, b],
        "conv",
    );
    g.set_outputs(vec![y]);
    g
}

/// The IR of `g`'s one kernel, its convolution forced to the JIT form `form` (on an
/// AVX2 machine the automatic choice would be the native kernel, which has no IR).
fn clif(g: &Graph, form: ConvForm) -> String {
    let opts = fqc_codegen::CompileOptions {
        keep_ir: true,
        force_form: Some(form),
    };
    let jit = fqc_codegen::compile_with(g, &opts).expect("compiles");
    assert_eq!(jit.ir().len(), 1, "one kernel");
    jit.ir()[0].1.clone()
}

#[test]
fn ternary_conv_clif() {
    let g = conv_graph(DType::Ternary, vec![1, 0, -1, 1, 0, 0, 1, -1]);
    let text = clif(&g, ConvForm::Ternary);
    // Channel 0 has three non-zero weights, channel 1 two: five i16x8 tap loads.
    assert_eq!(text.matches("uload8x8").count(), 5, "{text}");
    insta::assert_snapshot!("ternary_conv", text);
}

#[test]
fn dense_conv_clif() {
    let g = conv_graph(int_dtype(true, 8), vec![3, -100, 0, 127, -5, 6, 7, -127]);
    let text = clif(&g, ConvForm::Dense);
    assert!(
        text.contains("iadd_pairwise") && text.contains("shuffle") && text.contains("uload8x8"),
        "{text}"
    );
    insta::assert_snapshot!("dense_conv", text);
}
