//! One stage of the gradual schedule as an ONNX model in QDQ form, for training outside
//! fqc (the external fine-tuning hook, [`crate::external`]).
//!
//! The model is the stage's float master (the imported graph after BatchNorm folding)
//! with the stage's quantizers as `QuantizeLinear → Clip → DequantizeLinear` chains:
//!
//! * **weights** of every Conv/Gemm layer: the latent float weights as the initializer
//!   of the source name (`conv1.weight`, also when BN was folded into it), quantized
//!   per output channel to `int8` (`axis` = the output-channel axis, zero point 0, scale
//!   `<weight>_scale` = the stage's per-channel weight scale), then clipped **in the
//!   integer domain** to the stage's levels `[-n, n]` (`n = 1` ternary, `2^(b-1)-1`
//!   otherwise; `<weight>_qmin` / `<weight>_qmax`), then dequantized with the same scale;
//! * **activations** at every quantization point of the stage (the network input after
//!   its normalisation chain, and layer outputs after their ReLU): `uint8` (or `int8`
//!   for a signed range) with scale `<value>_scale = amax / qmax`, zero point 0, then the
//!   integer clip to the stage's levels `[0, 2^b-1]` (signed: `[-(2^(b-1)-1), 2^(b-1)-1]`),
//!   then dequantized.
//!
//! fqc's quantizers have no zero point (quantized 0 is real 0) and clip at the level
//! range, so `DequantizeLinear(Clip(QuantizeLinear(x)))` computes exactly fqc's
//! `s·clamp(round_half_even(x/s), qmin, qmax)`: the clip between Q and DQ is what makes a
//! b-bit (or ternary) quantizer exact in ONNX Runtime while the scale stays the one
//! number a training script edits (a float clip before Q would be a second copy of the
//! range that goes stale when the scale changes). ONNX Runtime divides in `f32` where
//! fqc's weight quantizer divides in `f64`: a value within an `f32` rounding of a
//! rounding tie may land on the neighbouring level — values, never structure. Run
//! op by op (`ORT_DISABLE_ALL`), ONNX Runtime computes the stage's fake-quant graph to
//! float rounding (tested on the bundled MNIST CNN at w8a8, w4a6 and ternary); with its
//! default optimizations it fuses the QDQ chains into QLinear kernels with their own
//! integer rounding, which is close but not the same.
//!
//! Everything else is the master's float ops (Conv, Gemm, MatMul, Relu, Clip,
//! Add/Sub/Mul/Div, Sum, MaxPool, AveragePool, Global pools, Flatten, Reshape, Concat,
//! Softmax, LRN, Transpose, BatchNormalization) at opset [`OPSET`]; initializers keep
//! the names of the source model (biases of layers whose weight is `X.weight` are
//! `X.bias`). [`QdqExport::map`] records where each learnable quantity went, which is
//! what re-import reads back.

use std::collections::{BTreeMap, HashMap, HashSet};

use fqc_ir::{BinaryOp, DType, Dim, Graph, Op, Tensor, TensorData, Value, Window};
use fqc_onnx::proto::{
    attribute_proto::AttributeType, tensor_proto::DataType, tensor_shape_proto, type_proto,
    AttributeProto, GraphProto, ModelProto, NodeProto, OperatorSetIdProto, StringStringEntryProto,
    TensorProto, TensorShapeProto, TypeProto, ValueInfoProto,
};
use fqc_passes::schedule::{StageHandle, StageInfo};
use fqc_passes::{Range, WeightBits};
use prost::Message;

mod exporter;
use exporter::Exporter;

/// The opset of exported models.
pub const OPSET: i64 = 13;
/// The ONNX IR version matching [`OPSET`].
pub const IR_VERSION: i64 = 7;

/// An error exporting a stage.
#[derive(Debug, thiserror::Error)]
#[error("QDQ export: {0}")]
pub struct ExportError(pub String);

fn err(msg: impl Into<String>) -> ExportError {
    ExportError(msg.into())
}

/// Where one Conv/Gemm layer's learnable tensors are in the exported model.
#[derive(Clone, Debug, PartialEq)]
pub struct LayerExport {
    /// The layer (node name in fqc; the key of latent weights).
    pub layer: String,
    /// The latent float weight initializer.
    pub weight: String,
    /// The weight's per-channel scale initializer (None: the layer was not quantized).
    pub scale: Option<String>,
    /// The weight's zero point initializer.
    pub zero_point: Option<String>,
    /// The bias initializer, if the layer has a constant bias.
    pub bias: Option<String>,
    /// Levels `n` of the weight quantizer (`[-n, n]`).
    pub levels: i64,
}

