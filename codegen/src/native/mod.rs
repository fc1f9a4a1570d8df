//! The native form of `qconv`: a Rust AVX2 micro-kernel, chosen at compile time of the
//! graph when the CPU has AVX2 (`is_x86_feature_detected!`), else the JIT forms are
//! used. It is a plan step like the JIT kernels, but the step executor (`lib.rs`)
//! calls [`run`] (a Rust function) instead of a JIT'd entry address; no machine code
//! is generated for it, so a native layer costs no JIT compile time.
//!
//! **Algorithm.** Per image: copy the image into a zero-padded scratch copy (padding
//! written once, when the arena allocates the scratch, and never written again); per
//! group, with column stride 1, pack the panel below straight from that copy
//! (`pack::pack_direct`: runs of output columns are runs of image bytes); else build
//! the im2col matrix `col[K_p][N_p]` (`K = C/G·kh·kw` taps, `N = OH·OW`
//! output pixels; rows and columns past `K`/`N` are never written: they hold whatever
//! an earlier layer left in the *work area* the im2col matrix and the panel share with
//! every native layer of the graph (one per arena, so it stays in cache), and only meet
//! zero weights (rows past `K`) or feed columns that are never stored), then
//! interleave pairs of its rows into a tiled *panel*: for tap pair `q` and a tile of
//! columns, 64 bytes holding `(x[2q,n], x[2q+1,n])` per column `n`. Weights are packed
//! at compile time per block of [`MR`] output channels as one pair per 16 or 32 bits.
//! The micro-kernel keeps `MR` channels × one tile of accumulators in registers and
//! runs over all pairs:
//!
//! * **Path A** (u8 activations — or i8 ones offset to u8 as the image is copied,
//!   with the offset's contribution taken out of the bias (`source.rs`) — and
//!   `max|x|·(|w0|+|w1|) ≤ 32767` for every weight pair): tiles of 32 columns; `vpmaddubsw` (u8 × i8 pairs → i16) added in i16 for
//!   [`NativeConv::flush`] pairs, then widened (`vpmovsxwd`) into i32 accumulators.
//!   Exact: no pair sum saturates (its magnitude is at most `max|x|·(|w0|+|w1|) ≤
//!   32767`), and a chunk of `F` pairs sums to at most `F·max_pair ≤ 32767` in
//!   magnitude, so the wrapping i16 adds never wrap. Ternary × u4 gives `F = 1092`.
//! * **Path B** (everything else: wide weights × 8-bit activations): tiles of 16
//!   columns; activations widened to i16 in the panel, `vpmaddwd` (i16 pairs → i32),
//!   exact because every product fits i16 × i16 and a pair sum fits i32.
//!
//! **Epilogue.** When `fuse.rs` fused the following `requantize` into the layer
//! ([`NativeConv::epi`]), each register tile is turned into level bytes by
//! `levels.rs` — by its compares, or by an exact integer affine map where one was found
//! for the accumulators' range (`affine.rs`, 4-bit outputs) — and stored as such;
//! otherwise the i32 accumulators are stored. When a
//! residual `scaled_add` and its `requantize` follow, they are chained on the level
//! values in registers ([`EpiAdd`]) and only the final levels are stored. On
//! path A, when all pairs fit one i16 chunk and the layer's bound `|bias| +
//! max|x|·Σ|w|` is at most 32766, the accumulators start at the bias in i16 and are
//! never widened: every partial sum is bounded by the layer's bound, so the i16 adds
//! are exact, and the thresholds are compared in i16 (`levels16`).
//!
//! i32 accumulators start at the bias; i32 adds wrap, but the plan only accepts a layer
//! whose `|bias| + max|x|·Σ|w|` fits i32 (`plan.rs`), so every partial sum is exact.
//! Padding taps, padded columns and padded channels multiply by a zero, or are not
//! stored.
//!
//! **Safety.** The module holds `unsafe` for two reasons: calling the
//! `#[target_feature(enable = "avx2")]` functions, sound because [`NativeConv`] is
//! only built when `is_x86_feature_detected!("avx2")` held and [`run`] checks it again;
//! and the unaligned vector loads/stores through raw pointers in `pack::interleave` and
//! `x86::tile_a`/`tile_b`. Their offsets stay in bounds because [`run`] first checks
//! every slice against the sizes derived here from the same geometry (`panel ≥
//! tiles·pairs·64`, weights `≥ G·blocks·pairs·MR`, `out ≥ n·M·N` i32 or level bytes), and every
//! offset used is `< tiles·pairs·64` (panel), `< G·blocks·pairs·MR` (weights), or a
//! column `< N` of a channel `< M` (output stores go through a bounds-checked copy for
//! the last partial 8 columns).

