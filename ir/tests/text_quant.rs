//! Text format of the quantization and integer ops: a graph using every new op and
//! every low-bit dtype round-trips (`print(parse(print(g))) == print(g)`, the parse
//! verifies), integer payloads print inline up to 8 elements and by digest above, and
//! the text is pinned by a snapshot.

use fqc_ir::infer::infer;
use fqc_ir::text::{parse, print};
use fqc_ir::*;

fn node(g: &mut Graph, op: Op, inputs: &[Value], name: &str) -> Value {
    let tys: Vec<&TensorType> = inputs.iter().map(|&v| g.ty(v)).collect();
    let ty = infer(&op, &tys).unwrap_or_else(|e| panic!("{}: {e}", op.name()));
    g.add_node(op, inputs.to_vec(), ty, name, None)
}

fn konst(g: &mut Graph, dtype: DType, dims: &[u64], data: TensorData) -> Value {
    let shape = dims.iter().map(|&d| d as usize).collect();
    let ty = TensorType::new(dtype, Shape::fixed(dims));
    g.add_const(None, ty, Tensor { shape, data })
}

fn win(k: u64, s: u64, p: [u64; 4], ceil_mode: bool) -> Window {
    Window {
        kernel: [k, k],
        strides: [s, s],
        pads: p,
        dilations: [1, 1],
        ceil_mode,
    }
}

fn dt(signed: bool, bits: u8) -> DType {
    DType::int(signed, bits).unwrap()
}

