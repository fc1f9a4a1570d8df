//! Text format round-trips: `print(parse(t)) == t` on printer output, `parse(print(g))`
//! equals `g.compact()` structurally, exact parse-error messages, and fuzzing that the
//! parser and verifier never panic.

use fqc_ir::infer::infer;
use fqc_ir::text::{parse, print};
use fqc_ir::*;
use proptest::prelude::*;

fn f32t(dims: &[Dim]) -> TensorType {
    TensorType::f32(Shape(dims.to_vec()))
}

fn fixed(dims: &[u64]) -> TensorType {
    TensorType::f32(Shape::fixed(dims))
}

const N: Dim = Dim::Batch;
fn d(n: u64) -> Dim {
    Dim::Fixed(n)
}

/// Adds a node typed by inference.
fn node(g: &mut Graph, op: Op, inputs: &[Value], name: &str) -> Value {
    let tys: Vec<&TensorType> = inputs.iter().map(|&v| g.ty(v)).collect();
    let ty = infer(&op, &tys).unwrap_or_else(|e| panic!("{}: {e}", op.name()));
    g.add_node(op, inputs.to_vec(), ty, name, None)
}

/// An f32 constant filled with `0.5, 1.5, ...`.
fn cst(g: &mut Graph, name: &str, dims: &[u64]) -> Value {
    let n: u64 = dims.iter().product();
    let data = (0..n).map(|i| i as f32 - 0.5).collect();
    let t = Tensor::f32(dims.iter().map(|&d| d as usize).collect(), data).unwrap();
    g.add_const(Some(name.into()), fixed(dims), t)
}

fn int_const(g: &mut Graph, ty: TensorType, data: TensorData) -> Value {
    let shape = ty.shape.resolve(1);
    g.add_const(None, ty, Tensor { shape, data })
}

fn win(k: u64, s: u64, p: u64, ceil_mode: bool) -> Window {
    Window {
        kernel: [k, k],
        strides: [s, s],
        pads: [p; 4],
        dilations: [1, 1],
        ceil_mode,
    }
}

/// A graph using every op variant.
fn every_op() -> Graph {
    let mut g = Graph::new("every \"op\"\n");
    let x = g.add_input("x", f32t(&[N, d(4), d(8), d(8)]));
    let w = cst(&mut g, "conv.weight", &[4, 4, 3, 3]);
    let b = cst(&mut g, "conv.bias", &[4]);
    let conv = Op::Conv {
        window: win(3, 1, 1, false),
        group: 1,
    };
    let c = node(&mut g, conv, &[x, w, b], "/conv");
    let wg = cst(&mut g, "grouped.weight", &[4, 2, 1, 1]);
    let grouped = Op::Conv {
        window: Window {
            kernel: [1, 1],
            strides: [1, 2],
            pads: [0, 1, 0, 1],
            dilations: [2, 1],
            ceil_mode: false,
        },
        group: 2,
    };
    let c2 = node(&mut g, grouped, &[c, wg], "");
    let bn_params: Vec<Value> = (0..4)
        .map(|i| cst(&mut g, &format!("bn{i}"), &[4]))
        .collect();
    let mut bn_in = vec![c];
    bn_in.extend(&bn_params);
    let bn = node(&mut g, Op::BatchNorm { epsilon: F32(1e-5) }, &bn_in, "/bn");
    let r = node(&mut g, Op::Relu, &[bn], "/relu");
    let clip = Op::Clip {
        min: F32(0.0),
        max: F32(6.0),
    };
    let r6 = node(&mut g, clip, &[r], "");
    let open = Op::Clip {
        min: F32(f32::NEG_INFINITY),
        max: F32(f32::INFINITY),
    };
    let r7 = node(&mut g, open, &[r6], "");
    let k = cst(&mut g, "k", &[1, 4, 1, 1]);
    let mut e = r7;
    for bop in [BinaryOp::Add, BinaryOp::Sub, BinaryOp::Mul, BinaryOp::Div] {
        e = node(&mut g, Op::Binary(bop), &[e, k], bop.name());
    }
    let s = node(&mut g, Op::Sum, &[e, r, k], "");
    let mp = node(
        &mut g,
        Op::MaxPool {
            window: win(2, 2, 0, true),
        },
        &[s],
        "",
    );
    let ap = node(
        &mut g,
        Op::AveragePool {
            window: win(3, 2, 1, false),
            count_include_pad: true,
        },
        &[s],
        "",
    );
    let ap2 = node(
        &mut g,
        Op::AveragePool {
            window: win(2, 2, 0, false),
            count_include_pad: false,
        },
        &[ap],
        "",
    );
    let gap = node(&mut g, Op::GlobalAveragePool, &[mp], "");
    let gmp = node(&mut g, Op::GlobalMaxPool, &[ap2], "");
    let lrn = Op::Lrn {
        size: 3,
        alpha: F32(1e-4),
        beta: F32(0.75),
        bias: F32(1.0),
    };
    let l = node(&mut g, lrn, &[mp], "");
    let t = node(
        &mut g,
        Op::Transpose {
            perm: vec![0, 2, 3, 1],
        },
        &[l],
        "",
    );
    let sm = node(&mut g, Op::Softmax { axis: 3 }, &[t], "");
    let fl = node(&mut g, Op::Flatten { axis: 1 }, &[sm], "");
    let rs = node(
        &mut g,
        Op::Reshape {
            shape: vec![N, d(8), d(8)],
        },
        &[fl],
        "",
    );
    let fl2 = node(
        &mut g,
        Op::Reshape {
            shape: vec![N, d(64)],
        },
        &[rs],
        "",
    );
    let gw = cst(&mut g, "fc.weight", &[10, 64]);
    let gb = cst(&mut g, "fc.bias", &[10]);
    let gemm = Op::Gemm {
        alpha: F32(1.0),
        beta: F32(0.5),
        trans_a: false,
        trans_b: true,
    };
    let fc = node(&mut g, gemm, &[fl2, gw, gb], "/fc");
    let mw = cst(&mut g, "mm", &[10, 3]);
    let mm = node(&mut g, Op::MatMul, &[fc, mw], "");
    let cat = node(&mut g, Op::Concat { axis: 1 }, &[mm, mm, fc], "");
    // A dead node: not printed, dropped by compact.
    node(&mut g, Op::Relu, &[x], "dead");
    g.set_outputs(vec![cat, gap, gmp, c2, x]);
    g
}

