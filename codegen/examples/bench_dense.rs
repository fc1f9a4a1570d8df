//! Timing harness for the dense conv (a benchmark, not a test). Run with
//! `cargo run --release -p fqc-codegen --example bench_dense`.
//! Prints the median of repeated runs of the JIT and the interpreter on the bundled
//! MNIST CNN at w8a8 (batch 1 and 64) and on a ResNet-20-sized 16→16 3×3 layer at
//! 32×32 (u8×i8 and u4×i8, and u8×i8 followed by an 8-bit `requantize`), and checks
//! the two agree. The JIT runs in a reused [`fqc_codegen::Arena`], as a session would.

#[path = "../tests/common/mod.rs"]
mod common;

use std::path::PathBuf;

use common::*;
use fqc_dataset::LabelledSet;
use fqc_ir::{DType, Graph, Op, Tensor, Window};
use fqc_passes::schedule::{compile_gradual, NoFineTune, Schedule};
use fqc_passes::{PassContext, PipelineOptions, WeightBits};

fn compare(label: &str, g: &Graph, x: &Tensor, reps: usize) {
    let jit = fqc_codegen::compile(g).expect("compiles");
    let want = fqc_ir::interp::run(g, std::slice::from_ref(x)).unwrap();
    assert_eq!(jit.run(std::slice::from_ref(x)).unwrap(), want, "{label}");
    let mut arena = fqc_codegen::Arena::new();
    let tj = median_us(reps, || {
        jit.run_in(&mut arena, std::slice::from_ref(x)).unwrap();
    });
    let ti = median_us(reps, || {
        fqc_ir::interp::run(g, std::slice::from_ref(x)).unwrap();
    });
    println!(
        "{label:<28} jit {tj:>10.1} us  interp {ti:>10.1} us  jit speedup {:>6.2}x",
        ti / tj
    );
}

fn bench_mnist_w8a8() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let model = fqc_onnx::import_file(&root.join("examples/mnist/mnist_cnn.onnx")).unwrap();
    let data = root.join("examples/mnist/mnist10k.npz");
    let train = LabelledSet::load_npz(&data, "train").unwrap();
    let test = LabelledSet::load_npz(&data, "test").unwrap();
    let mut cx = PassContext {
        calib_inputs: vec![train.batch(0, 64)],
        ..PassContext::default()
    };
    let s = Schedule::one_shot(WeightBits::Bits(8), 8);
    let opts = PipelineOptions::default();
    let g = compile_gradual(&model, &s, &mut cx, &mut NoFineTune, &opts)
        .unwrap()
        .graph;
    compare("mnist w8a8 batch 1", &g, &test.batch(0, 1), 301);
    compare("mnist w8a8 batch 64", &g, &test.batch(0, 64), 31);
}

fn layer(xbits: u8, requant: bool) -> (Graph, Tensor) {
    let mut rng = Lcg(7);
    let xdt = int_dtype(false, xbits);
    let wdt = int_dtype(true, 8);
    let mut g = Graph::new("layer");
    let x = quantized_input(&mut g, "x", &[16, 32, 32], xdt);
    let wv = (0..16 * 16 * 9).map(|_| rng.range(-127, 127)).collect();
    let w = konst(&mut g, wdt, &[16, 16, 3, 3], store(wdt, wv));
    let window = Window {
        kernel: [3, 3],
        strides: [1, 1],
        pads: [1, 1, 1, 1],
        dilations: [1, 1],
        ceil_mode: false,
    };
    let y = node(&mut g, Op::QConv { window, group: 1 }, vec![x, w], "conv");
    let y = if requant {
        let odt = int_dtype(false, 8);
        let t = (0..16 * 255).map(|_| rng.range(-40_000, 40_000)).collect();
        let t = konst(&mut g, DType::I32, &[16, 255], store(DType::I32, t));
        let d = konst(&mut g, DType::I8, &[16], store(DType::I8, vec![0; 16]));
        let rq = Op::Requantize {
            dtype: odt,
            scale: fqc_ir::F32(1.0),
        };
        node(&mut g, rq, vec![y, t, d], "requant")
    } else {
        y
    };
    g.set_outputs(vec![y]);
    let input = random_input(&mut rng, 1, &[16, 32, 32], xdt);
    (g, input)
}

fn bench_resnet20_layer() {
    for bits in [8, 4] {
        let (g, x) = layer(bits, false);
        compare(&format!("16->16 3x3 32x32 u{bits}xi8"), &g, &x, 101);
    }
    let (g, x) = layer(8, true);
    compare("  + requantize to u8", &g, &x, 101);
}

fn main() {
    bench_mnist_w8a8();
    bench_resnet20_layer();
}
