//! One test per lowering rule: small models built with the prost types, imported, and
//! checked by IR shape/ops and (where semantics matter) by running the interpreter.

mod common;

use common::*;
use fqc_ir::{Dim, Op, Tensor, Window};

fn conv_graph(opset: i64, x: &[D], w: &[i64], attrs: Vec<fqc_onnx::proto::AttributeProto>) -> G {
    let mut g = G::new(opset);
    g.input("x", x).output("y");
    let n: i64 = w.iter().product();
    g.init(tf32("w", w, ramp(n as usize, 0.01)));
    g.node_attrs("Conv", &["x", "w"], &["y"], attrs);
    g
}

fn window_of(g: &fqc_ir::Graph) -> Window {
    g.nodes()
        .find_map(|(_, n)| match &n.op {
            Op::Conv { window, .. } | Op::MaxPool { window } | Op::AveragePool { window, .. } => {
                Some(window.clone())
            }
            _ => None,
        })
        .expect("a windowed op")
}

#[test]
fn conv_2d_with_symbolic_batch_keeps_names() {
    let mut g = conv_graph(
        13,
        &[P("N"), V(3), V(8), V(8)],
        &[4, 3, 3, 3],
        vec![ais("pads", &[1, 1, 1, 1]), ais("strides", &[2, 2])],
    );
    g.graph.node[0].name = Some("/conv1/Conv".into());
    let ir = g.ok();
    assert_eq!(out_ty(&ir, 0), "f32[N,4,4,4]");
    let (_, n) = ir.nodes().next().unwrap();
    assert_eq!(n.name, "/conv1/Conv");
    assert_eq!(ir.value(n.output).name.as_deref(), Some("y"));
    assert_eq!(ir.value(ir.inputs()[0]).name.as_deref(), Some("x"));
}

#[test]
fn unnamed_nodes_get_op_type_and_index() {
    let mut g = conv_graph(13, &[V(1), V(3), V(8), V(8)], &[4, 3, 3, 3], vec![]);
    g.graph.node[0].name = None;
    let ir = g.ok();
    assert_eq!(ir.nodes().next().unwrap().1.name, "Conv_0");
}

#[test]
fn conv_auto_pad_same_upper_and_lower() {
    // in 5, stride 2, k 4 → out 3, total pad (3-1)*2+4-5 = 3.
    let upper = conv_graph(
        11,
        &[V(1), V(1), V(5), V(5)],
        &[1, 1, 4, 4],
        vec![astr("auto_pad", "SAME_UPPER"), ais("strides", &[2, 2])],
    )
    .ok();
    assert_eq!(window_of(&upper).pads, [1, 1, 2, 2]);
    assert_eq!(out_ty(&upper, 0), "f32[1,1,3,3]");
    let lower = conv_graph(
        11,
        &[V(1), V(1), V(5), V(5)],
        &[1, 1, 4, 4],
        vec![astr("auto_pad", "SAME_LOWER"), ais("strides", &[2, 2])],
    )
    .ok();
    assert_eq!(window_of(&lower).pads, [2, 2, 1, 1]);
}

#[test]
fn conv_auto_pad_valid_and_notset() {
    let valid = conv_graph(
        11,
        &[V(1), V(1), V(5), V(5)],
        &[1, 1, 3, 3],
        vec![astr("auto_pad", "VALID")],
    )
    .ok();
    assert_eq!(window_of(&valid).pads, [0; 4]);
    assert_eq!(out_ty(&valid, 0), "f32[1,1,3,3]");
    let notset = conv_graph(
        11,
        &[V(1), V(1), V(5), V(5)],
        &[1, 1, 3, 3],
        vec![astr("auto_pad", "NOTSET"), ais("pads", &[0, 1, 2, 0])],
    )
    .ok();
    assert_eq!(window_of(&notset).pads, [0, 1, 2, 0]);
}

#[test]
fn conv_kernel_shape_must_match_weight() {
    let e = conv_graph(
        11,
        &[V(1), V(1), V(5), V(5)],
        &[1, 1, 3, 3],
        vec![ais("kernel_shape", &[2, 2])],
    )
    .err();
    assert!(e.contains("kernel_shape [2, 2] does not match"), "{e}");
    conv_graph(
        11,
        &[V(1), V(1), V(5), V(5)],
        &[1, 1, 3, 3],
        vec![ais("kernel_shape", &[3, 3])],
    )
    .ok();
}

