//! The element-wise functions of one tensor ([`UnaryOp`]) and their f32 semantics, as
//! ONNX defines each op (defaults are ONNX's; the importer resolves them).
//!
//! Each `apply` is the one definition the interpreter, the integerizer's tables (a
//! function of one quantized tensor is evaluated at every level) and the tests use.
//! Formulas are written in the numerically safe form ONNX Runtime uses where the naive
//! one overflows (`softplus` of a large input), and `erf` comes from `libm` so that
//! exact GELU gives the same bits on every machine.

crate::op_family! {
    /// An element-wise function of one tensor.
    pub enum UnaryOp {
        /// `x · clamp(x/6 + 1/2, 0, 1)`.
        HardSwish = "hard_swish",
        /// `clamp(alpha·x + beta, 0, 1)`.
        HardSigmoid { alpha: crate::F32, beta: crate::F32 } = "hard_sigmoid",
        /// `1 / (1 + e^−x)`.
        Sigmoid = "sigmoid",
        Tanh = "tanh",
        /// `x < 0 ? alpha·x : x`.
        LeakyRelu { alpha: crate::F32 } = "leaky_relu",
        /// `x < 0 ? alpha·(e^x − 1) : x`.
        Elu { alpha: crate::F32 } = "elu",
        /// `gamma · (x ≤ 0 ? alpha·(e^x − 1) : x)`.
        Selu { alpha: crate::F32, gamma: crate::F32 } = "selu",
        /// `ln(1 + e^x)`.
        Softplus = "softplus",
        /// `x/2 · (1 + erf(x/√2))`, or with `tanh` the tanh approximation
        /// `x/2 · (1 + tanh(√(2/π)·(x + 0.044715·x³)))`.
        Gelu { tanh: bool } = "gelu",
        Erf = "erf",
        /// `x · tanh(softplus(x))`.
        Mish = "mish",
        /// `x · sigmoid(alpha·x)` (SiLU for `alpha = 1`).
        Swish { alpha: crate::F32 } = "swish",
        Exp = "exp",
        Log = "log",
        Neg = "neg",
        Abs = "abs",
        Sqrt = "sqrt",
        Reciprocal = "reciprocal",
    }
}

fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

/// `ln(1 + e^x)` without overflow: `max(x, 0) + ln(1 + e^−|x|)`.
fn softplus(x: f32) -> f32 {
    x.max(0.0) + (-x.abs()).exp().ln_1p()
}

impl UnaryOp {
    /// The function at `x` (f32 arithmetic).
    pub fn apply(self, x: f32) -> f32 {
        match self {
            UnaryOp::HardSwish => x * (x / 6.0 + 0.5).clamp(0.0, 1.0),
            UnaryOp::HardSigmoid { alpha, beta } => (alpha.get() * x + beta.get()).clamp(0.0, 1.0),
            UnaryOp::Sigmoid => sigmoid(x),
            UnaryOp::Tanh => x.tanh(),
            UnaryOp::LeakyRelu { alpha } => {
                if x < 0.0 {
                    alpha.get() * x
                } else {
                    x
                }
            }
            UnaryOp::Elu { alpha } => {
                if x < 0.0 {
                    alpha.get() * x.exp_m1()
                } else {
                    x
                }
            }
            UnaryOp::Selu { alpha, gamma } => {
                if x <= 0.0 {
                    gamma.get() * (alpha.get() * x.exp() - alpha.get())
                } else {
                    gamma.get() * x
                }
            }
            UnaryOp::Softplus => softplus(x),
            UnaryOp::Gelu { tanh: false } => {
                0.5 * x * (1.0 + libm::erff(x * std::f32::consts::FRAC_1_SQRT_2))
            }
            UnaryOp::Gelu { tanh: true } => {
                let k = (2.0 / std::f32::consts::PI).sqrt();
                0.5 * x * (1.0 + (k * (x + 0.044715 * x * x * x)).tanh())
            }
            UnaryOp::Erf => libm::erff(x),
            UnaryOp::Mish => x * softplus(x).tanh(),
            UnaryOp::Swish { alpha } => x * sigmoid(alpha.get() * x),
            UnaryOp::Exp => x.exp(),
            UnaryOp::Log => x.ln(),
            UnaryOp::Neg => -x,
            UnaryOp::Abs => x.abs(),
            UnaryOp::Sqrt => x.sqrt(),
            UnaryOp::Reciprocal => 1.0 / x,
        }
    }

    /// Whether the function is non-decreasing in `x` (so a quantizer after it can be a
    /// threshold requantization of the operand's level).
    pub fn is_monotone(self) -> bool {
        match self {
            UnaryOp::HardSigmoid { alpha, .. } => alpha.get() >= 0.0,
            UnaryOp::LeakyRelu { alpha } | UnaryOp::Elu { alpha } => alpha.get() >= 0.0,
            UnaryOp::Selu { alpha, gamma } => alpha.get() >= 0.0 && gamma.get() >= 0.0,
            UnaryOp::Sigmoid
            | UnaryOp::Tanh
            | UnaryOp::Softplus
            | UnaryOp::Erf
            | UnaryOp::Exp
            | UnaryOp::Log
            | UnaryOp::Sqrt => true,
            UnaryOp::HardSwish
            | UnaryOp::Gelu { .. }
            | UnaryOp::Mish
            | UnaryOp::Swish { .. }
            | UnaryOp::Neg
            | UnaryOp::Abs
            | UnaryOp::Reciprocal => false,
        }
    }
}