mod affine;
mod chunks;
pub(crate) mod gemv;
mod grid;
pub(crate) mod levels;
pub(crate) mod pool;
mod slope;
mod source;

use crate::emit::conv::ConvSpec;
use crate::error::{CodegenError, Result};
use chunks::Chunks;
pub(crate) use grid::EpiAdd;
use levels::Levels;

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
    /// `w0 | w1 << 8` (A) or `w0 | w1 << 16` as i16s (B). (Storing path A's pairs in 2
    /// bytes made the kernels execute more instructions: ResNet-18 +2.5 %.)
    w: Vec<i32>,
    /// Per (group, block, channel of block).
    bias: Vec<i32>,
    /// The fused `requantize` (`levels.rs`): the step then writes one level byte per
    /// output instead of an i32.
    pub epi: Option<Levels>,
    /// After `epi`: a fused `scaled_add` of its levels and a same-shape tensor (the
    /// step's second operand), then a second `requantize` (`EpiAdd`).
    pub add: Option<EpiAdd>,
    /// With column stride 1: where the direct packing reads each chunk of columns.
    chunks: Option<Chunks>,
    /// Path A with every pair in one i16 chunk (`pairs ≤ flush`) and `|bias| +
    /// max|x|·Σ|w| ≤ 32766`: with a fused `requantize`, the accumulators stay i16 and
    /// are compared in i16 (`x86::tile_a16`, `levels::avx2::levels16`).
    short: bool,
    /// Path A on signed activations: the image is offset to unsigned (`x ^ 0x80`) as it
    /// is copied, and `bias` holds `bias − 128·Σw` (`source.rs` says why that is exact).
    flip: bool,
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
pub(super) fn pair_bound(s: &ConvSpec) -> Option<i64> {
    if s.x_signed {
        return None;
    }
    pair_bound_at(s, s.xmax)
}

/// Path A's largest activation: `max|x|`, or `128 + max|x|` (at most 255) for signed
/// activations offset to unsigned (`source.rs`).
fn xmax_a(s: &ConvSpec) -> i64 {
    if s.x_signed {
        (128 + s.xmax).min(255)
    } else {
        s.xmax
    }
}

