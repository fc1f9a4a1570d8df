//! Tests of `integerize`, the streamlining e-graph and the threshold computation:
//! hand-built fake-quant graphs must become verified integer-only graphs whose every
//! requantized activation equals the fake-quant graph's quantizer output (exactly, or by
//! ≤ 1 LSB on a measured tiny fraction), with logits equal to float rounding.

use fqc_ir::{
    BinaryOp, DType, Dim, Graph, Op, Scale, Shape, Tensor, TensorData, TensorType, Value, Window,
    F32,
};
use fqc_passes::streamline::{streamline_quantize, IntTerm, Leaf, Term};
use fqc_passes::thresholds::{LevelFn, Rat};
use fqc_passes::{integer_only_report, integerize, is_integer_only, PassContext, PassError};
use proptest::prelude::*;

/// A tiny deterministic generator (xorshift) so graphs are reproducible from a seed.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn unit(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 24) as f32
    }
    fn range(&mut self, lo: f32, hi: f32) -> f32 {
        lo + (hi - lo) * self.unit()
    }
    fn int(&mut self, lo: i64, hi: i64) -> i64 {
        lo + (self.next() % (hi - lo + 1) as u64) as i64
    }
}

struct B {
    g: Graph,
    rng: Rng,
}

fn window(k: u64, s: u64, p: u64) -> Window {
    Window {
        kernel: [k, k],
        strides: [s, s],
        pads: [p; 4],
        dilations: [1, 1],
        ceil_mode: false,
    }
}

impl B {
    fn new(seed: u64) -> B {
        B {
            g: Graph::new("t"),
            rng: Rng(seed | 1),
        }
    }
    fn node(&mut self, op: Op, ins: Vec<Value>, name: &str) -> Value {
        let tys: Vec<TensorType> = ins.iter().map(|&v| self.g.ty(v).clone()).collect();
        let refs: Vec<&TensorType> = tys.iter().collect();
        let ty = fqc_ir::infer::infer(&op, &refs).unwrap_or_else(|e| panic!("{name}: {e}"));
        self.g.add_node(op, ins, ty, name, Some(name.to_string()))
    }
    fn fconst(&mut self, shape: Vec<usize>, data: Vec<f32>) -> Value {
        let ty = TensorType::f32(Shape::fixed(
            &shape.iter().map(|&d| d as u64).collect::<Vec<_>>(),
        ));
        self.g
            .add_const(None, ty, Tensor::f32(shape, data).unwrap())
    }
    /// `dequantize(quantize(x))` with the quantize output's name `name`.
    fn qdq(&mut self, x: Value, dtype: DType, scale: f32, name: &str) -> Value {
        let q = self.node(
            Op::Quantize {
                dtype,
                scale: F32(scale),
                offset: F32(0.0),
            },
            vec![x],
            name,
        );
        self.node(Op::Dequantize, vec![q], &format!("{name}_dq"))
    }
    /// Dequantized random integer weights of `dtype`, per-output-channel scales on `axis`.
    fn weights(&mut self, dtype: DType, shape: Vec<usize>, axis: usize) -> Value {
        let (lo, hi) = dtype.quant_range().unwrap();
        let n: usize = shape.iter().product();
        let q: Vec<i8> = (0..n).map(|_| self.rng.int(lo, hi) as i8).collect();
        let c = shape[axis];
        let s: Vec<f32> = (0..c).map(|_| self.rng.range(0.02, 0.3)).collect();
        let sv = self.fconst(vec![c], s);
        let dims: Vec<u64> = shape.iter().map(|&d| d as u64).collect();
        let ty = TensorType {
            dtype,
            shape: Shape::fixed(&dims),
            scale: Some(Scale::Channel { axis, scales: sv }),
        };
        let w = self.g.add_const(
            None,
            ty,
            Tensor {
                shape,
                data: TensorData::I8(q),
            },
        );
        self.node(Op::Dequantize, vec![w], "w_dq")
    }
    fn bias(&mut self, c: usize) -> Value {
        let b = (0..c).map(|_| self.rng.range(-0.5, 0.5)).collect();
        self.fconst(vec![c], b)
    }
    fn conv(&mut self, x: Value, w: Value, b: Value, k: u64, p: u64, name: &str) -> Value {
        let op = Op::Conv {
            window: window(k, 1, p),
            group: 1,
        };
        self.node(op, vec![x, w, b], name)
    }
    fn scale(&mut self) -> f32 {
        self.rng.range(0.02, 0.2)
    }
    fn input(&mut self, c: u64, hw: u64) -> Value {
        let shape = Shape(vec![
            Dim::Batch,
            Dim::Fixed(c),
            Dim::Fixed(hw),
            Dim::Fixed(hw),
        ]);
        self.g.add_input("x", TensorType::f32(shape))
    }
}

