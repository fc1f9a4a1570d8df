//! The named rewrite rules of the streamlining e-graph, each an exact identity of real
//! arithmetic (constants are exact rationals; conditions guard the sign facts a rule
//! needs), plus the appliers that compute new constants.

use egg::{rewrite, Applier, EGraph, Id, PatternAst, Rewrite, Subst, Symbol, Var};

use super::lang::{Arith, ArithAnalysis};
use crate::thresholds::Rat;

type EG = EGraph<Arith, ArithAnalysis>;

fn var(s: &str) -> Var {
    s.parse().expect("valid pattern variable")
}

fn constant(eg: &EG, subst: &Subst, v: &str) -> Option<Rat> {
    eg[subst[var(v)]].data.value
}

fn is_positive(v: &'static str) -> impl Fn(&mut EG, Id, &Subst) -> bool {
    move |eg, _, s| constant(eg, s, v).is_some_and(|r| r.signum() > 0)
}

fn is_nonneg(v: &'static str) -> impl Fn(&mut EG, Id, &Subst) -> bool {
    move |eg, _, s| constant(eg, s, v).is_some_and(|r| r.signum() >= 0)
}

fn is_const(v: &'static str) -> impl Fn(&mut EG, Id, &Subst) -> bool {
    move |eg, _, s| constant(eg, s, v).is_some()
}

/// `(mul c x)` with `c` computed from the match, unioned with the matched class.
fn union_scaled(eg: &mut EG, eclass: Id, c: Rat, x: Id) -> Vec<Id> {
    let c = eg.add(Arith::Num(c));
    let m = eg.add(Arith::Mul([c, x]));
    if eg.union(eclass, m) {
        vec![m]
    } else {
        vec![]
    }
}

/// `(mul ?a (mul ?b ?x))` → `(mul a·b ?x)`.
#[derive(Debug)]
struct MergeScales;

impl Applier<Arith, ArithAnalysis> for MergeScales {
    fn apply_one(
        &self,
        eg: &mut EG,
        eclass: Id,
        subst: &Subst,
        _: Option<&PatternAst<Arith>>,
        _: Symbol,
    ) -> Vec<Id> {
        let (Some(a), Some(b)) = (constant(eg, subst, "?a"), constant(eg, subst, "?b")) else {
            return vec![];
        };
        match a.checked_mul(b) {
            Some(ab) => union_scaled(eg, eclass, ab, subst[var("?x")]),
            None => vec![],
        }
    }
}

/// `(avgpool ?p ?n ?x)` → `(mul 1/n (sumpool ?p ?x))`, `(gap ?n ?x)` → `(mul 1/n (gsum ?x))`.
#[derive(Debug)]
struct SumThenDivide {
    global: bool,
}

impl Applier<Arith, ArithAnalysis> for SumThenDivide {
    fn apply_one(
        &self,
        eg: &mut EG,
        eclass: Id,
        subst: &Subst,
        _: Option<&PatternAst<Arith>>,
        _: Symbol,
    ) -> Vec<Id> {
        let Some(inv) = constant(eg, subst, "?n").and_then(Rat::recip) else {
            return vec![];
        };
        let x = subst[var("?x")];
        let sum = if self.global {
            eg.add(Arith::GSum(x))
        } else {
            eg.add(Arith::SumPool([subst[var("?p")], x]))
        };
        union_scaled(eg, eclass, inv, sum)
    }
}

/// The rescale to a common integer scale:
/// `(add (mul s1 a) (mul s2 b))` → `(mul s (add (mul k1 a) (mul k2 b)))` where `s` is the
/// largest rational with `s1 = k1·s`, `s2 = k2·s` for integers `k1`, `k2` (for dyadic
/// f32 scales `s = gcd(m1, m2)·2^min(e1, e2)`), applied only to integer tensors and only
/// when `|k1|·max|a| + |k2|·max|b|` fits i32.
#[derive(Debug)]
struct CommonScale;

impl Applier<Arith, ArithAnalysis> for CommonScale {
    fn apply_one(
        &self,
        eg: &mut EG,
        eclass: Id,
        subst: &Subst,
        _: Option<&PatternAst<Arith>>,
        _: Symbol,
    ) -> Vec<Id> {
        let (a, b) = (subst[var("?a")], subst[var("?b")]);
        let (Some(s1), Some(s2)) = (constant(eg, subst, "?s1"), constant(eg, subst, "?s2")) else {
            return vec![];
        };
        let (Some(ba), Some(bb)) = (eg[a].data.int_bound, eg[b].data.int_bound) else {
            return vec![];
        };
        let fits = |k1: i128, k2: i128| {
            k1.unsigned_abs()
                .checked_mul(ba.unsigned_abs())
                .zip(k2.unsigned_abs().checked_mul(bb.unsigned_abs()))
                .and_then(|(x, y)| x.checked_add(y))
                .is_some_and(|m| m <= i32::MAX as u128)
        };
        let exact = common_scale(s1, s2).filter(|&(s, k1, k2)| fits(k1, k2) && s.signum() > 0);
        let Some((s, k1, k2)) = exact.or_else(|| nearby_common_scale(s1, s2, &fits)) else {
            return vec![];
        };
        let (k1, k2) = (
            eg.add(Arith::Num(Rat::int(k1 as i64))),
            eg.add(Arith::Num(Rat::int(k2 as i64))),
        );
        let ta = eg.add(Arith::Mul([k1, a]));
        let tb = eg.add(Arith::Mul([k2, b]));
        let sum = eg.add(Arith::Add([ta, tb]));
        union_scaled(eg, eclass, s, sum)
    }
}

