//! The closed set of operations fqc's IR knows, with their attributes.
//!
//! Attributes are fully resolved at import: `auto_pad` becomes explicit pads, Reshape's
//! `0`/`-1` become concrete extents, opset differences are normalised away. So an `Op`
//! alone (with its operand types) determines its semantics, which the reference
//! interpreter defines. `Op` is `Eq + Hash` (floats via [`F32`]) so it can map 1:1 onto
//! an egg `Language` later. Spatial ops are 2-D (NCHW): fqc targets 2-D CNNs.

use crate::types::{DType, Dim, F32};

/// 2-D window geometry shared by Conv and the pools.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Window {
    /// Kernel extent `[kh, kw]`.
    pub kernel: [u64; 2],
    pub strides: [u64; 2],
    /// `[top, left, bottom, right]`.
    pub pads: [u64; 4],
    pub dilations: [u64; 2],
    /// Output extent rounds up (pools only; Conv always rounds down).
    pub ceil_mode: bool,
}

impl Window {
    /// Output extent along spatial axis `axis` (0 = H, 1 = W) for input extent `input`,
    /// or None when the window does not fit (ONNX's formula, incl. ceil mode's rule that
    /// the last window must start inside the input or the left padding).
    pub fn output_extent(&self, axis: usize, input: u64) -> Option<u64> {
        // Checked arithmetic throughout: attributes come from untrusted files.
        let padded = input
            .checked_add(self.pads[axis])?
            .checked_add(self.pads[axis + 2])?;
        let eff = self.dilations[axis]
            .checked_mul(self.kernel[axis].checked_sub(1)?)?
            .checked_add(1)?;
        if padded < eff || self.strides[axis] == 0 {
            return None;
        }
        let span = padded - eff;
        let s = self.strides[axis];
        let mut out = if self.ceil_mode {
            span.div_ceil(s).checked_add(1)?
        } else {
            span / s + 1
        };
        if self.ceil_mode && (out - 1).checked_mul(s)? >= input + self.pads[axis] {
            out -= 1;
        }
        Some(out)
    }
}

/// Element-wise binary arithmetic with NumPy broadcasting.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BinaryOp {
    Add,
    Sub,
    Mul,
    Div,
}

impl BinaryOp {
    pub fn name(self) -> &'static str {
        match self {
            BinaryOp::Add => "add",
            BinaryOp::Sub => "sub",
            BinaryOp::Mul => "mul",
            BinaryOp::Div => "div",
        }
    }

    pub fn apply(self, a: f32, b: f32) -> f32 {
        match self {
            BinaryOp::Add => a + b,
            BinaryOp::Sub => a - b,
            BinaryOp::Mul => a * b,
            BinaryOp::Div => a / b,
        }
    }
}

