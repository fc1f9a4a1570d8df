//! Layout ops: Flatten, Reshape, Concat, Transpose, Squeeze, Unsqueeze.
//!
//! Reshape targets must be known at import (a constant or a folded shape value, see
//! `shape`); `0` copies the input dim (unless `allowzero=1`), `-1` is inferred, and a
//! target element equal to the symbolic batch `N` becomes `Dim::Batch`. Squeeze and
//! Unsqueeze on tensors become Reshapes; on shape values they are evaluated.

use fqc_ir::{Dim, Op, Shape};

use super::{shape, Cx, LResult, Lin, Val};

/// `Flatten`.
pub(crate) fn flatten(cx: &mut Cx) -> LResult<()> {
    let x = cx.f32_tensor(0)?;
    let rank = cx.ty(x).shape.rank();
    let axis = cx.attrs.int("axis", 1)?;
    let axis = cx.axis(axis, rank, true)?;
    cx.emit_out(Op::Flatten { axis: axis as u64 }, vec![x])
}

/// Resolves a Reshape target against the input shape.
pub(crate) fn resolve_target(input: &Shape, target: &[Lin], allowzero: bool) -> LResult<Vec<Dim>> {
    let mut out: Vec<Option<Dim>> = Vec::with_capacity(target.len());
    let mut infer_at = None;
    for (i, l) in target.iter().enumerate() {
        let d = match (l.a, l.b) {
            (0, 0) if !allowzero => Some(*input.0.get(i).ok_or_else(|| {
                format!("target dim {i} is 0 (copy) but the input {input} has no dim {i}")
            })?),
            (0, -1) => {
                if infer_at.replace(i).is_some() {
                    return Err("more than one -1 in the target shape".into());
                }
                None
            }
            (0, b) if b >= 0 => Some(Dim::Fixed(b as u64)),
            (0, b) => return Err(format!("invalid target dim {b}")),
            (1, 0) => Some(Dim::Batch),
            _ => {
                return Err(format!(
                    "target dim {l} is not representable (only N or a constant)"
                ))
            }
        };
        out.push(d);
    }
    let prod = |dims: &mut dyn Iterator<Item = &Dim>| -> LResult<u64> {
        dims.filter_map(|d| d.fixed())
            .try_fold(1u64, |a, d| a.checked_mul(d))
            .ok_or_else(|| "element count overflows".to_string())
    };
    let in_fixed = prod(&mut input.0.iter())?;
    let tgt_fixed = prod(&mut out.iter().flatten())?;
    let in_batch = input.has_batch();
    let tgt_batch = out.iter().flatten().any(|d| *d == Dim::Batch);
    if let Some(i) = infer_at {
        let d = if in_batch && !tgt_batch {
            if tgt_fixed != in_fixed {
                return Err(format!(
                    "cannot reshape {input} to {}: the batch would merge with other dims",
                    show(target)
                ));
            }
            Dim::Batch
        } else {
            if tgt_fixed == 0 || in_fixed % tgt_fixed != 0 {
                return Err(format!("cannot reshape {input} to {}", show(target)));
            }
            Dim::Fixed(in_fixed / tgt_fixed)
        };
        out[i] = Some(d);
    }
    Ok(out.into_iter().map(|d| d.expect("resolved")).collect())
}

fn show(t: &[Lin]) -> String {
    let parts: Vec<String> = t.iter().map(|l| l.to_string()).collect();
    format!("[{}]", parts.join(","))
}

/// `Reshape`.
pub(crate) fn reshape(cx: &mut Cx) -> LResult<()> {
    let allowzero = cx.attrs.int("allowzero", 0)? != 0;
    let target = cx.sym(1, "the target shape")?;
    if target.scalar {
        return Err("the target shape must be a 1-D vector".into());
    }
    if let Val::Sym(s) = cx.val(0)? {
        let t = target.concrete().unwrap_or_default();
        let scalar = t.is_empty();
        return shape::sym_reshape(cx, s, scalar);
    }
    let x = cx.tensor(0)?;
    let dims = resolve_target(&cx.ty(x).shape, &target.elems, allowzero)?;
    if cx.ty(x).dtype != fqc_ir::DType::F32 {
        if let Some(t) = cx.imp.g.const_tensor(x) {
            // A non-float constant: reshape its payload directly.
            let fixed = Shape(dims).as_fixed().ok_or("constant reshaped with N")?;
            let shape: Vec<usize> = fixed.iter().map(|&d| d as usize).collect();
            if shape.iter().product::<usize>() != t.numel() {
                return Err(format!("cannot reshape {:?} to {shape:?}", t.shape));
            }
            let t = fqc_ir::Tensor {
                shape,
                data: t.data.clone(),
            };
            let v = cx.add_const(cx.out_name(0), t)?;
            cx.set_out(0, Val::Ir(v));
            return Ok(());
        }
        return Err(format!(
            "input has element type {}; only float32 is supported",
            cx.ty(x).dtype
        ));
    }
    cx.emit_out(Op::Reshape { shape: dims }, vec![x])
}

