//! Planning a `requantize` on the native (AVX2) path, fused where it can be: into the
//! epilogue of the native convolution that computes its operand (the i32 accumulators
//! then never reach memory), or with the `scaled_add` that computes it (one pass reads
//! both addends and writes levels); else as a native step of its own when its rows
//! (`H·W` elements per channel) fill at least one vector. Shorter rows, outputs with
//! more than [`MAX_LEVELS`](crate::native::levels::MAX_LEVELS) thresholds, and graphs
//! compiled with a forced JIT form ([`crate::ConvForm::Dense`]/
//! [`crate::ConvForm::Ternary`], so that the tests keep checking the JIT'd
//! `requantize`), stay JIT'd.
//!
//! **Soundness.** A fusion requires that the operand is the result of the `qconv`,
//! `qgemm` or `scaled_add` node itself (not a reshape aliasing its buffer) and that this
//! `requantize` is its only use (no other node reads it and it is not a graph output),
//! so nothing reads the i32 tensor the producer no longer writes; its buffer is left
//! empty. The fused step applies the same threshold count (`native/levels.rs`) to the
//! same i32 values the producer would have stored, so the levels are those of the
//! unfused pair.

use fqc_ir::{NodeData, Op, ValueDef};

use crate::emit::misc::RequantSpec;
use crate::error::Result;
use crate::native::levels::{Levels, NativeRequant};
use crate::native::{self};
use crate::plan::{BufElem, Kernel, Planner, Step};
use crate::ConvForm;

/// Shortest row (elements per channel and image) a stand-alone native `requantize`
/// takes: one vector of 8 accumulators; shorter rows (e.g. after a `qgemm`) are JIT'd.
const MIN_ROW: usize = 8;

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
        let Some(levels) = Levels::new(spec).filter(|_| self.native_steps()) else {
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
        let producer = self
            .plan
            .steps
            .iter()
            .rposition(|s| matches!(s, Step::Kernel { out, .. } if *out == a))
            .filter(|_| own_result && self.uses[v.index()] == 1);
        if let Some(i) = producer {
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
}