/// Where one activation quantizer is in the exported model.
#[derive(Clone, Debug, PartialEq)]
pub struct ActExport {
    /// The activation point (key of `PassContext::ranges`).
    pub value: Value,
    /// The quantized tensor's name in the model (the float value before Q).
    pub tensor: String,
    pub scale: String,
    pub zero_point: String,
    /// Signed (`int8`, symmetric) or unsigned (`uint8`, from 0).
    pub signed: bool,
    /// Largest level (`qmax`; the levels are `[-qmax, qmax]` signed, `[0, qmax]` unsigned).
    pub qmax: i64,
    /// The range the stage had.
    pub range: Range,
    /// The exported scale.
    pub scale_value: f32,
}

/// Where the learnable quantities of a stage went.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ExportMap {
    pub layers: Vec<LayerExport>,
    pub acts: Vec<ActExport>,
}

/// An exported stage: the model and its map.
#[derive(Clone, Debug)]
pub struct QdqExport {
    pub model: ModelProto,
    pub map: ExportMap,
}

impl QdqExport {
    /// The serialized model.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.model.encode_to_vec()
    }
}

/// The activation quantizer fqc uses for `range` at `bits` (`quantize-activations`):
/// `(signed, qmax, scale)`: unsigned `[0, 2^b-1]` with `scale = hi/qmax` when `lo ≥ 0`,
/// else signed `[-qmax, qmax]`, `qmax = 2^(b-1)-1`, `scale = max(|lo|, hi)/qmax`.
pub fn act_quantizer(range: Range, bits: u8) -> Option<(bool, i64, f32)> {
    let signed = range.lo < 0.0;
    let (_, qmax) = DType::int(signed, bits)?.quant_range()?;
    let amax = if signed {
        range.lo.abs().max(range.hi)
    } else {
        range.hi
    };
    let scale = amax / qmax as f32;
    (scale.is_finite() && scale > 0.0).then_some((signed, qmax, scale))
}

/// The range that makes fqc's activation quantizer use `scale` (the inverse of
/// [`act_quantizer`]): `[0, qmax·s]` unsigned (keeping a non-negative `old_lo` below
/// the new top), `[-qmax·s, qmax·s]` signed. The quantizer's scale is then `scale` bit
/// for bit when an f32 top gives it, else the nearest f32 scale one does (within an ulp).
pub fn range_for_scale(signed: bool, qmax: i64, scale: f32, old_lo: f32) -> Option<Range> {
    if !(scale.is_finite() && scale > 0.0) {
        return None;
    }
    let q = qmax as f32;
    let guess = (f64::from(scale) * qmax as f64) as f32;
    // The top whose f32 division by qmax gives back `scale` bit for bit, or (when no
    // f32 top does, which happens: the tops near qmax·s are coarser than s's ulp
    // times qmax) the one giving the nearest scale.
    let mut candidates = vec![guess];
    let (mut up, mut down) = (guess, guess);
    for _ in 0..4 {
        up = up.next_up();
        down = down.next_down();
        candidates.extend([up, down]);
    }
    let hi = candidates
        .into_iter()
        .filter(|h| h.is_finite() && *h > 0.0)
        .min_by(|a, b| {
            let e = |h: f32| (f64::from(h / q) - f64::from(scale)).abs();
            e(*a).total_cmp(&e(*b))
        })
        .unwrap_or(guess);
    if !hi.is_finite() {
        return None;
    }
    let lo = if signed {
        -hi
    } else if (0.0..hi).contains(&old_lo) {
        old_lo
    } else {
        0.0
    };
    Some(Range { lo, hi })
}

/// Levels `n` of a weight quantizer (`[-n, n]`).
pub fn weight_levels(bits: WeightBits) -> i64 {
    match bits {
        WeightBits::Ternary => 1,
        WeightBits::Bits(b) => (1i64 << (b.clamp(2, 8) - 1)) - 1,
    }
}