const U4: DType = DType::Int {
    signed: false,
    bits: 4,
};
const I4: DType = DType::Int {
    signed: true,
    bits: 4,
};

/// conv-ReLU chain (i8 input, t2 and i4 weights, u4/i4 activations), max-pool, flatten,
/// final gemm; optional input normalisation and an unfoldable BN affine with γ < 0.
fn chain(seed: u64, normalise: bool, affine: bool) -> (Graph, Value) {
    let mut b = B::new(seed);
    let x = b.input(1, 8);
    let mut xin = x;
    if normalise {
        // d is a power of two, so folding `(x - m) / d` into the input quantizer's scale
        // `s·d` is exact in f32 and the comparison below can demand ≤ 1 LSB everywhere.
        // With another d (MNIST's 0.3081) the folded f32 scale can move an input level by
        // one at a near-tie, and that input difference then propagates downstream.
        let m = b.fconst(vec![], vec![0.1307]);
        let d = b.fconst(vec![], vec![0.25]);
        let s = b.node(Op::Binary(BinaryOp::Sub), vec![x, m], "sub");
        xin = b.node(Op::Binary(BinaryOp::Div), vec![s, d], "div");
    }
    let s0 = 0.02 + 0.01 * b.rng.unit();
    let d0 = b.qdq(xin, DType::I8, s0, "q0");
    let w1 = b.weights(DType::Ternary, vec![4, 1, 3, 3], 0);
    let b1 = b.bias(4);
    let c1 = b.conv(d0, w1, b1, 3, 1, "conv1");
    let s1 = b.scale();
    let d1 = b.qdq(c1, U4, s1, "q1");
    let p1 = b.node(
        Op::MaxPool {
            window: window(2, 2, 0),
        },
        vec![d1],
        "pool1",
    );
    let w2 = b.weights(I4, vec![6, 4, 3, 3], 0);
    let b2 = b.bias(6);
    let mut c2 = b.conv(p1, w2, b2, 3, 0, "conv2");
    if affine {
        let g: Vec<f32> = (0..6)
            .map(|i| {
                if i % 2 == 0 {
                    -b.rng.range(0.5, 2.0)
                } else {
                    b.rng.range(0.5, 2.0)
                }
            })
            .collect();
        let gv = b.fconst(vec![1, 6, 1, 1], g);
        let be = b.bias(6);
        let be4 = {
            let data = b.g.const_tensor(be).unwrap().as_f32().unwrap().to_vec();
            b.fconst(vec![6, 1, 1], data)
        };
        c2 = b.node(Op::Binary(BinaryOp::Mul), vec![c2, gv], "bn_mul");
        c2 = b.node(Op::Binary(BinaryOp::Add), vec![c2, be4], "bn_add");
    }
    let s2 = b.scale();
    let d2 = b.qdq(c2, I4, s2, "q2");
    let f = b.node(Op::Flatten { axis: 1 }, vec![d2], "flatten");
    let w3 = b.weights(DType::Ternary, vec![10, 24], 0);
    let b3 = b.bias(10);
    let gemm = Op::Gemm {
        alpha: F32(1.0),
        beta: F32(1.0),
        trans_a: false,
        trans_b: true,
    };
    let logits = b.node(gemm, vec![f, w3, b3], "fc");
    (b.g, logits)
}

/// Residual block with a projection shortcut and different branch scales, a residual
/// join, global average pooling, average pooling, the final gemm and a softmax.
fn residual(seed: u64) -> (Graph, Value) {
    residual_at(seed, U4, I4)
}

