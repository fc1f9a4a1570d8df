//! Ops that select, repeat or pad the elements of a runtime tensor: Slice, Gather and
//! Split (the channel splits of ShuffleNet, the heads of detectors), Expand, Tile, Pad,
//! Resize and the older Upsample. (On import-time shape values Slice and Gather are
//! evaluated by `shape`.)
//!
//! Every parameter (starts, ends, indices, repeats, pads, scales, sizes) must be known at
//! import — a constant or shape arithmetic — and is resolved here the way ONNX defines it
//! (negative indices counted from the end, slice bounds clamped to the axis, Resize's
//! output extent `floor(in·scale)`), so the IR ops carry plain non-negative bounds. An op
//! that would change the batch axis (slicing or padding along `N`) is refused: it would
//! make one image's result depend on the others.

use fqc_ir::{Dim, Op, Tensor, TensorData, F32};

use super::{Cx, LResult, Lin, Val};
use fqc_ir::op::{CoordMode, NearestMode, PadMode, ResizeMode};

/// Input `i` as known integers with their shape: a shape value, or an int constant of
/// any size (gather indices, split sizes).
fn ints(cx: &Cx, i: usize, what: &str) -> LResult<(Vec<i64>, Vec<usize>)> {
    if let Some(Val::Ir(v)) = cx.val_opt(i)? {
        if let Some(t) = cx.imp.g.const_tensor(v) {
            let data = match &t.data {
                TensorData::I64(d) => d.clone(),
                TensorData::I32(d) => d.iter().map(|&x| i64::from(x)).collect(),
                _ => return Err(format!("{what} must be integers")),
            };
            return Ok((data, t.shape.clone()));
        }
    }
    let s = cx.sym(i, what)?;
    let shape = if s.scalar {
        vec![]
    } else {
        vec![s.elems.len()]
    };
    let data = s
        .concrete()
        .ok_or_else(|| format!("{what} must not depend on the batch size, got {s}"))?;
    Ok((data, shape))
}

/// The extent of axis `a` of `x`, refusing the batch axis.
fn extent(cx: &Cx, x: fqc_ir::Value, a: usize, what: &str) -> LResult<i64> {
    match cx.ty(x).shape.0[a] {
        Dim::Fixed(n) => Ok(n as i64),
        Dim::Batch => Err(format!("{what} along the batch axis 0 is not supported")),
    }
}

/// ONNX Slice bounds of one axis resolved: `(start, end)` clamped for `step`.
fn resolve(start: i64, end: i64, step: i64, n: i64) -> (i64, i64) {
    let norm = |v: i64| if v < 0 { v.saturating_add(n) } else { v };
    if step > 0 {
        (norm(start).clamp(0, n), norm(end).clamp(0, n))
    } else {
        (norm(start).clamp(0, n - 1), norm(end).clamp(-1, n - 1))
    }
}

/// Slices `x` along `(axis, start, end, step)` entries (unresolved ONNX values).
pub(crate) fn emit_slice(
    cx: &mut Cx,
    x: fqc_ir::Value,
    parts: &[(usize, i64, i64, i64)],
    suffix: &str,
) -> LResult<fqc_ir::Value> {
    let (mut axes, mut starts, mut ends, mut steps) = (vec![], vec![], vec![], vec![]);
    for &(a, s, e, st) in parts {
        if st == 0 {
            return Err("slice steps must not be 0".into());
        }
        if cx.ty(x).shape.0[a] == Dim::Batch {
            // The whole batch axis is the identity; anything else is refused.
            if st == 1 && s == 0 && e >= i64::from(i32::MAX) {
                continue;
            }
            return Err("slicing along the batch axis 0 is not supported".into());
        }
        let n = extent(cx, x, a, "slicing")?;
        let (s, e) = resolve(s, e, st, n);
        axes.push(a as u64);
        starts.push(s);
        ends.push(e);
        steps.push(st);
    }
    if axes.is_empty() {
        return Ok(x);
    }
    let mut order: Vec<usize> = (0..axes.len()).collect();
    order.sort_by_key(|&i| axes[i]);
    let pick = |v: &Vec<i64>| order.iter().map(|&i| v[i]).collect::<Vec<_>>();
    let op = Op::Slice {
        axes: order.iter().map(|&i| axes[i]).collect(),
        starts: pick(&starts),
        ends: pick(&ends),
        steps: pick(&steps),
    };
    cx.emit(op, vec![x], suffix)
}

