//! Accumulators with a per-channel real meaning, and the float ops `integerize` folds
//! into them: per-channel `mul` / `add` / `sub` / `div` by constants (the affine left by
//! a BatchNorm that could not be folded into the weights), `relu` and `clip`.
//!
//! An [`Acc`] denotes `clip(acc·a[c] + b[c], lo[c], hi[c])` for channel `c` (axis 1).
//! Folding is exact rational arithmetic on the f32 constants: `m·clip(y, lo, hi) =
//! clip(m·y, m·lo, m·hi)` for `m ≥ 0` and `clip(m·y, m·hi, m·lo)` for `m < 0` (so a
//! negative γ makes `a[c] < 0`, which `requantize` expresses as a descending channel);
//! `clip(y, lo, hi) + k = clip(y + k, lo + k, hi + k)`; and a clip of a clip is one clip
//! with the inner bounds pushed through the outer one. The next quantizer is monotone,
//! so the whole chain stays a step function of `acc` and becomes its thresholds.

use fqc_ir::{BinaryOp, Value};

use crate::integerize::{State, Sym};
use crate::thresholds::Rat;
use crate::Result;

/// An accumulator `v` meaning `clip(v·a[c] + b[c], lo[c], hi[c])` per channel.
#[derive(Clone, Debug, PartialEq)]
pub struct Acc {
    pub v: Value,
    pub a: Vec<Rat>,
    pub b: Vec<Rat>,
    pub lo: Vec<Option<Rat>>,
    pub hi: Vec<Option<Rat>>,
}

fn clip1(x: Option<Rat>, lo: Option<Rat>, hi: Option<Rat>) -> Option<Rat> {
    // `None` stands for -inf (lower bounds) or +inf (upper bounds); callers pass each
    // side's own infinity through unchanged unless the other clip bounds it.
    let mut x = x;
    if let Some(l) = lo {
        x = Some(x.map_or(l, |x| x.max(l)));
    }
    if let Some(h) = hi {
        x = Some(x.map_or(h, |x| x.min(h)));
    }
    x
}

impl Acc {
    pub fn new(v: Value, a: Vec<Rat>, b: Vec<Rat>) -> Acc {
        let c = a.len();
        Acc {
            v,
            a,
            b,
            lo: vec![None; c],
            hi: vec![None; c],
        }
    }

    /// `clip(self, lo, hi)` (None: unbounded on that side); None on overflow.
    pub fn clip(&self, lo: Option<Rat>, hi: Option<Rat>) -> Option<Acc> {
        let mut r = self.clone();
        for c in 0..r.a.len() {
            // -inf maps to the outer lower bound, +inf to the outer upper bound.
            r.lo[c] = match r.lo[c] {
                Some(l) => clip1(Some(l), lo, hi),
                None => lo,
            };
            r.hi[c] = match r.hi[c] {
                Some(h) => clip1(Some(h), lo, hi),
                None => hi,
            };
        }
        Some(r)
    }

    /// `self · m[c]`.
    fn scale(&self, m: &[Rat]) -> Option<Acc> {
        let mut r = self.clone();
        for (c, &k) in m.iter().enumerate().take(r.a.len()) {
            r.a[c] = r.a[c].checked_mul(k)?;
            r.b[c] = r.b[c].checked_mul(k)?;
            let lo = r.lo[c].map(|x| x.checked_mul(k)).transpose_opt()?;
            let hi = r.hi[c].map(|x| x.checked_mul(k)).transpose_opt()?;
            (r.lo[c], r.hi[c]) = if k.signum() < 0 { (hi, lo) } else { (lo, hi) };
        }
        Some(r)
    }

    /// `self + k[c]`.
    fn shift(&self, k: &[Rat]) -> Option<Acc> {
        let mut r = self.clone();
        for (c, &k) in k.iter().enumerate().take(r.a.len()) {
            r.b[c] = r.b[c].checked_add(k)?;
            r.lo[c] = r.lo[c].map(|x| x.checked_add(k)).transpose_opt()?;
            r.hi[c] = r.hi[c].map(|x| x.checked_add(k)).transpose_opt()?;
        }
        Some(r)
    }
}