#[test]
fn conv_groups_dilations_bias() {
    let mut g = G::new(6);
    g.input("x", &[V(2), V(4), V(9), V(9)]).output("y");
    g.init(tf32("w", &[6, 2, 3, 3], ramp(108, 0.1)));
    g.init(tf32("b", &[6], ramp(6, 1.0)));
    g.node_attrs(
        "Conv",
        &["x", "w", "b"],
        &["y"],
        vec![ai("group", 2), ais("dilations", &[2, 2])],
    );
    let ir = g.ok();
    assert_eq!(out_ty(&ir, 0), "f32[2,6,5,5]");
    assert!(matches!(
        ir.nodes().next().unwrap().1.op,
        Op::Conv { group: 2, .. }
    ));
}

#[test]
fn conv_1d_lowers_through_unit_height() {
    let mut g = G::new(6);
    g.input("x", &[V(2), V(2), V(10)]).output("y");
    g.init(tf32("w", &[3, 2, 3], ramp(18, 0.1)));
    g.node_attrs(
        "Conv",
        &["x", "w"],
        &["y"],
        vec![ais("pads", &[1, 1]), ais("strides", &[2])],
    );
    let ir = g.ok();
    assert_eq!(ops(&ir), ["reshape", "conv", "reshape"]);
    assert_eq!(out_ty(&ir, 0), "f32[2,3,5]");
    let w = window_of(&ir);
    assert_eq!(
        (w.kernel, w.strides, w.pads),
        ([1, 3], [1, 2], [0, 1, 0, 1])
    );
    // Semantics: compare with a direct 1-D convolution.
    let x: Vec<f32> = ramp(40, 0.05);
    let y = run(&ir, &[Tensor::f32(vec![2, 2, 10], x.clone()).unwrap()]);
    let wv = ramp(18, 0.1);
    let mut want = vec![0f32; 2 * 3 * 5];
    for n in 0..2 {
        for m in 0..3 {
            for o in 0..5 {
                let mut s = 0.0;
                for c in 0..2 {
                    for k in 0..3 {
                        let i = (o * 2 + k) as i64 - 1;
                        if (0..10).contains(&i) {
                            s += x[n * 20 + c * 10 + i as usize] * wv[m * 6 + c * 3 + k];
                        }
                    }
                }
                want[n * 15 + m * 5 + o] = s;
            }
        }
    }
    let got = y[0].as_f32().unwrap();
    for (a, b) in got.iter().zip(&want) {
        assert!((a - b).abs() < 1e-4, "{got:?} vs {want:?}");
    }
}

#[test]
fn conv_3d_is_refused() {
    let e = conv_graph(6, &[V(1), V(1), V(4), V(4), V(4)], &[1, 1, 2, 2, 2], vec![]).err();
    assert!(
        e.contains("only 1-D and 2-D convolutions are supported"),
        "{e}"
    );
    assert!(e.contains("(Conv, ai.onnx opset 6)"), "{e}");
}

#[test]
fn pools_1d_and_2d() {
    let mut g = G::new(6);
    g.input("x", &[V(1), V(2), V(8)]).output("y").output("z");
    g.node_attrs(
        "MaxPool",
        &["x"],
        &["y"],
        vec![ais("kernel_shape", &[2]), ais("strides", &[2])],
    );
    g.node_attrs(
        "AveragePool",
        &["x"],
        &["z"],
        vec![
            ais("kernel_shape", &[3]),
            ais("pads", &[1, 1]),
            ai("count_include_pad", 1),
        ],
    );
    let ir = g.ok();
    assert_eq!(out_ty(&ir, 0), "f32[1,2,4]");
    assert_eq!(out_ty(&ir, 1), "f32[1,2,8]");
    let mut g = G::new(12);
    g.input("x", &[V(1), V(1), V(7), V(7)]).output("y");
    g.node_attrs(
        "MaxPool",
        &["x"],
        &["y"],
        vec![
            ais("kernel_shape", &[3, 3]),
            ais("strides", &[2, 2]),
            ai("ceil_mode", 1),
            ais("dilations", &[1, 1]),
            astr("auto_pad", "SAME_UPPER"),
        ],
    );
    assert_eq!(out_ty(&g.ok(), 0), "f32[1,1,4,4]");
}

