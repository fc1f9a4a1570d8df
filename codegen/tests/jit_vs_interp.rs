//! JIT ≡ integer interpreter, bit for bit, on random small graphs: `qconv` (dense and
//! ternary weights, strides, pads, dilations, groups incl. depthwise, u/i 2..8-bit
//! inputs) followed by `requantize` (fused into the native convolution or not) and a
//! pool; `qgemm` (and the native GEMV at its i16 pair bound); `scaled_add` followed by `requantize` (fused or not) and with the
//! global pools; dense convs with several blocks of output channels; the affine
//! `requantize` epilogue where (and only where) it is exact; and a clear `Unsupported`
//! error for a float op.

mod common;

use common::*;
use fqc_ir::{DType, Graph, Op, Window, F32};
use proptest::prelude::*;

#[derive(Clone, Debug)]
struct ConvCase {
    n: usize,
    cg: usize,
    mg: usize,
    group: usize,
    depthwise: bool,
    hw: [usize; 2],
    k: [usize; 2],
    strides: [u64; 2],
    dil: [u64; 2],
    pads: [u64; 4],
    x: (bool, u8),
    /// `None`: ternary weights; else signed bits.
    wbits: Option<u8>,
    bias: bool,
    out: (bool, u8),
    pool: u8,
    seed: u64,
}

fn conv_case() -> impl Strategy<Value = ConvCase> {
    (
        (1usize..3, 1usize..4, 1usize..4, 1usize..3, any::<bool>()),
        ([1usize..11, 1usize..11], [1usize..4, 1usize..4]),
        (
            [1u64..3, 1u64..3],
            [1u64..3, 1u64..3],
            [0u64..3, 0u64..3, 0u64..3, 0u64..3],
        ),
        (
            (any::<bool>(), 2u8..9),
            prop::option::of(2u8..9),
            any::<bool>(),
        ),
        ((any::<bool>(), 2u8..5), 0u8..3, any::<u64>()),
    )
        .prop_map(|(a, b, c, d, e)| ConvCase {
            n: a.0,
            cg: a.1,
            mg: a.2,
            group: a.3,
            depthwise: a.4,
            hw: b.0,
            k: b.1,
            strides: c.0,
            dil: c.1,
            pads: c.2,
            x: d.0,
            wbits: d.1,
            bias: d.2,
            out: e.0,
            pool: e.1,
            seed: e.2,
        })
        .prop_filter("window fits", |c| {
            (0..2).all(|a| {
                let padded = c.hw[a] as u64 + c.pads[a] + c.pads[a + 2];
                padded > c.dil[a] * (c.k[a] as u64 - 1)
            })
        })
}

