//! Reading a stage's graphs for the hook and the report — layers, their latent weights,
//! bits, MACs, weight sparsity and scales; activation points — and `set-weight-scales`,
//! the one edit the driver makes itself: re-quantizing a layer at scales a hook chose.
//!
//! Layers are the master's Conv/Gemm nodes with a constant f32 weight and a name no
//! other layer has (latent weights and overrides are keyed by node name, so an unnamed
//! or doubly named layer keeps its graph weight). A stage's graph keeps node names
//! (`quantize-weights` edits operands in place), so a layer is found there by name.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use fqc_ir::{DType, Graph, Node, Op, Scale, Tensor, TensorData, TensorType, Value};

use super::handle::{ActPoint, LayerInfo, LayerKind};
use crate::context::{PassContext, QuantConfig};
use crate::edit::producer;
use crate::quantize_activations::{classified_points, point_bits};
use crate::{Pass, PassError, Result};

/// The master's layers: `(node, kind, weight, output channel axis of the weight)`.
fn layers(g: &Graph) -> Vec<(Node, LayerKind, Value, usize)> {
    let mut count: HashMap<&str, usize> = HashMap::new();
    for (_, d) in g.nodes() {
        *count.entry(d.name.as_str()).or_default() += 1;
    }
    g.nodes()
        .filter_map(|(n, d)| {
            let (kind, axis) = match d.op {
                Op::Conv { .. } => (LayerKind::Conv, 0),
                Op::Gemm { trans_b, .. } => (LayerKind::Gemm, usize::from(!trans_b)),
                _ => return None,
            };
            let w = *d.inputs.get(1)?;
            let ok = !d.name.is_empty()
                && count.get(d.name.as_str()) == Some(&1)
                && g.const_tensor(w).is_some_and(|t| t.as_f32().is_some());
            ok.then_some((n, kind, w, axis))
        })
        .collect()
}

/// The latent float weights of the master's layers, by node name.
pub(super) fn layer_weights(master: &Graph) -> BTreeMap<String, Tensor> {
    layers(master)
        .into_iter()
        .filter_map(|(n, _, w, _)| {
            let t = master.const_tensor(w)?.clone();
            Some((master.node(n).name.clone(), t))
        })
        .collect()
}

/// Scheduled nodes of `g` by name (Conv/Gemm and their integer forms only).
fn by_name(g: &Graph) -> HashMap<&str, Node> {
    g.nodes()
        .filter(|(_, d)| {
            matches!(
                d.op,
                Op::Conv { .. } | Op::Gemm { .. } | Op::QConv { .. } | Op::QGemm { .. }
            )
        })
        .map(|(n, d)| (d.name.as_str(), n))
        .collect()
}

fn dtype_bits(d: DType) -> Option<u8> {
    match d {
        DType::Int { bits, .. } => Some(bits),
        DType::Ternary => Some(2),
        _ => None,
    }
}

/// Bits of the quantized value feeding layer `n` of `g` (through dequantize and ops that
/// only move or select values), if its input is quantized.
fn input_bits(g: &Graph, n: Node) -> Option<u8> {
    let mut v = *g.node(n).inputs.first()?;
    for _ in 0..=g.num_nodes() {
        if let Some(b) = dtype_bits(g.ty(v).dtype) {
            return Some(b);
        }
        let p = producer(g, v)?;
        let d = g.node(p);
        match d.op {
            Op::Dequantize
            | Op::MaxPool { .. }
            | Op::GlobalMaxPool
            | Op::Reshape { .. }
            | Op::Flatten { .. }
            | Op::Transpose { .. }
            | Op::Relu => v = *d.inputs.first()?,
            _ => return None,
        }
    }
    None
}

/// The quantized weight constant of layer `n` of `g`: the operand itself when it is
/// low-bit, or what its `dequantize` reads.
fn quantized_weight(g: &Graph, n: Node) -> Option<Value> {
    let w = *g.node(n).inputs.get(1)?;
    let w = match producer(g, w) {
        Some(p) if g.node(p).op == Op::Dequantize => g.node(p).inputs[0],
        Some(_) => return None,
        None => w,
    };
    (g.is_const(w) && g.ty(w).dtype.is_low_bit()).then_some(w)
}

/// Fraction of zero integer weights of the layer named `layer` in `g` (a fake-quant or
/// an integer graph), if its weight is quantized there.
pub fn weight_sparsity(g: &Graph, layer: &str) -> Option<f64> {
    let n = *by_name(g).get(layer)?;
    let t = g.const_tensor(quantized_weight(g, n)?)?;
    let zeros = match &t.data {
        TensorData::I8(v) => v.iter().filter(|&&x| x == 0).count(),
        TensorData::U8(v) => v.iter().filter(|&&x| x == 0).count(),
        _ => return None,
    };
    Some(zeros as f64 / t.numel().max(1) as f64)
}

/// The master's layers as quantized in `g` under `config`.
pub fn layer_infos(
    master: &Graph,
    g: &Graph,
    config: &QuantConfig,
    batchnorm_folded: &BTreeSet<String>,
) -> Vec<LayerInfo> {
    let in_g = by_name(g);
    layers(master)
        .into_iter()
        .map(|(n, kind, w, channel_axis)| {
            let d = master.node(n);
            let weight_shape: Vec<usize> = master
                .const_tensor(w)
                .map(|t| t.shape.clone())
                .unwrap_or_default();
            let channels = weight_shape.get(channel_axis).copied().unwrap_or(1).max(1);
            let per_channel = weight_shape.iter().product::<usize>() / channels;
            let out_items = master.ty(d.output).shape.numel_per_item().unwrap_or(0);
            let gn = in_g.get(d.name.as_str()).copied();
            LayerInfo {
                name: d.name.clone(),
                kind,
                weight: w,
                weight_name: master.value(w).name.clone(),
                weight_shape,
                channel_axis,
                weights: config.weights_for(&d.name),
                out_bits: config.acts_for(&d.name),
                in_bits: gn.and_then(|gn| input_bits(g, gn)),
                macs: out_items.saturating_mul(per_channel as u64),
                sparsity: weight_sparsity(g, &d.name),
                batchnorm: batchnorm_folded.contains(&d.name),
            }
        })
        .collect()
}

