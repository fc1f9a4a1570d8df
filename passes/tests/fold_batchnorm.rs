//! `fold-batchnorm` preserves what the graph computes: Conv (any grouping, with or
//! without bias) and Gemm (either weight layout, any alpha/beta) followed by BN fold into
//! one layer; a BN that cannot fold (after an Add, or on a shared conv output) becomes a
//! per-channel mul/add. Each case runs the graph before and after in the interpreter.

use fqc_ir::{BinaryOp, Dim, Graph, Op, Shape, Tensor, TensorData, TensorType, Value, Window, F32};
use fqc_passes::fold_batchnorm::FoldBatchNorm;
use fqc_passes::{PassContext, PassManager, PipelineOptions};
use proptest::prelude::*;

/// A small deterministic generator (xorshift64*), uniform in `[lo, hi)`.
struct Rng(u64);
impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed | 1)
    }
    fn uniform(&mut self, lo: f32, hi: f32) -> f32 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let u = (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 40) as f32 / (1u64 << 24) as f32;
        lo + (hi - lo) * u
    }
    fn vec(&mut self, n: usize, lo: f32, hi: f32) -> Vec<f32> {
        (0..n).map(|_| self.uniform(lo, hi)).collect()
    }
}

fn konst(g: &mut Graph, shape: &[usize], data: Vec<f32>) -> Value {
    let t = Tensor::f32(shape.to_vec(), data).expect("shape matches data");
    g.add_const(None, TensorType::f32(t.static_shape()), t)
}

fn batched(dims: &[u64]) -> TensorType {
    let mut s = vec![Dim::Batch];
    s.extend(dims.iter().map(|&d| Dim::Fixed(d)));
    TensorType::f32(Shape(s))
}

/// Appends `batchnorm(x)` over `c` channels with random parameters.
fn bn(g: &mut Graph, rng: &mut Rng, x: Value, c: usize) -> Value {
    let gamma = konst(g, &[c], rng.vec(c, -2.0, 2.0));
    let beta = konst(g, &[c], rng.vec(c, -1.0, 1.0));
    let mean = konst(g, &[c], rng.vec(c, -1.0, 1.0));
    let var = konst(g, &[c], rng.vec(c, 0.1, 2.0));
    let ty = g.ty(x).clone();
    g.add_node(
        Op::BatchNorm { epsilon: F32(1e-5) },
        vec![x, gamma, beta, mean, var],
        ty,
        "bn",
        None,
    )
}

fn window(k: u64, stride: u64, pad: u64) -> Window {
    Window {
        kernel: [k, k],
        strides: [stride, stride],
        pads: [pad; 4],
        dilations: [1, 1],
        ceil_mode: false,
    }
}

fn conv(
    g: &mut Graph,
    rng: &mut Rng,
    x: Value,
    cin: usize,
    m: usize,
    group: usize,
    bias: bool,
) -> Value {
    let k = 3;
    let w = konst(
        g,
        &[m, cin / group, k, k],
        rng.vec(m * (cin / group) * k * k, -1.0, 1.0),
    );
    let mut ops = vec![x, w];
    if bias {
        ops.push(konst(g, &[m], rng.vec(m, -0.5, 0.5)));
    }
    let op = Op::Conv {
        window: window(k as u64, 1, 1),
        group: group as u64,
    };
    let tys: Vec<&TensorType> = ops.iter().map(|&v| g.ty(v)).collect();
    let ty = fqc_ir::infer::infer(&op, &tys).expect("conv types");
    g.add_node(op, ops, ty, "conv", None)
}

