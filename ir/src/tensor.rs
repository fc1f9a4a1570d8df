//! Concrete tensors: constant payloads in the graph and the interpreter's values.
//!
//! Storage is plain row-major (C order) vectors. Low-bit integer types are held
//! unpacked, one per byte (`I8` for signed and ternary, `U8` for unsigned); packing is a
//! property of the `.fqc` artifact, not of the in-memory IR, so every op reads elements
//! directly. Digests identify large constants in the text format without printing them.

use crate::types::{DType, Shape};

/// Row-major element storage.
#[derive(Clone, Debug, PartialEq)]
pub enum TensorData {
    F32(Vec<f32>),
    I32(Vec<i32>),
    I64(Vec<i64>),
    I8(Vec<i8>),
    U8(Vec<u8>),
}

impl TensorData {
    pub fn len(&self) -> usize {
        match self {
            TensorData::F32(v) => v.len(),
            TensorData::I32(v) => v.len(),
            TensorData::I64(v) => v.len(),
            TensorData::I8(v) => v.len(),
            TensorData::U8(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether this storage can hold elements of `dtype`.
    pub fn holds(&self, dtype: DType) -> bool {
        matches!(
            (self, dtype),
            (TensorData::F32(_), DType::F32)
                | (TensorData::I32(_), DType::I32)
                | (TensorData::I64(_), DType::I64)
                | (
                    TensorData::I8(_),
                    DType::Int { signed: true, .. } | DType::Ternary
                )
                | (TensorData::U8(_), DType::Int { signed: false, .. })
        )
    }

    /// Stable tag used in digests.
    fn tag(&self) -> u8 {
        match self {
            TensorData::F32(_) => 1,
            TensorData::I32(_) => 2,
            TensorData::I64(_) => 3,
            TensorData::I8(_) => 4,
            TensorData::U8(_) => 5,
        }
    }
}

/// A concrete tensor with a fully known shape.
#[derive(Clone, Debug, PartialEq)]
pub struct Tensor {
    pub shape: Vec<usize>,
    pub data: TensorData,
}

impl Tensor {
    /// Builds an f32 tensor; None if the element count does not match the shape.
    pub fn f32(shape: Vec<usize>, data: Vec<f32>) -> Option<Tensor> {
        (shape.iter().product::<usize>() == data.len()).then_some(Tensor {
            shape,
            data: TensorData::F32(data),
        })
    }

    pub fn numel(&self) -> usize {
        self.data.len()
    }

    pub fn as_f32(&self) -> Option<&[f32]> {
        match &self.data {
            TensorData::F32(v) => Some(v),
            _ => None,
        }
    }

    pub fn as_i64(&self) -> Option<&[i64]> {
        match &self.data {
            TensorData::I64(v) => Some(v),
            _ => None,
        }
    }

    /// The first element that is NaN or infinite (its flat index and value), for f32
    /// tensors; None when every element is finite or the tensor is not f32.
    pub fn first_non_finite(&self) -> Option<(usize, f32)> {
        let v = self.as_f32()?;
        v.iter().position(|x| !x.is_finite()).map(|i| (i, v[i]))
    }

    /// The multi-index `[i0, i1, ...]` of flat (row-major) index `flat` in this shape.
    pub fn index_of(&self, flat: usize) -> Vec<usize> {
        let mut rest = flat;
        let mut idx = vec![0; self.shape.len()];
        for (k, &d) in self.shape.iter().enumerate().rev() {
            if d > 0 {
                idx[k] = rest % d;
                rest /= d;
            }
        }
        idx
    }

    /// The static shape of this tensor (all dimensions fixed).
    pub fn static_shape(&self) -> Shape {
        Shape::fixed(&self.shape.iter().map(|&d| d as u64).collect::<Vec<_>>())
    }

    /// FNV-1a-style 64-bit hash over the storage kind, shape and elements, one element
    /// (as its little-endian bit pattern) per step: identifies a constant in the text
    /// format; fast enough for half a gigabyte of weights.
    pub fn digest(&self) -> u64 {
        let mut h = Fnv::new();
        h.word(u64::from(self.data.tag()));
        for &d in &self.shape {
            h.word(d as u64);
        }
        match &self.data {
            TensorData::F32(v) => v.iter().for_each(|x| h.word(u64::from(x.to_bits()))),
            TensorData::I32(v) => v.iter().for_each(|&x| h.word(x as u32 as u64)),
            TensorData::I64(v) => v.iter().for_each(|&x| h.word(x as u64)),
            TensorData::I8(v) => v.iter().for_each(|&x| h.word(x as u8 as u64)),
            TensorData::U8(v) => v.iter().for_each(|&x| h.word(u64::from(x))),
        }
        h.0
    }
}

struct Fnv(u64);

impl Fnv {
    fn new() -> Fnv {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
    fn word(&mut self, w: u64) {
        self.0 ^= w;
        self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
    }
}
