//! ReduceMean, ReduceMax, ReduceMin, ReduceSum over known axes (an attribute before
//! opset 18 — 13 for ReduceSum — an input after), with `keepdims` and
//! `noop_with_empty_axes`. Axes are normalised, sorted and deduplicated; reducing over
//! the batch axis is refused (one image's result would depend on the others).
//!
//! A reduction over the spatial axes of an NCHW tensor — how Keras/TF exports and many
//! SE blocks spell global pooling — is imported as the global pool it is
//! (`global_avgpool` for the mean, `global_maxpool` for the max; the sum and min as a
//! kept-dims `reduce`), followed by a `reshape` to `[N, C]` when `keepdims` is 0, so the
//! passes see one form of global pooling whatever the exporter wrote.

use fqc_ir::op::ReduceKind;
use fqc_ir::Op;

use super::{Cx, LResult, Val};

/// `Reduce*`.
pub(crate) fn reduce(cx: &mut Cx) -> LResult<()> {
    let x = cx.f32_tensor(0)?;
    let rank = cx.ty(x).shape.rank();
    let kind = match cx.op_type() {
        "ReduceMean" => ReduceKind::Mean,
        "ReduceMax" => ReduceKind::Max,
        "ReduceMin" => ReduceKind::Min,
        _ => ReduceKind::Sum,
    };
    let axes_input = cx.opset() >= 18 || (kind == ReduceKind::Sum && cx.opset() >= 13);
    let axes: Vec<i64> = if axes_input {
        match cx.input_name(1) {
            Some(_) => cx.concrete_ints(1, "the axes")?,
            None => Vec::new(),
        }
    } else {
        cx.attrs.ints("axes")?.unwrap_or_default()
    };
    let keepdims = cx.attrs.int("keepdims", 1)? != 0;
    let noop = cx.attrs.int("noop_with_empty_axes", 0)? != 0;
    if axes.is_empty() && noop {
        cx.set_out(0, Val::Ir(x));
        return Ok(());
    }
    let mut axes: Vec<u64> = if axes.is_empty() {
        (0..rank as u64).collect()
    } else {
        axes.iter()
            .map(|&a| cx.axis(a, rank, false).map(|a| a as u64))
            .collect::<LResult<_>>()?
    };
    axes.sort_unstable();
    axes.dedup();
    if rank == 4 && axes == [2, 3] {
        return spatial(cx, x, kind, keepdims);
    }
    cx.emit_out(
        Op::Reduce {
            kind,
            axes,
            keepdims,
        },
        vec![x],
    )
}

/// A reduction over axes 2 and 3 of `x` `[N,C,H,W]` (see the module docs).
fn spatial(cx: &mut Cx, x: fqc_ir::Value, kind: ReduceKind, keepdims: bool) -> LResult<()> {
    let op = match kind {
        ReduceKind::Mean => Op::GlobalAveragePool,
        ReduceKind::Max => Op::GlobalMaxPool,
        _ => Op::Reduce {
            kind,
            axes: vec![2, 3],
            keepdims: true,
        },
    };
    if keepdims {
        return cx.emit_out(op, vec![x]);
    }
    let pooled = cx.emit(op, vec![x], "pool")?;
    let dims = cx.ty(pooled).shape.0[..2].to_vec();
    let flat = cx.emit(Op::Reshape { shape: dims }, vec![pooled], "")?;
    cx.set_out(0, Val::Ir(flat));
    Ok(())
}
