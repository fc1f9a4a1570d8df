//! Layers whose weights do not stay in L2 across tiles (over 384 KiB a group) are
//! computed block by block over chunks of tiles (`native::NativeConv::blocks_outer`):
//! JIT ≡ integer interpreter on such a layer, with the direct packing (stride 1) and
//! with the im2col panel (stride 2), each over several chunks of tiles, with and
//! without the fused `requantize`, on one thread and with the channels split.

mod common;

use common::*;
use fqc_ir::{DType, Graph, Op, Window, F32};

/// `qconv` 160 → 160 channels, 3×3, ternary weights (460 KB packed), u4 input with a
/// 16×16 output (8 tiles: chunks of 7 and 1), then a 4-bit `requantize`; outputs the levels, and the accumulators too when
/// `keep_acc` (then the `requantize` is not fused).
fn big_conv(stride: u64, keep_acc: bool) -> (Graph, Vec<fqc_ir::Tensor>) {
    let (c, hw) = (160, 16 * stride as usize);
    let mut rng = Lcg(7 + stride);
    let xdt = int_dtype(false, 4);
    let mut g = Graph::new("big");
    let x = quantized_input(&mut g, "x", &[c, hw, hw], xdt);
    let wv: Vec<i64> = (0..c * c * 9).map(|_| rng.range(-1, 1)).collect();
    let w = konst(
        &mut g,
        DType::Ternary,
        &[c, c, 3, 3],
        store(DType::Ternary, wv),
    );
    let window = Window {
        kernel: [3, 3],
        strides: [stride, stride],
        pads: [1, 1, 1, 1],
        dilations: [1, 1],
        ceil_mode: false,
    };
    let acc = node(&mut g, Op::QConv { window, group: 1 }, vec![x, w], "conv");
    let odt = int_dtype(false, 4);
    let (t, d) = thresholds(&mut rng, c, odt, 15 * 9 * c as i64 / 8);
    let t = konst(&mut g, DType::I32, &[c, 15], store(DType::I32, t));
    let d = konst(&mut g, DType::I8, &[c], store(DType::I8, d));
    let rq = Op::Requantize {
        dtype: odt,
        scale: F32(1.0),
    };
    let y = node(&mut g, rq, vec![acc, t, d], "requant");
    g.set_outputs(if keep_acc { vec![acc, y] } else { vec![y] });
    let input = random_input(&mut rng, 2, &[c, hw, hw], xdt);
    (g, vec![input])
}

#[test]
fn large_weights_computed_block_by_block() {
    for (stride, keep_acc) in [(1, false), (1, true), (2, false)] {
        let (g, inputs) = big_conv(stride, keep_acc);
        let want = fqc_ir::interp::run(&g, &inputs).expect("interpreter runs");
        let jit = fqc_codegen::compile(&g).expect("JIT compiles");
        if is_avx2() {
            let form = jit.kernel_forms()[0].1;
            assert!(form.starts_with("native-a"), "{form}");
        }
        for threads in [1, 2] {
            let mut arena = fqc_codegen::Arena::new();
            arena
                .split_channels_from(threads, 0)
                .expect("helper threads start");
            let got = jit.run_in(&mut arena, &inputs).expect("JIT runs");
            assert!(
                got == want,
                "stride {stride}, acc kept {keep_acc}, {threads} thread(s)"
            );
        }
    }
}
