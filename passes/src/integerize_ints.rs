//! The rules of `integerize` for ops on dequantized tensors that need no accumulator
//! layer: ops that select levels, products of two quantized tensors, pools whose divisor
//! varies by position, spatial reductions, concats at different scales, and element-wise
//! maps (the fallback, see `integerize_table`).
//!
//! * **Selection** — layout ops (reshape, flatten, transpose, slice, gather with constant
//!   indices, expand, tile, concat), max pooling, max/min reductions and nearest
//!   resizing pick elements of their operand: `op(dq(x)) = dq(op(x))` because `dq` is
//!   the same positive scale on every element (and `max`/`min` commute with it). They
//!   run on the levels. A constant `pad` fills with the level of its value (an exact
//!   level: `quantize-activations` snapped the value to one).
//! * **Products** — `dq(a)·dq(b) = (s_a·s_b)·(a·b)`: a `qmul` accumulator with `A =
//!   s_a·s_b`, requantized by the next quantizer like any accumulator (a
//!   squeeze-and-excitation gate).
//! * **Average pools whose divisor `d(p)` varies by position** (`count_include_pad=0`
//!   with pads, TensorFlow's SAME pools, ceil-mode windows hanging off the input) —
//!   `avg(dq(x))(p) = s·sum(p)/d(p) = (s/L)·(sum(p)·L/d(p))` with `L` the least common
//!   multiple of the divisors: a `sumpool`, a `qmul` by the integer constant `L/d(p)`,
//!   and an accumulator with `A = s/L` — exact, and refused (kept as a float island)
//!   only if the products could overflow i32.
//! * **Spatial reductions** — `reduce_mean`/`reduce_sum` over axes 2 and 3 of an NCHW
//!   tensor (kept dims) are global pools: divisor `H·W`, resp. 1.
//! * **Concat at different scales** — deferred to its quantizer, which rescales each part
//!   with a table (`integerize_table`).

use fqc_ir::op::{PadMode, ReduceKind, ResizeMode};
use fqc_ir::scalar::avg_pool_divisors;
use fqc_ir::{BinaryOp, DType, Dim, NodeData, Op, OpClass, TensorData, Value, Window, F32};

use crate::integerize::{State, Sym};
use crate::integerize_acc::Acc;
use crate::integerize_table::PartsSym;
use crate::streamline::Term;
use crate::thresholds::Rat;
use crate::Result;

/// Whether `op` only selects elements of operand 0 (see the module docs).
fn selects_levels(op: &Op) -> bool {
    op.class() == OpClass::Layout
        || matches!(
            op,
            Op::Resize {
                mode: ResizeMode::Nearest,
                ..
            } | Op::Reduce {
                kind: ReduceKind::Max | ReduceKind::Min,
                ..
            }
        )
}

/// Least common multiple, None past `limit`.
fn lcm(a: u64, b: u64, limit: u64) -> Option<u64> {
    let (mut x, mut y) = (a, b);
    while y != 0 {
        (x, y) = (y, x % y);
    }
    (a / x).checked_mul(b).filter(|&l| l <= limit)
}

