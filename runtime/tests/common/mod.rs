//! Hand-built graphs for the artifact tests: together they use every `Op` variant
//! (float and quantized), every dtype, per-tensor and per-channel scales (incl. a
//! per-channel scale on a graph input, a forward reference), inline and digest-printed
//! constants, named and unnamed values and nodes. Nodes are typed with `infer`.

#![allow(dead_code)]

use fqc_ir::infer::infer;
use fqc_ir::{
    BinaryOp, DType, Dim, Graph, Op, Scale, Shape, Tensor, TensorData, TensorType, Value, Window,
    F32,
};

pub fn node(g: &mut Graph, op: Op, inputs: &[Value], name: &str) -> Value {
    let tys: Vec<TensorType> = inputs.iter().map(|&v| g.ty(v).clone()).collect();
    let refs: Vec<&TensorType> = tys.iter().collect();
    let ty = infer(&op, &refs).unwrap_or_else(|e| panic!("{name}: {e}"));
    let value_name = (!name.is_empty()).then(|| format!("{name}:0"));
    g.add_node(op, inputs.to_vec(), ty, name, value_name)
}

/// Deterministic pseudo-random numbers (xorshift), so tests need no RNG crate.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    pub fn range(&mut self, lo: i64, hi: i64) -> i64 {
        lo + (self.next() % ((hi - lo + 1) as u64)) as i64
    }
    pub fn f32(&mut self) -> f32 {
        (self.next() % 2001) as f32 / 1000.0 - 1.0
    }
}

fn numel(dims: &[u64]) -> usize {
    dims.iter().product::<u64>() as usize
}

fn udims(dims: &[u64]) -> Vec<usize> {
    dims.iter().map(|&d| d as usize).collect()
}

pub fn cf32(g: &mut Graph, rng: &mut Rng, name: &str, dims: &[u64]) -> Value {
    let data = (0..numel(dims)).map(|_| rng.f32()).collect();
    let t = Tensor::f32(udims(dims), data).unwrap();
    g.add_const(Some(name.into()), TensorType::f32(Shape::fixed(dims)), t)
}

/// Positive f32 constant (usable as per-channel scales).
pub fn cpos(g: &mut Graph, rng: &mut Rng, name: &str, n: u64) -> Value {
    let data = (0..n).map(|_| 0.01 + rng.f32().abs()).collect();
    let t = Tensor::f32(vec![n as usize], data).unwrap();
    g.add_const(Some(name.into()), TensorType::f32(Shape::fixed(&[n])), t)
}

/// An integer constant of `dtype` with elements drawn over its whole range.
pub fn cint(
    g: &mut Graph,
    rng: &mut Rng,
    name: Option<&str>,
    dtype: DType,
    dims: &[u64],
    scale: Option<Scale>,
) -> Value {
    let n = numel(dims);
    let (lo, hi) = match dtype {
        DType::I32 => (-100_000, 100_000),
        DType::I64 => (i64::MIN / 4, i64::MAX / 4),
        d => d.int_range().unwrap(),
    };
    let mut vals = (0..n)
        .map(|_| rng.range(lo, hi))
        .collect::<Vec<_>>()
        .into_iter();
    let data = match dtype {
        DType::I32 => TensorData::I32(vals.map(|x| x as i32).collect()),
        DType::I64 => TensorData::I64(vals.by_ref().collect()),
        DType::Int { signed: false, .. } => TensorData::U8(vals.map(|x| x as u8).collect()),
        _ => TensorData::I8(vals.map(|x| x as i8).collect()),
    };
    let ty = TensorType {
        dtype,
        shape: Shape::fixed(dims),
        scale,
    };
    let t = Tensor {
        shape: udims(dims),
        data,
    };
    g.add_const(name.map(Into::into), ty, t)
}

/// Sorted thresholds `i32[c, levels]` and all-ascending flags `i8[c]` for requantize.
pub fn thresholds(g: &mut Graph, rng: &mut Rng, c: u64, dtype: DType) -> (Value, Value) {
    let (qmin, qmax) = dtype.quant_range().unwrap();
    let l = (qmax - qmin) as u64;
    let mut data = Vec::new();
    for _ in 0..c {
        let mut row: Vec<i32> = (0..l).map(|_| rng.range(-5000, 5000) as i32).collect();
        row.sort();
        data.extend(row);
    }
    let t = Tensor {
        shape: vec![c as usize, l as usize],
        data: TensorData::I32(data),
    };
    let thr = g.add_const(None, TensorType::new(DType::I32, Shape::fixed(&[c, l])), t);
    let flags = Tensor {
        shape: vec![c as usize],
        data: TensorData::I8((0..c).map(|i| (i % 2) as i8).collect()),
    };
    let desc = g.add_const(None, TensorType::new(DType::I8, Shape::fixed(&[c])), flags);
    (thr, desc)
}

