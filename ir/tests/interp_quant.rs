//! The integer interpreter against naive references written here from the op doc
//! comments (exact i64 loops over the definitions), on random shapes and data
//! (proptest); plus quantize's ties and clamp, both dequantize forms, integer layout ops,
//! thread splitting of an integer graph and overflow errors.

use fqc_ir::infer::infer;
use fqc_ir::*;
use proptest::prelude::*;

#[rustfmt::skip]
const U4: DType = DType::Int { signed: false, bits: 4 };
#[rustfmt::skip]
const I4: DType = DType::Int { signed: true, bits: 4 };

/// Deterministic pseudo-random integers in `[lo, hi]`.
fn ints(seed: u64, n: usize, (lo, hi): (i64, i64)) -> Vec<i64> {
    let mut s = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            lo + ((s >> 33) % (hi - lo + 1) as u64) as i64
        })
        .collect()
}

fn range(d: DType) -> (i64, i64) {
    d.quant_range().unwrap_or((-1000, 1000))
}

/// A tensor of `dtype`'s storage holding `v`.
fn tensor(dtype: DType, shape: &[usize], v: &[i64]) -> Tensor {
    let data = match dtype {
        DType::F32 => TensorData::F32(v.iter().map(|&x| x as f32).collect()),
        DType::I32 => TensorData::I32(v.iter().map(|&x| x as i32).collect()),
        DType::Int { signed: false, .. } => TensorData::U8(v.iter().map(|&x| x as u8).collect()),
        _ => TensorData::I8(v.iter().map(|&x| x as i8).collect()),
    };
    Tensor {
        shape: shape.to_vec(),
        data,
    }
}

fn to_i64(t: &Tensor) -> Vec<i64> {
    match &t.data {
        TensorData::I32(v) => v.iter().map(|&x| x.into()).collect(),
        TensorData::I8(v) => v.iter().map(|&x| x.into()).collect(),
        TensorData::U8(v) => v.iter().map(|&x| x.into()).collect(),
        d => panic!("not an integer tensor: {d:?}"),
    }
}

/// An operand of a one-node test graph.
enum Arg {
    /// A graph input fed as f32 and quantized (scale 1) to this dtype.
    In(DType, Vec<usize>, Vec<i64>),
    /// A constant of this dtype.
    Const(DType, Vec<usize>, Vec<i64>),
}

fn add_node(g: &mut Graph, op: Op, inputs: &[Value]) -> Option<Value> {
    let tys: Vec<&TensorType> = inputs.iter().map(|&v| g.ty(v)).collect();
    let ty = infer(&op, &tys).ok()?;
    Some(g.add_node(op, inputs.to_vec(), ty, "n", None))
}

fn quantize(dtype: DType) -> Op {
    Op::Quantize {
        dtype,
        scale: F32(1.0),
        offset: F32(0.0),
    }
}

/// Runs `op` on `args`; `None` if it does not type-check.
fn run_int(op: Op, args: Vec<Arg>, threads: usize) -> Option<Result<Tensor>> {
    let mut g = Graph::new("t");
    let mut vals = Vec::new();
    let mut inputs = Vec::new();
    for (i, a) in args.into_iter().enumerate() {
        match a {
            Arg::In(dt, shape, v) => {
                let x = g.add_input(
                    format!("x{i}"),
                    TensorType::f32(Shape::fixed(&dims(&shape))),
                );
                inputs.push(tensor(DType::F32, &shape, &v));
                vals.push(if dt == DType::F32 {
                    x
                } else {
                    add_node(&mut g, quantize(dt), &[x]).unwrap()
                });
            }
            Arg::Const(dt, shape, v) => {
                let ty = TensorType::new(dt, Shape::fixed(&dims(&shape)));
                vals.push(g.add_const(None, ty, tensor(dt, &shape, &v)));
            }
        }
    }
    let y = add_node(&mut g, op, &vals)?;
    g.set_outputs(vec![y]);
    verify(&g).unwrap();
    let opts = RunOptions { threads };
    Some(run_with(&g, &inputs, &opts).map(|mut o| o.remove(0)))
}

fn dims(s: &[usize]) -> Vec<u64> {
    s.iter().map(|&d| d as u64).collect()
}

fn window(k: [u64; 2], s: [u64; 2], p: [u64; 4], d: [u64; 2], ceil_mode: bool) -> Window {
    Window {
        kernel: k,
        strides: s,
        pads: p,
        dilations: d,
        ceil_mode,
    }
}

