//! The affine form of a threshold `requantize`: per channel, integers `m`, `b`,
//! `shift`, `lo`, `hi`, `off` with
//!
//! ```text
//! level(v) = off + clamp((v·m + b) >> shift, lo, hi)      (arithmetic shift = floor)
//! ```
//!
//! equal to the thresholds' level (`qmin + #{k : T[k] <= v}`, or `#{k : T[k] >= v}`
//! descending) for every accumulator `v` in `[−B, B]`, `B` the plan's bound on the
//! operand. On AVX2 this is six instructions per eight accumulators in i32 (thirteen in
//! the wide form) instead of two per threshold (`levels.rs`), so it pays from eight
//! thresholds on: for 4-bit outputs (15 thresholds), and it is what makes 8-bit
//! outputs (255) native at all. Thresholds made by `integerize` come from an affine
//! float map (METHOD.md: `round(M·acc + B)`) and so usually have an exact integer
//! affine form.
//!
//! **Finding it.** Descending thresholds count `#{−T[k] <= −v}`, an ascending count at
//! `w = −v` over the same symmetric range, so both directions fit the ascending case and
//! a descending channel negates `m`. Thresholds at or below `−B` always count (`off`),
//! those above `B` never (they lower `hi`); the `L` others, sorted `u_0 ≤ … ≤ u_{L−1}`,
//! need `F(w) = floor((w·m + b)/2^s)` with `F(u_k) ≥ k+1` and `F(u_k − 1) ≤ k` for every
//! `k`: linear inequalities in `(m, b)`, for which `slope.rs` finds the smallest shift,
//! then the smallest `m` and `b`, by bisection over a concave slack in `O(H·log)` (`H`
//! hull vertices) rather than by eliminating `b` over all `L²` pairs of cuts, which 255
//! thresholds made too slow for a JIT.
//!
//! In the i32 form the offset is folded into `b` and the clamp (`off + clamp(F, lo, hi)
//! = clamp((v·m + b + off·2^s) >> s, lo + off, hi + off)`), one add less per vector.
//!
//! **Wide form.** 8-bit outputs need a slope precise to about one part in `L·range`,
//! and `B·|m|` then leaves i32. The wide form computes `v·m + b` in 64-bit lanes
//! (`vpmuldq`), with `b` raised by `K·2^s` so that the sum is never negative on
//! `[−B, B]` (AVX2 has no 64-bit arithmetic shift; the logical one is the floor of a
//! non-negative value), and the clamp moved to `[K, K + hi]`, the offset to `off − K`:
//! the same levels. The shifted value must lie in `[0, 2^31)`, so its low dword is it.
//!
//! **Why it is exact (checked, not assumed).** Every candidate is verified before use:
//! in the i32 form `B·|m| + |b|` must fit i32, in the wide form `v·m + b` must lie in
//! `[0, 2^63)` and its shift below 2^31 at `v = ±B` (both are linear in `v`), so the
//! vector code never wraps and `level` is monotone in `v` (non-decreasing for `m ≥ 0`,
//! non-increasing for `m < 0`), like the threshold count in the same direction; and
//! the two functions must agree at `±B` and at `T[k] − 1` and `T[k]` of every threshold
//! inside the range. The threshold count is constant between consecutive such points,
//! and a monotone function equal to a constant at both ends of an interval is that
//! constant on it, so they agree on all of `[−B, B]`. A layer any of whose channels
//! fails keeps its thresholds.
//!
//! **Operands known to lie in a set** ([`Affine::fit_on_points`]: the sums of a
//! `scaled_add` of two 8-bit tensors, the grid of `grid.rs`): each cut may lie anywhere
//! between the largest point below its threshold and the smallest at or above it; the
//! same inequalities with those two points in place of `u_k − 1` and `u_k`. The wider
//! gaps make a coarser slope do: the 255 thresholds of a ResNet's residual sums (range
//! ~2^31) have no form on every integer, but one on the 65,536 sums the operands give.
//! Verified like the other, at both points of every cut and the ends of the set.

use super::slope;

/// Fewest thresholds per channel for which the affine form is used (it costs about as
/// much as eight thresholds per vector of accumulators).
const MIN_LEVELS: usize = 8;

