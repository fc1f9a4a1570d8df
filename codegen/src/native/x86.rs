//! The AVX2 convolution micro-kernels and epilogues of the native form (see `mod.rs`
//! for the algorithm, why each path is exact, and the bounds every pointer offset
//! stays in); the panel they read is built by `pack.rs`.

use std::arch::x86_64::*;

use super::levels::avx2::{
    level_values, level_values16_as32, levels16, levels32, narrow_bytes, store_bytes, widen16,
};
use super::levels::Levels;
use super::{EpiAdd, NativeConv, Path, MR, TB};
use crate::emit::Elem;

/// Tiles `tiles` and channel blocks `blocks` of group `g` of one image into `y`, which
/// starts at output channel `c0` (`N` i32 per channel, or `N` level bytes with a fused
/// `requantize`); `other` is the image's second operand of a chained `scaled_add`
/// (laid out as the whole output, from channel 0).
///
/// # Safety
/// As `pack::interleave`, and `y` holds every channel of `blocks` from `c0` on (`y ≥
/// (min(M, g·M/G + blocks.1·MR) − c0)·N·out_size` bytes, `c0 ≤ g·M/G + blocks.0·MR`).
#[target_feature(enable = "avx2")]
pub(super) unsafe fn compute(
    nc: &NativeConv,
    g: usize,
    panel: &[u8],
    (y, c0, other): (&mut [u8], usize, &[u8]),
    tiles: (usize, usize),
    blocks: (usize, usize),
) {
    // The epilogue's form, picked once: the i32 affine form's per-channel parameters.
    let epi = Epi {
        narrow: nc.epi.as_ref().and_then(|lv| lv.narrow()),
        u8_out: nc.epi.as_ref().is_some_and(|lv| lv.out == Elem::U8),
    };
    // Tile `t` is held in panel slot `t − tiles.0`.
    let xt = |t: usize| panel.as_ptr().add((t - tiles.0) * nc.pairs * TB);
    for t in tiles.0..tiles.1 {
        for b in blocks.0..blocks.1 {
            tile_block(nc, g, (xt(t), t, b), (&mut *y, c0, other), &epi);
        }
    }
}

/// The epilogue's form, picked once per call of [`compute`].
struct Epi<'a> {
    /// The i32 affine form's per-channel parameters (`Levels::narrow`).
    narrow: Option<&'a [super::affine::Params]>,
    u8_out: bool,
}

/// Tile `t` (its panel at `xt`) × channel block `b` of group `g`: the micro-kernel and
/// the epilogue ([`compute`]).
///
/// # Safety
/// As [`compute`]. (Not a `target_feature` function, so that it can be inlined always
/// into [`compute`], which is one; its kernels and epilogues inline there.)
#[inline(always)]
unsafe fn tile_block(
    nc: &NativeConv,
    g: usize,
    (xt, t, b): (*const u8, usize, usize),
    (y, c0, other): (&mut [u8], usize, &[u8]),
    epi: &Epi<'_>,
) {
    let mg = nc.spec.mg();
    let (narrow, u8_out) = (epi.narrow, epi.u8_out);
    let at = (g * nc.blocks + b) * nc.pairs * MR;
    let bias = &nc.bias[(g * nc.blocks + b) * MR..][..MR];
    let rows = (mg - b * MR).min(MR);
    let n0 = t * nc.tile;
    // A last tile of at most 16 columns (path A): only its first half.
    let half = nc.n - n0 <= 16;
    if let (true, Some(lv)) = (nc.short, &nc.epi) {
        let wp = nc.w.as_ptr().add(at);
        let acc = if half {
            tile_a16::<1>(xt, wp, nc.pairs, bias)
        } else {
            tile_a16::<2>(xt, wp, nc.pairs, bias)
        };
        if let Some(add) = &nc.add {
            let acc = Acc::I16(&acc[..rows]);
            let first = g * mg + b * MR;
            chain(nc, (lv, add), acc, first, (&mut *y, c0, other), n0);
            return;
        }
        for (r, a) in acc.iter().enumerate().take(rows) {
            let o = g * mg + b * MR + r;
            let v = match narrow {
                Some(ps) => narrow_bytes(&ps[o], u8_out, &widen16(a)),
                None => levels16(lv, o, a),
            };
            store_bytes(v, y, (o - c0) * nc.n + n0, (nc.n - n0).min(nc.tile));
        }
        return;
    }
    let acc = match nc.path {
        Path::A if half => tile_a::<1>(xt, nc.w.as_ptr().add(at), nc.pairs, nc.flush, bias),
        Path::A => tile_a::<2>(xt, nc.w.as_ptr().add(at), nc.pairs, nc.flush, bias),
        Path::B => tile_b(xt, nc.w.as_ptr().add(at), nc.pairs, bias),
    };
    if let (Some(lv), Some(add)) = (&nc.epi, &nc.add) {
        let first = g * mg + b * MR;
        chain(
            nc,
            (lv, add),
            Acc::I32(&acc[..rows]),
            first,
            (&mut *y, c0, other),
            n0,
        );
        return;
    }
    for (r, a) in acc.iter().enumerate().take(rows) {
        let o = g * mg + b * MR + r;
        match &nc.epi {
            None => store(&a[..nc.tile / 8], y, (o - c0) * nc.n, n0, nc.n),
            Some(lv) => {
                let v = match (nc.path, narrow) {
                    (Path::A, Some(ps)) => narrow_bytes(&ps[o], u8_out, a),
                    (Path::A, None) => levels32::<4>(lv, o, a),
                    (Path::B, _) => levels32::<2>(lv, o, a),
                };
                store_bytes(v, y, (o - c0) * nc.n + n0, (nc.n - n0).min(nc.tile));
            }
        }
    }
}