#[test]
fn maxpool_indices_used_is_refused_but_storage_order_ok() {
    let mut g = G::new(12);
    g.input("x", &[V(1), V(1), V(4), V(4)]).output("y");
    g.node_attrs(
        "MaxPool",
        &["x"],
        &["y", "idx"],
        vec![ais("kernel_shape", &[2, 2]), ai("storage_order", 1)],
    );
    g.ok();
    g.output("idx");
    let e = g.err();
    assert!(e.contains("Indices") && e.contains("is used"), "{e}");
}

#[test]
fn global_pools() {
    let mut g = G::new(13);
    g.input("x", &[P("batch"), V(3), V(5), V(5)])
        .output("a")
        .output("m");
    g.node("GlobalAveragePool", &["x"], &["a"]);
    g.node("GlobalMaxPool", &["x"], &["m"]);
    let ir = g.ok();
    assert_eq!(out_ty(&ir, 0), "f32[N,3,1,1]");
    assert_eq!(ops(&ir), ["global_avgpool", "global_maxpool"]);
}

fn bn_graph(opset: i64, attrs: Vec<fqc_onnx::proto::AttributeProto>, outs: &[&str]) -> G {
    let mut g = G::new(opset);
    g.input("x", &[V(1), V(2), V(3), V(3)]).output("y");
    for p in ["s", "b", "m", "v"] {
        g.init(tf32(p, &[2], vec![1.0, 2.0]));
    }
    g.node_attrs(
        "BatchNormalization",
        &["x", "s", "b", "m", "v"],
        outs,
        attrs,
    );
    g
}

#[test]
fn batchnorm_inference_forms() {
    let ir = bn_graph(
        6,
        vec![
            ai("is_test", 1),
            ai("spatial", 1),
            af("momentum", 0.9),
            af("epsilon", 1e-3),
        ],
        &["y"],
    )
    .ok();
    assert!(
        matches!(ir.nodes().next().unwrap().1.op, Op::BatchNorm { epsilon } if epsilon.get() == 1e-3)
    );
    bn_graph(15, vec![ai("training_mode", 0)], &["y"]).ok();
    let e = bn_graph(15, vec![ai("training_mode", 1)], &["y"]).err();
    assert!(e.contains("training_mode=1"), "{e}");
    let e = bn_graph(7, vec![ai("spatial", 0)], &["y"]).err();
    assert!(e.contains("spatial=0"), "{e}");
    let mut g = bn_graph(9, vec![], &["y", "rm"]);
    g.output("rm");
    assert!(g.err().contains("training statistics"));
}

#[test]
fn relu_and_clip_forms() {
    let mut g = G::new(6);
    g.input("x", &[V(4)]).output("y");
    g.node("Relu", &["x"], &["r"]);
    g.node_attrs("Clip", &["r"], &["y"], vec![af("min", 0.5), af("max", 2.0)]);
    let ir = g.ok();
    assert!(
        matches!(ir.nodes().nth(1).unwrap().1.op, Op::Clip { min, max } if min.get() == 0.5 && max.get() == 2.0)
    );

    let mut g = G::new(13);
    g.input("x", &[V(4)]).output("y");
    g.init(tf32("hi", &[], vec![6.0]));
    g.node("Clip", &["x", "", "hi"], &["y"]);
    let ir = g.ok();
    assert!(
        matches!(ir.nodes().next().unwrap().1.op, Op::Clip { min, max } if min.get() == f32::NEG_INFINITY && max.get() == 6.0)
    );

    let mut g = G::new(13);
    g.input("x", &[V(4)]).input("lo", &[V(1)]).output("y");
    g.node("Clip", &["x", "lo"], &["y"]);
    assert!(g.err().contains("min bound must be a constant"));
}

#[test]
fn opset6_broadcast_with_axis_reshapes_b() {
    let mut g = G::new(6);
    g.input("x", &[V(1), V(3), V(2), V(2)]).output("y");
    g.init(tf32("b", &[3], vec![1.0, 2.0, 3.0]));
    g.node_attrs(
        "Add",
        &["x", "b"],
        &["y"],
        vec![ai("broadcast", 1), ai("axis", 1)],
    );
    let ir = g.ok();
    assert_eq!(out_ty(&ir, 0), "f32[1,3,2,2]");
    let y = run(
        &ir,
        &[Tensor::f32(vec![1, 3, 2, 2], vec![0.0; 12]).unwrap()],
    );
    assert_eq!(
        y[0].as_f32().unwrap(),
        &[1., 1., 1., 1., 2., 2., 2., 2., 3., 3., 3., 3.]
    );
    // broadcast=0 requires equal shapes.
    let mut g = G::new(6);
    g.input("x", &[V(2), V(3)]).output("y");
    g.init(tf32("b", &[3], vec![1.0, 2.0, 3.0]));
    g.node("Mul", &["x", "b"], &["y"]);
    assert!(g.err().contains("broadcast=0"));
}