/// Taps of output `o` along one axis: in-range input indices.
fn taps(win: &Window, axis: usize, o: usize, len: usize) -> Vec<usize> {
    (0..win.kernel[axis])
        .map(|t| (o as u64 * win.strides[axis] + t * win.dilations[axis]) as i64)
        .map(|i| i - win.pads[axis] as i64)
        .filter(|&i| i >= 0 && i < len as i64)
        .map(|i| i as usize)
        .collect()
}

fn ref_qconv(
    (x, xs): (&[i64], [usize; 4]),
    (w, ws): (&[i64], [usize; 4]),
    bias: Option<&[i64]>,
    win: &Window,
    group: usize,
) -> (Vec<usize>, Vec<i64>) {
    let oh = win.output_extent(0, xs[2] as u64).unwrap() as usize;
    let ow = win.output_extent(1, xs[3] as u64).unwrap() as usize;
    let (m, cg) = (ws[0], ws[1]);
    let mut y = Vec::new();
    for n in 0..xs[0] {
        for oc in 0..m {
            let ci0 = oc / (m / group) * cg;
            for oy in 0..oh {
                for ox in 0..ow {
                    let mut s = bias.map_or(0, |b| b[oc]);
                    for c in 0..cg {
                        for ki in 0..ws[2] {
                            for kj in 0..ws[3] {
                                // Tap (ki, kj) of this window, if inside the input.
                                let iy = (oy as u64 * win.strides[0]
                                    + ki as u64 * win.dilations[0])
                                    .checked_sub(win.pads[0])
                                    .filter(|&i| i < xs[2] as u64);
                                let ix = (ox as u64 * win.strides[1]
                                    + kj as u64 * win.dilations[1])
                                    .checked_sub(win.pads[1])
                                    .filter(|&i| i < xs[3] as u64);
                                let (Some(iy), Some(ix)) = (iy, ix) else {
                                    continue;
                                };
                                let xi = ((n * xs[1] + ci0 + c) * xs[2] + iy as usize) * xs[3];
                                s += x[xi + ix as usize]
                                    * w[((oc * cg + c) * ws[2] + ki) * ws[3] + kj];
                            }
                        }
                    }
                    y.push(s);
                }
            }
        }
    }
    (vec![xs[0], m, oh, ow], y)
}

fn pick(i: usize, from: &[DType]) -> DType {
    from[i % from.len()]
}

