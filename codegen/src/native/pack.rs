//! The panel side of the native convolution on AVX2 (see `mod.rs` for the algorithm
//! and the bounds every pointer offset stays in): pairs of im2col rows interleaved into
//! the tiled panel (`interleave`), the panel packed straight from the image for column
//! stride 1 (`pack_direct`, reading the chunks `chunks.rs` planned), and the stride-2
//! rows of the im2col matrix as the even bytes of vector loads (`even_rows`). Sound as
//! `mod.rs` says: every function is `#[target_feature(enable = "avx2")]` and called only
//! after AVX2 was detected; raw-pointer accesses are the ones each function's safety
//! section bounds, all others go through bounds-checked subslices.

use std::arch::x86_64::*;

use super::chunks::Chunk;
use super::{NativeConv, Path, TB};

/// Pairs of im2col rows → the tiled panel (module docs).
///
/// # Safety
/// AVX2 is available; `col ≥ 2·pairs·Np` and `panel ≥ tiles·pairs·64` bytes.
#[target_feature(enable = "avx2")]
pub(super) unsafe fn interleave(nc: &NativeConv, col: &[u8], panel: &mut [u8]) {
    let np = nc.np();
    let cp = col.as_ptr();
    let pp = panel.as_mut_ptr();
    let signed = nc.spec.x_signed;
    for q in 0..nc.pairs {
        let r0 = cp.add(2 * q * np);
        let r1 = cp.add((2 * q + 1) * np);
        match nc.path {
            Path::A => {
                for c16 in 0..np / 16 {
                    let a = _mm_loadu_si128(r0.add(16 * c16).cast());
                    let b = _mm_loadu_si128(r1.add(16 * c16).cast());
                    let d = pp.add(((c16 / 2) * nc.pairs + q) * TB + (c16 % 2) * 32);
                    _mm_storeu_si128(d.cast(), _mm_unpacklo_epi8(a, b));
                    _mm_storeu_si128(d.add(16).cast(), _mm_unpackhi_epi8(a, b));
                }
            }
            Path::B => {
                for c8 in 0..np / 8 {
                    let a = _mm_loadl_epi64(r0.add(8 * c8).cast());
                    let b = _mm_loadl_epi64(r1.add(8 * c8).cast());
                    let i = _mm_unpacklo_epi8(a, b);
                    let y = if signed {
                        _mm256_cvtepi8_epi16(i)
                    } else {
                        _mm256_cvtepu8_epi16(i)
                    };
                    let d = pp.add(((c8 / 2) * nc.pairs + q) * TB + (c8 % 2) * 32);
                    _mm256_storeu_si256(d.cast(), y);
                }
            }
        }
    }
}