/// Every new op, every low-bit dtype, inline and digest integer payloads.
fn quant_graph() -> Graph {
    let mut g = Graph::new("quant");
    let x = g.add_input(
        "x",
        TensorType::f32(Shape(vec![
            Dim::Batch,
            Dim::Fixed(2),
            Dim::Fixed(6),
            Dim::Fixed(6),
        ])),
    );
    let q = Op::Quantize {
        dtype: dt(false, 8),
        scale: F32(0.1),
        offset: F32(-0.45),
    };
    let xq = node(&mut g, q, &[x], "/in/Quantize");
    // Per-channel ternary weight (inline: 8 elements) with its scale constant.
    let sc = g.add_const(
        Some("w.scale".into()),
        TensorType::f32(Shape::fixed(&[4])),
        Tensor::f32(vec![4], vec![0.5, 0.25, 1e-3, 3.0]).unwrap(),
    );
    let mut wty = TensorType::new(DType::Ternary, Shape::fixed(&[4, 1, 1, 2]));
    wty.scale = Some(Scale::Channel {
        axis: 0,
        scales: sc,
    });
    let w = g.add_const(
        Some("w".into()),
        wty,
        Tensor {
            shape: vec![4, 1, 1, 2],
            data: TensorData::I8(vec![1, 0, -1, 1, 0, 0, -1, -1]),
        },
    );
    let bias = konst(
        &mut g,
        DType::I32,
        &[4],
        TensorData::I32(vec![-7, 0, 2147483647, -2147482648]),
    );
    let conv = Op::QConv {
        window: Window {
            kernel: [1, 2],
            strides: [1, 2],
            pads: [0, 1, 0, 1],
            dilations: [1, 1],
            ceil_mode: false,
        },
        group: 2,
    };
    let acc = node(&mut g, conv, &[xq, w, bias], "/conv");
    // u3 requantize: 7 thresholds per channel (28 elements: digest).
    let th = konst(
        &mut g,
        DType::I32,
        &[4, 7],
        TensorData::I32((0..28).map(|i| i * 3 - 40).collect()),
    );
    let desc = konst(&mut g, DType::I8, &[4], TensorData::I8(vec![0, 1, 0, 0]));
    let rq = Op::Requantize {
        dtype: dt(false, 3),
        scale: F32(0.0625),
    };
    let r = node(&mut g, rq, &[acc, th, desc], "/rq");
    let mp = node(
        &mut g,
        Op::MaxPool {
            window: win(2, 1, [0, 0, 1, 1], false),
        },
        &[r],
        "",
    );
    let sp = node(
        &mut g,
        Op::SumPool {
            window: win(3, 2, [1, 1, 1, 1], true),
        },
        &[mp],
        "/pool",
    );
    let th2 = konst(
        &mut g,
        DType::I32,
        &[4, 2],
        TensorData::I32(vec![-5, 5, 0, 1, 9, -9, 3, 3]),
    );
    let desc2 = konst(&mut g, DType::I8, &[4], TensorData::I8(vec![1, 1, 0, 0]));
    let rq2 = Op::Requantize {
        dtype: DType::Ternary,
        scale: F32(1.0 / 3.0),
    };
    let r2 = node(&mut g, rq2, &[sp, th2, desc2], "");
    let r3 = node(&mut g, Op::Dequantize, &[r2], "");
    let q2 = Op::Quantize {
        dtype: dt(true, 4),
        scale: F32(0.2),
        offset: F32(0.0),
    };
    let rq4 = node(&mut g, q2, &[r3], "");
    let ka = konst(&mut g, DType::I32, &[], TensorData::I32(vec![3]));
    let kb = konst(&mut g, DType::I32, &[], TensorData::I32(vec![-2]));
    let res = node(&mut g, Op::ScaledAdd, &[r2, rq4, ka, kb], "/add");
    let gs = node(&mut g, Op::GlobalSumPool, &[r], "/gsum");
    let th3 = konst(
        &mut g,
        DType::I32,
        &[4, 254],
        TensorData::I32((0..1016).map(|i| i - 500).collect()),
    );
    let desc3 = konst(&mut g, DType::I8, &[4], TensorData::I8(vec![0; 4]));
    let rq3 = Op::Requantize {
        dtype: dt(true, 8),
        scale: F32(0.01),
    };
    let gq = node(&mut g, rq3, &[gs, th3, desc3], "");
    let f = node(&mut g, Op::Flatten { axis: 1 }, &[gq], "");
    // Weights of every remaining dtype, inline ([N,K] layouts with trans_b).
    let mut outs = vec![res];
    let kinds: [(DType, TensorData); 4] = [
        (dt(true, 2), TensorData::I8(vec![-1, 1, 0, 1, -1, 0, 1, -2])),
        (dt(false, 2), TensorData::U8(vec![0, 3, 2, 1, 0, 0, 1, 3])),
        (
            dt(true, 5),
            TensorData::I8(vec![-16, 15, 0, 1, 2, 3, -4, 5]),
        ),
        (
            dt(false, 7),
            TensorData::U8(vec![127, 0, 1, 64, 5, 6, 7, 8]),
        ),
    ];
    for (i, (d, data)) in kinds.into_iter().enumerate() {
        let wq = konst(&mut g, d, &[2, 4], data);
        let op = Op::QGemm {
            trans_b: i % 2 == 0,
        };
        let wq = if i % 2 == 0 {
            wq
        } else {
            node(&mut g, Op::Transpose { perm: vec![1, 0] }, &[wq], "")
        };
        outs.push(node(&mut g, op, &[f, wq], ""));
    }
    let big = konst(
        &mut g,
        dt(false, 6),
        &[3, 3],
        TensorData::U8((0..9).map(|i| i * 7).collect()),
    );
    let cat = node(&mut g, Op::Concat { axis: 0 }, &[big, big], "");
    outs.push(cat);
    // Classifier boundary: acc * scale[c] + bias[c].
    let s = g.add_const(
        None,
        TensorType::f32(Shape::fixed(&[2])),
        Tensor::f32(vec![2], vec![0.1, -2.5e-7]).unwrap(),
    );
    let b = g.add_const(
        None,
        TensorType::f32(Shape::fixed(&[2])),
        Tensor::f32(vec![2], vec![-0.0, 1.5]).unwrap(),
    );
    outs.push(node(&mut g, Op::Dequantize, &[outs[1], s, b], "/out"));
    outs.push(node(&mut g, Op::Dequantize, &[outs[2], s], ""));
    outs.push(node(&mut g, Op::Dequantize, &[w], "/w"));
    g.set_outputs(outs);
    verify(&g).unwrap();
    g
}

