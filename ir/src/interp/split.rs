//! Batch splitting for `RunOptions::threads > 1`.
//!
//! Splitting is sound only when batch item `i` of every output depends on batch item
//! `i` of the inputs alone. [`node_separable`] checks that per node from the types: a
//! node with no batched operand is recomputed by every chunk (harmless); otherwise its
//! result must keep the batch at axis 0 and the op must not reduce or normalise along
//! it. If every node passes and every output is batched, the chunks' outputs
//! concatenated along axis 0 are exactly the whole-batch outputs (each kernel computes
//! item `i` with the same arithmetic in the same order either way), which the tests
//! check bit for bit.

use std::borrow::Cow;

use super::{execute, Plan};
use crate::error::{IrError, Result};
use crate::graph::Graph;
use crate::op::Op;
use crate::tensor::{Tensor, TensorData};
use crate::types::{Dim, TensorType};

/// Whether `op` maps batch item `i` of its operands to batch item `i` of its result and
/// nothing else. Ops without a batched operand are recomputed by every chunk, which is
/// harmless. The exceptions are the ops that can reduce or normalise along axis 0.
pub(super) fn node_separable(op: &Op, operands: &[&TensorType], out: &TensorType) -> bool {
    let has = |t: &TensorType| t.shape.has_batch();
    if !operands.iter().any(|t| has(t)) {
        return true;
    }
    if out.shape.0.first() != Some(&Dim::Batch) {
        return false;
    }
    match op {
        Op::Softmax { axis } => *axis != 0,
        // Rows of A are batch items; a batched B would be summed over.
        Op::Gemm { trans_a, .. } => !trans_a && !has(operands[1]),
        Op::QGemm { .. } => !has(operands[1]),
        // A batched A must keep N as a row or broadcast-batch axis; a batched B only as
        // a broadcast-batch axis (rank ≥ 3), otherwise N is the contracted dimension.
        Op::MatMul => {
            (!has(operands[0]) || operands[0].shape.rank() >= 2)
                && (!has(operands[1]) || operands[1].shape.rank() >= 3)
        }
        _ => true,
    }
}

/// Splits the batch into `threads` contiguous chunks, runs each on its own thread and
/// concatenates the outputs along axis 0 (every output has the batch there: `separable`).
pub(super) fn run_split(
    g: &Graph,
    plan: &Plan,
    inputs: &[Tensor],
    batch: usize,
    threads: usize,
) -> Result<Vec<Tensor>> {
    let mut chunks: Vec<Vec<Cow<'_, Tensor>>> = Vec::with_capacity(threads);
    let mut start = 0;
    for j in 0..threads {
        let len = batch / threads + usize::from(j < batch % threads);
        let chunk = g
            .inputs()
            .iter()
            .zip(inputs)
            .map(|(&v, t)| {
                if !g.ty(v).shape.has_batch() {
                    return Cow::Borrowed(t);
                }
                let per: usize = t.shape[1..].iter().product();
                let TensorData::F32(d) = &t.data else {
                    unreachable!("bind checked f32 storage")
                };
                let mut shape = t.shape.clone();
                shape[0] = len;
                Cow::Owned(Tensor {
                    shape,
                    data: TensorData::F32(d[start * per..(start + len) * per].to_vec()),
                })
            })
            .collect();
        chunks.push(chunk);
        start += len;
    }
    let results: Vec<Result<Vec<Tensor>>> = std::thread::scope(|s| {
        let handles: Vec<_> = chunks
            .iter()
            .map(|chunk| {
                std::thread::Builder::new().spawn_scoped(s, move || {
                    execute(g, plan, chunk.iter().map(|c| &**c).collect())
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| match h {
                Ok(h) => h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)),
                Err(e) => Err(IrError::Input(format!("cannot start a worker thread: {e}"))),
            })
            .collect()
    });
    let parts: Vec<Vec<Tensor>> = results.into_iter().collect::<Result<_>>()?;
    let mut outputs: Vec<Tensor> = Vec::with_capacity(g.outputs().len());
    for part in parts {
        for (o, t) in part.into_iter().enumerate() {
            match outputs.get_mut(o) {
                Some(acc) => {
                    acc.shape[0] += t.shape[0];
                    append(&mut acc.data, t.data)?;
                }
                None => outputs.push(t),
            }
        }
    }
    Ok(outputs)
}

/// Appends `src` to `dst` (the same output of two chunks, so the same storage).
fn append(dst: &mut TensorData, src: TensorData) -> Result<()> {
    match (dst, src) {
        (TensorData::F32(d), TensorData::F32(s)) => d.extend_from_slice(&s),
        (TensorData::I32(d), TensorData::I32(s)) => d.extend_from_slice(&s),
        (TensorData::I64(d), TensorData::I64(s)) => d.extend_from_slice(&s),
        (TensorData::I8(d), TensorData::I8(s)) => d.extend_from_slice(&s),
        (TensorData::U8(d), TensorData::U8(s)) => d.extend_from_slice(&s),
        _ => {
            return Err(IrError::Invalid(
                "internal error: chunks produced different storage for one output".into(),
            ))
        }
    }
    Ok(())
}