/// Exports the stage `handle` shows (see the module docs).
pub fn export_stage(info: &StageInfo, handle: &StageHandle<'_>) -> Result<QdqExport, ExportError> {
    let master = handle.float_graph();
    let mut ex = Exporter::new(master);
    ex.model_name = format!("{}_stage{}_{}", master.name, info.index + 1, info.label);

    // Layers by node name, with their quantized weight.
    let mut layer_of_node: HashMap<String, usize> = HashMap::new();
    for (i, l) in handle.layers().iter().enumerate() {
        layer_of_node.insert(l.name.clone(), i);
    }
    // Activation points with their quantizers.
    let mut act_of: HashMap<Value, (bool, i64, f32, Range)> = HashMap::new();
    for a in handle.activations() {
        let Some(r) = handle.range(a.value) else {
            continue;
        };
        if let Some((signed, qmax, scale)) = act_quantizer(r, a.bits) {
            act_of.insert(a.value, (signed, qmax, scale, r));
        }
    }

    // Names: graph inputs, then weights (so they keep their source names), then biases.
    for &x in master.inputs() {
        ex.name(x);
    }
    for l in handle.layers() {
        let src = l
            .weight_name
            .clone()
            .unwrap_or_else(|| format!("{}.weight", l.name));
        let src = src.strip_suffix(".bn_folded").unwrap_or(&src).to_string();
        ex.claim(l.weight, &src);
    }
    for (_, d) in master.nodes() {
        if !layer_of_node.contains_key(&d.name) {
            continue;
        }
        let (Some(&w), Some(&b)) = (d.inputs.get(1), d.inputs.get(2)) else {
            continue;
        };
        if master.is_const(b) && !ex.names.contains_key(&b) {
            let wn = ex.names[&w].clone();
            let bn = match wn.strip_suffix(".weight") {
                Some(stem) => format!("{stem}.bias"),
                None => master
                    .value(b)
                    .name
                    .clone()
                    .unwrap_or_else(|| format!("{wn}.bias")),
            };
            let bn = bn.strip_suffix(".bn_folded").unwrap_or(&bn).to_string();
            ex.claim(b, &bn);
        }
    }

    // Graph inputs (and input activation points).
    for &x in master.inputs() {
        let name = ex.name(x);
        ex.graph.input.push(value_info(&name, master, x)?);
    }
    let mut emitted_acts: HashSet<Value> = HashSet::new();
    for &x in master.inputs() {
        if let Some(&(signed, qmax, scale, range)) = act_of.get(&x) {
            ex.act_qdq(x, signed, qmax, scale, range);
            emitted_acts.insert(x);
        }
    }

    for (_, d) in master.nodes() {
        let mut inputs: Vec<String> = Vec::with_capacity(d.inputs.len());
        for (k, &v) in d.inputs.iter().enumerate() {
            let layer = layer_of_node.get(&d.name).map(|&i| &handle.layers()[i]);
            if let (Some(l), 1) = (layer, k) {
                inputs.push(ex.weight_qdq(l, handle)?);
                continue;
            }
            if master.is_const(v) {
                ex.initializer(v, None)?;
            }
            inputs.push(ex.read(v));
        }
        if let Some(l) = layer_of_node.get(&d.name).map(|&i| &handle.layers()[i]) {
            let bias = d
                .inputs
                .get(2)
                .filter(|&&b| master.is_const(b))
                .map(|&b| ex.name(b));
            if let Some(le) = ex.map.layers.iter_mut().find(|e| e.layer == l.name) {
                le.bias = bias;
            }
        }
        ex.node(d, inputs)?;
        if let Some(&(signed, qmax, scale, range)) = act_of.get(&d.output) {
            if emitted_acts.insert(d.output) {
                ex.act_qdq(d.output, signed, qmax, scale, range);
            }
        }
    }
    for &y in master.outputs() {
        let name = ex.read(y);
        ex.graph.output.push(value_info(&name, master, y)?);
    }

    let mut graph = std::mem::take(&mut ex.graph);
    graph.name = Some(ex.model_name.clone());
    let meta = |k: &str, v: String| StringStringEntryProto {
        key: Some(k.to_string()),
        value: Some(v),
    };
    let model = ModelProto {
        ir_version: Some(IR_VERSION),
        opset_import: vec![OperatorSetIdProto {
            domain: Some(String::new()),
            version: Some(OPSET),
        }],
        producer_name: Some("fqc".into()),
        producer_version: Some(env!("CARGO_PKG_VERSION").into()),
        doc_string: Some(format!(
            "fqc stage {}/{} ({}) in QDQ form: edit initializer values only \
             (latent weights, biases, *_scale); the structure must stay as it is",
            info.index + 1,
            info.count,
            info.label
        )),
        graph: Some(graph),
        metadata_props: vec![
            meta("fqc.stage", info.label.clone()),
            meta("fqc.stage_index", info.index.to_string()),
            meta("fqc.stage_count", info.count.to_string()),
        ],
        ..ModelProto::default()
    };
    Ok(QdqExport { model, map: ex.map })
}