/// `Option<Option<T>>` → `Option<Option<T>>` where an inner overflow (None) is an error.
trait TransposeOpt<T> {
    fn transpose_opt(self) -> Option<Option<T>>;
}

impl<T> TransposeOpt<T> for Option<Option<T>> {
    fn transpose_opt(self) -> Option<Option<T>> {
        match self {
            None => Some(None),
            Some(Some(x)) => Some(Some(x)),
            Some(None) => None,
        }
    }
}

impl State<'_> {
    /// A float constant as one exact value per channel of an axis-1 operand of rank
    /// `rank` (shapes `[]`, `[1]`, `[C]` for rank 2, `[C,1,1]`, `[1,C,1,1]`, …).
    pub(crate) fn per_channel(&self, v: Value, rank: usize, c: usize) -> Result<Vec<Rat>> {
        let (shape, data) = self.const_f32(v)?;
        let bad = || {
            self.err(format!(
                "constant %{} of shape {shape:?} is not per-channel along axis 1",
                v.0
            ))
        };
        if shape.len() > rank {
            return Err(bad());
        }
        // Right-aligned broadcasting: only the dimension aligned with axis 1 may be > 1.
        let axis1 = (rank >= 2)
            .then(|| 1 + shape.len())
            .and_then(|x| x.checked_sub(rank));
        for (i, &d) in shape.iter().enumerate() {
            if d != 1 && (Some(i) != axis1 || d != c) {
                return Err(bad());
            }
        }
        let per = if data.len() == 1 {
            vec![data[0]; c]
        } else {
            data
        };
        per.iter().map(|&x| self.rat(x)).collect()
    }

    /// `acc ∘ c` (or `c ∘ acc` when `swapped`) for a per-channel constant `c`.
    pub(crate) fn affine(
        &mut self,
        op: BinaryOp,
        acc: &Acc,
        c: Value,
        swapped: bool,
    ) -> Result<Sym> {
        let rank = self.g.ty(acc.v).shape.rank();
        let k = self.per_channel(c, rank, acc.a.len())?;
        let overflow = || self.err("affine parameters overflow exact arithmetic");
        let neg = |k: &[Rat]| {
            k.iter()
                .map(|x| x.checked_neg())
                .collect::<Option<Vec<_>>>()
        };
        let r = match (op, swapped) {
            (BinaryOp::Mul, _) => acc.scale(&k),
            (BinaryOp::Add, _) => acc.shift(&k),
            (BinaryOp::Sub, false) => neg(&k).and_then(|nk| acc.shift(&nk)),
            // c - acc = (-1)·acc + c
            (BinaryOp::Sub, true) => acc
                .scale(&vec![Rat::int(-1); k.len()])
                .and_then(|r| r.shift(&k)),
            (BinaryOp::Div, false) => {
                if k.iter().any(|x| x.signum() == 0) {
                    return Err(self.err("division by zero"));
                }
                k.iter()
                    .map(|x| x.recip())
                    .collect::<Option<Vec<_>>>()
                    .and_then(|r| acc.scale(&r))
            }
            (BinaryOp::Div, true) => {
                return Err(self.err("constant divided by an accumulator is not monotone-affine"))
            }
            (BinaryOp::Min | BinaryOp::Max | BinaryOp::Pow, _) => {
                return Err(self.err(format!("{} is not an affine map", op.name())))
            }
        };
        Ok(Sym::Acc(Box::new(r.ok_or_else(overflow)?)))
    }

    pub(crate) fn clip_acc(&self, acc: &Acc, lo: Option<Rat>, hi: Option<Rat>) -> Result<Sym> {
        let r = acc
            .clip(lo, hi)
            .ok_or_else(|| self.err("clip overflows exact arithmetic"))?;
        Ok(Sym::Acc(Box::new(r)))
    }
}