const XS: [DType; 3] = [U4, DType::U8, DType::I8];
const WS: [DType; 3] = [DType::Ternary, I4, DType::I8];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn qconv_matches_reference(
        n in 1usize..3, cg in 1usize..4, mg in 1usize..4, groups in 1usize..4,
        depthwise in any::<bool>(), h in 1usize..9, w in 1usize..9,
        k in [1u64..4, 1u64..4], s in [1u64..3, 1u64..3], d in [1u64..3, 1u64..3],
        p in [0u64..3, 0u64..3, 0u64..3, 0u64..3], dts in (0usize..3, 0usize..3),
        bias in any::<bool>(), seed in any::<u64>(),
    ) {
        let (cg, groups) = if depthwise { (1, groups + 1) } else { (cg, groups) };
        let c = cg * groups;
        let m = mg * groups;
        let (xd, wd) = (pick(dts.0, &XS), pick(dts.1, &WS));
        let xs = [n, c, h, w];
        let ws = [m, cg, k[0] as usize, k[1] as usize];
        let xv = ints(seed, xs.iter().product(), range(xd));
        let wv = ints(seed ^ 1, ws.iter().product(), range(wd));
        let bv = ints(seed ^ 2, m, (-5000, 5000));
        let win = window(k, s, p, d, false);
        let mut args = vec![Arg::In(xd, xs.to_vec(), xv.clone()), Arg::Const(wd, ws.to_vec(), wv.clone())];
        if bias {
            args.push(Arg::Const(DType::I32, vec![m], bv.clone()));
        }
        let op = Op::QConv { window: win.clone(), group: groups as u64 };
        let Some(got) = run_int(op, args, 1) else { return Err(TestCaseError::reject("shape")) };
        let got = got.unwrap();
        let (shape, want) = ref_qconv((&xv, xs), (&wv, ws), bias.then_some(&bv[..]), &win, groups);
        prop_assert_eq!(&got.shape, &shape);
        prop_assert_eq!(to_i64(&got), want);
    }

    #[test]
    fn qgemm_matches_reference(
        m in 1usize..6, k in 1usize..40, n in 1usize..7, trans_b in any::<bool>(),
        dts in (0usize..3, 0usize..3), bias in 0usize..3, seed in any::<u64>(),
    ) {
        let (ad, bd) = (pick(dts.0, &XS), pick(dts.1, &WS));
        let a = ints(seed, m * k, range(ad));
        let b = ints(seed ^ 1, k * n, range(bd));
        let bshape = if trans_b { vec![n, k] } else { vec![k, n] };
        let bias_shape = [vec![n], vec![1, n]][bias % 2].clone();
        let bv = ints(seed ^ 2, n, (-100_000, 100_000));
        let mut args = vec![Arg::In(ad, vec![m, k], a.clone()), Arg::Const(bd, bshape, b.clone())];
        if bias > 0 {
            args.push(Arg::Const(DType::I32, bias_shape, bv.clone()));
        }
        let got = run_int(Op::QGemm { trans_b }, args, 1).unwrap().unwrap();
        let mut want = Vec::new();
        for i in 0..m {
            for j in 0..n {
                let mut s = if bias > 0 { bv[j] } else { 0 };
                for t in 0..k {
                    s += a[i * k + t] * if trans_b { b[j * k + t] } else { b[t * n + j] };
                }
                want.push(s);
            }
        }
        prop_assert_eq!(&got.shape, &vec![m, n]);
        prop_assert_eq!(to_i64(&got), want);
    }

    #[test]
    fn requantize_counts_unsorted_thresholds(
        rank4 in any::<bool>(), n in 1usize..3, c in 1usize..5, hw in 1usize..4,
        out in 0usize..4, seed in any::<u64>(),
    ) {
        let dtype = [U4, DType::Ternary, I4, DType::int(false, 2).unwrap()][out];
        let (qmin, qmax) = range(dtype);
        let l = (qmax - qmin) as usize;
        let shape = if rank4 { vec![n, c, hw, hw + 1] } else { vec![n, c] };
        let inner: usize = shape[2..].iter().product();
        let acc = ints(seed, shape.iter().product(), (-60, 60));
        let t = ints(seed ^ 1, c * l, (-50, 50)); // random order, with repeats
        let desc: Vec<i64> = ints(seed ^ 2, c, (-1, 1));
        let args = vec![
            Arg::Const(DType::I32, shape.clone(), acc.clone()),
            Arg::Const(DType::I32, vec![c, l], t.clone()),
            Arg::Const(DType::I8, vec![c], desc.clone()),
        ];
        let got = run_int(Op::Requantize { dtype, scale: F32(0.5) }, args, 1).unwrap().unwrap();
        let want: Vec<i64> = acc.iter().enumerate().map(|(i, &a)| {
            let ch = (i / inner) % c;
            let th = &t[ch * l..(ch + 1) * l];
            let cnt = if desc[ch] == 0 {
                th.iter().filter(|&&x| x <= a).count()
            } else {
                th.iter().filter(|&&x| x >= a).count()
            };
            qmin + cnt as i64
        }).collect();
        prop_assert!(got.data.holds(dtype));
        prop_assert_eq!(to_i64(&got), want);
    }

    #[test]
    fn scaled_add_broadcasts(
        a_dims in prop::collection::vec(1usize..4, 0..4),
        mask in prop::collection::vec(any::<bool>(), 4), drop in 0usize..3,
        ka in -300i64..300, kb in -300i64..300, dts in (0usize..3, 0usize..3), seed in any::<u64>(),
    ) {
        // b: a's shape with some extents set to 1 and leading axes dropped.
        let mut b_dims: Vec<usize> = a_dims.iter().zip(&mask).map(|(&d, &m)| if m { 1 } else { d }).collect();
        b_dims.drain(..drop.min(b_dims.len()));
        let swap = mask[3];
        let (sa, sb) = if swap { (b_dims.clone(), a_dims.clone()) } else { (a_dims.clone(), b_dims.clone()) };
        let (ad, bd) = (pick(dts.0, &XS), pick(dts.1, &[DType::Ternary, U4, DType::I8]));
        let a = ints(seed, sa.iter().product(), range(ad));
        let b = ints(seed ^ 1, sb.iter().product(), range(bd));
        let args = vec![
            Arg::In(ad, sa.clone(), a.clone()),
            Arg::In(bd, sb.clone(), b.clone()),
            Arg::Const(DType::I32, vec![], vec![ka]),
            Arg::Const(DType::I32, vec![], vec![kb]),
        ];
        let got = run_int(Op::ScaledAdd, args, 1).unwrap().unwrap();
        let out = a_dims.clone();
        let total: usize = out.iter().product();
        let read = |v: &[i64], s: &[usize], idx: &[usize]| {
            let off = out.len() - s.len();
            let mut flat = 0;
            for (i, &e) in s.iter().enumerate() {
                flat = flat * e + if e == 1 { 0 } else { idx[off + i] };
            }
            v[flat]
        };
        let mut want = Vec::new();
        for f in 0..total {
            let mut idx = vec![0; out.len()];
            let mut r = f;
            for (i, &e) in out.iter().enumerate().rev() {
                idx[i] = r % e;
                r /= e;
            }
            want.push(read(&a, &sa, &idx) * ka + read(&b, &sb, &idx) * kb);
        }
        prop_assert_eq!(&got.shape, &out);
        prop_assert_eq!(to_i64(&got), want);
    }

    #[test]
    fn sumpool_matches_reference(
        n in 1usize..3, c in 1usize..3, h in 1usize..8, w in 1usize..8,
        k in [1u64..4, 1u64..4], s in [1u64..3, 1u64..3], d in [1u64..3, 1u64..3],
        p in [0u64..3, 0u64..3, 0u64..3, 0u64..3], ceil_mode in any::<bool>(),
        dt in 0usize..3, seed in any::<u64>(),
    ) {
        let dtype = pick(dt, &XS);
        let shape = vec![n, c, h, w];
        let x = ints(seed, shape.iter().product(), range(dtype));
        let win = window(k, s, p, d, ceil_mode);
        let Some(got) = run_int(Op::SumPool { window: win.clone() }, vec![Arg::In(dtype, shape, x.clone())], 1)
        else { return Err(TestCaseError::reject("shape")) };
        let got = got.unwrap();
        let oh = win.output_extent(0, h as u64).unwrap() as usize;
        let ow = win.output_extent(1, w as u64).unwrap() as usize;
        let mut want = Vec::new();
        for plane in 0..n * c {
            for oy in 0..oh {
                for ox in 0..ow {
                    let mut sum = 0;
                    for iy in taps(&win, 0, oy, h) {
                        for ix in taps(&win, 1, ox, w) {
                            sum += x[(plane * h + iy) * w + ix];
                        }
                    }
                    want.push(sum);
                }
            }
        }
        prop_assert_eq!(&got.shape, &vec![n, c, oh, ow]);
        prop_assert_eq!(to_i64(&got), want);
        let gs = run_int(Op::GlobalSumPool, vec![Arg::In(dtype, vec![n, c, h, w], x.clone())], 1);
        let gs = to_i64(&gs.unwrap().unwrap());
        let want: Vec<i64> = x.chunks(h * w).map(|p| p.iter().sum()).collect();
        prop_assert_eq!(gs, want);
    }

    #[test]
    fn int_layout_ops_pass_values_through(
        h in 2usize..6, w in 2usize..6, dt in 0usize..4, seed in any::<u64>(),
    ) {
        // The same integers through the float op and the integer op agree exactly.
        let dtype = [U4, DType::U8, DType::I8, DType::Ternary][dt];
        let shape = vec![2, 3, h, w];
        let x = ints(seed, shape.iter().product(), range(dtype));
        let ops = [
            Op::MaxPool { window: window([2, 2], [1, 2], [1, 0, 1, 1], [1, 1], true) },
            Op::GlobalMaxPool,
            Op::Transpose { perm: vec![2, 0, 3, 1] },
            Op::Flatten { axis: 2 },
            Op::Reshape { shape: vec![Dim::Fixed(3), Dim::Fixed(2 * h as u64), Dim::Fixed(w as u64)] },
        ];
        for op in ops {
            let f = run_int(op.clone(), vec![Arg::In(DType::F32, shape.clone(), x.clone())], 1).unwrap().unwrap();
            let q = run_int(op.clone(), vec![Arg::In(dtype, shape.clone(), x.clone())], 1).unwrap().unwrap();
            prop_assert!(q.data.holds(dtype), "{}", op.name());
            prop_assert_eq!(&q.shape, &f.shape);
            let fv: Vec<i64> = f.as_f32().unwrap().iter().map(|&v| v as i64).collect();
            prop_assert_eq!(to_i64(&q), fv, "{}", op.name());
        }
        let y = ints(seed ^ 1, 2 * 2 * h * w, range(dtype));
        let args = vec![Arg::In(dtype, shape.clone(), x.clone()), Arg::In(dtype, vec![2, 2, h, w], y.clone())];
        let q = run_int(Op::Concat { axis: 1 }, args, 1).unwrap().unwrap();
        let mut want = Vec::new();
        for b in 0..2 {
            want.extend_from_slice(&x[b * 3 * h * w..(b + 1) * 3 * h * w]);
            want.extend_from_slice(&y[b * 2 * h * w..(b + 1) * 2 * h * w]);
        }
        prop_assert_eq!(to_i64(&q), want);
    }
}