/// Per-channel parameters (module docs); `b` fits i32 unless `wide`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Affine {
    /// Per channel (one record, so the epilogue loads a channel's parameters after one
    /// bounds check).
    pub ch: Vec<Params>,
    /// `v·m + b` and the shift in 64-bit lanes (module docs, "Wide form").
    pub wide: bool,
}

impl Affine {
    fn new(ps: &[Params], wide: bool) -> Affine {
        Affine {
            ch: ps.to_vec(),
            wide,
        }
    }

    /// The affine form of thresholds `t` (`l` per channel, `desc` per channel, levels
    /// from `qmin`) on `[−bound, bound]`, if every channel has one (module docs): the
    /// i32 form where every channel's fits, else the wide one.
    pub(crate) fn fit(t: &[i32], l: usize, desc: &[bool], qmin: i64, bound: i64) -> Option<Affine> {
        if l < MIN_LEVELS || !(1..=i64::from(i32::MAX)).contains(&bound) {
            return None;
        }
        let cuts = t.chunks_exact(l).zip(desc).map(|(row, &d)| {
            // Every integer of the range is a point: a threshold's cut lies between
            // it and the integer below (thresholds at or below `−bound` always count,
            // those above `bound` never).
            let u = Counter::new(row, d, qmin);
            let active = u.w.iter().copied().filter(|&w| w > -bound && w <= bound);
            let x: Vec<i64> = active.collect();
            let y = x.iter().map(|&w| w - 1).collect();
            u.cuts(x, y, (-bound, bound))
        });
        fit_channels(cuts, desc, bound)
    }

    /// The affine form of thresholds `t` (as [`Affine::fit`]) for an operand that only
    /// takes the values `points` (e.g. every sum of a `scaled_add` of two 8-bit
    /// tensors, or a grid of `grid.rs`), if every channel has one: each cut may lie
    /// anywhere between the largest point below its threshold and the smallest at or
    /// above it (module docs).
    pub(crate) fn fit_on_points(
        t: &[i32],
        l: usize,
        desc: &[bool],
        qmin: i64,
        points: &[i64],
    ) -> Option<Affine> {
        let reach = points.iter().map(|p| p.abs()).max()?;
        if l < MIN_LEVELS || reach > i64::from(i32::MAX) {
            return None;
        }
        let mut ascending = points.to_vec();
        ascending.sort_unstable();
        ascending.dedup();
        let negated: Vec<i64> = ascending.iter().rev().map(|&p| -p).collect();
        let cuts = t.chunks_exact(l).zip(desc).map(|(row, &d)| {
            let u = Counter::new(row, d, qmin);
            let ws = if d { &negated } else { &ascending };
            let (first, last) = (ws[0], ws[ws.len() - 1]);
            // The thresholds above the first point and at or below the last: both
            // neighbours of each exist.
            let active = u.w.iter().copied().filter(|&w| w > first && w <= last);
            let (x, y) = active
                .map(|w| {
                    let i = ws.partition_point(|&p| p < w);
                    (ws[i], ws[i - 1])
                })
                .unzip();
            u.cuts(x, y, (first, last))
        });
        fit_channels(cuts, desc, reach)
    }
}

/// One channel's thresholds in `w` (= v, or −v descending), sorted: a threshold counts
/// at `w` when it is `≤ w`.
struct Counter {
    w: Vec<i64>,
    sign: i64,
    qmin: i64,
}

impl Counter {
    fn new(row: &[i32], desc: bool, qmin: i64) -> Counter {
        let sign = if desc { -1 } else { 1 };
        let mut w: Vec<i64> = row.iter().map(|&t| sign * i64::from(t)).collect();
        w.sort_unstable();
        Counter { w, sign, qmin }
    }

    /// The level at `w`.
    fn level(&self, w: i64) -> i64 {
        self.qmin + self.w.partition_point(|&t| t <= w) as i64
    }

