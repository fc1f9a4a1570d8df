//! Threshold `requantize` on AVX2 for outputs of at most [`MAX_LEVELS`] thresholds (up
//! to 4-bit activations), vectorised over pixels: as the epilogue of the native
//! convolution (its i32 accumulators never reach memory), and as a native step for a
//! `requantize` of a computed i32 tensor, optionally fused with the `scaled_add` that
//! produced it (`fuse.rs` decides which).
//!
//! **Semantics** (the interpreter's): for channel `c` with thresholds `T[c,0..L]`,
//! `level = qmin + #{k : T[c,k] <= acc}` (ascending) or `qmin + #{k : T[c,k] >= acc}`
//! (descending). Rewritten as `qmin + L − #{k : T[c,k] > acc}` and `qmin + L −
//! #{k : acc > T[c,k]}`: one signed `vpcmpgtd` per threshold gives −1 exactly on the
//! lanes to subtract, so eight accumulators get their level from `L` compares and adds
//! starting at `qmin + L`, independent of the order of the thresholds. Where
//! `affine.rs` found (and verified) an integer affine map equal to the thresholds on
//! the operand's whole range, the levels are computed by it instead: a multiply, add,
//! shift and clamp per vector, whatever the number of thresholds.
//!
//! **Exactness.** The level lies in `qmin..=qmax` of a ≤ 8-bit type, so the saturating
//! packs i32 → i16 → u8/i8 (`vpackssdw`, then `vpackuswb` or `vpacksswb`) are the
//! identity; a dword permutation undoes their lane interleave. A fused `scaled_add`
//! computes `a·ka + b·kb` with wrapping `vpmulld`/`vpaddd`, exact because the plan
//! accepts the add only when `|ka|·max|a| + |kb|·max|b|` fits i32. Lanes past the end
//! of a row are computed from zeros and never stored.
//!
//! **Safety.** As `mod.rs`: the functions are `#[target_feature(enable = "avx2")]` and
//! called only after AVX2 was detected; every load and store goes through a
//! bounds-checked subslice of at least the bytes the intrinsic touches (partial groups
//! are staged through a local array).

use super::affine::{Affine, Params};
use crate::emit::misc::{AddSpec, RequantSpec};
use crate::emit::Elem;
use crate::error::{CodegenError, Result};

/// Most thresholds per channel compared here (`2^4`: up to 4-bit outputs); more (8-bit
/// outputs) only with an affine form, else they go to the JIT'd 16-ary search of
/// `emit/misc.rs` (a vectorised binary search with `vpgatherdd` halved the instructions
/// but measured slower on Zen 3).
pub(crate) const MAX_LEVELS: usize = 16;

/// The thresholds of a `requantize` (see the module docs).
#[derive(Clone, Debug)]
pub(crate) struct Levels {
    /// Per channel, its `l` thresholds (any order).
    t: Vec<i32>,
    /// The same, clamped to `-32768..=32767` (for accumulators within ±32766).
    t16: Vec<i16>,
    l: usize,
    desc: Vec<bool>,
    /// `qmin + l`.
    base: i32,
    /// Output storage: `U8` or `I8`.
    pub(crate) out: Elem,
    /// The same levels as an exact affine map on the operand's range, when one was
    /// found and pays (`affine.rs`): computed instead of the compares.
    affine: Option<Affine>,
}

impl Levels {
    /// The levels of `s` for operands within `±bound` (the plan's bound, if known): with
    /// the affine form where every channel has an exact one and there are enough
    /// thresholds for it to pay (`affine.rs`). `None` for an i32 output, and for more
    /// than [`MAX_LEVELS`] thresholds without an affine form (their compares would cost
    /// more than the JIT's search).
    pub(crate) fn new(s: &RequantSpec, bound: Option<i64>) -> Option<Levels> {
        Levels::with(s, |t| {
            bound.and_then(|b| Affine::fit(t, s.l, &s.descending, s.qmin, b))
        })
    }

