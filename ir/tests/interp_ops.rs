//! Every interpreter kernel against a naive straight-loop implementation written here
//! from the ONNX definitions, on random shapes and data (proptest).

use fqc_ir::infer::infer;
use fqc_ir::{run, BinaryOp, Dim, Graph, Op, Tensor, TensorType, Value, Window, F32};
use proptest::prelude::*;

/// Deterministic pseudo-random data in [-1, 1).
fn data(seed: u64, n: usize) -> Vec<f32> {
    let mut s = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

fn tensor(shape: &[usize], seed: u64) -> Tensor {
    Tensor::f32(shape.to_vec(), data(seed, shape.iter().product())).unwrap()
}

/// An operand of a one-node test graph: a graph input or a constant.
enum Operand {
    Input(Tensor),
    Const(Tensor),
}

/// Runs `op` on `operands` (inputs bound in order); `None` if the op does not type-check.
fn run_op(op: Op, operands: Vec<Operand>) -> Option<Tensor> {
    let mut g = Graph::new("t");
    let mut vals: Vec<Value> = Vec::new();
    let mut inputs = Vec::new();
    for (i, o) in operands.into_iter().enumerate() {
        match o {
            Operand::Input(t) => {
                vals.push(g.add_input(format!("x{i}"), TensorType::f32(t.static_shape())));
                inputs.push(t);
            }
            Operand::Const(t) => {
                let ty = TensorType::f32(t.static_shape());
                vals.push(g.add_const(None, ty, t));
            }
        }
    }
    let tys: Vec<&TensorType> = vals.iter().map(|&v| g.ty(v)).collect();
    let ty = infer(&op, &tys).ok()?;
    let y = g.add_node(op, vals, ty, "n", None);
    g.set_outputs(vec![y]);
    let mut out = run(&g, &inputs).expect("run");
    Some(out.remove(0))
}

fn inputs(ts: &[Tensor]) -> Vec<Operand> {
    ts.iter().cloned().map(Operand::Input).collect()
}

fn assert_close(got: &Tensor, shape: &[usize], want: &[f64]) {
    assert_eq!(got.shape, shape, "shape");
    let g = got.as_f32().unwrap();
    assert_eq!(g.len(), want.len());
    for (i, (&a, &b)) in g.iter().zip(want).enumerate() {
        let tol = 1e-4 * (1.0 + b.abs());
        assert!(
            (a as f64 - b).abs() <= tol || (a.is_nan() && b.is_nan()),
            "element {i}: got {a}, want {b}"
        );
    }
}

fn strides(shape: &[usize]) -> Vec<usize> {
    let mut s = vec![1; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        s[i] = s[i + 1] * shape[i + 1];
    }
    s
}

/// Multi-index of flat index `i` in `shape`.
fn unravel(mut i: usize, shape: &[usize]) -> Vec<usize> {
    let mut idx = vec![0; shape.len()];
    for d in (0..shape.len()).rev() {
        idx[d] = i % shape[d];
        i /= shape[d];
    }
    idx
}

/// Flat index into an operand of `shape` broadcast to an output multi-index.
fn bcast_index(out_idx: &[usize], shape: &[usize]) -> usize {
    let off = out_idx.len() - shape.len();
    let st = strides(shape);
    (0..shape.len())
        .map(|i| {
            if shape[i] == 1 {
                0
            } else {
                out_idx[off + i] * st[i]
            }
        })
        .sum()
}

fn window(k: [u64; 2], s: [u64; 2], p: [u64; 4], d: [u64; 2], ceil: bool) -> Window {
    Window {
        kernel: k,
        strides: s,
        pads: p,
        dilations: d,
        ceil_mode: ceil,
    }
}

// ---------------------------------------------------------------------------- conv

#[allow(clippy::too_many_arguments)]
fn naive_conv(
    x: &Tensor,
    w: &Tensor,
    b: Option<&Tensor>,
    win: &Window,
    group: usize,
    oh: usize,
    ow: usize,
) -> Vec<f64> {
    let (xd, wd) = (x.as_f32().unwrap(), w.as_f32().unwrap());
    let [n, c, h, wi] = [x.shape[0], x.shape[1], x.shape[2], x.shape[3]];
    let [m, cg, kh, kw] = [w.shape[0], w.shape[1], w.shape[2], w.shape[3]];
    let mg = m / group;
    let mut y = vec![0.0f64; n * m * oh * ow];
    for bn in 0..n {
        for mo in 0..m {
            let gi = mo / mg;
            for oy in 0..oh {
                for ox in 0..ow {
                    let mut acc = b.map_or(0.0, |b| b.as_f32().unwrap()[mo] as f64);
                    for ci in 0..cg {
                        for ki in 0..kh {
                            for kj in 0..kw {
                                let iy = (oy * win.strides[0] as usize
                                    + ki * win.dilations[0] as usize)
                                    as i64
                                    - win.pads[0] as i64;
                                let ix = (ox * win.strides[1] as usize
                                    + kj * win.dilations[1] as usize)
                                    as i64
                                    - win.pads[1] as i64;
                                if iy < 0 || ix < 0 || iy >= h as i64 || ix >= wi as i64 {
                                    continue;
                                }
                                let xv = xd[((bn * c + gi * cg + ci) * h + iy as usize) * wi
                                    + ix as usize];
                                let wv = wd[((mo * cg + ci) * kh + ki) * kw + kj];
                                acc += xv as f64 * wv as f64;
                            }
                        }
                    }
                    y[((bn * m + mo) * oh + oy) * ow + ox] = acc;
                }
            }
        }
    }
    y
}

/// Output extent along one axis by ONNX's formula, computed here independently of
/// `Window::output_extent`: `floor` (or, for pools with `ceil_mode`, `ceil`) of
/// `(in + pads − dilation·(kernel − 1) − 1) / stride` plus one, where a ceil-mode window
/// that would start past the input and the begin padding is dropped. None when no
/// window fits.
fn onnx_extent(
    input: usize,
    k: u64,
    s: u64,
    d: u64,
    pb: u64,
    pe: u64,
    ceil: bool,
) -> Option<usize> {
    let padded = input as i64 + pb as i64 + pe as i64;
    let eff = d as i64 * (k as i64 - 1) + 1;
    if padded < eff {
        return None;
    }
    let span = padded - eff;
    let s = s as i64;
    let mut out = if ceil {
        (span + s - 1) / s + 1
    } else {
        span / s + 1
    };
    if ceil && (out - 1) * s >= input as i64 + pb as i64 {
        out -= 1;
    }
    Some(out as usize)
}

/// `(oh, ow)` of `win` over an `h × w` input, if it fits.
fn extents(win: &Window, h: usize, w: usize) -> Option<(usize, usize)> {
    let e = |a: usize, n: usize| {
        onnx_extent(
            n,
            win.kernel[a],
            win.strides[a],
            win.dilations[a],
            win.pads[a],
            win.pads[a + 2],
            win.ceil_mode,
        )
        .filter(|&o| o > 0)
    };
    Some((e(0, h)?, e(1, w)?))
}

fn check_conv(xs: [usize; 4], m: usize, group: usize, win: Window, bias: bool, seed: u64) {
    let x = tensor(&xs, seed);
    let ws = [
        m,
        xs[1] / group,
        win.kernel[0] as usize,
        win.kernel[1] as usize,
    ];
    let w = tensor(&ws, seed + 1);
    let b = tensor(&[m], seed + 2);
    let mut ops = vec![Operand::Input(x.clone()), Operand::Const(w.clone())];
    if bias {
        ops.push(Operand::Const(b.clone()));
    }
    let op = Op::Conv {
        window: win.clone(),
        group: group as u64,
    };
    let expected = extents(&win, xs[2], xs[3]);
    let y = run_op(op, ops);
    let (Some((oh, ow)), Some(y)) = (expected, &y) else {
        assert_eq!(
            expected.is_some(),
            y.is_some(),
            "the interpreter and ONNX's formula disagree on whether {win:?} fits {xs:?}"
        );
        return;
    };
    let want = naive_conv(&x, &w, bias.then_some(&b), &win, group, oh, ow);
    assert_close(y, &[xs[0], m, oh, ow], &want);
}

fn small() -> impl Strategy<Value = u64> {
    prop_oneof![Just(1u64), 1u64..4]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn conv_matches_naive(
        n in 1usize..3, group in 1usize..4, cg in 1usize..4, mg in 1usize..4,
        h in 1usize..10, w in 1usize..10,
        kh in small(), kw in small(), sh in small(), sw in small(),
        dh in small(), dw in small(),
        pads in prop_oneof![Just([0u64; 4]), prop::array::uniform4(0u64..4)],
        bias: bool, seed: u64,
    ) {
        let win = window([kh, kw], [sh, sw], pads, [dh, dw], false);
        prop_assume!(extents(&win, h, w).is_some(), "the window does not fit");
        check_conv([n, group * cg, h, w], group * mg, group, win, bias, seed);
    }

    #[test]
    fn depthwise_conv_matches_naive(
        c in 1usize..6, mult in 1usize..3, h in 1usize..12, w in 1usize..12,
        k in 1u64..5, s in 1u64..3, d in 1u64..3, p in prop::array::uniform4(0u64..3),
        seed: u64,
    ) {
        let win = window([k, k], [s, s], p, [d, d], false);
        prop_assume!(extents(&win, h, w).is_some(), "the window does not fit");
        check_conv([2, c, h, w], c * mult, c, win, true, seed);
    }
}

#[test]
fn pointwise_and_tiled_conv_match_naive() {
    // 1x1 / stride 1 / no pad: the direct sgemm path.
    check_conv(
        [2, 8, 5, 7],
        6,
        1,
        window([1, 1], [1, 1], [0; 4], [1, 1], false),
        true,
        1,
    );
    check_conv(
        [1, 6, 4, 4],
        4,
        2,
        window([1, 1], [1, 1], [0; 4], [1, 1], false),
        false,
        2,
    );
    // K·OW large enough that im2col is tiled over output rows (several tiles).
    check_conv(
        [1, 64, 60, 40],
        4,
        1,
        window([3, 3], [1, 1], [1; 4], [1, 1], false),
        true,
        3,
    );
}

// --------------------------------------------------------------------------- pools

/// Naive ORT-style pooling: taps `start + t·d`; max over in-bounds taps; average over
/// in-bounds taps divided by their count or by the taps inside the padded extent.
fn naive_pool(x: &Tensor, win: &Window, avg: Option<bool>, oh: usize, ow: usize) -> Vec<f64> {
    let xd = x.as_f32().unwrap();
    let [n, c, h, w] = [x.shape[0], x.shape[1], x.shape[2], x.shape[3]];
    let mut y = Vec::new();
    for p in 0..n * c {
        for oy in 0..oh {
            for ox in 0..ow {
                let y0 = (oy * win.strides[0] as usize) as i64 - win.pads[0] as i64;
                let x0 = (ox * win.strides[1] as usize) as i64 - win.pads[1] as i64;
                let (mut max, mut sum, mut cnt, mut padded) = (None::<f64>, 0.0f64, 0, 0);
                for ki in 0..win.kernel[0] as i64 {
                    for kj in 0..win.kernel[1] as i64 {
                        let iy = y0 + ki * win.dilations[0] as i64;
                        let ix = x0 + kj * win.dilations[1] as i64;
                        if iy < (h + win.pads[2] as usize) as i64
                            && ix < (w + win.pads[3] as usize) as i64
                        {
                            padded += 1;
                        }
                        if iy < 0 || ix < 0 || iy >= h as i64 || ix >= w as i64 {
                            continue;
                        }
                        let v = xd[p * h * w + iy as usize * w + ix as usize] as f64;
                        max = Some(max.map_or(v, |m: f64| m.max(v)));
                        sum += v;
                        cnt += 1;
                    }
                }
                y.push(match avg {
                    None => max.unwrap_or(f32::MIN as f64),
                    Some(_) if cnt == 0 => 0.0,
                    Some(true) => sum / padded as f64,
                    Some(false) => sum / cnt as f64,
                });
            }
        }
    }
    y
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn pools_match_naive(
        n in 1usize..3, c in 1usize..3, h in 1usize..10, w in 1usize..10,
        kh in 1u64..4, kw in 1u64..4, sh in 1u64..4, sw in 1u64..4,
        dh in small(), dw in small(), pads in prop::array::uniform4(0u64..3),
        ceil: bool, include_pad: bool, seed: u64,
    ) {
        let x = tensor(&[n, c, h, w], seed);
        let win = window([kh, kw], [sh, sw], pads, [dh, dw], ceil);
        // ONNX Runtime refuses pads that reach a whole (dilated) kernel; so does fqc.
        let pads_ok = (0..4).all(|i| pads[i] < [kh * dh, kw * dw][i % 2]);
        let expected = extents(&win, h, w).filter(|_| pads_ok);
        if expected.is_none() {
            let refused = run_op(Op::MaxPool { window: win.clone() }, inputs(std::slice::from_ref(&x)));
            prop_assert!(refused.is_none(), "{win:?} on {h}x{w} must be refused");
        }
        prop_assume!(expected.is_some(), "the window does not fit or pads reach the kernel");
        let (oh, ow) = expected.unwrap();
        let y = run_op(Op::MaxPool { window: win.clone() }, inputs(std::slice::from_ref(&x)))
            .expect("a window that fits is run");
        assert_close(&y, &[n, c, oh, ow], &naive_pool(&x, &win, None, oh, ow));
        let op = Op::AveragePool { window: win.clone(), count_include_pad: include_pad };
        let y = run_op(op, inputs(std::slice::from_ref(&x))).expect("a window that fits is run");
        assert_close(&y, &[n, c, oh, ow], &naive_pool(&x, &win, Some(include_pad), oh, ow));
    }

    #[test]
    fn global_pools_match_naive(n in 1usize..3, c in 1usize..4, h in 1usize..7, w in 1usize..7, seed: u64) {
        let x = tensor(&[n, c, h, w], seed);
        let xd = x.as_f32().unwrap();
        let planes: Vec<&[f32]> = xd.chunks(h * w).collect();
        let avg: Vec<f64> = planes.iter().map(|p| p.iter().map(|&v| v as f64).sum::<f64>() / (h * w) as f64).collect();
        let max: Vec<f64> = planes.iter().map(|p| p.iter().fold(f64::MIN, |m, &v| m.max(v as f64))).collect();
        assert_close(&run_op(Op::GlobalAveragePool, inputs(std::slice::from_ref(&x))).unwrap(), &[n, c, 1, 1], &avg);
        assert_close(&run_op(Op::GlobalMaxPool, inputs(&[x])).unwrap(), &[n, c, 1, 1], &max);
    }
}

/// The ceil-mode / count_include_pad corner ORT resolves by clipping the window to the
/// padded input: 4x4 input, kernel 3, stride 2, pads 1, ceil_mode → 3x3 output. The
/// last window row/column [3, 6) hangs past the padded end 5, so with
/// count_include_pad = 1 only its 2 taps inside [-1, 5) count in the divisor.
#[test]
fn avgpool_ceil_mode_divisor_clips_to_padded_input() {
    let x = Tensor::f32(vec![1, 1, 4, 4], vec![1.0; 16]).unwrap();
    let op = Op::AveragePool {
        window: window([3, 3], [2, 2], [1; 4], [1, 1], true),
        count_include_pad: true,
    };
    let y = run_op(op, inputs(&[x])).unwrap();
    assert_eq!(y.shape, vec![1, 1, 3, 3]);
    // Window rows: [-1,2) → 2 real of 3 counted; [1,4) → 3 of 3; [3,5) clipped → 1 real of 2.
    let r = [2.0 / 3.0, 1.0, 1.0 / 2.0];
    let want: Vec<f64> = (0..9).map(|i| r[i / 3] * r[i % 3]).collect();
    assert_close(&y, &[1, 1, 3, 3], &want);
}

// -------------------------------------------------------------------- element-wise

/// Random broadcast-compatible shape pair: an output shape, and for each operand a
/// suffix of it with some extents replaced by 1.
fn bcast_shapes(k: usize) -> impl Strategy<Value = (Vec<usize>, Vec<Vec<usize>>)> {
    prop::collection::vec(1usize..4, 0..5).prop_flat_map(move |out| {
        let r = out.len();
        let one = (0..=r, prop::collection::vec(any::<bool>(), r)).prop_map({
            let out = out.clone();
            move |(drop, ones)| {
                (drop..r)
                    .map(|i| if ones[i] { 1 } else { out[i] })
                    .collect::<Vec<_>>()
            }
        });
        (Just(out), prop::collection::vec(one, k))
    })
}

fn naive_bcast(out: &[usize], ops: &[&Tensor], f: impl Fn(&[f64]) -> f64) -> Vec<f64> {
    let numel: usize = out.iter().product();
    (0..numel)
        .map(|i| {
            let idx = unravel(i, out);
            let vals: Vec<f64> = ops
                .iter()
                .map(|t| t.as_f32().unwrap()[bcast_index(&idx, &t.shape)] as f64)
                .collect();
            f(&vals)
        })
        .collect()
}

/// The shape ONNX broadcasting gives (the generated output may have extents no operand has).
fn bcast_result(shapes: &[Vec<usize>]) -> Vec<usize> {
    let r = shapes.iter().map(|s| s.len()).max().unwrap_or(0);
    (0..r)
        .map(|i| {
            shapes
                .iter()
                .filter_map(|s| (i + s.len()).checked_sub(r).map(|j| s[j]))
                .max()
                .unwrap_or(1)
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn binary_broadcasting_matches_naive((_, shapes) in bcast_shapes(2), op in 0usize..4, seed: u64) {
        let a = tensor(&shapes[0], seed);
        let b = tensor(&shapes[1], seed + 7);
        let out = bcast_result(&shapes);
        let bop = [BinaryOp::Add, BinaryOp::Sub, BinaryOp::Mul, BinaryOp::Div][op];
        let y = run_op(Op::Binary(bop), inputs(&[a.clone(), b.clone()])).unwrap();
        let want = naive_bcast(&out, &[&a, &b], |v| bop.apply(v[0] as f32, v[1] as f32) as f64);
        assert_close(&y, &out, &want);
    }

    #[test]
    fn sum_matches_naive((_, shapes) in (1usize..5).prop_flat_map(bcast_shapes), seed: u64) {
        let ts: Vec<Tensor> = shapes.iter().enumerate().map(|(i, s)| tensor(s, seed + i as u64)).collect();
        let out = bcast_result(&shapes);
        let y = run_op(Op::Sum, inputs(&ts)).unwrap();
        let want = naive_bcast(&out, &ts.iter().collect::<Vec<_>>(), |v| v.iter().sum());
        assert_close(&y, &out, &want);
    }

    #[test]
    fn unary_and_batchnorm_match_naive(shape in prop::collection::vec(1usize..5, 2..5), seed: u64, eps in 1e-5f32..1e-1) {
        let x = tensor(&shape, seed);
        let xd: Vec<f64> = x.as_f32().unwrap().iter().map(|&v| v as f64).collect();
        let relu: Vec<f64> = xd.iter().map(|v| v.max(0.0)).collect();
        assert_close(&run_op(Op::Relu, inputs(std::slice::from_ref(&x))).unwrap(), &shape, &relu);
        let clip: Vec<f64> = xd.iter().map(|v| v.clamp(-0.25, 0.5)).collect();
        let op = Op::Clip { min: F32(-0.25), max: F32(0.5) };
        assert_close(&run_op(op, inputs(std::slice::from_ref(&x))).unwrap(), &shape, &clip);

        let c = shape[1];
        let p: Vec<Tensor> = (0..4).map(|i| tensor(&[c], seed + 10 + i)).collect();
        let var: Vec<f32> = p[3].as_f32().unwrap().iter().map(|v| v.abs()).collect();
        let var = Tensor::f32(vec![c], var).unwrap();
        let inner: usize = shape[2..].iter().product();
        let pv = |t: &Tensor, i: usize| t.as_f32().unwrap()[i] as f64;
        let want: Vec<f64> = xd.iter().enumerate().map(|(i, v)| {
            let ch = (i / inner) % c;
            (v - pv(&p[2], ch)) / (pv(&var, ch) + eps as f64).sqrt() * pv(&p[0], ch) + pv(&p[1], ch)
        }).collect();
        let mut ops = inputs(&[x]);
        ops.extend([p[0].clone(), p[1].clone(), p[2].clone(), var].map(Operand::Const));
        let y = run_op(Op::BatchNorm { epsilon: F32(eps) }, ops).unwrap();
        assert_close(&y, &shape, &want);
    }

    #[test]
    fn softmax_matches_naive(shape in prop::collection::vec(1usize..5, 1..5), axis in 0usize..4, seed: u64) {
        let axis = axis % shape.len();
        let x = tensor(&shape, seed);
        let xd = x.as_f32().unwrap();
        let st = strides(&shape);
        let want: Vec<f64> = (0..xd.len()).map(|i| {
            let idx = unravel(i, &shape);
            let base = i - idx[axis] * st[axis];
            let row: Vec<f64> = (0..shape[axis]).map(|k| xd[base + k * st[axis]] as f64).collect();
            let m = row.iter().cloned().fold(f64::MIN, f64::max);
            (xd[i] as f64 - m).exp() / row.iter().map(|v| (v - m).exp()).sum::<f64>()
        }).collect();
        let y = run_op(Op::Softmax { axis: axis as u64 }, inputs(&[x])).unwrap();
        assert_close(&y, &shape, &want);
    }

    #[test]
    fn lrn_matches_naive(
        n in 1usize..3, c in 1usize..8, h in 1usize..4, w in 1usize..4, size in 1u64..7,
        alpha in 1e-4f32..1.0, beta in 0.5f32..1.0, bias in 0.5f32..2.0, seed: u64,
    ) {
        let x = tensor(&[n, c, h, w], seed);
        let xd = x.as_f32().unwrap();
        let plane = h * w;
        let s = size as i64;
        let want: Vec<f64> = (0..xd.len()).map(|i| {
            let ch = ((i / plane) % c) as i64;
            let base = i - ch as usize * plane;
            let lo = (ch - (s - 1) / 2).max(0);
            let hi = (ch + (s - 1 + 1) / 2).min(c as i64 - 1);
            let sq: f64 = (lo..=hi).map(|k| (xd[base + k as usize * plane] as f64).powi(2)).sum();
            xd[i] as f64 / (bias as f64 + alpha as f64 / s as f64 * sq).powf(beta as f64)
        }).collect();
        let op = Op::Lrn { size, alpha: F32(alpha), beta: F32(beta), bias: F32(bias) };
        assert_close(&run_op(op, inputs(&[x])).unwrap(), &[n, c, h, w], &want);
    }
}

// -------------------------------------------------------------------------- linalg

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn gemm_matches_naive(
        m in 1usize..6, k in 1usize..6, n in 1usize..6, ta: bool, tb: bool,
        c_kind in 0usize..7, alpha in -2.0f32..2.0, beta in prop_oneof![Just(0.0f32), -2.0f32..2.0],
        seed: u64,
    ) {
        let a = tensor(&if ta { [k, m] } else { [m, k] }, seed);
        let b = tensor(&if tb { [n, k] } else { [k, n] }, seed + 1);
        let c_shape: Option<Vec<usize>> = match c_kind {
            0 => None, 1 => Some(vec![]), 2 => Some(vec![1]), 3 => Some(vec![n]),
            4 => Some(vec![m, 1]), 5 => Some(vec![1, n]), _ => Some(vec![m, n]),
        };
        let c = c_shape.as_ref().map(|s| tensor(s, seed + 2));
        let (ad, bd) = (a.as_f32().unwrap(), b.as_f32().unwrap());
        let want: Vec<f64> = (0..m * n).map(|i| {
            let (r, col) = (i / n, i % n);
            let dot: f64 = (0..k).map(|t| {
                let av = if ta { ad[t * m + r] } else { ad[r * k + t] };
                let bv = if tb { bd[col * k + t] } else { bd[t * n + col] };
                av as f64 * bv as f64
            }).sum();
            let cv = match &c {
                Some(c) if beta != 0.0 => c.as_f32().unwrap()[bcast_index(&[r, col], &c.shape)] as f64,
                _ => 0.0,
            };
            alpha as f64 * dot + beta as f64 * cv
        }).collect();
        let mut ops = inputs(&[a, b]);
        ops.extend(c.map(Operand::Const));
        let op = Op::Gemm { alpha: F32(alpha), beta: F32(beta), trans_a: ta, trans_b: tb };
        assert_close(&run_op(op, ops).unwrap(), &[m, n], &want);
    }

    #[test]
    fn matmul_matches_naive(
        (batch, shapes) in bcast_shapes(2), m in 1usize..4, k in 1usize..4, n in 1usize..4,
        a_vec: bool, b_vec: bool, seed: u64,
    ) {
        let _ = batch;
        let a_shape = if a_vec { vec![k] } else { [shapes[0].clone(), vec![m, k]].concat() };
        let b_shape = if b_vec { vec![k] } else { [shapes[1].clone(), vec![k, n]].concat() };
        let a = tensor(&a_shape, seed);
        let b = tensor(&b_shape, seed + 1);
        let a2 = if a_vec { vec![1, k] } else { a_shape.clone() };
        let b2 = if b_vec { vec![k, 1] } else { b_shape.clone() };
        let bs = bcast_result(&[a2[..a2.len() - 2].to_vec(), b2[..b2.len() - 2].to_vec()]);
        let (mm, nn) = (a2[a2.len() - 2], b2[b2.len() - 1]);
        let mut want = Vec::new();
        for bi in 0..bs.iter().product::<usize>() {
            let idx = unravel(bi, &bs);
            let ab = bcast_index(&idx, &a2[..a2.len() - 2]);
            let bb = bcast_index(&idx, &b2[..b2.len() - 2]);
            for r in 0..mm {
                for col in 0..nn {
                    let s: f64 = (0..k).map(|t| {
                        a.as_f32().unwrap()[ab * mm * k + r * k + t] as f64
                            * b.as_f32().unwrap()[bb * k * nn + t * nn + col] as f64
                    }).sum();
                    want.push(s);
                }
            }
        }
        let mut out = bs.clone();
        if !a_vec { out.push(mm); }
        if !b_vec { out.push(nn); }
        assert_close(&run_op(Op::MatMul, inputs(&[a, b])).unwrap(), &out, &want);
    }
}

// -------------------------------------------------------------------------- layout

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn transpose_matches_naive(
        (shape, perm) in prop::collection::vec(1usize..5, 0..6)
            .prop_flat_map(|s| { let r = s.len(); (Just(s), Just((0..r).collect::<Vec<_>>()).prop_shuffle()) }),
        seed: u64,
    ) {
        let x = tensor(&shape, seed);
        let out: Vec<usize> = perm.iter().map(|&p| shape[p]).collect();
        let st = strides(&shape);
        let want: Vec<f64> = (0..x.numel()).map(|i| {
            let idx = unravel(i, &out);
            let src: usize = perm.iter().enumerate().map(|(j, &p)| idx[j] * st[p]).sum();
            x.as_f32().unwrap()[src] as f64
        }).collect();
        let op = Op::Transpose { perm: perm.iter().map(|&p| p as u64).collect() };
        assert_close(&run_op(op, inputs(&[x])).unwrap(), &out, &want);
    }

    #[test]
    fn concat_matches_naive(
        shape in prop::collection::vec(1usize..4, 1..5), axis in 0usize..4,
        extents in prop::collection::vec(1usize..4, 1..4), seed: u64,
    ) {
        let axis = axis % shape.len();
        let ts: Vec<Tensor> = extents.iter().enumerate().map(|(i, &e)| {
            let mut s = shape.clone();
            s[axis] = e;
            tensor(&s, seed + i as u64)
        }).collect();
        let mut out = shape.clone();
        out[axis] = extents.iter().sum();
        let want: Vec<f64> = (0..out.iter().product::<usize>()).map(|i| {
            let mut idx = unravel(i, &out);
            let mut j = 0;
            while idx[axis] >= extents[j] { idx[axis] -= extents[j]; j += 1; }
            let st = strides(&ts[j].shape);
            ts[j].as_f32().unwrap()[idx.iter().zip(&st).map(|(a, b)| a * b).sum::<usize>()] as f64
        }).collect();
        let y = run_op(Op::Concat { axis: axis as u64 }, inputs(&ts)).unwrap();
        assert_close(&y, &out, &want);
    }

    #[test]
    fn reshape_and_flatten_keep_data(shape in prop::collection::vec(1usize..5, 1..5), axis in 0u64..5, seed: u64) {
        let x = tensor(&shape, seed);
        let want: Vec<f64> = x.as_f32().unwrap().iter().map(|&v| v as f64).collect();
        let n: usize = shape.iter().product();
        let op = Op::Reshape { shape: vec![Dim::Fixed(n as u64)] };
        assert_close(&run_op(op, inputs(std::slice::from_ref(&x))).unwrap(), &[n], &want);
        let axis = axis % (shape.len() as u64 + 1);
        let head: usize = shape[..axis as usize].iter().product();
        let y = run_op(Op::Flatten { axis }, inputs(&[x])).unwrap();
        assert_close(&y, &[head, n / head], &want);
    }
}