/// `(s, k1, k2)` with `s > 0`, `s1 = k1·s`, `s2 = k2·s`, `k1`, `k2` coprime integers.
pub fn common_scale(s1: Rat, s2: Rat) -> Option<(Rat, i128, i128)> {
    // s1/s2 = p/q in lowest terms  ⇒  k1 = p, k2 = q, s = s1/p.
    let ratio = s1.checked_div(s2)?;
    let (p, q) = (ratio.num(), ratio.den());
    let (p, q) = if s2.signum() < 0 { (-p, -q) } else { (p, q) };
    let s = s1.checked_div(Rat::new(p, 1)?)?;
    let k_ok = |k: i128| i32::try_from(k).is_ok();
    (k_ok(p) && k_ok(q)).then_some((s, p, q))
}

/// The fallback when the exact common scale's factors overflow i32 (e.g. 8-bit branches
/// whose f32 scales share only a tiny power of two): `s = max(|s1|,|s2|)·2^-K` with the
/// largest `K` whose rounded factors `k_i = round(s_i/s)` still fit, so each branch's
/// scale is represented with relative error at most `1/(2|k_i|)` (≤ 2^-20 for 8-bit
/// operands). This is the one *approximate* rewrite: a level can differ from the exact
/// fake-quant level only where the exact value lies within that error of a rounding
/// boundary (measured in `passes/tests/integerize.rs`).
fn nearby_common_scale(
    s1: Rat,
    s2: Rat,
    fits: &dyn Fn(i128, i128) -> bool,
) -> Option<(Rat, i128, i128)> {
    let (f1, f2) = (s1.to_f64(), s2.to_f64());
    let big = f1.abs().max(f2.abs());
    if !(big.is_finite() && big > 0.0) {
        return None;
    }
    (0..=30).rev().find_map(|k: i32| {
        let s = big * 2f64.powi(-k);
        let (k1, k2) = ((f1 / s).round() as i128, (f2 / s).round() as i128);
        (k1 != 0 && k2 != 0 && fits(k1, k2)).then(|| Rat::from_f64(s).map(|s| (s, k1, k2)))?
    })
}

/// All rules, by name.
pub fn rules() -> Vec<Rewrite<Arith, ArithAnalysis>> {
    vec![
        rewrite!("dq-is-scaled-int"; "(dq ?s ?x)" => "(mul ?s ?x)"),
        rewrite!("avgpool-is-scaled-sumpool"; "(avgpool ?p ?n ?x)" => { SumThenDivide { global: false } }),
        rewrite!("gap-is-scaled-gsum"; "(gap ?n ?x)" => { SumThenDivide { global: true } }),
        rewrite!("pull-scale-out-of-sumpool"; "(sumpool ?p (mul ?s ?x))" => "(mul ?s (sumpool ?p ?x))" if is_const("?s")),
        rewrite!("pull-scale-out-of-gsum"; "(gsum (mul ?s ?x))" => "(mul ?s (gsum ?x))" if is_const("?s")),
        rewrite!("pull-scale-out-of-relu"; "(relu (mul ?s ?x))" => "(mul ?s (relu ?x))" if is_positive("?s")),
        rewrite!("merge-scales"; "(mul ?a (mul ?b ?x))" => { MergeScales }),
        rewrite!("unit-scale"; "(mul 1 ?x)" => "?x"),
        rewrite!("rescale-to-common-scale"; "(add (mul ?s1 ?a) (mul ?s2 ?b))" => { CommonScale }),
        rewrite!("absorb-scale-into-thresholds"; "(q ?sy ?qmin (mul ?s ?x))" => "(qi ?s ?sy ?qmin ?x)" if is_positive("?s")),
        rewrite!("unsigned-quantizer-clips-relu"; "(q ?sy ?qmin (relu ?x))" => "(q ?sy ?qmin ?x)" if is_nonneg("?qmin")),
        rewrite!("unsigned-thresholds-clip-relu"; "(qi ?s ?sy ?qmin (relu ?x))" => "(qi ?s ?sy ?qmin ?x)" if is_nonneg("?qmin")),
    ]
}