#[test]
fn every_quant_op_round_trips() {
    let g = quant_graph();
    let text = print(&g);
    let p = parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    verify(&p).unwrap();
    assert_eq!(print(&p), text);
    assert_eq!(print(&g.compact()), text);
    // Payloads survive (inline ones fully, large ones as digests).
    let c = g.compact();
    for ((_, a), (_, b)) in p.values().zip(c.values()) {
        assert_eq!((&a.ty, &a.name), (&b.ty, &b.name));
        if let (ValueDef::Const(ka), ValueDef::Const(kb)) = (a.def, b.def) {
            let (da, db) = (p.const_data(ka), c.const_data(kb));
            assert_eq!(da.digest, db.digest);
            if let Some(t) = &db.tensor {
                if t.numel() <= text::INLINE_MAX {
                    assert_eq!(da.tensor, db.tensor);
                }
            }
        }
    }
    insta::assert_snapshot!(text);
}

#[test]
fn integer_payloads_inline_and_digest() {
    let text = print(&quant_graph());
    assert!(
        text.contains("i32[4] = const [-7, 0, 2147483647, -2147482648]"),
        "{text}"
    );
    assert!(text.contains("i32[] = const [3]"), "{text}");
    assert!(
        text.contains("t2[4,1,1,2] s=%2@0 = const [1, 0, -1, 1, 0, 0, -1, -1]"),
        "{text}"
    );
    assert!(text.contains("u6[3,3] = const #"), "{text}");
    assert!(text.contains("i32[4,7] = const #"), "{text}");
    // Digests tell integer payloads apart by value, storage and shape.
    let t = |shape: Vec<usize>, data| Tensor { shape, data };
    let a = t(vec![2], TensorData::I32(vec![1, 2])).digest();
    assert_ne!(a, t(vec![2], TensorData::I32(vec![1, 3])).digest());
    assert_ne!(a, t(vec![2], TensorData::I8(vec![1, 2])).digest());
    assert_ne!(a, t(vec![1, 2], TensorData::I32(vec![1, 2])).digest());
    assert_ne!(
        t(vec![1], TensorData::I8(vec![-1])).digest(),
        t(vec![1], TensorData::U8(vec![255])).digest()
    );
}

#[test]
fn bad_quant_attributes_are_parse_errors() {
    let head = "graph \"g\"(%0 \"x\": f32[2]) -> (%1) {\n";
    let cases = [
        (
            "  %1: u4[2] s=0.1 = quantize(%0) {dtype=u9, scale=0.1, offset=0.0}\n",
            "unknown element type `u9`",
        ),
        (
            "  %1: u4[2] s=0.1 = quantize(%0) {dtype=u4, offset=0.0, scale=0.1}\n",
            "expected attribute `scale`",
        ),
        (
            "  %1: u4[2] s=0.1 = quantize(%0) {dtype=u4, scale=0.1}\n",
            "missing attribute `offset`",
        ),
        (
            "  %1: f32[2] = dequantize(%0) {scale=1.0}\n",
            "takes no attributes",
        ),
        (
            "  %1: u4[2] s=0.1 = quantize(%0) {dtype=u4, scale=0.2, offset=0.0}\n",
            "does not match the inferred u4[2] s=0.2",
        ),
    ];
    for (line, want) in cases {
        let src = format!("{head}{line}}}\n");
        let e = parse(&src).expect_err(line).to_string();
        assert!(e.contains(want), "{line}: {e}");
    }
}

#[test]
fn quant_graph_runs_on_split_batches() {
    let g = quant_graph();
    let xs: Vec<f32> = (0..3 * 2 * 36)
        .map(|i| ((i * 37) % 101) as f32 / 40.0 - 0.5)
        .collect();
    let x = Tensor::f32(vec![3, 2, 6, 6], xs).unwrap();
    let one = run_with(&g, std::slice::from_ref(&x), &RunOptions { threads: 1 }).unwrap();
    let two = run_with(&g, std::slice::from_ref(&x), &RunOptions { threads: 2 }).unwrap();
    assert_eq!(one, two);
    assert_eq!(one[0].shape, [3, 4, 4, 3]);
    assert!(matches!(one[5].data, TensorData::U8(_)) && one[5].shape == [6, 3]);
    assert_eq!(
        one[8].as_f32().unwrap(),
        &[0.5, 0.0, -0.25, 0.25, 0.0, 0.0, -3.0, -3.0]
    );
}