/// Inputs and constants of every dtype and scale form (quantized values are not yet
/// operands of any op, so they appear as inputs and outputs).
fn every_dtype() -> Graph {
    let mut g = Graph::new("dtypes");
    let sc = |g: &mut Graph, k: usize| {
        let t = Tensor::f32(vec![k], (1..=k).map(|i| i as f32 / 8.0).collect()).unwrap();
        g.add_const(Some(format!("scales{k}")), fixed(&[k as u64]), t)
    };
    let mut inputs = Vec::new();
    for (i, dt) in [DType::F32, DType::I32, DType::I64, DType::Ternary]
        .iter()
        .enumerate()
    {
        inputs.push(g.add_input(format!("in{i}"), TensorType::new(*dt, Shape(vec![N, d(2)]))));
    }
    for bits in 2..=8 {
        for signed in [false, true] {
            let mut ty = TensorType::new(DType::int(signed, bits).unwrap(), Shape(vec![N, d(3)]));
            ty.scale = Some(Scale::Tensor(F32(0.031)));
            inputs.push(g.add_input(format!("{}{bits}", if signed { 'i' } else { 'u' }), ty));
        }
    }
    // Per-channel scales on an input: its scales constant prints after the nodes.
    let s3 = sc(&mut g, 3);
    let mut ty = TensorType::new(DType::U8, Shape(vec![N, d(3)]));
    ty.scale = Some(Scale::Channel {
        axis: 1,
        scales: s3,
    });
    let qin = g.add_input("", ty);
    let x = g.add_input("x", f32t(&[N, d(2)]));
    let y = node(&mut g, Op::Relu, &[x], "");
    let mut outs = vec![y, qin];
    let i4 = DType::int(true, 4).unwrap();
    let u2 = DType::int(false, 2).unwrap();
    outs.push(int_const(
        &mut g,
        TensorType::new(DType::I32, Shape::fixed(&[2])),
        TensorData::I32(vec![i32::MIN, i32::MAX]),
    ));
    outs.push(int_const(
        &mut g,
        TensorType::new(DType::I64, Shape::fixed(&[2, 1])),
        TensorData::I64(vec![i64::MIN, 7]),
    ));
    outs.push(int_const(
        &mut g,
        TensorType::new(i4, Shape::fixed(&[3])),
        TensorData::I8(vec![-8, 0, 7]),
    ));
    outs.push(int_const(
        &mut g,
        TensorType::new(DType::U8, Shape::fixed(&[])),
        TensorData::U8(vec![255]),
    ));
    outs.push(int_const(
        &mut g,
        TensorType::new(u2, Shape::fixed(&[0, 4])),
        TensorData::U8(vec![]),
    ));
    outs.push(int_const(
        &mut g,
        TensorType::new(u2, Shape::fixed(&[20])),
        TensorData::U8((0..20).map(|i| i % 4).collect()),
    ));
    // Ternary weights with per-channel scales, inline and as a digest.
    for (m, k) in [(2u64, 2u64), (4, 3)] {
        let s = sc(&mut g, m as usize);
        let mut ty = TensorType::new(DType::Ternary, Shape::fixed(&[m, k]));
        ty.scale = Some(Scale::Channel { axis: 0, scales: s });
        let data = (0..m * k).map(|i| (i % 3) as i8 - 1).collect();
        outs.push(int_const(&mut g, ty, TensorData::I8(data)));
    }
    let mut ty = TensorType::new(i4, Shape::fixed(&[2]));
    ty.scale = Some(Scale::Tensor(F32(1e-7)));
    outs.push(int_const(&mut g, ty, TensorData::I8(vec![1, -1])));
    // Special floats and an elided payload.
    let t = Tensor::f32(
        vec![5],
        vec![f32::INFINITY, f32::NEG_INFINITY, -0.0, 1e-38, f32::MAX],
    )
    .unwrap();
    outs.push(g.add_const(Some("weird \\ \"name\"\t\u{7f}".into()), fixed(&[5]), t));
    let elided = ConstData {
        tensor: None,
        digest: 0x0123_4567_89ab_cdef,
    };
    outs.push(g.add_const_data(None, fixed(&[3]), elided));
    g.set_outputs(outs);
    g
}