    /// The channel's cuts `x` (the first point at or above each threshold that the
    /// operand's values `first..=last` cross) and `y` (the last point below it), and
    /// where to check a fit: at both points of every cut and at both ends. Between
    /// consecutive check points the level is constant, so a monotone function equal to
    /// it at all of them equals it everywhere (module docs).
    fn cuts(&self, x: Vec<i64>, y: Vec<i64>, (first, last): (i64, i64)) -> Cuts {
        let checks = x
            .iter()
            .chain(&y)
            .chain([&first, &last])
            .map(|&w| (self.sign * w, self.level(w)))
            .collect();
        Cuts {
            off: self.level(first),
            x,
            y,
            checks,
        }
    }
}

/// What [`fit_channels`] needs of a channel (see [`Counter::cuts`]).
struct Cuts {
    x: Vec<i64>,
    y: Vec<i64>,
    off: i64,
    /// `(v, level)` pairs the fit must reproduce.
    checks: Vec<(i64, i64)>,
}

/// Every channel's parameters for `cuts` on operands within `±reach`: in the i32 form
/// if every channel fits it (no i32 overflow, every check point right), else in the
/// wide form if every channel does; `None` otherwise.
fn fit_channels(cuts: impl Iterator<Item = Cuts>, desc: &[bool], reach: i64) -> Option<Affine> {
    let cuts: Vec<Cuts> = cuts.collect();
    let ps = cuts
        .iter()
        .zip(desc)
        .map(|(c, &d)| {
            Some(Params {
                hi: i32::try_from(c.x.len()).ok()?,
                off: i32::try_from(c.off).ok()?,
                ..fit_cuts(&c.x, &c.y, d)?
            })
        })
        .collect::<Option<Vec<Params>>>()?;
    let right = |c: &Cuts, p: Params| c.checks.iter().all(|&(v, level)| eval(p, v) == level);
    let narrow = ps
        .iter()
        .map(|&p| folded(p))
        .collect::<Option<Vec<Params>>>();
    if let Some(narrow) = narrow {
        if cuts
            .iter()
            .zip(&narrow)
            .all(|(c, &p)| fits_i32(p, reach) && right(c, p))
        {
            return Some(Affine::new(&narrow, false));
        }
    }
    let wide = ps
        .iter()
        .map(|&p| widened(p, reach))
        .collect::<Option<Vec<Params>>>()?;
    cuts.iter()
        .zip(&wide)
        .all(|(c, &p)| fits_wide(p, reach) && right(c, p))
        .then(|| Affine::new(&wide, true))
}

/// `m`, `b`, `shift` for cuts `k` with `F(x_k) ≥ k + 1` and `F(y_k) ≤ k` (ascending
/// `w`; `desc` negates `m`), found by [`slope::smallest`]; `lo`, `hi` and `off` are
/// left 0.
fn fit_cuts(x: &[i64], y: &[i64], desc: bool) -> Option<Params> {
    let zero = Params {
        m: 0,
        b: 0,
        shift: 0,
        lo: 0,
        hi: 0,
        off: 0,
    };
    if x.is_empty() {
        return Some(zero);
    }
    let (m, b, shift) = slope::smallest(x, y)?;
    let signed_m = if desc { -m } else { m };
    Some(Params {
        m: i32::try_from(signed_m).ok()?,
        b: i64::try_from(b).ok()?,
        shift: shift as i32,
        ..zero
    })
}

/// One channel's parameters: `level(v) = off + clamp((v·m + b) >> shift, lo, hi)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Params {
    pub m: i32,
    pub b: i64,
    pub shift: i32,
    pub lo: i32,
    pub hi: i32,
    pub off: i32,
}

/// `level(v)` of `p` (module docs), exactly (in i128), clamped as the vector code
/// does (max with `lo`, then min with `hi`).
fn eval(p: Params, v: i64) -> i64 {
    let f = (i128::from(v) * i128::from(p.m) + i128::from(p.b)) >> p.shift;
    let f = f.max(i128::from(p.lo)).min(i128::from(p.hi));
    i64::from(p.off) + f as i64
}

