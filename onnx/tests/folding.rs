//! Import-time evaluation: Constant forms, ConstantOfShape, shape subgraphs with a
//! symbolic batch, all-constant float nodes, and MatMul + Add → Gemm.

mod common;

use common::*;
use fqc_ir::{Op, Tensor};
use fqc_onnx::proto::tensor_proto::DataType;

/// PyTorch's old flatten: `Shape → Gather(0) → Unsqueeze(0) → Concat(·, [-1]) → Reshape`.
#[test]
fn shape_gather_unsqueeze_concat_reshape_gives_batch() {
    let mut g = G::new(9);
    g.input("x", &[P("batch"), V(1), V(28), V(28)]).output("y");
    g.node("Shape", &["x"], &["s"]);
    g.node_attrs(
        "Constant",
        &[],
        &["zero"],
        vec![at("value", ti64("", &[], vec![0]))],
    );
    g.node_attrs("Gather", &["s", "zero"], &["n"], vec![ai("axis", 0)]);
    g.node_attrs("Unsqueeze", &["n"], &["n1"], vec![ais("axes", &[0])]);
    g.node_attrs(
        "Constant",
        &[],
        &["rest"],
        vec![at("value", ti64("", &[1], vec![784]))],
    );
    g.node_attrs("Concat", &["n1", "rest"], &["shape"], vec![ai("axis", 0)]);
    g.node("Reshape", &["x", "shape"], &["y"]);
    let ir = g.ok();
    assert_eq!(ops(&ir), ["reshape"]);
    assert_eq!(out_ty(&ir, 0), "f32[N,784]");
    assert!(
        matches!(&ir.nodes().next().unwrap().1.op, Op::Reshape { shape } if shape[0] == fqc_ir::Dim::Batch)
    );
}

/// Also with Cast, Slice, Squeeze, int64 Mul/Div and a -1 after arithmetic.
#[test]
fn shape_arith_with_cast_slice_squeeze() {
    let mut g = G::new(13);
    g.input("x", &[P("N"), V(4), V(6), V(2)]).output("y");
    g.node("Shape", &["x"], &["s"]);
    g.init(ti64("st", &[1], vec![1]));
    g.init(ti64("en", &[1], vec![3]));
    g.init(ti64("ax", &[1], vec![0]));
    g.node("Slice", &["s", "st", "en"], &["hw"]); // [4, 6]
    g.node("Cast", &["hw"], &["hw32"])
        .attribute
        .push(ai("to", DataType::Int32 as i64));
    g.node("Cast", &["hw32"], &["hw64"])
        .attribute
        .push(ai("to", DataType::Int64 as i64));
    g.init(ti64("two", &[], vec![2]));
    g.node("Mul", &["hw64", "two"], &["hw2"]); // [8, 12]
    g.node("Div", &["hw2", "two"], &["hw1"]); // [4, 6]
    g.init(ti64("i0", &[1], vec![0]));
    g.node("Gather", &["s", "i0"], &["n1"]); // [N]
    g.node("Squeeze", &["n1", "ax"], &["n"]); // N
    g.node("Unsqueeze", &["n", "ax"], &["nv"]); // [N]
    g.init(ti64("m1", &[1], vec![-1]));
    g.node("Concat", &["nv", "hw1", "m1"], &["shape"])
        .attribute
        .push(ai("axis", 0));
    g.node("Reshape", &["x", "shape"], &["y"]);
    let ir = g.ok();
    assert_eq!(out_ty(&ir, 0), "f32[N,4,6,2]");
}

#[test]
fn batch_times_k_is_not_a_representable_dim() {
    let mut g = G::new(13);
    g.input("x", &[P("N"), V(4)]).output("y");
    g.node("Shape", &["x"], &["s"]);
    g.init(ti64("two", &[], vec![2]));
    g.node("Mul", &["s", "two"], &["s2"]); // [2N, 8]
    g.node("Reshape", &["x", "s2"], &["y"]);
    let e = g.err();
    assert!(e.contains("2*N") && e.contains("not representable"), "{e}");
}

#[test]
fn shape_of_runtime_data_used_as_tensor_is_refused() {
    let mut g = G::new(13);
    g.input("x", &[P("N"), V(4)]).output("y");
    g.node("Shape", &["x"], &["s"]);
    g.node("Cast", &["s"], &["y"])
        .attribute
        .push(ai("to", DataType::Float as i64));
    let e = g.err();
    assert!(e.contains("depends on the batch size"), "{e}");
    // Gather of runtime data is an op (constant indices); along the batch it is refused.
    let mut g = G::new(13);
    g.input("x", &[P("N"), V(4)]).output("y");
    g.init(ti64("i", &[], vec![0]));
    g.node("Gather", &["x", "i"], &["y"]);
    let e = g.err();
    assert!(e.contains("gathering along the batch axis 0"), "{e}");
}