/// Exact ties, a value just below a tie, values past the clamp, NaN.
#[rustfmt::skip]
const TIES: [f32; 12] = [0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 0.49999997, 3.5, 7.5, 100.0, -100.0, f32::NAN];

#[test]
fn quantize_rounds_half_to_even_and_clamps() {
    let x = TIES;
    let shape = vec![x.len()];
    let cases: [(DType, [i64; 12]); 4] = [
        (DType::U8, [0, 2, 2, 0, 0, 0, 0, 4, 8, 100, 0, 0]),
        (I4, [0, 2, 2, 0, -2, -2, 0, 4, 7, 7, -7, 0]),
        (DType::Ternary, [0, 1, 1, 0, -1, -1, 0, 1, 1, 1, -1, 0]),
        (U4, [0, 2, 2, 0, 0, 0, 0, 4, 8, 15, 0, 0]),
    ];
    for (dtype, want) in cases {
        let mut g = Graph::new("q");
        let xi = g.add_input("x", TensorType::f32(Shape::fixed(&[x.len() as u64])));
        let q = add_node(&mut g, quantize(dtype), &[xi]).unwrap();
        g.set_outputs(vec![q]);
        let t = Tensor::f32(shape.clone(), x.to_vec()).unwrap();
        let got = run(&g, &[t]).unwrap().remove(0);
        assert!(got.data.holds(dtype));
        assert_eq!(to_i64(&got), want, "{dtype}");
    }
    // With an offset and a non-power-of-two scale: the f32 formula, element for element.
    let mut g = Graph::new("q");
    let xi = g.add_input("x", TensorType::f32(Shape::fixed(&[3])));
    let op = Op::Quantize {
        dtype: DType::U8,
        scale: F32(0.1),
        offset: F32(0.1),
    };
    let q = nd(&mut g, op, &[xi]);
    g.set_outputs(vec![q]);
    let xs = [0.35f32, 0.45, 0.1];
    let got = run(&g, &[Tensor::f32(vec![3], xs.to_vec()).unwrap()]).unwrap();
    for (q, v) in to_i64(&got[0]).into_iter().zip(xs) {
        assert_eq!(q, ((v - 0.1f32) / 0.1f32).round_ties_even() as i64);
    }
}