/// ONNX element type of tensor data.
pub fn data_type(d: &TensorData) -> DataType {
    match d {
        TensorData::F32(_) => DataType::Float,
        TensorData::I32(_) => DataType::Int32,
        TensorData::I64(_) => DataType::Int64,
        TensorData::I8(_) => DataType::Int8,
        TensorData::U8(_) => DataType::Uint8,
    }
}

/// A named `TensorProto` with the data as little-endian `raw_data`.
pub fn tensor_proto(name: &str, t: &Tensor) -> TensorProto {
    let mut raw = Vec::with_capacity(t.numel() * 4);
    match &t.data {
        TensorData::F32(v) => v
            .iter()
            .for_each(|x| raw.extend_from_slice(&x.to_le_bytes())),
        TensorData::I32(v) => v
            .iter()
            .for_each(|x| raw.extend_from_slice(&x.to_le_bytes())),
        TensorData::I64(v) => v
            .iter()
            .for_each(|x| raw.extend_from_slice(&x.to_le_bytes())),
        TensorData::I8(v) => raw.extend(v.iter().map(|&x| x as u8)),
        TensorData::U8(v) => raw.extend_from_slice(v),
    }
    TensorProto {
        dims: t.shape.iter().map(|&d| d as i64).collect(),
        data_type: Some(data_type(&t.data) as i32),
        name: Some(name.into()),
        raw_data: Some(raw),
        ..TensorProto::default()
    }
}

fn value_info(name: &str, g: &Graph, v: Value) -> Result<ValueInfoProto, ExportError> {
    let ty = g.ty(v);
    if ty.dtype != DType::F32 {
        return Err(err(format!(
            "graph input/output `{name}` is {}, not f32",
            ty.dtype
        )));
    }
    let dim = |d: &Dim| tensor_shape_proto::Dimension {
        value: Some(match d {
            Dim::Batch => tensor_shape_proto::dimension::Value::DimParam("N".into()),
            Dim::Fixed(n) => tensor_shape_proto::dimension::Value::DimValue(*n as i64),
        }),
        ..tensor_shape_proto::Dimension::default()
    };
    Ok(ValueInfoProto {
        name: Some(name.into()),
        r#type: Some(TypeProto {
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type: Some(DataType::Float as i32),
                shape: Some(TensorShapeProto {
                    dim: ty.shape.0.iter().map(dim).collect(),
                }),
            })),
            ..TypeProto::default()
        }),
        ..ValueInfoProto::default()
    })
}

/// Initializers of `model` by name.
pub fn initializers(model: &ModelProto) -> BTreeMap<&str, &TensorProto> {
    model
        .graph
        .as_ref()
        .map(|g| {
            g.initializer
                .iter()
                .map(|t| (t.name.as_deref().unwrap_or(""), t))
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_for_scale_inverts_the_activation_quantizer() {
        let (mut exact, mut total) = (0, 0);
        let mut s = 1e-4f32;
        while s < 1e3 {
            for bits in 2..=8u8 {
                for signed in [false, true] {
                    let (_, qmax) = DType::int(signed, bits).unwrap().quant_range().unwrap();
                    let r = range_for_scale(signed, qmax, s, 0.0).unwrap();
                    let (sg, qm, got) = act_quantizer(r, bits).unwrap();
                    assert_eq!((sg, qm), (signed, qmax));
                    assert!(
                        (got - s).abs() <= s * f32::EPSILON,
                        "s={s} got {got} bits={bits} signed={signed} r={r:?}"
                    );
                    exact += usize::from(got == s);
                    total += 1;
                }
            }
            s *= 1.37;
        }
        assert!(exact * 10 >= total * 9, "{exact} of {total} exact");
        assert!(range_for_scale(false, 255, 0.0, 0.0).is_none());
        assert!(range_for_scale(false, 255, f32::NAN, 0.0).is_none());
        // A non-negative lo below the new top is kept (it does not change the quantizer).
        let r = range_for_scale(false, 15, 0.1, 0.5).unwrap();
        assert_eq!(r.lo, 0.5);
    }

    #[test]
    fn weight_levels_match_fqc() {
        assert_eq!(weight_levels(WeightBits::Ternary), 1);
        assert_eq!(weight_levels(WeightBits::Bits(3)), 3);
        assert_eq!(weight_levels(WeightBits::Bits(8)), 127);
    }
}