/// `Slice` of a runtime tensor.
pub(crate) fn slice(cx: &mut Cx) -> LResult<()> {
    let x = cx.f32_tensor(0)?;
    let rank = cx.ty(x).shape.rank();
    let (starts, ends, axes, steps) = if cx.opset() < 10 {
        let s = cx
            .attrs
            .ints("starts")?
            .ok_or("attribute `starts` is required")?;
        let e = cx
            .attrs
            .ints("ends")?
            .ok_or("attribute `ends` is required")?;
        (s, e, cx.attrs.ints("axes")?, None)
    } else {
        let s = ints(cx, 1, "starts")?.0;
        let e = ints(cx, 2, "ends")?.0;
        let a = match cx.input_name(3) {
            Some(_) => Some(ints(cx, 3, "axes")?.0),
            None => None,
        };
        let st = match cx.input_name(4) {
            Some(_) => Some(ints(cx, 4, "steps")?.0),
            None => None,
        };
        (s, e, a, st)
    };
    let axes = axes.unwrap_or_else(|| (0..starts.len() as i64).collect());
    let steps = steps.unwrap_or_else(|| vec![1; starts.len()]);
    if ends.len() != starts.len() || axes.len() != starts.len() || steps.len() != starts.len() {
        return Err("starts, ends, axes and steps must have the same length".into());
    }
    let mut parts: Vec<(usize, i64, i64, i64)> = Vec::new();
    for i in 0..starts.len() {
        let a = cx.axis(axes[i], rank, false)?;
        if parts.iter().any(|&(b, ..)| b == a) {
            return Err(format!("axis {} is sliced twice", axes[i]));
        }
        parts.push((a, starts[i], ends[i], steps[i]));
    }
    let y = emit_slice(cx, x, &parts, "")?;
    cx.set_out(0, Val::Ir(y));
    Ok(())
}

/// `Gather` of a runtime tensor with constant indices.
pub(crate) fn gather(cx: &mut Cx) -> LResult<()> {
    let x = cx.f32_tensor(0)?;
    let rank = cx.ty(x).shape.rank();
    let axis = cx.attrs.int("axis", 0)?;
    let axis = cx.axis(axis, rank, false)?;
    let n = extent(cx, x, axis, "gathering")?;
    let (idx, ishape) = ints(cx, 1, "the indices")?;
    let resolved = idx
        .iter()
        .map(|&i| {
            let j = if i < 0 { i + n } else { i };
            if (0..n).contains(&j) {
                Ok(j)
            } else {
                Err(format!("index {i} is out of range for extent {n}"))
            }
        })
        .collect::<LResult<Vec<i64>>>()?;
    let t = Tensor {
        shape: ishape,
        data: TensorData::I64(resolved),
    };
    let indices = cx.add_const(None, t)?;
    cx.emit_out(Op::Gather { axis: axis as u64 }, vec![x, indices])
}

/// `Split` into Slices along `axis`.
pub(crate) fn split(cx: &mut Cx) -> LResult<()> {
    let x = cx.f32_tensor(0)?;
    let rank = cx.ty(x).shape.rank();
    let axis = cx.attrs.int("axis", 0)?;
    let axis = cx.axis(axis, rank, false)?;
    let n = extent(cx, x, axis, "splitting")?;
    let outs = cx.node.output.len() as i64;
    let sizes: Vec<i64> = if cx.opset() < 13 {
        cx.attrs.ints("split")?.unwrap_or_default()
    } else if cx.input_name(1).is_some() {
        ints(cx, 1, "the split sizes")?.0
    } else {
        Vec::new()
    };
    let sizes = if !sizes.is_empty() {
        sizes
    } else {
        let parts = match cx.attrs.int_opt("num_outputs")? {
            Some(k) => k,
            None => outs,
        };
        if parts <= 0 {
            return Err("Split needs at least one output".into());
        }
        // Equal parts; opset 18's num_outputs makes the last one smaller when uneven.
        let size = (n + parts - 1) / parts;
        (0..parts).map(|k| (n - k * size).clamp(0, size)).collect()
    };
    if sizes.len() as i64 != outs || sizes.iter().any(|&s| s < 0) || sizes.iter().sum::<i64>() != n
    {
        return Err(format!(
            "split sizes {sizes:?} do not divide extent {n} into {outs} outputs"
        ));
    }
    let mut start = 0;
    for (k, &s) in sizes.iter().enumerate() {
        if cx.out_name(k).is_some() {
            let suffix = format!("split{k}");
            let v = emit_slice(cx, x, &[(axis, start, start + s, 1)], &suffix)?;
            cx.set_out(k, Val::Ir(v));
        }
        start += s;
    }
    Ok(())
}