#[test]
fn dequantize_both_forms() {
    // Per-tensor scale from the quantize type.
    let x = [-3.0, 0.0, 2.0, 7.0];
    let mut g = Graph::new("d");
    let xi = g.add_input("x", TensorType::f32(Shape::fixed(&[2, 2])));
    let op = Op::Quantize {
        dtype: I4,
        scale: F32(0.25),
        offset: F32(0.0),
    };
    let q = nd(&mut g, op, &[xi]);
    let d = nd(&mut g, Op::Dequantize, &[q]);
    // Per-channel scale (axis 0) of a ternary constant.
    let scales = fcst(&mut g, &[0.5, 3.0]);
    let mut wty = TensorType::new(DType::Ternary, Shape::fixed(&[2, 3]));
    wty.scale = Some(Scale::Channel { axis: 0, scales });
    let w = g.add_const(
        None,
        wty,
        tensor(DType::Ternary, &[2, 3], &[1, 0, -1, -1, 1, 1]),
    );
    let dw = nd(&mut g, Op::Dequantize, &[w]);
    // Accumulator form: acc * scale[c] + bias[c] over axis 1.
    let acc = cst(&mut g, DType::I32, &[1, 2, 1, 2], &[10, -3, 1000, 7]);
    let s = fcst(&mut g, &[0.1, 0.003]);
    let b = fcst(&mut g, &[1.0, -0.5]);
    let da = add_node(&mut g, Op::Dequantize, &[acc, s, b]).unwrap();
    let dn = add_node(&mut g, Op::Dequantize, &[acc, s]).unwrap();
    g.set_outputs(vec![d, dw, da, dn]);
    verify(&g).unwrap();
    let out = run(&g, &[Tensor::f32(vec![2, 2], x.to_vec()).unwrap()]).unwrap();
    // -3/0.25 = -12 clamps to -7; 8 and 28 clamp to 7.
    assert_eq!(
        out[0].as_f32().unwrap(),
        &[-7.0 * 0.25, 0.0, 7.0 * 0.25, 7.0 * 0.25]
    );
    assert_eq!(out[1].as_f32().unwrap(), &[0.5, 0.0, -0.5, -3.0, 3.0, 3.0]);
    let want: Vec<f32> = [(10, 0), (-3, 0), (1000, 1), (7, 1)]
        .iter()
        .map(|&(a, c): &(i32, usize)| a as f32 * [0.1f32, 0.003][c] + [1.0f32, -0.5][c])
        .collect();
    assert_eq!(out[2].as_f32().unwrap(), &want[..]);
    let want: Vec<f32> = [(10, 0), (-3, 0), (1000, 1), (7, 1)]
        .iter()
        .map(|&(a, c): &(i32, usize)| a as f32 * [0.1f32, 0.003][c])
        .collect();
    assert_eq!(out[3].as_f32().unwrap(), &want[..]);
}

