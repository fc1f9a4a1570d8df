//! Test helpers: a tiny evaluator for fake-quant graphs, and accuracy measurement.
//!
//! `eval_qdq` runs a graph node by node: `quantize` and single-operand `dequantize` are
//! computed here from their documented semantics (f32, round half to even); every other
//! node runs in the reference interpreter on a one-node graph. `run_checked` runs both
//! it and the real interpreter and checks they agree, so the passes' fake-quant graphs
//! are checked against the quantizer semantics as documented, independently of the
//! interpreter's implementation.

#![allow(dead_code)]

use std::collections::HashMap;

use fqc_ir::{Graph, Op, Scale, Tensor, TensorData, TensorType, Value, ValueDef};

fn as_f32(t: &Tensor) -> Vec<f32> {
    match &t.data {
        TensorData::F32(v) => v.clone(),
        TensorData::I8(v) => v.iter().map(|&x| f32::from(x)).collect(),
        TensorData::U8(v) => v.iter().map(|&x| f32::from(x)).collect(),
        TensorData::I32(v) => v.iter().map(|&x| x as f32).collect(),
        TensorData::I64(v) => v.iter().map(|&x| x as f32).collect(),
    }
}

/// Runs `g` on `inputs`, evaluating quantize/dequantize itself (see the module docs).
pub fn eval_qdq(g: &Graph, inputs: &[Tensor]) -> Vec<Tensor> {
    let mut vals: HashMap<Value, Tensor> = HashMap::new();
    for (&v, t) in g.inputs().iter().zip(inputs) {
        vals.insert(v, t.clone());
    }
    let get = |vals: &HashMap<Value, Tensor>, v: Value| -> Tensor {
        vals.get(&v)
            .cloned()
            .or_else(|| g.const_tensor(v).cloned())
            .expect("operand available")
    };
    for (_, node) in g.nodes() {
        let out = match &node.op {
            Op::Quantize {
                dtype,
                scale,
                offset,
            } => {
                let x = get(&vals, node.inputs[0]);
                let (lo, hi) = dtype.quant_range().unwrap();
                let data = as_f32(&x)
                    .iter()
                    .map(|&v| {
                        ((v - offset.get()) / scale.get())
                            .round_ties_even()
                            .clamp(lo as f32, hi as f32)
                    })
                    .collect();
                Tensor {
                    shape: x.shape.clone(),
                    data: TensorData::F32(data),
                }
            }
            Op::Dequantize if node.inputs.len() == 1 => {
                let v = node.inputs[0];
                let x = get(&vals, v);
                let q = as_f32(&x);
                let data = match &g.ty(v).scale {
                    Some(Scale::Tensor(s)) => q.iter().map(|&e| e * s.get()).collect(),
                    Some(Scale::Channel { axis, scales }) => {
                        let s = g.const_tensor(*scales).unwrap().as_f32().unwrap();
                        let inner: usize = x.shape[axis + 1..].iter().product();
                        let ext = x.shape[*axis];
                        q.iter()
                            .enumerate()
                            .map(|(i, &e)| e * s[(i / inner) % ext])
                            .collect()
                    }
                    None => panic!("dequantize of an unscaled value"),
                };
                Tensor {
                    shape: x.shape.clone(),
                    data: TensorData::F32(data),
                }
            }
            op => {
                let mut sub = Graph::new("one");
                let mut args = Vec::new();
                let mut ops = Vec::new();
                for &v in &node.inputs {
                    match g.value(v).def {
                        ValueDef::Const(c) => {
                            let info = g.value(v);
                            ops.push(sub.add_const_data(
                                info.name.clone(),
                                info.ty.clone(),
                                g.const_data(c).clone(),
                            ));
                        }
                        _ => {
                            let name = format!("in{}", ops.len());
                            ops.push(sub.add_input(name, TensorType::f32(g.ty(v).shape.clone())));
                            args.push(get(&vals, v));
                        }
                    }
                }
                let o = sub.add_node(op.clone(), ops, g.ty(node.output).clone(), "n", None);
                sub.set_outputs(vec![o]);
                fqc_ir::run(&sub, &args).expect("node runs").remove(0)
            }
        };
        vals.insert(node.output, out);
    }
    g.outputs().iter().map(|&v| get(&vals, v)).collect()
}

/// Runs a (possibly fake-quant) graph: own evaluator, cross-checked against the
/// interpreter when it can run the graph.
pub fn run_checked(g: &Graph, inputs: &[Tensor]) -> Vec<Tensor> {
    let ours = eval_qdq(g, inputs);
    match fqc_ir::run(g, inputs) {
        Ok(theirs) => {
            for (a, b) in ours.iter().zip(&theirs) {
                let (a, b) = (as_f32(a), as_f32(b));
                let scale = b.iter().fold(1e-3f32, |m, x| m.max(x.abs()));
                let worst = a
                    .iter()
                    .zip(&b)
                    .map(|(x, y)| (x - y).abs())
                    .fold(0f32, f32::max);
                assert!(
                    worst <= 1e-4 * scale,
                    "interpreter and QDQ evaluator differ by {worst}"
                );
            }
        }
        Err(e) => panic!("the interpreter failed on a fake-quant graph: {e}"),
    }
    ours
}

/// Top-1 predictions of `[N, classes]` logits.
pub fn argmax_rows(t: &Tensor) -> Vec<usize> {
    let classes = t.shape[1];
    as_f32(t)
        .chunks(classes)
        .map(|r| {
            r.iter()
                .enumerate()
                .fold(
                    (0, f32::NEG_INFINITY),
                    |b, (i, &x)| if x > b.1 { (i, x) } else { b },
                )
                .0
        })
        .collect()
}
