//! The graph's float boundary, run in Rust (not JIT'd): the input `quantize` and the
//! output `dequantize`.
//!
//! Both are the interpreter's definitions, operation for operation in f32:
//! `clamp(round_ties_even((x - offset) / scale), qmin, qmax)` with NaN → 0, and
//! `q as f32 * s` or `acc as f32 * scale[c] + bias[c]` (a separate multiply and add,
//! never fused), so the results are bit-identical.
//!
//! With AVX2 the input `quantize` runs eight elements a step: `vsubps`, `vdivps` and
//! `vroundps` (to nearest, ties to even) are the same IEEE operations as the scalar
//! ones, NaN lanes are zeroed by an ordered compare before the clamp (`vmaxps` would
//! turn them into `qmin`), and the clamped integral values convert and pack to bytes
//! exactly (saturating packs of in-range values are the identity). Without it (and for
//! the last `len % 8` elements) the scalar loop runs — on x86-64 without SSE4.1 its
//! `round_ties_even` is a library call, ~30 instructions an element.

use fqc_ir::DType;

use crate::plan::Deq;

/// Quantizes `x` into `out` (one byte per element, as `dtype` is stored).
pub(crate) fn quantize(x: &[f32], dtype: DType, scale: f32, offset: f32, out: &mut [u8]) {
    let (qmin, qmax) = dtype.quant_range().unwrap_or((0, 0));
    let (lo, hi) = (qmin as f32, qmax as f32);
    let n = out.len().min(x.len());
    let mut done = 0;
    #[cfg(target_arch = "x86_64")]
    if crate::native::available() {
        done = n - n % 8;
        let (x, out) = (&x[..done], &mut out[..done]);
        // SAFETY: AVX2 was detected just above; both slices hold `done` elements.
        unsafe { avx2::quantize(x, (lo, hi), (scale, offset), qmin < 0, out) };
    }
    for (o, &v) in out[done..n].iter_mut().zip(&x[done..n]) {
        let r = ((v - offset) / scale).round_ties_even();
        let q = if r.is_nan() {
            0
        } else {
            r.max(lo).min(hi) as i64
        };
        *o = q as u8;
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    /// [`super::quantize`] of whole groups of eight (`x.len() == out.len()`, a multiple
    /// of 8); `signed` storage packs with signed saturation (module docs).
    ///
    /// # Safety
    /// AVX2 is available.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn quantize(
        x: &[f32],
        (lo, hi): (f32, f32),
        (scale, offset): (f32, f32),
        signed: bool,
        out: &mut [u8],
    ) {
        let (vlo, vhi) = (_mm256_set1_ps(lo), _mm256_set1_ps(hi));
        let (vs, vo) = (_mm256_set1_ps(scale), _mm256_set1_ps(offset));
        for (xs, os) in x.chunks_exact(8).zip(out.chunks_exact_mut(8)) {
            let v = _mm256_loadu_ps(xs.as_ptr());
            let r = _mm256_round_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(
                _mm256_div_ps(_mm256_sub_ps(v, vo), vs),
            );
            let r = _mm256_and_ps(r, _mm256_cmp_ps::<_CMP_ORD_Q>(r, r));
            let q = _mm256_cvtps_epi32(_mm256_min_ps(_mm256_max_ps(r, vlo), vhi));
            let w = _mm_packs_epi32(_mm256_castsi256_si128(q), _mm256_extracti128_si256::<1>(q));
            let b = if signed {
                _mm_packs_epi16(w, w)
            } else {
                _mm_packus_epi16(w, w)
            };
            _mm_storel_epi64(os.as_mut_ptr().cast(), b);
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The scalar definition (the interpreter's).
    fn reference(v: f32, dtype: DType, scale: f32, offset: f32) -> u8 {
        let (qmin, qmax) = dtype.quant_range().unwrap();
        let r = ((v - offset) / scale).round_ties_even();
        (if r.is_nan() {
            0
        } else {
            r.max(qmin as f32).min(qmax as f32) as i64
        }) as u8
    }

    #[test]
    fn vector_quantize_equals_the_scalar_definition() {
        // NaN, infinities, signed zeros, ties (x.5) at and past the ends of every range,
        // huge and tiny values, then random ones.
        let specials = [
            f32::NAN,
            f32::INFINITY,
            f32::NEG_INFINITY,
            -0.0,
            0.0,
            0.5,
            1.5,
            2.5,
            -0.5,
            -1.5,
            126.5,
            127.5,
            -127.5,
            254.5,
            255.5,
            1e30,
            -1e30,
            f32::MIN_POSITIVE,
        ];
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut x: Vec<f32> = specials.to_vec();
        x.extend((0..1000).map(|_| {
            seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            ((seed >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 600.0
        }));
        let dtypes = [
            DType::Int {
                signed: false,
                bits: 8,
            },
            DType::Int {
                signed: true,
                bits: 8,
            },
            DType::Int {
                signed: false,
                bits: 4,
            },
            DType::Int {
                signed: true,
                bits: 2,
            },
        ];
        for dtype in dtypes {
            for (scale, offset) in [(1.0, 0.0), (0.5, 0.25), (3.7, -12.0), (0.0123, 1.0)] {
                let mut out = vec![0u8; x.len()];
                quantize(&x, dtype, scale, offset, &mut out);
                for (i, (&v, &q)) in x.iter().zip(&out).enumerate() {
                    let want = reference(v, dtype, scale, offset);
                    assert_eq!(q, want, "{dtype:?} {scale} {offset}: x[{i}] = {v}");
                }
            }
        }
    }
}
