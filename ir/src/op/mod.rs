//! The closed set of operations fqc's IR knows, each described once.
//!
//! [`op_table!`] below is the one description of every op: its variant and attribute
//! fields (with how each field is encoded, `attr.rs`), its name in the text format, how
//! many operands it takes and its class. The enum, [`Op::name`], [`Op::arity`],
//! [`Op::class`], [`Op::attrs`] (what the text printer and the `.fqc` encoder write) and
//! [`Op::from_attrs`] (what the text parser and the `.fqc` decoder read) are generated
//! from it, so adding an op is one line here plus its semantics (type rule in `infer`,
//! kernel in the interpreter). Element-wise functions are families ([`BinaryOp`]): one
//! variant whose members each have their own name and attributes.
//!
//! Attributes are fully resolved at import: `auto_pad` becomes explicit pads, Reshape's
//! `0`/`-1` become concrete extents, opset differences are normalised away. So an `Op`
//! alone (with its operand types) determines its semantics, which the reference
//! interpreter defines. `Op` is `Eq + Hash` (floats via [`F32`]) so it can map 1:1 onto
//! an egg `Language`. Spatial ops are 2-D (NCHW): fqc targets 2-D CNNs.

pub mod attr;

use crate::types::{DType, Dim, F32};

pub use attr::{Attr, AttrSource, Attrs, Family, Field};

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

crate::op_family! {
    /// Element-wise binary arithmetic with NumPy broadcasting.
    pub enum BinaryOp {
        Add = "add",
        Sub = "sub",
        Mul = "mul",
        Div = "div",
        /// ONNX `Min`/`Max` of two operands (NaN propagates, as ONNX Runtime does).
        Min = "min",
        Max = "max",
        Pow = "pow",
    }
}

impl BinaryOp {
    pub fn apply(self, a: f32, b: f32) -> f32 {
        match self {
            BinaryOp::Add => a + b,
            BinaryOp::Sub => a - b,
            BinaryOp::Mul => a * b,
            BinaryOp::Div => a / b,
            BinaryOp::Min if a.is_nan() || b.is_nan() => f32::NAN,
            BinaryOp::Min => a.min(b),
            BinaryOp::Max if a.is_nan() || b.is_nan() => f32::NAN,
            BinaryOp::Max => a.max(b),
            BinaryOp::Pow => a.powf(b),
        }
    }
}

pub use unary::UnaryOp;

/// Element-wise functions of one tensor: the activations CNNs use, defined in
/// `unary.rs` as ONNX defines them.
pub mod unary;

/// How `pad` fills the border (ONNX `Pad` modes).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PadMode {
    /// The attribute `value` (for integer operands, a level).
    Constant,
    /// Mirror without repeating the edge: `[1,2,3]` padded by 2 is `3,2,1,2,3,2,1`.
    Reflect,
    /// Repeat the edge element.
    Edge,
}

impl attr::Choice for PadMode {
    const CHOICES: &'static [(&'static str, Self)] = &[
        ("constant", PadMode::Constant),
        ("reflect", PadMode::Reflect),
        ("edge", PadMode::Edge),
    ];
}

/// What `reduce` computes over its axes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ReduceKind {
    Mean,
    Max,
    Min,
    Sum,
}

impl attr::Choice for ReduceKind {
    const CHOICES: &'static [(&'static str, Self)] = &[
        ("mean", ReduceKind::Mean),
        ("max", ReduceKind::Max),
        ("min", ReduceKind::Min),
        ("sum", ReduceKind::Sum),
    ];
}

/// `resize`'s interpolation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ResizeMode {
    Nearest,
    Linear,
}

impl attr::Choice for ResizeMode {
    const CHOICES: &'static [(&'static str, Self)] = &[
        ("nearest", ResizeMode::Nearest),
        ("linear", ResizeMode::Linear),
    ];
}

/// ONNX Resize's `coordinate_transformation_mode`: where output pixel `x` samples the
/// input (`s` the scale, `lin`/`lout` the input/output lengths).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CoordMode {
    /// `(x + 0.5) / s − 0.5`
    HalfPixel,
    /// as half_pixel, but `0` when `lout == 1`
    PytorchHalfPixel,
    /// `x / s`
    Asymmetric,
    /// `x · (lin − 1) / (lin·s − 1)` (`0` when `lout == 1`)
    AlignCorners,
    /// `(x + 0.5) / s` (TensorFlow's nearest neighbour)
    TfHalfPixelForNn,
}

impl attr::Choice for CoordMode {
    const CHOICES: &'static [(&'static str, Self)] = &[
        ("half_pixel", CoordMode::HalfPixel),
        ("pytorch_half_pixel", CoordMode::PytorchHalfPixel),
        ("asymmetric", CoordMode::Asymmetric),
        ("align_corners", CoordMode::AlignCorners),
        ("tf_half_pixel_for_nn", CoordMode::TfHalfPixelForNn),
    ];
}

