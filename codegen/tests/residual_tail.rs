//! JIT ≡ integer interpreter on a residual block's tail: `qconv` → `requantize` →
//! `scaled_add` with another tensor → `requantize`, which the native path chains into
//! the convolution's epilogue (`NativeConv::fuse_add`) when the intermediate results
//! have no other reader and the other operand is computed before the convolution;
//! checked on random shapes, bit widths and factors, with 1 to 3 threads, and that
//! the chaining happens exactly when it may.

mod common;

use common::*;
use fqc_ir::{DType, Graph, Op, Window, F32};
use proptest::prelude::*;

/// A residual block's tail: `qconv` → `requantize` → `scaled_add` with another
/// tensor (either operand order) → `requantize`.
#[derive(Clone, Debug)]
struct TailCase {
    n: usize,
    cin: usize,
    m: usize,
    hw: [usize; 2],
    k: usize,
    pad: usize,
    stride: usize,
    x: (bool, u8),
    wbits: Option<u8>,
    mid: (bool, u8),
    other: (bool, u8),
    out: (bool, u8),
    ka: i32,
    kb: i32,
    swap: bool,
    /// Build the other operand after the convolution.
    late: bool,
    /// 1: the first `requantize`, 2: the sum, 3: the accumulators are outputs too
    /// (other values: none).
    keep: u8,
    seed: u64,
}

fn tail_graph(t: &TailCase) -> (Graph, Vec<fqc_ir::Tensor>) {
    let ([h, w], k, pad, stride, m) = (t.hw, t.k, t.pad, t.stride, t.m);
    let (oh, ow) = (
        (h + 2 * pad - k) / stride + 1,
        (w + 2 * pad - k) / stride + 1,
    );
    let mut rng = Lcg(t.seed);
    let (xdt, odt) = (int_dtype(t.x.0, t.x.1), int_dtype(t.other.0, t.other.1));
    let mut g = Graph::new("block");
    let xin = quantized_input(&mut g, "x", &[t.cin, h, w], xdt);
    let mut oin = (!t.late).then(|| quantized_input(&mut g, "o", &[m, oh, ow], odt));
    let (wdt, wr) = match t.wbits {
        None => (DType::Ternary, 1),
        Some(b) => (int_dtype(true, b), (1i64 << (b - 1)) - 1),
    };
    let wv = (0..m * t.cin * k * k).map(|_| rng.range(-wr, wr)).collect();
    let wt = konst(&mut g, wdt, &[m, t.cin, k, k], store(wdt, wv));
    let window = Window {
        kernel: [k as u64; 2],
        strides: [stride as u64; 2],
        pads: [pad as u64; 4],
        dilations: [1, 1],
        ceil_mode: false,
    };
    let acc = node(
        &mut g,
        Op::QConv { window, group: 1 },
        vec![xin, wt],
        "conv",
    );
    let requant = |g: &mut Graph, rng: &mut Lcg, v, dt, span, name: &str| {
        let (th, d) = thresholds(rng, m, dt, span);
        let l = th.len() / m;
        let th = konst(g, DType::I32, &[m, l], store(DType::I32, th));
        let d = konst(g, DType::I8, &[m], store(DType::I8, d));
        let rq = Op::Requantize {
            dtype: dt,
            scale: F32(1.0),
        };
        node(g, rq, vec![v, th, d], name)
    };
    let mdt = int_dtype(t.mid.0, t.mid.1);
    let y1 = requant(
        &mut g,
        &mut rng,
        acc,
        mdt,
        40 * (t.cin * k * k) as i64,
        "rq1",
    );
    let o = *oin.get_or_insert_with(|| quantized_input(&mut g, "o", &[m, oh, ow], odt));
    let i32c =
        |g: &mut Graph, v: i32| konst(g, DType::I32, &[], store(DType::I32, vec![i64::from(v)]));
    let (kav, kbv) = (i32c(&mut g, t.ka), i32c(&mut g, t.kb));
    let operands = if t.swap {
        vec![o, y1, kav, kbv]
    } else {
        vec![y1, o, kav, kbv]
    };
    let sum = node(&mut g, Op::ScaledAdd, operands, "add");
    let span = 130 * (i64::from(t.ka).abs() + i64::from(t.kb).abs()) + 1;
    let y2 = requant(
        &mut g,
        &mut rng,
        sum,
        int_dtype(t.out.0, t.out.1),
        span,
        "rq2",
    );
    g.set_outputs(match t.keep {
        1 => vec![y1, y2],
        2 => vec![sum, y2],
        3 => vec![acc, y2],
        _ => vec![y2],
    });
    let ix = random_input(&mut rng, t.n, &[t.cin, h, w], xdt);
    let io = random_input(&mut rng, t.n, &[m, oh, ow], odt);
    (g, vec![ix, io])
}