/// The largest `xmax·(|w0|+|w1|)` over the weight pairs.
fn pair_bound_at(s: &ConvSpec, xmax: i64) -> Option<i64> {
    let k = s.k();
    let mut best = 0;
    for o in 0..s.m {
        let row = &s.weights[o * k..(o + 1) * k];
        for p in row.chunks(2) {
            let sum: i64 = p.iter().map(|&v| i64::from(v).abs()).sum();
            best = best.max(sum * xmax);
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
        let k = s.k();
        // Per channel: the bias the accumulators start at on path A (offset by
        // `−128·Σw` for signed activations, `source.rs`) and `|that| + xmax·Σ|w|`.
        let xa = xmax_a(&s);
        let bias_a: Vec<(i64, i64)> = (0..s.m)
            .map(|o| {
                let row = &s.weights[o * k..(o + 1) * k];
                let sum: i64 = row.iter().map(|&v| i64::from(v)).sum();
                let abs: i64 = row.iter().map(|&v| i64::from(v).abs()).sum();
                let b = i64::from(s.bias[o]) - if s.x_signed { 128 * sum } else { 0 };
                (b, b.abs() + xa * abs)
            })
            .collect();
        let bound_a = bias_a.iter().map(|&(_, b)| b).max().unwrap_or(0);
        let a_ok = pair_bound_at(&s, xa).filter(|&p| p <= 32767 && bound_a <= i64::from(i32::MAX));
        let (path, flush) = match a_ok {
            Some(p) if want_a => (Path::A, (32767 / p.max(1)) as usize),
            _ => (Path::B, 0),
        };
        let flip = path == Path::A && s.x_signed;
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
                bias[(g * blocks + b) * MR + r] = match path {
                    // Within i32: `bound_a` is.
                    Path::A => bias_a[oc].0 as i32,
                    Path::B => s.bias[oc],
                };
                for q in 0..pairs {
                    let at = |t: usize| {
                        if t < kk {
                            s.weights[oc * kk + t]
                        } else {
                            0
                        }
                    };
                    let (w0, w1) = (at(2 * q), at(2 * q + 1));
                    let at = ((g * blocks + b) * pairs + q) * MR + r;
                    match path {
                        Path::A => w[at] = i32::from(w0 as u8) | i32::from(w1 as u8) << 8,
                        Path::B => {
                            w[at] = i32::from(w0 as i16 as u16) | i32::from(w1 as i16 as u16) << 16
                        }
                    }
                }
            }
        }
        let chunks = (s.strides[1] == 1).then(|| {
            let w = if path == Path::A { 16 } else { 8 };
            let (hs, ws) = s.extent();
            let mut c = Chunks::new(n, s.ow, s.strides[0] * ws, w);
            c.taps = (0..2 * pairs)
                .map(|t| {
                    let (ci, ki, kj) = (t / (s.kh * s.kw), (t / s.kw) % s.kh, t % s.kw);
                    let b = (ci * hs + ki * s.dilations[0]) * ws + kj * s.dilations[1];
                    if t < k {
                        b
                    } else {
                        usize::MAX
                    }
                })
                .collect();
            let group_len = s.cg() * hs * ws;
            c.src_len = s.c * hs * ws;
            c.fast = (0..s.group)
                .map(|g| c.fast_pairs(k / 2, g * group_len, c.src_len))
                .collect();
            c
        });
        let short = path == Path::A && pairs <= flush && bound_a <= 32766;
        Some(NativeConv {
            short,
            flip,
            chunks,
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
            epi: None,
            add: None,
        })
    }

    fn padded(&self) -> bool {
        self.spec.pads.iter().any(|&p| p > 0)
    }
    fn pad_len(&self) -> usize {
        if self.padded() {
            self.spec.pad_bytes()
        } else if self.flip {
            self.spec.c * self.spec.h * self.spec.w
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
    /// The step's own scratch bytes: the padded (or offset) image, whose zero border is
    /// written once, when the arena allocates it (an offset image's border: each run).
    pub(crate) fn scratch_bytes(&self) -> usize {
        self.pad_len()
    }
    /// Bytes of the shared work area: im2col matrix and panel (module docs).
    pub(crate) fn work_bytes(&self) -> usize {
        self.col_len() + self.panel_len()
    }
    /// The form's name in [`crate::CompiledGraph::kernel_forms`].
    pub(crate) fn form_name(&self) -> &'static str {
        // Per path: no epilogue; thresholds; affine; then, per first epilogue, the
        // chained add's levels by thresholds, affine, grid, grid with affine.
        macro_rules! names {
            ($p:literal) => {
                [
                    $p,
                    concat!($p, "+requantize"),
                    concat!($p, "+requantize(affine)"),
                    concat!($p, "+requantize+add+requantize"),
                    concat!($p, "+requantize+add+requantize(affine)"),
                    concat!($p, "+requantize+add+requantize(grid)"),
                    concat!($p, "+requantize+add+requantize(grid,affine)"),
                    concat!($p, "+requantize(affine)+add+requantize"),
                    concat!($p, "+requantize(affine)+add+requantize(affine)"),
                    concat!($p, "+requantize(affine)+add+requantize(grid)"),
                    concat!($p, "+requantize(affine)+add+requantize(grid,affine)"),
                ]
            };
        }
        const NAMES: [[&str; 11]; 2] = [names!("native-a"), names!("native-b")];
        let epi = self.epi.as_ref().map(Levels::is_affine);
        let then = self.add.as_ref().map(|a| match &a.grid {
            None => usize::from(a.then.is_affine()),
            Some(g) => 2 + usize::from(g.levels.is_affine()),
        });
        let i = match (epi, then) {
            (None, _) => 0,
            (Some(e), None) => 1 + usize::from(e),
            (Some(e), Some(t)) => 3 + 4 * usize::from(e) + t,
        };
        NAMES[usize::from(self.path == Path::B)][i]
    }

    /// Chains `add` after the fused `requantize` (which must be there): the step then
    /// stores `add.then`'s levels.
    pub(crate) fn fuse_add(&mut self, add: EpiAdd) {
        self.add = Some(add);
    }

    /// Bytes per image of the fused add's second operand (0 without one).
    fn other_item(&self) -> usize {
        self.add
            .as_ref()
            .map_or(0, |a| self.spec.m * self.n * a.other.size())
    }

    /// Bytes per output element: an i32, or a level byte with a fused `requantize`.
    pub(crate) fn out_size(&self) -> usize {
        match (&self.add, &self.epi) {
            (Some(a), _) => a.then.out.size(),
            (None, Some(e)) => e.out.size(),
            (None, None) => 4,
        }
    }
}

