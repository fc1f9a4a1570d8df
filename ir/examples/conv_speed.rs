//! Throughput of the reference interpreter's convolution on a ResNet-50 layer-1 shape:
//! `1x64x56x56`, 3x3, 64 output channels, pad 1 (0.23 GFLOP per run).
//!
//! `cargo run --release -p fqc-ir --example conv_speed`

use std::time::Instant;

use fqc_ir::infer::infer;
use fqc_ir::{run, Graph, Op, Shape, Tensor, TensorType, Window};

fn main() {
    let (c, m, h, w) = (64usize, 64usize, 56usize, 56usize);
    let mut g = Graph::new("conv_speed");
    let x = g.add_input(
        "x",
        TensorType::f32(Shape::fixed(&[1, c as u64, h as u64, w as u64])),
    );
    let wt = Tensor::f32(
        vec![m, c, 3, 3],
        (0..m * c * 9)
            .map(|i| ((i % 17) as f32 - 8.0) / 64.0)
            .collect(),
    )
    .expect("weight");
    let wv = g.add_const(None, TensorType::f32(wt.static_shape()), wt);
    let op = Op::Conv {
        window: Window {
            kernel: [3, 3],
            strides: [1, 1],
            pads: [1; 4],
            dilations: [1, 1],
            ceil_mode: false,
        },
        group: 1,
    };
    let ty = infer(&op, &[g.ty(x), g.ty(wv)]).expect("types");
    let y = g.add_node(op, vec![x, wv], ty, "conv", None);
    g.set_outputs(vec![y]);
    let input = Tensor::f32(
        vec![1, c, h, w],
        (0..c * h * w)
            .map(|i| ((i % 13) as f32 - 6.0) / 8.0)
            .collect(),
    )
    .expect("input");
    let inputs = [input];
    for _ in 0..3 {
        run(&g, &inputs).expect("run");
    }
    let iters = 30;
    let t = Instant::now();
    for _ in 0..iters {
        std::hint::black_box(run(&g, &inputs).expect("run"));
    }
    let secs = t.elapsed().as_secs_f64() / iters as f64;
    let flops = 2.0 * (m * c * 9 * h * w) as f64;
    println!(
        "conv 1x{c}x{h}x{w} 3x3 -> {m}: {:.2} ms/run, {:.1} GFLOP/s",
        secs * 1e3,
        flops / secs / 1e9
    );
}
