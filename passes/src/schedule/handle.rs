//! The fine-tuning hook's contract: [`FineTune`], what it is told ([`StageInfo`]) and
//! what it may touch ([`StageHandle`]).
//!
//! A hook sees one stage at a time: the float master (the imported graph after BN
//! folding, which is what training should see, METHOD.md), the stage's fake-quant graph,
//! the layers (Conv/Gemm nodes with their latent float weights, bit widths and current
//! per-channel weight scales) and the activation quantization points (the values
//! `calibrate` found ranges for). It may replace latent weights, activation ranges and
//! per-channel weight scales, and layer biases; the driver then re-quantizes the stage
//! from them (without re-calibrating), so what the hook changed is what the next stage,
//! or the integer graph after the last stage, is built from. Biases are written into the
//! driver's float master (see `bias.rs`), so they hold for every later stage. Setters check shapes and values, so a hook
//! cannot make the driver produce an invalid graph.

use std::collections::BTreeMap;

use fqc_ir::{Graph, Tensor, Value};

use crate::context::{PassContext, QuantConfig, Range, WeightBits};
use crate::{PassError, Result};

/// Called after every stage of a schedule. Implementations: [`NoFineTune`] here
/// (post-training quantization); a built-in QAT trainer and an external-command hook
/// elsewhere, against this same trait.
pub trait FineTune {
    /// Fine-tunes stage `stage` through `handle`.
    fn after_stage(&mut self, stage: &StageInfo, handle: &mut StageHandle<'_>) -> Result<()>;
}

/// Post-training quantization: changes nothing.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoFineTune;

impl FineTune for NoFineTune {
    fn after_stage(&mut self, _stage: &StageInfo, _handle: &mut StageHandle<'_>) -> Result<()> {
        Ok(())
    }
}

/// Which stage a hook is called for.
#[derive(Clone, Debug, PartialEq)]
pub struct StageInfo {
    /// 0-based.
    pub index: usize,
    /// Number of stages in the schedule.
    pub count: usize,
    /// The stage's configuration (bits with per-layer overrides applied).
    pub config: QuantConfig,
    /// `wXaY` of the stage.
    pub label: String,
}

impl StageInfo {
    pub fn is_last(&self) -> bool {
        self.index + 1 == self.count
    }
}

/// Kind of a quantized layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LayerKind {
    Conv,
    Gemm,
}

/// A Conv/Gemm layer of the float master and how the stage quantized it.
#[derive(Clone, Debug, PartialEq)]
pub struct LayerInfo {
    /// The node name (the key of latent weights and per-layer overrides).
    pub name: String,
    pub kind: LayerKind,
    /// The weight operand in the float master.
    pub weight: Value,
    /// The weight's name in the source model (e.g. `conv1.weight`).
    pub weight_name: Option<String>,
    /// The weight's shape (`[M, C/group, kh, kw]` for Conv; Gemm's B as stored).
    pub weight_shape: Vec<usize>,
    /// Axis of the output channels in the weight (per-channel scales run along it).
    pub channel_axis: usize,
    /// Weight bits this stage.
    pub weights: WeightBits,
    /// Output activation bits this stage.
    pub out_bits: u8,
    /// Bits of the quantized input in the stage's graph, when the input is quantized.
    pub in_bits: Option<u8>,
    /// Multiply-accumulates per image.
    pub macs: u64,
    /// Fraction of the stage's integer weights that are zero (ternary sparsity).
    pub sparsity: Option<f64>,
    /// Whether `fold-batchnorm` folded a BatchNorm into this layer (its output channels
    /// are that BatchNorm's).
    pub batchnorm: bool,
}

/// An activation quantization point: a value of the float master with a clip range.
#[derive(Clone, Debug, PartialEq)]
pub struct ActPoint {
    /// The value (key of `PassContext::ranges`).
    pub value: Value,
    pub name: Option<String>,
    /// Whether it stands for a graph input (quantized at `input_bits`).
    pub is_input: bool,
    /// Quantizer bits this stage.
    pub bits: u8,
}

/// What a hook may read and change (see the module docs).
#[derive(Debug)]
pub struct StageHandle<'a> {
    pub(super) float: &'a Graph,
    pub(super) fake_quant: &'a Graph,
    pub(super) cx: &'a mut PassContext,
    pub(super) layers: &'a [LayerInfo],
    pub(super) acts: &'a [ActPoint],
    /// Current per-channel weight scales by layer (what the stage used, or set here).
    pub(super) scales: &'a mut BTreeMap<String, Vec<f32>>,
    /// Layers whose scales the hook set.
    pub(super) scales_set: &'a mut Vec<String>,
    /// Per-channel biases the hook set, by layer (applied to the master by the driver).
    pub(super) biases: &'a mut BTreeMap<String, Vec<f32>>,
    pub(super) changed: bool,
}

impl<'a> StageHandle<'a> {
    /// The float graph after BN folding (what training runs forward through).
    pub fn float_graph(&self) -> &Graph {
        self.float
    }

    /// The stage's fake-quant graph (quantizers inserted, BN/ReLU absorbed).
    pub fn fake_quant_graph(&self) -> &Graph {
        self.fake_quant
    }

    /// The stage's configuration.
    pub fn config(&self) -> &QuantConfig {
        &self.cx.config
    }