fn build_conv(c: &ConvCase) -> (Graph, Vec<fqc_ir::Tensor>) {
    let mut rng = Lcg(c.seed);
    let (group, cin, m) = if c.depthwise {
        let ch = c.cg * c.group;
        (ch, ch, ch * c.mg)
    } else {
        (c.group, c.cg * c.group, c.mg * c.group)
    };
    let cg = cin / group;
    let xdt = int_dtype(c.x.0, c.x.1);
    let mut g = Graph::new("conv");
    let x = quantized_input(&mut g, "x", &[cin, c.hw[0], c.hw[1]], xdt);
    let (wdt, wr) = match c.wbits {
        None => (DType::Ternary, 1),
        Some(b) => (int_dtype(true, b), (1i64 << (b - 1)) - 1),
    };
    let wn = m * cg * c.k[0] * c.k[1];
    let wv: Vec<i64> = (0..wn).map(|_| rng.range(-wr, wr)).collect();
    let w = konst(&mut g, wdt, &[m, cg, c.k[0], c.k[1]], store(wdt, wv));
    let mut ins = vec![x, w];
    if c.bias {
        let bv = (0..m).map(|_| rng.range(-300, 300)).collect();
        ins.push(konst(&mut g, DType::I32, &[m], store(DType::I32, bv)));
    }
    let window = Window {
        kernel: [c.k[0] as u64, c.k[1] as u64],
        strides: c.strides,
        pads: c.pads,
        dilations: c.dil,
        ceil_mode: false,
    };
    let acc = node(
        &mut g,
        Op::QConv {
            window,
            group: group as u64,
        },
        ins,
        "conv",
    );
    let odt = int_dtype(c.out.0, c.out.1);
    let span = 40 * (cg * c.k[0] * c.k[1]) as i64;
    let (t, d) = thresholds(&mut rng, m, odt, span);
    let l = t.len() / m;
    let t = konst(&mut g, DType::I32, &[m, l], store(DType::I32, t));
    let d = konst(&mut g, DType::I8, &[m], store(DType::I8, d));
    let rq = Op::Requantize {
        dtype: odt,
        scale: F32(1.0),
    };
    let y = node(&mut g, rq, vec![acc, t, d], "requant");
    let pw = if (c.seed >> 4).is_multiple_of(3) {
        Window {
            kernel: [2, 2],
            strides: [2, 2],
            pads: [0; 4],
            dilations: [1, 1],
            ceil_mode: c.seed.is_multiple_of(2),
        }
    } else {
        Window {
            kernel: [2, 3],
            strides: [2, 1],
            pads: [1, 0, 0, 1],
            dilations: [1, 1],
            ceil_mode: c.seed.is_multiple_of(2),
        }
    };
    let fits = (0..2).all(|a| {
        pw.output_extent(a, g.ty(y).shape.0[a + 2].resolve(1))
            .is_some()
    });
    let out = match c.pool {
        1 if fits => node(&mut g, Op::MaxPool { window: pw }, vec![y], "maxpool"),
        2 if fits => node(&mut g, Op::SumPool { window: pw }, vec![y], "sumpool"),
        _ => y,
    };
    // Two cases in three leave the accumulators unread but by `requantize`, which is
    // then fused into a native convolution; else it runs as a step of its own.
    if (c.seed >> 8).is_multiple_of(3) {
        g.set_outputs(vec![acc, out]);
    } else {
        g.set_outputs(vec![out]);
    }
    let input = random_input(&mut rng, c.n, &[cin, c.hw[0], c.hw[1]], xdt);
    (g, vec![input])
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(160))]

    #[test]
    fn conv_requantize_pool(c in conv_case()) {
        let (g, inputs) = build_conv(&c);
        check_same(&g, &inputs);
    }

    /// Dense weights with several full blocks of output channels and rows wide enough
    /// for the in-place 8-column form (and stride-2 columns for the gather form), and
    /// outputs up to 8 bits (requantize's binary search).
    #[test]
    fn dense_conv_channel_blocks(
        (mut c, mg, w, wbits, sw) in (conv_case(), 4usize..11, 8usize..15, 2u8..9, 1u64..3),
        out in (any::<bool>(), 2u8..9),
    ) {
        c.out = out;
        c.mg = mg;
        c.hw[1] = w;
        c.wbits = Some(wbits);
        c.depthwise = false;
        c.strides[1] = sw;
        let (g, inputs) = build_conv(&c);
        check_same(&g, &inputs);
    }

    #[test]
    fn qgemm_requantize(
        (n, k, outs) in (1usize..4, 1usize..80, 1usize..20),
        x in (any::<bool>(), 2u8..9),
        wbits in prop::option::of(2u8..9),
        trans_b in any::<bool>(),
        bias in any::<bool>(),
        seed in any::<u64>(),
    ) {
        let mut rng = Lcg(seed);
        let xdt = int_dtype(x.0, x.1);
        let mut g = Graph::new("gemm");
        let a = quantized_input(&mut g, "a", &[k], xdt);
        let (wdt, wr) = match wbits {
            None => (DType::Ternary, 1),
            Some(b) => (int_dtype(true, b), (1i64 << (b - 1)) - 1),
        };
        let wv: Vec<i64> = (0..k * outs).map(|_| rng.range(-wr, wr)).collect();
        let shape = if trans_b { [outs, k] } else { [k, outs] };
        let w = konst(&mut g, wdt, &shape, store(wdt, wv));
        let mut ins = vec![a, w];
        if bias {
            let bv = (0..outs).map(|_| rng.range(-500, 500)).collect();
            ins.push(konst(&mut g, DType::I32, &[outs], store(DType::I32, bv)));
        }
        let acc = node(&mut g, Op::QGemm { trans_b }, ins, "gemm");
        let odt = int_dtype(false, 3);
        let (t, d) = thresholds(&mut rng, outs, odt, 30 * k as i64);
        let t = konst(&mut g, DType::I32, &[outs, 7], store(DType::I32, t));
        let d = konst(&mut g, DType::I8, &[outs], store(DType::I8, d));
        let rq = Op::Requantize { dtype: odt, scale: F32(1.0) };
        let y = node(&mut g, rq, vec![acc, t, d], "requant");
        g.set_outputs(vec![acc, y]);
        let input = random_input(&mut rng, n, &[k], xdt);
        check_same(&g, &[input]);
    }

    /// `scaled_add` then `requantize` (fused natively when the sum has no other use,
    /// else a native or JIT'd `requantize` step), rows short and long; 8-bit outputs
    /// natively only by an affine form on the sums the operands give.
    #[test]
    fn scaled_add_requantize(
        (n, c, h, w) in (1usize..3, 1usize..4, 1usize..6, 1usize..40),
        xa in (any::<bool>(), 2u8..9),
        xb in (any::<bool>(), 2u8..9),
        (ka, kb) in (-100_000i32..100_000, -100_000i32..100_000),
        out in (any::<bool>(), 2u8..9),
        keep_sum in any::<bool>(),
        seed in any::<u64>(),
    ) {
        let mut rng = Lcg(seed);
        let (da, db) = (int_dtype(xa.0, xa.1), int_dtype(xb.0, xb.1));
        let mut g = Graph::new("addrq");
        let a = quantized_input(&mut g, "a", &[c, h, w], da);
        let b = quantized_input(&mut g, "b", &[c, h, w], db);
        let ka_v = konst(&mut g, DType::I32, &[], store(DType::I32, vec![i64::from(ka)]));
        let kb_v = konst(&mut g, DType::I32, &[], store(DType::I32, vec![i64::from(kb)]));
        let s = node(&mut g, Op::ScaledAdd, vec![a, b, ka_v, kb_v], "add");
        let odt = int_dtype(out.0, out.1);
        let span = 130 * (i64::from(ka).abs() + i64::from(kb).abs()) + 1;
        let (t, d) = thresholds(&mut rng, c, odt, span);
        let l = t.len() / c;
        let t = konst(&mut g, DType::I32, &[c, l], store(DType::I32, t));
        let d = konst(&mut g, DType::I8, &[c], store(DType::I8, d));
        let rq = Op::Requantize { dtype: odt, scale: F32(1.0) };
        let y = node(&mut g, rq, vec![s, t, d], "requant");
        g.set_outputs(if keep_sum { vec![s, y] } else { vec![y] });
        let ia = random_input(&mut rng, n, &[c, h, w], da);
        let ib = random_input(&mut rng, n, &[c, h, w], db);
        check_same(&g, &[ia, ib]);
    }

    /// Rows wide enough for whole 16-column runs of the native kernel's direct panel
    /// packing (and runs that cross output rows), with the fused `requantize`.
    #[test]
    fn native_conv_wide_rows(
        (mut c, h, w, mg) in (conv_case(), 1usize..5, 14usize..41, 1usize..10),
    ) {
        c.hw = [h + 2 * c.k[0], w];
        c.mg = mg;
        c.depthwise = false;
        let (g, inputs) = build_conv(&c);
        check_same(&g, &inputs);
    }

    /// Pools straight on a low-bit input, wide rows: `MaxPool(2)` (the native halving
    /// kernel where every window is inside), and other windows.
    #[test]
    fn pools_on_wide_rows(
        (n, c, h, w) in (1usize..3, 1usize..3, 2usize..7, 2usize..80),
        x in (any::<bool>(), 2u8..9),
        (k, s, pad) in ([1u64..4, 1u64..4], [1u64..3, 1u64..3], 0u64..2),
        (halving, ceil, sum) in (any::<bool>(), any::<bool>(), any::<bool>()),
        seed in any::<u64>(),
    ) {
        let mut rng = Lcg(seed);
        let xdt = int_dtype(x.0, x.1);
        let window = if halving {
            Window { kernel: [2, 2], strides: [2, 2], pads: [0; 4], dilations: [1, 1], ceil_mode: ceil }
        } else {
            Window { kernel: k, strides: s, pads: [pad, 0, pad, pad], dilations: [1, 1], ceil_mode: ceil }
        };
        let fits = (0..2).all(|a| {
            let padded = [h, w][a] as u64 + window.pads[a] + window.pads[a + 2];
            padded >= window.kernel[a]
                && window.pads[a] < window.kernel[a]
                && window.pads[a + 2] < window.kernel[a]
        });
        prop_assume!(fits);
        let mut g = Graph::new("pool");
        let xv = quantized_input(&mut g, "x", &[c, h, w], xdt);
        let op = if sum { Op::SumPool { window } } else { Op::MaxPool { window } };
        let y = node(&mut g, op, vec![xv], "pool");
        g.set_outputs(vec![y]);
        let input = random_input(&mut rng, n, &[c, h, w], xdt);
        check_same(&g, &[input]);
    }

    #[test]
    fn scaled_add_and_global_pools(
        (n, c, h, w) in (1usize..4, 1usize..5, 1usize..7, 1usize..7),
        xa in (any::<bool>(), 2u8..9),
        xb in (any::<bool>(), 2u8..9),
        (ka, kb) in (-1000i32..1000, -1000i32..1000),
        seed in any::<u64>(),
    ) {
        let mut rng = Lcg(seed);
        let (da, db) = (int_dtype(xa.0, xa.1), int_dtype(xb.0, xb.1));
        let mut g = Graph::new("add");
        let a = quantized_input(&mut g, "a", &[c, h, w], da);
        let b = quantized_input(&mut g, "b", &[c, h, w], db);
        let ka = konst(&mut g, DType::I32, &[], store(DType::I32, vec![i64::from(ka)]));
        let kb = konst(&mut g, DType::I32, &[], store(DType::I32, vec![i64::from(kb)]));
        let s = node(&mut g, Op::ScaledAdd, vec![a, b, ka, kb], "add");
        let gm = node(&mut g, Op::GlobalMaxPool, vec![a], "gmax");
        let gs = node(&mut g, Op::GlobalSumPool, vec![b], "gsum");
        let f = node(&mut g, Op::Flatten { axis: 1 }, vec![gm], "flat");
        g.set_outputs(vec![s, f, gs]);
        let ia = random_input(&mut rng, n, &[c, h, w], da);
        let ib = random_input(&mut rng, n, &[c, h, w], db);
        check_same(&g, &[ia, ib]);
    }
}

