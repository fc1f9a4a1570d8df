//! The native form of `qconv`: a Rust AVX2 micro-kernel, chosen at compile time of the
//! graph when the CPU has AVX2 (`is_x86_feature_detected!`), else the JIT forms are
//! used. It is a plan step like the JIT kernels, but the step executor (`lib.rs`)
//! calls [`run`] (a Rust function) instead of a JIT'd entry address; no machine code
//! is generated for it, so a native layer costs no JIT compile time.
//!
//! **Algorithm.** Per image: copy the image into a zero-padded scratch copy (padding
//! written once, when the arena allocates the scratch, and never written again); per
//! group, build the im2col matrix `col[K_p][N_p]` (`K = C/G·kh·kw` taps, `N = OH·OW`
//! output pixels; rows and columns past `K`/`N` are never written and stay zero), then
//! interleave pairs of its rows into a tiled *panel*: for tap pair `q` and a tile of
//! columns, 64 bytes holding `(x[2q,n], x[2q+1,n])` per column `n`. Weights are packed
//! at compile time per block of [`MR`] output channels as one pair per 16 or 32 bits.
//! The micro-kernel keeps `MR` channels × one tile of accumulators in registers and
//! runs over all pairs:
//!
//! * **Path A** (u8 activations, and `max|x|·(|w0|+|w1|) ≤ 32767` for every weight
//!   pair): tiles of 32 columns; `vpmaddubsw` (u8 × i8 pairs → i16) added in i16 for
//!   [`NativeConv::flush`] pairs, then widened (`vpmovsxwd`) into i32 accumulators.
//!   Exact: no pair sum saturates (its magnitude is at most `max|x|·(|w0|+|w1|) ≤
//!   32767`), and a chunk of `F` pairs sums to at most `F·max_pair ≤ 32767` in
//!   magnitude, so the wrapping i16 adds never wrap. Ternary × u4 gives `F = 1092`.
//! * **Path B** (everything else: i8 activations, 8-bit weights × u8): tiles of 16
//!   columns; activations widened to i16 in the panel, `vpmaddwd` (i16 pairs → i32),
//!   exact because every product fits i16 × i16 and a pair sum fits i32.
//!
//! i32 accumulators start at the bias; i32 adds wrap, but the plan only accepts a layer
//! whose `|bias| + max|x|·Σ|w|` fits i32 (`plan.rs`), so every partial sum is exact.
//! Padding taps, padded columns and padded channels multiply by a zero, or are not
//! stored.
//!
//! **Safety.** The module holds `unsafe` for two reasons: calling the
//! `#[target_feature(enable = "avx2")]` functions, sound because [`NativeConv`] is
//! only built when `is_x86_feature_detected!("avx2")` held and [`run`] checks it again;
//! and the unaligned vector loads/stores through raw pointers in [`interleave`] and
//! [`tile_a`]/[`tile_b`]. Their offsets stay in bounds because [`run`] first checks
//! every slice against the sizes derived here from the same geometry (`panel ≥
//! tiles·pairs·64`, weights `≥ G·blocks·pairs·MR`, `out ≥ n·M·N` i32), and every
//! offset used is `< tiles·pairs·64` (panel), `< G·blocks·pairs·MR` (weights), or a
//! column `< N` of a channel `< M` (output stores go through a bounds-checked copy for
//! the last partial 8 columns).

use crate::emit::conv::ConvSpec;
use crate::error::{CodegenError, Result};

/// Output channels per register block.
pub(crate) const MR: usize = 4;
/// Bytes of one tap pair of one tile in the panel.
const TB: usize = 64;

/// Which multiply the micro-kernel uses (module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Path {
    /// u8 × i8 pairs summed in i16 (`vpmaddubsw`).
    A,
    /// i16 × i16 pairs summed in i32 (`vpmaddwd`).
    B,
}

/// A convolution prepared for the native kernel.
#[derive(Clone, Debug)]
pub(crate) struct NativeConv {
    pub spec: ConvSpec,
    pub path: Path,
    /// Pairs summed in i16 before widening (path A).
    pub flush: usize,
    pairs: usize,
    /// `OH·OW`.
    n: usize,
    /// Columns per tile: 32 (A) or 16 (B).
    tile: usize,
    tiles: usize,
    blocks: usize,
    /// Per (group, block, pair, channel of block): the weight pair, as the low 16 bits
    /// `w0 | w1 << 8` (A) or `w0 | w1 << 16` as i16s (B).
    w: Vec<i32>,
    /// Per (group, block, channel of block).
    bias: Vec<i32>,
}

