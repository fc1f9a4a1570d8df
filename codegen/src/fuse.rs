//! Planning a `requantize` on the native (AVX2) path, fused where it can be: into the
//! epilogue of the native convolution that computes its operand (the i32 accumulators
//! then never reach memory), or with the `scaled_add` that computes it (one pass reads
//! both addends and writes levels) — and when one addend is itself a `requantize` fused
//! into a native convolution (a residual block's tail), the add and this `requantize`
//! are chained after that convolution's epilogue, so the block's last convolution
//! stores the block's output; else as a native step of its own when its rows
//! (`H·W` elements per channel) fill at least one vector. Shorter rows, outputs with
//! more than [`MAX_LEVELS`](crate::native::levels::MAX_LEVELS) thresholds (8-bit) that
//! have no exact affine form — on the operand's bound, or on the few values a
//! `scaled_add` of two low-bit tensors can give ([`MAX_SUMS`]) — and graphs
//! compiled with a forced JIT form ([`crate::ConvForm::Dense`]/
//! [`crate::ConvForm::Ternary`], so that the tests keep checking the JIT'd
//! `requantize`), stay JIT'd.
//!
//! **Soundness.** A fusion requires that the operand is the result of the `qconv`,
//! `qgemm` or `scaled_add` node itself (not a reshape aliasing its buffer) and that this
//! `requantize` is its only use (no other node reads it and it is not a graph output),
//! so nothing reads the i32 tensor the producer no longer writes; its buffer is left
//! empty. A chain additionally requires the convolution's `requantize` to be read
//! only by the add, and the add's other operand to be written by a step before the
//! convolution's (buffers are written once), so the convolution can read it. The fused step applies the same threshold count (`native/levels.rs`) to the
//! same i32 values the producer would have stored, so the levels are those of the
//! unfused pair.

use fqc_ir::{NodeData, Op, TensorData, Value, ValueDef};

use crate::emit::misc::RequantSpec;
use crate::error::Result;
use crate::native::levels::{Levels, NativeRequant};
use crate::native::{self};
use crate::plan::{BufElem, Kernel, Planner, Step};
use crate::ConvForm;

/// Shortest row (elements per channel and image) a stand-alone native `requantize`
/// takes: one vector of 8 accumulators; shorter rows (e.g. after a `qgemm`) are JIT'd.
const MIN_ROW: usize = 8;

/// Most operand pairs whose sums [`Planner::sums_of_add`] enumerates (two 8-bit
/// tensors).
const MAX_SUMS: i64 = 1 << 16;

