//! The bit-exact semantics of the quantization and integer ops, and of the layout ops
//! and max pooling on integer tensors.
//!
//! Storage follows [`Tensor`]'s convention: signed low-bit and ternary values in `I8`,
//! unsigned low-bit values in `U8`, accumulators in `I32`. Every op is defined exactly as
//! its doc comment in `op.rs` says:
//!
//! * `quantize`: `clamp(round_half_even((x - offset) / scale), qmin, qmax)`, the
//!   subtraction and division as f32 operations, ties to even by `round_ties_even`; a
//!   NaN input quantizes to 0 (real zero), the only choice not fixed by the definition.
//! * `dequantize`: `q as f32 * s` (per tensor, or per channel from the scale constant),
//!   or `acc as f32 * scale[c] (+ bias[c])` over axis 1, one f32 rounding per operation.
//! * `qconv` / `qgemm` (in `qlinear.rs`), `sumpool` / `global_sumpool` (in `pool.rs`) and
//!   `scaled_add` compute the exact integer result (via exact f32 chunks resp. i64) and
//!   fail with an `Eval` error when it does not fit i32, never wrapping.
//! * `requantize`: `qmin + #{k : T[c,k] <= acc}` (or `>=` for descending channels).
//!   Counting does not depend on the order of the thresholds, so each channel's
//!   thresholds are sorted once and counted by binary search: exact for unsorted input.
//!
//! Results are always in range: a count lies in `0..=L = qmax - qmin`, and a quantized
//! value is clamped, so the storage casts below never truncate.

use std::borrow::Cow;

use super::{eval_err, layout, pool, qlinear};
use crate::error::Result;
use crate::graph::{Graph, NodeData};
use crate::op::Op;
use crate::tensor::{Tensor, TensorData};
use crate::types::{DType, Scale};

