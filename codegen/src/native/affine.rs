//! The affine form of a threshold `requantize`: per channel, integers `m`, `b`,
//! `shift`, `hi`, `off` with
//!
//! ```text
//! level(v) = off + clamp((v·m + b) >> shift, 0, hi)      (arithmetic shift = floor)
//! ```
//!
//! equal to the thresholds' level (`qmin + #{k : T[k] <= v}`, or `#{k : T[k] >= v}`
//! descending) for every accumulator `v` in `[−B, B]`, `B` the plan's bound on the
//! operand. On AVX2 this is six instructions per eight accumulators instead of two per
//! threshold (`levels.rs`), so it pays for 4-bit outputs (15 thresholds), whose
//! thresholds come from an affine float map (METHOD.md: `round(M·acc + B)`) and so
//! usually have an exact integer affine form.
//!
//! **Finding it.** Descending thresholds count `#{−T[k] <= −v}`, an ascending count at
//! `w = −v` over the same symmetric range, so both directions fit the ascending case and
//! a descending channel negates `m`. Thresholds at or below `−B` always count (`off`),
//! those above `B` never (they lower `hi`); the `L` others, sorted `u_0 ≤ … ≤ u_{L−1}`,
//! need `F(w) = floor((w·m + b)/2^s)` with `F(u_k) ≥ k+1` and `F(u_k − 1) ≤ k` for every
//! `k`: linear inequalities in `(m, b)`. Eliminating `b` pairwise gives an interval of
//! `m` (`m_interval`); the smallest shift with a non-empty interval (by bisection:
//! feasibility only grows with the shift), its smallest `m` and the smallest `b` are
//! taken.
//!
//! **Why it is exact (checked, not assumed).** Every candidate is verified before use:
//! `B·|m| + |b|` must fit i32, so the i32 products and sums of the vector code never
//! wrap and `level` is monotone in `v` (non-decreasing for `m ≥ 0`, non-increasing for
//! `m < 0`), like the threshold count in the same direction; and the two functions must
//! agree at `±B` and at `T[k] − 1`, `T[k]`, `T[k] + 1` of every threshold inside the
//! range. The threshold count is constant between consecutive such points, and a
//! monotone function equal to a constant at both ends of an interval is that constant
//! on it, so they agree on all of `[−B, B]`. A layer any of whose channels fails keeps
//! its thresholds.
//!
//! **Levels known only at points** ([`Affine::fit_points`], for `grid.rs`): when the
//! operand can only take the values of a small set, each cut may lie anywhere between
//! the largest point below it and the smallest at or above it; the same inequalities
//! with those two points in place of `u_k − 1` and `u_k`, and the result is verified at
//! every point of the set (exact by exhaustion) and for i32 overflow on its range.

/// Fewest thresholds per channel for which the affine form is used (it costs about as
/// much as eight thresholds per vector of accumulators).
pub(crate) const MIN_LEVELS: usize = 8;

/// Largest shift tried.
const MAX_SHIFT: u32 = 30;

/// Per-channel parameters (module docs).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Affine {
    pub m: Vec<i32>,
    pub b: Vec<i32>,
    pub shift: Vec<i32>,
    pub hi: Vec<i32>,
    pub off: Vec<i32>,
}

impl Affine {
    fn with_capacity(n: usize) -> Affine {
        Affine {
            m: Vec::with_capacity(n),
            b: Vec::with_capacity(n),
            shift: Vec::with_capacity(n),
            hi: Vec::with_capacity(n),
            off: Vec::with_capacity(n),
        }
    }

    fn push(&mut self, p: Params) {
        self.m.push(p.m);
        self.b.push(p.b);
        self.shift.push(p.shift);
        self.hi.push(p.hi);
        self.off.push(p.off);
    }

    /// The affine form of thresholds `t` (`l` per channel, `desc` per channel, levels
    /// from `qmin`) on `[−bound, bound]`, if every channel has one (module docs).
    pub(crate) fn fit(t: &[i32], l: usize, desc: &[bool], qmin: i64, bound: i64) -> Option<Affine> {
        if l < MIN_LEVELS || !(1..=i64::from(i32::MAX)).contains(&bound) {
            return None;
        }
        let mut a = Affine::with_capacity(desc.len());
        for (row, &d) in t.chunks_exact(l).zip(desc) {
            let p = fit_channel(row, d, qmin, bound)?;
            if !verified(row, d, qmin, bound, p) {
                return None;
            }
            a.push(p);
        }
        Some(a)
    }
}

