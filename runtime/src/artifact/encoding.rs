//! Compact payload encodings of format 2, on top of the plain packing of [`pack`].
//!
//! Each constant's payload names its [`PayloadEncoding`]; the saver picks the smallest
//! that applies (ties go to the earlier one in this list), the loader accepts any that
//! applies to the dtype:
//!
//! * **`Plain`**: [`pack`]'s layout (the only one of format 1). Every dtype.
//! * **`Trits`** (ternary only; always chosen for `t2`): base 3, five elements per byte
//!   (`3^5 = 243 <= 256`), 1.6 bits per weight instead of 2. Element `t` is the digit
//!   `t mod 3` (`0 -> 0`, `+1 -> 1`, `-1 -> 2`); byte `j` holds elements `5j..5j+5` as
//!   `d0 + 3 d1 + 9 d2 + 27 d3 + 81 d4` (first element least significant). The last
//!   byte holds the `r = count mod 5` remaining elements (if `r > 0`), its unused digits
//!   are zero. The length is exactly `ceil(count / 5)`, every full byte is below 243 and
//!   a last partial byte below `3^r`, so each stream has one decoding.
//! * **`Delta2`** (`i32` only): made for requantize thresholds `i32[C, L]`, whose rows
//!   are monotone and nearly arithmetic (the second differences of real models are in
//!   `-2..=2`). Each row along the last axis (the whole tensor for a scalar) is stored as
//!   `varint(zz(x0))`, then if `L >= 2` `varint(zz(x1 - x0))`, then if `L >= 3` one byte
//!   `w` in `1..=32` followed by the `L - 2` second differences
//!   `zz((x[k+2] - x[k+1]) - (x[k+1] - x[k]))` bit-packed at `w` bits each, LSB first,
//!   zero-padded to a whole byte. Differences are wrapping `i32` arithmetic, so the map
//!   is a bijection for *any* `i32` rows (unsorted, `i32::MIN`/`MAX`, either direction);
//!   it is merely larger than `Plain` for rows that are not smooth, and then not chosen.
//! * **`Narrow`** (`i32` and `uB`/`iB`): `varint(zz(min))`, one byte `w` in `1..=32`,
//!   then every `x - min` bit-packed at `w` bits as above (e.g. `i8` descending flags at
//!   1 bit each).
//!
//! `zz` is the zigzag map of `i32` to `u32` (`0, -1, 1, -2, … -> 0, 1, 2, 3, …`);
//! `varint` is LEB128 of a `u32` (at most 5 bytes, the canonical shortest form only).
//!
//! Decoding is strict and bounded: lengths are checked before allocating (`Trits`: the
//! exact byte count; `Delta2` and `Narrow`: `count <= 8 * bytes`, which every valid
//! payload satisfies because `w >= 1`, so decoded storage is at most 32 times the
//! payload), every read is bounds-checked, padding bits must be zero, no bytes may
//! remain, and decoded values must lie in the dtype's range. Corrupt input is a
//! [`PackError`], never a panic.

use fqc_ir::{DType, TensorData};

use super::pack::{self, put_bits, PackError};
pub use super::schema::PayloadEncoding;

/// Encodes `data` (elements of `dtype`, rows of `row_len` along the last axis) in the
/// smallest applicable encoding (see the module docs).
pub fn encode(
    dtype: DType,
    row_len: u64,
    data: &TensorData,
) -> Result<(PayloadEncoding, Vec<u8>), PackError> {
    let plain = pack::pack(dtype, data)?;
    let mut best = (PayloadEncoding::Plain, plain);
    let mut consider = |enc: PayloadEncoding, bytes: Vec<u8>| {
        if bytes.len() < best.1.len() {
            best = (enc, bytes);
        }
    };
    match (dtype, data) {
        (DType::Ternary, TensorData::I8(v)) => {
            // Always base 3 (never larger than 2-bit packing).
            return Ok((PayloadEncoding::Trits, pack_trits(v)?));
        }
        (DType::I32, TensorData::I32(v)) => {
            if let Ok(row) = usize::try_from(row_len) {
                if row > 0 && v.len().is_multiple_of(row) {
                    consider(PayloadEncoding::Delta2, encode_delta2(v, row));
                }
            }
            consider(PayloadEncoding::Narrow, encode_narrow(v));
        }
        (DType::Int { .. }, TensorData::I8(v)) => {
            let wide: Vec<i32> = v.iter().map(|&x| i32::from(x)).collect();
            consider(PayloadEncoding::Narrow, encode_narrow(&wide));
        }
        (DType::Int { .. }, TensorData::U8(v)) => {
            let wide: Vec<i32> = v.iter().map(|&x| i32::from(x)).collect();
            consider(PayloadEncoding::Narrow, encode_narrow(&wide));
        }
        _ => {}
    }
    Ok(best)
}