/// Evaluates an integer or quantization op, or a layout op on an integer operand.
pub(super) fn eval(
    g: &Graph,
    node: &NodeData,
    x: Cow<'_, Tensor>,
    rest: &[&Tensor],
    shape: Vec<usize>,
) -> Result<Tensor> {
    let err = |msg: String| eval_err(g, node, msg);
    let out_dtype = g.ty(node.output).dtype;
    let data = match &node.op {
        Op::Quantize {
            dtype,
            scale,
            offset,
        } => {
            let xs = x.as_f32().ok_or_else(|| err("input is not f32".into()))?;
            quantize(xs, *dtype, scale.get(), offset.get())
                .ok_or_else(|| err(format!("cannot quantize to {dtype}")))?
        }
        Op::Dequantize => TensorData::F32(dequantize(g, node, &x, rest).map_err(err)?),
        Op::Requantize { dtype, .. } => {
            let acc = i32s(&x).map_err(err)?;
            let t = i32s(rest[0]).map_err(err)?;
            let TensorData::I8(desc) = &rest[1].data else {
                return Err(err("descending flags are not i8".into()));
            };
            requantize(acc, &x.shape, t, desc, *dtype).map_err(err)?
        }
        Op::QConv { window, group } => {
            let xo = qlinear::Operand::new(widen(&x).map_err(err)?);
            let wo = qlinear::Operand::new(widen(rest[0]).map_err(err)?);
            let bias = rest.get(1).map(|b| i32s(b)).transpose().map_err(err)?;
            let y = qlinear::qconv(
                (&xo, &x.shape),
                (&wo, &rest[0].shape),
                bias,
                window,
                *group as usize,
                &shape,
            );
            TensorData::I32(y.map_err(err)?)
        }
        Op::QGemm { trans_b } => {
            let ao = qlinear::Operand::new(widen(&x).map_err(err)?);
            let bo = qlinear::Operand::new(widen(rest[0]).map_err(err)?);
            let bias = match rest.get(1) {
                Some(b) => Some((i32s(b).map_err(err)?, b.shape.as_slice())),
                None => None,
            };
            let y = qlinear::qgemm((&ao, &x.shape), (&bo, &rest[0].shape), bias, *trans_b);
            TensorData::I32(y.map_err(err)?)
        }
        Op::ScaledAdd => {
            let a = widen(&x).map_err(err)?;
            let b = widen(rest[0]).map_err(err)?;
            let ka = scalar_i32(rest[1]).map_err(err)?;
            let kb = scalar_i32(rest[2]).map_err(err)?;
            let y = scaled_add((&a, &x.shape), (&b, &rest[0].shape), (ka, kb), &shape);
            TensorData::I32(y.map_err(err)?)
        }
        Op::SumPool { window } => {
            let y = pool::sum_pool(&widen(&x).map_err(err)?, &x.shape, window, &shape);
            TensorData::I32(y.map_err(|i| err(overflow_at(i, &shape)))?)
        }
        Op::GlobalSumPool => {
            let y = pool::global_sum(&widen(&x).map_err(err)?, &x.shape);
            TensorData::I32(y.map_err(|i| err(overflow_at(i, &shape)))?)
        }
        Op::Reshape { .. } | Op::Flatten { .. } => x.into_owned().data,
        Op::Transpose { perm } => {
            let perm: Vec<usize> = perm.iter().map(|&p| p as usize).collect();
            match &x.data {
                TensorData::I8(v) => TensorData::I8(layout::transpose(v, &x.shape, &perm)),
                TensorData::U8(v) => TensorData::U8(layout::transpose(v, &x.shape, &perm)),
                TensorData::I32(v) => TensorData::I32(layout::transpose(v, &x.shape, &perm)),
                _ => return Err(err(unsupported(&x.data))),
            }
        }
        Op::Concat { axis } => concat(&x, rest, *axis as usize, &shape).map_err(err)?,
        Op::MaxPool { window } => {
            let qmin = out_dtype.quant_range().map_or(0, |r| r.0);
            match &x.data {
                TensorData::I8(v) => {
                    TensorData::I8(pool::max_pool(v, &x.shape, window, &shape, qmin as i8))
                }
                TensorData::U8(v) => {
                    TensorData::U8(pool::max_pool(v, &x.shape, window, &shape, qmin as u8))
                }
                _ => return Err(err(unsupported(&x.data))),
            }
        }
        Op::GlobalMaxPool => {
            let qmin = out_dtype.quant_range().map_or(0, |r| r.0);
            match &x.data {
                TensorData::I8(v) => TensorData::I8(pool::global_max(v, &x.shape, qmin as i8)),
                TensorData::U8(v) => TensorData::U8(pool::global_max(v, &x.shape, qmin as u8)),
                _ => return Err(err(unsupported(&x.data))),
            }
        }
        op if super::int_ops::handles(op) => super::int_ops::eval(g, node, &x, rest, &shape)?,
        _ => return Err(err(unsupported(&x.data))),
    };
    let numel: usize = shape.iter().product();
    if data.len() != numel {
        return Err(err(format!(
            "internal error: produced {} elements for shape {:?}",
            data.len(),
            shape
        )));
    }
    Ok(Tensor { shape, data })
}

fn unsupported(d: &TensorData) -> String {
    format!(
        "operand storage {} is not supported here",
        super::storage_name(d)
    )
}

/// The message for an i32 overflow at flat output index `i` of `shape`.
fn overflow_at(i: usize, shape: &[usize]) -> String {
    let mut idx = vec![0; shape.len()];
    let mut r = i;
    for (d, &n) in idx.iter_mut().zip(shape).rev() {
        *d = r % n.max(1);
        r /= n.max(1);
    }
    format!("sum at {idx:?} overflows i32")
}

/// An integer operand (low-bit or i32 storage) widened to i32.
fn widen(t: &Tensor) -> std::result::Result<Vec<i32>, String> {
    match &t.data {
        TensorData::I8(v) => Ok(v.iter().map(|&e| i32::from(e)).collect()),
        TensorData::U8(v) => Ok(v.iter().map(|&e| i32::from(e)).collect()),
        TensorData::I32(v) => Ok(v.clone()),
        d => Err(format!(
            "expected an integer operand, got {}",
            super::storage_name(d)
        )),
    }
}