impl State<'_> {
    /// Rules for ops on dequantized tensors (see the module docs), then maps.
    pub(crate) fn real_rule(&mut self, d: &NodeData, ins: &[Sym]) -> Result<Option<Sym>> {
        let sym = match (&d.op, ins) {
            (Op::Concat { axis }, _) if ins.iter().all(|s| matches!(s, Sym::Real { .. })) => {
                let parts: Vec<(Value, DType, F32)> = ins
                    .iter()
                    .map(|s| match s {
                        Sym::Real { v, dtype, scale } => (*v, *dtype, *scale),
                        _ => unreachable!("checked above"),
                    })
                    .collect();
                let (_, dtype, scale) = parts[0];
                if parts.iter().all(|p| p.1 == dtype && p.2 == scale) {
                    let vs = parts.iter().map(|p| p.0).collect();
                    let v = self.emit(d.op.clone(), vs)?;
                    Sym::Real { v, dtype, scale }
                } else {
                    Sym::Parts(Box::new(PartsSym { axis: *axis, parts }))
                }
            }
            (op, [Sym::Real { v, dtype, scale }, rest @ ..])
                if selects_levels(op) && rest.iter().all(|s| matches!(s, Sym::Const(_))) =>
            {
                let op = match op {
                    Op::Pad {
                        pads,
                        mode: PadMode::Constant,
                        value,
                    } => {
                        let level = value.get() / scale.get();
                        if level.fract() != 0.0 || level * scale.get() != value.get() {
                            return Err(self.err(format!(
                                "pad value {} is not a level at scale {}",
                                value.get(),
                                scale.get()
                            )));
                        }
                        Op::Pad {
                            pads: pads.clone(),
                            mode: PadMode::Constant,
                            value: F32(level),
                        }
                    }
                    op => op.clone(),
                };
                let mut vs = vec![*v];
                vs.extend(d.inputs[1..].iter().copied());
                let v = self.emit(op, vs)?;
                Sym::Real {
                    v,
                    dtype: *dtype,
                    scale: *scale,
                }
            }
            (
                Op::Binary(BinaryOp::Mul),
                [Sym::Real {
                    v: a, scale: sa, ..
                }, Sym::Real {
                    v: b, scale: sb, ..
                }],
            ) if a != b => {
                let k = self
                    .rat(sa.get())?
                    .checked_mul(self.rat(sb.get())?)
                    .ok_or_else(|| self.err("scale product overflows"))?;
                let v = self.emit(Op::QMul, vec![*a, *b])?;
                let c = self.channels(v)?;
                Sym::Acc(Box::new(Acc::new(v, vec![k; c], vec![Rat::ZERO; c])))
            }
            (
                Op::AveragePool {
                    window,
                    count_include_pad,
                },
                [Sym::Real { v, dtype, scale }],
            ) => self.varying_avg_pool(*v, *dtype, *scale, window, *count_include_pad, d)?,
            (
                Op::Reduce {
                    kind: kind @ (ReduceKind::Mean | ReduceKind::Sum),
                    axes,
                    keepdims: true,
                },
                [x @ (Sym::Real { .. } | Sym::Lazy(_))],
            ) if axes == &[2, 3] && self.g.ty(d.inputs[0]).shape.rank() == 4 => {
                self.gap(d.inputs[0], x, *kind == ReduceKind::Sum)?
            }
            _ => return self.map_rule(d, ins),
        };
        Ok(Some(sym))
    }

    /// A global average (or, `sum`, plain sum) of a real over the planes of old value
    /// `x_old`.
    pub(crate) fn gap(&mut self, x_old: Value, x: &Sym, sum: bool) -> Result<Sym> {
        let hw = match self.g.ty(x_old).shape.0.as_slice() {
            [_, _, Dim::Fixed(h), Dim::Fixed(w)] => h * w,
            _ => return Err(self.err("global pooling needs a fixed NCHW shape")),
        };
        self.gsum = self.gsum.max(hw);
        Ok(Sym::Lazy(Term::Gap {
            divisor: if sum { 1 } else { hw },
            x: Box::new(self.term(x)?),
        }))
    }

    /// The one divisor of an average pool, or None if it varies by position.
    pub(crate) fn avg_divisor(
        &self,
        w: &Window,
        include_pad: bool,
        x: &Value,
    ) -> Result<Option<u64>> {
        let shape = &self.g.ty(*x).shape;
        let dims: Vec<u64> = (2..4)
            .map(|i| shape.0.get(i).and_then(|d| d.fixed()))
            .collect::<Option<_>>()
            .ok_or_else(|| self.err("average pooling needs fixed spatial extents"))?;
        let floor = Window {
            ceil_mode: false,
            ..w.clone()
        };
        let overflow = w.ceil_mode
            && (0..2).any(|a| w.output_extent(a, dims[a]) != floor.output_extent(a, dims[a]));
        if overflow || (!include_pad && w.pads.iter().any(|&p| p > 0)) {
            return Ok(None);
        }
        Ok(Some(w.kernel[0] * w.kernel[1]))
    }

    /// An average pool of `dq(v)` with per-position divisors (see the module docs).
    fn varying_avg_pool(
        &mut self,
        v: Value,
        dtype: DType,
        scale: F32,
        window: &Window,
        include_pad: bool,
        d: &NodeData,
    ) -> Result<Sym> {
        let extent = |v: Value, i: usize| {
            self.g
                .ty(v)
                .shape
                .0
                .get(i)
                .and_then(|d| d.fixed())
                .map(|e| e as usize)
        };
        let (Some(h), Some(w), Some(oh), Some(ow)) = (
            extent(v, 2),
            extent(v, 3),
            extent(d.output, 2),
            extent(d.output, 3),
        ) else {
            return Err(self.err("average pooling needs fixed spatial extents"));
        };
        let divisors = avg_pool_divisors(window, include_pad, (h, w), (oh, ow));
        let mut l = 1u64;
        for &dv in divisors.iter().filter(|&&dv| dv > 0) {
            l = lcm(l, dv, 1 << 24)
                .ok_or_else(|| self.err("the pool's divisors have too large a common multiple"))?;
        }
        let factors: Vec<i32> = divisors
            .iter()
            .map(|&dv| l.checked_div(dv).unwrap_or(0) as i32)
            .collect();
        let (lo, hi) = dtype
            .int_range()
            .ok_or_else(|| self.err("pool operand is not an integer"))?;
        let taps = window.kernel[0] * window.kernel[1];
        let bound = u128::from(lo.unsigned_abs().max(hi.unsigned_abs()))
            * u128::from(taps)
            * factors.iter().map(|&f| f as u128).max().unwrap_or(0);
        if bound > i32::MAX as u128 {
            return Err(self.err("per-position pool factors could overflow i32"));
        }
        let sums = self.emit(
            Op::SumPool {
                window: window.clone(),
            },
            vec![v],
        )?;
        let m = self.constant(DType::I32, vec![1, 1, oh, ow], TensorData::I32(factors));
        let prod = self.emit(Op::QMul, vec![sums, m])?;
        let a = self
            .rat(scale.get())?
            .checked_div(Rat::int(l as i64))
            .ok_or_else(|| self.err("pool factor overflows"))?;
        let c = self.channels(prod)?;
        Ok(Sym::Acc(Box::new(Acc::new(
            prod,
            vec![a; c],
            vec![Rat::ZERO; c],
        ))))
    }
}
