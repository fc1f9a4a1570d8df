//! Packing of constant payloads: how a tensor's elements are laid out as bytes in a
//! `.fqc` file.
//!
//! * `f32`, `i32`, `i64`: each element as its little-endian bytes (`f32` by bit
//!   pattern, so every float incl. NaN payloads round-trips).
//! * `uB` / `iB` (B = 2..=8) and ternary `t2` (B = 2): element `i` occupies bits
//!   `[i*B, (i+1)*B)` of one little-endian bit stream (stream bit `k` is bit `k % 8` of
//!   byte `k / 8`), so elements may straddle bytes; signed values are stored as their
//!   B-bit two's complement (ternary: `-1 = 0b11`, `0 = 0b00`, `+1 = 0b01`). The stream
//!   is padded with zero bits to a whole byte.
//!
//! The in-memory IR keeps low-bit elements one per byte (`TensorData::I8` for signed and
//! ternary, `U8` for unsigned): packing is a property of the file only.
//!
//! Why it is exact: packing checks that every element lies in the dtype's range, so its
//! B low bits determine it (a two's-complement value in `[-2^(B-1), 2^(B-1))` is
//! recovered by sign extension; an unsigned one in `[0, 2^B)` by masking). Unpacking is
//! strict, so a packed stream has exactly one decoding and corruption is reported rather
//! than absorbed: the byte length must be exactly `ceil(n*B/8)` (checked before any
//! allocation, so the output size is bounded by the input size), padding bits must be
//! zero, and the ternary code `0b10` (which would be -2) is rejected.

use fqc_ir::{DType, TensorData};

/// Why a payload could not be packed or unpacked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PackError {
    /// The in-memory storage kind cannot hold the dtype's elements.
    #[error("{dtype} elements cannot be stored in {storage} storage")]
    Storage { dtype: DType, storage: &'static str },
    /// An element lies outside the dtype's range (packing would lose it).
    #[error("element {value} at index {index} is out of range for {dtype}")]
    OutOfRange {
        dtype: DType,
        index: usize,
        value: i64,
    },
    /// The packed byte count is not exactly what `n` elements need.
    #[error("payload of {dtype}[{count} elements] must be {expected} bytes, found {found}")]
    Length {
        dtype: DType,
        count: u64,
        expected: u64,
        found: u64,
    },
    /// The element count times the element width overflows.
    #[error("payload of {count} {dtype} elements is too large")]
    Overflow { dtype: DType, count: u64 },
    /// The bits after the last element are not zero.
    #[error("nonzero padding bits after the last {dtype} element")]
    Padding { dtype: DType },
    /// A ternary element has the unused code `0b10`.
    #[error("ternary element {index} has the invalid code 0b10")]
    TernaryCode { index: usize },
    /// The payload's encoding does not apply to its dtype.
    #[error("the {encoding} payload encoding does not apply to {dtype}")]
    Encoding {
        dtype: DType,
        encoding: &'static str,
    },
    /// A base-3 ternary byte is not below `3^digits` (243 for a full byte).
    #[error("ternary byte {index} has the invalid base-3 value {byte}")]
    TritByte { index: usize, byte: u8 },
    /// The payload ends inside an element or a header field.
    #[error("payload of {dtype} ends early")]
    Truncated { dtype: DType },
    /// Bytes remain after the last element.
    #[error("{extra} bytes after the last {dtype} element")]
    Trailing { dtype: DType, extra: u64 },
    /// A varint is longer than 5 bytes, overflows `u32` or is not in shortest form.
    #[error("malformed varint in a {dtype} payload")]
    Varint { dtype: DType },
    /// A bit width is not in `1..=32`.
    #[error("bit width {width} in a {dtype} payload is not in 1..=32")]
    Width { dtype: DType, width: u32 },
    /// The payload is too short to hold the declared element count (checked before
    /// allocating).
    #[error("a payload of {found} bytes cannot hold {count} {dtype} elements")]
    Short {
        dtype: DType,
        count: u64,
        found: u64,
    },
    /// The element count is not a whole number of rows.
    #[error("{count} elements are not a whole number of rows of {row_len}")]
    Rows { count: u64, row_len: u64 },
}

/// Bits one element of `dtype` takes in a packed payload.
pub fn element_bits(dtype: DType) -> u32 {
    match dtype {
        DType::F32 | DType::I32 => 32,
        DType::I64 => 64,
        DType::Int { bits, .. } => u32::from(bits),
        DType::Ternary => 2,
    }
}

/// Bytes `count` packed elements of `dtype` take, or None on overflow.
pub fn packed_len(dtype: DType, count: u64) -> Option<u64> {
    count
        .checked_mul(u64::from(element_bits(dtype)))
        .map(|b| b.div_ceil(8))
}

fn storage_name(d: &TensorData) -> &'static str {
    match d {
        TensorData::F32(_) => "f32",
        TensorData::I32(_) => "i32",
        TensorData::I64(_) => "i64",
        TensorData::I8(_) => "i8",
        TensorData::U8(_) => "u8",
    }
}