fn i32s(t: &Tensor) -> std::result::Result<&[i32], String> {
    match &t.data {
        TensorData::I32(v) => Ok(v),
        d => Err(format!(
            "expected an i32 operand, got {}",
            super::storage_name(d)
        )),
    }
}

fn scalar_i32(t: &Tensor) -> std::result::Result<i64, String> {
    match i32s(t)? {
        [k] => Ok(i64::from(*k)),
        v => Err(format!("expected one i32 factor, got {} elements", v.len())),
    }
}

/// Integer levels `v` (each within `dtype`'s quantizer range) in `dtype`'s storage.
fn levels(dtype: DType, v: impl Iterator<Item = i64>) -> Option<TensorData> {
    match dtype {
        DType::Int { signed: true, .. } | DType::Ternary => {
            Some(TensorData::I8(v.map(|q| q as i8).collect()))
        }
        DType::Int { signed: false, .. } => Some(TensorData::U8(v.map(|q| q as u8).collect())),
        DType::F32 | DType::I32 | DType::I64 => None,
    }
}

/// `clamp(round_half_even((x - offset) / scale), qmin, qmax)` in f32; NaN → 0.
pub(crate) fn quantize(x: &[f32], dtype: DType, scale: f32, offset: f32) -> Option<TensorData> {
    let (qmin, qmax) = dtype.quant_range()?;
    levels(
        dtype,
        x.iter()
            .map(|&v| crate::scalar::quantize_level(v, scale, offset, qmin, qmax)),
    )
}

/// Both forms of `dequantize` (see `Op::Dequantize`); the one-operand form reads the
/// scale from operand 0's static type.
fn dequantize(
    g: &Graph,
    node: &NodeData,
    x: &Tensor,
    rest: &[&Tensor],
) -> std::result::Result<Vec<f32>, String> {
    let q: Vec<f32> = widen(x)?.into_iter().map(|v| v as f32).collect();
    if let Some(scale) = rest.first() {
        let scale = scale.as_f32().ok_or("scale is not f32")?;
        let bias = rest.get(1).map(|b| b.as_f32().ok_or("bias is not f32"));
        let bias = bias.transpose()?;
        return per_channel(q, &x.shape, 1, scale, bias);
    }
    match &g.ty(node.inputs[0]).scale {
        Some(Scale::Tensor(s)) => {
            let s = s.get();
            Ok(q.into_iter().map(|v| v * s).collect())
        }
        Some(Scale::Channel { axis, scales }) => {
            if scales.index() >= g.num_values() {
                return Err(format!("scale constant %{} does not exist", scales.0));
            }
            let t = super::const_tensor(g, *scales)?;
            let s = t.as_f32().ok_or("per-channel scales are not f32")?;
            per_channel(q, &x.shape, *axis, s, None)
        }
        None => Err("the operand's type has no scale".into()),
    }
}

/// `q[i] * scale[c] (+ bias[c])` with `c` the index of element `i` along `axis`.
fn per_channel(
    q: Vec<f32>,
    shape: &[usize],
    axis: usize,
    scale: &[f32],
    bias: Option<&[f32]>,
) -> std::result::Result<Vec<f32>, String> {
    let extent = *shape.get(axis).ok_or("channel axis out of range")?;
    if scale.len() != extent || bias.is_some_and(|b| b.len() != extent) {
        return Err(format!("expected {extent} per-channel parameters"));
    }
    let inner: usize = shape[axis + 1..].iter().product();
    if inner == 0 || extent == 0 {
        return Ok(q);
    }
    let mut y = q;
    for (blk, chunk) in y.chunks_mut(inner).enumerate() {
        let c = blk % extent;
        let s = scale[c];
        match bias {
            Some(b) => chunk.iter_mut().for_each(|v| *v = *v * s + b[c]),
            None => chunk.iter_mut().for_each(|v| *v *= s),
        }
    }
    Ok(y)
}

