//! What passes share besides the graph: the quantization configuration, calibration
//! inputs and the ranges calibration found, and the latent float weights the gradual
//! requantization driver keeps beside the quantized view.
//!
//! Side tables are keyed by [`Value`]: passes edit graphs in place (`add_node`,
//! `replace_uses`, `set_order`) and never renumber values, except `dce`, which runs last
//! and clears the tables it invalidates.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use fqc_ir::{Tensor, Value};

/// Bit width of a layer's weights.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum WeightBits {
    /// {-1, 0, +1} · α_c (METHOD.md's ternary rule).
    Ternary,
    /// Signed symmetric `b`-bit, 3..=8 (b = 2 is [`WeightBits::Ternary`]).
    Bits(u8),
}

impl WeightBits {
    /// Parses `ternary`, `t2`, or `2..8` (2 means ternary).
    pub fn parse(s: &str) -> Option<WeightBits> {
        match s {
            "ternary" | "t2" | "2" => Some(WeightBits::Ternary),
            _ => match s.parse::<u8>().ok()? {
                b @ 3..=8 => Some(WeightBits::Bits(b)),
                _ => None,
            },
        }
    }

    pub fn bits(self) -> u8 {
        match self {
            WeightBits::Ternary => 2,
            WeightBits::Bits(b) => b,
        }
    }
}

/// How calibration turns observed activations into a quantizer's clip range.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum CalibMethod {
    /// The observed min and max.
    MinMax,
    /// The given percentile of |x| (e.g. 99.99).
    Percentile(f32),
    /// The clip that minimises the quantization MSE on the observed histogram.
    Mse,
}

/// Bit widths for one layer (a Conv/Gemm node, by its name), overriding the defaults.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct LayerBits {
    pub weights: Option<WeightBits>,
    /// Bits of the layer's output activation quantizer.
    pub acts: Option<u8>,
}

/// The quantization settings of a compile (one stage of a schedule).
#[derive(Clone, Debug, PartialEq)]
pub struct QuantConfig {
    pub weights: WeightBits,
    /// Activation bits, 2..=8.
    pub act_bits: u8,
    /// Bits of the network input quantizer (8 by default).
    pub input_bits: u8,
    /// Per-layer overrides keyed by node name.
    pub per_layer: BTreeMap<String, LayerBits>,
    pub calib: CalibMethod,
    /// Refuse to keep float islands (constructs without an exact integer form):
    /// `integerize` fails instead of listing them.
    pub require_integer_only: bool,
}

impl Default for QuantConfig {
    fn default() -> Self {
        QuantConfig {
            weights: WeightBits::Bits(8),
            act_bits: 8,
            input_bits: 8,
            per_layer: BTreeMap::new(),
            calib: CalibMethod::Mse,
            require_integer_only: false,
        }
    }
}

impl QuantConfig {
    /// Weight bits of the layer named `node`.
    pub fn weights_for(&self, node: &str) -> WeightBits {
        self.per_layer
            .get(node)
            .and_then(|l| l.weights)
            .unwrap_or(self.weights)
    }

    /// Output activation bits of the layer named `node`.
    pub fn acts_for(&self, node: &str) -> u8 {
        self.per_layer
            .get(node)
            .and_then(|l| l.acts)
            .unwrap_or(self.act_bits)
    }
}

/// A quantizer's clip range found by calibration: real values in `[lo, hi]`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Range {
    pub lo: f32,
    pub hi: f32,
}

/// Everything passes share besides the graph.
#[derive(Debug, Default)]
pub struct PassContext {
    pub config: QuantConfig,
    /// Calibration input batches (f32, the model's input convention).
    pub calib_inputs: Vec<Tensor>,
    /// Clip ranges of activation values, set by `calibrate`.
    pub ranges: HashMap<Value, Range>,
    /// Latent float weights by layer (node name), kept by the gradual driver so each
    /// stage re-quantizes from full precision; `quantize-weights` reads them when set.
    pub latent: BTreeMap<String, Tensor>,
    /// Lines passes want in the compile report (e.g. which calibration method won).
    pub notes: Vec<String>,
    /// Conv/Gemm layers (node names) `fold-batchnorm` folded a BatchNorm into: a
    /// fine-tuner may train them with a BatchNorm again (batch statistics) before
    /// folding it back.
    pub batchnorm_folded: BTreeSet<String>,
}