/// Asserts `parse(print(g))` matches `g.compact()` field by field (payloads where
/// printed inline, digests otherwise) and that printing is a fixed point.
fn assert_roundtrip(g: &Graph) -> String {
    verify(g).unwrap();
    let text = print(g);
    let p = parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_eq!(print(&p), text);
    let c = g.compact();
    verify(&c).unwrap();
    assert_eq!(print(&c), text);
    assert_eq!(p.name, c.name);
    assert_eq!(p.inputs(), c.inputs());
    assert_eq!(p.outputs(), c.outputs());
    assert_eq!(p.num_values(), c.num_values());
    for ((_, a), (_, b)) in p.values().zip(c.values()) {
        assert_eq!((&a.ty, &a.name, a.def), (&b.ty, &b.name, b.def));
        if let (ValueDef::Const(ka), ValueDef::Const(kb)) = (a.def, b.def) {
            let (da, db) = (p.const_data(ka), c.const_data(kb));
            assert_eq!(da.digest, db.digest);
            match &db.tensor {
                Some(t) if t.numel() <= fqc_ir::text::INLINE_MAX => {
                    assert_eq!(da.tensor.as_deref().map(Tensor::digest), Some(t.digest()))
                }
                _ => assert!(da.tensor.is_none()),
            }
        }
    }
    let pn: Vec<_> = p.nodes().map(|(_, n)| n.clone()).collect();
    let cn: Vec<_> = c.nodes().map(|(_, n)| n.clone()).collect();
    assert_eq!(pn, cn);
    text
}

#[test]
fn every_op_round_trips() {
    let g = every_op();
    let text = assert_roundtrip(&g);
    for name in [
        "conv",
        "batchnorm",
        "relu",
        "clip",
        "add",
        "sub",
        "mul",
        "div",
        "sum",
        "maxpool",
        "avgpool",
        "global_avgpool",
        "global_maxpool",
        "gemm",
        "matmul",
        "flatten",
        "reshape",
        "concat",
        "softmax",
        "lrn",
        "transpose",
    ] {
        assert!(text.contains(&format!(" = {name}(")), "{name} missing");
    }
    assert!(!text.contains("dead"));
    insta::assert_snapshot!(text);
}

