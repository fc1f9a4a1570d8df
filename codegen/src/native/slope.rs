//! The search behind the affine form (`affine.rs`): integers `m ≥ 1`, `b` and a shift
//! `s` with `F(w) = floor((w·m + b)/2^s)` meeting every cut `k` of a channel —
//! `F(x_k) ≥ k + 1` at the first point at or above its threshold and `F(y_k) ≤ k` at the
//! last point below it — with the smallest shift, then the smallest `m`, then the
//! smallest `b`.
//!
//! **Why it finds them.** At a slope `m` the cuts bound `b` from below by
//! `max_k((k+1)·one − x_k·m)` and from above by `min_k((k+1)·one − 1 − y_k·m)`; the gap
//! (`slack`) is a minimum of linear functions minus a maximum of them, so concave in
//! `m`, and the feasible slopes are the interval where it is `≥ 0`: a bisection on its
//! differences finds its maximum, a second the first slope with `slack ≥ 0`. Only cuts
//! on two convex hulls can attain the bounds ([`Hulls`]), so a slack costs `O(H)` for
//! `H` hull vertices. The result equals eliminating `b` over all `L²` pairs of cuts
//! (checked against that in the tests), which 255 thresholds made too slow for a JIT.
//! `affine.rs` verifies whatever is found before using it, so an error here could
//! only lose the form, never change a level.
//!
//! All arithmetic is in i128: `|x|, |y| ≤ 2^32`, `m ≤ 2^63`, `(k+1)·2^s ≤ 2^71`.

/// Largest shift tried: the wide form's `v·m + b` (`|v|, |m| < 2^31`) stays below 2^63
/// and `vpsrlq` shifts by less than 64.
pub(super) const MAX_SHIFT: u32 = 62;

/// The smallest shift `s` at which some slope `m ≥ 1` meets every cut (`x`, `y`
/// non-empty and sorted), its smallest such `m` and then smallest `b`. Feasibility only
/// grows with the shift (`(m, b)` at `s` gives `(2m, 2b)` at `s + 1`): from the smallest
/// shift whose outermost-cut bracket holds a slope, steps doubling up to a feasible
/// shift, then bisection back to the smallest (a search costs the log of its bracket,
/// which doubles with the shift: the largest shifts cost most).
pub(super) fn smallest(x: &[i64], y: &[i64]) -> Option<(i128, i128, u32)> {
    let hulls = Hulls::new(x, y);
    let feasible = |s: u32| slope_at(x, y, &hulls, s).is_some();
    let mut shift = (0..=MAX_SHIFT).find(|&s| bracket(x, y, s).is_some())?;
    let (mut infeasible, mut step) = (None, 1);
    while !feasible(shift) {
        if shift == MAX_SHIFT {
            return None;
        }
        infeasible = Some(shift);
        shift = (shift + step).min(MAX_SHIFT);
        step *= 2;
    }
    let mut lo = infeasible.map_or(shift, |s| s + 1);
    while lo < shift {
        let mid = (lo + shift) / 2;
        if feasible(mid) {
            shift = mid;
        } else {
            lo = mid + 1;
        }
    }
    let (m, b) = slope_at(x, y, &hulls, shift)?;
    Some((m, b, shift))
}

/// The range `(lo, hi)` of `b` meeting every cut at slope `m` and scale `one = 2^s`:
/// `F(x_k) ≥ k + 1` needs `b ≥ (k+1)·one − x_k·m`, `F(y_k) ≤ k` needs
/// `b ≤ (k+1)·one − 1 − y_k·m`. Only the cuts on the hulls ([`Hulls`]) can be the
/// tightest, so only those are taken.
fn b_range(h: &Hulls, one: i128, m: i128) -> (i128, i128) {
    let lo = h.upper.iter().map(|&(x, k1)| k1 * one - x * m).max();
    let hi = h.lower.iter().map(|&(y, k1)| k1 * one - 1 - y * m).min();
    (lo.unwrap_or(i128::MIN), hi.unwrap_or(i128::MAX))
}

/// The cuts that can bound `b` (module docs): `(k+1)·one − x_k·m` is largest, for any
/// `m ≥ 0` and `one > 0`, at a vertex of the upper convex hull of the points
/// `(x_k, k+1)`, and `(k+1)·one − y_k·m` smallest at one of the lower hull of
/// `(y_k, k+1)` (a linear function's extremes over a point set are at its hull; the
/// scale `one` stretches the points vertically, which keeps the hull). Near-affine
/// thresholds have few hull vertices, so this is what makes 255 thresholds cheap.
struct Hulls {
    upper: Vec<(i128, i128)>,
    lower: Vec<(i128, i128)>,
}

impl Hulls {
    fn new(x: &[i64], y: &[i64]) -> Hulls {
        let points = |v: &[i64]| -> Vec<(i128, i128)> {
            v.iter()
                .enumerate()
                .map(|(k, &c)| (i128::from(c), k as i128 + 1))
                .collect()
        };
        Hulls {
            upper: hull(&points(x), |turn| turn >= 0),
            lower: hull(&points(y), |turn| turn <= 0),
        }
    }
}

/// One side of the convex hull of `p` (sorted by x, then y; Andrew's monotone chain):
/// a vertex is dropped while `drop(cross)` holds for the turn it makes.
fn hull(p: &[(i128, i128)], drop: impl Fn(i128) -> bool) -> Vec<(i128, i128)> {
    let mut h: Vec<(i128, i128)> = Vec::new();
    for &c in p {
        while let [.., a, b] = h[..] {
            if !drop((b.0 - a.0) * (c.1 - a.1) - (b.1 - a.1) * (c.0 - a.0)) {
                break;
            }
            h.pop();
        }
        h.push(c);
    }
    h
}