/// A tile's accumulators per channel of a block: i16 (two vectors of 16 columns, the
/// short form) or i32 (8 columns a vector).
enum Acc<'a> {
    I16(&'a [[__m256i; 2]]),
    I32(&'a [[__m256i; 4]]),
}

/// The chained epilogue of one block of channels (the first is `first`) of a tile
/// starting at column `n0`: the first `requantize`'s level values (`lv`), the fused
/// `scaled_add` with `other`, the second `requantize`, stored as level bytes. Kept out
/// of line so that the plain epilogues keep their registers.
#[target_feature(enable = "avx2")]
#[inline(never)]
unsafe fn chain(
    nc: &NativeConv,
    (lv, add): (&Levels, &EpiAdd),
    acc: Acc<'_>,
    first: usize,
    (y, c0, other): (&mut [u8], usize, &[u8]),
    n0: usize,
) {
    let len = (nc.n - n0).min(nc.tile);
    let rows = match acc {
        Acc::I16(a) => a.len(),
        Acc::I32(a) => a.len(),
    };
    for r in 0..rows {
        let o = first + r;
        let l = match acc {
            Acc::I16(a) => level_values16_as32(lv, o, &a[r]),
            Acc::I32(a) if nc.path == Path::B => level_values::<2>(lv, o, &a[r]),
            Acc::I32(a) => level_values::<4>(lv, o, &a[r]),
        };
        if let Some(grid) = &add.grid {
            let u = grid_u(&l, grid, add.other, &other[o * nc.n + n0..], len);
            store_bytes(levels16(&grid.levels, o, &u), y, (o - c0) * nc.n + n0, len);
            continue;
        }
        let sum = add_other(&l, add, other, o * nc.n + n0, len);
        let v = if nc.path == Path::B {
            levels32::<2>(&add.then, o, &sum)
        } else {
            levels32::<4>(&add.then, o, &sum)
        };
        store_bytes(v, y, (o - c0) * nc.n + n0, len);
    }
}

/// `u = l·a + o·c` of the grid form (`grid.rs`) for the first `len ≤ 32` columns of a
/// tile's row, as i16 in column order (16 a vector): `l` (8 columns a vector) packed to
/// i16 (levels fit), `o` the other operand's bytes from the start of `other`. Wrapping
/// i16 products and sum, exact: `grid.rs` bounds `|l·a|`, `|o·c|`, `|u|` by 32766.
/// Columns past `len` are computed from zeros and never stored.
#[target_feature(enable = "avx2")]
#[inline]
unsafe fn grid_u(
    l: &[__m256i; 4],
    grid: &super::grid::Grid,
    elem: Elem,
    other: &[u8],
    len: usize,
) -> [__m256i; 2] {
    let pack = |a, b| _mm256_permute4x64_epi64::<0b11_01_10_00>(_mm256_packs_epi32(a, b));
    let l16 = [pack(l[0], l[1]), pack(l[2], l[3])];
    let mut bytes = [0u8; 32];
    let src: &[u8] = if len == 32 {
        &other[..32]
    } else {
        bytes[..len].copy_from_slice(&other[..len]);
        &bytes
    };
    let widen = |at: usize| {
        let b = _mm_loadu_si128(src[at..at + 16].as_ptr().cast());
        if elem == Elem::I8 {
            _mm256_cvtepi8_epi16(b)
        } else {
            _mm256_cvtepu8_epi16(b)
        }
    };
    let (a, c) = (_mm256_set1_epi16(grid.a), _mm256_set1_epi16(grid.c));
    let u = |lv: __m256i, o: __m256i| {
        _mm256_add_epi16(_mm256_mullo_epi16(lv, a), _mm256_mullo_epi16(o, c))
    };
    [u(l16[0], widen(0)), u(l16[1], widen(16))]
}

/// `l·k_levels + other·k_other` for the first `len ≤ 32` columns of a tile's row
/// (`l`: 8 columns a vector), `other` read from element `at` on (wrapping i32
/// arithmetic, exact by the plan's bound; see `EpiAdd`). Columns past `len` are
/// computed from zeros and never stored.
#[target_feature(enable = "avx2")]
#[inline]
unsafe fn add_other(
    l: &[__m256i; 4],
    add: &EpiAdd,
    other: &[u8],
    at: usize,
    len: usize,
) -> [__m256i; 4] {
    let (kl, ko) = (
        _mm256_set1_epi32(add.k_levels),
        _mm256_set1_epi32(add.k_other),
    );
    let mut out = *l;
    if len == 32 && add.other != Elem::I32 {
        // A whole tile of byte operands: widen 8 bytes a vector.
        let src = &other[at..at + 32];
        for (i, o) in out.iter_mut().enumerate() {
            let b = _mm_loadl_epi64(src[8 * i..8 * i + 8].as_ptr().cast());
            let w = if add.other == Elem::U8 {
                _mm256_cvtepu8_epi32(b)
            } else {
                _mm256_cvtepi8_epi32(b)
            };
            *o = _mm256_add_epi32(_mm256_mullo_epi32(*o, kl), _mm256_mullo_epi32(w, ko));
        }
        return out;
    }
    let size = add.other.size();
    let mut tmp = [0i32; 32];
    let src = &other[at * size..(at + len) * size];
    match add.other {
        Elem::U8 => tmp
            .iter_mut()
            .zip(src)
            .for_each(|(t, &v)| *t = i32::from(v)),
        Elem::I8 => tmp
            .iter_mut()
            .zip(src)
            .for_each(|(t, &v)| *t = i32::from(v as i8)),
        Elem::I32 => tmp
            .iter_mut()
            .zip(src.chunks_exact(4))
            .for_each(|(t, v)| *t = i32::from_le_bytes([v[0], v[1], v[2], v[3]])),
    }
    for (i, o) in out.iter_mut().enumerate() {
        let w = _mm256_loadu_si256(tmp[8 * i..8 * i + 8].as_ptr().cast());
        *o = _mm256_add_epi32(_mm256_mullo_epi32(*o, kl), _mm256_mullo_epi32(w, ko));
    }
    out
}

/// Stores the i32 vectors `a` (columns `n0..n0 + 8·len`) of a channel whose row
/// starts at element `row`, only the columns `< n`.
#[target_feature(enable = "avx2")]
unsafe fn store(a: &[__m256i], y: &mut [u8], row: usize, n0: usize, n: usize) {
    for (i, v) in a.iter().enumerate() {
        let c = n0 + 8 * i;
        if c + 8 <= n {
            let d = y[(row + c) * 4..(row + c + 8) * 4].as_mut_ptr();
            _mm256_storeu_si256(d.cast(), *v);
        } else if c < n {
            let mut tmp = [0u8; 32];
            _mm256_storeu_si256(tmp.as_mut_ptr().cast(), *v);
            let len = (n - c) * 4;
            y[(row + c) * 4..(row + c) * 4 + len].copy_from_slice(&tmp[..len]);
        }
    }
}

/// Path A kept in i16 (`nc.short`: every partial sum, bias included, fits i16):
/// `MR` channels × 32 columns as two i16×16 halves, never widened; with `H = 1` only
/// the first half is computed (the second holds the bias: its columns are not stored).
#[target_feature(enable = "avx2")]
#[inline]
unsafe fn tile_a16<const H: usize>(
    xt: *const u8,
    wb: *const i32,
    pairs: usize,
    bias: &[i32],
) -> [[__m256i; 2]; MR] {
    let mut s = [[_mm256_setzero_si256(); 2]; MR];
    for (a, &b) in s.iter_mut().zip(bias) {
        *a = [_mm256_set1_epi16(b as i16); 2];
    }
    for q in 0..pairs {
        let x0 = _mm256_loadu_si256(xt.add(q * TB).cast());
        let x1 = if H == 2 {
            _mm256_loadu_si256(xt.add(q * TB + 32).cast())
        } else {
            x0
        };
        let wq = wb.add(q * MR);
        for (r, sr) in s.iter_mut().enumerate() {
            let w = _mm256_set1_epi16(*wq.add(r) as i16);
            sr[0] = _mm256_add_epi16(sr[0], _mm256_maddubs_epi16(x0, w));
            if H == 2 {
                sr[1] = _mm256_add_epi16(sr[1], _mm256_maddubs_epi16(x1, w));
            }
        }
    }
    s
}

/// Path A: `MR` channels × 32 columns; result quarters 0..4 (8 columns each); with
/// `H = 1` only quarters 0..2 (the others hold the bias: their columns are not stored).
#[target_feature(enable = "avx2")]
#[inline]
unsafe fn tile_a<const H: usize>(
    xt: *const u8,
    wb: *const i32,
    pairs: usize,
    flush: usize,
    bias: &[i32],
) -> [[__m256i; 4]; MR] {
    let mut acc = [[_mm256_setzero_si256(); 4]; MR];
    for (a, &b) in acc.iter_mut().zip(bias) {
        *a = [_mm256_set1_epi32(b); 4];
    }
    let mut q0 = 0;
    while q0 < pairs {
        let end = (q0 + flush.max(1)).min(pairs);
        let mut s = [[_mm256_setzero_si256(); 2]; MR];
        for q in q0..end {
            let x0 = _mm256_loadu_si256(xt.add(q * TB).cast());
            let x1 = if H == 2 {
                _mm256_loadu_si256(xt.add(q * TB + 32).cast())
            } else {
                x0
            };
            let wq = wb.add(q * MR);
            for (r, sr) in s.iter_mut().enumerate() {
                let w = _mm256_set1_epi16(*wq.add(r) as i16);
                sr[0] = _mm256_add_epi16(sr[0], _mm256_maddubs_epi16(x0, w));
                if H == 2 {
                    sr[1] = _mm256_add_epi16(sr[1], _mm256_maddubs_epi16(x1, w));
                }
            }
        }
        for (a, sr) in acc.iter_mut().zip(&s) {
            for h in 0..H {
                let lo = _mm256_cvtepi16_epi32(_mm256_castsi256_si128(sr[h]));
                let hi = _mm256_cvtepi16_epi32(_mm256_extracti128_si256::<1>(sr[h]));
                a[2 * h] = _mm256_add_epi32(a[2 * h], lo);
                a[2 * h + 1] = _mm256_add_epi32(a[2 * h + 1], hi);
            }
        }
        q0 = end;
    }
    acc
}

/// Path B: `MR` channels × 16 columns; result halves in quarters 0..2.
#[target_feature(enable = "avx2")]
#[inline]
unsafe fn tile_b(xt: *const u8, wb: *const i32, pairs: usize, bias: &[i32]) -> [[__m256i; 4]; MR] {
    let mut acc = [[_mm256_setzero_si256(); 2]; MR];
    for (a, &b) in acc.iter_mut().zip(bias) {
        *a = [_mm256_set1_epi32(b); 2];
    }
    for q in 0..pairs {
        let x0 = _mm256_loadu_si256(xt.add(q * TB).cast());
        let x1 = _mm256_loadu_si256(xt.add(q * TB + 32).cast());
        let wq = wb.add(q * MR);
        for (r, a) in acc.iter_mut().enumerate() {
            let w = _mm256_set1_epi32(*wq.add(r));
            a[0] = _mm256_add_epi32(a[0], _mm256_madd_epi16(x0, w));
            a[1] = _mm256_add_epi32(a[1], _mm256_madd_epi16(x1, w));
        }
    }
    let z = _mm256_setzero_si256();
    let mut out = [[z; 4]; MR];
    for (o, a) in out.iter_mut().zip(&acc) {
        *o = [a[0], a[1], z, z];
    }
    out
}