/// On an AVX2 machine the automatic choice fuses `requantize` into a native convolution
/// and into a `scaled_add` whose results nothing else reads (and the results match).
#[test]
fn requantize_fuses_on_the_native_path() {
    let c = ConvCase {
        n: 2,
        cg: 8,
        mg: 8,
        group: 1,
        depthwise: false,
        hw: [9, 10],
        k: [3, 3],
        strides: [1, 1],
        dil: [1, 1],
        pads: [1, 1, 1, 1],
        x: (false, 4),
        wbits: None,
        bias: true,
        out: (false, 4),
        pool: 0,
        seed: 1 << 8,
    };
    let (g, inputs) = build_conv(&c);
    check_same(&g, &inputs);
    let forms = fqc_codegen::compile(&g).unwrap().kernel_forms().to_vec();
    if is_avx2() {
        assert!(
            forms
                .iter()
                .any(|(_, f)| f.starts_with("native-a+requantize")),
            "{forms:?}"
        );
    }
    let mut g = Graph::new("addrq");
    let dt = int_dtype(false, 4);
    let a = quantized_input(&mut g, "a", &[3, 5, 7], dt);
    let b = quantized_input(&mut g, "b", &[3, 5, 7], dt);
    let ka = konst(&mut g, DType::I32, &[], store(DType::I32, vec![3]));
    let kb = konst(&mut g, DType::I32, &[], store(DType::I32, vec![-2]));
    let s = node(&mut g, Op::ScaledAdd, vec![a, b, ka, kb], "add");
    let t = konst(
        &mut g,
        DType::I32,
        &[3, 15],
        store(DType::I32, (0..45).map(|i| i % 15 * 3 - 20).collect()),
    );
    let d = konst(&mut g, DType::I8, &[3], store(DType::I8, vec![0, 1, 0]));
    let rq = Op::Requantize {
        dtype: dt,
        scale: F32(1.0),
    };
    let y = node(&mut g, rq, vec![s, t, d], "requant");
    g.set_outputs(vec![y]);
    let mut rng = Lcg(5);
    let x = [
        random_input(&mut rng, 2, &[3, 5, 7], dt),
        random_input(&mut rng, 2, &[3, 5, 7], dt),
    ];
    check_same(&g, &x);
    let forms = fqc_codegen::compile(&g).unwrap().kernel_forms().to_vec();
    if is_avx2() {
        // Thresholds 3 apart, in both directions: an exact affine map.
        assert_eq!(forms.len(), 1, "{forms:?}");
        assert_eq!(forms[0].1, "native-add-requantize(affine)");
    }
}