/// On an AVX2 machine a residual tail is chained into the convolution (both the i16
/// and the i32 accumulator forms), and not when its other operand comes later.
#[test]
fn residual_tail_chains_into_the_native_convolution() {
    let base = TailCase {
        n: 2,
        cin: 8,
        m: 12,
        hw: [9, 37],
        k: 3,
        pad: 1,
        stride: 1,
        x: (false, 4),
        wbits: None,
        mid: (true, 4),
        other: (false, 4),
        out: (false, 4),
        ka: 7,
        kb: -5,
        swap: false,
        late: false,
        keep: 0,
        seed: 3,
    };
    // Ternary (short i16 accumulators), 8-bit weights (i32), the other operand first.
    let cases = [
        (base.clone(), true),
        // 4-bit levels plus an 8-bit other operand: 4,096 sums per channel, more than
        // the grid form enumerates, so the chain compares the i32 sums.
        (
            TailCase {
                other: (false, 8),
                ..base.clone()
            },
            true,
        ),
        (
            TailCase {
                wbits: Some(8),
                swap: true,
                ..base.clone()
            },
            true,
        ),
        (
            TailCase {
                late: true,
                ..base.clone()
            },
            false,
        ),
        (TailCase { keep: 1, ..base }, false),
    ];
    for (t, chained) in cases {
        let (g, inputs) = tail_graph(&t);
        check_same(&g, &inputs);
        let forms = fqc_codegen::compile(&g).unwrap().kernel_forms().to_vec();
        let found = forms.iter().any(|(_, f)| f.contains("+add+requantize"));
        assert_eq!(found, chained && is_avx2(), "{t:?}: {forms:?}");
        // Two 4-bit operands: the second `requantize` on their 256-point grid.
        let grid = forms
            .iter()
            .any(|(_, f)| f.contains("+add+requantize(grid"));
        let small = t.mid.1 + t.other.1 <= 10;
        assert_eq!(grid, found && small, "{t:?}: {forms:?}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(160))]

    /// A residual block's tail (`tail_graph`), chained into the native convolution's
    /// epilogue when the intermediate results have no other reader and the other
    /// operand is computed first (`late` builds it after the convolution, `keep` makes
    /// an intermediate a graph output: both must stay unchained).
    #[test]
    fn conv_requantize_add_requantize(
        (n, cin, m, h, w) in (1usize..3, 1usize..5, 1usize..20, 1usize..9, 1usize..40),
        (k, pad, stride) in (1usize..4, 0usize..2, 1usize..3),
        (x, wbits, mid, other, out) in (
            (any::<bool>(), 2u8..9),
            prop::option::of(2u8..9),
            (any::<bool>(), 2u8..9),
            (any::<bool>(), 2u8..9),
            (any::<bool>(), 2u8..9),
        ),
        (ka, kb, swap) in (-3000i32..3000, -3000i32..3000, any::<bool>()),
        // Mostly the chainable shape: the other operand first, no extra outputs.
        (late, keep, seed) in (prop::bool::weighted(0.2), 0u8..10, any::<u64>()),
    ) {
        prop_assume!(h + 2 * pad >= k && w + 2 * pad >= k);
        let t = TailCase {
            n, cin, m, hw: [h, w], k, pad, stride, x, wbits, mid, other, out, ka, kb, swap,
            late, keep, seed,
        };
        let (g, inputs) = tail_graph(&t);
        check_same(&g, &inputs);
    }
}