/// Tile `tile` of the panel of group `g`, into the panel's first tile slot, straight
/// from the (padded) image `src`, without the im2col matrix, for a layer with column
/// stride 1 (`nc.chunks`, see `chunks.rs`): per tap pair, each chunk of columns of
/// both taps' im2col rows is loaded from the image and interleaved into the panel
/// (one tile at a time, so that the tile is still in L1 when it is multiplied).
/// Chunks of columns at or past `N` are not written: they only feed accumulators of
/// columns that are never stored.
///
/// # Safety
/// AVX2 is available. Unchecked loads stay inside `src`: the loops over whole pairs
/// use them only for the pairs whose larger tap base plus the chunks' `reach` fits
/// `src` (`fast`, counted here), and [`fetch`] checks the same per tap; every other
/// access is bounds-checked.
#[target_feature(enable = "avx2")]
pub(super) unsafe fn pack_direct(
    nc: &NativeConv,
    src: &[u8],
    g: usize,
    panel: &mut [u8],
    tile: usize,
) {
    let Some(chunks) = &nc.chunks else {
        return;
    };
    let s = &nc.spec;
    let (hs, ws) = s.extent();
    let goff = g * s.cg() * hs * ws;
    let w = if nc.path == Path::A { 16 } else { 8 };
    let span = (nc.pairs - 1) * TB + 32;
    // Leading pairs whose two taps exist and whose loads all stay inside `src` (tap
    // bases grow with the tap index, so the rest is usually one last pair): their
    // loads below are unchecked; the other pairs go through `fetch`, which checks
    // each tap.
    let fast = match chunks.fast.get(g) {
        // Counted when the layer was planned, for an image of this length.
        Some(&f) if src.len() == chunks.src_len => f,
        _ => chunks.fast_pairs(s.k() / 2, goff, src.len()),
    };
    let p = src.as_ptr().add(goff);
    let per_tile = nc.tile / w;
    let first_chunk = tile * per_tile;
    let these = chunks
        .list
        .iter()
        .enumerate()
        .skip(first_chunk)
        .take(per_tile);
    for (c, ch) in these {
        let d0 = ((c - first_chunk) / 2) * nc.pairs * TB + (c % 2) * 32;
        let dst = &mut panel[d0..d0 + span];
        // The fast loops below store pair `q < fast ≤ pairs` at `q·TB..q·TB + 32`, inside
        // `dst` (`span = (pairs − 1)·TB + 32`), through this pointer unchecked.
        let dp = dst.as_mut_ptr();
        let (path, signed) = (nc.path, nc.spec.x_signed);
        let taps = chunks.taps.chunks_exact(2).enumerate();
        match *ch {
            Chunk::Run(a) => {
                for (q, t) in taps.take(fast) {
                    let (x0, x1) = if w == 16 {
                        let x0 = _mm_loadu_si128(p.add(t[0] + a).cast());
                        (x0, _mm_loadu_si128(p.add(t[1] + a).cast()))
                    } else {
                        let x0 = _mm_loadl_epi64(p.add(t[0] + a).cast());
                        (x0, _mm_loadl_epi64(p.add(t[1] + a).cast()))
                    };
                    put_raw(path, signed, dp.add(q * TB), x0, x1);
                }
            }
            Chunk::Split { a, b, len } => {
                let mask = _mm_loadu_si128(PREFIX[16 - len..].as_ptr().cast());
                for (q, t) in taps.take(fast) {
                    let (u, v) = (p.add(t[0]), p.add(t[1]));
                    let x0 = _mm_blendv_epi8(
                        _mm_loadu_si128(u.add(b).cast()),
                        _mm_loadu_si128(u.add(a).cast()),
                        mask,
                    );
                    let x1 = _mm_blendv_epi8(
                        _mm_loadu_si128(v.add(b).cast()),
                        _mm_loadu_si128(v.add(a).cast()),
                        mask,
                    );
                    put_raw(path, signed, dp.add(q * TB), x0, x1);
                }
            }
            _ => {}
        }
        let first = if *ch != Chunk::Gather { fast } else { 0 };
        for (q, t) in chunks.taps.chunks_exact(2).enumerate().skip(first) {
            let tap = |b: usize| (b != usize::MAX).then(|| b + goff);
            let x0 = fetch(nc, src, tap(t[0]), *ch, (c * w, w));
            let x1 = fetch(nc, src, tap(t[1]), *ch, (c * w, w));
            put(nc, &mut dst[q * TB..q * TB + 32], x0, x1);
        }
    }
}

/// Interleaves the chunks `a`, `b` of a tap pair into the 32 panel bytes `d`: byte
/// pairs (path A) or i16 pairs of the low 8 bytes (path B).
#[target_feature(enable = "avx2")]
#[inline]
unsafe fn put(nc: &NativeConv, d: &mut [u8], a: __m128i, b: __m128i) {
    put_raw(nc.path, nc.spec.x_signed, d[..32].as_mut_ptr(), a, b);
}

/// [`put`] into the 32 bytes at `d` (`signed`: path B's activations are i8).
///
/// # Safety
/// AVX2 is available; `d..d + 32` is writable.
#[target_feature(enable = "avx2")]
#[inline]
unsafe fn put_raw(path: Path, signed: bool, d: *mut u8, a: __m128i, b: __m128i) {
    if path == Path::A {
        _mm_storeu_si128(d.cast(), _mm_unpacklo_epi8(a, b));
        _mm_storeu_si128(d.add(16).cast(), _mm_unpackhi_epi8(a, b));
    } else {
        let i = _mm_unpacklo_epi8(a, b);
        let y = if signed {
            _mm256_cvtepi8_epi16(i)
        } else {
            _mm256_cvtepu8_epi16(i)
        };
        _mm256_storeu_si256(d.cast(), y);
    }
}

/// `source.rs`'s `even_rows` on AVX2: per output row, [`even_bytes`], then the bytes it
/// left one at a time.
///
/// # Safety
/// AVX2 is available.
#[target_feature(enable = "avx2")]
pub(super) unsafe fn even_rows(src: &[u8], (first, rs): (usize, usize), dst: &mut [u8], ow: usize) {
    for (oy, d) in dst.chunks_exact_mut(ow).enumerate() {
        let line = &src[first + oy * rs..];
        let done = even_bytes(line, d);
        for (d, v) in d[done..].iter_mut().zip(line[2 * done..].iter().step_by(2)) {
            *d = *v;
        }
    }
}