#[test]
fn every_dtype_round_trips() {
    let text = assert_roundtrip(&every_dtype());
    insta::assert_snapshot!(text);
}

#[test]
fn compact_keeps_scale_constants() {
    // A scales constant referenced only by a type must survive compaction, remapped.
    let g = every_dtype();
    let c = g.compact();
    verify(&c).unwrap();
    assert_eq!(print(&c), print(&g));
}

#[test]
fn comments_blank_lines_and_spacing() {
    let t = "; leading comment\n\ngraph \"g\" ( %0 \"x\" : f32[N, 2] ) -> ( %2 ) { ; hi\n\
             \n  %1:f32[2]=const[1,2.5]   ; two\n%2 \"y;\" : f32[N,2] = add(%0,%1)\"n\"\n}\n\n; end";
    let g = parse(t).unwrap();
    assert_eq!(
        print(&g),
        "graph \"g\"(%0 \"x\": f32[N,2]) -> (%2) {\n  %1: f32[2] = const [1.0, 2.5]\n  \
         %2 \"y;\": f32[N,2] = add(%0, %1) \"n\"\n}\n"
    );
}

#[test]
fn large_inline_payload_prints_as_digest() {
    let t = "graph \"g\"() -> (%0) {\n  %0: i8[9] = const [1, 2, 3, 4, 5, 6, 7, 8, 9]\n}\n";
    let g = parse(t).unwrap();
    let tensor = g.const_tensor(Value(0)).unwrap();
    let want = format!("#{:016x}", tensor.digest());
    assert!(print(&g).contains(&want));
}

fn perr(t: &str) -> String {
    match parse(t) {
        Ok(g) => panic!("parsed:\n{}", print(&g)),
        Err(e) => e.to_string(),
    }
}

