//! The quantization passes on small synthetic graphs: weight quantization rules (ternary,
//! b-bit, zero channels, Gemm layout, latent weights), activation quantizer choice,
//! relu/clip fusion and when it is refused, calibration across batches, const-fold and
//! dce, and unsupported patterns reported by node and op.

mod common;

use fqc_ir::{
    BinaryOp, DType, Dim, Graph, Op, Scale, Shape, Tensor, TensorData, TensorType, Value, Window,
    F32,
};
use fqc_passes::calibrate::Calibrate;
use fqc_passes::const_fold::ConstFold;
use fqc_passes::dce::Dce;
use fqc_passes::fuse_activation::FuseActivation;
use fqc_passes::quantize_activations::QuantizeActivations;
use fqc_passes::quantize_weights::QuantizeWeights;
use fqc_passes::{CalibMethod, Pass, PassContext, PassManager, PipelineOptions, Range, WeightBits};

fn konst(g: &mut Graph, shape: &[usize], data: Vec<f32>) -> Value {
    let t = Tensor::f32(shape.to_vec(), data).unwrap();
    g.add_const(Some("w".into()), TensorType::f32(t.static_shape()), t)
}

fn batched(dims: &[u64]) -> TensorType {
    let mut s = vec![Dim::Batch];
    s.extend(dims.iter().map(|&d| Dim::Fixed(d)));
    TensorType::f32(Shape(s))
}

fn run(passes: Vec<Box<dyn Pass>>, g: &mut Graph, cx: &mut PassContext) -> fqc_passes::Result<()> {
    PassManager::new(passes)
        .run(g, cx, &PipelineOptions::default())
        .map(|_| ())
}

/// The quantized weight constant of the layer named `name`: (dtype, ints, scales).
fn weight_of(g: &Graph, name: &str) -> (DType, Vec<i8>, Vec<f32>) {
    let (_, layer) = g.nodes().find(|(_, d)| d.name == name).unwrap();
    let (_, dq) = g
        .nodes()
        .find(|(_, d)| d.output == layer.inputs[1])
        .unwrap();
    assert_eq!(dq.op, Op::Dequantize);
    let q = dq.inputs[0];
    let ty = g.ty(q);
    let Some(Scale::Channel { axis: 0, scales }) = ty.scale else {
        panic!("weight is not per-channel scaled: {:?}", ty.scale)
    };
    let TensorData::I8(ints) = &g.const_tensor(q).unwrap().data else {
        panic!("weight payload is not i8")
    };
    let s = g.const_tensor(scales).unwrap().as_f32().unwrap().to_vec();
    (ty.dtype, ints.clone(), s)
}

fn conv_graph(w: Vec<f32>, m: usize) -> Graph {
    let mut g = Graph::new("t");
    let x = g.add_input("x", batched(&[1, 3, 3]));
    let wv = konst(&mut g, &[m, 1, 3, 3], w);
    let win = Window {
        kernel: [3, 3],
        strides: [1, 1],
        pads: [0; 4],
        dilations: [1, 1],
        ceil_mode: false,
    };
    let y = g.add_node(
        Op::Conv {
            window: win,
            group: 1,
        },
        vec![x, wv],
        batched(&[m as u64, 1, 1]),
        "conv",
        None,
    );
    g.set_outputs(vec![y]);
    g
}