/// `Expand` to a known shape (which may name the batch).
pub(crate) fn expand(cx: &mut Cx) -> LResult<()> {
    let x = cx.f32_tensor(0)?;
    let target = cx.sym(1, "the target shape")?;
    let dims = target
        .elems
        .iter()
        .map(|l| match (*l, l.value()) {
            (Lin::BATCH, _) => Ok(Dim::Batch),
            (_, Some(v)) if v >= 0 => Ok(Dim::Fixed(v as u64)),
            _ => Err(format!("target shape {target} is not a shape")),
        })
        .collect::<LResult<Vec<_>>>()?;
    let out = fqc_ir::infer::broadcast(&cx.ty(x).shape, &fqc_ir::Shape(dims))?;
    if out == cx.ty(x).shape {
        cx.set_out(0, Val::Ir(x));
        return Ok(());
    }
    cx.emit_out(Op::Expand { shape: out.0 }, vec![x])
}

/// `Tile` by known repeats.
pub(crate) fn tile(cx: &mut Cx) -> LResult<()> {
    let x = cx.f32_tensor(0)?;
    let (repeats, _) = ints(cx, 1, "the repeats")?;
    if repeats.iter().any(|&r| r < 0) {
        return Err(format!("repeats {repeats:?} must be non-negative"));
    }
    cx.emit_out(
        Op::Tile {
            repeats: repeats.iter().map(|&r| r as u64).collect(),
        },
        vec![x],
    )
}

/// `Pad` (attributes before opset 11, inputs after; `axes` from opset 18).
pub(crate) fn pad(cx: &mut Cx) -> LResult<()> {
    let x = cx.f32_tensor(0)?;
    let rank = cx.ty(x).shape.rank();
    let mode = match cx.attrs.string("mode")?.as_deref() {
        None | Some("constant") => PadMode::Constant,
        Some("reflect") => PadMode::Reflect,
        Some("edge") => PadMode::Edge,
        Some(m) => return Err(format!("mode `{m}` is not supported")),
    };
    let (pads, value, axes) = if cx.opset() < 11 {
        let p = match cx.attrs.ints("pads")? {
            Some(p) => p,
            None => cx
                .attrs
                .ints("paddings")?
                .ok_or("attribute `pads` is required")?,
        };
        (p, cx.attrs.float("value", 0.0)?, None)
    } else {
        let p = ints(cx, 1, "the pads")?.0;
        let v = match cx.input_name(2) {
            Some(_) => match cx.const_of(2)?.and_then(|t| t.as_f32()) {
                Some([v]) => *v,
                Some([]) | None => 0.0,
                Some(_) => return Err("constant_value must be a scalar".into()),
            },
            None => 0.0,
        };
        let a = match cx.input_name(3) {
            Some(_) => Some(ints(cx, 3, "the axes")?.0),
            None => None,
        };
        (p, v, a)
    };
    let axes: Vec<usize> = match axes {
        Some(a) => a
            .iter()
            .map(|&v| cx.axis(v, rank, false))
            .collect::<LResult<_>>()?,
        None => (0..rank).collect(),
    };
    if pads.len() != 2 * axes.len() {
        return Err(format!(
            "pads needs {} values, got {}",
            2 * axes.len(),
            pads.len()
        ));
    }
    if pads.iter().any(|&p| p < 0) {
        return Err("negative pads (cropping) are not supported".into());
    }
    let mut full = vec![0u64; 2 * rank];
    for (k, &a) in axes.iter().enumerate() {
        full[a] = pads[k] as u64;
        full[rank + a] = pads[axes.len() + k] as u64;
    }
    if full.iter().all(|&p| p == 0) {
        cx.set_out(0, Val::Ir(x));
        return Ok(());
    }
    cx.emit_out(
        Op::Pad {
            pads: full,
            mode,
            value: F32(value),
        },
        vec![x],
    )
}

/// A word attribute among `choices` (with a default), or an error naming it.
fn choice<T: Copy>(cx: &mut Cx, name: &str, default: T, choices: &[(&str, T)]) -> LResult<T> {
    match cx.attrs.string(name)? {
        None => Ok(default),
        Some(s) => choices
            .iter()
            .find(|(w, _)| *w == s)
            .map(|(_, v)| *v)
            .ok_or_else(|| format!("{name}=`{s}` is not supported")),
    }
}

