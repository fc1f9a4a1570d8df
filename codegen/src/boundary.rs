//! The graph's float boundary, run in Rust (not JIT'd): the input `quantize` and the
//! output `dequantize`.
//!
//! Both are the interpreter's definitions, operation for operation in f32:
//! `clamp(round_ties_even((x - offset) / scale), qmin, qmax)` with NaN → 0, and
//! `q as f32 * s` or `acc as f32 * scale[c] + bias[c]` (a separate multiply and add,
//! never fused), so the results are bit-identical.

use fqc_ir::DType;

use crate::plan::Deq;

/// Quantizes `x` into `out` (one byte per element, as `dtype` is stored).
pub(crate) fn quantize(x: &[f32], dtype: DType, scale: f32, offset: f32, out: &mut [u8]) {
    let (qmin, qmax) = dtype.quant_range().unwrap_or((0, 0));
    let (lo, hi) = (qmin as f32, qmax as f32);
    for (o, &v) in out.iter_mut().zip(x) {
        let r = ((v - offset) / scale).round_ties_even();
        let q = if r.is_nan() {
            0
        } else {
            r.max(lo).min(hi) as i64
        };
        *o = q as u8;
    }
}

/// Dequantizes the integers `q` (already widened) into f32 bytes `out`.
pub(crate) fn dequantize(q: impl Iterator<Item = i32>, deq: &Deq, out: &mut [u8]) {
    for (i, (v, o)) in q.zip(out.chunks_exact_mut(4)).enumerate() {
        let v = v as f32;
        let y = match deq {
            Deq::Tensor(s) => v * s,
            Deq::Channel { inner, scale, bias } => {
                let c = (i / (*inner).max(1)) % scale.len().max(1);
                match bias {
                    Some(b) => v * scale[c] + b[c],
                    None => v * scale[c],
                }
            }
        };
        o.copy_from_slice(&y.to_le_bytes());
    }
}
