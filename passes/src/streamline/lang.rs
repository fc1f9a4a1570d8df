//! The e-graph language of the quantized arithmetic subset, its analysis and its cost.
//!
//! Terms describe one quantizer's operand in real arithmetic: leaves `x<i>` are low-bit
//! integer tensors, `(dq s x)` their real value at scale `s`, `mul` / `add` real
//! arithmetic, `avgpool` / `gap` averaging pools (`p<i>` names a window, the number is
//! the divisor), `sumpool` / `gsum` their integer sums, `relu`, `(q s_y qmin x)` the
//! float quantizer of a real and `(qi s s_y qmin x)` the threshold quantizer of an
//! integer `x` whose real value is `s·x`. Constants are exact [`Rat`]ionals, so every
//! rule is an exact identity of real arithmetic and the extracted term means exactly what
//! the input term meant.
//!
//! The analysis tracks, per e-class, its constant value (if any) and, for integer
//! tensors, a bound on `|x|` (to refuse rescalings that could overflow i32). The cost
//! charges ~1000 for every op that computes on floats (`dq`, a `mul` by a non-integer or
//! of a real tensor, a real `add`, the averaging pools, `q`) and 1 for integer ops, so
//! extraction prefers any integer-only form.

use egg::{define_language, Analysis, CostFunction, DidMerge, EGraph, Id, Language, Symbol};

use crate::thresholds::Rat;

define_language! {
    /// The arithmetic subset streamlined by equality saturation.
    pub enum Arith {
        "mul" = Mul([Id; 2]),
        "add" = Add([Id; 2]),
        "dq" = Dq([Id; 2]),
        "avgpool" = AvgPool([Id; 3]),
        "gap" = Gap([Id; 2]),
        "sumpool" = SumPool([Id; 2]),
        "gsum" = GSum(Id),
        "relu" = Relu(Id),
        "q" = Q([Id; 3]),
        "qi" = Qi([Id; 4]),
        Num(Rat),
        Sym(Symbol),
    }
}

/// Per-class facts.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Facts {
    /// The class's constant value.
    pub value: Option<Rat>,
    /// For integer tensors: the largest magnitude an element can have.
    pub int_bound: Option<i128>,
}

/// The analysis: constants and integer bounds. `leaf_bounds[i]` is `max |x<i>|` and
/// `pool_sizes[i]` the element count of window `p<i>` (what a sum pool multiplies the
/// bound by).
#[derive(Debug, Default, Clone)]
pub struct ArithAnalysis {
    pub leaf_bounds: Vec<i128>,
    pub pool_sizes: Vec<i128>,
    /// Elements summed by a `gsum` (the largest spatial extent of any global pool).
    pub gsum_size: i128,
}

/// Index of a `x<i>` / `p<i>` symbol.
pub fn symbol_index(s: Symbol, prefix: char) -> Option<usize> {
    s.as_str().strip_prefix(prefix)?.parse().ok()
}

impl Analysis<Arith> for ArithAnalysis {
    type Data = Facts;

    fn make(egraph: &mut EGraph<Arith, Self>, enode: &Arith, _id: Id) -> Facts {
        let d = |i: &Id| &egraph[*i].data;
        let an = &egraph.analysis;
        let mut f = Facts::default();
        match enode {
            Arith::Num(r) => f.value = Some(*r),
            Arith::Sym(s) => {
                f.int_bound = symbol_index(*s, 'x').and_then(|i| an.leaf_bounds.get(i).copied())
            }
            Arith::Mul([c, x]) => {
                f.value = d(c)
                    .value
                    .zip(d(x).value)
                    .and_then(|(a, b)| a.checked_mul(b));
                if let (Some(k), Some(b)) = (d(c).value, d(x).int_bound) {
                    if k.is_integer() {
                        f.int_bound = k.num().checked_abs().and_then(|k| k.checked_mul(b));
                    }
                }
            }
            Arith::Add([a, b]) => {
                f.int_bound = d(a)
                    .int_bound
                    .zip(d(b).int_bound)
                    .and_then(|(a, b)| a.checked_add(b));
            }
            Arith::SumPool([p, x]) => {
                let size = match egraph[*p].nodes.first() {
                    Some(Arith::Sym(s)) => symbol_index(*s, 'p').and_then(|i| an.pool_sizes.get(i)),
                    _ => None,
                };
                f.int_bound = d(x)
                    .int_bound
                    .zip(size)
                    .and_then(|(b, n)| b.checked_mul(*n));
            }
            Arith::GSum(x) => {
                f.int_bound = d(x).int_bound.and_then(|b| b.checked_mul(an.gsum_size))
            }
            Arith::Relu(x) => f.int_bound = d(x).int_bound,
            _ => {}
        }
        f
    }

    fn merge(&mut self, a: &mut Facts, b: Facts) -> DidMerge {
        let mut changed_a = false;
        if a.value.is_none() && b.value.is_some() {
            a.value = b.value;
            changed_a = true;
        }
        // Two bounds of one class are both valid: keep the tighter.
        let bound = match (a.int_bound, b.int_bound) {
            (Some(x), Some(y)) => Some(x.min(y)),
            (x, y) => x.or(y),
        };
        if bound != a.int_bound {
            a.int_bound = bound;
            changed_a = true;
        }
        DidMerge(changed_a, a.value != b.value || a.int_bound != b.int_bound)
    }
}

/// Cost of a float op.
pub const FLOAT_COST: f64 = 1000.0;

/// Extraction cost: ~1000 per float op, 1 per integer op.
#[derive(Debug)]
pub struct IntegerCost<'a> {
    pub egraph: &'a EGraph<Arith, ArithAnalysis>,
}

impl CostFunction<Arith> for IntegerCost<'_> {
    type Cost = f64;

    fn cost<C>(&mut self, enode: &Arith, mut costs: C) -> f64
    where
        C: FnMut(Id) -> f64,
    {
        let facts = |i: &Id| &self.egraph[*i].data;
        let is_int = |i: &Id| facts(i).int_bound.is_some();
        let own = match enode {
            Arith::Num(_) | Arith::Sym(_) => 0.0,
            Arith::Mul([c, x]) => match facts(c).value {
                Some(k) if k.is_integer() && is_int(x) => 1.0,
                _ => FLOAT_COST,
            },
            Arith::Add([a, b]) if is_int(a) && is_int(b) => 1.0,
            Arith::SumPool([_, x]) | Arith::GSum(x) | Arith::Relu(x) if is_int(x) => 1.0,
            Arith::Qi([.., x]) if is_int(x) => 1.0,
            _ => FLOAT_COST,
        };
        enode.fold(own, |sum, id| sum + costs(id))
    }
}