/// ONNX Resize's `nearest_mode`: how a fractional source coordinate picks a pixel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NearestMode {
    RoundPreferFloor,
    RoundPreferCeil,
    Floor,
    Ceil,
}

impl attr::Choice for NearestMode {
    const CHOICES: &'static [(&'static str, Self)] = &[
        ("round_prefer_floor", NearestMode::RoundPreferFloor),
        ("round_prefer_ceil", NearestMode::RoundPreferCeil),
        ("floor", NearestMode::Floor),
        ("ceil", NearestMode::Ceil),
    ];
}

crate::choice_field!(PadMode, ReduceKind, ResizeMode, CoordMode, NearestMode);

/// What an op computes on (see [`Op::is_float_op`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpClass {
    /// Float arithmetic (the imported network, fake-quant graphs).
    Float,
    /// Moves or selects elements without arithmetic: runs on floats and on integers.
    Layout,
    /// The quantization boundary: `quantize`, `dequantize`.
    Boundary,
    /// Integer arithmetic after `integerize`.
    Integer,
}

/// Encodes field `$f` of type `$t` (by its [`Field`] impl, or by the codec module).
macro_rules! put_field {
    ($v:expr, $key:expr, $out:expr, $t:ty) => {
        <$t as attr::Field>::put($v, $key, $out)
    };
    ($v:expr, $key:expr, $out:expr, $t:ty, $codec:ident) => {
        attr::$codec::put($v, $key, $out)
    };
}

/// Decodes field `$f` of type `$t` (by its [`Field`] impl, or by the codec module).
macro_rules! take_field {
    ($key:expr, $src:expr, $t:ty) => {
        <$t as attr::Field>::take($key, $src)
    };
    ($key:expr, $src:expr, $t:ty, $codec:ident) => {
        attr::$codec::take($key, $src)
    };
}