/// An IR operation. Operand lists are documented per variant; every op has one result.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Op {
    /// `(x[N,C,H,W], w[M,C/group,kh,kw], bias[M]?)`.
    Conv {
        window: Window,
        group: u64,
    },
    /// Inference BatchNorm: `(x, scale[C], bias[C], mean[C], var[C])` over axis 1.
    BatchNorm {
        epsilon: F32,
    },
    Relu,
    /// `clamp(x, min, max)`; ±inf for an absent bound.
    Clip {
        min: F32,
        max: F32,
    },
    /// `(a, b)` with NumPy broadcasting.
    Binary(BinaryOp),
    /// Element-wise sum of any number (≥ 1) of same-shape or broadcastable operands.
    Sum,
    /// `(x[N,C,H,W])`; padding never wins the max.
    MaxPool {
        window: Window,
    },
    /// `(x[N,C,H,W])`; pads counted in the divisor iff `count_include_pad`.
    AveragePool {
        window: Window,
        count_include_pad: bool,
    },
    /// `(x[N,C,H,W]) -> [N,C,1,1]`.
    GlobalAveragePool,
    /// `(x[N,C,H,W]) -> [N,C,1,1]`.
    GlobalMaxPool,
    /// `alpha * A' B' + beta * C`: `(a[M,K] or [K,M], b, c?)` with C unidirectionally
    /// broadcast to `[M,N]`.
    Gemm {
        alpha: F32,
        beta: F32,
        trans_a: bool,
        trans_b: bool,
    },
    /// NumPy matmul of rank-≥1 operands with batch broadcasting.
    MatMul,
    /// `[d0..dk, ...] -> [d0*..*d(axis-1), d(axis)*..]`.
    Flatten {
        axis: u64,
    },
    /// Reshape to a resolved target (no 0 / -1 left); the element count is preserved.
    Reshape {
        shape: Vec<Dim>,
    },
    /// Concatenation of ≥ 1 operands along `axis`.
    Concat {
        axis: u64,
    },
    /// Softmax along one axis (opset ≥ 13 semantics; older forms are rewritten at import).
    Softmax {
        axis: u64,
    },
    /// Local response normalisation across channels.
    Lrn {
        size: u64,
        alpha: F32,
        beta: F32,
        bias: F32,
    },
    /// Axis permutation.
    Transpose {
        perm: Vec<u64>,
    },

    // ---- Quantization boundary (fake-quant graphs, and the ends of integer graphs) ----
    /// `(x: f32) -> dtype s=scale`: `q = clamp(round_half_even((x - offset) / scale),
    /// qmin, qmax)` with `(qmin, qmax) = dtype.quant_range()`, computed in f32. `offset`
    /// absorbs a preceding input normalisation (`Sub` of a constant).
    Quantize {
        dtype: DType,
        scale: F32,
        offset: F32,
    },
    /// `(q) -> f32 = q * s` with `s` from the operand's type (per tensor or per channel);
    /// or `(acc: i32, scale: f32[C], bias: f32[C]?) -> f32 = acc * scale[c] + bias[c]`
    /// over axis 1, the output boundary of an integer classifier. Computed in f32.
    Dequantize,

    // ---- Integer-only ops (after `integerize`) ----
    /// `(x: int, w: int|t2 [M,C/group,kh,kw], bias: i32[M]?) -> i32` accumulators;
    /// padding contributes 0 (quantized 0 is real 0: no zero points).
    QConv {
        window: Window,
        group: u64,
    },
    /// `(a: int [M,K], b: int|t2 [N,K] if trans_b else [K,N], bias: i32[N]?) -> i32 [M,N]`.
    QGemm {
        trans_b: bool,
    },
    /// Per-channel threshold requantization over axis 1:
    /// `(acc: i32, thresholds: i32[C, L], descending: i8[C]) -> dtype s=scale` with
    /// `L = qmax - qmin`; `y = qmin + #{k : thresholds[c,k] <= acc}` where
    /// `descending[c] == 0`, and `y = qmin + #{k : thresholds[c,k] >= acc}` otherwise.
    /// Any monotone map from accumulator to output level (folded BN, bias, ReLU clip,
    /// the next quantizer's scale) is exactly such a step function.
    Requantize {
        dtype: DType,
        scale: F32,
    },
    /// `(a: int, b: int, ka: i32[], kb: i32[]) -> i32 = a*ka + b*kb` (broadcasting like
    /// `add`): a residual join rescaled to a common integer scale.
    ScaledAdd,
    /// `(x: int) -> i32` window sums (pads contribute 0): integer average pooling
    /// before its divisor is folded into the following requantization.
    SumPool {
        window: Window,
    },
    /// `(x: int [N,C,H,W]) -> i32 [N,C,1,1]` sums.
    GlobalSumPool,
}

impl Op {
    /// Whether the op computes on floats: after `integerize` only the explicit boundary
    /// ops `quantize` / `dequantize` may remain of these, at the graph's ends.
    pub fn is_float_op(&self) -> bool {
        !matches!(
            self,
            Op::QConv { .. }
                | Op::QGemm { .. }
                | Op::Requantize { .. }
                | Op::ScaledAdd
                | Op::SumPool { .. }
                | Op::GlobalSumPool
                | Op::Quantize { .. }
                | Op::Dequantize
        )
    }

    /// The op's name in the text format.
    pub fn name(&self) -> &'static str {
        match self {
            Op::Conv { .. } => "conv",
            Op::BatchNorm { .. } => "batchnorm",
            Op::Relu => "relu",
            Op::Clip { .. } => "clip",
            Op::Binary(b) => b.name(),
            Op::Sum => "sum",
            Op::MaxPool { .. } => "maxpool",
            Op::AveragePool { .. } => "avgpool",
            Op::GlobalAveragePool => "global_avgpool",
            Op::GlobalMaxPool => "global_maxpool",
            Op::Gemm { .. } => "gemm",
            Op::MatMul => "matmul",
            Op::Flatten { .. } => "flatten",
            Op::Reshape { .. } => "reshape",
            Op::Concat { .. } => "concat",
            Op::Softmax { .. } => "softmax",
            Op::Lrn { .. } => "lrn",
            Op::Transpose { .. } => "transpose",
            Op::Quantize { .. } => "quantize",
            Op::Dequantize => "dequantize",
            Op::QConv { .. } => "qconv",
            Op::QGemm { .. } => "qgemm",
            Op::Requantize { .. } => "requantize",
            Op::ScaledAdd => "scaled_add",
            Op::SumPool { .. } => "sumpool",
            Op::GlobalSumPool => "global_sumpool",
        }
    }

    /// Allowed operand counts `(min, max)`; `None` max means unbounded.
    pub fn arity(&self) -> (usize, Option<usize>) {
        match self {
            Op::Conv { .. } => (2, Some(3)),
            Op::BatchNorm { .. } => (5, Some(5)),
            Op::Binary(_) | Op::MatMul => (2, Some(2)),
            Op::Gemm { .. } | Op::QConv { .. } | Op::QGemm { .. } => (2, Some(3)),
            Op::Dequantize => (1, Some(3)),
            Op::Requantize { .. } => (3, Some(3)),
            Op::ScaledAdd => (4, Some(4)),
            Op::Sum | Op::Concat { .. } => (1, None),
            _ => (1, Some(1)),
        }
    }
}