pub fn win(k: u64, s: u64, p: u64) -> Window {
    Window {
        kernel: [k, k],
        strides: [s, s],
        pads: [p, p, p, p],
        dilations: [1, 1],
        ceil_mode: false,
    }
}

fn int(signed: bool, bits: u8) -> DType {
    DType::int(signed, bits).unwrap()
}

/// A float CNN using every float op.
pub fn float_graph() -> Graph {
    let mut r = Rng(0x9e37_79b9_7f4a_7c15);
    let mut g = Graph::new("float \"all ops\"");
    let x = g.add_input(
        "x",
        TensorType::f32(Shape(vec![
            Dim::Batch,
            Dim::Fixed(4),
            Dim::Fixed(8),
            Dim::Fixed(8),
        ])),
    );
    let w = cf32(&mut g, &mut r, "conv.w", &[6, 4, 3, 3]);
    let b = cf32(&mut g, &mut r, "conv.b", &[6]);
    let mut conv_win = win(3, 1, 1);
    conv_win.dilations = [1, 1];
    let c = node(
        &mut g,
        Op::Conv {
            window: conv_win,
            group: 1,
        },
        &[x, w, b],
        "conv",
    );
    let bn: Vec<Value> = ["s", "b", "m"]
        .iter()
        .map(|n| cf32(&mut g, &mut r, n, &[6]))
        .collect();
    let var = cpos(&mut g, &mut r, "var", 6);
    let c = node(
        &mut g,
        Op::BatchNorm { epsilon: F32(1e-5) },
        &[c, bn[0], bn[1], bn[2], var],
        "bn",
    );
    let c = node(&mut g, Op::Relu, &[c], "");
    let c = node(
        &mut g,
        Op::Clip {
            min: F32(f32::NEG_INFINITY),
            max: F32(6.0),
        },
        &[c],
        "clip",
    );
    let mut mp = win(2, 2, 0);
    mp.ceil_mode = true;
    let c = node(&mut g, Op::MaxPool { window: mp }, &[c], "maxpool");
    let c = node(
        &mut g,
        Op::AveragePool {
            window: win(3, 1, 1),
            count_include_pad: true,
        },
        &[c],
        "avg",
    );
    let c = node(
        &mut g,
        Op::Lrn {
            size: 3,
            alpha: F32(1e-4),
            beta: F32(0.75),
            bias: F32(-0.0),
        },
        &[c],
        "lrn",
    );
    let mut c = c;
    for (i, op) in [BinaryOp::Add, BinaryOp::Sub, BinaryOp::Mul, BinaryOp::Div]
        .into_iter()
        .enumerate()
    {
        let k = cpos(&mut g, &mut r, &format!("k{i}"), 6);
        let k = node(
            &mut g,
            Op::Reshape {
                shape: vec![Dim::Fixed(1), Dim::Fixed(6), Dim::Fixed(1), Dim::Fixed(1)],
            },
            &[k],
            &format!("rk{i}"),
        );
        c = node(&mut g, Op::Binary(op), &[c, k], op.name());
    }
    let s = node(&mut g, Op::Sum, &[c, c, c], "sum");
    let cat = node(&mut g, Op::Concat { axis: 1 }, &[c, s], "concat");
    let t = node(
        &mut g,
        Op::Transpose {
            perm: vec![0, 1, 3, 2],
        },
        &[cat],
        "transpose",
    );
    let ga = node(&mut g, Op::GlobalAveragePool, &[t], "gap");
    let gm = node(&mut g, Op::GlobalMaxPool, &[t], "gmp");
    let gsum = node(&mut g, Op::Binary(BinaryOp::Add), &[ga, gm], "");
    let f = node(&mut g, Op::Flatten { axis: 1 }, &[gsum], "flatten");
    let wg = cf32(&mut g, &mut r, "fc.w", &[5, 12]);
    let bg = cf32(&mut g, &mut r, "fc.b", &[5]);
    let gemm = Op::Gemm {
        alpha: F32(0.5),
        beta: F32(2.0),
        trans_a: false,
        trans_b: true,
    };
    let y = node(&mut g, gemm, &[f, wg, bg], "fc");
    let wm = cf32(&mut g, &mut r, "mm.w", &[5, 7]);
    let y = node(&mut g, Op::MatMul, &[y, wm], "matmul");
    let y = node(
        &mut g,
        Op::Reshape {
            shape: vec![Dim::Batch, Dim::Fixed(7), Dim::Fixed(1)],
        },
        &[y],
        "reshape",
    );
    let y = node(&mut g, Op::Softmax { axis: 1 }, &[y], "softmax");
    let q = Op::Quantize {
        dtype: DType::U8,
        scale: F32(1.0 / 255.0),
        offset: F32(0.0),
    };
    let q = node(&mut g, q, &[y], "q");
    let dq = node(&mut g, Op::Dequantize, &[q], "dq");
    // A dead node: not saved (the artifact holds the compacted graph).
    node(&mut g, Op::Relu, &[x], "dead");
    g.set_outputs(vec![dq, y]);
    g
}

