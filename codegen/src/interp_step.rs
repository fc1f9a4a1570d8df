//! Steps the JIT runs with the reference interpreter's kernel for one node.
//!
//! Every node that has no JIT or native code of its own (`table`, `qmul`, transposes,
//! pads, slices, concats, broadcasting adds, the float ops of a float island or after
//! the output boundary...) or whose operands its code does not take becomes a
//! [`Step::Interp`]: at run time its operands are read from their buffers into tensors,
//! [`fqc_ir::interp::eval_node`] evaluates the node, and the result is written to the
//! node's buffer. So "not supported by the JIT" cannot happen for a graph the
//! interpreter runs, and the step's result is the interpreter's, bit for bit — the
//! property the JIT ≡ interpreter tests check for the whole graph.
//!
//! A planned kernel fails (with `Unsupported`) before it changes the plan, so falling
//! back here after such a failure leaves no half-planned kernel behind. The magnitude
//! bound of an integer result, which later JIT'd kernels use in their overflow proofs,
//! is the storage range for low-bit results and, for i32 results, the product or sum
//! bound of the op where it is known (`qmul`, `sumpool`, `global_sumpool`), else
//! `i32::MAX` (a JIT'd user whose proof then fails falls back here too).

use std::sync::Arc;

use fqc_ir::{DType, Dim, NodeData, Op, Tensor, TensorData, ValueDef};

use crate::emit::Elem;
use crate::error::{CodegenError, Result};
use crate::plan::{elem_of, BufElem, Planner, Step};

/// Where an interpreted node's operand comes from at run time.
#[derive(Clone, Debug)]
pub(crate) enum Operand {
    /// A planned buffer, with the value's static shape.
    Buf(usize, Vec<Dim>),
    /// A graph input (by position).
    Input(usize),
    /// A constant.
    Const(Arc<Tensor>),
}

impl Planner<'_> {
    /// Plans `node` as an interpreter step.
    pub(crate) fn interp_step(&mut self, node: &NodeData) -> Result<()> {
        let g = self.g;
        let mut ins = Vec::with_capacity(node.inputs.len());
        let mut bounds = Vec::with_capacity(node.inputs.len());
        for &v in &node.inputs {
            if let Some(&id) = self.buf_of.get(&v) {
                ins.push(Operand::Buf(id, g.ty(v).shape.0.clone()));
                bounds.push(self.bound.get(&id).copied().unwrap_or(i64::from(i32::MAX)));
            } else if let Some(t) = g.const_tensor(v) {
                bounds.push(
                    crate::lower::int_values(t)
                        .iter()
                        .map(|x| x.abs())
                        .max()
                        .unwrap_or(0),
                );
                ins.push(Operand::Const(Arc::new(t.clone())));
            } else if let ValueDef::Input(i) = g.value(v).def {
                ins.push(Operand::Input(i));
                bounds.push(i64::from(i32::MAX));
            } else {
                return Err(CodegenError::Invalid(format!(
                    "operand %{} of `{}` is neither computed, an input nor a constant",
                    v.0, node.name
                )));
            }
        }
        let dtype = g.ty(node.output).dtype;
        let elem = match dtype {
            DType::F32 => BufElem::F32,
            d => BufElem::Int(
                elem_of(d).ok_or_else(|| self.unsupported(node, format!("{d} results")))?,
            ),
        };
        let out = self.new_buf(node, elem)?;
        if let BufElem::Int(e) = elem {
            let bound = match (e, dtype.quant_range()) {
                (Elem::I32, _) | (_, None) => i32_bound(node, &bounds, self.dims(node.inputs[0])),
                (_, Some((lo, hi))) => lo.abs().max(hi.abs()),
            };
            self.bound.insert(out, bound);
        }
        self.plan.graph = Some(self.shared_graph());
        self.plan.steps.push(Step::Interp {
            node: Box::new(node.clone()),
            ins,
            out,
        });
        Ok(())
    }
}

/// A bound on the magnitude of an i32 result (see the module docs).
fn i32_bound(node: &NodeData, operand: &[i64], x_dims: Vec<usize>) -> i64 {
    let max = i64::from(i32::MAX);
    let b = match &node.op {
        Op::QMul => operand[0].saturating_mul(operand[1]),
        Op::SumPool { window } => {
            let taps = (window.kernel[0] * window.kernel[1]) as i64;
            taps.saturating_mul(operand[0])
        }
        Op::GlobalSumPool => {
            let plane: usize = x_dims.iter().skip(2).product();
            (plane as i64).saturating_mul(operand[0])
        }
        _ => max,
    };
    b.min(max)
}

/// The tensor held by `buf` (storage `elem`, static shape `dims` at `batch`).
pub(crate) fn tensor_of(buf: &[u8], elem: BufElem, dims: &[Dim], batch: usize) -> Tensor {
    let shape: Vec<usize> = dims
        .iter()
        .map(|d| d.resolve(batch as u64) as usize)
        .collect();
    let n: usize = shape.iter().product();
    let data = match elem {
        BufElem::F32 => TensorData::F32(
            buf[..4 * n]
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
        ),
        BufElem::Int(Elem::U8) => TensorData::U8(buf[..n].to_vec()),
        BufElem::Int(Elem::I8) => TensorData::I8(buf[..n].iter().map(|&v| v as i8).collect()),
        BufElem::Int(Elem::I32) => TensorData::I32(
            buf[..4 * n]
                .chunks_exact(4)
                .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
        ),
    };
    Tensor { shape, data }
}

/// Writes `t`'s elements into `out` in the buffer storage (the planner chose the
/// buffer's storage from the same static type the interpreter's result has).
pub(crate) fn write_tensor(t: &Tensor, out: &mut [u8]) -> Result<()> {
    let bytes: Vec<u8> = match &t.data {
        TensorData::F32(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        TensorData::I32(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        TensorData::I8(v) => v.iter().map(|&x| x as u8).collect(),
        TensorData::U8(v) => v.clone(),
        TensorData::I64(_) => {
            return Err(CodegenError::Invalid("an i64 result has no buffer".into()))
        }
    };
    let dst = out
        .get_mut(..bytes.len())
        .ok_or_else(|| CodegenError::Invalid("result larger than its buffer".into()))?;
    dst.copy_from_slice(&bytes);
    Ok(())
}
