//! The integer semantics of `table` and `qmul`, and the element-selecting ops (pad,
//! slice, gather, expand, tile, nearest resize, max/min reductions) on integer tensors.
//!
//! * `table`: `y = T[q − qmin]` of the element's channel (axis 1) for a `[C, L]` table,
//!   or of the one row for `[L]`; `q` is within the operand's range by its type, so the
//!   index is always in `0..L` (a level outside it is a malformed tensor: an error).
//! * `qmul`: the exact product `a·b` (i64) with broadcasting, an error when it does not
//!   fit i32 (never wrapping), as `scaled_add` does.
//! * The selecting ops reuse the generic kernels of `select.rs` and `reduce.rs` on the
//!   operand's own storage; a constant pad value must be an integer level of the type.

use super::{eval_err, reduce, resize_maps, select};
use crate::error::Result;
use crate::graph::{Graph, NodeData};
use crate::op::{Op, PadMode, ResizeMode};
use crate::tensor::{Tensor, TensorData};

/// Applies `$f` (a generic kernel) to the operand's storage, keeping its variant.
macro_rules! on_storage {
    ($data:expr, |$v:ident| $f:expr, $err:expr) => {
        match $data {
            TensorData::I8($v) => TensorData::I8($f),
            TensorData::U8($v) => TensorData::U8($f),
            TensorData::I32($v) => TensorData::I32($f),
            _ => return Err($err),
        }
    };
}

/// Whether [`eval`] evaluates `op` on integer operands.
pub(super) fn handles(op: &Op) -> bool {
    matches!(
        op,
        Op::Table { .. }
            | Op::QMul
            | Op::Pad { .. }
            | Op::Slice { .. }
            | Op::Gather { .. }
            | Op::Expand { .. }
            | Op::Tile { .. }
            | Op::Resize {
                mode: ResizeMode::Nearest,
                ..
            }
            | Op::Reduce { .. }
    )
}

/// Evaluates one of this module's ops ([`handles`]) on integer operands.
pub(super) fn eval(
    g: &Graph,
    node: &NodeData,
    x: &Tensor,
    rest: &[&Tensor],
    shape: &[usize],
) -> Result<TensorData> {
    let err = |msg: String| eval_err(g, node, msg);
    let bad = || err("operand storage is not an integer".into());
    Ok(match &node.op {
        Op::Table { .. } => {
            let qmin = g.ty(node.inputs[0]).dtype.quant_range().map_or(0, |r| r.0);
            table(x, rest[0], qmin).map_err(err)?
        }
        Op::QMul => TensorData::I32(qmul(x, rest[0], shape).map_err(err)?),
        Op::Pad { pads, mode, value } => {
            let pads: Vec<usize> = pads.iter().map(|&p| p as usize).collect();
            let level = value.get();
            if *mode == PadMode::Constant && level.fract() != 0.0 {
                return Err(err(format!("pad value {level} is not an integer level")));
            }
            let l = level as i64;
            on_storage!(
                &x.data,
                |v| select::pad(v, &x.shape, &pads, *mode, l as _, shape),
                bad()
            )
        }
        Op::Slice {
            axes,
            starts,
            steps,
            ..
        } => on_storage!(
            &x.data,
            |v| select::slice(v, &x.shape, axes, starts, steps, shape),
            bad()
        ),
        Op::Gather { axis } => {
            let idx = rest[0]
                .as_i64()
                .ok_or_else(|| err("gather indices are not i64".into()))?;
            let ishape = &rest[0].shape;
            on_storage!(
                &x.data,
                |v| select::gather(v, &x.shape, *axis as usize, idx, ishape, shape),
                bad()
            )
        }
        Op::Expand { .. } => on_storage!(&x.data, |v| select::expand(v, &x.shape, shape), bad()),
        Op::Tile { .. } => on_storage!(&x.data, |v| select::tile(v, &x.shape, shape), bad()),
        Op::Resize { .. } => {
            let (rows, cols) = resize_maps(&node.op, &x.shape, shape);
            on_storage!(
                &x.data,
                |v| select::resize_nearest(v, &x.shape, &rows, &cols),
                bad()
            )
        }
        Op::Reduce { kind, axes, .. } => {
            let none = || err("only max and min of a non-empty set reduce integer levels".into());
            on_storage!(
                &x.data,
                |v| reduce::reduce_select(v, &x.shape, axes, *kind).ok_or_else(none)?,
                bad()
            )
        }
        _ => return Err(err("not an integer op".into())),
    })
}