/// The residual block with branch activations `ua` (unsigned) / `sa_t` (signed).
fn residual_at(seed: u64, ua: DType, sa_t: DType) -> (Graph, Value) {
    let mut b = B::new(seed);
    let x = b.input(2, 6);
    let s0 = 0.01 + 0.01 * b.rng.unit();
    let d0 = b.qdq(x, DType::U8, s0, "q0");
    let wa = b.weights(DType::Ternary, vec![4, 2, 3, 3], 0);
    let ba = b.bias(4);
    let ca = b.conv(d0, wa, ba, 3, 1, "conv_a");
    let sa = b.scale();
    let da = b.qdq(ca, ua, sa, "qa");
    let wp = b.weights(DType::Ternary, vec![4, 2, 1, 1], 0);
    let bp = b.bias(4);
    let cp = b.conv(d0, wp, bp, 1, 0, "proj");
    let sp = b.scale();
    let dp = b.qdq(cp, sa_t, sp, "qp");
    let add = b.node(Op::Binary(BinaryOp::Add), vec![da, dp], "join");
    let sj = b.scale();
    let dj = b.qdq(add, ua, sj, "qj");
    let ap = b.node(
        Op::AveragePool {
            window: window(2, 2, 0),
            count_include_pad: true,
        },
        vec![dj],
        "avgpool",
    );
    let sap = b.scale() / 2.0;
    let dap = b.qdq(ap, U4, sap, "qavg");
    let gap = b.node(Op::GlobalAveragePool, vec![dap], "gap");
    let sg = b.scale() / 3.0;
    let dg = b.qdq(gap, DType::U8, sg, "qgap");
    let f = b.node(Op::Flatten { axis: 1 }, vec![dg], "flatten");
    let w3 = b.weights(DType::Ternary, vec![10, 4], 0);
    let b3 = b.bias(10);
    let gemm = Op::Gemm {
        alpha: F32(1.0),
        beta: F32(1.0),
        trans_a: false,
        trans_b: true,
    };
    let logits = b.node(gemm, vec![f, w3, b3], "fc");
    let sm = b.node(Op::Softmax { axis: 1 }, vec![logits], "softmax");
    (b.g, sm)
}

/// Outputs: the final value, then every quantizer's result (in schedule order).
fn expose_quantizers(g: &mut Graph, last: Value) -> Vec<String> {
    let mut outs = vec![last];
    let mut names = vec![];
    for (_, n) in g.nodes() {
        if matches!(n.op, Op::Quantize { .. }) {
            outs.push(n.output);
            names.push(n.name.clone());
        }
    }
    g.set_outputs(outs);
    names
}

fn ints(t: &Tensor) -> Vec<i64> {
    match &t.data {
        TensorData::I8(v) => v.iter().map(|&x| i64::from(x)).collect(),
        TensorData::U8(v) => v.iter().map(|&x| i64::from(x)).collect(),
        TensorData::I32(v) => v.iter().map(|&x| i64::from(x)).collect(),
        other => panic!("not an integer tensor: {other:?}"),
    }
}

fn random_input(g: &Graph, seed: u64, batch: usize) -> Tensor {
    let mut rng = Rng(seed | 1);
    let mut shape = g.ty(g.inputs()[0]).shape.resolve(batch as u64);
    shape[0] = batch;
    let n = shape.iter().product();
    Tensor::f32(shape, (0..n).map(|_| rng.range(-1.0, 2.0)).collect()).unwrap()
}

/// Integerizes a copy of `g` and compares it with `g` on `input`: every exposed
/// activation level must be equal (README: "0 level mismatches"), and the logits equal
/// up to float rounding (the fake-quant graph computes them in f32 from the same levels,
/// the integer graph by an i32 accumulator and one dequantize). Returns the number of
/// activation elements compared.
fn compare(g: &Graph, input: &Tensor) -> usize {
    let mut ig = g.clone();
    let mut cx = PassContext::default();
    integerize(&mut ig, &mut cx).unwrap_or_else(|e| panic!("{e}"));
    fqc_ir::verify(&ig).unwrap();
    assert!(is_integer_only(&ig), "{}", integer_only_report(&ig));
    let fq = fqc_ir::run(g, std::slice::from_ref(input)).unwrap();
    let iq = fqc_ir::run(&ig, std::slice::from_ref(input)).unwrap();
    let mut elements = 0;
    for (i, (a, b)) in fq[1..].iter().zip(&iq[1..]).enumerate() {
        assert_eq!(a.shape, b.shape);
        let (x, y) = (ints(a), ints(b));
        elements += x.len();
        let diff = x.iter().zip(&y).position(|(p, q)| p != q);
        assert!(
            diff.is_none(),
            "activation {i} differs at element {diff:?}: fake-quant {:?} vs integer {:?}",
            diff.map(|k| x[k]),
            diff.map(|k| y[k])
        );
    }
    let (a, b) = (fq[0].as_f32().unwrap(), iq[0].as_f32().unwrap());
    for (x, y) in a.iter().zip(b) {
        let err = (x - y).abs() / x.abs().max(1.0);
        assert!(
            err <= 1e-4,
            "logits differ beyond float rounding: {x} vs {y}"
        );
    }
    elements
}