#[test]
fn binary_ops_and_sum() {
    let mut g = G::new(13);
    g.input("a", &[P("N"), V(3)])
        .input("b", &[V(1), V(3)])
        .output("y");
    g.node("Sub", &["a", "b"], &["s"]);
    g.node("Div", &["s", "b"], &["d"]);
    g.node("Sum", &["d", "a", "b"], &["y"]);
    let ir = g.ok();
    assert_eq!(ops(&ir), ["sub", "div", "sum"]);
    assert_eq!(out_ty(&ir, 0), "f32[N,3]");
}

#[test]
fn gemm_forms() {
    let mut g = G::new(6);
    g.input("x", &[V(4), V(3)]).output("y");
    g.init(tf32("w", &[5, 3], ramp(15, 0.1)));
    g.init(tf32("c", &[5], ramp(5, 1.0)));
    g.node_attrs(
        "Gemm",
        &["x", "w", "c"],
        &["y"],
        vec![ai("broadcast", 1), ai("transB", 1), af("alpha", 0.5)],
    );
    let ir = g.ok();
    assert_eq!(out_ty(&ir, 0), "f32[4,5]");
    let mut g = G::new(13);
    g.input("x", &[V(3), V(4)]).output("y");
    g.init(tf32("w", &[3, 5], ramp(15, 0.1)));
    g.node_attrs("Gemm", &["x", "w"], &["y"], vec![ai("transA", 1)]);
    assert_eq!(out_ty(&g.ok(), 0), "f32[4,5]");
}

#[test]
fn softmax_opset13_and_last_axis_legacy() {
    let mut g = G::new(13);
    g.input("x", &[V(2), V(3), V(4)]).output("y");
    g.node("Softmax", &["x"], &["y"]);
    let ir = g.ok();
    assert!(matches!(
        ir.nodes().next().unwrap().1.op,
        Op::Softmax { axis: 2 }
    ));
    let mut g = G::new(6);
    g.input("x", &[V(2), V(5)]).output("y");
    g.node("Softmax", &["x"], &["y"]);
    assert_eq!(ops(&g.ok()), ["softmax"]);
}

#[test]
fn softmax_legacy_coerces_to_2d() {
    let mut g = G::new(11);
    g.input("x", &[V(2), V(3), V(2)]).output("y");
    g.node("Softmax", &["x"], &["y"]); // default axis 1: softmax over 3*2 = 6 values
    let ir = g.ok();
    assert_eq!(ops(&ir), ["flatten", "softmax", "reshape"]);
    assert_eq!(out_ty(&ir, 0), "f32[2,3,2]");
    let y = run(&ir, &[Tensor::f32(vec![2, 3, 2], vec![0.0; 12]).unwrap()]);
    for v in y[0].as_f32().unwrap() {
        assert!((v - 1.0 / 6.0).abs() < 1e-6);
    }
}

#[test]
fn lrn_transpose_flatten_concat() {
    let mut g = G::new(9);
    g.input("x", &[P("N"), V(4), V(2), V(3)])
        .output("y")
        .output("t");
    g.node_attrs(
        "LRN",
        &["x"],
        &["l"],
        vec![ai("size", 3), af("alpha", 1e-3)],
    );
    g.node_attrs("Concat", &["l", "x"], &["c"], vec![ai("axis", -3)]);
    g.node_attrs("Flatten", &["c"], &["y"], vec![ai("axis", 1)]);
    g.node_attrs(
        "Transpose",
        &["x"],
        &["t"],
        vec![ais("perm", &[0, 2, 3, 1])],
    );
    let ir = g.ok();
    assert_eq!(out_ty(&ir, 0), "f32[N,48]");
    assert_eq!(out_ty(&ir, 1), "f32[N,2,3,4]");
    // Default perm reverses.
    let mut g = G::new(9);
    g.input("x", &[V(2), V(3), V(4)]).output("t");
    g.node("Transpose", &["x"], &["t"]);
    assert_eq!(out_ty(&g.ok(), 0), "f32[4,3,2]");
}