/// Runs fold-batchnorm on `g` and checks outputs match on a random batch, returning the
/// folded graph.
fn fold_and_compare(g: &Graph, input: Tensor) -> Graph {
    let before = fqc_ir::run(g, std::slice::from_ref(&input)).expect("original runs");
    let mut folded = g.clone();
    let mut cx = PassContext::default();
    PassManager::new(vec![Box::new(FoldBatchNorm)])
        .run(&mut folded, &mut cx, &PipelineOptions::default())
        .expect("fold-batchnorm runs and verifies");
    let after = fqc_ir::run(&folded, &[input]).expect("folded runs");
    for (a, b) in after.iter().zip(&before) {
        let (a, b) = (a.as_f32().unwrap(), b.as_f32().unwrap());
        let scale = b.iter().fold(1e-3f32, |m, x| m.max(x.abs()));
        for (x, y) in a.iter().zip(b) {
            assert!(
                (x - y).abs() <= 1e-5 * scale,
                "folded {x} vs original {y} (output scale {scale})"
            );
        }
    }
    assert!(
        folded
            .nodes()
            .all(|(_, d)| !matches!(d.op, Op::BatchNorm { .. })),
        "a batchnorm survived"
    );
    folded
}

fn count(g: &Graph, f: impl Fn(&Op) -> bool) -> usize {
    g.nodes().filter(|(_, d)| f(&d.op)).count()
}

fn input(rng: &mut Rng, shape: &[usize]) -> Tensor {
    Tensor::f32(shape.to_vec(), rng.vec(shape.iter().product(), -1.0, 1.0)).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn conv_bn_folds(
        group in 1usize..4, cg in 1usize..4, mg in 1usize..4, hw in 3usize..8,
        n in 1usize..3, bias: bool, depthwise: bool, seed: u64,
    ) {
        let mut rng = Rng::new(seed);
        let (cin, m, group) = if depthwise { (cg * group, cg * group, cg * group) } else { (group * cg, group * mg, group) };
        let mut g = Graph::new("t");
        let x = g.add_input("x", batched(&[cin as u64, hw as u64, hw as u64]));
        let y = conv(&mut g, &mut rng, x, cin, m, group, bias);
        let z = bn(&mut g, &mut rng, y, m);
        g.set_outputs(vec![z]);
        let folded = fold_and_compare(&g, input(&mut rng, &[n, cin, hw, hw]));
        prop_assert_eq!(count(&folded, |op| matches!(op, Op::Binary(_))), 0);
        prop_assert_eq!(count(&folded, |op| matches!(op, Op::Conv { .. })), 1);
    }

    #[test]
    fn gemm_bn_folds(
        k in 1usize..20, nf in 1usize..12, trans_b: bool, bias in 0usize..3,
        alpha in -2.0f32..2.0, beta in -2.0f32..2.0, seed: u64,
    ) {
        let mut rng = Rng::new(seed);
        let mut g = Graph::new("t");
        let x = g.add_input("x", batched(&[k as u64]));
        let wshape = if trans_b { [nf, k] } else { [k, nf] };
        let w = konst(&mut g, &wshape, rng.vec(k * nf, -1.0, 1.0));
        let mut ops = vec![x, w];
        match bias {
            1 => ops.push(konst(&mut g, &[nf], rng.vec(nf, -1.0, 1.0))),
            2 => ops.push(konst(&mut g, &[1], rng.vec(1, -1.0, 1.0))),
            _ => {}
        }
        let op = Op::Gemm { alpha: F32(alpha), beta: F32(beta), trans_a: false, trans_b };
        let y = g.add_node(op, ops, batched(&[nf as u64]), "fc", None);
        let z = bn(&mut g, &mut rng, y, nf);
        g.set_outputs(vec![z]);
        let folded = fold_and_compare(&g, input(&mut rng, &[3, k]));
        prop_assert_eq!(count(&folded, |op| matches!(op, Op::Binary(_))), 0);
    }

    #[test]
    fn bn_after_add_becomes_affine(c in 1usize..5, hw in 3usize..7, seed: u64) {
        let mut rng = Rng::new(seed);
        let mut g = Graph::new("t");
        let x = g.add_input("x", batched(&[c as u64, hw as u64, hw as u64]));
        let a = conv(&mut g, &mut rng, x, c, c, 1, true);
        let b = conv(&mut g, &mut rng, x, c, c, 1, false);
        let ty = g.ty(a).clone();
        let s = g.add_node(Op::Binary(BinaryOp::Add), vec![a, b], ty, "add", None);
        let z = bn(&mut g, &mut rng, s, c);
        g.set_outputs(vec![z]);
        let folded = fold_and_compare(&g, input(&mut rng, &[2, c, hw, hw]));
        prop_assert_eq!(count(&folded, |op| *op == Op::Binary(BinaryOp::Mul)), 1);
        prop_assert_eq!(count(&folded, |op| *op == Op::Binary(BinaryOp::Add)), 2);
        // The affine's constants are shaped [C,1,1] so they broadcast over axis 1.
        for (_, d) in folded.nodes() {
            if d.op == Op::Binary(BinaryOp::Mul) {
                prop_assert_eq!(folded.ty(d.inputs[1]).shape.clone(), Shape::fixed(&[c as u64, 1, 1]));
            }
        }
    }
}