/// An integer-only CNN using every quantized op, low-bit layout ops, and a per-channel
/// scaled input.
pub fn quant_graph() -> Graph {
    let mut r = Rng(0x1234_5678_9abc_def1);
    let mut g = Graph::new("quant");
    let x = g.add_input(
        "image",
        TensorType::f32(Shape(vec![
            Dim::Batch,
            Dim::Fixed(3),
            Dim::Fixed(8),
            Dim::Fixed(8),
        ])),
    );
    // Forward reference: the scales constant is created after the input.
    let u7 = int(false, 7);
    let y = g.add_input(
        "side",
        TensorType::new(
            u7,
            Shape(vec![
                Dim::Batch,
                Dim::Fixed(8),
                Dim::Fixed(2),
                Dim::Fixed(2),
            ]),
        ),
    );
    let ys = cpos(&mut g, &mut r, "side.scales", 8);
    g.value_mut(y).ty.scale = Some(Scale::Channel {
        axis: 1,
        scales: ys,
    });

    let q = Op::Quantize {
        dtype: int(false, 4),
        scale: F32(0.05),
        offset: F32(0.5),
    };
    let q = node(&mut g, q, &[x], "quantize");
    let ws = cpos(&mut g, &mut r, "w1.scales", 8);
    let w1 = cint(
        &mut g,
        &mut r,
        Some("w1"),
        DType::Ternary,
        &[8, 3, 3, 3],
        Some(Scale::Channel {
            axis: 0,
            scales: ws,
        }),
    );
    let b1 = cint(&mut g, &mut r, Some("b1"), DType::I32, &[8], None);
    let a = node(
        &mut g,
        Op::QConv {
            window: win(3, 1, 1),
            group: 1,
        },
        &[q, w1, b1],
        "qconv",
    );
    let u3 = int(false, 3);
    let (t, d) = thresholds(&mut g, &mut r, 8, u3);
    let a = node(
        &mut g,
        Op::Requantize {
            dtype: u3,
            scale: F32(0.1),
        },
        &[a, t, d],
        "rq1",
    );
    let a = node(
        &mut g,
        Op::MaxPool {
            window: win(2, 2, 0),
        },
        &[a],
        "maxpool",
    );
    let s = node(
        &mut g,
        Op::SumPool {
            window: win(2, 2, 0),
        },
        &[a],
        "sumpool",
    );
    let i4 = int(true, 4);
    let (t, d) = thresholds(&mut g, &mut r, 8, i4);
    let p = node(
        &mut g,
        Op::Requantize {
            dtype: i4,
            scale: F32(0.2),
        },
        &[s, t, d],
        "rq2",
    );
    let u2 = int(false, 2);
    let (t, d) = thresholds(&mut g, &mut r, 8, u2);
    let p2 = node(
        &mut g,
        Op::Requantize {
            dtype: u2,
            scale: F32(0.3),
        },
        &[s, t, d],
        "rq3",
    );
    let ka = cint(&mut g, &mut r, None, DType::I32, &[], None);
    let kb = cint(&mut g, &mut r, None, DType::I32, &[], None);
    let sa = node(&mut g, Op::ScaledAdd, &[p, p2, ka, kb], "residual");
    let (t, d) = thresholds(&mut g, &mut r, 8, DType::U8);
    let u = node(
        &mut g,
        Op::Requantize {
            dtype: DType::U8,
            scale: F32(0.01),
        },
        &[sa, t, d],
        "rq4",
    );
    let cat = node(&mut g, Op::Concat { axis: 1 }, &[u, u], "concat");
    let tr = node(
        &mut g,
        Op::Transpose {
            perm: vec![0, 1, 3, 2],
        },
        &[cat],
        "transpose",
    );
    let rs = node(
        &mut g,
        Op::Reshape {
            shape: vec![Dim::Batch, Dim::Fixed(16), Dim::Fixed(1), Dim::Fixed(4)],
        },
        &[tr],
        "reshape",
    );
    let gm = node(&mut g, Op::GlobalMaxPool, &[rs], "gmp");
    let gs = node(&mut g, Op::GlobalSumPool, &[u], "gsp");
    let i6 = int(true, 6);
    let (t, d) = thresholds(&mut g, &mut r, 8, i6);
    let h = node(
        &mut g,
        Op::Requantize {
            dtype: i6,
            scale: F32(0.5),
        },
        &[gs, t, d],
        "rq5",
    );
    let f = node(&mut g, Op::Flatten { axis: 1 }, &[h], "flatten");
    let fs = cpos(&mut g, &mut r, "fc.scales", 10);
    let wf = cint(
        &mut g,
        &mut r,
        Some("fc.w"),
        int(true, 5),
        &[10, 8],
        Some(Scale::Channel {
            axis: 0,
            scales: fs,
        }),
    );
    let bf = cint(&mut g, &mut r, Some("fc.b"), DType::I32, &[10], None);
    let acc = node(&mut g, Op::QGemm { trans_b: true }, &[f, wf, bf], "fc");
    let os = cpos(&mut g, &mut r, "out.scale", 10);
    let ob = cf32(&mut g, &mut r, "out.bias", &[10]);
    let logits = node(&mut g, Op::Dequantize, &[acc, os, ob], "dequantize");
    let side = node(&mut g, Op::Dequantize, &[y], "side.dq");
    let gmf = node(&mut g, Op::Dequantize, &[gm], "");
    g.set_outputs(vec![logits, side, gmf]);
    g
}