#[test]
fn reshape_constant_target_with_zero_and_minus_one() {
    let mut g = G::new(13);
    g.input("x", &[P("N"), V(4), V(6)]).output("y");
    g.init(ti64("s", &[3], vec![0, -1, 2]));
    g.node("Reshape", &["x", "s"], &["y"]);
    assert_eq!(out_ty(&g.ok(), 0), "f32[N,12,2]");
    // Old IR: the shape is a graph input with an initializer.
    let mut g = G::new(9);
    g.input("x", &[V(2), V(4), V(6)])
        .input("s", &[V(2)])
        .output("y");
    g.graph.input[1] = vi("s", fqc_onnx::proto::tensor_proto::DataType::Int64, &[V(2)]);
    g.init(ti64("s", &[2], vec![2, -1]));
    g.node("Reshape", &["x", "s"], &["y"]);
    let ir = g.ok();
    assert_eq!(ir.inputs().len(), 1);
    assert_eq!(out_ty(&ir, 0), "f32[2,24]");
}

#[test]
fn reshape_allowzero_and_runtime_target() {
    let mut g = G::new(14);
    g.input("x", &[V(2), V(3)]).output("y");
    g.init(ti64("s", &[2], vec![0, 6]));
    g.node_attrs("Reshape", &["x", "s"], &["y"], vec![ai("allowzero", 1)]);
    assert!(g.err().contains("cannot reshape"));
    let mut g = G::new(13);
    g.input("x", &[V(2), V(3)]).input("s", &[V(2)]).output("y");
    g.node("Reshape", &["x", "s"], &["y"]);
    let e = g.err();
    assert!(e.contains("must be computable at import time"), "{e}");
}

#[test]
fn squeeze_unsqueeze_on_tensors() {
    let mut g = G::new(11);
    g.input("x", &[P("N"), V(3), V(5)]).output("y");
    g.node_attrs("Unsqueeze", &["x"], &["u"], vec![ais("axes", &[2])]);
    g.node_attrs("Squeeze", &["u"], &["y"], vec![ais("axes", &[-2])]);
    let ir = g.ok();
    assert_eq!(ops(&ir), ["reshape", "reshape"]);
    assert_eq!(out_ty(&ir, 0), "f32[N,3,5]");
    let mut g = G::new(13);
    g.input("x", &[V(2), V(1), V(5)]).output("y");
    g.init(ti64("ax", &[1], vec![1]));
    g.node("Squeeze", &["x", "ax"], &["y"]);
    assert_eq!(out_ty(&g.ok(), 0), "f32[2,5]");
}

#[test]
fn dropout_and_identity_are_aliases() {
    let mut g = G::new(7);
    g.input("x", &[V(2)]).output("y");
    g.node_attrs("Dropout", &["x"], &["d"], vec![af("ratio", 0.3)]);
    g.node("Identity", &["d"], &["i"]);
    g.node("Relu", &["i"], &["y"]);
    assert_eq!(ops(&g.ok()), ["relu"]);
    let mut g = G::new(12);
    g.input("x", &[V(2)]).output("y").output("mask");
    g.node("Dropout", &["x"], &["y", "mask"]);
    assert!(g.err().contains("mask"));
}

#[test]
fn matmul_plain() {
    let mut g = G::new(13);
    g.input("a", &[V(2), V(3), V(4)])
        .input("b", &[V(4), V(5)])
        .output("y");
    g.node("MatMul", &["a", "b"], &["y"]);
    let ir = g.ok();
    assert_eq!(ops(&ir), ["matmul"]);
    assert_eq!(out_ty(&ir, 0), "f32[2,3,5]");
}

#[test]
fn batch_dim_kinds() {
    let mut g = G::new(13);
    g.input("x", &[D::Unset, V(3)]).output("y");
    g.node("Relu", &["x"], &["y"]);
    assert_eq!(g.ok().ty(g.ok().inputs()[0]).shape.0[0], Dim::Batch);
    let mut g = G::new(13);
    g.input("x", &[V(1), P("H")]).output("y");
    g.node("Relu", &["x"], &["y"]);
    let e = g.err();
    assert!(
        e.contains("graph input `x`") && e.contains("dim 1 is symbolic (`H`)"),
        "{e}"
    );
}