/// Whether this CPU can run the native kernel.
pub(crate) fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx2")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// The largest `max|x|·(|w0|+|w1|)` over the weight pairs, or `None` when path A does
/// not apply (signed activations).
fn pair_bound(s: &ConvSpec) -> Option<i64> {
    if s.x_signed {
        return None;
    }
    let k = s.k();
    let mut best = 0;
    for o in 0..s.m {
        let row = &s.weights[o * k..(o + 1) * k];
        for p in row.chunks(2) {
            let sum: i64 = p.iter().map(|&v| i64::from(v).abs()).sum();
            best = best.max(sum * s.xmax);
        }
    }
    Some(best)
}

impl NativeConv {
    /// Prepares `s`; `want_a` asks for path A, which is taken only when it is exact.
    /// `None` when the CPU lacks AVX2.
    pub(crate) fn new(s: ConvSpec, want_a: bool) -> Option<NativeConv> {
        if !available() {
            return None;
        }
        let a_ok = pair_bound(&s).filter(|&p| p <= 32767);
        let (path, flush) = match a_ok {
            Some(p) if want_a => (Path::A, (32767 / p.max(1)) as usize),
            _ => (Path::B, 0),
        };
        let k = s.k();
        let pairs = k.div_ceil(2).max(1);
        let n = s.oh * s.ow;
        let tile = if path == Path::A { 32 } else { 16 };
        let tiles = n.div_ceil(tile);
        let (mg, kk) = (s.mg(), k);
        let blocks = mg.div_ceil(MR);
        let mut w = vec![0i32; s.group * blocks * pairs * MR];
        let mut bias = vec![0i32; s.group * blocks * MR];
        for g in 0..s.group {
            for o in 0..mg {
                let oc = g * mg + o;
                let (b, r) = (o / MR, o % MR);
                bias[(g * blocks + b) * MR + r] = s.bias[oc];
                for q in 0..pairs {
                    let at = |t: usize| {
                        if t < kk {
                            s.weights[oc * kk + t]
                        } else {
                            0
                        }
                    };
                    let (w0, w1) = (at(2 * q), at(2 * q + 1));
                    let v = match path {
                        Path::A => i32::from(w0 as u8) | i32::from(w1 as u8) << 8,
                        Path::B => i32::from(w0 as i16 as u16) | i32::from(w1 as i16 as u16) << 16,
                    };
                    w[((g * blocks + b) * pairs + q) * MR + r] = v;
                }
            }
        }
        Some(NativeConv {
            spec: s,
            path,
            flush,
            pairs,
            n,
            tile,
            tiles,
            blocks,
            w,
            bias,
        })
    }