#[test]
fn ternary_and_bbit_weight_rules() {
    // Channel 0: a spread; channel 1: all zero; channel 2: constant 0.5.
    let mut w: Vec<f32> = vec![-1.0, -0.5, -0.1, 0.0, 0.05, 0.2, 0.4, 0.9, 1.2];
    w.extend([0.0; 9]);
    w.extend([0.5; 9]);
    let mut cx = PassContext::default();
    cx.config.weights = WeightBits::Ternary;
    let mut g = conv_graph(w.clone(), 3);
    run(vec![Box::new(QuantizeWeights)], &mut g, &mut cx).unwrap();
    let (dt, q, s) = weight_of(&g, "conv");
    assert_eq!(dt, DType::Ternary);
    let c0 = &w[..9];
    let mean = c0.iter().sum::<f32>() / 9.0;
    let sigma = (c0.iter().map(|x| (x - mean).powi(2)).sum::<f32>() / 9.0).sqrt();
    assert!(
        (s[0] - 0.86 * sigma).abs() < 1e-6,
        "{} vs {}",
        s[0],
        0.86 * sigma
    );
    let want: Vec<i8> = c0
        .iter()
        .map(|&x| (x / s[0]).round_ties_even().clamp(-1.0, 1.0) as i8)
        .collect();
    assert_eq!(&q[..9], &want[..]);
    assert!(s.iter().all(|&x| x > 0.0 && x.is_finite()));
    assert!(q[9..18].iter().all(|&x| x == 0));
    assert!(q[18..].iter().all(|&x| x == 1) && (s[2] - 0.5).abs() < 1e-7);

    for bits in [8u8, 4] {
        let mut cx = PassContext::default();
        cx.config.weights = WeightBits::Bits(bits);
        let mut g = conv_graph(w.clone(), 3);
        run(vec![Box::new(QuantizeWeights)], &mut g, &mut cx).unwrap();
        let (dt, q, s) = weight_of(&g, "conv");
        let n = ((1i16 << (bits - 1)) - 1) as i8;
        assert_eq!(dt, DType::int(true, bits).unwrap());
        assert!((s[0] - 1.2 / f32::from(n)).abs() < 1e-7);
        assert_eq!(q[8], n, "max|w| maps to the top level");
    }
    // 3 bits: the MSE-optimal scale beats max|w|/3.
    let mut cx = PassContext::default();
    cx.config.weights = WeightBits::Bits(3);
    let mut g = conv_graph(w.clone(), 3);
    run(vec![Box::new(QuantizeWeights)], &mut g, &mut cx).unwrap();
    let (_, q, s) = weight_of(&g, "conv");
    let err = |a: f32, q: &[i8]| {
        c0.iter()
            .zip(q)
            .map(|(x, &k)| (x - a * f32::from(k)).powi(2))
            .sum::<f32>()
    };
    let naive: Vec<i8> = c0
        .iter()
        .map(|&x| (x / 0.4).round_ties_even().clamp(-3.0, 3.0) as i8)
        .collect();
    assert!(err(s[0], &q[..9]) <= err(0.4, &naive) + 1e-7);
    assert!(q.iter().all(|&k| (-3..=3).contains(&k)));
}

#[test]
fn gemm_without_trans_b_is_transposed_and_latent_weights_win() {
    let mut g = Graph::new("t");
    let x = g.add_input("x", batched(&[3]));
    // [K=3, N=2]
    let w = konst(&mut g, &[3, 2], vec![1.0, -2.0, 0.5, 4.0, -0.25, 1.0]);
    let op = Op::Gemm {
        alpha: F32(1.0),
        beta: F32(1.0),
        trans_a: false,
        trans_b: false,
    };
    let y = g.add_node(op, vec![x, w], batched(&[2]), "fc", None);
    g.set_outputs(vec![y]);
    let input = Tensor::f32(vec![2, 3], vec![0.3, -1.0, 2.0, 1.0, 0.5, -0.5]).unwrap();
    let before = fqc_ir::run(&g, std::slice::from_ref(&input)).unwrap();
    let mut cx = PassContext::default();
    run(vec![Box::new(QuantizeWeights)], &mut g, &mut cx).unwrap();
    let (_, layer) = g.nodes().find(|(_, d)| d.name == "fc").unwrap();
    assert!(matches!(layer.op, Op::Gemm { trans_b: true, .. }));
    let (_, q, s) = weight_of(&g, "fc");
    // Rows are output features: max|w| of feature 0 is 1.0, of feature 1 is 4.0.
    assert_eq!(s, vec![1.0 / 127.0, 4.0 / 127.0]);
    assert_eq!(q[0], 127);
    let after = common::run_checked(&g, &[input]);
    let (a, b) = (after[0].as_f32().unwrap(), before[0].as_f32().unwrap());
    assert!(
        a.iter().zip(b).all(|(x, y)| (x - y).abs() < 0.05),
        "{a:?} vs {b:?}"
    );

    // Latent weights (same shape as the original constant) are quantized instead.
    let mut g2 = conv_graph(vec![0.1; 9], 1);
    let mut cx = PassContext::default();
    cx.latent.insert(
        "conv".into(),
        Tensor::f32(vec![1, 1, 3, 3], vec![2.54; 9]).unwrap(),
    );
    run(vec![Box::new(QuantizeWeights)], &mut g2, &mut cx).unwrap();
    assert!((weight_of(&g2, "conv").2[0] - 0.02).abs() < 1e-6);
    // Of the wrong shape they are refused, naming the layer.
    let mut g3 = conv_graph(vec![0.1; 9], 1);
    cx.latent
        .insert("conv".into(), Tensor::f32(vec![9], vec![1.0; 9]).unwrap());
    let err = run(vec![Box::new(QuantizeWeights)], &mut g3, &mut cx).unwrap_err();
    assert!(err.to_string().contains("`conv` (conv)"), "{err}");
}

