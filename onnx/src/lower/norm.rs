//! Normalisations: BatchNormalization (inference), LRN and Softmax.
//!
//! BatchNormalization is inference-only: the opset < 9 attributes `is_test`, `spatial`
//! (must be 1) and `momentum` are accepted, while `training_mode=1` or using the running
//! statistics outputs is refused. Softmax before opset 13 coerces its input to 2-D at
//! `axis`; when `axis` is the last dim that equals opset 13's Softmax, otherwise it is
//! lowered as Flatten(axis) → Softmax(axis=1) → Reshape back.

use fqc_ir::{Op, F32};

use super::{Cx, LResult, Val};

/// `BatchNormalization`.
pub(crate) fn batch_norm(cx: &mut Cx) -> LResult<()> {
    let mut inputs = Vec::new();
    for i in 0..5 {
        inputs.push(cx.f32_tensor(i)?);
    }
    if cx.num_inputs() > 5 {
        return Err(format!("expected 5 inputs, got {}", cx.num_inputs()));
    }
    let epsilon = cx.attrs.float("epsilon", 1e-5)?;
    cx.attrs.ignore("momentum");
    cx.attrs.ignore("is_test");
    if cx.attrs.int("spatial", 1)? != 1 {
        return Err("spatial=0 (per-activation statistics) is not supported".into());
    }
    if cx.attrs.int("training_mode", 0)? != 0 {
        return Err("training_mode=1 is not supported (inference only)".into());
    }
    cx.forbid_outputs_from(1, "training statistics")?;
    cx.emit_out(
        Op::BatchNorm {
            epsilon: F32(epsilon),
        },
        inputs,
    )
}

/// `LRN`.
pub(crate) fn lrn(cx: &mut Cx) -> LResult<()> {
    let x = cx.f32_tensor(0)?;
    let size = cx
        .attrs
        .int_opt("size")?
        .ok_or("attribute `size` is required")?;
    if !(1..=1 << 20).contains(&size) {
        return Err(format!("invalid size {size}"));
    }
    let op = Op::Lrn {
        size: size as u64,
        alpha: F32(cx.attrs.float("alpha", 1e-4)?),
        beta: F32(cx.attrs.float("beta", 0.75)?),
        bias: F32(cx.attrs.float("bias", 1.0)?),
    };
    cx.emit_out(op, vec![x])
}

/// `Softmax`.
pub(crate) fn softmax(cx: &mut Cx) -> LResult<()> {
    let x = cx.f32_tensor(0)?;
    let shape = cx.ty(x).shape.clone();
    let rank = shape.rank();
    let legacy = cx.opset() < 13;
    let axis = cx.attrs.int("axis", if legacy { 1 } else { -1 })?;
    let axis = cx.axis(axis, rank, false)?;
    if !legacy || axis + 1 == rank {
        return cx.emit_out(Op::Softmax { axis: axis as u64 }, vec![x]);
    }
    let flat = cx.emit(Op::Flatten { axis: axis as u64 }, vec![x], "flatten")?;
    let y = cx.emit(Op::Softmax { axis: 1 }, vec![flat], "softmax")?;
    let out = cx.emit(Op::Reshape { shape: shape.0 }, vec![y], "")?;
    cx.set_out(0, Val::Ir(out));
    Ok(())
}