/// `qconv` (8 → 8 channels, 3×3, ternary weights, u4 input) → `requantize` with
/// thresholds `t` (8 rows) and directions `d`, to `out_bits` unsigned.
fn conv_requantize(t: Vec<i64>, d: Vec<i64>, out_bits: u8) -> (Graph, Vec<fqc_ir::Tensor>) {
    let mut rng = Lcg(11);
    let xdt = int_dtype(false, 4);
    let mut g = Graph::new("conv_rq");
    let x = quantized_input(&mut g, "x", &[8, 9, 10], xdt);
    let wv: Vec<i64> = (0..8 * 8 * 9).map(|_| rng.range(-1, 1)).collect();
    let w = konst(
        &mut g,
        DType::Ternary,
        &[8, 8, 3, 3],
        store(DType::Ternary, wv),
    );
    let window = Window {
        kernel: [3, 3],
        strides: [1, 1],
        pads: [1, 1, 1, 1],
        dilations: [1, 1],
        ceil_mode: false,
    };
    let acc = node(&mut g, Op::QConv { window, group: 1 }, vec![x, w], "conv");
    let l = t.len() / 8;
    let t = konst(&mut g, DType::I32, &[8, l], store(DType::I32, t));
    let d = konst(&mut g, DType::I8, &[8], store(DType::I8, d));
    let rq = Op::Requantize {
        dtype: int_dtype(false, out_bits),
        scale: F32(1.0),
    };
    let y = node(&mut g, rq, vec![acc, t, d], "requant");
    g.set_outputs(vec![y]);
    let input = random_input(&mut rng, 2, &[8, 9, 10], xdt);
    (g, vec![input])
}