/// `Resize` (opsets 10–19) and `Upsample` of the spatial axes of an NCHW tensor.
pub(crate) fn resize(cx: &mut Cx) -> LResult<()> {
    let x = cx.f32_tensor(0)?;
    let shape = cx.ty(x).shape.clone();
    if shape.rank() != 4 {
        return Err(format!(
            "only NCHW (rank 4) inputs are supported, got {shape}"
        ));
    }
    let upsample = cx.op_type() == "Upsample";
    let mode = choice(
        cx,
        "mode",
        ResizeMode::Nearest,
        &[
            ("nearest", ResizeMode::Nearest),
            ("linear", ResizeMode::Linear),
            ("bilinear", ResizeMode::Linear),
        ],
    )?;
    let legacy = upsample || cx.opset() < 11;
    let coord = if legacy {
        CoordMode::Asymmetric
    } else {
        choice(
            cx,
            "coordinate_transformation_mode",
            CoordMode::HalfPixel,
            &[
                ("half_pixel", CoordMode::HalfPixel),
                ("pytorch_half_pixel", CoordMode::PytorchHalfPixel),
                ("asymmetric", CoordMode::Asymmetric),
                ("align_corners", CoordMode::AlignCorners),
                ("tf_half_pixel_for_nn", CoordMode::TfHalfPixelForNn),
            ],
        )?
    };
    let nearest = if legacy {
        NearestMode::Floor
    } else {
        choice(
            cx,
            "nearest_mode",
            NearestMode::RoundPreferFloor,
            &[
                ("round_prefer_floor", NearestMode::RoundPreferFloor),
                ("round_prefer_ceil", NearestMode::RoundPreferCeil),
                ("floor", NearestMode::Floor),
                ("ceil", NearestMode::Ceil),
            ],
        )?
    };
    cx.attrs.ignore("cubic_coeff_a");
    cx.attrs.ignore("extrapolation_value");
    if cx.attrs.int("exclude_outside", 0)? != 0 || cx.attrs.int("antialias", 0)? != 0 {
        return Err("exclude_outside and antialias are not supported".into());
    }
    if !matches!(
        cx.attrs.string("keep_aspect_ratio_policy")?.as_deref(),
        None | Some("stretch")
    ) {
        return Err("only keep_aspect_ratio_policy=stretch is supported".into());
    }
    if cx.attrs.ints("axes")?.is_some() {
        return Err("the axes attribute is not supported".into());
    }
    let (h, w) = (extent(cx, x, 2, "resizing")?, extent(cx, x, 3, "resizing")?);
    // Scales: an attribute (Upsample < 9), input 1 (Upsample 9, Resize 10) or input 2;
    // sizes: input 3.
    let scales_input = if upsample || cx.opset() < 11 { 1 } else { 2 };
    let scales: Option<Vec<f32>> = if upsample && cx.opset() < 9 {
        cx.attrs.floats("scales")?
    } else {
        match cx.input_name(scales_input) {
            Some(_) => match cx.const_of(scales_input)?.and_then(|t| t.as_f32()) {
                Some([]) => None,
                Some(s) => Some(s.to_vec()),
                None => return Err("scales must be a float constant".into()),
            },
            None => None,
        }
    };
    let sizes = match (scales_input == 2).then(|| cx.input_name(3)).flatten() {
        Some(_) => Some(ints(cx, 3, "the sizes")?.0),
        None => None,
    };
    let (oh, ow, sh, sw) = match (scales, sizes) {
        (Some(s), None) if s.len() == 4 => {
            if s[0] != 1.0 || s[1] != 1.0 {
                return Err(format!("scales {s:?} may only resize the spatial axes"));
            }
            let out = |n: i64, k: f32| (n as f32 * k).floor() as i64;
            (out(h, s[2]), out(w, s[3]), s[2], s[3])
        }
        (None, Some(z)) if z.len() == 4 => {
            // Exporters write the batch they traced with in `sizes[0]`; the batch is
            // never resized, so only the channels are checked.
            if z[1] != extent(cx, x, 1, "resizing")? {
                return Err(format!("sizes {z:?} may only resize the spatial axes"));
            }
            (z[2], z[3], z[2] as f32 / h as f32, z[3] as f32 / w as f32)
        }
        _ => return Err("Resize needs either 4 scales or 4 sizes".into()),
    };
    if oh <= 0 || ow <= 0 {
        return Err(format!("the output would be {oh}x{ow}"));
    }
    if (oh, ow) == (h, w) && sh == 1.0 && sw == 1.0 {
        cx.set_out(0, Val::Ir(x));
        return Ok(());
    }
    cx.emit_out(
        Op::Resize {
            mode,
            coord,
            nearest,
            size: vec![oh as u64, ow as u64],
            scale_h: F32(sh),
            scale_w: F32(sw),
        },
        vec![x],
    )
}
