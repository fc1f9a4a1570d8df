//! ReduceMean, ReduceMax, ReduceMin, ReduceSum over known axes (an attribute before
//! opset 18 — 13 for ReduceSum — an input after), with `keepdims` and
//! `noop_with_empty_axes`. Axes are normalised, sorted and deduplicated; reducing over
//! the batch axis is refused (one image's result would depend on the others).

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
    cx.emit_out(
        Op::Reduce {
            kind,
            axes,
            keepdims,
        },
        vec![x],
    )
}