    /// As [`Levels::new`] for an operand that only takes the values `points` (every sum
    /// of a `scaled_add`'s two low-bit operands): the affine form fitted on those
    /// (`Affine::fit_on_points`), which 8-bit residual sums need.
    pub(crate) fn on_points(s: &RequantSpec, points: &[i64]) -> Option<Levels> {
        Levels::with(s, |t| {
            Affine::fit_on_points(t, s.l, &s.descending, s.qmin, points)
        })
    }

    /// The levels of `s` with the affine form `fit` finds for its thresholds.
    fn with(s: &RequantSpec, fit: impl FnOnce(&[i32]) -> Option<Affine>) -> Option<Levels> {
        let ok = s.l <= 256
            && s.out != Elem::I32
            && s.thresholds.len() == s.c * s.l
            && s.descending.len() == s.c;
        if !ok {
            return None;
        }
        let affine = fit(&s.thresholds);
        if s.l > MAX_LEVELS && affine.is_none() {
            return None;
        }
        let t16 = s.thresholds.iter().map(|&t| t.clamp(-32768, 32767) as i16);
        Some(Levels {
            t16: t16.collect(),
            t: s.thresholds.clone(),
            l: s.l,
            desc: s.descending.clone(),
            base: (s.qmin + s.l as i64) as i32,
            out: s.out,
            affine,
        })
    }

    /// Whether the levels are computed by the affine form.
    pub(crate) fn is_affine(&self) -> bool {
        self.affine.is_some()
    }

    /// Channels (the thresholds' rows).
    pub(crate) fn channels(&self) -> usize {
        self.desc.len()
    }

    /// The thresholds (`l` per channel), `l`, and the directions.
    pub(super) fn parts(&self) -> (&[i32], usize, &[bool]) {
        (&self.t, self.l, &self.desc)
    }

    /// The same levels (count, directions, `qmin`, output) at thresholds `t`, without
    /// an affine form.
    pub(super) fn with_thresholds(&self, t: Vec<i32>) -> Levels {
        Levels {
            t16: t.iter().map(|&v| v.clamp(-32768, 32767) as i16).collect(),
            t,
            l: self.l,
            desc: self.desc.clone(),
            base: self.base,
            out: self.out,
            affine: None,
        }
    }

    /// These levels computed by `affine` (which must equal them wherever they are used).
    pub(super) fn with_affine(mut self, affine: Option<Affine>) -> Levels {
        self.affine = affine;
        self
    }

    /// Per channel, the parameters of the affine form when it is the i32 one (offset
    /// folded: `level = clamp((v·m + b) >> shift, lo, hi)`), for epilogues that pick
    /// the form once per layer rather than once per channel.
    pub(crate) fn narrow(&self) -> Option<&[Params]> {
        self.affine.as_ref().filter(|a| !a.wide).map(|a| &a.ch[..])
    }

    /// The levels' range `(qmin, qmax)`.
    pub(crate) fn range(&self) -> (i64, i64) {
        let base = i64::from(self.base);
        (base - self.l as i64, base)
    }

    fn row(&self, ch: usize) -> (&[i32], bool) {
        (&self.t[ch * self.l..(ch + 1) * self.l], self.desc[ch])
    }
}

/// A native `requantize` step: `c` channels of `inner` i32 elements each per image, or
/// (`add`) the `scaled_add` of two same-shape tensors requantized without storing the
/// sum.
#[derive(Clone, Debug)]
pub(crate) struct NativeRequant {
    pub levels: Levels,
    pub inner: usize,
    pub add: Option<AddSpec>,
}

impl NativeRequant {
    /// The form's name in [`crate::CompiledGraph::kernel_forms`].
    pub(crate) fn form_name(&self) -> &'static str {
        match (&self.add, self.levels.is_affine()) {
            (Some(_), false) => "native-add-requantize",
            (Some(_), true) => "native-add-requantize(affine)",
            (None, false) => "native-requantize",
            (None, true) => "native-requantize(affine)",
        }
    }
}

