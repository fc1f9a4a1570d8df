//! Conv and the pools: window attributes resolved to explicit geometry.
//!
//! `auto_pad` (NOTSET, SAME_UPPER, SAME_LOWER, VALID) becomes explicit pads computed
//! from the static spatial extents (ONNX's rule: output `ceil(in / stride)`, the odd
//! padding pixel at the end for SAME_UPPER and at the start for SAME_LOWER). The IR's ops
//! are 2-D; a 1-D op on `(N, C, L)` is lowered as Reshape to `(N, C, 1, L)` → the 2-D op
//! with unit height → Reshape back. 3-D ops are refused.

use fqc_ir::{Dim, Op, Value, Window};

use super::{Cx, LResult, Val};

/// Largest accepted kernel/stride/pad/dilation value (keeps window arithmetic exact).
const MAX_GEOM: i64 = 1 << 31;

/// The number of spatial axes of `v` (1 or 2), or an error for other ranks.
fn spatial_rank(cx: &Cx, v: Value, what: &str) -> LResult<usize> {
    match cx.ty(v).shape.rank() {
        3 => Ok(1),
        4 => Ok(2),
        r @ 5.. => Err(format!(
            "only 1-D and 2-D {what} are supported, input has rank {r} ({}-D)",
            r - 2
        )),
        r => Err(format!("input must have rank 3 or 4, got {r}")),
    }
}

/// Reads an ints attribute of `n` values in `lo..=MAX_GEOM`, or `default` when absent.
fn geom(cx: &mut Cx, name: &str, n: usize, lo: i64, default: u64) -> LResult<Vec<u64>> {
    match cx.attrs.ints(name)? {
        None => Ok(vec![default; n]),
        Some(v) => {
            if v.len() != n {
                return Err(format!(
                    "attribute `{name}` must have {n} values, got {v:?}"
                ));
            }
            if v.iter().any(|&x| x < lo || x > MAX_GEOM) {
                return Err(format!("attribute `{name}` has invalid values {v:?}"));
            }
            Ok(v.iter().map(|&x| x as u64).collect())
        }
    }
}

/// Resolves the window of a Conv (`kernel` from W) or pool (`kernel` None: from
/// `kernel_shape`) over spatial extents `input`, as a 2-D window (1-D gets unit height).
fn window(cx: &mut Cx, kernel: Option<Vec<u64>>, input: &[u64], pool: bool) -> LResult<Window> {
    let n = input.len();
    let kattr = geom(cx, "kernel_shape", n, 1, 0)?;
    let kernel = match kernel {
        Some(k) => {
            if cx.attrs.has("kernel_shape") && kattr != k {
                return Err(format!(
                    "kernel_shape {kattr:?} does not match the weight's kernel {k:?}"
                ));
            }
            k
        }
        None => {
            if !cx.attrs.has("kernel_shape") {
                return Err("attribute `kernel_shape` is required".into());
            }
            kattr
        }
    };
    let strides = geom(cx, "strides", n, 1, 1)?;
    let dilations = geom(cx, "dilations", n, 1, 1)?;
    let ceil_mode = pool && cx.attrs.int("ceil_mode", 0)? != 0;
    let auto_pad = cx.attrs.string("auto_pad")?.unwrap_or_default();
    let pads = match auto_pad.as_str() {
        "" | "NOTSET" => geom(cx, "pads", 2 * n, 0, 0)?,
        "VALID" | "SAME_UPPER" | "SAME_LOWER" => {
            if cx.attrs.has("pads") {
                geom(cx, "pads", 2 * n, 0, 0)?;
            }
            let mut pads = vec![0u64; 2 * n];
            if auto_pad != "VALID" {
                for i in 0..n {
                    let out = input[i].div_ceil(strides[i]);
                    let eff = dilations[i] * (kernel[i] - 1) + 1;
                    let total = ((out.max(1) - 1) * strides[i] + eff).saturating_sub(input[i]);
                    let small = total / 2;
                    let (begin, end) = if auto_pad == "SAME_UPPER" {
                        (small, total - small)
                    } else {
                        (total - small, small)
                    };
                    pads[i] = begin;
                    pads[i + n] = end;
                }
            }
            pads
        }
        other => return Err(format!("unsupported auto_pad `{other}`")),
    };
    Ok(if n == 2 {
        Window {
            kernel: [kernel[0], kernel[1]],
            strides: [strides[0], strides[1]],
            pads: [pads[0], pads[1], pads[2], pads[3]],
            dilations: [dilations[0], dilations[1]],
            ceil_mode,
        }
    } else {
        Window {
            kernel: [1, kernel[0]],
            strides: [1, strides[0]],
            pads: [0, pads[0], 0, pads[1]],
            dilations: [1, dilations[0]],
            ceil_mode,
        }
    })
}