/// Constants of every dtype (sizes below and above the text format's inline limit,
/// odd lengths), all returned as graph outputs.
pub fn dtype_graph() -> Graph {
    let mut r = Rng(42);
    let mut g = Graph::new("");
    let x = g.add_input("", TensorType::f32(Shape::fixed(&[1])));
    let mut outs = vec![x];
    let mut dtypes = vec![DType::I32, DType::I64, DType::Ternary];
    for bits in 2..=8 {
        dtypes.push(int(false, bits));
        dtypes.push(int(true, bits));
    }
    for (i, &dt) in dtypes.iter().enumerate() {
        for dims in [&[5u64][..], &[3, 7], &[1, 1, 13]] {
            let scale = dt
                .is_low_bit()
                .then_some(Scale::Tensor(F32(0.25 + i as f32)));
            outs.push(cint(
                &mut g,
                &mut r,
                Some(&format!("{dt}{dims:?}")),
                dt,
                dims,
                scale,
            ));
        }
    }
    outs.push(cf32(&mut g, &mut r, "f", &[9]));
    outs.push(cf32(&mut g, &mut r, "empty", &[0, 4]));
    g.set_outputs(outs);
    g
}

/// One ternary conv layer: `u4[N,64,16,16]` through `t2[64,64,3,3]` per-channel scaled,
/// with an `i32[64]` bias.
pub fn ternary_conv_layer() -> Graph {
    let mut r = Rng(7);
    let mut g = Graph::new("ternary_conv");
    let x = g.add_input(
        "x",
        TensorType {
            dtype: int(false, 4),
            shape: Shape(vec![
                Dim::Batch,
                Dim::Fixed(64),
                Dim::Fixed(16),
                Dim::Fixed(16),
            ]),
            scale: Some(Scale::Tensor(F32(0.1))),
        },
    );
    let ws = cpos(&mut g, &mut r, "w.scales", 64);
    let w = cint(
        &mut g,
        &mut r,
        Some("w"),
        DType::Ternary,
        &[64, 64, 3, 3],
        Some(Scale::Channel {
            axis: 0,
            scales: ws,
        }),
    );
    let b = cint(&mut g, &mut r, Some("b"), DType::I32, &[64], None);
    let y = node(
        &mut g,
        Op::QConv {
            window: win(3, 1, 1),
            group: 1,
        },
        &[x, w, b],
        "conv",
    );
    g.set_outputs(vec![y]);
    g
}