/// Runs `nr` on `n` images: `a` (and `b` for an add) hold the operands, `out` receives
/// `n·C·inner` levels.
pub(crate) fn run(
    nr: &NativeRequant,
    n: usize,
    a: &[u8],
    b: Option<&[u8]>,
    out: &mut [u8],
) -> Result<()> {
    let total = n * nr.levels.channels() * nr.inner;
    let (ea, eb) = match &nr.add {
        Some(s) => (s.a, Some(s.b)),
        None => (Elem::I32, None),
    };
    let fits = a.len() >= total * ea.size()
        && eb.is_none_or(|e| b.is_some_and(|b| b.len() >= total * e.size()))
        && out.len() >= total
        && super::available();
    if !fits {
        return Err(CodegenError::Invalid(
            "internal error: native requantize buffers do not have their planned sizes".into(),
        ));
    }
    #[cfg(target_arch = "x86_64")]
    // SAFETY: AVX2 was detected just above; every access is bounds-checked (module docs).
    unsafe {
        avx2::requant(nr, n, a, b.unwrap_or_default(), out);
    }
    Ok(())
}

#[cfg(target_arch = "x86_64")]
pub(super) mod avx2 {
    use std::arch::x86_64::*;

    use super::{sum_row, widen, Affine, Levels, NativeRequant, Params};
    use crate::emit::Elem;

    /// The levels of channel `ch` for the first `NV ≤ 4` vectors of `v` (8
    /// accumulators each), packed to bytes in column order (bytes past `8·NV` are
    /// meaningless). `NV` is a constant so that the loops unroll into registers.
    ///
    /// # Safety
    /// AVX2 is available.
    #[inline(always)]
    pub(crate) unsafe fn levels32<const NV: usize>(
        lv: &Levels,
        ch: usize,
        v: &[__m256i; 4],
    ) -> __m256i {
        pack(lv, &level_values::<NV>(lv, ch, v))
    }

    /// The levels of [`levels32`] as i32 values (not packed): `qmin + count` per
    /// accumulator, for a fused `scaled_add` that reads them.
    ///
    /// # Safety
    /// AVX2 is available.
    #[inline(always)]
    pub(crate) unsafe fn level_values<const NV: usize>(
        lv: &Levels,
        ch: usize,
        v: &[__m256i; 4],
    ) -> [__m256i; 4] {
        if let Some(a) = &lv.affine {
            return affine::<NV>(a, ch, v);
        }
        let (t, desc) = lv.row(ch);
        let mut c = [_mm256_set1_epi32(lv.base); 4];
        if desc {
            for &k in t {
                let kv = _mm256_set1_epi32(k);
                for (ci, vi) in c.iter_mut().zip(v).take(NV) {
                    *ci = _mm256_add_epi32(*ci, _mm256_cmpgt_epi32(*vi, kv));
                }
            }
        } else {
            for &k in t {
                let kv = _mm256_set1_epi32(k);
                for (ci, vi) in c.iter_mut().zip(v).take(NV) {
                    *ci = _mm256_add_epi32(*ci, _mm256_cmpgt_epi32(kv, *vi));
                }
            }
        }
        c
    }

    /// Level values (each within the output type's range) packed to bytes in column
    /// order.
    ///
    /// # Safety
    /// AVX2 is available.
    #[inline(always)]
    unsafe fn pack(lv: &Levels, c: &[__m256i; 4]) -> __m256i {
        pack_as(lv.out == Elem::U8, c)
    }