impl Affine {
    /// The affine form of per-channel levels known only at `points` (each within
    /// `±reach`): `level(ch, v)`, monotone over the points — non-decreasing, or
    /// non-increasing where `desc[ch]` — if every channel has one. Found as
    /// [`Affine::fit`] finds it, with each cut between the largest point below it and
    /// the smallest at or above it, and **verified at every point** (and for i32
    /// overflow on `±reach`): the points are all the operand can take (`grid.rs`).
    pub(crate) fn fit_points(
        points: &[i64],
        desc: &[bool],
        level: impl Fn(usize, i64) -> i64,
        reach: i64,
    ) -> Option<Affine> {
        let mut a = Affine::with_capacity(desc.len());
        for (ch, &d) in desc.iter().enumerate() {
            // In `w` (= v, or −v descending) the level is non-decreasing.
            let sign = if d { -1 } else { 1 };
            let mut ws: Vec<i64> = points.iter().map(|&v| sign * v).collect();
            ws.sort_unstable();
            ws.dedup();
            let lev: Vec<i64> = ws.iter().map(|&w| level(ch, sign * w)).collect();
            let off = *lev.first()?;
            let top = *lev.last()? - off;
            if lev.windows(2).any(|p| p[1] < p[0]) {
                return None;
            }
            // Cut k (level k → k + 1): the smallest point at or above it, the largest
            // below it.
            let x: Vec<i64> = (0..top)
                .map(|k| ws[lev.iter().position(|&l| l - off > k).unwrap_or(0)])
                .collect();
            let y: Vec<i64> = (0..top)
                .map(|k| ws[lev.iter().rposition(|&l| l - off <= k).unwrap_or(0)])
                .collect();
            let p = fit_cuts(&x, &y, d)?;
            let p = Params {
                hi: i32::try_from(top).ok()?,
                off: i32::try_from(off).ok()?,
                ..p
            };
            if wraps(p, reach) || points.iter().any(|&v| eval(p, v) != level(ch, v)) {
                return None;
            }
            a.push(p);
        }
        Some(a)
    }
}

/// `m`, `b`, `shift` for cuts `k` with `F(x_k) ≥ k + 1` and `F(y_k) ≤ k` (ascending
/// `w`; `desc` negates `m`); `hi` and `off` are left 0. Feasibility only grows with the
/// shift (`(m, b)` at `s` gives `(2m, 2b)` at `s + 1`), so the smallest feasible shift
/// is found by bisection; its smallest `m` and the smallest `b` are taken.
fn fit_cuts(x: &[i64], y: &[i64], desc: bool) -> Option<Params> {
    let zero = Params {
        m: 0,
        b: 0,
        shift: 0,
        hi: 0,
        off: 0,
    };
    if x.is_empty() {
        return Some(zero);
    }
    let feasible = |shift: u32| m_interval(x, y, 1i64 << shift).filter(|(lo, hi)| lo <= hi);
    feasible(MAX_SHIFT)?;
    let (mut s_lo, mut s_hi) = (0, MAX_SHIFT);
    while s_lo < s_hi {
        let mid = (s_lo + s_hi) / 2;
        if feasible(mid).is_some() {
            s_hi = mid;
        } else {
            s_lo = mid + 1;
        }
    }
    let (m, _) = feasible(s_lo)?;
    let (m, one) = (i128::from(m), 1i128 << s_lo);
    let b = (0..x.len())
        .map(|k| (k as i128 + 1) * one - i128::from(x[k]) * m)
        .max()?;
    let signed_m = if desc { -m } else { m };
    Some(Params {
        m: i32::try_from(signed_m).ok()?,
        b: i32::try_from(b).ok()?,
        shift: s_lo as i32,
        ..zero
    })
}

/// One channel's parameters.
#[derive(Clone, Copy, Debug)]
struct Params {
    m: i32,
    b: i32,
    shift: i32,
    hi: i32,
    off: i32,
}

/// `level(v)` of `p` (module docs), in i64 (exact when the parameters were verified).
fn eval(p: Params, v: i64) -> i64 {
    let f = (v * i64::from(p.m) + i64::from(p.b)) >> p.shift;
    i64::from(p.off) + f.clamp(0, i64::from(p.hi))
}

