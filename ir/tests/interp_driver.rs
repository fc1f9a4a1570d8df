//! The interpreter driver: input binding and its error messages, planning checks
//! (elided constants, element-count limit), value lifetimes, batch splitting.

use fqc_ir::infer::infer;
use fqc_ir::{
    run, run_with, ConstData, DType, Dim, Graph, IrError, Op, RunOptions, Shape, Tensor,
    TensorData, TensorType, Value, Window, F32,
};

fn data(seed: u64, n: usize) -> Vec<f32> {
    let mut s = seed ^ 0x9e37_79b9_7f4a_7c15;
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

fn batched(dims: &[u64]) -> TensorType {
    let mut s = vec![Dim::Batch];
    s.extend(dims.iter().map(|&d| Dim::Fixed(d)));
    TensorType::f32(Shape(s))
}

fn konst(g: &mut Graph, shape: &[usize], seed: u64) -> Value {
    let t = tensor(shape, seed);
    g.add_const(None, TensorType::f32(t.static_shape()), t)
}

fn node(g: &mut Graph, op: Op, inputs: Vec<Value>, name: &str) -> Value {
    let tys: Vec<&TensorType> = inputs.iter().map(|&v| g.ty(v)).collect();
    let ty = infer(&op, &tys).unwrap();
    g.add_node(op, inputs, ty, name, None)
}

fn win(k: u64, s: u64, p: u64) -> Window {
    Window {
        kernel: [k, k],
        strides: [s, s],
        pads: [p; 4],
        dilations: [1, 1],
        ceil_mode: false,
    }
}

/// A small CNN over `x: f32[N,3,12,12]`: conv-bn-relu, residual add, maxpool, concat,
/// global pool, flatten, gemm, softmax.
fn small_cnn() -> Graph {
    let mut g = Graph::new("cnn");
    let x = g.add_input("x", batched(&[3, 12, 12]));
    let w1 = konst(&mut g, &[8, 3, 3, 3], 1);
    let b1 = konst(&mut g, &[8], 2);
    let c1 = node(
        &mut g,
        Op::Conv {
            window: win(3, 1, 1),
            group: 1,
        },
        vec![x, w1, b1],
        "conv1",
    );
    let bn: Vec<Value> = (0..4).map(|i| konst(&mut g, &[8], 10 + i)).collect();
    let var = {
        let t = Tensor::f32(vec![8], data(20, 8).iter().map(|v| v.abs() + 0.1).collect()).unwrap();
        g.add_const(None, TensorType::f32(t.static_shape()), t)
    };
    let bnv = node(
        &mut g,
        Op::BatchNorm { epsilon: F32(1e-5) },
        vec![c1, bn[0], bn[1], bn[2], var],
        "bn1",
    );
    let r1 = node(&mut g, Op::Relu, vec![bnv], "relu1");
    let w2 = konst(&mut g, &[8, 1, 3, 3], 3);
    let dw = node(
        &mut g,
        Op::Conv {
            window: win(3, 1, 1),
            group: 8,
        },
        vec![r1, w2],
        "dw",
    );
    let add = node(
        &mut g,
        Op::Binary(fqc_ir::BinaryOp::Add),
        vec![dw, r1],
        "add",
    );
    let mp = node(
        &mut g,
        Op::MaxPool {
            window: win(2, 2, 0),
        },
        vec![add],
        "pool",
    );
    let w3 = konst(&mut g, &[4, 8, 1, 1], 4);
    let pw = node(
        &mut g,
        Op::Conv {
            window: win(1, 1, 0),
            group: 1,
        },
        vec![mp, w3],
        "pw",
    );
    let cat = node(&mut g, Op::Concat { axis: 1 }, vec![mp, pw], "cat");
    let gap = node(&mut g, Op::GlobalAveragePool, vec![cat], "gap");
    let fl = node(&mut g, Op::Flatten { axis: 1 }, vec![gap], "flat");
    let wf = konst(&mut g, &[5, 12], 5);
    let bf = konst(&mut g, &[5], 6);
    let fc = node(
        &mut g,
        Op::Gemm {
            alpha: F32(1.0),
            beta: F32(1.0),
            trans_a: false,
            trans_b: true,
        },
        vec![fl, wf, bf],
        "fc",
    );
    let sm = node(&mut g, Op::Softmax { axis: 1 }, vec![fc], "softmax");
    g.set_outputs(vec![sm, fc]);
    g
}

fn err_string(r: fqc_ir::Result<Vec<Tensor>>) -> String {
    match r {
        Ok(_) => panic!("expected an error"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn threads_split_the_batch_exactly() {
    let g = small_cnn();
    let x = tensor(&[5, 3, 12, 12], 42);
    let one = run(&g, std::slice::from_ref(&x)).unwrap();
    assert_eq!(one[0].shape, vec![5, 5]);
    assert_eq!(one[1].shape, vec![5, 5]);
    for threads in [2, 3, 5, 8] {
        let many = run_with(&g, std::slice::from_ref(&x), &RunOptions { threads }).unwrap();
        assert_eq!(one, many, "threads = {threads}");
    }
    // Each batch item alone gives the same rows.
    for i in 0..5 {
        let xi = Tensor::f32(
            vec![1, 3, 12, 12],
            x.as_f32().unwrap()[i * 432..(i + 1) * 432].to_vec(),
        );
        let yi = run(&g, &[xi.unwrap()]).unwrap();
        assert_eq!(
            yi[0].as_f32().unwrap(),
            &one[0].as_f32().unwrap()[i * 5..(i + 1) * 5]
        );
    }
}

#[test]
fn graphs_mixing_batch_items_run_on_one_thread() {
    // Softmax over the batch axis couples items: splitting would change the result.
    let mut g = Graph::new("mix");
    let x = g.add_input("x", batched(&[3]));
    let s = node(&mut g, Op::Softmax { axis: 0 }, vec![x], "sm");
    g.set_outputs(vec![s]);
    let x = tensor(&[4, 3], 7);
    let one = run(&g, std::slice::from_ref(&x)).unwrap();
    let two = run_with(&g, &[x], &RunOptions { threads: 2 }).unwrap();
    assert_eq!(one, two);
    let col: f32 = (0..4).map(|i| one[0].as_f32().unwrap()[i * 3]).sum();
    assert!((col - 1.0).abs() < 1e-6);
}

fn mnist_input_graph() -> Graph {
    let mut g = Graph::new("m");
    let x = g.add_input("image", batched(&[1, 28, 28]));
    let r = node(&mut g, Op::Relu, vec![x], "relu");
    g.set_outputs(vec![r]);
    g
}

#[test]
fn input_errors_name_the_input_and_both_shapes() {
    let g = mnist_input_graph();
    assert_eq!(
        err_string(run(&g, &[tensor(&[2, 3, 28, 28], 1)])),
        "bad input: input `image` expects f32[N,1,28,28], got f32[2,3,28,28]"
    );
    assert_eq!(
        err_string(run(&g, &[tensor(&[2, 28, 28], 1)])),
        "bad input: input `image` expects f32[N,1,28,28], got f32[2,28,28]"
    );
    let ints = Tensor {
        shape: vec![1, 1, 28, 28],
        data: TensorData::I64(vec![0; 784]),
    };
    assert_eq!(
        err_string(run(&g, &[ints])),
        "bad input: input `image` expects f32[N,1,28,28], got i64[1,1,28,28]"
    );
    assert_eq!(
        err_string(run(&g, &[tensor(&[0, 1, 28, 28], 1)])),
        "bad input: input `image`: batch size must be at least 1, got 0"
    );
    assert_eq!(
        err_string(run(&g, &[])),
        "bad input: the graph takes 1 input(s), got 0"
    );
    let short = Tensor {
        shape: vec![1, 1, 28, 28],
        data: TensorData::F32(vec![0.0; 10]),
    };
    assert_eq!(
        err_string(run(&g, &[short])),
        "bad input: input `image`: shape [1,1,28,28] does not match its 10 data elements"
    );
}

#[test]
fn batch_sizes_must_agree() {
    let mut g = Graph::new("two");
    let a = g.add_input("a", batched(&[3]));
    let b = g.add_input("b", batched(&[3]));
    let s = node(&mut g, Op::Binary(fqc_ir::BinaryOp::Mul), vec![a, b], "mul");
    g.set_outputs(vec![s]);
    assert_eq!(
        err_string(run(&g, &[tensor(&[2, 3], 1), tensor(&[3, 3], 2)])),
        "bad input: input `b` has batch size 3 but input `a` has 2"
    );
    let y = run(&g, &[tensor(&[2, 3], 1), tensor(&[2, 3], 2)]).unwrap();
    assert_eq!(y[0].shape, vec![2, 3]);
}

#[test]
fn elided_constant_is_an_eval_error_naming_the_node() {
    let mut g = Graph::new("elided");
    let x = g.add_input("x", batched(&[4]));
    let c = g.add_const_data(
        Some("w".into()),
        TensorType::f32(Shape::fixed(&[4])),
        ConstData {
            tensor: None,
            digest: 0x1234,
        },
    );
    let y = node(
        &mut g,
        Op::Binary(fqc_ir::BinaryOp::Add),
        vec![x, c],
        "add_w",
    );
    g.set_outputs(vec![y]);
    let e = run(&g, &[tensor(&[1, 4], 1)]).unwrap_err();
    assert!(
        matches!(&e, IrError::Eval { node, .. } if node == "add_w"),
        "{e}"
    );
    assert_eq!(
        e.to_string(),
        "cannot evaluate node `add_w` (add): constant `w` has no data (only its digest is known)"
    );
}

#[test]
fn dead_nodes_are_not_run() {
    // A dead branch using an elided constant does not stop the live outputs.
    let mut g = Graph::new("dead");
    let x = g.add_input("x", batched(&[4]));
    let c = g.add_const_data(
        None,
        TensorType::f32(Shape::fixed(&[4])),
        ConstData {
            tensor: None,
            digest: 0,
        },
    );
    node(
        &mut g,
        Op::Binary(fqc_ir::BinaryOp::Add),
        vec![x, c],
        "dead",
    );
    let r = node(&mut g, Op::Relu, vec![x], "relu");
    g.set_outputs(vec![r, x]);
    let xt = tensor(&[2, 4], 3);
    let y = run(&g, std::slice::from_ref(&xt)).unwrap();
    assert_eq!(y[1], xt);
    assert!(y[0].as_f32().unwrap().iter().all(|&v| v >= 0.0));
}

#[test]
fn intermediates_over_2_pow_31_elements_are_refused_before_allocating() {
    // [N,65536,1] x [1,65536] -> [N,65536,65536] = 2^32 elements at N = 1.
    let mut g = Graph::new("big");
    let a = g.add_input("a", batched(&[65536, 1]));
    let b = konst(&mut g, &[1, 65536], 1);
    let y = node(&mut g, Op::MatMul, vec![a, b], "outer");
    g.set_outputs(vec![y]);
    let e = run(&g, &[tensor(&[1, 65536, 1], 2)]).unwrap_err();
    assert!(matches!(e, IrError::Input(_)), "{e}");
    assert_eq!(
        e.to_string(),
        "bad input: the result of node `outer` (matmul) would hold more than 2^31 elements \
         at batch size 1 (f32[N,65536,65536])"
    );
}

#[test]
fn stale_types_are_refused() {
    let mut g = Graph::new("stale");
    let x = g.add_input("x", batched(&[4]));
    let y = g.add_node(Op::Relu, vec![x], batched(&[5]), "relu", None);
    g.set_outputs(vec![y]);
    let e = run(&g, &[tensor(&[1, 4], 1)]).unwrap_err();
    assert!(matches!(e, IrError::Eval { .. }), "{e}");
}

#[test]
fn values_used_many_times_survive_until_their_last_use() {
    // x feeds relu (in-place candidate) and a later add; relu must not clobber x.
    let mut g = Graph::new("reuse");
    let x = g.add_input("x", batched(&[6]));
    let n = node(
        &mut g,
        Op::Clip {
            min: F32(0.0),
            max: F32(0.1),
        },
        vec![x],
        "clip",
    );
    let r = node(&mut g, Op::Relu, vec![n], "relu");
    let s = node(&mut g, Op::Binary(fqc_ir::BinaryOp::Sub), vec![x, r], "sub");
    let t = node(&mut g, Op::Sum, vec![s, s, x], "sum");
    g.set_outputs(vec![t]);
    let xt = tensor(&[3, 6], 9);
    let y = run(&g, std::slice::from_ref(&xt)).unwrap();
    for (&v, &x) in y[0].as_f32().unwrap().iter().zip(xt.as_f32().unwrap()) {
        let s = x - x.clamp(0.0, 0.1);
        assert_eq!(v, s + s + x);
    }
}

#[test]
fn resnet_sized_conv_is_finite() {
    let mut g = Graph::new("r");
    let x = g.add_input("x", batched(&[64, 224, 224]));
    let w = konst(&mut g, &[64, 64, 3, 3], 1);
    let b = konst(&mut g, &[64], 2);
    let y = node(
        &mut g,
        Op::Conv {
            window: win(3, 1, 1),
            group: 1,
        },
        vec![x, w, b],
        "conv",
    );
    g.set_outputs(vec![y]);
    let out = run(&g, &[tensor(&[1, 64, 224, 224], 3)]).unwrap();
    assert_eq!(out[0].shape, vec![1, 64, 224, 224]);
    assert!(out[0].as_f32().unwrap().iter().all(|v| v.is_finite()));
}

#[test]
fn non_f32_graph_inputs_are_refused() {
    let mut g = Graph::new("q");
    let x = g.add_input("q", TensorType::new(DType::U8, Shape::fixed(&[2])));
    g.set_outputs(vec![x]);
    let t = Tensor {
        shape: vec![2],
        data: TensorData::U8(vec![1, 2]),
    };
    assert_eq!(
        err_string(run(&g, &[t])),
        "bad input: input `q` has type u8[2]; the interpreter runs f32 inputs only"
    );
}