/// Threshold requantization over axis 1 (see `Op::Requantize`).
fn requantize(
    acc: &[i32],
    shape: &[usize],
    thresholds: &[i32],
    descending: &[i8],
    dtype: DType,
) -> std::result::Result<TensorData, String> {
    let (qmin, qmax) = dtype.quant_range().ok_or("not a low-bit type")?;
    let l = (qmax - qmin) as usize;
    let c = *shape.get(1).ok_or("accumulator needs a channel axis")?;
    if thresholds.len() != c * l || descending.len() != c {
        return Err(format!("expected {c}x{l} thresholds and {c} flags"));
    }
    let sorted: Vec<Vec<i32>> = thresholds
        .chunks(l.max(1))
        .take(c)
        .map(|t| {
            let mut t = t[..l.min(t.len())].to_vec();
            t.sort_unstable();
            t
        })
        .collect();
    let inner: usize = shape[2..].iter().product();
    let mut out = Vec::with_capacity(acc.len());
    if inner > 0 && c > 0 {
        for (blk, chunk) in acc.chunks(inner).enumerate() {
            let ch = blk % c;
            let t = &sorted[ch];
            if descending[ch] == 0 {
                out.extend(chunk.iter().map(|&a| t.partition_point(|&k| k <= a)));
            } else {
                out.extend(chunk.iter().map(|&a| l - t.partition_point(|&k| k < a)));
            }
        }
    }
    levels(dtype, out.into_iter().map(|n| qmin + n as i64)).ok_or("not a low-bit type".into())
}

/// `a*ka + b*kb` with NumPy broadcasting into `out`, exactly (i64), checked to fit i32.
fn scaled_add(
    (a, a_shape): (&[i32], &[usize]),
    (b, b_shape): (&[i32], &[usize]),
    (ka, kb): (i64, i64),
    out: &[usize],
) -> std::result::Result<Vec<i32>, String> {
    use super::elementwise::{broadcast_strides, for_each_run};
    let sa = broadcast_strides(a_shape, out);
    let sb = broadcast_strides(b_shape, out);
    let mut y = vec![0i32; out.iter().product()];
    let mut bad = None;
    for_each_run(out, &sa, &sb, |o, pa, pb, len, ia, ib| {
        for t in 0..len {
            let v = i64::from(a[pa + t * ia]) * ka + i64::from(b[pb + t * ib]) * kb;
            match i32::try_from(v) {
                Ok(v) => y[o + t] = v,
                Err(_) => {
                    bad.get_or_insert(o + t);
                }
            }
        }
    });
    match bad {
        Some(i) => Err(overflow_at(i, out).replace("sum", "scaled sum")),
        None => Ok(y),
    }
}

/// Concatenation of integer operands (all of operand 0's storage) along `axis`.
fn concat(
    x: &Tensor,
    rest: &[&Tensor],
    axis: usize,
    out: &[usize],
) -> std::result::Result<TensorData, String> {
    let all: Vec<&Tensor> = std::iter::once(x).chain(rest.iter().copied()).collect();
    macro_rules! cat {
        ($variant:ident) => {{
            let mut ops = Vec::with_capacity(all.len());
            for t in &all {
                match &t.data {
                    TensorData::$variant(v) => ops.push((v.as_slice(), t.shape.as_slice())),
                    d => return Err(format!("mixed operand storage {}", super::storage_name(d))),
                }
            }
            TensorData::$variant(layout::concat(&ops, axis, out))
        }};
    }
    Ok(match &x.data {
        TensorData::I8(_) => cat!(I8),
        TensorData::U8(_) => cat!(U8),
        TensorData::I32(_) => cat!(I32),
        d => return Err(unsupported(d)),
    })
}