/// Whether `v·m + b` can leave i32 for some `|v| ≤ reach`.
fn wraps(p: Params, reach: i64) -> bool {
    reach
        .checked_mul(i64::from(p.m).abs())
        .is_none_or(|r| r + i64::from(p.b).abs() > i64::from(i32::MAX))
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

/// Whether `p` equals the thresholds on `[−bound, bound]` (module docs: no i32 overflow
/// and agreement at the critical points).
fn verified(row: &[i32], desc: bool, qmin: i64, bound: i64, p: Params) -> bool {
    if wraps(p, bound) {
        return false;
    }
    if !(0..=MAX_SHIFT as i32).contains(&p.shift) || p.hi < 0 {
        return false;
    }
    let inside = |v: i64| (-bound..=bound).contains(&v);
    row.iter()
        .flat_map(|&t| [-1, 0, 1].map(|d| i64::from(t) + d))
        .filter(|&v| inside(v))
        .chain([-bound, bound])
        .all(|v| eval(p, v) == reference(row, desc, qmin, v))
}

/// The parameters of one channel, unverified (module docs).
fn fit_channel(row: &[i32], desc: bool, qmin: i64, bound: i64) -> Option<Params> {
    // Ascending thresholds in `w` (= v, or −v descending).
    let mut u: Vec<i64> = row
        .iter()
        .map(|&t| if desc { -i64::from(t) } else { i64::from(t) })
        .collect();
    u.sort_unstable();
    let always = u.iter().filter(|&&x| x <= -bound).count();
    let active: Vec<i64> = u
        .into_iter()
        .filter(|&x| x > -bound && x <= bound)
        .collect();
    let off = i32::try_from(qmin + always as i64).ok()?;
    let hi = i32::try_from(active.len()).ok()?;
    let below: Vec<i64> = active.iter().map(|&x| x - 1).collect();
    Some(Params {
        hi,
        off,
        ..fit_cuts(&active, &below, desc)?
    })
}

/// The interval of slopes `m ≥ 1` for which some `b` meets every `F(u_k) ≥ k + 1`
/// (`b ≥ (k+1)·one − u_k·m`) and `F(y_j) ≤ j` (`b ≤ (j+1)·one − 1 − y_j·m`) at scale
/// `one = 2^s` (`y_j = u_j − 1` for thresholds on every integer; the largest point below
/// the cut for levels known only at points): every lower bound below every upper
/// bound, i.e. for every pair `m·(y_j − u_k) ≤ (j − k)·one − 1`. `None` when a pair
/// with `y_j = u_k` contradicts itself.
fn m_interval(u: &[i64], y: &[i64], one: i64) -> Option<(i64, i64)> {
    // |u|, |y| ≤ 2^31 and one ≤ 2^30: every term below fits i64.
    let (mut lo, mut hi) = (1i64, i64::MAX);
    for (j, &yj) in y.iter().enumerate() {
        for (k, &uk) in u.iter().enumerate() {
            let d = yj - uk;
            let rhs = (j as i64 - k as i64) * one - 1;
            match d.signum() {
                // m ≤ floor(rhs / d)
                1 => hi = hi.min(rhs.div_euclid(d)),
                // m ≥ ceil(rhs / d) = −floor(rhs / −d)
                -1 => lo = lo.max(-rhs.div_euclid(-d)),
                _ if rhs < 0 => return None,
                _ => {}
            }
        }
    }
    Some((lo, hi))
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let p = Params {
            m: a.m[0],
            b: a.b[0],
            shift: a.shift[0],
            hi: a.hi[0],
            off: a.off[0],
        };
        (-bound..=bound).all(|v| eval(p, v) == reference(row, desc, 0, v))
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
    fn levels_known_at_points_fit_where_monotone() {
        // Points 0, 7, 14, …: levels 2 + ⌊v/20⌋ ascending, 9 − ⌊v/30⌋ descending.
        let points: Vec<i64> = (0..40).map(|i| 7 * i).collect();
        let level = |ch: usize, v: i64| if ch == 0 { 2 + v / 20 } else { 9 - v / 30 };
        let a = Affine::fit_points(&points, &[false, true], level, 300).expect("a fit");
        for ch in 0..2 {
            let p = Params {
                m: a.m[ch],
                b: a.b[ch],
                shift: a.shift[ch],
                hi: a.hi[ch],
                off: a.off[ch],
            };
            for &v in &points {
                assert_eq!(eval(p, v), level(ch, v), "channel {ch} at {v}");
            }
        }
        // Not monotone: no affine form.
        let bumpy = |_: usize, v: i64| i64::from(v == 14);
        assert!(Affine::fit_points(&points, &[false], bumpy, 300).is_none());
    }

    #[test]
    fn thresholds_outside_the_range_only_move_offset_and_top() {
        let mut row = affine_thresholds(0.1, 2.0, 15);
        row[0] = i32::MIN;
        row[14] = i32::MAX;
        assert!(check(&row, false, 100));
    }
}
