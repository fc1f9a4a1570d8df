//! The `scaled_add` and `requantize` chained after a native convolution's epilogue
//! ([`EpiAdd`]), and that second `requantize` on a small grid: when the fused `scaled_add`
//! (`EpiAdd`) adds two low-bit operands — the first `requantize`'s level `l` and the
//! other tensor's `o`, each with at most a few dozen values — its sum
//! `s = l·kl + o·ko` takes at most `|l range|·|o range|` values per channel, although
//! those values are large (about 10⁸ on the ResNets: the scales of two branches over a
//! common denominator). Comparing `s` with the second `requantize`'s thresholds then
//! costs two i32 instructions per threshold and 8 columns.
//!
//! [`Grid::fit`] looks for small integers `a`, `c` (a rounding of `λ·kl`, `λ·ko` with
//! `|l|·|a| + |o|·|c| ≤ 32766`) and per channel and threshold `T_k` an i16 threshold
//! `U_k` on `u = l·a + o·c` with, **at every point `(l, o)` of the grid**,
//! `T_k ≤ s ⇔ U_k ≤ u` (ascending thresholds; `T_k ≥ s ⇔ U_k ≥ u` descending). It
//! enumerates the grid: `U_k` is the least `u` of the points at or above `T_k` and must
//! exceed every `u` of the points below (one more than the largest `u` when no point
//! reaches `T_k`). Every threshold then counts the same points, so the level — the count
//! — is the same at every point the operands can take: exact by exhaustion, nothing
//! assumed. The vector code computes `u` with wrapping i16 multiplies and adds, which do
//! not wrap since `|l·a|`, `|o·c|` and `|u|` are at most 32766, and compares in i16
//! (`levels16`), or by the affine form where `affine.rs` finds one for the `U_k` on
//! `±32766`. Where no candidate scale separates every threshold, the chain keeps its
//! i32 compares.

use super::affine::Affine;
use super::levels::Levels;
use crate::emit::Elem;

/// A `scaled_add` and `requantize` chained after the fused `requantize` of a native
/// convolution: per element, `l·k_levels + other·k_other` (`l` the first
/// `requantize`'s level, `other` of storage `other` laid out as the output), whose
/// level under `then` is stored. The plan accepted the add only when
/// `|k_levels|·max|l| + |k_other|·max|other|` fits i32, so the wrapping i32 products
/// and sum are exact, and equal to what the unfused `scaled_add` computes.
#[derive(Clone, Debug)]
pub(crate) struct EpiAdd {
    pub k_levels: i32,
    pub k_other: i32,
    pub other: Elem,
    pub then: Levels,
    /// `then` on the small grid the two operands span, when found (`grid.rs`): used
    /// instead of `then`'s i32 compares.
    pub grid: Option<Grid>,
}

impl EpiAdd {
    /// The chained add of `levels` (`l` within their range) times `k_levels` and the
    /// other operand (storage `other`, values within `other_range` if known) times
    /// `k_other`,
    /// requantized by `then`: with the grid form where one is found.
    pub(crate) fn new(
        (levels, k_levels): (&Levels, i32),
        (other, other_range, k_other): (Elem, Option<(i64, i64)>, i32),
        then: Levels,
    ) -> EpiAdd {
        let grid = other_range
            .filter(|_| other != Elem::I32)
            .and_then(|r| Grid::fit(&then, (k_levels, k_other), levels.range(), r));
        EpiAdd {
            k_levels,
            k_other,
            other,
            then,
            grid,
        }
    }
}

/// Most grid points enumerated (e.g. a 4-bit and a 6-bit operand).
const MAX_POINTS: i64 = 1024;

/// Largest `|u|` (and so `|U_k|` up to one more): accumulators within ±32766 are what
/// `levels16` compares exactly.
const U_MAX: i64 = 32766;

/// The second `requantize` of a chained add, on `u = l·a + o·c` (module docs).
#[derive(Clone, Debug)]
pub(crate) struct Grid {
    pub a: i16,
    pub c: i16,
    /// The `U_k` (same levels, directions and output as the original).
    pub levels: Levels,
}

impl Grid {
    /// The grid form of `then` for `s = l·kl + o·ko` with `l` in `l_range` and `o` in
    /// `o_range` (inclusive), if one is found (module docs).
    pub(crate) fn fit(
        then: &Levels,
        (kl, ko): (i32, i32),
        l_range: (i64, i64),
        o_range: (i64, i64),
    ) -> Option<Grid> {
        let (nl, no) = (l_range.1 - l_range.0 + 1, o_range.1 - o_range.0 + 1);
        if nl <= 0 || no <= 0 || nl * no > MAX_POINTS {
            return None;
        }
        let lm = l_range.0.abs().max(l_range.1.abs());
        let om = o_range.0.abs().max(o_range.1.abs());
        let (kl, ko) = (i64::from(kl), i64::from(ko));
        let total = kl.abs() * lm + ko.abs() * om;
        if total == 0 {
            return None;
        }
        let points: Vec<(i64, i64)> = (l_range.0..=l_range.1)
            .flat_map(|l| (o_range.0..=o_range.1).map(move |o| (l, o)))
            .collect();
        // The finest scale first, then coarser ones (a rounding that happens to land a
        // grid point on the wrong side may not at another scale).
        for f in [1.0, 0.97, 0.9, 0.8, 0.65, 0.5] {
            let lambda = f * U_MAX as f64 / total as f64;
            let a = (kl as f64 * lambda).round() as i64;
            let c = (ko as f64 * lambda).round() as i64;
            if a.abs() * lm + c.abs() * om > U_MAX {
                continue;
            }
            let (Ok(a16), Ok(c16)) = (i16::try_from(a), i16::try_from(c)) else {
                continue;
            };
            let pts: Vec<(i64, i64)> = points
                .iter()
                .map(|&(l, o)| (l * kl + o * ko, l * a + o * c))
                .collect();
            if let Some(u) = thresholds(then, &pts) {
                let levels = then.with_thresholds(u);
                // The affine form of the cut points where it pays, on the grid's
                // points (the only `u` the operands give).
                let us: Vec<i64> = pts.iter().map(|p| p.1).collect();
                let (t, l, desc) = levels.parts();
                let affine = Affine::fit_on_points(t, l, desc, levels.range().0, &us);
                return Some(Grid {
                    a: a16,
                    c: c16,
                    levels: levels.with_affine(affine),
                });
            }
        }
        None
    }
}

