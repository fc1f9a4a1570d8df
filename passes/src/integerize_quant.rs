//! The quantizer side of `integerize`: `quantize` of each kind of symbolic value.
//!
//! * Of the (normalised) graph input: the one input `quantize`, with the scalar
//!   normalisation folded in (`quantize(div(sub(x, m), d)) {s}` = `quantize(x) {offset =
//!   m, scale = s·d}`, one f32 rounding of each folded attribute).
//! * Of an accumulator: `requantize` with exact thresholds per channel
//!   ([`crate::thresholds`]), the quantizer's offset subtracted from `B`.
//! * Of a join / pool of dequantized tensors: the e-graph ([`crate::streamline`]) finds
//!   the integer form (`scaled_add`, `sumpool`, `global_sumpool`, or a widened leaf via
//!   `scaled_add(x, x, 1, 0)`) and the factor `a` that makes its real value `a·acc`; the
//!   thresholds then quantize `a·acc` exactly as above.
//! * At the output boundary, an accumulator becomes `dequantize(acc, scale = A, bias =
//!   B)` (each rounded to f32 once): the logits are the only float values.
//!
//! * Of an element-wise map or a concat of parts: a table (`integerize_table`).
//!
//! Average pooling reaches the e-graph only where its divisor is the same at every
//! position (the divisor is folded into one factor of the thresholds); the others are
//! rewritten with per-position factors (`integerize_ints`).

use fqc_ir::{DType, Op, TensorData, Value, F32};

use crate::integerize::{describe, State, Sym};
use crate::integerize_acc::Acc;
use crate::streamline::{self, IntTerm, Leaf, Term};
use crate::thresholds::{LevelFn, Rat};
use crate::Result;