/// Thresholds of `ceil(o ± (k + 1/2)·q)`, `l` per channel, channel `c` descending when
/// odd, with a step and offset of its own.
fn affine_rows(l: usize) -> (Vec<i64>, Vec<i64>) {
    let mut t = Vec::new();
    for c in 0..8 {
        let (q, o) = (7.3 + 2.9 * c as f64, 13.0 * c as f64 - 50.0);
        let sign = if c % 2 == 1 { -1.0 } else { 1.0 };
        t.extend((0..l).map(|k| (o + sign * (k as f64 + 0.5) * q).ceil() as i64));
    }
    (t, (0..8).map(|c| c % 2).collect())
}

/// The affine epilogue is taken exactly when every channel's thresholds have an exact
/// affine form and there are enough of them (4-bit outputs), and it computes the
/// thresholds' levels.
#[test]
fn affine_requantize_only_where_exact() {
    let form = |g: &Graph| fqc_codegen::compile(g).unwrap().kernel_forms()[0].1;
    let (t, d) = affine_rows(15);
    let (g, x) = conv_requantize(t.clone(), d.clone(), 4);
    check_same(&g, &x);
    if is_avx2() {
        assert_eq!(form(&g), "native-a+requantize(affine)");
    }
    // One channel's thresholds no longer evenly spaced: thresholds for the layer.
    let mut bent = t;
    bent[3 * 15 + 7] = bent[3 * 15 + 6];
    let (g, x) = conv_requantize(bent, d, 4);
    check_same(&g, &x);
    if is_avx2() {
        assert_eq!(form(&g), "native-a+requantize");
    }
    // Three thresholds (2-bit output): the compares are cheaper.
    let (t, d) = affine_rows(3);
    let (g, x) = conv_requantize(t, d, 2);
    check_same(&g, &x);
    if is_avx2() {
        assert_eq!(form(&g), "native-a+requantize");
    }
}

#[test]
fn an_op_without_jit_code_runs_as_an_interpreter_step() {
    let mut g = Graph::new("float");
    let x = quantized_input(&mut g, "x", &[4], int_dtype(false, 4));
    let d = node(&mut g, Op::Dequantize, vec![x], "deq");
    let r = node(&mut g, Op::Relu, vec![d], "my_relu");
    g.set_outputs(vec![r]);
    let jit = fqc_codegen::compile(&g).unwrap();
    assert!(
        jit.kernel_forms()
            .iter()
            .any(|(n, f)| n == "my_relu" && *f == "interp"),
        "{:?}",
        jit.kernel_forms()
    );
    let x =
        fqc_ir::Tensor::f32(vec![2, 4], vec![-1.0, 0.3, 0.7, 2.0, 0.1, -0.2, 0.9, 1.5]).unwrap();
    check_same(&g, &[x]);
}

