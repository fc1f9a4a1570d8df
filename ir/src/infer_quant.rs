//! Type rules of the quantized and integer ops, and of the layout ops on integers.
//!
//! Quantized ops carry their result's element type and per-tensor scale as attributes
//! (`quantize`, `requantize`), or produce unscaled `i32` accumulators (`qconv`, `qgemm`,
//! `scaled_add`, the sum pools), so every result type still follows from the op and its
//! operand types alone, as the verifier requires. Shapes reuse the float rules (a qconv
//! has a conv's shape), so the geometry is defined once. Ops that only move elements
//! (max pooling, reshape, flatten, transpose, concat) keep an integer operand's dtype and
//! scale: they commute with any per-tensor monotone quantizer.

use crate::infer::{broadcast, infer_float};
use crate::op::{Op, OpClass, PadMode, ReduceKind, ResizeMode};
use crate::types::{DType, Scale, Shape, TensorType, F32};

type Res<T> = std::result::Result<T, String>;

/// An f32 stand-in of an operand for the float rules (i64 index operands stay i64).
fn as_f32(t: &TensorType) -> TensorType {
    if t.dtype == DType::I64 {
        return TensorType::new(DType::I64, t.shape.clone());
    }
    TensorType::f32(t.shape.clone())
}

/// The float rule's result shape for `op` over f32 stand-ins of `inputs`.
fn shape_of(op: &Op, inputs: &[&TensorType]) -> Res<Shape> {
    let f: Vec<TensorType> = inputs.iter().map(|t| as_f32(t)).collect();
    let refs: Vec<&TensorType> = f.iter().collect();
    Ok(infer_float(op, &refs)?.shape)
}

fn want_low_bit(t: &TensorType, what: &str) -> Res<()> {
    if !t.dtype.is_low_bit() {
        return Err(format!(
            "{what} must be a low-bit integer (u2..u8, i2..i8, t2), got {}",
            t.dtype
        ));
    }
    Ok(())
}

fn want(t: &TensorType, dtype: DType, what: &str) -> Res<()> {
    if t.dtype != dtype {
        return Err(format!("{what} must be {dtype}, got {}", t.dtype));
    }
    Ok(())
}

fn want_shape(t: &TensorType, dims: &[u64], what: &str) -> Res<()> {
    if t.shape != Shape::fixed(dims) {
        return Err(format!(
            "{what} must have shape {}, got {}",
            Shape::fixed(dims),
            t.shape
        ));
    }
    Ok(())
}

fn check_scale(s: F32) -> Res<()> {
    if !(s.get().is_finite() && s.get() > 0.0) {
        return Err(format!(
            "scale must be positive and finite, got {:?}",
            s.get()
        ));
    }
    Ok(())
}

/// The channel extent (axis 1) of an accumulator.
fn channels(t: &TensorType) -> Res<u64> {
    t.shape
        .0
        .get(1)
        .and_then(|d| d.fixed())
        .ok_or_else(|| format!("operand needs a fixed channel axis 1, got {}", t.shape))
}

/// `Some(result)` when `op` is a quantized/integer op or a layout op applied to
/// integers; `None` to fall through to the float rules.
pub(crate) fn infer(op: &Op, inputs: &[&TensorType]) -> Option<Res<TensorType>> {
    let integer_operand = inputs.first().is_some_and(|t| !t.dtype.is_float());
    // Ops that only select elements run on integer levels too (see the module docs).
    let passes_ints = op.class() == OpClass::Layout
        || matches!(
            op,
            Op::Resize {
                mode: ResizeMode::Nearest,
                ..
            } | Op::Reduce {
                kind: ReduceKind::Max | ReduceKind::Min,
                ..
            }
        );
    if op.is_float_op() && !(passes_ints && integer_operand) {
        return None;
    }
    let (lo, hi) = op.arity();
    if inputs.len() < lo || hi.is_some_and(|hi| inputs.len() > hi) {
        return Some(Err(format!(
            "expects {lo}..{} operands, got {}",
            hi.map_or("".into(), |h| h.to_string()),
            inputs.len()
        )));
    }
    Some(infer_quant(op, inputs))
}