/// Checks every slice [`run`] and [`run_split`] touch against the planned sizes.
fn check(
    nc: &NativeConv,
    n: usize,
    (x, other): (&[u8], &[u8]),
    out: &[u8],
    scratch: &[u8],
    work: &[u8],
) -> Result<()> {
    let s = &nc.spec;
    let fits = x.len() >= n * s.c * s.h * s.w
        && other.len() >= n * nc.other_item()
        && nc
            .add
            .as_ref()
            .is_none_or(|a| nc.epi.is_some() && a.then.channels() == s.m)
        && nc.epi.as_ref().is_none_or(|e| e.channels() == s.m)
        && out.len() >= n * s.m * nc.n * nc.out_size()
        && scratch.len() >= nc.scratch_bytes()
        && work.len() >= nc.work_bytes()
        && nc.w.len() >= s.group * nc.blocks * nc.pairs * MR
        && nc.bias.len() >= s.group * nc.blocks * MR
        && available();
    if fits {
        Ok(())
    } else {
        Err(CodegenError::Invalid(
            "internal error: native kernel buffers do not have their planned sizes".into(),
        ))
    }
}

/// Runs the convolution on `n` images: `x` holds `n·C·H·W` bytes, `out` receives
/// `n·M·OH·OW` little-endian i32 (or level bytes), `scratch` is this step's scratch
/// area (the padded image) and `work` the arena's shared work area.
pub(crate) fn run(
    nc: &NativeConv,
    n: usize,
    (x, other): (&[u8], &[u8]),
    out: &mut [u8],
    scratch: &mut [u8],
    work: &mut [u8],
) -> Result<()> {
    check(nc, n, (x, other), out, scratch, work)?;
    let s = &nc.spec;
    let in_item = s.c * s.h * s.w;
    let out_item = s.m * nc.n * nc.out_size();
    let pad = &mut scratch[..nc.pad_len()];
    let (col, panel) = work.split_at_mut(nc.col_len());
    for img in 0..n {
        let xi = &x[img * in_item..(img + 1) * in_item];
        let oi = &other[img * nc.other_item()..(img + 1) * nc.other_item()];
        let yi = &mut out[img * out_item..(img + 1) * out_item];
        let src = nc.source(xi, pad);
        for g in 0..s.group {
            let all = (0, nc.blocks);
            let direct = nc.chunks.is_some();
            if !direct {
                nc.im2col(src, g, col);
            }
            #[cfg(target_arch = "x86_64")]
            // SAFETY: AVX2 was detected (`available()` in `check`); the sizes were
            // checked there (module docs); `yi` holds every channel from 0 on.
            unsafe {
                if direct {
                    for t in 0..nc.tiles {
                        pack::pack_direct(nc, src, g, panel, t);
                        x86::compute(nc, g, panel, (&mut *yi, 0, oi), (t, t + 1), all);
                    }
                } else {
                    pack::interleave(nc, col, panel);
                    x86::compute(nc, g, panel, (&mut *yi, 0, oi), (0, nc.tiles), all);
                }
            }
        }
    }
    Ok(())
}

/// Fewest MACs per image for which [`run_split`] shares a layer between threads by
/// default ([`crate::Arena::split_channels`]). Each
/// split costs a hand-off to the helpers and back (tens of µs when a helper has gone
/// to sleep): measured (`reports/bench.md`, batch 1, 2 threads), splitting every layer
/// made ResNet-20 (2.4 M MACs a layer) slower, 0.88 → 1.22 ms, and ResNet-18 (≥ 100 M
/// a layer) faster, 25.1 → 21.1 ms.
pub(crate) const MIN_SPLIT_MACS: usize = 16 << 20;