impl State<'_> {
    pub(crate) fn term(&mut self, s: &Sym) -> Result<Term> {
        match s {
            Sym::Lazy(t) => Ok(t.clone()),
            Sym::Real { v, dtype, scale } => {
                if let Some(i) = self.leaves.iter().position(|(l, _)| l == v) {
                    return Ok(Term::Leaf(i));
                }
                let (lo, hi) = dtype
                    .int_range()
                    .ok_or_else(|| self.err("leaf is not an integer"))?;
                let leaf = Leaf {
                    scale: self.rat(scale.get())?,
                    bound: i128::from(lo.abs().max(hi.abs())),
                };
                self.leaves.push((*v, leaf));
                Ok(Term::Leaf(self.leaves.len() - 1))
            }
            other => Err(self.err(format!("{} cannot be joined or pooled", describe(other)))),
        }
    }

    pub(crate) fn quantize(
        &mut self,
        x: &Sym,
        dtype: DType,
        scale: F32,
        offset: F32,
    ) -> Result<Sym> {
        let (qmin, qmax) = dtype
            .quant_range()
            .ok_or_else(|| self.err("quantizer has no level range"))?;
        match x {
            Sym::Input { x, offset: m, div } => {
                let s = (f64::from(scale.get()) * div) as f32;
                let o = (m + f64::from(offset.get()) * div) as f32;
                if !(s.is_finite() && s > 0.0 && o.is_finite()) {
                    return Err(self.err("folded input scale/offset is not a positive finite f32"));
                }
                let v = self.emit(
                    Op::Quantize {
                        dtype,
                        scale: F32(s),
                        offset: F32(o),
                    },
                    vec![*x],
                )?;
                Ok(Sym::Int { v, dtype, scale })
            }
            Sym::Acc(acc) => {
                let off = self.rat(offset.get())?;
                self.requantize_acc(acc, dtype, scale, off)
            }
            Sym::Real {
                v,
                dtype: src,
                scale: s,
            } if *s == scale
                && offset.get() == 0.0
                && src
                    .int_range()
                    .zip(Some((qmin, qmax)))
                    .is_some_and(|((a, b), (c, d))| a >= c && b <= d) =>
            {
                Ok(Sym::Int {
                    v: *v,
                    dtype,
                    scale,
                })
            }
            Sym::Real { .. } | Sym::Lazy(_) => {
                if offset.get() != 0.0 {
                    return Err(self.err("an interior quantizer must have offset 0"));
                }
                let term = self.term(x)?;
                let leaves: Vec<Leaf> = self.leaves.iter().map(|l| l.1).collect();
                let plan = streamline::streamline_quantize(
                    &term,
                    &leaves,
                    &self.pools,
                    self.gsum,
                    self.rat(scale.get())?,
                    qmin,
                    &mut self.notes,
                )
                .map_err(|e| self.err(e))?;
                let acc = self.emit_int_term(&plan.root)?;
                let c = self
                    .g
                    .ty(acc)
                    .shape
                    .0
                    .get(1)
                    .and_then(|d| d.fixed())
                    .ok_or_else(|| self.err("result needs a fixed channel axis 1"))?
                    as usize;
                let mut acc = Acc::new(acc, vec![plan.a; c], vec![Rat::ZERO; c]);
                if plan.relu {
                    acc = acc
                        .clip(Some(Rat::ZERO), None)
                        .ok_or_else(|| self.err("clip overflows"))?;
                }
                self.requantize_acc(&acc, dtype, scale, Rat::ZERO)
            }
            Sym::Map(m) => self.quantize_map(m, dtype, scale, offset),
            Sym::Parts(p) => self.quantize_parts(p, dtype, scale, offset),
            other => Err(self.err(format!("cannot quantize {}", describe(other)))),
        }
    }

    fn emit_int_term(&mut self, t: &IntTerm) -> Result<Value> {
        let leaf = |st: &Self, i: usize| st.leaves[i].0;
        let scalar =
            |st: &mut Self, k: i32| st.constant(DType::I32, vec![], TensorData::I32(vec![k]));
        let (a, ka, b, kb) = match *t {
            IntTerm::Leaf(i) => (leaf(self, i), 1, leaf(self, i), 0),
            IntTerm::ScaledAdd(i, ki, j, kj) => (leaf(self, i), ki, leaf(self, j), kj),
            IntTerm::SumPool(p, i) => {
                let window = fqc_ir::Window {
                    ceil_mode: false,
                    ..self.windows[p].clone()
                };
                let x = leaf(self, i);
                return self.emit(Op::SumPool { window }, vec![x]);
            }
            IntTerm::GlobalSum(i) => {
                let x = leaf(self, i);
                return self.emit(Op::GlobalSumPool, vec![x]);
            }
        };
        let (ka, kb) = (scalar(self, ka), scalar(self, kb));
        self.emit(Op::ScaledAdd, vec![a, b, ka, kb])
    }

    fn requantize_acc(&mut self, acc: &Acc, dtype: DType, scale: F32, offset: Rat) -> Result<Sym> {
        let (qmin, qmax) = dtype
            .quant_range()
            .ok_or_else(|| self.err("quantizer has no level range"))?;
        let s = self.rat(scale.get())?;
        let levels = (qmax - qmin) as usize;
        let c = acc.a.len();
        let mut t = Vec::with_capacity(c * levels);
        let mut desc = Vec::with_capacity(c);
        for ch in 0..c {
            let b = acc.b[ch]
                .checked_sub(offset)
                .ok_or_else(|| self.err("offset overflows"))?;
            let f = LevelFn {
                a: acc.a[ch],
                b,
                scale: s,
                qmin,
                qmax,
                lo: acc.lo[ch],
                hi: acc.hi[ch],
            };
            let th = f.thresholds();
            t.extend(th.t);
            desc.push(i8::from(th.descending));
        }
        let tv = self.constant(DType::I32, vec![c, levels], TensorData::I32(t));
        let dv = self.constant(DType::I8, vec![c], TensorData::I8(desc));
        let v = self.emit(Op::Requantize { dtype, scale }, vec![acc.v, tv, dv])?;
        Ok(Sym::Int { v, dtype, scale })
    }

    pub(crate) fn dequantize_acc(&mut self, acc: &Acc) -> Result<Value> {
        if acc.lo.iter().chain(&acc.hi).any(Option::is_some) {
            return Err(self.err("a clipped accumulator reaches the output without a quantizer"));
        }
        let f = |r: &Rat| r.to_f64() as f32;
        let (a, b): (Vec<f32>, Vec<f32>) =
            (acc.a.iter().map(f).collect(), acc.b.iter().map(f).collect());
        let c = a.len();
        let has_bias = b.iter().any(|&x| x != 0.0);
        let av = self.constant(DType::F32, vec![c], TensorData::F32(a));
        let mut ins = vec![acc.v, av];
        if has_bias {
            ins.push(self.constant(DType::F32, vec![c], TensorData::F32(b)));
        }
        self.emit(Op::Dequantize, ins)
    }
}
