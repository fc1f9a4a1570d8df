//! The native form of a `qgemm` (or a 1×1 `qconv` of a 1×1 image) chosen automatically
//! on AVX2: per image one matrix-vector product, instead of the tiled kernel of
//! `mod.rs`, whose 16/32-column tiles would be 1/16–1/32 full with one column.
//!
//! **Algorithm.** The image's `K` inputs are copied into the step's scratch, zero-padded
//! to whole vectors; the weights are stored row by row at compile time, padded the
//! same way and to whole blocks of 4 outputs with zero rows. Four outputs at a time
//! keep one i32×8 accumulator each; per vector of inputs:
//!
//! * **Path A** (u8 inputs and `max|x|·(|w0|+|w1|) ≤ 32767` for every weight pair, as
//!   in `mod.rs`): 32 inputs by `vpmaddubsw` (pairs exact in i16, no saturation),
//!   added in i16 for up to `flush = ⌊32767 / pair bound⌋` vectors (so a lane, a sum of
//!   at most `flush` pair sums, stays within ±32767 and the i16 adds never wrap), then
//!   `vpmaddwd` by ones (pairs of i16 summed exactly in i32) into the accumulator.
//!   Ternary × u4 gives `flush = 1092` vectors: one widening per output for any
//!   `K ≤ 34,944`.
//! * **Path B** (everything else): 16 inputs widened to i16 by `vpmaddwd` with i16
//!   weights (every product and pair sum fits i32).
//!
//! The eight lanes are summed and the bias added; all i32 adds wrap, but the plan only
//! accepts a layer whose `|bias| + max|x|·Σ|w|` fits i32, so every partial sum is
//! exact. Zero padding multiplies by zero.
//!
//! **Safety.** As `mod.rs`: AVX2 functions are called after AVX2 was detected; every
//! vector load reads one 32-byte `chunks_exact` piece of a slice.

use crate::emit::conv::ConvSpec;
use crate::error::{CodegenError, Result};

use super::{available, pair_bound};

/// A matrix-vector product prepared for the native kernel.
#[derive(Clone, Debug)]
pub(crate) struct NativeGemv {
    pub spec: ConvSpec,
    /// Path A (u8 × i8 in `vpmaddubsw`) or B (i16 × i16).
    a: bool,
    /// Path A: vectors of 32 inputs summed in i16 before widening (module docs).
    flush: usize,
    k: usize,
    /// `K` padded to whole vectors: 32 (A) or 16 (B) inputs.
    kp: usize,
    /// Output rows padded to whole blocks of 4.
    rows: usize,
    /// Row-major weights: bytes (A) or little-endian i16 (B), `rows × kp` of them.
    w: Vec<u8>,
}

impl NativeGemv {
    /// `None` unless `s` is one product per image (a 1×1 image, 1×1 kernel, one group)
    /// and the CPU has AVX2.
    pub(crate) fn new(s: ConvSpec) -> Option<NativeGemv> {
        // A 1×1 image under a 1×1 kernel is a vector times a matrix only when the one
        // output reads the one pixel: with padding, the window can sit on a pad instead
        // (found by proptest: pads [1,0,0,0], stride 2, where the output is all padding).
        let vector = s.h == 1
            && s.w == 1
            && s.kh == 1
            && s.kw == 1
            && s.group == 1
            && s.pads.iter().all(|&p| p == 0);
        if !vector || s.oh * s.ow != 1 || !available() {
            return None;
        }
        let bound = pair_bound(&s).filter(|&p| p <= 32767);
        let a = bound.is_some();
        let flush = bound.map_or(0, |p| (32767 / p.max(1)) as usize);
        let k = s.c;
        let kp = k.div_ceil(if a { 32 } else { 16 }).max(1) * if a { 32 } else { 16 };
        let rows = s.m.div_ceil(4) * 4;
        let mut w = Vec::with_capacity(rows * kp * if a { 1 } else { 2 });
        for o in 0..rows {
            for i in 0..kp {
                let v = if o < s.m && i < k {
                    s.weights[o * k + i]
                } else {
                    0
                };
                if a {
                    w.push(v as u8);
                } else {
                    w.extend_from_slice(&i16::from(v).to_le_bytes());
                }
            }
        }
        Some(NativeGemv {
            spec: s,
            a,
            flush,
            k,
            kp,
            rows,
            w,
        })
    }

    /// Scratch bytes: the padded inputs of one image.
    pub(crate) fn scratch_bytes(&self) -> usize {
        self.kp * if self.a { 1 } else { 2 }
    }

    /// The form's name in [`crate::CompiledGraph::kernel_forms`].
    pub(crate) fn form_name(&self) -> &'static str {
        if self.a {
            "native-gemv-a"
        } else {
            "native-gemv-b"
        }
    }
}