#[test]
fn dynamic_weight_is_unsupported() {
    let mut g = Graph::new("t");
    let x = g.add_input("x", batched(&[3]));
    let w = g.add_input("w", TensorType::f32(Shape::fixed(&[2, 3])));
    let op = Op::Gemm {
        alpha: F32(1.0),
        beta: F32(1.0),
        trans_a: false,
        trans_b: true,
    };
    let y = g.add_node(op, vec![x, w], batched(&[2]), "fc", None);
    g.set_outputs(vec![y]);
    let err = run(
        vec![Box::new(QuantizeWeights)],
        &mut g,
        &mut PassContext::default(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("`fc` (gemm)"), "{err}");
}

/// `k·I` as a 4×4 constant: a layer after the clip (an element-wise `mul` would join
/// the clip's element-wise region and leave no quantizer between them).
fn diagonal(g: &mut Graph, k: f32) -> Value {
    let data = (0..16).map(|i| if i % 5 == 0 { k } else { 0.0 }).collect();
    konst(g, &[4, 4], data)
}

/// `x → mul(2) → clip(0, hi) → matmul(3·I) → out`, calibrated on `batches`.
fn clip_graph(hi: f32) -> Graph {
    let mut g = Graph::new("t");
    let x = g.add_input("x", batched(&[4]));
    let two = konst(&mut g, &[], vec![2.0]);
    let a = g.add_node(
        Op::Binary(BinaryOp::Mul),
        vec![x, two],
        batched(&[4]),
        "scale",
        None,
    );
    let c = g.add_node(
        Op::Clip {
            min: F32(0.0),
            max: F32(hi),
        },
        vec![a],
        batched(&[4]),
        "clip",
        None,
    );
    let three = diagonal(&mut g, 3.0);
    let y = g.add_node(Op::MatMul, vec![c, three], batched(&[4]), "out", None);
    g.set_outputs(vec![y]);
    g
}

fn quant_passes() -> Vec<Box<dyn Pass>> {
    vec![
        Box::new(Calibrate),
        Box::new(QuantizeActivations),
        Box::new(FuseActivation),
    ]
}

#[test]
fn clip_is_fused_when_calibration_caps_the_range() {
    let mut g = clip_graph(1.0);
    let mut cx = PassContext::default();
    cx.config.calib = CalibMethod::MinMax;
    cx.calib_inputs = vec![
        Tensor::f32(vec![2, 4], vec![-1.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7]).unwrap(),
        Tensor::f32(vec![1, 4], vec![3.0, -4.0, 0.25, 0.1]).unwrap(),
    ];
    run(quant_passes(), &mut g, &mut cx).unwrap();
    assert!(
        g.nodes().all(|(_, d)| !matches!(d.op, Op::Clip { .. })),
        "clip was fused"
    );
    // Ranges: the input is signed over both batches (minmax: -4..3); the clip output is capped at 1.
    let qs: Vec<_> = g
        .nodes()
        .filter_map(|(_, d)| match d.op {
            Op::Quantize { dtype, scale, .. } => Some((dtype, scale.get())),
            _ => None,
        })
        .collect();
    assert_eq!(qs, vec![(DType::I8, 4.0 / 127.0), (DType::U8, 1.0 / 255.0)]);
    // Fake quant equals the float graph up to one quantization step on both quantizers.
    let input = Tensor::f32(vec![1, 4], vec![-0.3, 0.2, 0.45, 2.0]).unwrap();
    let out = common::run_checked(&g, &[input]);
    let want = [0.0, 1.2, 2.7, 3.0];
    for (a, b) in out[0].as_f32().unwrap().iter().zip(want) {
        assert!(
            (a - b).abs() < 3.0 * (2.0 * 4.0 / 127.0 + 1.0 / 255.0),
            "{a} vs {b}"
        );
    }
}

#[test]
fn clip_below_the_quantizer_top_is_kept_with_a_note() {
    // A preset range wider than the clip: quantize(clip(x)) != quantize(x), so keep it.
    let mut g = clip_graph(1.0);
    let mut cx = PassContext::default();
    let points = fqc_passes::quantize_activations::activation_points(&g);
    assert_eq!(points.len(), 2);
    cx.ranges.insert(points[0], Range { lo: -4.0, hi: 4.0 });
    cx.ranges.insert(points[1], Range { lo: 0.0, hi: 2.0 });
    run(quant_passes(), &mut g, &mut cx).unwrap();
    assert_eq!(
        g.nodes()
            .filter(|(_, d)| matches!(d.op, Op::Clip { .. }))
            .count(),
        1
    );
    assert!(
        cx.notes.iter().any(|n| n.contains("kept `clip`")),
        "{:?}",
        cx.notes
    );
    // A relu before a signed quantizer is also kept.
    let mut g = Graph::new("t");
    let x = g.add_input("x", batched(&[4]));
    let two = konst(&mut g, &[], vec![2.0]);
    let a = g.add_node(
        Op::Binary(BinaryOp::Mul),
        vec![x, two],
        batched(&[4]),
        "scale",
        None,
    );
    let r = g.add_node(Op::Relu, vec![a], batched(&[4]), "relu", None);
    let two_i = diagonal(&mut g, 2.0);
    let y = g.add_node(Op::MatMul, vec![r, two_i], batched(&[4]), "out", None);
    g.set_outputs(vec![y]);
    let mut cx = PassContext::default();
    for v in fqc_passes::quantize_activations::activation_points(&g) {
        cx.ranges.insert(v, Range { lo: -1.0, hi: 1.0 });
    }
    run(quant_passes(), &mut g, &mut cx).unwrap();
    assert_eq!(g.nodes().filter(|(_, d)| d.op == Op::Relu).count(), 1);
}

#[test]
fn calibrate_without_inputs_or_ranges_is_an_error() {
    let mut g = clip_graph(6.0);
    let err = run(
        vec![Box::new(Calibrate)],
        &mut g,
        &mut PassContext::default(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("no calibration inputs"), "{err}");
}

#[test]
fn const_fold_folds_constants_but_keeps_weight_dequantize_and_dce_compacts() {
    let mut g = conv_graph(vec![0.5; 9], 1);
    run(
        vec![Box::new(QuantizeWeights)],
        &mut g,
        &mut PassContext::default(),
    )
    .unwrap();
    // A constant subexpression feeding the output: (2 + 3) * out.
    let a = konst(&mut g, &[], vec![2.0]);
    let b = konst(&mut g, &[], vec![3.0]);
    let s = g.add_node(
        Op::Binary(BinaryOp::Add),
        vec![a, b],
        TensorType::f32(Shape::fixed(&[])),
        "five",
        None,
    );
    let out = g.outputs()[0];
    let ty = g.ty(out).clone();
    let y = g.add_node(Op::Binary(BinaryOp::Mul), vec![out, s], ty, "times5", None);
    g.set_outputs(vec![y]);
    let input = Tensor::f32(vec![2, 1, 3, 3], (0..18).map(|i| i as f32 / 10.0).collect()).unwrap();
    let before = common::run_checked(&g, std::slice::from_ref(&input));
    let mut cx = PassContext::default();
    cx.ranges.insert(y, Range { lo: 0.0, hi: 1.0 });
    run(vec![Box::new(ConstFold), Box::new(Dce)], &mut g, &mut cx).unwrap();
    assert!(cx.ranges.is_empty(), "dce clears value-keyed tables");
    let ops: Vec<&str> = g.nodes().map(|(_, d)| d.op.name()).collect();
    assert_eq!(ops, vec!["dequantize", "conv", "mul"]);
    let (_, mul) = g.nodes().last().unwrap();
    assert_eq!(
        g.const_tensor(mul.inputs[1]).unwrap().as_f32(),
        Some(&[5.0f32][..])
    );
    assert_eq!(g.num_values(), 7, "x, scales, weight, dq, conv, five, mul");
    let after = common::run_checked(&g, &[input]);
    assert_eq!(after, before);
}

#[test]
fn calibration_does_not_depend_on_how_data_is_batched() {
    let data: Vec<f32> = (0..40 * 4)
        .map(|i| ((i * 37 % 101) as f32 - 50.0) / 7.0)
        .collect();
    let whole = Tensor::f32(vec![40, 4], data.clone()).unwrap();
    let single: Vec<Tensor> = data
        .chunks(4)
        .map(|c| Tensor::f32(vec![1, 4], c.to_vec()).unwrap())
        .collect();
    let ranges = |inputs: Vec<Tensor>| {
        let mut g = clip_graph(6.0);
        let mut cx = PassContext::default();
        cx.config.calib = CalibMethod::MinMax;
        cx.calib_inputs = inputs;
        run(vec![Box::new(Calibrate)], &mut g, &mut cx).unwrap();
        let mut r: Vec<(u32, f32, f32)> =
            cx.ranges.iter().map(|(v, r)| (v.0, r.lo, r.hi)).collect();
        r.sort_by_key(|x| x.0);
        r
    };
    let a = ranges(vec![whole]);
    assert_eq!(a, ranges(single));
    // Input: observed min/max; clip output: non-negative, capped at the clip's 6.
    assert_eq!(a[0].1, data.iter().copied().fold(f32::INFINITY, f32::min));
    assert_eq!((a[1].1, a[1].2), (0.0, 6.0));
}