#[test]
fn conv_chain_becomes_integer_only() {
    for (normalise, affine) in [(false, false), (true, false), (false, true), (true, true)] {
        let (mut g, logits) = chain(7, normalise, affine);
        g.set_outputs(vec![logits]);
        assert!(
            !is_integer_only(&g),
            "the fake-quant graph is not integer-only"
        );
        let mut cx = PassContext::default();
        integerize(&mut g, &mut cx).unwrap();
        fqc_ir::verify(&g).unwrap();
        let r = integer_only_report(&g);
        assert!(r.is_integer_only(), "{r}");
        assert_eq!(r.input_quantizers.len(), 1, "{r}");
        assert_eq!(r.output_dequantizers, vec!["fc".to_string()], "{r}");
        let ops: Vec<&str> = g.nodes().map(|(_, n)| n.op.name()).collect();
        assert!(
            !ops.contains(&"sub") && !ops.contains(&"mul") && !ops.contains(&"conv"),
            "{ops:?}"
        );
        assert!(
            ops.contains(&"qconv") && ops.contains(&"qgemm") && ops.contains(&"requantize"),
            "{ops:?}"
        );
        if normalise {
            let q = g
                .nodes()
                .find(|(_, n)| matches!(n.op, Op::Quantize { .. }))
                .unwrap()
                .1;
            let Op::Quantize { offset, .. } = q.op else {
                unreachable!()
            };
            assert_eq!(offset.get(), 0.1307f32, "sub folded into the offset");
            assert_eq!(g.value(q.inputs[0]).def, fqc_ir::ValueDef::Input(0));
        }
        if affine {
            // γ < 0 on even channels: their requantize channels are descending.
            let rq = g
                .nodes()
                .filter(|(_, n)| matches!(n.op, Op::Requantize { .. }))
                .last()
                .unwrap()
                .1;
            let desc = g.const_tensor(rq.inputs[2]).unwrap();
            assert_eq!(desc.data, TensorData::I8(vec![1, 0, 1, 0, 1, 0]));
        }
    }
}

#[test]
fn residual_pooling_block_becomes_integer_only() {
    let (mut g, out) = residual(11);
    g.set_outputs(vec![out]);
    let mut cx = PassContext::default();
    integerize(&mut g, &mut cx).unwrap();
    fqc_ir::verify(&g).unwrap();
    let r = integer_only_report(&g);
    assert!(r.is_integer_only(), "{r}");
    assert_eq!(r.trailing, vec!["softmax".to_string()]);
    let ops: Vec<&str> = g.nodes().map(|(_, n)| n.op.name()).collect();
    for want in [
        "scaled_add",
        "sumpool",
        "global_sumpool",
        "qgemm",
        "softmax",
    ] {
        assert!(ops.contains(&want), "{want} missing in {ops:?}");
    }
    let stops = cx.notes.iter().filter(|n| n.contains("stop:")).count();
    assert_eq!(
        stops, 3,
        "one logged e-graph run per join/pool: {:?}",
        cx.notes
    );
}

