//! Verifier tests: a valid graph passes, and each check has a failing case with its
//! exact message.

use fqc_ir::*;

fn f32t(dims: &[Dim]) -> TensorType {
    TensorType::f32(Shape(dims.to_vec()))
}

/// `x: f32[N,4]` → relu → relu, outputs the last.
fn chain() -> (Graph, Value, Value, Value) {
    let mut g = Graph::new("t");
    let ty = f32t(&[Dim::Batch, Dim::Fixed(4)]);
    let x = g.add_input("x", ty.clone());
    let a = g.add_node(Op::Relu, vec![x], ty.clone(), "a", None);
    let b = g.add_node(Op::Relu, vec![a], ty, "", None);
    g.set_outputs(vec![b]);
    (g, x, a, b)
}

fn msg(g: &Graph) -> String {
    verify(g).unwrap_err().to_string()
}

#[test]
fn valid_chain_verifies() {
    let (g, ..) = chain();
    verify(&g).unwrap();
    verify(&Graph::new("empty")).unwrap();
}

#[test]
fn schedule_errors() {
    let (mut g, ..) = chain();
    g.set_order(vec![Node(1), Node(0)]);
    assert!(
        msg(&g).contains("operand 0 %1 is not defined before it"),
        "{}",
        msg(&g)
    );
    g.set_order(vec![Node(0), Node(0), Node(1)]);
    assert_eq!(msg(&g), "invalid graph: node `a` is scheduled twice");
    g.set_order(vec![Node(7)]);
    assert_eq!(
        msg(&g),
        "invalid graph: the schedule names node n7 which does not exist"
    );
    g.set_order(vec![Node(0)]);
    assert_eq!(
        msg(&g),
        "invalid graph: graph output 0 %2 is not a graph input, a constant or a scheduled result"
    );
    let (mut g, _, a, _) = chain();
    g.node_mut(Node(1)).inputs = vec![Value(40)];
    assert_eq!(
        msg(&g),
        "invalid graph: node `%2`: operand 0 is %40 which does not exist"
    );
    g.node_mut(Node(1)).inputs = vec![a];
    g.set_outputs(vec![Value(9)]);
    assert_eq!(
        msg(&g),
        "invalid graph: graph output 0 is %9 which does not exist"
    );
}

#[test]
fn result_must_point_back() {
    let (mut g, _, a, _) = chain();
    g.value_mut(a).def = ValueDef::Node(Node(1));
    assert_eq!(
        msg(&g),
        "invalid graph: node `a`: result %1 is defined as Node(Node(1)), not by this node"
    );
    let (mut g, ..) = chain();
    g.node_mut(Node(0)).output = Value(77);
    assert_eq!(
        msg(&g),
        "invalid graph: node `a`: result %77 does not exist"
    );
}

#[test]
fn stale_types_and_bad_ops() {
    let (mut g, _, a, _) = chain();
    g.value_mut(a).ty = f32t(&[Dim::Batch, Dim::Fixed(5)]);
    assert_eq!(
        msg(&g),
        "node `a` (relu): result type f32[N,5] does not match the inferred f32[N,4]"
    );
    let (mut g, x, ..) = chain();
    g.node_mut(Node(0)).inputs = vec![x, x];
    assert_eq!(msg(&g), "node `a` (relu): expects 1..1 operands, got 2");
    let mut g = Graph::new("c");
    let x = g.add_input(
        "x",
        f32t(&[Dim::Batch, Dim::Fixed(1), Dim::Fixed(4), Dim::Fixed(4)]),
    );
    let w = g.add_const(
        None,
        f32t(&[Dim::Fixed(1); 4]),
        Tensor::f32(vec![1; 4], vec![1.0]).unwrap(),
    );
    let window = Window {
        kernel: [1, 1],
        strides: [2, 2],
        pads: [0; 4],
        dilations: [1, 1],
        ceil_mode: true,
    };
    let op = Op::Conv { window, group: 1 };
    let ty = fqc_ir::infer::infer(&op, &[g.ty(x), g.ty(w)]).unwrap();
    let y = g.add_node(op, vec![x, w], ty, "c", None);
    g.set_outputs(vec![y]);
    assert_eq!(msg(&g), "node `c` (conv): conv windows never use ceil_mode");
}