/// Decodes `count` elements of `dtype` (rows of `row_len` along the last axis) stored
/// in `encoding` from exactly `bytes`.
pub fn decode(
    encoding: PayloadEncoding,
    dtype: DType,
    count: u64,
    row_len: u64,
    bytes: &[u8],
) -> Result<TensorData, PackError> {
    let wrong = || PackError::Encoding {
        dtype,
        encoding: encoding.name(),
    };
    match encoding {
        PayloadEncoding::Plain => pack::unpack(dtype, count, bytes),
        PayloadEncoding::Trits if dtype == DType::Ternary => {
            Ok(TensorData::I8(unpack_trits(count, bytes)?))
        }
        PayloadEncoding::Delta2 if dtype == DType::I32 => {
            Ok(TensorData::I32(decode_delta2(count, row_len, bytes)?))
        }
        PayloadEncoding::Narrow => {
            let (lo, hi) = match dtype {
                DType::I32 => (i64::from(i32::MIN), i64::from(i32::MAX)),
                DType::Int { .. } => dtype.int_range().ok_or_else(wrong)?,
                _ => return Err(wrong()),
            };
            let v = decode_narrow(dtype, count, bytes, lo, hi)?;
            // In range by the check in `decode_narrow`, so the casts are exact.
            Ok(match dtype {
                DType::I32 => TensorData::I32(v.into_iter().map(|x| x as i32).collect()),
                DType::Int { signed: false, .. } => {
                    TensorData::U8(v.into_iter().map(|x| x as u8).collect())
                }
                _ => TensorData::I8(v.into_iter().map(|x| x as i8).collect()),
            })
        }
        _ => Err(wrong()),
    }
}

// ---------------------------------------------------------------------------- trits

/// Packs ternary elements (each -1, 0 or +1) five to a byte.
pub fn pack_trits(values: &[i8]) -> Result<Vec<u8>, PackError> {
    let mut out = Vec::with_capacity(values.len().div_ceil(5));
    for (j, chunk) in values.chunks(5).enumerate() {
        let mut byte = 0u8;
        for (i, &t) in chunk.iter().enumerate().rev() {
            let digit = match t {
                0 => 0,
                1 => 1,
                -1 => 2,
                value => {
                    return Err(PackError::OutOfRange {
                        dtype: DType::Ternary,
                        index: j * 5 + i,
                        value: i64::from(value),
                    })
                }
            };
            byte = byte * 3 + digit;
        }
        out.push(byte);
    }
    Ok(out)
}

/// Unpacks `count` ternary elements from exactly `ceil(count / 5)` base-3 bytes.
pub fn unpack_trits(count: u64, bytes: &[u8]) -> Result<Vec<i8>, PackError> {
    let expected = count.div_ceil(5);
    if bytes.len() as u64 != expected {
        return Err(PackError::Length {
            dtype: DType::Ternary,
            count,
            expected,
            found: bytes.len() as u64,
        });
    }
    // `count <= 5 * bytes.len()`, so this allocation is bounded by the input.
    let mut out = Vec::with_capacity(count as usize);
    for (j, &byte) in bytes.iter().enumerate() {
        let n = (count - 5 * j as u64).min(5) as u32;
        if u32::from(byte) >= 3u32.pow(n) {
            return Err(PackError::TritByte { index: j, byte });
        }
        let mut b = byte;
        for _ in 0..n {
            out.push(match b % 3 {
                0 => 0,
                1 => 1,
                _ => -1,
            });
            b /= 3;
        }
    }
    Ok(out)
}