/// Packs `data` as elements of `dtype` (see the module docs for the layout).
pub fn pack(dtype: DType, data: &TensorData) -> Result<Vec<u8>, PackError> {
    if !data.holds(dtype) {
        return Err(PackError::Storage {
            dtype,
            storage: storage_name(data),
        });
    }
    Ok(match data {
        TensorData::F32(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        TensorData::I32(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        TensorData::I64(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        TensorData::I8(v) => pack_bits(dtype, v.iter().map(|&x| i64::from(x)), v.len())?,
        TensorData::U8(v) => pack_bits(dtype, v.iter().map(|&x| i64::from(x)), v.len())?,
    })
}

/// Bit-packs low-bit `values` (range-checked) at the dtype's width.
fn pack_bits(
    dtype: DType,
    values: impl Iterator<Item = i64> + Clone,
    count: usize,
) -> Result<Vec<u8>, PackError> {
    let bits = element_bits(dtype);
    let (lo, hi) = dtype.int_range().unwrap_or((0, 0));
    let mask = (1u64 << bits) - 1;
    let len = packed_len(dtype, count as u64).ok_or(PackError::Overflow {
        dtype,
        count: count as u64,
    })?;
    if let Some((index, value)) = values.clone().enumerate().find(|&(_, v)| v < lo || v > hi) {
        return Err(PackError::OutOfRange {
            dtype,
            index,
            value,
        });
    }
    let mut out = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
    put_bits(&mut out, values.map(|v| (v as u64 & mask) as u32), bits);
    Ok(out)
}

/// Unpacks `count` elements of `dtype` from exactly `bytes` into the IR's storage for
/// that dtype. The length is checked before anything is allocated.
pub fn unpack(dtype: DType, count: u64, bytes: &[u8]) -> Result<TensorData, PackError> {
    let expected = packed_len(dtype, count).ok_or(PackError::Overflow { dtype, count })?;
    if bytes.len() as u64 != expected {
        return Err(PackError::Length {
            dtype,
            count,
            expected,
            found: bytes.len() as u64,
        });
    }
    Ok(match dtype {
        DType::F32 => TensorData::F32(
            bytes
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
        ),
        DType::I32 => TensorData::I32(
            bytes
                .chunks_exact(4)
                .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
        ),
        DType::I64 => TensorData::I64(
            bytes
                .chunks_exact(8)
                .map(|c| i64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
                .collect(),
        ),
        DType::Int { signed: false, .. } => {
            TensorData::U8(unpack_bits(dtype, count, bytes)?.map(|v| v as u8).collect())
        }
        DType::Int { signed: true, .. } | DType::Ternary => {
            let mut out = Vec::with_capacity(count as usize);
            for (index, v) in unpack_bits(dtype, count, bytes)?.enumerate() {
                if dtype == DType::Ternary && v == -2 {
                    return Err(PackError::TernaryCode { index });
                }
                out.push(v as i8);
            }
            TensorData::I8(out)
        }
    })
}

/// The `count` elements of a bit-packed stream of exact length, sign-extended for
/// signed and ternary dtypes; fails if the padding bits are not zero.
fn unpack_bits(
    dtype: DType,
    count: u64,
    bytes: &[u8],
) -> Result<impl Iterator<Item = i64> + '_, PackError> {
    let bits = element_bits(dtype);
    let signed = matches!(dtype, DType::Int { signed: true, .. } | DType::Ternary);
    // Padding: the bits of the last byte above the last element must be zero.
    let used = (count * u64::from(bits)) % 8;
    if used != 0 {
        if let Some(&last) = bytes.last() {
            if last >> used != 0 {
                return Err(PackError::Padding { dtype });
            }
        }
    }
    let mask = (1u64 << bits) - 1;
    let shift = 64 - bits;
    Ok((0..count).map(move |i| {
        let bit = i * u64::from(bits);
        let byte = (bit / 8) as usize;
        // An element spans at most 2 bytes (B <= 8); the second may be past the end.
        let lo = u64::from(bytes.get(byte).copied().unwrap_or(0));
        let hi = u64::from(bytes.get(byte + 1).copied().unwrap_or(0));
        let raw = ((lo | hi << 8) >> (bit % 8)) & mask;
        if signed {
            ((raw << shift) as i64) >> shift
        } else {
            raw as i64
        }
    }))
}

/// Appends `values` bit-packed at `w` bits each, LSB first, zero-padded to a byte.
pub(super) fn put_bits(out: &mut Vec<u8>, values: impl Iterator<Item = u32>, w: u32) {
    let (mut acc, mut filled) = (0u64, 0u32);
    for v in values {
        acc |= u64::from(v) << filled;
        filled += w;
        while filled >= 8 {
            out.push(acc as u8);
            acc >>= 8;
            filled -= 8;
        }
    }
    if filled > 0 {
        out.push(acc as u8);
    }
}