fn cst(g: &mut Graph, dt: DType, shape: &[usize], v: &[i64]) -> Value {
    let ty = TensorType::new(dt, Shape::fixed(&dims(shape)));
    g.add_const(None, ty, tensor(dt, shape, v))
}

fn fcst(g: &mut Graph, v: &[f32]) -> Value {
    let t = Tensor::f32(vec![v.len()], v.to_vec()).unwrap();
    g.add_const(None, TensorType::f32(t.static_shape()), t)
}

fn nd(g: &mut Graph, op: Op, inputs: &[Value]) -> Value {
    let name = op.name();
    add_node(g, op, inputs).unwrap_or_else(|| panic!("{name} does not type-check"))
}

fn rq(dtype: DType, scale: f32) -> Op {
    Op::Requantize {
        dtype,
        scale: F32(scale),
    }
}

/// quantize → qconv → requantize → maxpool → sumpool → requantize → flatten → qgemm →
/// dequantize, plus a u4 and an i32 output, on a batched input `[N,3,9,9]`.
fn int_graph() -> Graph {
    let mut g = Graph::new("int");
    let shape = Shape(vec![
        Dim::Batch,
        Dim::Fixed(3),
        Dim::Fixed(9),
        Dim::Fixed(9),
    ]);
    let x = g.add_input("x", TensorType::f32(shape));
    let q = Op::Quantize {
        dtype: DType::U8,
        scale: F32(1.0 / 64.0),
        offset: F32(-0.5),
    };
    let q = nd(&mut g, q, &[x]);
    let w = cst(
        &mut g,
        DType::Ternary,
        &[4, 3, 3, 3],
        &ints(7, 108, (-1, 1)),
    );
    let b = cst(&mut g, DType::I32, &[4], &[5, -10, 0, 100]);
    let window3 = window([3, 3], [1, 1], [1, 1, 1, 1], [1, 1], false);
    let acc = nd(
        &mut g,
        Op::QConv {
            window: window3,
            group: 1,
        },
        &[q, w, b],
    );
    let t = cst(&mut g, DType::I32, &[4, 15], &ints(8, 60, (-400, 400)));
    let fl = cst(&mut g, DType::I8, &[4], &[0, 1, 0, 1]);
    let r = nd(&mut g, rq(U4, 0.1), &[acc, t, fl]);
    let mp = Op::MaxPool {
        window: window([2, 2], [2, 2], [0; 4], [1, 1], true),
    };
    let mp = nd(&mut g, mp, &[r]);
    let sp = Op::SumPool {
        window: window([2, 2], [1, 1], [0, 0, 1, 1], [1, 1], false),
    };
    let sp = nd(&mut g, sp, &[mp]);
    let t2 = cst(&mut g, DType::I32, &[4, 14], &ints(9, 56, (0, 60)));
    let fl2 = cst(&mut g, DType::I8, &[4], &[0; 4]);
    let r2 = nd(&mut g, rq(I4, 0.2), &[sp, t2, fl2]);
    let f = nd(&mut g, Op::Flatten { axis: 1 }, &[r2]);
    let wf = cst(&mut g, DType::I8, &[10, 100], &ints(10, 1000, (-127, 127)));
    let fc = nd(&mut g, Op::QGemm { trans_b: true }, &[f, wf]);
    let s = fcst(&mut g, &[0.01; 10]);
    let out = nd(&mut g, Op::Dequantize, &[fc, s]);
    g.set_outputs(vec![out, mp, fc]);
    verify(&g).unwrap();
    g
}