    fn padded(&self) -> bool {
        self.spec.pads.iter().any(|&p| p > 0)
    }
    fn pad_len(&self) -> usize {
        if self.padded() {
            self.spec.pad_bytes()
        } else {
            0
        }
    }
    /// Columns of the im2col matrix: `N` rounded up to whole tiles.
    fn np(&self) -> usize {
        self.tiles * self.tile
    }
    fn col_len(&self) -> usize {
        2 * self.pairs * self.np()
    }
    fn panel_len(&self) -> usize {
        self.tiles * self.pairs * TB
    }
    /// Scratch bytes: padded image, im2col matrix, panel.
    pub(crate) fn scratch_bytes(&self) -> usize {
        self.pad_len() + self.col_len() + self.panel_len()
    }
    /// The form's name in [`crate::CompiledGraph::kernel_forms`].
    pub(crate) fn form_name(&self) -> &'static str {
        match self.path {
            Path::A => "native-a",
            Path::B => "native-b",
        }
    }

    /// Copies image `x` into the padded area (or returns `x` itself when unpadded).
    fn source<'a>(&self, x: &'a [u8], pad: &'a mut [u8]) -> &'a [u8] {
        let s = &self.spec;
        if !self.padded() {
            return x;
        }
        let (hp, wp) = s.extent();
        for c in 0..s.c {
            for y in 0..s.h {
                let src = &x[(c * s.h + y) * s.w..][..s.w];
                let d = (c * hp + y + s.pads[0]) * wp + s.pads[1];
                pad[d..d + s.w].copy_from_slice(src);
            }
        }
        pad
    }

    /// Fills rows `0..K` of `col` with the im2col matrix of group `g`.
    fn im2col(&self, src: &[u8], g: usize, col: &mut [u8]) {
        let s = &self.spec;
        let (hs, ws) = s.extent();
        let np = self.np();
        let (cg, [sh, sw], [dh, dw]) = (s.cg(), s.strides, s.dilations);
        for ci in 0..cg {
            let c = g * cg + ci;
            for ki in 0..s.kh {
                for kj in 0..s.kw {
                    let k = (ci * s.kh + ki) * s.kw + kj;
                    let row = &mut col[k * np..k * np + self.n];
                    for oy in 0..s.oh {
                        let base = (c * hs + oy * sh + ki * dh) * ws + kj * dw;
                        let dst = &mut row[oy * s.ow..(oy + 1) * s.ow];
                        if sw == 1 {
                            dst.copy_from_slice(&src[base..base + s.ow]);
                        } else {
                            let line = &src[base..base + (s.ow - 1) * sw + 1];
                            for (d, v) in dst.iter_mut().zip(line.iter().step_by(sw)) {
                                *d = *v;
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Runs the convolution on `n` images: `x` holds `n·C·H·W` bytes, `out` receives
/// `n·M·OH·OW` little-endian i32, `scratch` is this step's scratch area.
pub(crate) fn run(
    nc: &NativeConv,
    n: usize,
    x: &[u8],
    out: &mut [u8],
    scratch: &mut [u8],
) -> Result<()> {
    let s = &nc.spec;
    let in_item = s.c * s.h * s.w;
    let out_item = s.m * nc.n * 4;
    let fits = x.len() >= n * in_item
        && out.len() >= n * out_item
        && scratch.len() >= nc.scratch_bytes()
        && nc.w.len() >= s.group * nc.blocks * nc.pairs * MR
        && nc.bias.len() >= s.group * nc.blocks * MR
        && available();
    if !fits {
        return Err(CodegenError::Invalid(
            "internal error: native kernel buffers do not have their planned sizes".into(),
        ));
    }
    let (pad, rest) = scratch.split_at_mut(nc.pad_len());
    let (col, panel) = rest.split_at_mut(nc.col_len());
    for img in 0..n {
        let xi = &x[img * in_item..(img + 1) * in_item];
        let yi = &mut out[img * out_item..(img + 1) * out_item];
        let src = nc.source(xi, pad);
        for g in 0..s.group {
            nc.im2col(src, g, col);
            #[cfg(target_arch = "x86_64")]
            // SAFETY: AVX2 was detected (`available()` above); the sizes were checked
            // above (module docs).
            unsafe {
                x86::interleave(nc, col, panel);
                x86::compute(nc, g, panel, yi);
            }
        }
    }
    Ok(())
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::{NativeConv, Path, MR, TB};

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

    /// All tiles and channel blocks of group `g` of one image into `y` (`M·N` i32).
    ///
    /// # Safety
    /// As [`interleave`], and `y ≥ M·N·4` bytes.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn compute(nc: &NativeConv, g: usize, panel: &[u8], y: &mut [u8]) {
        let mg = nc.spec.mg();
        for t in 0..nc.tiles {
            let xt = panel.as_ptr().add(t * nc.pairs * TB);
            for b in 0..nc.blocks {
                let wb = nc.w.as_ptr().add((g * nc.blocks + b) * nc.pairs * MR);
                let bias = &nc.bias[(g * nc.blocks + b) * MR..][..MR];
                let acc = match nc.path {
                    Path::A => tile_a(xt, wb, nc.pairs, nc.flush, bias),
                    Path::B => tile_b(xt, wb, nc.pairs, bias),
                };
                let rows = (mg - b * MR).min(MR);
                for (r, a) in acc.iter().enumerate().take(rows) {
                    let o = g * mg + b * MR + r;
                    store(&a[..nc.tile / 8], y, o * nc.n, t * nc.tile, nc.n);
                }
            }
        }
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

    /// Path A: `MR` channels × 32 columns; result quarters 0..4 (8 columns each).
    #[target_feature(enable = "avx2")]
    #[inline]
    unsafe fn tile_a(
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
                let x1 = _mm256_loadu_si256(xt.add(q * TB + 32).cast());
                let wq = wb.add(q * MR);
                for (r, sr) in s.iter_mut().enumerate() {
                    let w = _mm256_set1_epi16(*wq.add(r) as i16);
                    sr[0] = _mm256_add_epi16(sr[0], _mm256_maddubs_epi16(x0, w));
                    sr[1] = _mm256_add_epi16(sr[1], _mm256_maddubs_epi16(x1, w));
                }
            }
            for (a, sr) in acc.iter_mut().zip(&s) {
                for h in 0..2 {
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
    unsafe fn tile_b(
        xt: *const u8,
        wb: *const i32,
        pairs: usize,
        bias: &[i32],
    ) -> [[__m256i; 4]; MR] {
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
}