/// Whether the i32 form computes `p` exactly for every `|v| ≤ reach`: `v·m + b` never
/// leaves i32 (and the shift is one `vpsrad` takes); its offset is folded (`off = 0`,
/// [`folded`]).
fn fits_i32(p: Params, reach: i64) -> bool {
    let r = i128::from(reach) * i128::from(p.m).abs() + i128::from(p.b).abs();
    r <= i128::from(i32::MAX) && p.shift < 32 && p.off == 0
}

/// `p` with its offset folded into `b` and the clamp, for the i32 form: `off +
/// clamp(F, lo, hi) = clamp(F + off, lo + off, hi + off)` and `F + off = (v·m + b +
/// off·2^shift) >> shift` (the floor of a value raised by a multiple of `2^shift`), so
/// the levels are the same and the epilogue saves an add per vector. `None` when a
/// parameter leaves i32 or the shift is not one `vpsrad` takes.
fn folded(p: Params) -> Option<Params> {
    if !(0..32).contains(&p.shift) {
        return None;
    }
    let b = i128::from(p.b) + (i128::from(p.off) << p.shift);
    Some(Params {
        b: i64::from(i32::try_from(b).ok()?),
        lo: p.lo.checked_add(p.off)?,
        hi: p.hi.checked_add(p.off)?,
        off: 0,
        ..p
    })
}

/// Whether the wide form computes `p` exactly for every `|v| ≤ reach`: `v·m + b` lies
/// in `[0, 2^63)` (so the logical `vpsrlq` is the floor) and the shifted value in
/// `[0, 2^31)` (so its low dword is it); both are linear in `v`, so the ends decide.
fn fits_wide(p: Params, reach: i64) -> bool {
    let at = |v: i64| i128::from(v) * i128::from(p.m) + i128::from(p.b);
    p.shift < 64
        && [-reach, reach].into_iter().all(|v| {
            let s = at(v);
            (0..=i128::from(i64::MAX)).contains(&s) && (s >> p.shift) <= i128::from(i32::MAX)
        })
}

/// `p` in the wide form on `±reach`: `b` raised by `K·2^shift` so that `v·m + b ≥ 0`,
/// the clamp moved up by `K` and the offset down by `K` (the same levels), if it fits.
fn widened(p: Params, reach: i64) -> Option<Params> {
    let one = 1i128 << p.shift;
    let low = -i128::from(reach) * i128::from(p.m).abs() + i128::from(p.b);
    let k = if low >= 0 { 0 } else { (-low + one - 1) / one };
    let k32 = i32::try_from(k).ok()?;
    let w = Params {
        b: i64::try_from(i128::from(p.b) + k * one).ok()?,
        lo: k32,
        hi: p.hi.checked_add(k32)?,
        off: p.off.checked_sub(k32)?,
        ..p
    };
    fits_wide(w, reach).then_some(w)
}

#[cfg(test)]
mod tests {
    use super::*;

    impl Affine {
        fn params(&self, ch: usize) -> Params {
            self.ch[ch]
        }
    }

    /// The threshold level of `v` (the interpreter's semantics).
    fn reference(row: &[i32], desc: bool, qmin: i64, v: i64) -> i64 {
        let count = row
            .iter()
            .filter(|&&t| {
                if desc {
                    i64::from(t) >= v
                } else {
                    i64::from(t) <= v
                }
            })
            .count();
        qmin + count as i64
    }

    /// Thresholds of `round(M·v + B)` clamped to `0..=l` (ties up), as `integerize`
    /// would make them for an ascending (M > 0) or descending (M < 0) channel.
    fn affine_thresholds(mf: f64, bf: f64, l: usize) -> Vec<i32> {
        (0..l)
            .map(|k| {
                let x = (k as f64 + 0.5 - bf) / mf;
                if mf > 0.0 {
                    x.ceil() as i32
                } else {
                    x.floor() as i32
                }
            })
            .collect()
    }

    fn check(row: &[i32], desc: bool, bound: i64) -> bool {
        let Some(a) = Affine::fit(row, row.len(), &[desc], 0, bound) else {
            return false;
        };
        (-bound..=bound).all(|v| eval(a.params(0), v) == reference(row, desc, 0, v))
    }