#[test]
fn threads_split_integer_graphs_bit_exactly() {
    let g = int_graph();
    let n = 5 * 3 * 9 * 9;
    let xs: Vec<f32> = ints(3, n, (-40, 100))
        .iter()
        .map(|&v| v as f32 / 64.0)
        .collect();
    let input = Tensor::f32(vec![5, 3, 9, 9], xs).unwrap();
    let one = run_with(&g, std::slice::from_ref(&input), &RunOptions { threads: 1 }).unwrap();
    let two = run_with(&g, std::slice::from_ref(&input), &RunOptions { threads: 2 }).unwrap();
    assert_eq!(one, two);
    assert!(one[1].data.holds(U4) && one[1].shape == [5, 4, 5, 5]);
    assert!(matches!(one[2].data, TensorData::I32(_)));
    // Each item alone gives the same rows as the batch (the split is real, not trivial).
    let per: usize = 3 * 9 * 9;
    let item = Tensor::f32(
        vec![1, 3, 9, 9],
        input.as_f32().unwrap()[2 * per..3 * per].to_vec(),
    )
    .unwrap();
    let alone = run(&g, &[item]).unwrap();
    assert_eq!(
        alone[2].data,
        TensorData::I32(to_i64(&one[2])[20..30].iter().map(|&v| v as i32).collect())
    );
}

fn expect_overflow(r: Result<Tensor>) {
    match r {
        Err(IrError::Eval { msg, .. }) => assert!(msg.contains("overflows i32"), "{msg}"),
        other => panic!("expected an overflow error, got {other:?}"),
    }
}

fn qconv_op(k: u64) -> Op {
    let window = window([k, k], [1, 1], [0; 4], [1, 1], false);
    Op::QConv { window, group: 1 }
}

#[test]
fn overflow_is_an_error_not_a_wrapped_value() {
    // 8192·9 products of 255·127 sum to 2.39e9 > i32::MAX.
    let (c, k) = (8192usize, 3usize);
    let conv = |wv: i64| {
        let args = vec![
            Arg::In(DType::U8, vec![1, c, k, k], vec![255; c * k * k]),
            Arg::Const(DType::I8, vec![1, c, k, k], vec![wv; c * k * k]),
        ];
        run_int(qconv_op(k as u64), args, 1).unwrap()
    };
    expect_overflow(conv(127));
    // Just below the limit stays exact: 8192·9·255·114 = 2_143_272_960 fits.
    assert_eq!(
        to_i64(&conv(114).unwrap()),
        vec![(c * k * k) as i64 * 255 * 114]
    );
    // The bias can push a small sum over.
    let args = vec![
        Arg::In(DType::U8, vec![1, 1, 1, 1], vec![1]),
        Arg::Const(DType::Ternary, vec![1, 1, 1, 1], vec![1]),
        Arg::Const(DType::I32, vec![1], vec![i32::MAX as i64]),
    ];
    expect_overflow(run_int(qconv_op(1), args, 1).unwrap());
    let args = vec![
        Arg::In(DType::I8, vec![1, 2], vec![-127, -127]),
        Arg::Const(DType::I8, vec![2, 1], vec![127, 127]),
        Arg::Const(DType::I32, vec![1], vec![i32::MIN as i64 + 100]),
    ];
    expect_overflow(run_int(Op::QGemm { trans_b: false }, args, 1).unwrap());
    let args = vec![
        Arg::In(DType::U8, vec![2], vec![1, 2]),
        Arg::In(DType::U8, vec![1], vec![0]),
        Arg::Const(DType::I32, vec![], vec![i32::MAX as i64]),
        Arg::Const(DType::I32, vec![], vec![1]),
    ];
    expect_overflow(run_int(Op::ScaledAdd, args, 1).unwrap());
}