#[test]
fn shared_conv_output_and_rank2_bn_become_affine() {
    let mut rng = Rng::new(7);
    let mut g = Graph::new("t");
    let x = g.add_input("x", batched(&[3, 5, 5]));
    let y = conv(&mut g, &mut rng, x, 3, 4, 1, true);
    let z = bn(&mut g, &mut rng, y, 4);
    let ty = g.ty(z).clone();
    let s = g.add_node(Op::Binary(BinaryOp::Add), vec![z, y], ty, "res", None);
    // A BN on a rank-2 value that is not a gemm output.
    let f = g.add_node(
        Op::Flatten { axis: 1 },
        vec![s],
        batched(&[100]),
        "flat",
        None,
    );
    let r = g.add_node(Op::Relu, vec![f], batched(&[100]), "relu", None);
    let z2 = bn(&mut g, &mut rng, r, 100);
    g.set_outputs(vec![z2]);
    let folded = fold_and_compare(&g, input(&mut rng, &[2, 3, 5, 5]));
    assert_eq!(count(&folded, |op| *op == Op::Binary(BinaryOp::Mul)), 2);
    let shapes: Vec<Shape> = folded
        .nodes()
        .filter(|(_, d)| d.op == Op::Binary(BinaryOp::Mul))
        .map(|(_, d)| folded.ty(d.inputs[1]).shape.clone())
        .collect();
    assert_eq!(shapes, vec![Shape::fixed(&[4, 1, 1]), Shape::fixed(&[100])]);
}

#[test]
fn non_constant_bn_parameters_are_unsupported() {
    let mut g = Graph::new("t");
    let x = g.add_input("x", batched(&[2]));
    let p = g.add_input("p", TensorType::f32(Shape::fixed(&[2])));
    let z = g.add_node(
        Op::BatchNorm { epsilon: F32(1e-5) },
        vec![x, p, p, p, p],
        batched(&[2]),
        "bn",
        None,
    );
    g.set_outputs(vec![z]);
    let err = PassManager::new(vec![Box::new(FoldBatchNorm)])
        .run(
            &mut g,
            &mut PassContext::default(),
            &PipelineOptions::default(),
        )
        .expect_err("parameters are not constants");
    assert!(err.to_string().contains("`bn` (batchnorm)"), "{err}");
}

#[test]
fn stored_data_is_f32() {
    // The folded constants are plain f32 tensors of the original shapes.
    let mut rng = Rng::new(3);
    let mut g = Graph::new("t");
    let x = g.add_input("x", batched(&[2, 4, 4]));
    let y = conv(&mut g, &mut rng, x, 2, 3, 1, false);
    let z = bn(&mut g, &mut rng, y, 3);
    g.set_outputs(vec![z]);
    let folded = fold_and_compare(&g, input(&mut rng, &[1, 2, 4, 4]));
    let (_, c) = folded
        .nodes()
        .find(|(_, d)| matches!(d.op, Op::Conv { .. }))
        .unwrap();
    assert_eq!(c.inputs.len(), 3, "a bias was added");
    let b = folded.const_tensor(c.inputs[2]).unwrap();
    assert!(matches!(b.data, TensorData::F32(_)));
    assert_eq!(b.shape, vec![3]);
}