    /// Calibration batches (training data a trainer may reuse).
    pub fn calib_inputs(&self) -> &[Tensor] {
        &self.cx.calib_inputs
    }

    /// The Conv/Gemm layers in schedule order.
    pub fn layers(&self) -> &[LayerInfo] {
        self.layers
    }

    pub fn layer(&self, name: &str) -> Option<&LayerInfo> {
        self.layers.iter().find(|l| l.name == name)
    }

    /// The latent float weights of layer `name`.
    pub fn latent(&self, name: &str) -> Option<&Tensor> {
        self.cx.latent.get(name)
    }

    /// Replaces layer `name`'s latent weights (same shape, f32, finite).
    pub fn set_latent(&mut self, name: &str, w: Tensor) -> Result<()> {
        let layer = self.find(name)?;
        if w.shape != layer.weight_shape {
            return Err(usage(format!(
                "latent weights of `{name}`: shape {:?} given, the layer has {:?}",
                w.shape, layer.weight_shape
            )));
        }
        match w.as_f32() {
            Some(v) if v.iter().all(|x| x.is_finite()) => {}
            Some(_) => return Err(usage(format!("latent weights of `{name}` are not finite"))),
            None => return Err(usage(format!("latent weights of `{name}` must be f32"))),
        }
        self.cx.latent.insert(name.to_string(), w);
        self.changed = true;
        Ok(())
    }

    /// The activation quantization points, in value order.
    pub fn activations(&self) -> &[ActPoint] {
        self.acts
    }

    /// The clip range of activation `v`.
    pub fn range(&self, v: Value) -> Option<Range> {
        self.cx.ranges.get(&v).copied()
    }

    /// Sets the clip range of activation `v` (one of [`Self::activations`]); `lo < hi`,
    /// both finite.
    pub fn set_range(&mut self, v: Value, r: Range) -> Result<()> {
        if !self.acts.iter().any(|a| a.value == v) {
            return Err(usage(format!(
                "%{} is not an activation quantization point",
                v.0
            )));
        }
        if !(r.lo.is_finite() && r.hi.is_finite() && r.lo < r.hi) {
            return Err(usage(format!(
                "range [{}, {}] of %{}: need finite lo < hi",
                r.lo, r.hi, v.0
            )));
        }
        self.cx.ranges.insert(v, r);
        self.changed = true;
        Ok(())
    }

    /// The per-channel weight scales (real value of one integer step) of layer `name`.
    pub fn weight_scales(&self, name: &str) -> Option<&[f32]> {
        self.scales.get(name).map(Vec::as_slice)
    }

    /// Sets layer `name`'s per-channel weight scales (one per output channel, positive
    /// and finite). They hold while the layer's weight bits stay the same.
    pub fn set_weight_scales(&mut self, name: &str, scales: Vec<f32>) -> Result<()> {
        let layer = self.find(name)?;
        let channels = layer.weight_shape[layer.channel_axis];
        if scales.len() != channels {
            return Err(usage(format!(
                "weight scales of `{name}`: {} given, the layer has {channels} output channels",
                scales.len()
            )));
        }
        if !scales.iter().all(|s| s.is_finite() && *s > 0.0) {
            return Err(usage(format!(
                "weight scales of `{name}` must be positive and finite"
            )));
        }
        self.scales.insert(name.to_string(), scales);
        if !self.scales_set.iter().any(|n| n == name) {
            self.scales_set.push(name.to_string());
        }
        self.changed = true;
        Ok(())
    }

    /// The per-output-channel bias of layer `name` (what the hook set this stage, else
    /// the float master's; zeros for a layer without one), or `None` when the layer is
    /// unknown or its bias is not per channel (a Gemm with a full-matrix `C`).
    pub fn bias(&self, name: &str) -> Option<Vec<f32>> {
        match self.biases.get(name) {
            Some(b) => Some(b.clone()),
            None => super::bias::layer_bias(self.float, name),
        }
    }

    /// Sets layer `name`'s bias (one finite value per output channel). The driver writes
    /// it into its float master, so it holds for this and every later stage.
    pub fn set_bias(&mut self, name: &str, bias: Vec<f32>) -> Result<()> {
        let layer = self.find(name)?;
        let channels = layer.weight_shape[layer.channel_axis];
        if bias.len() != channels {
            return Err(usage(format!(
                "bias of `{name}`: {} given, the layer has {channels} output channels",
                bias.len()
            )));
        }
        if !bias.iter().all(|b| b.is_finite()) {
            return Err(usage(format!("bias of `{name}` is not finite")));
        }
        if super::bias::layer_bias(self.float, name).is_none() {
            return Err(usage(format!(
                "bias of `{name}`: the layer's bias is not per output channel"
            )));
        }
        self.biases.insert(name.to_string(), bias);
        self.changed = true;
        Ok(())
    }

    /// Whether the hook changed anything (the driver re-quantizes the stage if so).
    pub fn changed(&self) -> bool {
        self.changed
    }

    fn find(&self, name: &str) -> Result<&'a LayerInfo> {
        let layers: &'a [LayerInfo] = self.layers;
        layers.iter().find(|l| l.name == name).ok_or_else(|| {
            usage(format!(
                "no layer `{name}` (layers: {})",
                layers
                    .iter()
                    .map(|l| l.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        })
    }
}

fn usage(msg: String) -> PassError {
    PassError::Usage(msg)
}