/// `Concat`.
pub(crate) fn concat(cx: &mut Cx) -> LResult<()> {
    let mut any_int = false;
    for i in 0..cx.num_inputs() {
        any_int |= cx.is_int(i)?;
    }
    if any_int {
        return shape::int_concat(cx);
    }
    let mut inputs = Vec::new();
    for i in 0..cx.num_inputs() {
        if cx.input_name(i).is_some() {
            inputs.push(cx.f32_tensor(i)?);
        }
    }
    let rank = cx.ty(*inputs.first().ok_or("no inputs")?).shape.rank();
    let axis = cx
        .attrs
        .int_opt("axis")?
        .ok_or("attribute `axis` is required")?;
    let axis = cx.axis(axis, rank, false)?;
    cx.emit_out(Op::Concat { axis: axis as u64 }, inputs)
}

/// `Transpose` (default: reverse the axes).
pub(crate) fn transpose(cx: &mut Cx) -> LResult<()> {
    let x = cx.f32_tensor(0)?;
    let rank = cx.ty(x).shape.rank();
    let perm = match cx.attrs.ints("perm")? {
        Some(p) => p
            .iter()
            .map(|&a| cx.axis(a, rank, false).map(|a| a as u64))
            .collect::<LResult<Vec<_>>>()?,
        None => (0..rank as u64).rev().collect(),
    };
    cx.emit_out(Op::Transpose { perm }, vec![x])
}

/// `Squeeze` / `Unsqueeze` (axes as an attribute before opset 13, an input after).
pub(crate) fn squeeze(cx: &mut Cx) -> LResult<()> {
    let unsqueeze = cx.op_type() == "Unsqueeze";
    let axes = if cx.opset() < 13 {
        cx.attrs.ints("axes")?
    } else if cx.input_name(1).is_some() {
        Some(cx.concrete_ints(1, "axes")?)
    } else {
        None
    };
    if axes.as_ref().is_some_and(|a| a.len() > shape::MAX_SYM_LEN) {
        return Err("too many axes".into());
    }
    if unsqueeze && axes.is_none() {
        return Err("axes are required".into());
    }
    if let Val::Sym(s) = cx.val(0)? {
        {
            // Known vectors are rank 0 or 1.
            let in_rank = usize::from(!s.scalar);
            let out_rank = match (&axes, unsqueeze) {
                (Some(a), true) => in_rank + a.len(),
                (Some(a), false) => in_rank.saturating_sub(a.len()),
                (None, _) => 0,
            };
            if out_rank > 1 || (!unsqueeze && s.elems.len() != 1) {
                return Err(format!(
                    "{} of shape value {s} gives rank > 1, which is not supported",
                    cx.op_type()
                ));
            }
            return shape::sym_reshape(cx, s, out_rank == 0);
        }
    }
    let x = cx.tensor(0)?;
    let dims = cx.ty(x).shape.0.clone();
    let new: Vec<Dim> = if unsqueeze {
        let axes = axes.unwrap_or_default();
        let out_rank = dims.len() + axes.len();
        let mut norm = axes
            .iter()
            .map(|&a| cx.axis(a, out_rank, false))
            .collect::<LResult<Vec<_>>>()?;
        norm.sort_unstable();
        if norm.windows(2).any(|w| w[0] == w[1]) {
            return Err(format!("repeated axes {axes:?}"));
        }
        let mut it = dims.iter();
        (0..out_rank)
            .map(|i| {
                if norm.contains(&i) {
                    Dim::Fixed(1)
                } else {
                    *it.next().expect("rank adds up")
                }
            })
            .collect()
    } else {
        let drop: Vec<usize> = match axes {
            Some(a) => a
                .iter()
                .map(|&a| cx.axis(a, dims.len(), false))
                .collect::<LResult<Vec<_>>>()?,
            None => (0..dims.len())
                .filter(|&i| dims[i] == Dim::Fixed(1))
                .collect(),
        };
        for &i in &drop {
            if dims[i] != Dim::Fixed(1) {
                return Err(format!("cannot squeeze axis {i} of extent {}", dims[i]));
            }
        }
        dims.iter()
            .enumerate()
            .filter(|(i, _)| !drop.contains(i))
            .map(|(_, d)| *d)
            .collect()
    };
    if cx.ty(x).dtype != fqc_ir::DType::F32 {
        return Err(format!(
            "input has element type {}; only float32 is supported",
            cx.ty(x).dtype
        ));
    }
    cx.emit_out(Op::Reshape { shape: new }, vec![x])
}
