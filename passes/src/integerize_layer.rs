//! The layer rules of `integerize`: dequantized weights, `conv` / `gemm` / `matmul` of
//! a dequantized activation and dequantized integer weights (an accumulator with per-
//! channel real meaning `acc·A_c + B_c`, `A_c = s_x·s_w[c]·alpha`, `B_c` the f32 bias
//! times beta, all exact rationals), and the binary ops that fold into the input
//! normalisation or an accumulator's affine, or start a residual join.
//!
//! Soundness: `qconv`/`qgemm` compute the exact integer sum of level products, and the
//! real value of `dq(x)·dq(w)` summed is exactly `s_x·s_w[c]` times it; the bias and the
//! affine constants are carried as exact rationals into the thresholds.

use fqc_ir::{BinaryOp, Op, Scale, TensorType, Value};

use crate::integerize::{describe, State, Sym};
use crate::integerize_acc::Acc;
use crate::streamline::Term;
use crate::thresholds::Rat;
use crate::Result;

impl State<'_> {
    pub(crate) fn weight(&mut self, v: Value) -> Result<Sym> {
        let ty = self.g.ty(v).clone();
        if !ty.dtype.is_low_bit() || self.g.const_tensor(v).is_none() {
            return Err(self.err("dequantize of a constant needs low-bit integer data"));
        }
        match ty.scale {
            Some(Scale::Tensor(s)) => Ok(Sym::Weight {
                v,
                scales: vec![self.rat(s.get())?],
                axis: None,
            }),
            Some(Scale::Channel { axis, scales }) => {
                let (_, s) = self.const_f32(scales)?;
                let scales = s.iter().map(|&x| self.rat(x)).collect::<Result<Vec<_>>>()?;
                Ok(Sym::Weight {
                    v,
                    scales,
                    axis: Some(axis),
                })
            }
            None => Err(self.err("dequantized constant has no scale")),
        }
    }

    /// `qconv` / `qgemm` of a dequantized activation with dequantized weights; `axis` is
    /// the weights' output-channel axis, `alpha`/`beta` gemm's factors.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn layer(
        &mut self,
        op: Op,
        x: &Sym,
        w: &Sym,
        bias: Option<&Sym>,
        axis: usize,
        alpha: Rat,
        beta: Rat,
        out: &TensorType,
    ) -> Result<Sym> {
        let (
            Sym::Real {
                v: xv, scale: sx, ..
            },
            Sym::Weight {
                v: wv,
                scales,
                axis: waxis,
            },
        ) = (x, w)
        else {
            return Err(self.err(format!(
                "needs a dequantized activation and dequantized integer weights, got {} and {}",
                describe(x),
                describe(w)
            )));
        };
        let c = match out.shape.0.get(1).and_then(|d| d.fixed()) {
            Some(c) => c as usize,
            None => return Err(self.err("output needs a fixed channel axis 1")),
        };
        if waxis.is_some_and(|a| a != axis) || (waxis.is_some() && scales.len() != c) {
            return Err(self.err(format!(
                "weight scales must be per tensor or per output channel (axis {axis})"
            )));
        }
        let sx = self.rat(sx.get())?;
        let mut a = Vec::with_capacity(c);
        for ch in 0..c {
            let sw = scales[if waxis.is_some() { ch } else { 0 }];
            a.push(
                sx.checked_mul(sw)
                    .and_then(|p| p.checked_mul(alpha))
                    .ok_or_else(|| self.err("scale product overflows"))?,
            );
        }
        let b = match bias {
            None => vec![Rat::ZERO; c],
            Some(Sym::Const(bv)) => {
                // Conv's bias is one value per output channel; gemm's C broadcasts.
                let per = if matches!(op, Op::QConv { .. }) {
                    self.per_channel(*bv, 2, c)?
                } else {
                    self.per_channel(*bv, out.shape.rank(), c)?
                };
                per.iter()
                    .map(|r| {
                        r.checked_mul(beta)
                            .ok_or_else(|| self.err("bias overflows"))
                    })
                    .collect::<Result<_>>()?
            }
            Some(other) => {
                return Err(self.err(format!(
                    "bias must be a float constant, got {}",
                    describe(other)
                )))
            }
        };
        let v = self.emit(op, vec![*xv, *wv])?;
        Ok(Sym::Acc(Box::new(Acc::new(v, a, b))))
    }

    pub(crate) fn binary(&mut self, op: BinaryOp, a: &Sym, b: &Sym) -> Result<Option<Sym>> {
        match (op, a, b) {
            (_, Sym::Input { x, offset, div }, Sym::Const(c)) => {
                let (_, cv) = self.const_f32(*c)?;
                let [k] = cv[..] else {
                    return Err(self.err("input normalisation must use a scalar constant"));
                };
                let k = f64::from(k);
                let (offset, div) = match op {
                    BinaryOp::Sub => (offset + k * div, *div),
                    BinaryOp::Add => (offset - k * div, *div),
                    BinaryOp::Div => (*offset, div * k),
                    BinaryOp::Mul => (*offset, div / k),
                    BinaryOp::Min | BinaryOp::Max | BinaryOp::Pow => {
                        return Err(self.err("input normalisation is an affine map"))
                    }
                };
                if !(div.is_finite() && div > 0.0 && offset.is_finite()) {
                    return Err(self.err("input normalisation must keep a positive finite scale"));
                }
                Ok(Some(Sym::Input { x: *x, offset, div }))
            }
            (_, Sym::Acc(acc), Sym::Const(c)) => self.affine(op, acc, *c, false).map(Some),
            (BinaryOp::Add | BinaryOp::Mul | BinaryOp::Sub, Sym::Const(c), Sym::Acc(acc)) => {
                self.affine(op, acc, *c, true).map(Some)
            }
            (BinaryOp::Add, Sym::Real { .. } | Sym::Lazy(_), Sym::Real { .. } | Sym::Lazy(_)) => {
                Ok(Some(Sym::Lazy(Term::Add(
                    Box::new(self.term(a)?),
                    Box::new(self.term(b)?),
                ))))
            }
            _ => Ok(None),
        }
    }
}