/// Where a part of [`run_split`] reads its panel.
enum Panel<'a> {
    /// Its own buffer, into which it packs each tile (direct packing).
    Own(&'a mut [u8]),
    /// The whole panel, built before the parts start.
    Shared(&'a [u8]),
}

impl NativeConv {
    /// Bytes of a helper's panel for [`run_split`]: one tile (direct packing), or none
    /// (the helpers read the panel the calling thread built).
    pub(crate) fn helper_bytes(&self) -> usize {
        if self.chunks.is_some() {
            self.pairs * TB
        } else {
            0
        }
    }
}

/// As [`run`], with each image's output channels split between the calling thread
/// and one helper per buffer of `helpers` (run on `pool`): each part computes a
/// contiguous range of channel blocks into its own contiguous range of the output.
/// With direct packing every part packs the tiles it multiplies into its own panel;
/// otherwise the calling thread builds the whole panel first and the parts share it.
/// Layers with groups, too few blocks to share or fewer than `min_macs` MACs per image
/// run as [`run`] does.
#[allow(clippy::too_many_arguments)]
pub(crate) fn run_split(
    nc: &NativeConv,
    n: usize,
    (x, other): (&[u8], &[u8]),
    out: &mut [u8],
    scratch: &mut [u8],
    work: &mut [u8],
    helpers: &mut [Vec<u8>],
    (pool, min_macs): (&rayon::ThreadPool, usize),
) -> Result<()> {
    let parts = helpers.len() + 1;
    let s = &nc.spec;
    let small = s.m * nc.n * s.k() < min_macs;
    if small
        || s.group != 1
        || nc.blocks < parts
        || helpers.iter().any(|h| h.len() < nc.helper_bytes())
    {
        return run(nc, n, (x, other), out, scratch, work);
    }
    check(nc, n, (x, other), out, scratch, work)?;
    let in_item = s.c * s.h * s.w;
    let per_channel = nc.n * nc.out_size();
    let out_item = s.m * per_channel;
    let pad = &mut scratch[..nc.pad_len()];
    let (col, panel) = work.split_at_mut(nc.col_len());
    // Part `i` computes blocks `bounds[i]..bounds[i + 1]`: channels from
    // `bounds[i]·MR` to `min(bounds[i + 1]·MR, M)`.
    let bounds: Vec<usize> = (0..=parts).map(|i| nc.blocks * i / parts).collect();
    for img in 0..n {
        let xi = &x[img * in_item..(img + 1) * in_item];
        let oi = &other[img * nc.other_item()..(img + 1) * nc.other_item()];
        let mut yi = &mut out[img * out_item..(img + 1) * out_item];
        let src: &[u8] = nc.source(xi, pad);
        let direct = nc.chunks.is_some();
        if !direct {
            nc.im2col(src, 0, col);
            #[cfg(target_arch = "x86_64")]
            // SAFETY: as in `run`.
            unsafe {
                pack::interleave(nc, col, panel);
            }
        }
        let mut slices = Vec::with_capacity(parts);
        for i in 0..parts {
            let (c0, c1) = (bounds[i] * MR, (bounds[i + 1] * MR).min(s.m));
            let (mine, rest) = std::mem::take(&mut yi).split_at_mut((c1 - c0) * per_channel);
            slices.push(((bounds[i], bounds[i + 1]), c0, mine));
            yi = rest;
        }
        // A part's panel: its own tile slot (direct packing), or the shared panel.
        let part = |blocks: (usize, usize), c0: usize, y: &mut [u8], panel: Panel<'_>| {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: as in `run`; `y` holds exactly the channels of `blocks`, from
            // `c0` on, and an own panel one tile (`helper_bytes`).
            unsafe {
                match panel {
                    Panel::Own(own) => {
                        for t in 0..nc.tiles {
                            pack::pack_direct(nc, src, 0, own, t);
                            x86::compute(nc, 0, own, (&mut *y, c0, oi), (t, t + 1), blocks);
                        }
                    }
                    Panel::Shared(p) => {
                        x86::compute(nc, 0, p, (&mut *y, c0, oi), (0, nc.tiles), blocks);
                    }
                }
            }
        };
        let mut it = slices.into_iter();
        let Some((first, c0, y0)) = it.next() else {
            continue;
        };
        let (mine, shared) = if direct {
            (Panel::Own(&mut *panel), None)
        } else {
            let p: &[u8] = panel;
            (Panel::Shared(p), Some(p))
        };
        pool.in_place_scope(|scope| {
            for ((blocks, c0, y), own) in it.zip(helpers.iter_mut()) {
                let part = &part;
                let p = shared.map_or(Panel::Own(own), Panel::Shared);
                scope.spawn(move |_| part(blocks, c0, y, p));
            }
            part(first, c0, y0, mine);
        });
    }
    Ok(())
}

#[cfg(target_arch = "x86_64")]
mod pack;
#[cfg(target_arch = "x86_64")]
mod x86;