    /// [`pack`] to unsigned (`u8_out`) or signed bytes.
    ///
    /// # Safety
    /// AVX2 is available.
    #[inline(always)]
    unsafe fn pack_as(u8_out: bool, c: &[__m256i; 4]) -> __m256i {
        let p01 = _mm256_packs_epi32(c[0], c[1]);
        let p23 = _mm256_packs_epi32(c[2], c[3]);
        let bytes = if u8_out {
            _mm256_packus_epi16(p01, p23)
        } else {
            _mm256_packs_epi16(p01, p23)
        };
        _mm256_permutevar8x32_epi32(bytes, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7))
    }

    /// As [`levels32`] for 32 accumulators held as i16 (two vectors of 16 columns),
    /// each within ±32766, compared with the thresholds clamped to i16: a threshold
    /// above 32767 compares as 32767, still above every accumulator, and one below
    /// −32768 as −32768, still below every accumulator, so every comparison (and the
    /// level, which fits i16) is unchanged.
    ///
    /// # Safety
    /// AVX2 is available.
    #[inline(always)]
    pub(crate) unsafe fn levels16(lv: &Levels, ch: usize, v: &[__m256i; 2]) -> __m256i {
        if let Some(a) = &lv.affine {
            return pack(lv, &affine::<4>(a, ch, &widen16(v)));
        }
        let c = level_values16(lv, ch, v);
        let bytes = if lv.out == Elem::U8 {
            _mm256_packus_epi16(c[0], c[1])
        } else {
            _mm256_packs_epi16(c[0], c[1])
        };
        _mm256_permute4x64_epi64::<0b11_01_10_00>(bytes)
    }

    /// The levels of [`levels16`] as i32 values, 8 columns a vector in column order
    /// (for a chained `scaled_add`).
    ///
    /// # Safety
    /// AVX2 is available.
    #[inline(always)]
    pub(crate) unsafe fn level_values16_as32(
        lv: &Levels,
        ch: usize,
        v: &[__m256i; 2],
    ) -> [__m256i; 4] {
        if let Some(a) = &lv.affine {
            return affine::<4>(a, ch, &widen16(v));
        }
        widen16(&level_values16(lv, ch, v))
    }

    /// The levels of one channel's 32 accumulators `v` (four vectors of 8 i32) by the
    /// i32 affine form `p` ([`Levels::narrow`]: offset folded, so a multiply, add,
    /// shift and clamp a vector), packed to bytes (`u8_out`: unsigned) in column order.
    ///
    /// # Safety
    /// AVX2 is available; `p` is a channel of [`Levels::narrow`] and `v` within the bound
    /// it was verified for.
    #[inline(always)]
    pub(crate) unsafe fn narrow_bytes(p: &Params, u8_out: bool, v: &[__m256i; 4]) -> __m256i {
        pack_as(u8_out, &narrow_levels::<4>(p, v))
    }

    /// The first `NV` vectors of `v` by the i32 affine form `p` (offset folded:
    /// `clamp((v·m + b) >> shift, lo, hi)`); vectors past `NV` hold `lo`.
    ///
    /// # Safety
    /// AVX2 is available; `v` within the bound `p` was verified for.
    #[inline(always)]
    unsafe fn narrow_levels<const NV: usize>(p: &Params, v: &[__m256i; 4]) -> [__m256i; 4] {
        let m = _mm256_set1_epi32(p.m);
        let b = _mm256_set1_epi32(p.b as i32);
        let (lo, hi) = (_mm256_set1_epi32(p.lo), _mm256_set1_epi32(p.hi));
        let shift = _mm_cvtsi32_si128(p.shift);
        let mut c = [lo; 4];
        for (ci, vi) in c.iter_mut().zip(v).take(NV) {
            let f = _mm256_sra_epi32(_mm256_add_epi32(_mm256_mullo_epi32(*vi, m), b), shift);
            *ci = _mm256_min_epi32(_mm256_max_epi32(f, lo), hi);
        }
        c
    }

    /// Two vectors of 16 i16 as four of 8 i32, in column order.
    #[inline(always)]
    pub(crate) unsafe fn widen16(v: &[__m256i; 2]) -> [__m256i; 4] {
        let lo = |x: __m256i| _mm256_cvtepi16_epi32(_mm256_castsi256_si128(x));
        let hi = |x: __m256i| _mm256_cvtepi16_epi32(_mm256_extracti128_si256::<1>(x));
        [lo(v[0]), hi(v[0]), lo(v[1]), hi(v[1])]
    }

    /// The levels of channel `ch` for the first `NV` vectors of `v` by the affine form
    /// `off + clamp((v·m + b) >> shift, lo, hi)` (`affine.rs`; the products and sums do
    /// not wrap on accumulators within the bound it was verified for): in i32 lanes, or
    /// in 64-bit lanes for the wide form, whose sums are non-negative and whose shifted
    /// values fit i31. Vectors past `NV` hold a level of the channel (they are never
    /// stored).
    ///
    /// # Safety
    /// AVX2 is available. (Not a `target_feature` function, so that it can be inlined
    /// always: its callers are, and the intrinsics inline into them.)
    #[inline(always)]
    unsafe fn affine<const NV: usize>(a: &Affine, ch: usize, v: &[__m256i; 4]) -> [__m256i; 4] {
        let p = &a.ch[ch];
        if !a.wide {
            // `b` fits i32 and the offset is folded into `b`, `lo` and `hi` when not
            // wide (`affine.rs`).
            return narrow_levels::<NV>(p, v);
        }
        let m = _mm256_set1_epi32(p.m);
        let (lo, hi) = (_mm256_set1_epi32(p.lo), _mm256_set1_epi32(p.hi));
        let shift = _mm_cvtsi32_si128(p.shift);
        let off = _mm256_set1_epi32(p.off);
        let b = _mm256_set1_epi64x(p.b);
        // `vpmuldq` multiplies the even dwords; the odd ones are moved down first.
        let scaled =
            |x: __m256i| _mm256_srl_epi64(_mm256_add_epi64(_mm256_mul_epi32(x, m), b), shift);
        let mut c = [off; 4];
        for (ci, vi) in c.iter_mut().zip(v).take(NV) {
            let even = scaled(*vi);
            let odd = scaled(_mm256_srli_epi64::<32>(*vi));
            let f = _mm256_blend_epi32::<0b1010_1010>(even, _mm256_slli_epi64::<32>(odd));
            *ci = _mm256_add_epi32(_mm256_min_epi32(_mm256_max_epi32(f, lo), hi), off);
        }
        c
    }

    /// The level values (i16) of [`levels16`], before packing.
    ///
    /// # Safety
    /// AVX2 is available.
    #[inline(always)]
    unsafe fn level_values16(lv: &Levels, ch: usize, v: &[__m256i; 2]) -> [__m256i; 2] {
        let t = &lv.t16[ch * lv.l..(ch + 1) * lv.l];
        let mut c = [_mm256_set1_epi16(lv.base as i16); 2];
        if lv.desc[ch] {
            for &k in t {
                let kv = _mm256_set1_epi16(k);
                for (ci, vi) in c.iter_mut().zip(v) {
                    *ci = _mm256_add_epi16(*ci, _mm256_cmpgt_epi16(*vi, kv));
                }
            }
        } else {
            for &k in t {
                let kv = _mm256_set1_epi16(k);
                for (ci, vi) in c.iter_mut().zip(v) {
                    *ci = _mm256_add_epi16(*ci, _mm256_cmpgt_epi16(kv, *vi));
                }
            }
        }
        c
    }

    /// Stores the first `len ≤ 32` bytes of `v` at `y[at..at + len]`.
    ///
    /// # Safety
    /// AVX2 is available.
    #[inline(always)]
    pub(crate) unsafe fn store_bytes(v: __m256i, y: &mut [u8], at: usize, len: usize) {
        match len {
            32 => _mm256_storeu_si256(y[at..at + 32].as_mut_ptr().cast(), v),
            16 => _mm_storeu_si128(
                y[at..at + 16].as_mut_ptr().cast(),
                _mm256_castsi256_si128(v),
            ),
            _ => {
                let mut tmp = [0u8; 32];
                _mm256_storeu_si256(tmp.as_mut_ptr().cast(), v);
                let len = len.min(32);
                y[at..at + len].copy_from_slice(&tmp[..len]);
            }
        }
    }

    /// The native `requantize` (plus `scaled_add`) of `n` images (see [`super::run`]).
    ///
    /// # Safety
    /// AVX2 is available.
    #[target_feature(enable = "avx2")]
    pub(crate) unsafe fn requant(nr: &NativeRequant, n: usize, a: &[u8], b: &[u8], out: &mut [u8]) {
        let (c, inner) = (nr.levels.channels(), nr.inner);
        let mut row = vec![0i32; inner.div_ceil(32) * 32];
        for p in 0..n * c {
            let span = p * inner..(p + 1) * inner;
            match &nr.add {
                None => widen(
                    &mut row[..inner],
                    Elem::I32,
                    &a[span.start * 4..span.end * 4],
                    1,
                    false,
                ),
                Some(s) => {
                    let (sa, sb) = (s.a.size(), s.b.size());
                    let xa = &a[span.start * sa..span.end * sa];
                    let xb = &b[span.start * sb..span.end * sb];
                    sum_row(&mut row[..inner], (xa, s.a, s.ka), (xb, s.b, s.kb));
                }
            }
            for (j, r) in row.chunks_exact(32).enumerate() {
                let v = [0, 8, 16, 24].map(|o| _mm256_loadu_si256(r[o..o + 8].as_ptr().cast()));
                let len = (inner - 32 * j).min(32);
                store_bytes(
                    levels32::<4>(&nr.levels, p % c, &v),
                    out,
                    span.start + 32 * j,
                    len,
                );
            }
        }
    }
}

