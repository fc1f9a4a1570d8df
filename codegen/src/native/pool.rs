//! The native form of `maxpool`/`sumpool` over low-bit (u8/i8) inputs: safe Rust that
//! the compiler vectorises, chosen with the other native kernels (`fuse.rs` and
//! `lower.rs` say when). It replaces the JIT'd pool, which bounds-checks and selects
//! every tap of every window.
//!
//! **2×2 stride-2 max** (no padding, every window inside the image: the common
//! `MaxPool(2)`): `avx2::halving_max`, 16 outputs per step (exact: max is computed
//! on the stored values, in their own signedness).
//!
//! **Algorithm** (everything else). The valid taps of each output row (`iy = oy·sh + ki·dh − pad_top` in
//! `0..H`) and column are listed once, when the plan is built. Per output row, the
//! valid input rows are combined element-wise into one row of i32 (max or sum: a
//! vectorisable loop over `W`), then each output column combines that row at its valid
//! columns (interior columns, whose taps are all valid, by one strided loop per tap
//! instead of tap lists). Max and sum are associative and commutative, so combining rows first
//! and columns second gives the maximum (sum) over the window's valid taps, as the
//! interpreter defines it: padding contributes nothing, and a window without valid
//! taps yields `qmin` (max) or 0 (sum). A max pool of bytes into the same type (e.g.
//! ResNet-18's 3×3 stride-2 pool) does this on bytes, not i32: i8 mapped to unsigned
//! order by `v ^ 0x80` (monotone), row maxima by byte-wise `max`, interior columns of
//! stride 1 or 2 sixteen at a time (stride 2: the even bytes of a 32-byte load).
//! Sums of low-bit values over a window are bounded by the plan (`taps·max|x|` fits
//! i32), so the i32 adds are exact.

use crate::emit::misc::{PoolKind, PoolSpec};
use crate::emit::Elem;
use crate::error::{CodegenError, Result};

// `unsafe` here: calling and writing the AVX2 functions of `mod avx2` (see
// `native/mod.rs`); their loads and stores go through bounds-checked subslices, or
// through raw pointers right after a check that the whole 32-byte load or 16-byte
// store lies inside its slice.

/// A pool prepared for the native kernel.
#[derive(Clone, Debug)]
pub(crate) struct NativePool {
    pub spec: PoolSpec,
    /// Per output row, the valid input rows.
    rows: Vec<Vec<usize>>,
    /// Per output column, the valid input columns.
    cols: Vec<Vec<usize>>,
    /// Output columns `lo..hi` whose taps are all valid (handled without tap lists).
    interior: (usize, usize),
    /// A 2×2 stride-2 max pool without padding whose windows all lie inside the
    /// image: run by [`avx2::halving_max`] (where AVX2 is available).
    halving: bool,
}

/// The valid input positions of each of `out` outputs along one axis.
fn taps(
    out: usize,
    len: usize,
    k: usize,
    stride: usize,
    dil: usize,
    pad: usize,
) -> Vec<Vec<usize>> {
    (0..out)
        .map(|o| {
            (0..k)
                .filter_map(|i| (o * stride + i * dil).checked_sub(pad))
                .filter(|&i| i < len)
                .collect()
        })
        .collect()
}

impl NativePool {
    /// `None` for an i32 input (only low-bit inputs are handled here).
    pub(crate) fn new(spec: PoolSpec) -> Option<NativePool> {
        if spec.input == Elem::I32 {
            return None;
        }
        let s = &spec;
        let rows = taps(
            s.oh,
            s.h,
            s.kernel[0],
            s.strides[0],
            s.dilations[0],
            s.pads[0],
        );
        let cols = taps(
            s.ow,
            s.w,
            s.kernel[1],
            s.strides[1],
            s.dilations[1],
            s.pads[1],
        );
        let (kw, sw, dw, pl) = (s.kernel[1], s.strides[1], s.dilations[1], s.pads[1]);
        let lo = pl.div_ceil(sw).min(s.ow);
        let span = (kw - 1) * dw;
        let hi = if s.w + pl > span {
            ((s.w + pl - span - 1) / sw + 1).min(s.ow)
        } else {
            0
        };
        let interior = (lo, hi.max(lo));
        let halving = matches!(s.kind, PoolKind::Max { .. })
            && s.kernel == [2, 2]
            && s.strides == [2, 2]
            && s.dilations == [1, 1]
            && s.pads == [0; 4]
            && 2 * s.oh <= s.h
            && 2 * s.ow <= s.w;
        Some(NativePool {
            spec,
            rows,
            cols,
            interior,
            halving,
        })
    }
}