// -------------------------------------------------------------- varints and bits

/// Zigzag: `0, -1, 1, -2, … -> 0, 1, 2, 3, …`.
fn zz(v: i32) -> u32 {
    ((v << 1) ^ (v >> 31)) as u32
}

fn unzz(u: u32) -> i32 {
    ((u >> 1) as i32) ^ -((u & 1) as i32)
}

fn put_varint(out: &mut Vec<u8>, mut u: u32) {
    while u >= 0x80 {
        out.push((u as u8) | 0x80);
        u >>= 7;
    }
    out.push(u as u8);
}

/// Bits needed for `u` (0 for 0).
fn width(u: u32) -> u32 {
    32 - u.leading_zeros()
}

/// A bounds-checked cursor over a payload.
struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
    dtype: DType,
}

impl<'a> Reader<'a> {
    fn truncated(&self) -> PackError {
        PackError::Truncated { dtype: self.dtype }
    }

    fn byte(&mut self) -> Result<u8, PackError> {
        let b = *self.bytes.get(self.pos).ok_or_else(|| self.truncated())?;
        self.pos += 1;
        Ok(b)
    }

    fn take(&mut self, n: u64) -> Result<&'a [u8], PackError> {
        let rest = &self.bytes[self.pos..];
        let n = usize::try_from(n)
            .ok()
            .filter(|&n| n <= rest.len())
            .ok_or_else(|| self.truncated())?;
        self.pos += n;
        Ok(&rest[..n])
    }

    /// A canonical LEB128 `u32`: at most 5 bytes, no superfluous zero continuation.
    fn varint(&mut self) -> Result<u32, PackError> {
        let mut u = 0u32;
        for i in 0..5 {
            let b = self.byte()?;
            let payload = u32::from(b & 0x7f);
            if i == 4 && b > 0x0f {
                return Err(PackError::Varint { dtype: self.dtype });
            }
            u |= payload << (7 * i);
            if b < 0x80 {
                if i > 0 && b == 0 {
                    return Err(PackError::Varint { dtype: self.dtype });
                }
                return Ok(u);
            }
        }
        Err(PackError::Varint { dtype: self.dtype })
    }

    /// A bit width in `1..=32`.
    fn width(&mut self) -> Result<u32, PackError> {
        let w = u32::from(self.byte()?);
        if (1..=32).contains(&w) {
            Ok(w)
        } else {
            Err(PackError::Width {
                dtype: self.dtype,
                width: w,
            })
        }
    }

    /// `n` values bit-packed at `w` bits, with zero padding.
    fn bits(&mut self, n: u64, w: u32) -> Result<impl Iterator<Item = u32> + 'a, PackError> {
        let len = n
            .checked_mul(u64::from(w))
            .map(|b| b.div_ceil(8))
            .ok_or_else(|| self.truncated())?;
        let bytes = self.take(len)?;
        let used = (n * u64::from(w)) % 8;
        if used != 0 && bytes.last().is_some_and(|&b| b >> used != 0) {
            return Err(PackError::Padding { dtype: self.dtype });
        }
        let mask = (1u64 << w) - 1;
        Ok((0..n).map(move |i| {
            let bit = i * u64::from(w);
            let at = (bit / 8) as usize;
            // A value spans at most 5 bytes (w <= 32); those past the end read as 0.
            let mut raw = 0u64;
            for k in 0..5 {
                raw |= u64::from(bytes.get(at + k).copied().unwrap_or(0)) << (8 * k);
            }
            ((raw >> (bit % 8)) & mask) as u32
        }))
    }

    fn finish(&self) -> Result<(), PackError> {
        match self.bytes.len() - self.pos {
            0 => Ok(()),
            extra => Err(PackError::Trailing {
                dtype: self.dtype,
                extra: extra as u64,
            }),
        }
    }
}