/// Per channel and threshold, the `U_k` separating the grid's points `(s, u)` as
/// `T_k` does, or `None` when some threshold cannot be.
fn thresholds(then: &Levels, pts: &[(i64, i64)]) -> Option<Vec<i32>> {
    let (t, l, desc) = then.parts();
    // The points by `s`, with the largest `u` of every prefix and the smallest of every
    // suffix: a threshold splits the points into a prefix and a suffix.
    let mut by_s = pts.to_vec();
    by_s.sort_unstable();
    let n = by_s.len();
    let mut pmax = vec![i64::MIN; n + 1];
    let mut smin = vec![i64::MAX; n + 1];
    for i in 0..n {
        pmax[i + 1] = pmax[i].max(by_s[i].1);
        smin[n - 1 - i] = smin[n - i].min(by_s[n - 1 - i].1);
    }
    let (umin, umax) = (smin[0], pmax[n]);
    let mut out = Vec::with_capacity(t.len());
    for (ch, &d) in desc.iter().enumerate() {
        for &tk in &t[ch * l..(ch + 1) * l] {
            let tk = i64::from(tk);
            // Ascending: the points counted are those with `s ≥ T` (a suffix) and need
            // `u ≥ U`; descending: `s ≤ T` (a prefix) and `u ≤ U`. In both, `U` is the
            // extreme `u` of the counted points and every other point must lie
            // strictly beyond it.
            let u = if d {
                let at = by_s.partition_point(|p| p.0 <= tk);
                let u = if at == 0 { umin - 1 } else { pmax[at] };
                (at == n || smin[at] > u).then_some(u)?
            } else {
                let at = by_s.partition_point(|p| p.0 < tk);
                let u = if at == n { umax + 1 } else { smin[at] };
                (at == 0 || pmax[at] < u).then_some(u)?
            };
            out.push(i32::try_from(u).ok()?);
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::emit::misc::RequantSpec;

    fn levels(t: Vec<i32>, l: usize, desc: Vec<bool>) -> Levels {
        let spec = RequantSpec {
            c: desc.len(),
            inner: 1,
            l,
            qmin: 0,
            thresholds: t,
            descending: desc,
            out: Elem::U8,
        };
        Levels::new(&spec, None).expect("levels")
    }

    /// The level of `then` at `s` and of the grid at `u`, by counting.
    fn count(t: &[i32], desc: bool, v: i64) -> usize {
        t.iter()
            .filter(|&&k| {
                if desc {
                    i64::from(k) >= v
                } else {
                    i64::from(k) <= v
                }
            })
            .count()
    }

    #[test]
    fn grid_levels_equal_the_thresholds_at_every_point() {
        // Residual-add-like factors: large, coprime, thresholds at an affine float map.
        let (kl, ko) = (8_388_617i32, 6_012_345i32);
        let l = 15;
        let mut t = Vec::new();
        for ch in 0..3 {
            for k in 0..l {
                t.push(((k as f64 + 0.5) * 1.3e7 + ch as f64 * 2.1e6) as i32);
            }
        }
        let desc = vec![false, true, false];
        let then = levels(t.clone(), l, desc.clone());
        let g = Grid::fit(&then, (kl, ko), (0, 15), (0, 15)).expect("a grid form");
        let (u, _, _) = g.levels.parts();
        for (ch, &d) in desc.iter().enumerate() {
            let row = ch * l..(ch + 1) * l;
            for lv in 0..=15i64 {
                for o in 0..=15i64 {
                    let s = lv * i64::from(kl) + o * i64::from(ko);
                    let uu = lv * i64::from(g.a) + o * i64::from(g.c);
                    assert!(uu.abs() <= 32766);
                    assert_eq!(
                        count(&t[row.clone()], d, s),
                        count(&u[row.clone()], d, uu),
                        "channel {ch} at ({lv}, {o})"
                    );
                }
            }
        }
    }

    #[test]
    fn no_grid_for_large_operands_or_inseparable_thresholds() {
        let then = levels(vec![5; 15], 15, vec![false]);
        assert!(Grid::fit(&then, (3, 5), (0, 255), (0, 255)).is_none());
        // s = l + 1000003·o: a threshold at 2 separates l = 1 from l = 2 (o = 0), which
        // needs `a ≥ 1`, but `|o|·|c| ≤ 32766` rounds `a` to 0 at every scale tried.
        let then = levels(vec![2; 15], 15, vec![false]);
        assert!(Grid::fit(&then, (1, 1_000_003), (0, 15), (0, 15)).is_none());
    }
}