/// The op table: generates [`Op`] and its description methods (see the module docs).
macro_rules! op_table {
    (
        simple {$(
            $(#[$meta:meta])*
            $V:ident $({ $($f:ident : $t:ty $(as $codec:ident)?),* $(,)? })?
                => $name:literal, args($min:expr, $max:expr), $class:ident;
        )*}
        families {$(
            $(#[$fmeta:meta])*
            $FV:ident($Fam:ty), args($fmin:expr, $fmax:expr), $fclass:ident;
        )*}
    ) => {
        /// An IR operation. Operand lists are documented per variant; every op has one
        /// result.
        #[derive(Clone, Debug, PartialEq, Eq, Hash)]
        pub enum Op {
            $( $(#[$meta])* $V $({ $($f: $t),* })?, )*
            $( $(#[$fmeta])* $FV($Fam), )*
        }

        impl Op {
            /// The op's name in the text format.
            pub fn name(&self) -> &'static str {
                match self {
                    $( Op::$V { .. } => $name, )*
                    $( Op::$FV(x) => x.name(), )*
                }
            }

            /// Allowed operand counts `(min, max)`; `None` max means unbounded.
            pub fn arity(&self) -> (usize, Option<usize>) {
                match self {
                    $( Op::$V { .. } => ($min, $max), )*
                    $( Op::$FV(_) => ($fmin, $fmax), )*
                }
            }

            /// What the op computes on.
            pub fn class(&self) -> OpClass {
                match self {
                    $( Op::$V { .. } => OpClass::$class, )*
                    $( Op::$FV(_) => OpClass::$fclass, )*
                }
            }

            /// Every attribute, in the order [`Op::from_attrs`] reads them.
            #[allow(unused_variables)]
            pub fn attrs(&self) -> Attrs {
                let mut out = Vec::new();
                match self {
                    $( Op::$V $({ $($f),* })? => {
                        $($( put_field!($f, stringify!($f), &mut out, $t $(, $codec)?); )*)?
                    } )*
                    $( Op::$FV(x) => attr::Family::put_attrs(x, &mut out), )*
                }
                out
            }

            /// The op named `name` with attributes read from `src` (the inverse of
            /// [`Op::name`] and [`Op::attrs`]).
            #[allow(unused_variables)]
            pub fn from_attrs(name: &str, src: &mut dyn AttrSource) -> Result<Op, String> {
                $(
                    if name == $name {
                        return Ok(Op::$V $({ $($f: take_field!(stringify!($f), src, $t $(, $codec)?)?),* })?);
                    }
                )*
                $(
                    if let Some(r) = <$Fam as attr::Family>::take(name, src) {
                        return r.map(Op::$FV);
                    }
                )*
                Err(format!("unknown op `{name}`"))
            }

            /// Every op name (the text format's vocabulary).
            pub fn names() -> Vec<&'static str> {
                let mut v = vec![$($name),*];
                $( v.extend_from_slice(<$Fam as attr::Family>::NAMES); )*
                v
            }
        }
    };
}

op_table! {
    simple {
        /// `(x[N,C,H,W], w[M,C/group,kh,kw], bias[M]?)`.
        Conv { window: Window as conv_window, group: u64 } => "conv", args(2, Some(3)), Float;
        /// Inference BatchNorm: `(x, scale[C], bias[C], mean[C], var[C])` over axis 1.
        BatchNorm { epsilon: F32 } => "batchnorm", args(5, Some(5)), Float;
        Relu => "relu", args(1, Some(1)), Float;
        /// `clamp(x, min, max)`; ±inf for an absent bound.
        Clip { min: F32, max: F32 } => "clip", args(1, Some(1)), Float;
        /// Element-wise sum of any number (≥ 1) of same-shape or broadcastable operands.
        Sum => "sum", args(1, None), Float;
        /// `(x[N,C,H,W])`; padding never wins the max.
        MaxPool { window: Window as pool_window } => "maxpool", args(1, Some(1)), Layout;
        /// `(x[N,C,H,W])`; pads counted in the divisor iff `count_include_pad`.
        AveragePool { window: Window as pool_window, count_include_pad: bool }
            => "avgpool", args(1, Some(1)), Float;
        /// `(x[N,C,H,W]) -> [N,C,1,1]`.
        GlobalAveragePool => "global_avgpool", args(1, Some(1)), Float;
        /// `(x[N,C,H,W]) -> [N,C,1,1]`.
        GlobalMaxPool => "global_maxpool", args(1, Some(1)), Layout;
        /// `alpha * A' B' + beta * C`: `(a[M,K] or [K,M], b, c?)` with C unidirectionally
        /// broadcast to `[M,N]`.
        Gemm { alpha: F32, beta: F32, trans_a: bool, trans_b: bool }
            => "gemm", args(2, Some(3)), Float;
        /// NumPy matmul of rank-≥1 operands with batch broadcasting.
        MatMul => "matmul", args(2, Some(2)), Float;
        /// `[d0..dk, ...] -> [d0*..*d(axis-1), d(axis)*..]`.
        Flatten { axis: u64 } => "flatten", args(1, Some(1)), Layout;
        /// Reshape to a resolved target (no 0 / -1 left); the element count is preserved.
        Reshape { shape: Vec<Dim> } => "reshape", args(1, Some(1)), Layout;
        /// Concatenation of ≥ 1 operands along `axis`.
        Concat { axis: u64 } => "concat", args(1, None), Layout;
        /// Softmax along one axis (opset ≥ 13 semantics; older forms are rewritten at
        /// import).
        Softmax { axis: u64 } => "softmax", args(1, Some(1)), Float;
        /// Local response normalisation across channels.
        Lrn { size: u64, alpha: F32, beta: F32, bias: F32 } => "lrn", args(1, Some(1)), Float;
        /// Axis permutation.
        Transpose { perm: Vec<u64> } => "transpose", args(1, Some(1)), Layout;
        /// `(x, slope)`: `x < 0 ? slope·x : x`, the slope broadcast to `x` (ONNX PRelu).
        PRelu => "prelu", args(2, Some(2)), Float;
        /// Pads every axis: `pads` holds the `rank` begin counts, then the `rank` end
        /// counts. `value` fills in `constant` mode (on an integer operand: a level).
        Pad { pads: Vec<u64>, mode: PadMode, value: F32 } => "pad", args(1, Some(1)), Layout;
        /// Reduces over `axes` (sorted, distinct), keeping them as 1s when `keepdims`.
        Reduce { kind: ReduceKind, axes: Vec<u64>, keepdims: bool } => "reduce", args(1, Some(1)), Float;
        /// Elements `starts[i], starts[i] + steps[i], ...` (exclusive of `ends[i]`) of each
        /// axis `axes[i]`, as ONNX Slice once its bounds are clamped: `starts` within the
        /// axis, `ends` in `-1..=extent`, steps non-zero (negative walks backwards).
        Slice { axes: Vec<u64>, starts: Vec<i64>, ends: Vec<i64>, steps: Vec<i64> }
            => "slice", args(1, Some(1)), Layout;
        /// `(data, indices: i64)`: ONNX Gather along `axis`; indices are non-negative and
        /// in range (resolved at import).
        Gather { axis: u64 } => "gather", args(2, Some(2)), Layout;
        /// Broadcast to `shape` (NumPy rules; the result shape).
        Expand { shape: Vec<Dim> } => "expand", args(1, Some(1)), Layout;
        /// Repeats axis `i` `repeats[i]` times.
        Tile { repeats: Vec<u64> } => "tile", args(1, Some(1)), Layout;
        /// Resizes the spatial axes (2, 3) of an NCHW tensor to `size` = `[h, w]`, output
        /// pixel `x` sampling input coordinate `coord(x)` with scales `scales` (ONNX
        /// Resize; `linear` is bilinear).
        Resize {
            mode: ResizeMode,
            coord: CoordMode,
            nearest: NearestMode,
            size: Vec<u64>,
            scale_h: F32,
            scale_w: F32,
        } => "resize", args(1, Some(1)), Float;

        // ---- Quantization boundary (fake-quant graphs, and the ends of integer graphs) ----
        /// `(x: f32) -> dtype s=scale`: `q = clamp(round_half_even((x - offset) / scale),
        /// qmin, qmax)` with `(qmin, qmax) = dtype.quant_range()`, computed in f32.
        /// `offset` absorbs a preceding input normalisation (`Sub` of a constant).
        Quantize { dtype: DType, scale: F32, offset: F32 } => "quantize", args(1, Some(1)), Boundary;
        /// `(q) -> f32 = q * s` with `s` from the operand's type (per tensor or per
        /// channel); or `(acc: i32, scale: f32[C], bias: f32[C]?) -> f32 = acc * scale[c] +
        /// bias[c]` over axis 1, the output boundary of an integer classifier. Computed in
        /// f32.
        Dequantize => "dequantize", args(1, Some(3)), Boundary;

        // ---- Integer-only ops (after `integerize`) ----
        /// `(x: int, w: int|t2 [M,C/group,kh,kw], bias: i32[M]?) -> i32` accumulators;
        /// padding contributes 0 (quantized 0 is real 0: no zero points).
        QConv { window: Window as conv_window, group: u64 } => "qconv", args(2, Some(3)), Integer;
        /// `(a: int [M,K], b: int|t2 [N,K] if trans_b else [K,N], bias: i32[N]?) -> i32
        /// [M,N]`.
        QGemm { trans_b: bool } => "qgemm", args(2, Some(3)), Integer;
        /// Per-channel threshold requantization over axis 1:
        /// `(acc: i32, thresholds: i32[C, L], descending: i8[C]) -> dtype s=scale` with
        /// `L = qmax - qmin`; `y = qmin + #{k : thresholds[c,k] <= acc}` where
        /// `descending[c] == 0`, and `y = qmin + #{k : thresholds[c,k] >= acc}` otherwise.
        /// Any monotone map from accumulator to output level (folded BN, bias, ReLU clip,
        /// the next quantizer's scale) is exactly such a step function.
        Requantize { dtype: DType, scale: F32 } => "requantize", args(3, Some(3)), Integer;
        /// `(a: int, b: int, ka: i32[], kb: i32[]) -> i32 = a*ka + b*kb` (broadcasting like
        /// `add`): a residual join rescaled to a common integer scale.
        ScaledAdd => "scaled_add", args(4, Some(4)), Integer;
        /// `(x: int) -> i32` window sums (pads contribute 0): integer average pooling
        /// before its divisor is folded into the following requantization.
        SumPool { window: Window as pool_window } => "sumpool", args(1, Some(1)), Integer;
        /// `(x: int [N,C,H,W]) -> i32 [N,C,1,1]` sums.
        GlobalSumPool => "global_sumpool", args(1, Some(1)), Integer;
        /// `(x: low-bit, table: dtype [L] or [C, L]) -> dtype s=scale`: each element's
        /// level `q` becomes `table[q − qmin(x)]` (of its channel, axis 1, for a `[C, L]`
        /// table), `L = qmax(x) − qmin(x) + 1`. Any function of one quantized tensor
        /// (hard-swish, sigmoid, a rescale to another scale, ...) is exactly such a table.
        Table { dtype: DType, scale: F32 } => "table", args(2, Some(2)), Integer;
        /// `(a: int, b: int) -> i32 = a·b` with broadcasting: the product of two quantized
        /// tensors (a squeeze-and-excitation gate), or of sums and integer weights.
        QMul => "qmul", args(2, Some(2)), Integer;
    }
    families {
        /// `(a, b)` with NumPy broadcasting.
        Binary(BinaryOp), args(2, Some(2)), Float;
        /// `(x)`: an element-wise function.
        Unary(UnaryOp), args(1, Some(1)), Float;
    }
}

impl Op {
    /// Whether the op computes on floats when its operands are floats: after
    /// `integerize` only the explicit boundary ops `quantize` / `dequantize` may remain
    /// of these, at the graph's ends (layout ops count: on floats they are float ops).
    pub fn is_float_op(&self) -> bool {
        matches!(self.class(), OpClass::Float | OpClass::Layout)
    }
}
