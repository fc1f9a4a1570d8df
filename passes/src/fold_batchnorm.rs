//! `fold-batchnorm`: inference BatchNorm folded into the Conv/Gemm before it, or turned
//! into a per-channel affine (`mul`, `add` by constants) when it cannot be folded.
//!
//! Inference BN is the per-channel affine `y = (x − μ)·k + β` with `k = γ/√(σ²+ε)`. When
//! `x` is a Conv's (any `group`) or a Gemm's output and BN is its only user, `x` is linear
//! in the weights of each output channel `c` plus the bias, so `y` is the same layer with
//! `w'_c = w_c·k_c` and `b'_c = (b_c − μ_c)·k_c + β_c` (Gemm: `b = β_gemm·C`, with C a
//! scalar or an `[N]`/`[1,N]` vector; the new bias gets `beta = 1`). Factors are computed
//! in f64 and stored as f32, so the folded layer differs from the original only by f32
//! rounding. The Conv's output channel is weight axis 0 whatever the grouping; a Gemm's
//! output feature is the weight's row with `trans_b` and its column without.
//!
//! Any other BN (after an Add, a shared conv output, a non-constant weight) becomes
//! `mul(x, k)` then `add(·, β − μk)` with constants shaped `[C,1,…,1]` (rank − 1 axes),
//! which broadcast over axis 1 exactly as BN does; later passes absorb that affine.
//! New constants are always created (a shared weight is never mutated).

use std::collections::HashSet;

use fqc_ir::{BinaryOp, Graph, Node, Op, Tensor, TensorType, Value, F32};

use crate::context::PassContext;
use crate::edit::{f32_const, label, producer, reschedule, unsupported, users};
use crate::{Pass, Result};

const NAME: &str = "fold-batchnorm";

/// Folds BatchNorm into the preceding Conv/Gemm (see the module docs).
#[derive(Debug, Default, Clone, Copy)]
pub struct FoldBatchNorm;

/// BN's per-channel factor `k` and offset `β − μk`, plus `μ` and `β` for the fold.
struct BnAffine {
    k: Vec<f64>,
    mean: Vec<f64>,
    beta: Vec<f64>,
}

impl BnAffine {
    fn offset(&self, c: usize) -> f64 {
        self.beta[c] - self.mean[c] * self.k[c]
    }
}

fn bn_affine(g: &Graph, n: Node) -> Result<BnAffine> {
    let node = g.node(n);
    let Op::BatchNorm { epsilon } = node.op else {
        return Err(unsupported(NAME, g, n, "not a batchnorm"));
    };
    let mut p: Vec<&[f32]> = Vec::with_capacity(4);
    for (i, &v) in node.inputs.iter().enumerate().skip(1) {
        let t = f32_const(g, v).and_then(|t| t.as_f32()).ok_or_else(|| {
            unsupported(
                NAME,
                g,
                n,
                format!("parameter {i} is not an f32 constant with data"),
            )
        })?;
        p.push(t);
    }
    let c = p[0].len();
    if p.iter().any(|t| t.len() != c) {
        return Err(unsupported(NAME, g, n, "parameters differ in length"));
    }
    let eps = f64::from(epsilon.get());
    let k: Vec<f64> = (0..c)
        .map(|i| f64::from(p[0][i]) / (f64::from(p[3][i]) + eps).sqrt())
        .collect();
    if k.iter().any(|x| !x.is_finite()) {
        return Err(unsupported(
            NAME,
            g,
            n,
            "variance + epsilon is not positive",
        ));
    }
    Ok(BnAffine {
        k,
        mean: p[2].iter().map(|&x| f64::from(x)).collect(),
        beta: p[1].iter().map(|&x| f64::from(x)).collect(),
    })
}

fn f32_tensor(shape: Vec<usize>, data: Vec<f32>) -> (TensorType, Tensor) {
    let t = Tensor {
        shape,
        data: fqc_ir::TensorData::F32(data),
    };
    (TensorType::f32(t.static_shape()), t)
}