/// `count` elements need at least `count / 8` bytes in `Delta2` and `Narrow` (every
/// element takes at least one bit), checked before allocating.
fn check_room(dtype: DType, count: u64, bytes: &[u8]) -> Result<(), PackError> {
    if count > (bytes.len() as u64).saturating_mul(8) {
        return Err(PackError::Short {
            dtype,
            count,
            found: bytes.len() as u64,
        });
    }
    Ok(())
}

// ---------------------------------------------------------------------------- delta2

/// Encodes `values` as rows of `row_len` (> 0, dividing the length) in `Delta2`.
pub fn encode_delta2(values: &[i32], row_len: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for row in values.chunks(row_len.max(1)) {
        put_varint(&mut out, zz(row[0]));
        if let [x0, x1, ..] = *row {
            put_varint(&mut out, zz(x1.wrapping_sub(x0)));
        }
        if row.len() >= 3 {
            let d2 = row.windows(3).map(|t| {
                let (a, b) = (t[1].wrapping_sub(t[0]), t[2].wrapping_sub(t[1]));
                zz(b.wrapping_sub(a))
            });
            let w = d2.clone().map(width).max().unwrap_or(0).max(1);
            out.push(w as u8);
            put_bits(&mut out, d2, w);
        }
    }
    out
}

/// Decodes `count` `i32`s in rows of `row_len` from exactly `bytes` (`Delta2`).
pub fn decode_delta2(count: u64, row_len: u64, bytes: &[u8]) -> Result<Vec<i32>, PackError> {
    let dtype = DType::I32;
    if count == 0 {
        return if bytes.is_empty() {
            Ok(Vec::new())
        } else {
            Err(PackError::Trailing {
                dtype,
                extra: bytes.len() as u64,
            })
        };
    }
    if row_len == 0 || !count.is_multiple_of(row_len) {
        return Err(PackError::Rows { count, row_len });
    }
    check_room(dtype, count, bytes)?;
    let mut out = Vec::with_capacity(count as usize);
    let mut r = Reader {
        bytes,
        pos: 0,
        dtype,
    };
    for _ in 0..count / row_len {
        let mut x = unzz(r.varint()?);
        out.push(x);
        if row_len >= 2 {
            let mut d = unzz(r.varint()?);
            x = x.wrapping_add(d);
            out.push(x);
            if row_len >= 3 {
                let w = r.width()?;
                for u in r.bits(row_len - 2, w)? {
                    d = d.wrapping_add(unzz(u));
                    x = x.wrapping_add(d);
                    out.push(x);
                }
            }
        }
    }
    r.finish()?;
    Ok(out)
}

// ---------------------------------------------------------------------------- narrow

/// Encodes integers as `Narrow`: their minimum and fixed-width offsets from it.
pub fn encode_narrow(values: &[i32]) -> Vec<u8> {
    let lo = values.iter().copied().min().unwrap_or(0);
    let hi = values.iter().copied().max().unwrap_or(0);
    let mut out = Vec::new();
    put_varint(&mut out, zz(lo));
    // `hi - lo < 2^32`, so the span and every offset fit `u32`.
    let w = width((i64::from(hi) - i64::from(lo)) as u32).max(1);
    out.push(w as u8);
    put_bits(
        &mut out,
        values
            .iter()
            .map(|&x| (i64::from(x) - i64::from(lo)) as u32),
        w,
    );
    out
}

/// Decodes `count` `Narrow` integers from exactly `bytes`, each checked to lie in
/// `lo..=hi` (the dtype's range).
fn decode_narrow(
    dtype: DType,
    count: u64,
    bytes: &[u8],
    lo: i64,
    hi: i64,
) -> Result<Vec<i64>, PackError> {
    check_room(dtype, count, bytes)?;
    let mut r = Reader {
        bytes,
        pos: 0,
        dtype,
    };
    let min = i64::from(unzz(r.varint()?));
    let w = r.width()?;
    let mut out = Vec::with_capacity(count as usize);
    for (index, off) in r.bits(count, w)?.enumerate() {
        let value = min + i64::from(off);
        if value < lo || value > hi {
            return Err(PackError::OutOfRange {
                dtype,
                index,
                value,
            });
        }
        out.push(value);
    }
    r.finish()?;
    Ok(out)
}