#[test]
fn signature_errors() {
    let (mut g, ..) = chain();
    g.add_input("x", f32t(&[]));
    assert_eq!(msg(&g), "invalid graph: duplicate graph input name \"x\"");
    let (mut g, x, ..) = chain();
    g.value_mut(x).def = ValueDef::Input(3);
    assert_eq!(
        msg(&g),
        "invalid graph: graph input 0 is %0 whose definition is Input(3)"
    );
    let (mut g, x, ..) = chain();
    g.value_mut(x).ty = f32t(&[Dim::Fixed(2), Dim::Batch]);
    assert_eq!(
        msg(&g),
        "invalid graph: value %0 of type f32[2,N]: the batch dimension N may only be axis 0"
    );
}

fn with_const(ty: TensorType, t: Option<Tensor>) -> Graph {
    let mut g = Graph::new("k");
    let digest = t.as_ref().map_or(7, Tensor::digest);
    let c = g.add_const_data(
        None,
        ty,
        ConstData {
            tensor: t.map(std::sync::Arc::new),
            digest,
        },
    );
    g.set_outputs(vec![c]);
    g
}

fn ints(dtype: DType, shape: &[usize], data: TensorData) -> (TensorType, Option<Tensor>) {
    let ty = TensorType::new(
        dtype,
        Shape::fixed(&shape.iter().map(|&d| d as u64).collect::<Vec<_>>()),
    );
    (
        ty,
        Some(Tensor {
            shape: shape.to_vec(),
            data,
        }),
    )
}

#[test]
fn constant_errors() {
    let g = with_const(f32t(&[Dim::Batch]), None);
    assert_eq!(
        msg(&g),
        "invalid graph: constant %0 of type f32[N]: a constant's shape must be fully fixed"
    );
    let (ty, t) = ints(DType::I8, &[2], TensorData::F32(vec![1.0, 2.0]));
    assert_eq!(
        msg(&with_const(ty, t)),
        "invalid graph: constant %0 of type i8[2]: payload storage F32 cannot hold i8"
    );
    let (ty, t) = ints(DType::I32, &[3], TensorData::I32(vec![1, 2]));
    assert_eq!(
        msg(&with_const(ty, t)),
        "invalid graph: constant %0 of type i32[3]: payload has 2 elements, the type needs 3"
    );
    let (mut ty, t) = ints(DType::I32, &[2], TensorData::I32(vec![1, 2]));
    ty.shape = Shape::fixed(&[1, 2]);
    assert_eq!(
        msg(&with_const(ty, t)),
        "invalid graph: constant %0 of type i32[1,2]: payload has shape [2]"
    );
    let (ty, t) = ints(DType::Ternary, &[2], TensorData::I8(vec![1, 2]));
    assert_eq!(
        msg(&with_const(ty, t)),
        "invalid graph: constant %0 of type t2[2]: element 2 is out of range"
    );
    let (ty, t) = ints(
        DType::int(false, 4).unwrap(),
        &[1],
        TensorData::U8(vec![16]),
    );
    assert_eq!(
        msg(&with_const(ty, t)),
        "invalid graph: constant %0 of type u4[1]: element 16 is out of range"
    );
    let (ty, t) = ints(DType::I64, &[1], TensorData::I64(vec![5]));
    let mut g = with_const(ty, t);
    verify(&g).unwrap();
    let c = g.outputs()[0];
    g.value_mut(c).def = ValueDef::Const(Const(9));
    assert_eq!(
        msg(&g),
        "invalid graph: constant %0 of type i64[1]: payload c9 does not exist"
    );
    let t = Tensor::f32(vec![1], vec![1.0]).unwrap();
    let g = {
        let mut g = Graph::new("d");
        let c = g.add_const_data(
            None,
            f32t(&[Dim::Fixed(1)]),
            ConstData {
                tensor: Some(std::sync::Arc::new(t)),
                digest: 1,
            },
        );
        g.set_outputs(vec![c]);
        g
    };
    assert_eq!(
        msg(&g),
        "invalid graph: constant %0 of type f32[1]: the stored digest does not match the payload"
    );
}