#[test]
fn parse_errors() {
    let h = "graph \"g\"(%0 \"x\": f32[N,4]) -> (%1) {\n";
    let cases: &[(&str, &str)] = &[
        ("", "line 1: expected a `graph` header, found end of input"),
        ("func \"g\"() -> () {\n}", "line 1: expected `graph`, found `func`"),
        ("graph g() -> () {\n}", "line 1: expected the graph's name, found `g`"),
        ("graph \"g\"(%0: f32[2]) -> () {\n}", "line 1: expected the input's quoted name, found `:`"),
        ("graph \"g\"(%1 \"x\": f32[2]) -> () {\n}", "line 1: expected value %0, found %1: values are numbered consecutively"),
        ("graph \"g\"(%0 \"x\": f32[2], %1 \"x\": f32[2]) -> () {\n}", "line 1: duplicate input name \"x\""),
        ("graph \"g\"(%0 \"x\": f64[2]) -> () {\n}", "line 1: unknown element type `f64`"),
        ("graph \"g\"(%0 \"x\": f32[2,M]) -> () {\n}", "line 1: expected an unsigned integer, found `M`"),
        ("graph \"g\"(%0 \"x\": f32[2) -> () {\n}", "line 1: expected `,` or `]`, found `)`"),
        ("graph \"g\"() (%0) {\n}", "line 1: expected `->`, found `(`"),
        ("graph \"g\"() -> (%0) {\n}", "line 1: output %0 is not defined"),
        ("graph \"g\"() -> () {", "line 1: unexpected end of input: expected `}`"),
        ("graph \"g\"() -> () {\n}\nx", "line 3: unexpected text after the closing `}`"),
        ("graph \"g\"() -> () { x\n}", "line 1: expected end of line, found `x`"),
        ("graph \"g\\q\"() -> () {\n}", "line 1: invalid escape `\\q` in string"),
        ("graph \"g() -> () {\n}", "line 1: unterminated string"),
        ("graph \"g\"() -> () {\n  %0: f32[1] = const [1] $\n}", "line 2: unexpected character '$'"),
        ("graph \"g\"() -> () {\n  %1: f32[1] = const [1]\n}", "line 2: expected value %0, found %1: values are numbered consecutively"),
        ("graph \"g\"() -> () {\n  %0: f32[1] = const [1]\n  %0: f32[1] = const [1]\n}", "line 3: value %0 is already defined"),
        ("graph \"g\"() -> () {\n  %x: f32[1] = const [1]\n}", "line 2: invalid value id `%x`"),
        ("graph \"g\"() -> () {\n  %0: f32[2] = const [1]\n}", "line 2: constant of shape [2] needs 2 elements, found 1"),
        ("graph \"g\"() -> () {\n  %0: f32[N] = const [1]\n}", "line 2: constant shape [N] must be fully fixed"),
        ("graph \"g\"() -> () {\n  %0: f32[1] = const [x]\n}", "line 2: expected a float, found `x`"),
        ("graph \"g\"() -> () {\n  %0: i4[1] = const [8]\n}", "line 2: 8 is out of range for i4"),
        ("graph \"g\"() -> () {\n  %0: t2[1] = const [1.0]\n}", "line 2: expected an integer, found `1.0`"),
        ("graph \"g\"() -> () {\n  %0: f32[1] = const #12\n}", "line 2: invalid digest `12`: expected 16 lowercase hex digits"),
        ("graph \"g\"() -> () {\n  %0: f32[1] = const 1\n}", "line 2: expected `#` digest or `[` payload, found `1`"),
        ("graph \"g\"() -> () {\n  %0: f32[1] s=%0@0 = const [1]\n}", "line 2: value %0 is used before its definition"),
        ("graph \"g\"() -> () {\n  %0: u8[1] s=0.0 = const [1]\n}", "line 2: value %0 of type u8[1] s=0.0: the scale must be positive and finite"),
        (&format!("{h}  %1: f32[N,4] = relu(%2)\n}}"), "line 2: value %2 is used before its definition"),
        (&format!("{h}  %1: f32[N,4] = frob(%0)\n}}"), "line 2: unknown op `frob`"),
        (&format!("{h}  %1: f32[N,4] = relu(%0) {{axis=1}}\n}}"), "line 2: `relu` takes no attributes"),
        (&format!("{h}  %1: f32[N,4] = softmax(%0)\n}}"), "line 2: softmax: missing attribute `axis`"),
        (&format!("{h}  %1: f32[N,4] = softmax(%0) {{axes=1}}\n}}"), "line 2: softmax: expected attribute `axis`, found `axes`"),
        (&format!("{h}  %1: f32[N,4] = softmax(%0) {{axis=1, x=2}}\n}}"), "line 2: softmax: unexpected attribute `x`"),
        (&format!("{h}  %1: f32[N,4] = softmax(%0) {{axis=[1]}}\n}}"), "line 2: softmax: `axis` takes a single value"),
        (&format!("{h}  %1: f32[N,4] = gemm(%0, %0) {{alpha=1.0, beta=1.0, trans_a=no, trans_b=false}}\n}}"), "line 2: gemm: `trans_a` must be true or false, found `no`"),
        (&format!("{h}  %1: f32[N,4] = transpose(%0) {{perm=1}}\n}}"), "line 2: transpose: `perm` takes a list `[...]`"),
        (&format!("{h}  %1: f32[N,4] = maxpool(%0) {{kernel=[1], strides=[1,1], pads=[0,0,0,0], dilations=[1,1], ceil_mode=false}}\n}}"), "line 2: maxpool: `kernel` needs 2 values, found 1"),
        (&format!("{h}  %1: f32[N,5] = relu(%0)\n}}"), "line 2: node `%1` (relu): result type f32[N,5] does not match the inferred f32[N,4]"),
        (&format!("{h}  %1: f32[N,4] = relu(%0, %0) \"r\"\n}}"), "line 2: node `r` (relu): expects 1..1 operands, got 2"),
        (&format!("{h}  %1: f32[N,4] = relu(%0) \"r\" \"s\"\n}}"), "line 2: expected end of line, found string \"s\""),
        ("graph \"g\"(%0 \"x\": u8[2] s=%1@0) -> () {\n  %1: f32[3] = const [1, 2, 3]\n}", "line 1: invalid graph: value %0 of type u8[2] s=%1@0: 3 scales for axis 0 of extent 2"),
        ("graph \"g\"(%0 \"x\": u8[2] s=%5@0) -> () {\n}", "line 1: invalid graph: value %0 of type u8[2] s=%5@0: scales %5 is not a constant"),
    ];
    for (text, want) in cases {
        assert_eq!(&perr(text), want, "for input:\n{text}");
    }
}