/// Spatial extents of `v` (all fixed after the batch).
fn spatial(cx: &Cx, v: Value) -> LResult<Vec<u64>> {
    cx.ty(v).shape.0[2..]
        .iter()
        .map(|d| {
            d.fixed()
                .ok_or_else(|| "spatial dims must be fixed".to_string())
        })
        .collect()
}

/// `(N, C, L)` → `(N, C, 1, L)`.
fn to_2d(cx: &mut Cx, v: Value, suffix: &str) -> LResult<Value> {
    let mut d = cx.ty(v).shape.0.clone();
    d.insert(2, Dim::Fixed(1));
    cx.reshape(v, d, suffix)
}

/// Emits `op` on `inputs` (input 0 the data); 1-D ops go through a unit-height 2-D op.
fn emit_spatial(cx: &mut Cx, op: Op, mut inputs: Vec<Value>, one_d: bool) -> LResult<()> {
    if !one_d {
        return cx.emit_out(op, inputs);
    }
    inputs[0] = to_2d(cx, inputs[0], "to_2d")?;
    let y = cx.emit(op, inputs, "2d")?;
    let mut d = cx.ty(y).shape.0.clone();
    d.remove(2);
    let out = cx.emit(Op::Reshape { shape: d }, vec![y], "")?;
    cx.set_out(0, Val::Ir(out));
    Ok(())
}

/// `Conv` (1-D or 2-D, any group).
pub(crate) fn conv(cx: &mut Cx) -> LResult<()> {
    let x = cx.f32_tensor(0)?;
    let mut w = cx.f32_tensor(1)?;
    let b = cx.tensor_opt(2)?;
    let n = spatial_rank(cx, x, "convolutions")?;
    let wshape = cx.ty(w).shape.clone();
    if wshape.rank() != n + 2 {
        return Err(format!("weight must have rank {}, got {wshape}", n + 2));
    }
    let kernel = wshape.as_fixed().ok_or("weight shape must be fixed")?[2..].to_vec();
    let group = cx.attrs.int("group", 1)?;
    if !(1..=MAX_GEOM).contains(&group) {
        return Err(format!("invalid group {group}"));
    }
    let input = spatial(cx, x)?;
    let window = window(cx, Some(kernel), &input, false)?;
    if n == 1 {
        let mut d = wshape.0.clone();
        d.insert(2, Dim::Fixed(1));
        w = cx.reshape(w, d, "weight_2d")?;
    }
    let mut inputs = vec![x, w];
    inputs.extend(b);
    emit_spatial(
        cx,
        Op::Conv {
            window,
            group: group as u64,
        },
        inputs,
        n == 1,
    )
}

/// `MaxPool` / `AveragePool` (1-D or 2-D).
pub(crate) fn pool(cx: &mut Cx) -> LResult<()> {
    let x = cx.f32_tensor(0)?;
    let n = spatial_rank(cx, x, "pools")?;
    let input = spatial(cx, x)?;
    let max = cx.op_type() == "MaxPool";
    let op = if max {
        cx.forbid_outputs_from(1, "Indices")?;
        // Only affects the Indices output, which is unused.
        cx.attrs.ignore("storage_order");
        Op::MaxPool {
            window: window(cx, None, &input, true)?,
        }
    } else {
        let count_include_pad = cx.attrs.int("count_include_pad", 0)? != 0;
        Op::AveragePool {
            window: window(cx, None, &input, true)?,
            count_include_pad,
        }
    };
    emit_spatial(cx, op, vec![x], n == 1)
}

/// `GlobalAveragePool` / `GlobalMaxPool` (1-D or 2-D).
pub(crate) fn global_pool(cx: &mut Cx) -> LResult<()> {
    let x = cx.f32_tensor(0)?;
    let n = spatial_rank(cx, x, "pools")?;
    let op = if cx.op_type() == "GlobalMaxPool" {
        Op::GlobalMaxPool
    } else {
        Op::GlobalAveragePool
    };
    emit_spatial(cx, op, vec![x], n == 1)
}