/// Runs the product on `n` images: `x` holds `n·K` input bytes, `out` receives `n·M`
/// little-endian i32.
pub(crate) fn run(
    nv: &NativeGemv,
    n: usize,
    x: &[u8],
    out: &mut [u8],
    scratch: &mut [u8],
) -> Result<()> {
    let (k, m) = (nv.k, nv.spec.m);
    let esize = if nv.a { 1 } else { 2 };
    let fits = x.len() >= n * k
        && out.len() >= n * m * 4
        && scratch.len() >= nv.kp * esize
        && nv.w.len() >= nv.rows * nv.kp * esize
        && nv.spec.bias.len() >= m
        && available();
    if !fits {
        return Err(CodegenError::Invalid(
            "internal error: native gemv buffers do not have their planned sizes".into(),
        ));
    }
    for img in 0..n {
        let xi = &x[img * k..(img + 1) * k];
        let xs = &mut scratch[..nv.kp * esize];
        xs.fill(0);
        if nv.a {
            xs[..k].copy_from_slice(xi);
        } else {
            let wide = |v: u8| {
                if nv.spec.x_signed {
                    i16::from(v as i8)
                } else {
                    i16::from(v)
                }
            };
            for (d, &v) in xs.chunks_exact_mut(2).zip(xi) {
                d.copy_from_slice(&wide(v).to_le_bytes());
            }
        }
        let yi = &mut out[img * m * 4..(img + 1) * m * 4];
        #[cfg(target_arch = "x86_64")]
        // SAFETY: AVX2 was detected just above; loads are bounds-checked (module docs).
        unsafe {
            avx2::product(nv, xs, yi);
        }
    }
    Ok(())
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    use super::NativeGemv;

    /// Sum of the eight i32 lanes of `v` (wrapping, as the exact sum fits i32).
    #[target_feature(enable = "avx2")]
    #[inline]
    unsafe fn hsum(v: __m256i) -> i32 {
        let s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256::<1>(v));
        let s = _mm_add_epi32(s, _mm_shuffle_epi32::<0b01_00_11_10>(s));
        let s = _mm_add_epi32(s, _mm_shuffle_epi32::<0b10_11_00_01>(s));
        _mm_cvtsi128_si32(s)
    }

    /// `y[o] = bias[o] + Σ_k w[o,k]·x[k]` for every output `o` of one image (`xs` the
    /// padded inputs in the path's storage).
    ///
    /// # Safety
    /// AVX2 is available.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn product(nv: &NativeGemv, xs: &[u8], y: &mut [u8]) {
        let row = nv.kp * if nv.a { 1 } else { 2 };
        for (o0, block) in (0..nv.rows).step_by(4).zip(nv.w.chunks_exact(4 * row)) {
            let (w01, w23) = block.split_at(2 * row);
            let (w0, w1) = w01.split_at(row);
            let (w2, w3) = w23.split_at(row);
            let rows = [w0, w1, w2, w3];
            let acc = if nv.a {
                block_a(&xs[..row], rows, nv.flush.max(1))
            } else {
                block_b(&xs[..row], rows)
            };
            for (r, a) in acc.iter().enumerate() {
                let o = o0 + r;
                if o < nv.spec.m {
                    let v = hsum(*a).wrapping_add(nv.spec.bias[o]);
                    y[o * 4..o * 4 + 4].copy_from_slice(&v.to_le_bytes());
                }
            }
        }
    }

    /// Path A: four rows' products with `x` (u8), as i32×8 partial sums: `vpmaddubsw`
    /// results added in i16 for `flush` vectors at a time, then widened by `vpmaddwd`
    /// with ones (exact: module docs).
    #[target_feature(enable = "avx2")]
    #[inline]
    unsafe fn block_a(x: &[u8], w: [&[u8]; 4], flush: usize) -> [__m256i; 4] {
        let ones = _mm256_set1_epi16(1);
        let mut acc = [_mm256_setzero_si256(); 4];
        let xs = x.chunks(32 * flush);
        let ws = w.map(|r| r.chunks(32 * flush));
        let [mut w0, mut w1, mut w2, mut w3] = ws;
        for xc in xs {
            let rows = [w0.next(), w1.next(), w2.next(), w3.next()];
            let [Some(a), Some(b), Some(c), Some(d)] = rows else {
                break;
            };
            let mut s = [_mm256_setzero_si256(); 4];
            let cols = xc.chunks_exact(32).zip(a.chunks_exact(32));
            let cols = cols.zip(b.chunks_exact(32)).zip(c.chunks_exact(32));
            for ((((xv, a), b), c), d) in cols.zip(d.chunks_exact(32)) {
                let xv = _mm256_loadu_si256(xv.as_ptr().cast());
                for (s, w) in s.iter_mut().zip([a, b, c, d]) {
                    let wv = _mm256_loadu_si256(w.as_ptr().cast());
                    *s = _mm256_add_epi16(*s, _mm256_maddubs_epi16(xv, wv));
                }
            }
            for (acc, s) in acc.iter_mut().zip(s) {
                *acc = _mm256_add_epi32(*acc, _mm256_madd_epi16(s, ones));
            }
        }
        acc
    }

    /// Path B: four rows' products with `x` (i16), as i32×8 partial sums.
    #[target_feature(enable = "avx2")]
    #[inline]
    unsafe fn block_b(x: &[u8], w: [&[u8]; 4]) -> [__m256i; 4] {
        let mut acc = [_mm256_setzero_si256(); 4];
        let [a, b, c, d] = w;
        let cols = x.chunks_exact(32).zip(a.chunks_exact(32));
        let cols = cols.zip(b.chunks_exact(32)).zip(c.chunks_exact(32));
        for ((((xv, a), b), c), d) in cols.zip(d.chunks_exact(32)) {
            let xv = _mm256_loadu_si256(xv.as_ptr().cast());
            for (acc, w) in acc.iter_mut().zip([a, b, c, d]) {
                let wv = _mm256_loadu_si256(w.as_ptr().cast());
                *acc = _mm256_add_epi32(*acc, _mm256_madd_epi16(xv, wv));
            }
        }
        acc
    }
}