#[test]
fn output_may_be_an_input_or_a_constant() {
    let t = "graph \"g\"(%0 \"x\": f32[N]) -> (%0, %1, %0) {\n  %1: i64[] = const [-3]\n}\n";
    assert_eq!(print(&parse(t).unwrap()), t);
}

// ---------------------------------------------------------------------------
// Property tests

/// One step of a random chain: which op to apply to the running value.
#[derive(Clone, Debug)]
enum Step {
    Conv {
        m: u64,
        k: u64,
        s: u64,
        p: u64,
        bias: bool,
    },
    Relu,
    MaxPool {
        k: u64,
        s: u64,
        ceil: bool,
    },
    AvgPool {
        k: u64,
        s: u64,
        p: u64,
    },
    AddConst,
    AddSelf,
    ConcatSelf,
    Flatten,
    Reshape,
    Gemm {
        n: u64,
        bias: bool,
    },
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        (1u64..5, 1u64..4, 1u64..3, 0u64..2, any::<bool>())
            .prop_map(|(m, k, s, p, bias)| Step::Conv { m, k, s, p, bias }),
        Just(Step::Relu),
        (1u64..4, 1u64..3, any::<bool>()).prop_map(|(k, s, ceil)| Step::MaxPool { k, s, ceil }),
        (1u64..4, 1u64..3, 0u64..2).prop_map(|(k, s, p)| Step::AvgPool { k, s, p }),
        Just(Step::AddConst),
        Just(Step::AddSelf),
        Just(Step::ConcatSelf),
        Just(Step::Flatten),
        Just(Step::Reshape),
        (1u64..12, any::<bool>()).prop_map(|(n, bias)| Step::Gemm { n, bias }),
    ]
}

/// Builds a chain from `x: f32[N,c,h,w]`, skipping steps that do not fit the shape.
fn chain(c: u64, h: u64, w: u64, steps: &[Step]) -> Graph {
    let mut g = Graph::new("chain");
    let mut cur = g.add_input("x", f32t(&[N, d(c), d(h), d(w)]));
    let mut prev = cur;
    for (i, s) in steps.iter().enumerate() {
        let dims = g.ty(cur).shape.0.clone();
        let name = format!("n{i}");
        let try_node = |g: &mut Graph, op: Op, ins: Vec<Value>| {
            let tys: Vec<&TensorType> = ins.iter().map(|&v| g.ty(v)).collect();
            infer(&op, &tys)
                .ok()
                .map(|ty| g.add_node(op, ins, ty, name.clone(), None))
        };
        let next = match (s, dims.len()) {
            (Step::Conv { m, k, s, p, bias }, 4) => {
                let ci = dims[1].fixed().unwrap();
                let wt = cst(&mut g, &format!("w{i}"), &[*m, ci, *k, *k]);
                let mut ins = vec![cur, wt];
                if *bias {
                    ins.push(cst(&mut g, &format!("b{i}"), &[*m]));
                }
                let op = Op::Conv {
                    window: win(*k, *s, *p, false),
                    group: 1,
                };
                try_node(&mut g, op, ins)
            }
            (Step::MaxPool { k, s, ceil }, 4) => try_node(
                &mut g,
                Op::MaxPool {
                    window: win(*k, *s, 0, *ceil),
                },
                vec![cur],
            ),
            (Step::AvgPool { k, s, p }, 4) => {
                let op = Op::AveragePool {
                    window: win(*k, *s, *p, false),
                    count_include_pad: *p > 0,
                };
                try_node(&mut g, op, vec![cur])
            }
            (Step::Relu, _) => try_node(&mut g, Op::Relu, vec![cur]),
            (Step::AddConst, _) => {
                let shape: Vec<u64> = dims[1..].iter().map(|d| d.fixed().unwrap()).collect();
                let k = cst(&mut g, &format!("k{i}"), &shape);
                try_node(&mut g, Op::Binary(BinaryOp::Add), vec![cur, k])
            }
            (Step::AddSelf, _) => try_node(&mut g, Op::Binary(BinaryOp::Mul), vec![cur, prev]),
            (Step::ConcatSelf, _) => try_node(&mut g, Op::Concat { axis: 1 }, vec![cur, cur]),
            (Step::Flatten, _) => try_node(&mut g, Op::Flatten { axis: 1 }, vec![cur]),
            (Step::Reshape, _) => {
                let n: u64 = dims[1..].iter().map(|d| d.fixed().unwrap()).product();
                try_node(
                    &mut g,
                    Op::Reshape {
                        shape: vec![N, d(n)],
                    },
                    vec![cur],
                )
            }
            (Step::Gemm { n, bias }, 2) => {
                let k = dims[1].fixed().unwrap();
                let wt = cst(&mut g, &format!("w{i}"), &[*n, k]);
                let mut ins = vec![cur, wt];
                if *bias {
                    ins.push(cst(&mut g, &format!("b{i}"), &[*n]));
                }
                let op = Op::Gemm {
                    alpha: F32(1.0),
                    beta: F32(1.0),
                    trans_a: false,
                    trans_b: true,
                };
                try_node(&mut g, op, ins)
            }
            _ => None,
        };
        if let Some(v) = next {
            prev = cur;
            cur = v;
        }
    }
    g.set_outputs(vec![cur]);
    g
}

