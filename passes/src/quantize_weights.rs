//! `quantize-weights`: every Conv/Gemm weight becomes a low-bit constant with
//! per-output-channel scales, read through a `dequantize` (fake quant).
//!
//! Per output channel `c` (weight row `w_c`; a Gemm without `trans_b` has its constant
//! transposed to `[N,K]` and `trans_b` set, which computes the same product), with the
//! bits of `cx.config.weights_for(layer)`:
//!
//! * ternary: `α_c = 0.86·σ(w_c)` (METHOD.md: the three levels roughly equally likely),
//! * `b ≥ 4`: `α_c = max|w_c| / (2^(b−1)−1)`,
//! * `b = 3`: the `α_c` minimising `Σ(w − α·q)²` over 100 candidates up to `max|w_c|/3`,
//!
//! and `q = clamp(round_half_even(w/α_c), −n, n)`, `n = 2^(b−1)−1` (1 for ternary). A
//! channel with no spread (σ = 0 or all zeros) gets `α_c = max|w_c|`, or a tiny positive
//! scale when it is all zeros, so scales are always positive and finite. The constant is
//! typed `t2`/`i<b>` with `Scale::Channel{axis: 0}` over an `f32[M]` scale constant, and
//! `dequantize` turns it back into `α_c·q`, so the graph still runs in float and
//! computes exactly the fake-quant layer. When `cx.latent[layer]` is set (the gradual
//! driver's latent float weights), it is quantized instead of the graph's constant.
//! A weight that already is a `dequantize` result is left alone (the pass is idempotent).

use std::collections::HashSet;

use fqc_ir::{DType, Graph, Node, Op, Scale, Tensor, TensorData, TensorType, Value};

use crate::context::{PassContext, WeightBits};
use crate::edit::{label, producer, reschedule, unsupported, value_label};
use crate::{Pass, Result};

const NAME: &str = "quantize-weights";
/// The ternary threshold/scale factor relative to the channel's standard deviation.
const TERNARY_SIGMA: f64 = 0.86;
/// Scale of an all-zero channel.
const TINY_SCALE: f32 = 1e-12;

/// Quantizes Conv/Gemm weights per output channel (see the module docs).
#[derive(Debug, Default, Clone, Copy)]
pub struct QuantizeWeights;

/// Quantizes one channel at scale `alpha` to `[-n, n]` (METHOD.md's weight quantizer;
/// shared with the schedule driver's scale setter).
pub(crate) fn quantize_channel(w: &[f32], alpha: f64, n: i64) -> impl Iterator<Item = i8> + '_ {
    w.iter().map(move |&x| {
        let q = (f64::from(x) / alpha).round_ties_even();
        q.clamp(-(n as f64), n as f64) as i8
    })
}

fn channel_mse(w: &[f32], alpha: f64, n: i64) -> f64 {
    quantize_channel(w, alpha, n)
        .zip(w)
        .map(|(q, &x)| (f64::from(x) - alpha * f64::from(q)).powi(2))
        .sum()
}

/// The scale of one channel for `bits` (see the module docs).
fn channel_scale(w: &[f32], bits: WeightBits) -> f64 {
    let amax = w.iter().fold(0f64, |m, &x| m.max(f64::from(x.abs())));
    if amax == 0.0 || !amax.is_finite() {
        return f64::from(TINY_SCALE);
    }
    let alpha = match bits {
        WeightBits::Ternary => {
            let n = w.len() as f64;
            let mean = w.iter().map(|&x| f64::from(x)).sum::<f64>() / n;
            let var = w
                .iter()
                .map(|&x| (f64::from(x) - mean).powi(2))
                .sum::<f64>()
                / n;
            TERNARY_SIGMA * var.sqrt()
        }
        WeightBits::Bits(3) => {
            let mut best = (f64::INFINITY, amax / 3.0);
            for k in 1..=100 {
                let a = amax / 3.0 * f64::from(k) / 100.0;
                let e = channel_mse(w, a, 3);
                if e < best.0 {
                    best = (e, a);
                }
            }
            best.1
        }
        WeightBits::Bits(b) => amax / ((1i64 << (b.clamp(2, 8) - 1)) - 1) as f64,
    };
    // A channel with no spread: one level at its magnitude.
    let alpha = if alpha > 0.0 { alpha } else { amax };
    // Scales are stored as f32: they must stay positive and finite there.
    alpha.clamp(f64::from(TINY_SCALE), f64::from(f32::MAX))
}

/// Quantizes a `[M, …]` weight per row: the integers and the per-row scales.
fn quantize_rows(w: &[f32], rows: usize, bits: WeightBits) -> (Vec<i8>, Vec<f32>) {
    let per = w.len() / rows.max(1);
    let n = match bits {
        WeightBits::Ternary => 1,
        WeightBits::Bits(b) => (1i64 << (b.clamp(2, 8) - 1)) - 1,
    };
    let mut q = Vec::with_capacity(w.len());
    let mut scales = Vec::with_capacity(rows);
    for row in w.chunks(per.max(1)).take(rows) {
        let alpha = channel_scale(row, bits);
        // Quantize with the scale as stored, so dequantize reproduces exactly α·q.
        let stored = alpha as f32;
        q.extend(quantize_channel(row, f64::from(stored), n));
        scales.push(stored);
    }
    (q, scales)
}

