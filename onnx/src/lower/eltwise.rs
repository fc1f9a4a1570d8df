//! Element-wise ops: Relu, Clip, Add/Sub/Mul/Div, Sum, and the inference identities
//! Dropout and Identity.
//!
//! Opset-6 binary ops have a `broadcast`/`axis` form ("B is a contiguous subset of A's
//! shape starting at `axis`"); it is rewritten to NumPy broadcasting by reshaping B with
//! trailing unit dims. Binary ops on int64 shape values are evaluated at import
//! (see `shape`). Clip's bounds are attributes before opset 11 and constant inputs after.

use fqc_ir::{Dim, Op, Value, F32};

use super::{shape, Cx, LResult, Val};

/// `Relu`.
pub(crate) fn relu(cx: &mut Cx) -> LResult<()> {
    let x = cx.f32_tensor(0)?;
    cx.emit_out(Op::Relu, vec![x])
}

/// A scalar bound of Clip given as input `i` (must be a constant).
fn bound(cx: &mut Cx, i: usize, what: &str) -> LResult<Option<f32>> {
    if cx.input_name(i).is_none() {
        return Ok(None);
    }
    let t = cx
        .const_of(i)?
        .ok_or_else(|| format!("the {what} bound must be a constant"))?;
    match t.as_f32() {
        Some([v]) => Ok(Some(*v)),
        _ => Err(format!("the {what} bound must be a single float32")),
    }
}

/// `Clip`.
pub(crate) fn clip(cx: &mut Cx) -> LResult<()> {
    let x = cx.f32_tensor(0)?;
    let (min, max) = if cx.opset() < 11 {
        // ONNX's defaults before opset 11: numeric_limits<float>::lowest() / max().
        (
            cx.attrs.float("min", f32::MIN)?,
            cx.attrs.float("max", f32::MAX)?,
        )
    } else {
        (
            bound(cx, 1, "min")?.unwrap_or(f32::NEG_INFINITY),
            bound(cx, 2, "max")?.unwrap_or(f32::INFINITY),
        )
    };
    cx.emit_out(
        Op::Clip {
            min: F32(min),
            max: F32(max),
        },
        vec![x],
    )
}

/// Applies the opset-6 `broadcast`/`axis` attributes to operand `b` of `a`.
fn legacy_broadcast(cx: &mut Cx, a: Value, b: Value) -> LResult<Value> {
    let broadcast = cx.attrs.int("broadcast", 0)?;
    let axis = cx.attrs.int_opt("axis")?;
    let (sa, sb) = (cx.ty(a).shape.clone(), cx.ty(b).shape.clone());
    if broadcast == 0 {
        if axis.is_some() {
            return Err("attribute `axis` requires broadcast=1".into());
        }
        if sa != sb {
            return Err(format!(
                "operand shapes {sa} and {sb} differ and broadcast=0"
            ));
        }
        return Ok(b);
    }
    let (ra, rb) = (sa.rank(), sb.rank());
    if rb > ra {
        return Err(format!("B {sb} has a higher rank than A {sa}"));
    }
    let axis = match axis {
        None => return Ok(b), // suffix alignment is NumPy's
        Some(ax) => cx.axis(ax, ra, false)?,
    };
    if axis + rb > ra {
        return Err(format!("B {sb} does not fit A {sa} at axis {axis}"));
    }
    if axis + rb == ra {
        return Ok(b);
    }
    let mut d = sb.0.clone();
    d.extend(std::iter::repeat_n(Dim::Fixed(1), ra - axis - rb));
    cx.reshape(b, d, "broadcast_b")
}

/// `Add` / `Sub` / `Mul` / `Div`.
pub(crate) fn binary(cx: &mut Cx) -> LResult<()> {
    if cx.is_int(0)? || cx.is_int(1)? {
        return shape::int_binary(cx);
    }
    let a = cx.f32_tensor(0)?;
    let mut b = cx.f32_tensor(1)?;
    if cx.opset() < 7 {
        b = legacy_broadcast(cx, a, b)?;
    }
    let op = match cx.op_type() {
        "Add" => fqc_ir::BinaryOp::Add,
        "Sub" => fqc_ir::BinaryOp::Sub,
        "Mul" => fqc_ir::BinaryOp::Mul,
        _ => fqc_ir::BinaryOp::Div,
    };
    cx.emit_out(Op::Binary(op), vec![a, b])
}

/// `Sum`.
pub(crate) fn sum(cx: &mut Cx) -> LResult<()> {
    let mut inputs = Vec::new();
    for i in 0..cx.num_inputs() {
        inputs.push(cx.f32_tensor(i)?);
    }
    if inputs.len() == 1 {
        cx.set_out(0, Val::Ir(inputs[0]));
        return Ok(());
    }
    cx.emit_out(Op::Sum, inputs)
}

/// `Dropout`: the identity at inference; the mask output and training mode are refused.
pub(crate) fn dropout(cx: &mut Cx) -> LResult<()> {
    let x = cx.val(0)?;
    cx.attrs.ignore("ratio");
    cx.attrs.ignore("seed");
    // Opset < 7: inference ignores `is_test` (as ONNX Runtime does).
    cx.attrs.ignore("is_test");
    if cx.input_name(2).is_some() {
        let t = cx
            .const_of(2)?
            .ok_or("input `training_mode` must be a constant")?;
        if !is_zero(t) {
            return Err("training_mode=true is not supported (inference only)".into());
        }
    }
    cx.forbid_outputs_from(1, "mask")?;
    cx.set_out(0, x);
    Ok(())
}

fn is_zero(t: &fqc_ir::Tensor) -> bool {
    use fqc_ir::TensorData as D;
    match &t.data {
        D::F32(v) => v.iter().all(|&x| x == 0.0),
        D::I32(v) => v.iter().all(|&x| x == 0),
        D::I64(v) => v.iter().all(|&x| x == 0),
        D::I8(v) => v.iter().all(|&x| x == 0),
        D::U8(v) => v.iter().all(|&x| x == 0),
    }
}

/// `Identity`.
pub(crate) fn identity(cx: &mut Cx) -> LResult<()> {
    let x = cx.val(0)?;
    cx.set_out(0, x);
    Ok(())
}