fn infer_quant(op: &Op, inputs: &[&TensorType]) -> Res<TensorType> {
    let x = inputs[0];
    let i32_out = |shape: Shape| Ok(TensorType::new(DType::I32, shape));
    match op {
        Op::Quantize {
            dtype,
            scale,
            offset,
        } => {
            want(x, DType::F32, "quantize input")?;
            if !dtype.is_low_bit() {
                return Err(format!("quantize produces a low-bit type, not {dtype}"));
            }
            check_scale(*scale)?;
            if !offset.get().is_finite() {
                return Err("offset must be finite".into());
            }
            Ok(TensorType {
                dtype: *dtype,
                shape: x.shape.clone(),
                scale: Some(Scale::Tensor(*scale)),
            })
        }
        Op::Dequantize => {
            if inputs.len() == 1 {
                if !(x.dtype.is_low_bit() || x.dtype == DType::I32) || x.scale.is_none() {
                    return Err(format!(
                        "dequantize needs a scaled integer operand, got {}",
                        x.dtype
                    ));
                }
            } else {
                want(x, DType::I32, "accumulator")?;
                let c = channels(x)?;
                for (i, t) in inputs[1..].iter().enumerate() {
                    want(t, DType::F32, if i == 0 { "scale" } else { "bias" })?;
                    want_shape(t, &[c], if i == 0 { "scale" } else { "bias" })?;
                }
            }
            Ok(TensorType::f32(x.shape.clone()))
        }
        Op::QConv { window, group } => {
            want_low_bit(x, "qconv input")?;
            want_low_bit(inputs[1], "qconv weight")?;
            if let Some(b) = inputs.get(2) {
                want(b, DType::I32, "qconv bias")?;
            }
            i32_out(shape_of(
                &Op::Conv {
                    window: window.clone(),
                    group: *group,
                },
                inputs,
            )?)
        }
        Op::QGemm { trans_b } => {
            want_low_bit(x, "qgemm input")?;
            want_low_bit(inputs[1], "qgemm weight")?;
            if let Some(b) = inputs.get(2) {
                want(b, DType::I32, "qgemm bias")?;
            }
            let gemm = Op::Gemm {
                alpha: F32(1.0),
                beta: F32(1.0),
                trans_a: false,
                trans_b: *trans_b,
            };
            i32_out(shape_of(&gemm, inputs)?)
        }
        Op::Requantize { dtype, scale } => {
            want(x, DType::I32, "requantize input")?;
            let (qmin, qmax) = dtype
                .quant_range()
                .ok_or_else(|| format!("requantize produces a low-bit type, not {dtype}"))?;
            check_scale(*scale)?;
            let c = channels(x)?;
            want(inputs[1], DType::I32, "thresholds")?;
            want_shape(inputs[1], &[c, (qmax - qmin) as u64], "thresholds")?;
            want(inputs[2], DType::I8, "descending flags")?;
            want_shape(inputs[2], &[c], "descending flags")?;
            Ok(TensorType {
                dtype: *dtype,
                shape: x.shape.clone(),
                scale: Some(Scale::Tensor(*scale)),
            })
        }
        Op::ScaledAdd => {
            want_low_bit(x, "scaled_add operand 0")?;
            want_low_bit(inputs[1], "scaled_add operand 1")?;
            want(inputs[2], DType::I32, "scaled_add factor 0")?;
            want(inputs[3], DType::I32, "scaled_add factor 1")?;
            want_shape(inputs[2], &[], "scaled_add factor 0")?;
            want_shape(inputs[3], &[], "scaled_add factor 1")?;
            i32_out(broadcast(&x.shape, &inputs[1].shape)?)
        }
        Op::SumPool { window } => {
            want_low_bit(x, "sumpool input")?;
            let avg = Op::AveragePool {
                window: window.clone(),
                count_include_pad: true,
            };
            i32_out(shape_of(&avg, inputs)?)
        }
        Op::GlobalSumPool => {
            want_low_bit(x, "global_sumpool input")?;
            i32_out(shape_of(&Op::GlobalAveragePool, inputs)?)
        }
        Op::Table { dtype, scale } => {
            let (qmin, qmax) = x
                .dtype
                .quant_range()
                .ok_or_else(|| format!("table input must be low-bit, got {}", x.dtype))?;
            if !dtype.is_low_bit() || *dtype == DType::Ternary {
                return Err(format!(
                    "table produces a low-bit integer type, not {dtype}"
                ));
            }
            check_scale(*scale)?;
            want(inputs[1], *dtype, "table")?;
            let levels = (qmax - qmin + 1) as u64;
            let per_channel = x.shape.0.get(1).and_then(|d| d.fixed());
            let ok = inputs[1].shape == Shape::fixed(&[levels])
                || per_channel.is_some_and(|c| inputs[1].shape == Shape::fixed(&[c, levels]));
            if !ok {
                return Err(format!(
                    "table must have shape [{levels}] or [channels, {levels}], got {}",
                    inputs[1].shape
                ));
            }
            Ok(TensorType {
                dtype: *dtype,
                shape: x.shape.clone(),
                scale: Some(Scale::Tensor(*scale)),
            })
        }
        Op::QMul => {
            for (i, t) in inputs.iter().enumerate() {
                if !(t.dtype.is_low_bit() || t.dtype == DType::I32) {
                    return Err(format!(
                        "qmul operand {i} must be an integer, got {}",
                        t.dtype
                    ));
                }
            }
            i32_out(broadcast(&x.shape, &inputs[1].shape)?)
        }
        Op::Gather { .. } => {
            want_low_bit(x, "gather data")?;
            Ok(TensorType {
                dtype: x.dtype,
                shape: shape_of(op, inputs)?,
                scale: x.scale.clone(),
            })
        }
        Op::Pad { mode, value, .. } => {
            want_low_bit(x, "pad operand")?;
            let (qmin, qmax) = x.dtype.quant_range().unwrap_or((0, 0));
            let v = value.get();
            if *mode == PadMode::Constant
                && !(v.fract() == 0.0 && (qmin as f32..=qmax as f32).contains(&v))
            {
                return Err(format!(
                    "the pad value of a {} operand must be a level in {qmin}..={qmax}, got {v}",
                    x.dtype
                ));
            }
            Ok(TensorType {
                dtype: x.dtype,
                shape: shape_of(op, inputs)?,
                scale: x.scale.clone(),
            })
        }
        // Layout ops and max pooling on integers keep dtype and scale.
        _ => {
            want_low_bit(x, "operand 0")?;
            for (i, t) in inputs.iter().enumerate().skip(1) {
                if t.dtype != x.dtype || t.scale != x.scale {
                    return Err(format!(
                        "operand {i} must have the same type and scale as operand 0"
                    ));
                }
            }
            Ok(TensorType {
                dtype: x.dtype,
                shape: shape_of(op, inputs)?,
                scale: x.scale.clone(),
            })
        }
    }
}