/// The master's activation points that have a range in `cx`, with their bits.
pub fn act_points(master: &Graph, cx: &PassContext) -> Vec<ActPoint> {
    classified_points(master)
        .into_iter()
        .filter(|(v, _)| cx.ranges.contains_key(v))
        .map(|(v, is_input)| ActPoint {
            value: v,
            name: master.value(v).name.clone(),
            is_input,
            bits: point_bits(master, cx, v, is_input),
        })
        .collect()
}

/// The per-channel weight scales each layer of the master has in `g`.
pub(super) fn current_scales(master: &Graph, g: &Graph) -> BTreeMap<String, Vec<f32>> {
    let in_g = by_name(g);
    layers(master)
        .into_iter()
        .filter_map(|(n, ..)| {
            let name = &master.node(n).name;
            let wq = quantized_weight(g, *in_g.get(name.as_str())?)?;
            let Some(Scale::Channel { scales, .. }) = &g.ty(wq).scale else {
                return None;
            };
            let s = g.const_tensor(*scales)?.as_f32()?.to_vec();
            Some((name.clone(), s))
        })
        .collect()
}

/// `set-weight-scales`: re-quantizes the named layers' latent weights at given
/// per-channel scales, with METHOD.md's weight quantizer `q = clamp(round_half_even(w/α),
/// −n, n)` (`n = 1` for ternary), replacing the constant their `dequantize` reads. Runs
/// right after `quantize-weights`, so the layout is the one it chose (a Gemm weight
/// without `trans_b` is stored transposed; the latent weight is transposed to match).
#[derive(Debug, Clone)]
pub(super) struct SetWeightScales {
    pub scales: BTreeMap<String, Vec<f32>>,
    pub latent: BTreeMap<String, Tensor>,
}

const SET_SCALES: &str = "set-weight-scales";

impl SetWeightScales {
    fn apply(&self, g: &mut Graph, name: &str, scales: &[f32]) -> Result<()> {
        let err = |msg: String| PassError::Unsupported {
            pass: SET_SCALES,
            node: name.to_string(),
            op: "conv/gemm",
            msg,
        };
        let n = *by_name(g)
            .get(name)
            .ok_or_else(|| err("no such layer".into()))?;
        let wq = quantized_weight(g, n).ok_or_else(|| err("the weight is not quantized".into()))?;
        let dq = g.node(n).inputs[1];
        let dq = producer(g, dq).ok_or_else(|| err("the weight has no dequantize".into()))?;
        let ty = g.ty(wq).clone();
        let Some((_, n_max)) = ty.dtype.quant_range() else {
            return Err(err("the weight type has no quantizer range".into()));
        };
        let latent = self
            .latent
            .get(name)
            .and_then(|t| t.as_f32().map(|d| (t, d)));
        let Some((lt, data)) = latent else {
            return Err(err("no latent f32 weights".into()));
        };
        let shape = ty.shape.resolve(1);
        let rows_data: Vec<f32> = if lt.shape == shape {
            data.to_vec()
        } else if lt.shape.len() == 2 && shape.len() == 2 && lt.shape == [shape[1], shape[0]] {
            let (k, m) = (lt.shape[0], lt.shape[1]);
            (0..m * k).map(|i| data[(i % k) * m + i / k]).collect()
        } else {
            return Err(err(format!(
                "latent shape {:?} does not match the weight's {:?}",
                lt.shape, shape
            )));
        };
        let rows = shape.first().copied().unwrap_or(0);
        if rows != scales.len() || rows == 0 {
            return Err(err(format!(
                "{} scales for {rows} output channels",
                scales.len()
            )));
        }
        let per = rows_data.len() / rows;
        let q: Vec<i8> = rows_data
            .chunks(per.max(1))
            .zip(scales)
            .flat_map(|(row, &s)| {
                crate::quantize_weights::quantize_channel(row, f64::from(s), n_max)
            })
            .collect();
        let base = g.value(wq).name.clone().unwrap_or_else(|| name.to_string());
        let st = Tensor {
            shape: vec![rows],
            data: TensorData::F32(scales.to_vec()),
        };
        let sv = g.add_const(
            Some(format!("{base}.set_scales")),
            TensorType::f32(st.static_shape()),
            st,
        );
        let qt = Tensor {
            shape,
            data: TensorData::I8(q),
        };
        let qty = TensorType {
            dtype: ty.dtype,
            shape: ty.shape.clone(),
            scale: Some(Scale::Channel {
                axis: 0,
                scales: sv,
            }),
        };
        let nv = g.add_const(g.value(wq).name.clone(), qty, qt);
        g.node_mut(dq).inputs[0] = nv;
        Ok(())
    }
}

impl Pass for SetWeightScales {
    fn name(&self) -> &'static str {
        SET_SCALES
    }

    fn run(&self, g: &mut Graph, _cx: &mut PassContext) -> Result<()> {
        for (name, scales) in &self.scales {
            self.apply(g, name, scales)?;
        }
        Ok(())
    }
}