/// Runs the pool on `n` images: `x` holds `n·C·H·W` elements of the input storage,
/// `out` receives `n·C·OH·OW` elements of the output storage.
pub(crate) fn run(np: &NativePool, n: usize, x: &[u8], out: &mut [u8]) -> Result<()> {
    let s = &np.spec;
    let planes = n * s.c;
    let fits = x.len() >= planes * s.h * s.w * s.input.size()
        && out.len() >= planes * s.oh * s.ow * s.out.size();
    if !fits {
        return Err(CodegenError::Invalid(
            "internal error: native pool buffers do not have their planned sizes".into(),
        ));
    }
    let max = matches!(s.kind, PoolKind::Max { .. });
    #[cfg(target_arch = "x86_64")]
    if np.halving && super::available() {
        // SAFETY: AVX2 was detected just above; every access is bounds-checked.
        unsafe { avx2::halving_max(np, planes, x, out) };
        return Ok(());
    }
    if max && s.out == s.input && matches!(s.input, Elem::U8 | Elem::I8) {
        let flip = if s.input == Elem::I8 { 0x80 } else { 0 };
        planes_max_bytes(np, planes, x, out, flip);
        return Ok(());
    }
    let signed = |v: u8| i32::from(v as i8);
    match (s.input, max) {
        (Elem::I8, true) => planes_with(np, planes, x, out, signed, i32::max),
        (Elem::I8, false) => planes_with(np, planes, x, out, signed, i32::wrapping_add),
        (_, true) => planes_with(np, planes, x, out, i32::from, i32::max),
        (_, false) => planes_with(np, planes, x, out, i32::from, i32::wrapping_add),
    }
    Ok(())
}

/// Bytes a row buffer of [`planes_max_bytes`] holds past the row, so that the vector
/// loads of its last columns stay inside it.
const ROW_SLACK: usize = 64;

/// A max pool over `planes` planes of bytes into the same type, by the algorithm of the
/// module docs on bytes: `flip` (`0x80` for i8, else 0) maps the storage to unsigned
/// order (`v ^ 0x80` is monotone from i8 to u8), where the row maxima are byte-wise
/// `max` (vectorised) and the interior columns with stride 1 or 2 are taken 16 at a
/// time on AVX2 (`avx2::max_columns`); the result is mapped back.
fn planes_max_bytes(np: &NativePool, planes: usize, x: &[u8], out: &mut [u8], flip: u8) {
    let s = &np.spec;
    let (plane, oplane) = (s.h * s.w, s.oh * s.ow);
    let qmin = match s.kind {
        PoolKind::Max { qmin } => qmin as u8 ^ flip,
        PoolKind::Sum => return,
    };
    let (lo, hi) = np.interior;
    let (kw, sw, dw, pl) = (s.kernel[1], s.strides[1], s.dilations[1], s.pads[1]);
    // Zero is the least mapped value; the slack past `W` is never a valid column.
    let mut row = vec![0u8; s.w + ROW_SLACK];
    let mut orow = vec![0u8; s.ow];
    for p in 0..planes {
        let xp = &x[p * plane..(p + 1) * plane];
        for (oy, iys) in np.rows.iter().enumerate() {
            if iys.is_empty() {
                orow.fill(qmin);
            } else {
                row[..s.w].fill(0);
                for &iy in iys {
                    let src = &xp[iy * s.w..(iy + 1) * s.w];
                    for (r, &v) in row.iter_mut().zip(src) {
                        *r = (*r).max(v ^ flip);
                    }
                }
                for ox in (0..lo).chain(hi..s.ow) {
                    let taps = np.cols[ox].iter().map(|&ix| row[ix]);
                    orow[ox] = taps.max().unwrap_or(qmin);
                }
                // Every tap of an interior column is valid: `lo·sw ≥ pl` (`new`).
                let base = (lo * sw).saturating_sub(pl);
                max_columns(&row, base, (kw, dw, sw), &mut orow[lo..hi]);
            }
            let at = p * oplane + oy * s.ow;
            for (d, &v) in out[at..at + s.ow].iter_mut().zip(&orow) {
                *d = v ^ flip;
            }
        }
    }
}