/// `dst[i] = src[2·i]` for the 16-byte
/// groups of `dst` whose 32-byte load fits `src`, and a last group overlapping the one
/// before it (it stores the same bytes again) when `dst` has no whole number of them;
/// returns how many leading bytes of `dst` it did. Loads and stores are of
/// bounds-checked subslices.
///
/// # Safety
/// AVX2 is available.
#[target_feature(enable = "avx2")]
#[inline]
unsafe fn even_bytes(src: &[u8], dst: &mut [u8]) -> usize {
    let mut i = 0;
    while i + 16 <= dst.len() && 2 * i + 32 <= src.len() {
        even_group(src, dst, i);
        i += 16;
    }
    let last = dst.len().wrapping_sub(16);
    if i < dst.len() && dst.len() >= 16 && 2 * last + 32 <= src.len() {
        even_group(src, dst, last);
        i = dst.len();
    }
    // Rows of 8 to 15 (ResNet-20's 8×8 layers): eight from a 16-byte load.
    if i + 8 <= dst.len() && 2 * i + 16 <= src.len() {
        let even = _mm_setr_epi8(0, 2, 4, 6, 8, 10, 12, 14, -1, -1, -1, -1, -1, -1, -1, -1);
        let v = _mm_loadu_si128(src[2 * i..2 * i + 16].as_ptr().cast());
        _mm_storel_epi64(dst[i..i + 8].as_mut_ptr().cast(), _mm_shuffle_epi8(v, even));
        i += 8;
    }
    i
}

/// `dst[i + t] = src[2·(i + t)]` for `t < 16`: the even bytes of the 32 at `2·i`.
///
/// # Safety
/// AVX2 is available.
#[target_feature(enable = "avx2")]
#[inline]
unsafe fn even_group(src: &[u8], dst: &mut [u8], i: usize) {
    // Per 128-bit lane, its 8 even bytes into its low half.
    let even = _mm256_setr_epi8(
        0, 2, 4, 6, 8, 10, 12, 14, -1, -1, -1, -1, -1, -1, -1, -1, 0, 2, 4, 6, 8, 10, 12, 14, -1,
        -1, -1, -1, -1, -1, -1, -1,
    );
    let v = _mm256_loadu_si256(src[2 * i..2 * i + 32].as_ptr().cast());
    let e = _mm256_permute4x64_epi64::<0b1000>(_mm256_shuffle_epi8(v, even));
    _mm_storeu_si128(
        dst[i..i + 16].as_mut_ptr().cast(),
        _mm256_castsi256_si128(e),
    );
}

/// Blend masks: the 16 bytes from `PREFIX[16 − len]` have their first `len` (1..16) set.
const PREFIX: [u8; 32] = {
    let mut m = [0u8; 32];
    let mut i = 0;
    while i < 16 {
        m[i] = 0xff;
        i += 1;
    }
    m
};

/// The chunk `ch` (columns `n0..n0 + w`) of the im2col row of the tap at `base` in the
/// low `w` bytes; zero for a missing tap (`None`: the odd tap of the last pair). The
/// unchecked loads are taken only when `base + reach ≤ src.len()` (checked here),
/// which bounds every load of the chunk list (`chunks.rs`).
///
/// # Safety
/// AVX2 is available.
#[target_feature(enable = "avx2")]
#[inline]
unsafe fn fetch(
    nc: &NativeConv,
    src: &[u8],
    tap: Option<usize>,
    ch: Chunk,
    (n0, w): (usize, usize),
) -> __m128i {
    let Some(base) = tap else {
        return _mm_setzero_si128();
    };
    let reach = nc.chunks.as_ref().map_or(usize::MAX, |c| c.reach);
    let fast = base.checked_add(reach).is_some_and(|e| e <= src.len());
    let p = src.as_ptr();
    match ch {
        Chunk::Run(a) if fast && w == 16 => _mm_loadu_si128(p.add(base + a).cast()),
        Chunk::Run(a) if fast => _mm_loadl_epi64(p.add(base + a).cast()),
        Chunk::Split { a, b, len } => {
            let mask = _mm_loadu_si128(PREFIX[16 - len..].as_ptr().cast());
            let va = _mm_loadu_si128(p.add(base + a).cast());
            let vb = _mm_loadu_si128(p.add(base + b).cast());
            _mm_blendv_epi8(vb, va, mask)
        }
        _ if w == 16 => gather::<16>(nc, src, base, n0),
        _ => gather::<8>(nc, src, base, n0),
    }
}

/// Columns `n0..n0 + W` of the im2col row at `base`, copied row segment by row
/// segment (zero past `N`).
#[target_feature(enable = "avx2")]
#[inline(never)]
unsafe fn gather<const W: usize>(nc: &NativeConv, src: &[u8], base: usize, n0: usize) -> __m128i {
    let (ow, rs) = (nc.spec.ow, nc.spec.strides[0] * nc.spec.extent().1);
    let mut tmp = [0u8; 16];
    let (mut n, mut f) = (n0, 0);
    while f < W && n < nc.n {
        let (oy, ox) = (n / ow, n % ow);
        let seg = (ow - ox).min(W - f).min(nc.n - n);
        let at = base + oy * rs + ox;
        tmp[f..f + seg].copy_from_slice(&src[at..at + seg]);
        f += seg;
        n += seg;
    }
    _mm_loadu_si128(tmp.as_ptr().cast())
}