#[test]
fn constant_of_shape_feeds_a_weight() {
    let mut g = G::new(9);
    g.input("x", &[V(1), V(2), V(4), V(4)]).output("y");
    g.node_attrs(
        "Constant",
        &[],
        &["ws"],
        vec![at("value", ti64("", &[4], vec![3, 2, 1, 1]))],
    );
    g.node_attrs(
        "ConstantOfShape",
        &["ws"],
        &["w"],
        vec![at("value", tf32("", &[1], vec![0.5]))],
    );
    g.node("Conv", &["x", "w"], &["y"]);
    let ir = g.ok();
    assert_eq!(out_ty(&ir, 0), "f32[1,3,4,4]");
    let w = ir.nodes().next().unwrap().1.inputs[1];
    assert_eq!(ir.const_tensor(w).unwrap().as_f32().unwrap(), &[0.5; 6]);
    // Default value: float 0.
    let mut g = G::new(9);
    g.input("x", &[V(3)]).output("y");
    g.init(ti64("s", &[1], vec![3]));
    g.node("ConstantOfShape", &["s"], &["z"]);
    g.node("Add", &["x", "z"], &["y"]);
    g.ok();
}

#[test]
fn constant_attribute_forms() {
    let forms = vec![
        (at("value", tf32("", &[2], vec![1.0, 2.0])), "f32[2]"),
        (af("value_float", 3.0), "f32[]"),
        (afs("value_floats", &[1.0, 2.0, 3.0]), "f32[3]"),
        (ai("value_int", 7), "i64[]"),
        (ais("value_ints", &[1, 2]), "i64[2]"),
    ];
    for (attr, ty) in forms {
        let mut g = G::new(13);
        g.input("x", &[V(1)]).output("c");
        g.node_attrs("Constant", &[], &["c"], vec![attr]);
        let ir = g.ok();
        assert_eq!(out_ty(&ir, 0), ty);
        assert!(ir.order().is_empty());
    }
    let mut g = G::new(13);
    g.input("x", &[V(1)]).output("c");
    g.node_attrs("Constant", &[], &["c"], vec![astr("value_string", "hi")]);
    assert!(g.err().contains("value_string"));
    let mut g = G::new(13);
    g.input("x", &[V(1)]).output("c");
    g.node_attrs(
        "Constant",
        &[],
        &["c"],
        vec![af("value_float", 1.0), ai("value_int", 1)],
    );
    assert!(g.err().contains("exactly one"));
}

#[test]
fn all_constant_float_nodes_are_folded() {
    // Transpose of a weight initializer (pt_Linear_no_bias's pattern) and an Add of two
    // constants are evaluated by the interpreter at import.
    let mut g = G::new(9);
    g.input("x", &[V(2), V(3)]).output("y");
    g.init(tf32("w", &[4, 3], ramp(12, 1.0)));
    g.init(tf32("one", &[], vec![1.0]));
    g.node("Transpose", &["w"], &["wt"]);
    g.node("Add", &["wt", "one"], &["wt1"]);
    g.node("MatMul", &["x", "wt1"], &["y"]);
    let ir = g.ok();
    assert_eq!(ops(&ir), ["matmul"]);
    let w = ir.nodes().next().unwrap().1.inputs[1];
    let t = ir.const_tensor(w).unwrap();
    assert_eq!(t.shape, [3, 4]);
    assert_eq!(&t.as_f32().unwrap()[..4], &[1.0, 4.0, 7.0, 10.0]);
    assert_eq!(ir.value(w).name.as_deref(), Some("wt1"));
}

#[test]
fn matmul_add_becomes_gemm() {
    let mut g = G::new(13);
    g.input("x", &[P("N"), V(3)]).output("y");
    g.init(tf32("w", &[3, 2], vec![1., 2., 3., 4., 5., 6.]));
    g.init(tf32("b", &[2], vec![10., 20.]));
    g.node("MatMul", &["x", "w"], &["xw"]);
    g.node("Add", &["xw", "b"], &["y"]);
    let ir = g.ok();
    assert_eq!(ops(&ir), ["gemm"]);
    let (_, n) = ir.nodes().next().unwrap();
    assert!(matches!(
        n.op,
        Op::Gemm {
            trans_b: true,
            trans_a: false,
            ..
        }
    ));
    let wt = ir.const_tensor(n.inputs[1]).unwrap();
    assert_eq!(wt.shape, [2, 3]);
    assert_eq!(wt.as_f32().unwrap(), &[1., 3., 5., 2., 4., 6.]);
    assert_eq!(ir.value(n.output).name.as_deref(), Some("y"));
    assert_eq!(out_ty(&ir, 0), "f32[N,2]");
    let y = run(&ir, &[Tensor::f32(vec![1, 3], vec![1., 1., 1.]).unwrap()]);
    assert_eq!(y[0].as_f32().unwrap(), &[19., 32.]);
}

#[test]
fn matmul_add_not_fused_when_matmul_has_other_users() {
    let mut g = G::new(13);
    g.input("x", &[V(1), V(3)]).output("y").output("xw");
    g.init(tf32("w", &[3, 2], ramp(6, 1.0)));
    g.init(tf32("b", &[2], vec![1., 2.]));
    g.node("MatMul", &["x", "w"], &["xw"]);
    g.node("Add", &["xw", "b"], &["y"]);
    assert_eq!(ops(&g.ok()), ["matmul", "add"]);
}

#[test]
fn dead_constants_and_nodes_are_dropped() {
    let mut g = G::new(13);
    g.input("x", &[V(2)]).output("y");
    g.init(tf32("unused", &[2], vec![1., 2.]));
    g.node("Relu", &["x"], &["dead"]);
    g.node("Identity", &["x"], &["y"]);
    let ir = g.ok();
    assert!(ir.order().is_empty());
    assert_eq!(ir.num_values(), 1);
}