fn transpose2(t: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut out = vec![0.0; t.len()];
    for r in 0..rows {
        for c in 0..cols {
            out[c * rows + r] = t[r * cols + c];
        }
    }
    out
}

/// Quantizes the weight of layer `n`; returns false when it was already quantized.
fn quantize_layer(g: &mut Graph, cx: &PassContext, n: Node) -> Result<bool> {
    let node = g.node(n).clone();
    let Some(&wv) = node.inputs.get(1) else {
        return Err(unsupported(NAME, g, n, "has no weight operand"));
    };
    if producer(g, wv).is_some_and(|p| g.node(p).op == Op::Dequantize) {
        return Ok(false);
    }
    let Some(graph_w) = g.const_tensor(wv).filter(|t| t.as_f32().is_some()) else {
        return Err(unsupported(
            NAME,
            g,
            n,
            "the weight is not an f32 constant with data",
        ));
    };
    let layer = node.name.clone();
    let w = match cx.latent.get(&layer) {
        Some(t) if t.shape == graph_w.shape && t.as_f32().is_some() => t,
        Some(t) => {
            return Err(unsupported(
                NAME,
                g,
                n,
                format!(
                    "latent weights have shape {:?}, the graph's weight {:?}",
                    t.shape, graph_w.shape
                ),
            ))
        }
        None => graph_w,
    };
    let data = w.as_f32().unwrap_or_default();
    // Rows = output channels; a Gemm without trans_b is transposed to [N, K].
    let (rows_data, shape, transpose) = match &node.op {
        Op::Conv { .. } if w.shape.len() == 4 => (data.to_vec(), w.shape.clone(), false),
        Op::Gemm { trans_b: true, .. } if w.shape.len() == 2 => {
            (data.to_vec(), w.shape.clone(), false)
        }
        Op::Gemm { trans_b: false, .. } if w.shape.len() == 2 => {
            let (k, nn) = (w.shape[0], w.shape[1]);
            (transpose2(data, k, nn), vec![nn, k], true)
        }
        _ => {
            return Err(unsupported(
                NAME,
                g,
                n,
                format!("unexpected weight shape {:?}", w.shape),
            ))
        }
    };
    let rows = shape[0];
    if rows == 0 {
        return Err(unsupported(NAME, g, n, "the weight has no output channels"));
    }
    let bits = cx.config.weights_for(&layer);
    let dtype = match bits {
        WeightBits::Ternary => DType::Ternary,
        WeightBits::Bits(b) => DType::int(true, b)
            .ok_or_else(|| unsupported(NAME, g, n, format!("{b}-bit weights are not supported")))?,
    };
    let (q, scales) = quantize_rows(&rows_data, rows, bits);
    let wname = value_label(g, wv);
    let scale_t = Tensor {
        shape: vec![rows],
        data: TensorData::F32(scales),
    };
    let sv = g.add_const(
        Some(format!("{wname}.scales")),
        TensorType::f32(scale_t.static_shape()),
        scale_t,
    );
    let qt = Tensor {
        shape,
        data: TensorData::I8(q),
    };
    let static_shape = qt.static_shape();
    let qty = TensorType {
        dtype,
        shape: static_shape.clone(),
        scale: Some(Scale::Channel {
            axis: 0,
            scales: sv,
        }),
    };
    let wq = g.add_const(Some(format!("{wname}.{dtype}")), qty, qt);
    let dq: Value = g.add_node(
        Op::Dequantize,
        vec![wq],
        TensorType::f32(static_shape),
        format!("{}/dequantize_weight", label(g, n)),
        Some(format!("{wname}.dq")),
    );
    let data = g.node_mut(n);
    data.inputs[1] = dq;
    if transpose {
        if let Op::Gemm { trans_b, .. } = &mut data.op {
            *trans_b = true;
        }
    }
    Ok(true)
}

impl Pass for QuantizeWeights {
    fn name(&self) -> &'static str {
        NAME
    }

    fn run(&self, g: &mut Graph, cx: &mut PassContext) -> Result<()> {
        let layers: Vec<Node> = g
            .nodes()
            .filter(|(_, d)| matches!(d.op, Op::Conv { .. } | Op::Gemm { .. }))
            .map(|(n, _)| n)
            .collect();
        let mut changed = false;
        for n in layers {
            changed |= quantize_layer(g, cx, n)?;
        }
        if changed {
            reschedule(g, NAME, &HashSet::new())?;
        }
        Ok(())
    }
}