/// The slopes `m ≥ 1` the outermost pairs of cuts allow at shift `s`
/// (`m·(y_j − x_k) ≤ (j − k)·one − 1` for `(j, k)` = `(0, L−1)` and `(L−1, 0)`), if any.
fn bracket(x: &[i64], y: &[i64], s: u32) -> Option<(i128, i128)> {
    let one = 1i128 << s;
    let n = x.len();
    let mut m = (1i128, i128::from(i64::MAX));
    for (j, k) in [(0, n - 1), (n - 1, 0)] {
        m = narrowed(m, (j, y[j]), (k, x[k]), one)?;
    }
    (m.0 <= m.1).then_some(m)
}

/// The slopes of `(lo, hi)` that pair `(j, y_j)`, `(k, x_k)` allows at scale `one`:
/// `m·(y_j − x_k) ≤ (j − k)·one − 1`; `None` when it allows none whatever `m`.
fn narrowed(
    (lo, hi): (i128, i128),
    (j, yj): (usize, i64),
    (k, xk): (usize, i64),
    one: i128,
) -> Option<(i128, i128)> {
    let d = i128::from(yj) - i128::from(xk);
    let rhs = (j as i128 - k as i128) * one - 1;
    match d.signum() {
        1 => Some((lo, hi.min(rhs.div_euclid(d)))),
        -1 => Some((lo.max(-rhs.div_euclid(-d)), hi)),
        _ if rhs < 0 => None,
        _ => Some((lo, hi)),
    }
}

/// The smallest slope `m ≥ 1` at shift `s` for which some `b` meets every cut, and
/// the smallest such `b`; `None` if there is none. Every pair of cuts `j`, `k` bounds
/// `m` (`m·(y_j − x_k) ≤ (j − k)·one − 1`); the outermost pairs give a bracket. Inside
/// it `slack(m) = hi − lo` of [`b_range`] is concave (a minimum of linear functions
/// minus a maximum of them), so its maximum is found by bisection on its differences
/// and then the first slope with `slack ≥ 0` (where it is non-decreasing) by another:
/// `O(H·log)` for `H` hull vertices instead of all `L²` pairs.
fn slope_at(x: &[i64], y: &[i64], h: &Hulls, s: u32) -> Option<(i128, i128)> {
    let one = 1i128 << s;
    let (lo, hi) = bracket(x, y, s)?;
    let slack = |m: i128| {
        let (l, h) = b_range(h, one, m);
        h - l
    };
    // The largest slack: the first `m` whose next difference is not positive.
    let (mut a, mut z) = (lo, hi);
    while a < z {
        let mid = a + (z - a) / 2;
        if slack(mid) < slack(mid + 1) {
            a = mid + 1;
        } else {
            z = mid;
        }
    }
    if slack(a) < 0 {
        return None;
    }
    // The first `m` with `slack ≥ 0` (slack is non-decreasing on `[lo, a]`).
    let (mut p, mut q) = (lo, a);
    while p < q {
        let mid = p + (q - p) / 2;
        if slack(mid) >= 0 {
            q = mid;
        } else {
            p = mid + 1;
        }
    }
    Some((p, b_range(h, one, p).0))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// All `L²` pairs of cuts (the elimination of `b`): the interval of slopes `m ≥ 1`
    /// with a feasible `b` at scale `one`, `None` when a pair contradicts itself.
    fn m_interval_by_pairs(x: &[i64], y: &[i64], one: i128) -> Option<(i128, i128)> {
        let mut m = (1i128, i128::from(i64::MAX));
        for (j, &yj) in y.iter().enumerate() {
            for (k, &xk) in x.iter().enumerate() {
                m = narrowed(m, (j, yj), (k, xk), one)?;
            }
        }
        Some(m)
    }

    #[test]
    fn slope_search_finds_the_smallest_slope_all_pairs_allow() {
        // Thresholds with random gaps (some far from affine), at every small shift: the
        // bisection's slope is the smallest the pairwise elimination allows, or neither
        // finds one.
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        let mut found = 0;
        for _ in 0..400 {
            let l = 1 + next(20) as usize;
            let (base, step, jitter) = (next(200) as i64 - 100, 1 + next(40) as i64, next(4));
            let mut x: Vec<i64> = (0..l as i64)
                .map(|k| base + k * step + (next(2 * jitter + 1) as i64 - jitter as i64))
                .collect();
            x.sort_unstable();
            let y: Vec<i64> = x.iter().map(|v| v - 1).collect();
            for s in 0..16 {
                let one = 1i128 << s;
                let brute = m_interval_by_pairs(&x, &y, one).filter(|(lo, hi)| lo <= hi);
                let fast = slope_at(&x, &y, &Hulls::new(&x, &y), s);
                assert_eq!(fast.map(|f| f.0), brute.map(|b| b.0), "{x:?} at shift {s}");
                if let Some((m, b)) = fast {
                    let (lo, hi) = b_range(&Hulls::new(&x, &y), one, m);
                    assert!(b == lo && lo <= hi);
                    found += 1;
                }
            }
        }
        assert!(
            found > 1000,
            "too few feasible cases to mean anything: {found}"
        );
    }
}