/// `table`: every level (of an operand whose range starts at `qmin`) looked up in its
/// channel's row.
fn table(x: &Tensor, t: &Tensor, qmin: i64) -> std::result::Result<TensorData, String> {
    let levels = t.shape.last().copied().unwrap_or(0);
    let rows = t.numel() / levels.max(1);
    let (c, inner) = match x.shape.as_slice() {
        [_, c, rest @ ..] => (*c, rest.iter().product::<usize>()),
        _ => (1, 1),
    };
    // Index of each element's row: its channel for a per-channel table.
    let row = |i: usize| {
        if rows == 1 {
            0
        } else {
            (i / inner.max(1)) % c.max(1)
        }
    };
    let q: Vec<i64> = match &x.data {
        TensorData::I8(v) => v.iter().map(|&e| i64::from(e)).collect(),
        TensorData::U8(v) => v.iter().map(|&e| i64::from(e)).collect(),
        d => {
            return Err(format!(
                "table input storage {} is not low-bit",
                super::storage_name(d)
            ))
        }
    };
    let index = |i: usize, v: i64| -> std::result::Result<usize, String> {
        let k = v - qmin;
        if !(0..levels as i64).contains(&k) {
            return Err(format!("level {v} is outside the table's {levels} levels"));
        }
        Ok(row(i) * levels + k as usize)
    };
    macro_rules! look_up {
        ($variant:ident, $tv:expr) => {
            TensorData::$variant(
                q.iter()
                    .enumerate()
                    .map(|(i, &v)| index(i, v).map(|k| $tv[k]))
                    .collect::<std::result::Result<_, _>>()?,
            )
        };
    }
    Ok(match &t.data {
        TensorData::I8(tv) => look_up!(I8, tv),
        TensorData::U8(tv) => look_up!(U8, tv),
        d => {
            return Err(format!(
                "table storage {} is not low-bit",
                super::storage_name(d)
            ))
        }
    })
}

/// `qmul`: the exact broadcast product, checked to fit i32.
fn qmul(a: &Tensor, b: &Tensor, out: &[usize]) -> std::result::Result<Vec<i32>, String> {
    use super::elementwise::{broadcast_strides, for_each_run};
    let wide = |t: &Tensor| -> std::result::Result<Vec<i64>, String> {
        Ok(match &t.data {
            TensorData::I8(v) => v.iter().map(|&e| i64::from(e)).collect(),
            TensorData::U8(v) => v.iter().map(|&e| i64::from(e)).collect(),
            TensorData::I32(v) => v.iter().map(|&e| i64::from(e)).collect(),
            d => return Err(format!("qmul operand storage {}", super::storage_name(d))),
        })
    };
    let (av, bv) = (wide(a)?, wide(b)?);
    let sa = broadcast_strides(&a.shape, out);
    let sb = broadcast_strides(&b.shape, out);
    let mut y = vec![0i32; out.iter().product()];
    let mut bad = None;
    for_each_run(out, &sa, &sb, |o, pa, pb, len, ia, ib| {
        for t in 0..len {
            match i32::try_from(av[pa + t * ia] * bv[pb + t * ib]) {
                Ok(v) => y[o + t] = v,
                Err(_) => {
                    bad.get_or_insert(o + t);
                }
            }
        }
    });
    match bad {
        Some(i) => Err(format!("product at flat index {i} overflows i32")),
        None => Ok(y),
    }
}
