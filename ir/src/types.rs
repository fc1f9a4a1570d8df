//! Element types, shapes and quantization scales: the static type of every IR value.
//!
//! Quantization lives in the type (DESIGN.md): a value of type `u4[N,16,32,32] s=0.031`
//! holds unsigned 4-bit integers whose real value is `q * 0.031`. Keeping the scale in
//! the type (not in side ops) is what lets later passes prove a graph integer-only by
//! looking at types alone. Only the batch dimension (axis 0) may be symbolic; every other
//! dimension is a known constant, so all shape arithmetic except the batch is exact at
//! compile time.

use std::fmt;
use std::hash::{Hash, Hasher};

/// An `f32` that compares and hashes by bit pattern, so attributes holding floats can
/// live in `Eq + Hash` ops (needed for egg languages and structural comparisons).
#[derive(Clone, Copy, Default)]
pub struct F32(pub f32);

impl F32 {
    pub fn get(self) -> f32 {
        self.0
    }
}

impl PartialEq for F32 {
    fn eq(&self, other: &Self) -> bool {
        self.0.to_bits() == other.0.to_bits()
    }
}
impl Eq for F32 {}
impl Hash for F32 {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.0.to_bits().hash(state)
    }
}
impl fmt::Debug for F32 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}
impl From<f32> for F32 {
    fn from(v: f32) -> Self {
        F32(v)
    }
}

/// Element type of a tensor.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DType {
    /// IEEE single precision: the float graph before quantization.
    F32,
    /// 32-bit integer: accumulators and biases of integer convolutions.
    I32,
    /// 64-bit integer: only shape tensors, which never survive import.
    I64,
    /// A `bits`-wide integer, 2..=8 bits, signed (two's complement range) or unsigned.
    Int { signed: bool, bits: u8 },
    /// Ternary weights {-1, 0, +1} (stored in two bits).
    Ternary,
}

impl DType {
    pub const U8: DType = DType::Int {
        signed: false,
        bits: 8,
    };
    pub const I8: DType = DType::Int {
        signed: true,
        bits: 8,
    };

    /// Builds a low-bit integer type, checking the width is 2..=8.
    pub fn int(signed: bool, bits: u8) -> Option<DType> {
        (2..=8)
            .contains(&bits)
            .then_some(DType::Int { signed, bits })
    }

    pub fn is_float(self) -> bool {
        matches!(self, DType::F32)
    }

    /// The inclusive range a *quantizer* producing this type clamps to (METHOD.md):
    /// signed `b`-bit is symmetric `[-(2^(b-1)-1), 2^(b-1)-1]` (ternary: `[-1, 1]`),
    /// unsigned is `[0, 2^b-1]`. None for floats and the wide integer types.
    pub fn quant_range(self) -> Option<(i64, i64)> {
        match self {
            DType::Int { signed: true, bits } => {
                let n = (1i64 << (bits - 1)) - 1;
                Some((-n, n))
            }
            DType::Int {
                signed: false,
                bits,
            } => Some((0, (1i64 << bits) - 1)),
            DType::Ternary => Some((-1, 1)),
            DType::F32 | DType::I32 | DType::I64 => None,
        }
    }

    /// Whether this is a low-bit quantized type (`u2..u8`, `i2..i8`, `t2`).
    pub fn is_low_bit(self) -> bool {
        matches!(self, DType::Int { .. } | DType::Ternary)
    }

    /// The inclusive integer range a value of this type can hold (None for floats).
    pub fn int_range(self) -> Option<(i64, i64)> {
        match self {
            DType::F32 => None,
            DType::I32 => Some((i32::MIN as i64, i32::MAX as i64)),
            DType::I64 => Some((i64::MIN, i64::MAX)),
            DType::Ternary => Some((-1, 1)),
            DType::Int { signed: true, bits } => {
                Some((-(1i64 << (bits - 1)), (1i64 << (bits - 1)) - 1))
            }
            DType::Int {
                signed: false,
                bits,
            } => Some((0, (1i64 << bits) - 1)),
        }
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DType::F32 => write!(f, "f32"),
            DType::I32 => write!(f, "i32"),
            DType::I64 => write!(f, "i64"),
            DType::Ternary => write!(f, "t2"),
            DType::Int { signed, bits } => write!(f, "{}{}", if *signed { 'i' } else { 'u' }, bits),
        }
    }
}

/// One dimension of a static shape: the symbolic batch or a known extent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Dim {
    /// The batch size `N`, bound when the graph runs. Only ever at axis 0.
    Batch,
    Fixed(u64),
}

impl Dim {
    pub fn fixed(self) -> Option<u64> {
        match self {
            Dim::Fixed(n) => Some(n),
            Dim::Batch => None,
        }
    }

    /// The extent once the batch size is known.
    pub fn resolve(self, batch: u64) -> u64 {
        match self {
            Dim::Fixed(n) => n,
            Dim::Batch => batch,
        }
    }
}

impl fmt::Display for Dim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Dim::Batch => write!(f, "N"),
            Dim::Fixed(n) => write!(f, "{n}"),
        }
    }
}

/// A static shape. The batch may appear only at axis 0 (checked by the verifier).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
pub struct Shape(pub Vec<Dim>);

impl Shape {
    pub fn fixed(dims: &[u64]) -> Shape {
        Shape(dims.iter().map(|&d| Dim::Fixed(d)).collect())
    }

    pub fn rank(&self) -> usize {
        self.0.len()
    }

    pub fn has_batch(&self) -> bool {
        self.0.contains(&Dim::Batch)
    }

    /// All extents if none is symbolic.
    pub fn as_fixed(&self) -> Option<Vec<u64>> {
        self.0.iter().map(|d| d.fixed()).collect()
    }

    /// Concrete extents for a bound batch size.
    pub fn resolve(&self, batch: u64) -> Vec<usize> {
        self.0.iter().map(|d| d.resolve(batch) as usize).collect()
    }

    /// Element count for a bound batch size, or None on overflow.
    pub fn numel(&self, batch: u64) -> Option<u64> {
        self.0
            .iter()
            .try_fold(1u64, |acc, d| acc.checked_mul(d.resolve(batch)))
    }

    /// Element count per batch item (product of fixed dims), or None on overflow.
    pub fn numel_per_item(&self) -> Option<u64> {
        self.numel(1)
    }
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[")?;
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                write!(f, ",")?;
            }
            write!(f, "{d}")?;
        }
        write!(f, "]")
    }
}

/// How a quantized tensor's integers map to reals (`real = q * scale`; zero point 0:
/// FQ-Conv's quantizers are symmetric for signed and clip at 0 for unsigned values).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Scale {
    /// One scale for the whole tensor.
    Tensor(F32),
    /// One scale per index along `axis` (e.g. per output channel of a weight), held
    /// in the graph constant `scales` (an `f32` vector of that axis' extent).
    Channel { axis: usize, scales: crate::Value },
}

/// The static type of a value: element type, shape and (for quantized types) scale.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TensorType {
    pub dtype: DType,
    pub shape: Shape,
    pub scale: Option<Scale>,
}

impl TensorType {
    pub fn new(dtype: DType, shape: Shape) -> TensorType {
        TensorType {
            dtype,
            shape,
            scale: None,
        }
    }

    pub fn f32(shape: Shape) -> TensorType {
        TensorType::new(DType::F32, shape)
    }
}