impl Planner<'_> {
    /// Whether element-wise and pool steps may run natively: AVX2 is there and no JIT
    /// convolution form was forced (the tests force them to check the JIT'd kernels).
    pub(crate) fn native_steps(&self) -> bool {
        native::available() && !matches!(self.force, Some(ConvForm::Dense | ConvForm::Ternary))
    }

    /// Plans `requantize` `node` (`spec`, operand buffer `a`) natively where it can (see
    /// the module docs). `false`: nothing was planned; the caller JITs it.
    pub(crate) fn native_requant(
        &mut self,
        node: &NodeData,
        spec: &RequantSpec,
        a: usize,
    ) -> Result<bool> {
        // Every path below feeds the levels values of buffer `a` (a convolution's
        // accumulators, or an add's sums): its bound bounds them.
        // A `scaled_add`'s result takes few distinct values: its 8-bit `requantize`
        // may have an affine form on those and none on the whole bound.
        let bound = self.bound.get(&a).copied();
        let levels = Levels::new(spec, bound).or_else(|| {
            let sums = self.sums_of_add(node.inputs[0])?;
            Levels::on_points(spec, &sums)
        });
        let Some(levels) = levels.filter(|_| self.native_steps()) else {
            return Ok(false);
        };
        let g = self.g;
        let v = node.inputs[0];
        let own_result = match g.value(v).def {
            ValueDef::Node(n) => matches!(
                g.node(n).op,
                Op::QConv { .. } | Op::QGemm { .. } | Op::ScaledAdd
            ),
            _ => false,
        };
        let producer = producer_of(&self.plan.steps, a)
            .filter(|&i| matches!(self.plan.steps[i], Step::Kernel { .. }))
            .filter(|_| own_result && self.uses[v.index()] == 1);
        if let Some(i) = producer {
            if self.chain_into_conv(node, &levels, i)? {
                return Ok(true);
            }
            if let Step::Kernel { kernel, .. } = &mut self.plan.steps[i] {
                let fused = match &mut **kernel {
                    Kernel::Native(nc) if nc.epi.is_none() => {
                        nc.epi = Some(levels.clone());
                        true
                    }
                    Kernel::Add(s) if spec.inner >= MIN_ROW => {
                        let add = Some(*s);
                        **kernel = Kernel::NativeRequant(NativeRequant {
                            levels: levels.clone(),
                            inner: spec.inner,
                            add,
                        });
                        true
                    }
                    _ => false,
                };
                if fused {
                    let out = self.new_buf(node, BufElem::Int(levels.out))?;
                    let (lo, hi) = g.ty(node.output).dtype.quant_range().unwrap_or((0, 0));
                    self.bound.insert(out, lo.abs().max(hi.abs()));
                    if let Step::Kernel { out: o, .. } = &mut self.plan.steps[i] {
                        *o = out;
                    }
                    self.plan.bufs[a].per_item = 0;
                    return Ok(true);
                }
            }
        }
        if spec.inner < MIN_ROW {
            return Ok(false);
        }
        let nr = NativeRequant {
            levels,
            inner: spec.inner,
            add: None,
        };
        self.push(node, Kernel::NativeRequant(nr), a, None)?;
        Ok(true)
    }

    /// Every value `v` can take when it is the result of a `scaled_add` of two low-bit
    /// tensors: `a·ka + b·kb` over their types' ranges, if there are at most
    /// [`MAX_SUMS`] pairs.
    fn sums_of_add(&self, v: Value) -> Option<Vec<i64>> {
        let g = self.g;
        let ValueDef::Node(n) = g.value(v).def else {
            return None;
        };
        let add = g.node(n);
        if !matches!(add.op, Op::ScaledAdd) || add.inputs.len() != 4 {
            return None;
        }
        let (ra, rb) = (
            g.ty(add.inputs[0]).dtype.quant_range()?,
            g.ty(add.inputs[1]).dtype.quant_range()?,
        );
        let factor = |i: usize| match &g.const_tensor(add.inputs[i])?.data {
            TensorData::I32(k) if k.len() == 1 => Some(i64::from(k[0])),
            _ => None,
        };
        let (ka, kb) = (factor(2)?, factor(3)?);
        if (ra.1 - ra.0 + 1) * (rb.1 - rb.0 + 1) > MAX_SUMS {
            return None;
        }
        Some(
            (ra.0..=ra.1)
                .flat_map(|x| (rb.0..=rb.1).map(move |y| x * ka + y * kb))
                .collect(),
        )
    }

    /// When step `i` is a `scaled_add` (this `requantize`'s only operand, checked by
    /// the caller) one of whose operands is a `requantize` fused into a native
    /// convolution and read by nothing else, and whose other operand is computed before
    /// that convolution runs: chains the add and this `requantize` after the
    /// convolution's epilogue (`NativeConv::fuse_add`), gives the convolution the other
    /// operand as its second input, and drops step `i`. `false`: nothing changed.
    fn chain_into_conv(&mut self, node: &NodeData, levels: &Levels, i: usize) -> Result<bool> {
        let g = self.g;
        let Step::Kernel {
            kernel,
            a,
            b: Some(b),
            ..
        } = &self.plan.steps[i]
        else {
            return Ok(false);
        };
        let (Kernel::Add(add), a, b) = (&**kernel, *a, *b) else {
            return Ok(false);
        };
        let ValueDef::Node(add_node) = g.value(node.inputs[0]).def else {
            return Ok(false);
        };
        let operands = &g.node(add_node).inputs;
        // (levels buffer, its factor, other buffer, its factor and storage, operand)
        let sides = [
            (a, add.ka, b, add.kb, add.b, operands[0]),
            (b, add.kb, a, add.ka, add.a, operands[1]),
        ];
        for (lv_buf, k_levels, other, k_other, other_elem, v) in sides {
            let fused_requant = matches!(g.value(v).def,
                ValueDef::Node(n) if matches!(g.node(n).op, Op::Requantize { .. }));
            if !fused_requant || self.uses[v.index()] != 1 || lv_buf == other {
                continue;
            }
            let Some(j) = producer_of(&self.plan.steps, lv_buf) else {
                continue;
            };
            if producer_of(&self.plan.steps, other).is_none_or(|k| k >= j) {
                continue;
            }
            let Step::Kernel {
                kernel, b: conv_b, ..
            } = &mut self.plan.steps[j]
            else {
                continue;
            };
            let Kernel::Native(nc) = &mut **kernel else {
                continue;
            };
            if nc.epi.is_none() || nc.add.is_some() || conv_b.is_some() {
                continue;
            }
            // The other operand's values lie in its type's range.
            let other_value = operands[usize::from(v == operands[0])];
            let other_range = g.ty(other_value).dtype.quant_range();
            let Some(first) = &nc.epi else {
                continue;
            };
            let chained = native::EpiAdd::new(
                (first, k_levels),
                (other_elem, other_range, k_other),
                levels.clone(),
            );
            nc.fuse_add(chained);
            *conv_b = Some(other);
            let out = self.new_buf(node, BufElem::Int(levels.out))?;
            let (lo, hi) = g.ty(node.output).dtype.quant_range().unwrap_or((0, 0));
            self.bound.insert(out, lo.abs().max(hi.abs()));
            if let Step::Kernel { out: o, .. } = &mut self.plan.steps[j] {
                *o = out;
            }
            let Step::Kernel { out: sum, .. } = self.plan.steps.remove(i) else {
                unreachable!("step {i} is the add");
            };
            self.plan.bufs[sum].per_item = 0;
            self.plan.bufs[lv_buf].per_item = 0;
            return Ok(true);
        }
        Ok(false)
    }
}

/// The index of the last step writing buffer `buf`.
fn producer_of(steps: &[Step], buf: usize) -> Option<usize> {
    steps.iter().rposition(|s| match s {
        Step::Kernel { out, .. }
        | Step::Quantize { out, .. }
        | Step::Dequantize { out, .. }
        | Step::Interp { out, .. } => *out == buf,
    })
}