#[test]
fn float_op_without_an_integer_form_is_a_float_island() {
    // An LRN between two quantizers has no integer form.
    let (mut g, logits) = chain(3, false, false);
    let lrn_in = g.nodes().find(|(_, n)| n.name == "q1_dq").unwrap().1.output;
    let ty = g.ty(lrn_in).clone();
    let lrn = g.add_node(
        Op::Lrn {
            size: 3,
            alpha: F32(1e-4),
            beta: F32(0.75),
            bias: F32(1.0),
        },
        vec![lrn_in],
        ty,
        "lrn",
        None,
    );
    let pool = g
        .nodes()
        .find(|(_, n)| n.name == "pool1")
        .map(|(n, _)| n)
        .unwrap();
    g.node_mut(pool).inputs[0] = lrn;
    // Keep the schedule topological: move the LRN before the pool.
    let mut order: Vec<_> = g.order().to_vec();
    let l = order.pop().unwrap();
    let at = order.iter().position(|&n| n == pool).unwrap();
    order.insert(at, l);
    g.set_order(order);
    g.set_outputs(vec![logits]);
    fqc_ir::verify(&g).unwrap();
    // By default the LRN stays a float island between two quantizers, and the report
    // says so, naming it.
    let mut kept = g.clone();
    let mut cx = PassContext::default();
    integerize(&mut kept, &mut cx).unwrap_or_else(|e| panic!("{e}"));
    fqc_ir::verify(&kept).unwrap();
    let r = integer_only_report(&kept);
    assert!(!r.is_integer_only());
    assert_eq!(r.islands.len(), 1, "{r}");
    assert!(r.islands[0].contains(&"lrn".to_string()), "{r}");
    assert!(
        r.verdict().starts_with("no (1 float island: "),
        "{}",
        r.verdict()
    );
    assert!(
        cx.notes.iter().any(|n| n.contains("float island at `lrn`")),
        "{:?}",
        cx.notes
    );
    // The island computes what the fake-quant graph computes.
    let input = random_input(&g, 5, 2);
    let fq = fqc_ir::run(&g, std::slice::from_ref(&input)).unwrap();
    let iq = fqc_ir::run(&kept, std::slice::from_ref(&input)).unwrap();
    for (x, y) in fq[0].as_f32().unwrap().iter().zip(iq[0].as_f32().unwrap()) {
        assert!((x - y).abs() <= 1e-4 * x.abs().max(1.0), "{x} vs {y}");
    }
    // Under `require_integer_only` it is an error that names the LRN.
    let mut cx = PassContext::default();
    cx.config.require_integer_only = true;
    match integerize(&mut g, &mut cx) {
        Err(PassError::Unsupported { node, op, msg, .. }) => {
            assert_eq!((node.as_str(), op), ("lrn", "lrn"));
            assert!(msg.contains("float island"), "{msg}");
        }
        other => panic!("expected Unsupported for the LRN, got {other:?}"),
    }
    // And the report flags a float op left between the boundaries.
    let (mut g, logits) = chain(3, false, false);
    g.set_outputs(vec![logits]);
    let r = integer_only_report(&g);
    assert!(
        r.float_ops
            .iter()
            .any(|(n, op, _)| n == "conv1" && *op == "conv"),
        "{r}"
    );
}

#[test]
fn egraph_rescales_a_join_to_an_exact_common_scale() {
    let (s1, s2) = (Rat::from_f32(0.031).unwrap(), Rat::from_f32(0.047).unwrap());
    let leaves = [
        Leaf {
            scale: s1,
            bound: 15,
        },
        Leaf {
            scale: s2,
            bound: 7,
        },
    ];
    let term = Term::Add(Box::new(Term::Leaf(0)), Box::new(Term::Leaf(1)));
    let mut notes = vec![];
    let sy = Rat::from_f32(0.09).unwrap();
    let plan = streamline_quantize(&term, &leaves, &[], 1, sy, 0, &mut notes).unwrap();
    let IntTerm::ScaledAdd(0, k1, 1, k2) = plan.root else {
        panic!("{plan:?}")
    };
    assert_eq!(Rat::int(k1.into()).checked_mul(plan.a), Some(s1));
    assert_eq!(Rat::int(k2.into()).checked_mul(plan.a), Some(s2));
    assert!(notes[0].contains("stop:"), "{notes:?}");
    eprintln!(
        "join 0.031 + 0.047: {} (k1={k1}, k2={k2}, s={})",
        plan.term, plan.a
    );
    // Pooling: the divisor and the input scale merge into the thresholds' factor.
    let term = Term::Relu(Box::new(Term::AvgPool {
        pool: 0,
        divisor: 4,
        x: Box::new(Term::Leaf(0)),
    }));
    let plan = streamline_quantize(&term, &leaves, &[4], 1, sy, 0, &mut notes).unwrap();
    assert_eq!(plan.root, IntTerm::SumPool(0, 0));
    assert_eq!(Some(plan.a), s1.checked_div(Rat::int(4)));
    assert!(!plan.relu, "an unsigned quantizer absorbs the relu");
}