/// `inner[i] = max over kj < kw of row[base + kj·dw + i·sw]` (every index a valid
/// column of the row, which has [`ROW_SLACK`] bytes after them).
fn max_columns(row: &[u8], base: usize, (kw, dw, sw): (usize, usize, usize), inner: &mut [u8]) {
    #[cfg(target_arch = "x86_64")]
    if (sw == 1 || sw == 2) && super::available() {
        // SAFETY: AVX2 was detected just above; every access is bounds-checked.
        unsafe { avx2::max_columns(row, base, (kw, dw, sw), inner) };
        return;
    }
    inner.fill(0);
    for kj in 0..kw {
        let b = base + kj * dw;
        for (i, o) in inner.iter_mut().enumerate() {
            *o = (*o).max(row[b + i * sw]);
        }
    }
}

/// The pool over `planes` planes, `conv` widening an input element and `f` combining
/// two values (max or wrapping add; the sums never wrap, see the module docs).
fn planes_with(
    np: &NativePool,
    planes: usize,
    x: &[u8],
    out: &mut [u8],
    conv: impl Fn(u8) -> i32,
    f: impl Fn(i32, i32) -> i32,
) {
    let s = &np.spec;
    let (plane, oplane) = (s.h * s.w, s.oh * s.ow);
    let (max, qmin) = match s.kind {
        PoolKind::Max { qmin } => (true, qmin as i32),
        PoolKind::Sum => (false, 0),
    };
    let init = if max { i32::MIN } else { 0 };
    let (lo, hi) = np.interior;
    let (sw, dw, pl) = (s.strides[1], s.dilations[1], s.pads[1]);
    let mut row = vec![init; s.w];
    let mut orow = vec![0i32; s.ow];
    for p in 0..planes {
        let xp = &x[p * plane..(p + 1) * plane];
        for (oy, iys) in np.rows.iter().enumerate() {
            if max && iys.is_empty() {
                orow.fill(qmin);
            } else {
                row.fill(init);
                for &iy in iys {
                    let src = &xp[iy * s.w..(iy + 1) * s.w];
                    for (r, &v) in row.iter_mut().zip(src) {
                        *r = f(*r, conv(v));
                    }
                }
                let border = (0..lo).chain(hi..s.ow);
                for ox in border {
                    let taps = np.cols[ox].iter().map(|&ix| row[ix]);
                    orow[ox] = if max {
                        taps.max().unwrap_or(qmin)
                    } else {
                        taps.fold(0, &f)
                    };
                }
                let inner = &mut orow[lo..hi];
                inner.fill(init);
                for kj in 0..s.kernel[1] {
                    // Every tap of an interior column is valid: `lo·sw ≥ pl` (`new`).
                    let base = lo * sw + kj * dw - pl;
                    for (i, o) in inner.iter_mut().enumerate() {
                        *o = f(*o, row[base + i * sw]);
                    }
                }
            }
            let at = p * oplane + oy * s.ow;
            match s.out {
                Elem::U8 | Elem::I8 => {
                    for (d, &v) in out[at..at + s.ow].iter_mut().zip(&orow) {
                        *d = v as u8;
                    }
                }
                Elem::I32 => {
                    for (d, &v) in out[at * 4..(at + s.ow) * 4].chunks_exact_mut(4).zip(&orow) {
                        d.copy_from_slice(&v.to_le_bytes());
                    }
                }
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    use super::NativePool;
    use crate::emit::Elem;
    use crate::native::levels::avx2::store_bytes;

    /// [`super::max_columns`] for column stride `sw` 1 or 2: 16 outputs a step, each
    /// tap's 16 bytes one load (stride 1) or the even bytes of a 32-byte load (stride
    /// 2); a last partial step is staged through a local array. Loads are of bounds-
    /// checked subslices: the row's slack covers the lanes past the last output.
    ///
    /// # Safety
    /// AVX2 is available.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn max_columns(
        row: &[u8],
        base: usize,
        (kw, dw, sw): (usize, usize, usize),
        inner: &mut [u8],
    ) {
        // Per 128-bit lane, its 8 even bytes into its low half.
        let even = _mm256_setr_epi8(
            0, 2, 4, 6, 8, 10, 12, 14, -1, -1, -1, -1, -1, -1, -1, -1, 0, 2, 4, 6, 8, 10, 12, 14,
            -1, -1, -1, -1, -1, -1, -1, -1,
        );
        let mut i = 0;
        while i < inner.len() {
            let mut m = _mm_setzero_si128();
            for kj in 0..kw {
                let at = base + kj * dw + i * sw;
                let v = if sw == 1 {
                    _mm_loadu_si128(row[at..at + 16].as_ptr().cast())
                } else {
                    let v = _mm256_loadu_si256(row[at..at + 32].as_ptr().cast());
                    let e = _mm256_permute4x64_epi64::<0b1000>(_mm256_shuffle_epi8(v, even));
                    _mm256_castsi256_si128(e)
                };
                m = _mm_max_epu8(m, v);
            }
            let n = (inner.len() - i).min(16);
            if n == 16 {
                _mm_storeu_si128(inner[i..i + 16].as_mut_ptr().cast(), m);
            } else {
                let mut tmp = [0u8; 16];
                _mm_storeu_si128(tmp.as_mut_ptr().cast(), m);
                inner[i..i + n].copy_from_slice(&tmp[..n]);
            }
            i += 16;
        }
    }

    /// 32 bytes of `x` from `at` (zero past `x.len()`).
    #[target_feature(enable = "avx2")]
    #[inline]
    unsafe fn load32(x: &[u8], at: usize) -> __m256i {
        if at + 32 <= x.len() {
            _mm256_loadu_si256(x[at..at + 32].as_ptr().cast())
        } else {
            let mut tmp = [0u8; 32];
            let n = x.len().saturating_sub(at).min(32);
            tmp[..n].copy_from_slice(&x[at..at + n]);
            _mm256_loadu_si256(tmp.as_ptr().cast())
        }
    }

    /// The 2×2 stride-2 max pool of `planes` planes (`np.halving`): per output row, the
    /// byte-wise max of its two input rows, then the max of each pair of adjacent
    /// bytes (widened to i16 lanes, signed or unsigned as the storage), packed back to
    /// bytes; 16 outputs per step. Every window lies inside the image, so every tap is
    /// valid and no window is empty.
    ///
    /// # Safety
    /// AVX2 is available.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn halving_max(np: &NativePool, planes: usize, x: &[u8], out: &mut [u8]) {
        if np.spec.input == Elem::I8 {
            halving_rows::<true>(np, planes, x, out);
        } else {
            halving_rows::<false>(np, planes, x, out);
        }
    }

    /// [`halving_max`] for signed (`SIGNED`) or unsigned storage. Small rows (MNIST's
    /// 14 and 7 outputs) take one step each, so the per-row work is kept to the two
    /// loads, the arithmetic and the store: row offsets advance by addition, and a row
    /// whose every 32-byte load and 16-byte store lies inside `x`/`out` (checked once,
    /// by its last step's offsets, the largest) runs [`row_unchecked`] on raw pointers;
    /// the others (the last rows of the buffers) [`row_checked`].
    ///
    /// # Safety
    /// AVX2 is available.
    #[target_feature(enable = "avx2")]
    unsafe fn halving_rows<const SIGNED: bool>(
        np: &NativePool,
        planes: usize,
        x: &[u8],
        out: &mut [u8],
    ) {
        let s = &np.spec;
        let (w, oh, ow) = (s.w, s.oh, s.ow);
        if ow == 0 {
            return;
        }
        // The offset of a row's last step: loads at `2·last` and `w + 2·last` past
        // the row's start, the store at `last`.
        let last = (ow - 1) / 16 * 16;
        let mut o0 = 0;
        for p in 0..planes {
            // Output row `oy` of plane `p` reads input rows `2·oy` and `2·oy + 1` of
            // the plane (`2·oh ≤ h`); `r0` is the first of them.
            let mut r0 = p * s.h * w;
            for _ in 0..oh {
                if r0 + w + 2 * last + 32 <= x.len() && o0 + last + 16 <= out.len() {
                    // In bounds: every step's offsets are at most the last step's.
                    row_unchecked::<SIGNED>(x.as_ptr().add(r0), w, out.as_mut_ptr().add(o0), ow);
                } else {
                    row_checked::<SIGNED>(x, r0, w, out, o0, ow);
                }
                r0 += 2 * w;
                o0 += ow;
            }
        }
    }

    /// The max of each 2×2 window of the 32 bytes of `a` and `b` (two input rows),
    /// packed into the low 16 bytes.
    #[target_feature(enable = "avx2")]
    #[inline]
    unsafe fn halve<const SIGNED: bool>(a: __m256i, b: __m256i) -> __m256i {
        let packed = if SIGNED {
            let v = _mm256_max_epi8(a, b);
            let lo = _mm256_srai_epi16::<8>(_mm256_slli_epi16::<8>(v));
            let m = _mm256_max_epi16(lo, _mm256_srai_epi16::<8>(v));
            _mm256_packs_epi16(m, m)
        } else {
            let v = _mm256_max_epu8(a, b);
            let lo = _mm256_and_si256(v, _mm256_set1_epi16(0xff));
            let m = _mm256_max_epi16(lo, _mm256_srli_epi16::<8>(v));
            _mm256_packus_epi16(m, m)
        };
        _mm256_permute4x64_epi64::<0b1000>(packed)
    }

    /// One output row of `ow` outputs from the input rows at `x` and `x + w`, stored at
    /// `out`, 16 a step. Bytes past the row's `2·ow` inputs are loaded but only feed
    /// lanes past its `ow` outputs, whose bytes belong to later outputs and are
    /// stored after this row.
    ///
    /// # Safety
    /// AVX2 is available; `x + w + 2·last + 32` and `out + last + 16` (`last` the
    /// largest multiple of 16 below `ow`) are inside the buffers.
    #[target_feature(enable = "avx2")]
    #[inline]
    unsafe fn row_unchecked<const SIGNED: bool>(x: *const u8, w: usize, out: *mut u8, ow: usize) {
        let mut j = 0;
        while j < ow {
            let a = _mm256_loadu_si256(x.add(2 * j).cast());
            let b = _mm256_loadu_si256(x.add(w + 2 * j).cast());
            let bytes = halve::<SIGNED>(a, b);
            _mm_storeu_si128(out.add(j).cast(), _mm256_castsi256_si128(bytes));
            j += 16;
        }
    }

    /// [`row_unchecked`] for a row at offsets `r0` (input) and `o0` (output) near the
    /// buffers' ends: loads zero-filled past `x`, stores cut at the row's end or
    /// `out`'s.
    ///
    /// # Safety
    /// AVX2 is available.
    #[target_feature(enable = "avx2")]
    #[inline(never)]
    #[cold]
    unsafe fn row_checked<const SIGNED: bool>(
        x: &[u8],
        r0: usize,
        w: usize,
        out: &mut [u8],
        o0: usize,
        ow: usize,
    ) {
        let mut j = 0;
        while j < ow {
            let (a, b) = (load32(x, r0 + 2 * j), load32(x, r0 + w + 2 * j));
            let bytes = halve::<SIGNED>(a, b);
            let at = o0 + j;
            let len = if at + 16 <= out.len() { 16 } else { ow - j };
            store_bytes(bytes, out, at, len);
            j += 16;
        }
    }
}