fn chains() -> impl Strategy<Value = Graph> {
    (
        1u64..4,
        1u64..9,
        1u64..9,
        prop::collection::vec(step(), 0..16),
    )
        .prop_map(|(c, h, w, steps)| chain(c, h, w, &steps))
}

/// Printer output with one random edit: a byte replaced, deleted or duplicated.
fn mutated() -> impl Strategy<Value = String> {
    (
        chains(),
        any::<prop::sample::Index>(),
        0u8..3,
        any::<char>(),
    )
        .prop_map(|(g, at, how, c)| {
            let mut chars: Vec<char> = print(&g).chars().collect();
            let i = at.index(chars.len());
            match how {
                0 => chars[i] = c,
                1 => {
                    chars.remove(i);
                }
                _ => chars.insert(i, chars[i]),
            }
            chars.into_iter().collect()
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn random_chains_round_trip(g in chains()) {
        let t = print(&g);
        let p = parse(&t).map_err(|e| TestCaseError::fail(format!("{e}\n{t}")))?;
        prop_assert!(verify(&p).is_ok());
        prop_assert_eq!(print(&p), t);
        assert_roundtrip(&g);
    }

    #[test]
    fn parser_never_panics_on_garbage(s in ".{0,200}") {
        let _ = parse(&s);
    }

    #[test]
    fn parser_never_panics_on_tokens(
        toks in prop::collection::vec(prop::sample::select(vec![
            "graph", "\"g\"", "(", ")", "->", "{", "}", "\n", "%0", "%1", "%2", "%99999999999",
            ":", "=", ",", "[", "]", "N", "0", "1", "18446744073709551615", "f32", "t2", "u4",
            "s=", "@", "const", "#0123456789abcdef", "relu", "conv", "add", "concat", "gemm",
            "maxpool", "reshape", "{kernel=[1,1]", "axis=", "\"\\u{110000}\"", "-inf", "NaN",
        ]), 0..60)
    ) {
        let _ = parse(&toks.join(" "));
    }

    #[test]
    fn parser_never_panics_on_mutations(s in mutated()) {
        if let Ok(g) = parse(&s) {
            prop_assert!(verify(&g).is_ok());
            prop_assert_eq!(print(&parse(&print(&g)).unwrap()), print(&g));
        }
    }

    #[test]
    fn verifier_never_panics_on_broken_ids(
        g in chains(),
        edits in prop::collection::vec((0u8..5, 0u32..40, 0u32..40), 1..4),
    ) {
        let mut g = g;
        for (what, a, b) in edits {
            let nn = g.num_nodes() as u32;
            match what {
                0 if nn > 0 => g.node_mut(Node(a % nn)).inputs.push(Value(b)),
                1 if nn > 0 => g.node_mut(Node(a % nn)).output = Value(b),
                2 => g.set_order(g.order().iter().copied().chain([Node(a)]).collect()),
                3 => g.set_outputs(vec![Value(a)]),
                _ if (a as usize) < g.num_values() => {
                    g.value_mut(Value(a)).def = ValueDef::Const(Const(b));
                }
                _ => {}
            }
        }
        let _ = verify(&g);
        let _ = print(&g);
    }
}