    #[test]
    fn affine_thresholds_fit_exactly_over_the_whole_range() {
        for (mf, bf) in [
            (0.013, 3.2),
            (0.5, -1.0),
            (0.0071, 7.49),
            (1.0, 0.0),
            (0.0399, -2.3),
        ] {
            let row = affine_thresholds(mf, bf, 15);
            assert!(check(&row, false, 3000), "ascending {mf} {bf}: {row:?}");
            let row = affine_thresholds(-mf, bf, 15);
            let mut desc = row.clone();
            desc.reverse();
            assert!(check(&desc, true, 3000), "descending {mf} {bf}: {row:?}");
        }
    }

    #[test]
    fn thresholds_no_affine_map_reproduces_are_refused() {
        // Gaps 1, 1, 50, 1, ...: no single slope.
        let mut row: Vec<i32> = (0..15).map(|k| k * 3).collect();
        row[5] += 40;
        row.sort_unstable();
        assert!(Affine::fit(&row, 15, &[false], 0, 200).is_none());
        // Too few thresholds to pay.
        assert!(Affine::fit(&[1, 5, 9], 3, &[false], 0, 200).is_none());
    }

    #[test]
    fn thresholds_fit_on_the_points_the_operand_takes() {
        // Points 0, 7, 14, …, 273: a level every 20 ascending, every 30 descending,
        // checked at every point.
        let points: Vec<i64> = (0..40).map(|i| 7 * i).collect();
        let asc: Vec<i32> = (1..=13).map(|k| 20 * k).collect();
        let desc_t: Vec<i32> = (0..13).map(|k| 30 * k + 29).collect();
        let t = [asc.clone(), desc_t.clone()].concat();
        let a = Affine::fit_on_points(&t, 13, &[false, true], 2, &points).expect("a fit");
        for (ch, (row, desc)) in [(&asc, false), (&desc_t, true)].into_iter().enumerate() {
            for &v in &points {
                let want = reference(row, desc, 2, v);
                assert_eq!(eval(a.params(ch), v), want, "channel {ch} at {v}");
            }
        }
        // A level per point up to 49, then none until 266: no line does that.
        let bumpy = [1, 8, 15, 22, 29, 36, 43, 50, 260];
        assert!(Affine::fit_on_points(&bumpy, 9, &[false], 0, &points).is_none());
    }

    #[test]
    fn thresholds_outside_the_range_only_move_offset_and_top() {
        let mut row = affine_thresholds(0.1, 2.0, 15);
        row[0] = i32::MIN;
        row[14] = i32::MAX;
        assert!(check(&row, false, 100));
    }

    #[test]
    fn eight_bit_thresholds_take_the_wide_form_exactly() {
        // 255 thresholds of `round(M·v + B)` with a small multiplier `M = p/q` and
        // `B = r/q` (exact rationals: the thresholds are `ceil(((k + ½)·q − r)/p)`,
        // with no float rounding to make them non-affine), on a large accumulator
        // range: no i32 form exists, the wide one must equal the count around every
        // threshold and at the ends of the range, in both directions.
        let bound = 1 << 24;
        for (p, q, r) in [
            (31, 10_000, 127_000),
            (47, 100_000, -3_020_000),
            (21, 1000, 100_500),
        ] {
            let row: Vec<i32> = (0..255i64)
                .map(|k| ((2 * k + 1) * q - 2 * r).div_euclid(2 * p) + 1)
                .map(|t| t as i32)
                .collect();
            // The row as computed, and mirrored (`v → −v`) as descending thresholds.
            let mirrored: Vec<i32> = row.iter().map(|t| -t).collect();
            for (row, desc) in [(row, false), (mirrored, true)] {
                let a = Affine::fit(&row, 255, &[desc], 0, bound).expect("an affine form");
                assert!(a.wide, "{p}/{q}: no i32 form should exist");
                let f = a.params(0);
                let (lo, hi) = (*row.iter().min().unwrap(), *row.iter().max().unwrap());
                let near = (i64::from(lo) - 50..=i64::from(hi) + 50).chain([-bound, bound]);
                for v in near {
                    assert_eq!(eval(f, v), reference(&row, desc, 0, v), "{p}/{q} at {v}");
                }
            }
        }
    }
}