/// Brute force: the thresholds reproduce the exact level function on every accumulator
/// of a range, for random parameters of both signs (ties included by construction).
#[test]
fn thresholds_match_brute_force() {
    let mut rng = Rng(12345);
    for case in 0..400 {
        let bits = rng.int(2, 8) as u8;
        let signed = rng.int(0, 1) == 1;
        let (qmin, qmax) = DType::Int { signed, bits }.quant_range().unwrap();
        let mut a = rng.range(0.001, 0.2) * if rng.int(0, 1) == 1 { -1.0 } else { 1.0 };
        if case % 7 == 0 {
            a = 0.5; // exact ties at odd accumulators with s = 1
        }
        let b = if case % 7 == 0 {
            0.0
        } else {
            rng.range(-3.0, 3.0)
        };
        let s = if case % 7 == 0 {
            1.0
        } else {
            rng.range(0.01, 0.5)
        };
        let f = LevelFn {
            a: Rat::from_f32(a).unwrap(),
            b: Rat::from_f32(b).unwrap(),
            scale: Rat::from_f32(s).unwrap(),
            qmin,
            qmax,
            lo: (case % 3 == 0).then_some(Rat::ZERO),
            hi: None,
        };
        let th = f.thresholds();
        assert_eq!(th.descending, a < 0.0);
        assert_eq!(th.t.len(), (qmax - qmin) as usize);
        for acc in -600i64..=600 {
            let count =
                th.t.iter()
                    .filter(|&&t| {
                        if th.descending {
                            i64::from(t) >= acc
                        } else {
                            i64::from(t) <= acc
                        }
                    })
                    .count();
            let step = qmin + count as i64;
            assert_eq!(step, f.eval(acc), "case {case}: acc {acc}, {f:?}");
            // Independent f64 check away from ties.
            let mut y = acc as f64 * f64::from(a) + f64::from(b);
            if case % 3 == 0 {
                y = y.max(0.0);
            }
            let t = y / f64::from(s);
            if (t - t.floor() - 0.5).abs() > 1e-6 {
                assert_eq!(f.eval(acc), (t.round() as i64).clamp(qmin, qmax));
            }
        }
    }
    // Half to even at exact ties: y = acc/2, s = 1.
    let f = LevelFn {
        a: Rat::new(1, 2).unwrap(),
        b: Rat::ZERO,
        scale: Rat::ONE,
        qmin: -7,
        qmax: 7,
        lo: None,
        hi: None,
    };
    assert_eq!(
        (-3..=3).map(|acc| f.eval(acc)).collect::<Vec<_>>(),
        vec![-2, -1, 0, 0, 0, 1, 2]
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Integer graph == fake-quant graph on random weights, scales and inputs: every
    /// activation level equal, logits equal up to float rounding (`compare`).
    #[test]
    fn integer_graph_matches_fake_quant(seed in 1u64..u64::MAX, kind in 0usize..4) {
        let (mut g, last) = match kind {
            0 => chain(seed, false, false),
            1 => chain(seed, true, true),
            2 => residual(seed),
            // 8-bit branches: the exact common scale overflows i32, so the join uses the
            // approximate nearby common scale (streamline::rules::nearby_common_scale).
            _ => residual_at(seed, DType::U8, DType::I8),
        };
        expose_quantizers(&mut g, last);
        let elements = compare(&g, &random_input(&g, seed ^ 0x9e37, 4));
        prop_assert!(elements > 0, "no activation was compared");
    }
}

/// A MobileNetV3-style block: hard-swish spelled out as `x·clip(x+3,0,6)/6`, an average
/// pool that excludes padding, a squeeze-and-excitation gate (hard-sigmoid, product of
/// two quantized tensors), a concat of branches at different scales, a final gemm.
fn modern_block(seed: u64) -> (Graph, Value) {
    let mut b = B::new(seed);
    let x = b.input(2, 6);
    let d0 = {
        let s = b.rng.range(0.005, 0.01);
        b.qdq(x, DType::U8, s, "q0")
    };
    let wa = b.weights(DType::I8, vec![4, 2, 3, 3], 0);
    let ba = b.bias(4);
    let ca = b.conv(d0, wa, ba, 3, 1, "conv_a");
    let da = {
        let s = b.rng.range(0.03, 0.05);
        b.qdq(ca, DType::I8, s, "qa")
    };
    let three = b.fconst(vec![], vec![3.0]);
    let six = b.fconst(vec![], vec![6.0]);
    let shifted = b.node(Op::Binary(BinaryOp::Add), vec![da, three], "hs_add");
    let clipped = b.node(
        Op::Clip {
            min: F32(0.0),
            max: F32(6.0),
        },
        vec![shifted],
        "hs_clip",
    );
    let prod = b.node(Op::Binary(BinaryOp::Mul), vec![da, clipped], "hs_mul");
    let hs = b.node(Op::Binary(BinaryOp::Div), vec![prod, six], "hs_div");
    let dh = {
        let s = b.rng.range(0.02, 0.04);
        b.qdq(hs, DType::I8, s, "qh")
    };
    let pool = b.node(
        Op::AveragePool {
            window: window(3, 1, 1),
            count_include_pad: false,
        },
        vec![dh],
        "avg_exclude_pad",
    );
    let dp = {
        let s = b.rng.range(0.02, 0.03);
        b.qdq(pool, DType::I8, s, "qp")
    };
    let gap = b.node(Op::GlobalAveragePool, vec![dp], "se_gap");
    let dg = {
        let s = b.rng.range(0.01, 0.02);
        b.qdq(gap, DType::I8, s, "qg")
    };
    let ws = b.weights(DType::I8, vec![4, 4, 1, 1], 0);
    let bs = b.bias(4);
    let cs = b.conv(dg, ws, bs, 1, 0, "se_conv");
    let ds = {
        let s = b.rng.range(0.03, 0.06);
        b.qdq(cs, DType::I8, s, "qs")
    };
    let hsig = b.node(
        Op::Unary(fqc_ir::UnaryOp::HardSigmoid {
            alpha: F32(0.2),
            beta: F32(0.5),
        }),
        vec![ds],
        "se_hsig",
    );
    let dsig = b.qdq(hsig, DType::U8, 1.0 / 255.0, "qsig");
    let gated = b.node(Op::Binary(BinaryOp::Mul), vec![dp, dsig], "se_mul");
    let dm = {
        let s = b.rng.range(0.01, 0.02);
        b.qdq(gated, DType::I8, s, "qm")
    };
    let cat = b.node(Op::Concat { axis: 1 }, vec![dm, dh], "concat");
    let dc = {
        let s = b.rng.range(0.02, 0.04);
        b.qdq(cat, DType::I8, s, "qc")
    };
    let f = b.node(Op::Flatten { axis: 1 }, vec![dc], "flatten");
    let w3 = b.weights(DType::I8, vec![5, 8 * 36], 0);
    let b3 = b.bias(5);
    let gemm = Op::Gemm {
        alpha: F32(1.0),
        beta: F32(1.0),
        trans_a: false,
        trans_b: true,
    };
    let logits = b.node(gemm, vec![f, w3, b3], "fc");
    (b.g, logits)
}

#[test]
fn modern_block_becomes_integer_only_and_exact() {
    for seed in [1, 2, 3] {
        let (mut g, logits) = modern_block(seed);
        expose_quantizers(&mut g, logits);
        fqc_ir::verify(&g).unwrap();
        let n = compare(&g, &random_input(&g, seed + 10, 3));
        assert!(n > 0);
    }
    let (mut g, logits) = modern_block(1);
    g.set_outputs(vec![logits]);
    integerize(&mut g, &mut PassContext::default()).unwrap();
    let ops: Vec<&str> = g.nodes().map(|(_, n)| n.op.name()).collect();
    // The hard-swish is one table; the hard-sigmoid (monotone) folds into the gate
    // conv's requantize; the gate product is a qmul; the exclude-pad pool a sumpool
    // times per-position factors; the concat rescales one branch.
    for want in ["table", "qmul", "sumpool", "concat", "requantize"] {
        assert!(ops.contains(&want), "{want} missing in {ops:?}");
    }
    assert!(!ops.contains(&"hard_sigmoid"), "{ops:?}");
}