/// `row[i] = ka · a[i] + kb · b[i]` for operands of storage `ea`, `eb` (wrapping i32
/// ops, see [`widen`]): one pass for byte operands, else two.
fn sum_row(row: &mut [i32], (a, ea, ka): (&[u8], Elem, i32), (b, eb, kb): (&[u8], Elem, i32)) {
    let (u, i) = (|v: u8| i32::from(v), |v: u8| i32::from(v as i8));
    match (ea, eb) {
        (Elem::U8, Elem::U8) => sum_bytes(row, (a, u, ka), (b, u, kb)),
        (Elem::U8, Elem::I8) => sum_bytes(row, (a, u, ka), (b, i, kb)),
        (Elem::I8, Elem::U8) => sum_bytes(row, (a, i, ka), (b, u, kb)),
        (Elem::I8, Elem::I8) => sum_bytes(row, (a, i, ka), (b, i, kb)),
        _ => {
            widen(row, ea, a, ka, false);
            widen(row, eb, b, kb, true);
        }
    }
}

/// [`sum_row`] of two byte operands, each widened by its `conv`.
#[inline(always)]
fn sum_bytes(
    row: &mut [i32],
    (a, ca, ka): (&[u8], impl Fn(u8) -> i32, i32),
    (b, cb, kb): (&[u8], impl Fn(u8) -> i32, i32),
) {
    for ((r, &x), &y) in row.iter_mut().zip(a).zip(b) {
        *r = ca(x).wrapping_mul(ka).wrapping_add(cb(y).wrapping_mul(kb));
    }
}

/// `row[i] (+)= k · x[i]` for the elements `x` of storage `e` (wrapping i32 ops: the
/// plan bounds the results, see the module docs); a plain loop per storage, which the
/// compiler vectorises.
fn widen(row: &mut [i32], e: Elem, x: &[u8], k: i32, add: bool) {
    let put = |r: &mut i32, v: i32| {
        let v = v.wrapping_mul(k);
        *r = if add { r.wrapping_add(v) } else { v };
    };
    match e {
        Elem::U8 => row
            .iter_mut()
            .zip(x)
            .for_each(|(r, &v)| put(r, i32::from(v))),
        Elem::I8 => row
            .iter_mut()
            .zip(x)
            .for_each(|(r, &v)| put(r, i32::from(v as i8))),
        Elem::I32 => row
            .iter_mut()
            .zip(x.chunks_exact(4))
            .for_each(|(r, v)| put(r, i32::from_le_bytes([v[0], v[1], v[2], v[3]]))),
    }
}
