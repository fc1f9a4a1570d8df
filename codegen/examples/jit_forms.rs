//! Per-layer timing of every convolution form (a measurement, not a test): the native
//! AVX2 kernel (paths A and B) against the JIT'd dense and ternary forms, on single
//! `qconv` layers shaped like those of the MNIST CNN, ResNet-20 and ResNet-18, at
//! ternary weights × u4 activations and 8-bit weights × u8 activations, batch 1.
//! Prints a Markdown table (JIT compile ms, median µs, GMAC/s) and checks every form
//! against the interpreter. Run with
//! `cargo run --release -p fqc-codegen --example jit_forms` (`-- quick` for fewer
//! repetitions).

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::Instant;

use common::*;
use fqc_codegen::{CompileOptions, ConvForm};
use fqc_ir::{DType, Graph, Op, Tensor, Window};

/// `(label, cin, cout, hw, k, stride, pad, group)`.
type Shape = (&'static str, usize, usize, usize, usize, u64, u64, usize);

const LAYERS: [Shape; 13] = [
    ("mnist conv1 1→32 3×3 28²", 1, 32, 28, 3, 1, 1, 1),
    ("mnist conv2 32→64 3×3 14²", 32, 64, 14, 3, 1, 1, 1),
    ("r20 16→16 3×3 32²", 16, 16, 32, 3, 1, 1, 1),
    ("r20 16→32 3×3 s2 32²", 16, 32, 32, 3, 2, 1, 1),
    ("r20 32→32 3×3 16²", 32, 32, 16, 3, 1, 1, 1),
    ("r20 64→64 3×3 8²", 64, 64, 8, 3, 1, 1, 1),
    ("r20 16→32 1×1 s2 32²", 16, 32, 32, 1, 2, 0, 1),
    ("r18 3→64 7×7 s2 224²", 3, 64, 224, 7, 2, 3, 1),
    ("r18 64→64 3×3 56²", 64, 64, 56, 3, 1, 1, 1),
    ("r18 128→128 3×3 28²", 128, 128, 28, 3, 1, 1, 1),
    ("r18 256→256 3×3 14²", 256, 256, 14, 3, 1, 1, 1),
    ("r18 512→512 3×3 7²", 512, 512, 7, 3, 1, 1, 1),
    ("depthwise 32 3×3 32²", 32, 32, 32, 3, 1, 1, 32),
];

fn layer(s: &Shape, ternary: bool) -> (Graph, Tensor, usize) {
    let &(_, cin, cout, hw, k, stride, pad, group) = s;
    let mut rng = Lcg(11);
    let (xdt, wdt, wr) = if ternary {
        (int_dtype(false, 4), DType::Ternary, 1)
    } else {
        (int_dtype(false, 8), int_dtype(true, 8), 127)
    };
    let cg = cin / group;
    let mut g = Graph::new("layer");
    let x = quantized_input(&mut g, "x", &[cin, hw, hw], xdt);
    let wv = (0..cout * cg * k * k).map(|_| rng.range(-wr, wr)).collect();
    let w = konst(&mut g, wdt, &[cout, cg, k, k], store(wdt, wv));
    let window = Window {
        kernel: [k as u64; 2],
        strides: [stride; 2],
        pads: [pad; 4],
        dilations: [1, 1],
        ceil_mode: false,
    };
    let op = Op::QConv {
        window,
        group: group as u64,
    };
    let y = node(&mut g, op, vec![x, w], "conv");
    let oh = (hw + 2 * pad as usize - k) / stride as usize + 1;
    g.set_outputs(vec![y]);
    let macs = cout * oh * oh * cg * k * k;
    (g, random_input(&mut rng, 1, &[cin, hw, hw], xdt), macs)
}

fn main() {
    let quick = std::env::args().any(|a| a == "quick");
    println!("AVX2: {}\n", is_avx2());
    println!("| layer | weights × acts | form | used | compile ms | median µs | GMAC/s |");
    println!("|---|---|---|---|---|---|---|");
    for s in &LAYERS {
        for ternary in [true, false] {
            let (g, x, macs) = layer(s, ternary);
            let want = fqc_ir::interp::run(&g, std::slice::from_ref(&x)).unwrap();
            let forms = [
                ConvForm::NativeA,
                ConvForm::NativeB,
                ConvForm::Dense,
                ConvForm::Ternary,
            ];
            for f in forms {
                if f == ConvForm::Ternary && !ternary {
                    continue;
                }
                let opts = CompileOptions {
                    force_form: Some(f),
                    ..CompileOptions::default()
                };
                let t0 = Instant::now();
                let jit = fqc_codegen::compile_with(&g, &opts).unwrap();
                let tc = t0.elapsed().as_secs_f64() * 1e3;
                let used = jit.kernel_forms()[0].1;
                let mut arena = fqc_codegen::Arena::new();
                let got = jit.run_in(&mut arena, std::slice::from_ref(&x)).unwrap();
                assert_eq!(got, want, "{} {f:?}", s.0);
                let reps = if quick {
                    5
                } else {
                    (2e8 / macs as f64).clamp(5.0, 301.0) as usize
                };
                let t = median_us(reps, || {
                    jit.run_in(&mut arena, std::slice::from_ref(&x)).unwrap();
                });
                let wa = if ternary { "ternary × u4" } else { "i8 × u8" };
                println!(
                    "| {} | {wa} | {f:?} | {used} | {tc:.1} | {t:.1} | {:.1} |",
                    s.0,
                    macs as f64 / t / 1e3
                );
            }
        }
    }
}