/// An input `i8[N,3] s=<scale>` output directly, with a scales constant `f32[k]`.
fn scaled(axis: usize, k: usize, scale_vals: f32, scales_is_input: bool) -> Graph {
    let mut g = Graph::new("s");
    let sc = if scales_is_input {
        g.add_input("sc", f32t(&[Dim::Fixed(k as u64)]))
    } else {
        g.add_const(
            None,
            f32t(&[Dim::Fixed(k as u64)]),
            Tensor::f32(vec![k], vec![scale_vals; k]).unwrap(),
        )
    };
    let mut ty = TensorType::new(DType::I8, Shape(vec![Dim::Batch, Dim::Fixed(3)]));
    ty.scale = Some(Scale::Channel { axis, scales: sc });
    let x = g.add_input("x", ty);
    g.set_outputs(vec![x]);
    g
}

#[test]
fn scale_errors() {
    verify(&scaled(1, 3, 0.5, false)).unwrap();
    let pre = "invalid graph: value %1 of type i8[N,3] s=%0";
    assert_eq!(
        msg(&scaled(1, 2, 0.5, false)),
        format!("{pre}@1: 2 scales for axis 1 of extent 3")
    );
    assert_eq!(
        msg(&scaled(0, 3, 0.5, false)),
        format!("{pre}@0: 3 scales for axis 0 of extent N")
    );
    assert_eq!(
        msg(&scaled(2, 3, 0.5, false)),
        format!("{pre}@2: scale axis 2 is out of range")
    );
    assert_eq!(
        msg(&scaled(1, 3, 0.5, true)),
        format!("{pre}@1: scales %0 is not a constant")
    );
    assert_eq!(
        msg(&scaled(1, 3, -1.0, false)),
        format!("{pre}@1: scales %0 must be positive and finite")
    );
    let mut g = scaled(1, 3, 0.5, false);
    g.value_mut(Value(0)).ty.dtype = DType::I32;
    assert_eq!(
        msg(&g),
        format!("{pre}@1: scales %0 must be an unscaled f32 vector, got i32[3]")
    );
    let mut g = scaled(1, 3, 0.5, false);
    g.value_mut(Value(1)).ty.scale = Some(Scale::Channel {
        axis: 1,
        scales: Value(50),
    });
    assert_eq!(
        msg(&g),
        "invalid graph: value %1 of type i8[N,3] s=%50@1: scales %50 is not a constant"
    );
    g.value_mut(Value(1)).ty.scale = Some(Scale::Tensor(F32(0.0)));
    assert_eq!(
        msg(&g),
        "invalid graph: value %1 of type i8[N,3] s=0.0: the scale must be positive and finite"
    );
}

#[test]
fn batch_must_stay_at_axis_0() {
    // Broadcasting `[N,1]` against `[N,1,1,1]` would put N at axis 2: inference refuses.
    let mut g = Graph::new("b");
    let a = g.add_input("a", f32t(&[Dim::Batch, Dim::Fixed(1)]));
    let b = g.add_input(
        "b",
        f32t(&[Dim::Batch, Dim::Fixed(1), Dim::Fixed(1), Dim::Fixed(1)]),
    );
    let ty = f32t(&[Dim::Batch, Dim::Fixed(1), Dim::Batch, Dim::Fixed(1)]);
    let y = g.add_node(Op::Binary(BinaryOp::Add), vec![a, b], ty.clone(), "y", None);
    g.set_outputs(vec![a]);
    // Even a dead value may not carry N off axis 0.
    assert_eq!(
        msg(&g),
        "invalid graph: value %2 of type f32[N,1,N,1]: the batch dimension N may only be axis 0"
    );
    g.set_outputs(vec![y]);
    assert!(msg(&g).contains("batch"));
    let e = fqc_ir::infer::infer(&Op::Binary(BinaryOp::Add), &[g.ty(a), g.ty(b)]).unwrap_err();
    assert_eq!(
        e,
        "the result [N,1,N,1] would have the batch dimension off axis 0"
    );
}