#[test]
fn wrong_input_shape_is_an_error() {
    let mut g = Graph::new("shape");
    let x = quantized_input(&mut g, "x", &[4], int_dtype(false, 4));
    let d = node(&mut g, Op::Dequantize, vec![x], "deq");
    g.set_outputs(vec![d]);
    let jit = fqc_codegen::compile(&g).unwrap();
    let bad = fqc_ir::Tensor::f32(vec![2, 5], vec![0.0; 10]).unwrap();
    let e = jit.run(&[bad]).unwrap_err().to_string();
    assert!(e.contains("`x`"), "{e}");
    let ok = fqc_ir::Tensor::f32(vec![3, 4], (0..12).map(|v| v as f32 * 1.5).collect()).unwrap();
    check_same(&g, &[ok]);
}

/// The native GEMV's path A at its pair bound: u8 inputs up to 255 and weights ±64, so
/// every pair sum may reach `255·128 = 32640` and the i16 sums must be widened after
/// every vector (two vectors' worth would wrap). Inputs of 255 against all-positive
/// (and all-negative) rows put every lane at the bound; a third row mixes signs.
#[test]
fn gemv_path_a_at_its_pair_bound() {
    let k = 200;
    let xdt = int_dtype(false, 8);
    let mut g = Graph::new("gemv_bound");
    let a = quantized_input(&mut g, "a", &[k], xdt);
    let mut rng = Lcg(3);
    let mut wv: Vec<i64> = vec![64; k];
    wv.extend(vec![-64; k]);
    wv.extend((0..k).map(|i| if i % 3 == 0 { -64 } else { 64 }));
    wv.extend((0..k).map(|_| rng.range(-64, 64)));
    let w = konst(
        &mut g,
        int_dtype(true, 8),
        &[4, k],
        store(int_dtype(true, 8), wv),
    );
    let acc = node(&mut g, Op::QGemm { trans_b: true }, vec![a, w], "gemm");
    g.set_outputs(vec![acc]);
    let forms = fqc_codegen::compile(&g).unwrap().kernel_forms().to_vec();
    if is_avx2() {
        assert_eq!(forms, [("gemm".to_string(), "native-gemv-a")], "{forms:?}");
    }
    let full = fqc_ir::Tensor::f32(vec![1, k], vec![255.0; k]).expect("shape");
    check_same(&g, &[full]);
    check_same(&g, &[random_input(&mut rng, 2, &[k], xdt)]);
}

/// A 1×1 image under a 1×1 kernel whose one output window sits on the top padding
/// (stride 2): not a vector-matrix product (the native GEMV once took it for one and
/// read the pixel; found by proptest).
#[test]
fn a_one_pixel_conv_whose_window_sits_on_padding() {
    let c = ConvCase {
        n: 1,
        cg: 1,
        mg: 1,
        group: 1,
        depthwise: false,
        hw: [1, 1],
        k: [1, 1],
        strides: [2, 1],
        dil: [1, 1],
        pads: [1, 0, 0, 0],
        x: (false, 4),
        wbits: None,
        bias: false,
        out: (false, 2),
        pool: 0,
        seed: 7437418045758489604,
    };
    let (g, inputs) = build_conv(&c);
    check_same(&g, &inputs);
}

#[test]
fn a_pool_window_wider_than_any_input_runs_without_unrolling_it() {
    // 2^31 taps along W, pads of 2^30: valid (2 outputs per row), and found by fuzzing
    // (fuzz/findings.md); the JIT must neither unroll it nor walk it per output.
    let window = Window {
        kernel: [1, 1 << 31],
        strides: [1, 1],
        pads: [0, 1 << 30, 0, (1 << 30) + 1],
        dilations: [1, 1],
        ceil_mode: false,
    };
    let mut g = Graph::new("wide");
    let x = quantized_input(&mut g, "x", &[2, 3, 2], int_dtype(false, 4));
    let y = node(&mut g, Op::MaxPool { window }, vec![x], "wide_pool");
    g.set_outputs(vec![y]);
    let jit = fqc_codegen::compile(&g).unwrap();
    assert!(
        jit.kernel_forms().iter().any(|(_, f)| *f == "interp"),
        "{:?}",
        jit.kernel_forms()
    );
    let mut rng = Lcg(7);
    check_same(
        &g,
        &[random_input(&mut rng, 2, &[2, 3, 2], int_dtype(false, 4))],
    );
}