/// Tries to fold BN node `bn` into the layer producing its input. Returns the layer node
/// on success, `None` when the pattern does not apply.
fn try_fold(g: &mut Graph, bn: Node, aff: &BnAffine, uses: &[Vec<Node>]) -> Option<Node> {
    let x = g.node(bn).inputs[0];
    let layer = producer(g, x)?;
    if uses[x.index()].len() != 1 || g.outputs().contains(&x) {
        return None;
    }
    let node = g.node(layer).clone();
    let w = f32_const(g, *node.inputs.get(1)?)?;
    let wd = w.as_f32()?;
    let c = aff.k.len();
    // out_of(i): output channel of weight element i.
    let (out_of, beta_gemm): (Box<dyn Fn(usize) -> usize>, f64) = match &node.op {
        Op::Conv { .. } => {
            if w.shape.first() != Some(&c) || w.shape.len() != 4 {
                return None;
            }
            let per = wd.len() / c;
            (Box::new(move |i| i / per), 1.0)
        }
        Op::Gemm { beta, trans_b, .. } => {
            if w.shape.len() != 2 {
                return None;
            }
            let (rows, cols) = (w.shape[0], w.shape[1]);
            let f: Box<dyn Fn(usize) -> usize> = if *trans_b {
                if rows != c {
                    return None;
                }
                Box::new(move |i| i / cols)
            } else {
                if cols != c {
                    return None;
                }
                Box::new(move |i| i % cols)
            };
            (f, f64::from(beta.get()))
        }
        _ => return None,
    };
    // The old bias as a per-channel vector (scaled by Gemm's beta).
    let bias: Vec<f64> = match node.inputs.get(2) {
        None => vec![0.0; c],
        Some(&b) => {
            let t = f32_const(g, b)?;
            let d = t.as_f32()?;
            let vector = t.shape.iter().filter(|&&e| e != 1).count() <= 1;
            if d.len() == c && vector {
                d.iter().map(|&v| f64::from(v) * beta_gemm).collect()
            } else if d.len() == 1 {
                vec![f64::from(d[0]) * beta_gemm; c]
            } else {
                return None;
            }
        }
    };
    let new_w: Vec<f32> = wd
        .iter()
        .enumerate()
        .map(|(i, &v)| (f64::from(v) * aff.k[out_of(i)]) as f32)
        .collect();
    let new_b: Vec<f32> = (0..c)
        .map(|i| ((bias[i] - aff.mean[i]) * aff.k[i] + aff.beta[i]) as f32)
        .collect();
    let w_shape = w.shape.clone();
    let w_name = g.value(node.inputs[1]).name.clone();
    let (wt, wtensor) = f32_tensor(w_shape, new_w);
    let nw = g.add_const(w_name.map(|s| format!("{s}.bn_folded")), wt, wtensor);
    let (bt, btensor) = f32_tensor(vec![c], new_b);
    let nb = g.add_const(
        Some(format!("{}.bias_bn_folded", label(g, layer))),
        bt,
        btensor,
    );
    let data = g.node_mut(layer);
    data.inputs.truncate(1);
    data.inputs.extend([nw, nb]);
    if let Op::Gemm { beta, .. } = &mut data.op {
        *beta = F32(1.0);
    }
    Some(layer)
}

/// Replaces BN node `bn` by `add(mul(x, k), β − μk)`; returns the new result.
fn to_affine(g: &mut Graph, bn: Node, aff: &BnAffine) -> Result<Value> {
    let node = g.node(bn).clone();
    let x = node.inputs[0];
    let ty = g.ty(node.output).clone();
    let rank = ty.shape.rank();
    if rank < 2 {
        return Err(unsupported(
            NAME,
            g,
            bn,
            format!("input rank {rank} has no channel axis"),
        ));
    }
    let c = aff.k.len();
    let mut shape = vec![1usize; rank - 1];
    shape[0] = c;
    let base = label(g, bn);
    let (kt, k) = f32_tensor(shape.clone(), aff.k.iter().map(|&v| v as f32).collect());
    let kv = g.add_const(Some(format!("{base}.scale")), kt, k);
    let (ot, o) = f32_tensor(shape, (0..c).map(|i| aff.offset(i) as f32).collect());
    let ov = g.add_const(Some(format!("{base}.offset")), ot, o);
    let m = g.add_node(
        Op::Binary(BinaryOp::Mul),
        vec![x, kv],
        ty.clone(),
        format!("{base}/mul"),
        Some(format!("{base}.mul_output")),
    );
    Ok(g.add_node(
        Op::Binary(BinaryOp::Add),
        vec![m, ov],
        ty,
        format!("{base}/add"),
        g.value(node.output).name.clone(),
    ))
}

impl Pass for FoldBatchNorm {
    fn name(&self) -> &'static str {
        NAME
    }

    fn run(&self, g: &mut Graph, cx: &mut PassContext) -> Result<()> {
        let bns: Vec<Node> = g
            .nodes()
            .filter(|(_, d)| matches!(d.op, Op::BatchNorm { .. }))
            .map(|(n, _)| n)
            .collect();
        let mut dropped = HashSet::new();
        for bn in bns {
            let aff = bn_affine(g, bn)?;
            let out = g.node(bn).output;
            let uses = users(g);
            let new = match try_fold(g, bn, &aff, &uses) {
                Some(layer) => {
                    cx.batchnorm_folded.insert(g.node(layer).name.clone());
                    let lo = g.node(layer).output;
                    if g.outputs().contains(&out) {
                        g.value_mut(lo).name = g.value(out).name.clone();
                    }
                    lo
                }
                None => to_affine(g, bn, &aff)?,
            };
            g.replace_uses(out, new);
            dropped.insert(bn);
        }
        reschedule(g, NAME, &dropped)
    }
}
