//! Shape rules of the ops that select, repeat or reshape elements of a runtime tensor
//! (pad, slice, gather, expand, tile, resize), of the reductions, and of the element-wise
//! functions: split out of `infer.rs`, called by its float rule (and, through it, by the
//! integer rules, which reuse the float geometry).
//!
//! Every rule keeps the batch dimension `N` at axis 0 and refuses to change it: padding,
//! slicing, gathering, tiling or reducing along the batch would make the result depend on
//! the batch size in a way a per-image computation cannot, so such a graph is refused at
//! import instead. Extents are checked with checked arithmetic.

use crate::infer::broadcast;
use crate::op::Op;
use crate::types::{Dim, Shape, TensorType};

type Res<T> = std::result::Result<T, String>;

fn fixed_axis(s: &Shape, axis: usize, what: &str) -> Res<u64> {
    match s.0.get(axis) {
        Some(Dim::Fixed(n)) => Ok(*n),
        Some(Dim::Batch) => Err(format!("{what} may not change the batch axis 0")),
        None => Err(format!("axis {axis} out of range for {s}")),
    }
}

/// The result shape of one of this module's ops, or None for any other op.
pub(crate) fn shape(op: &Op, inputs: &[&TensorType]) -> Option<Res<Shape>> {
    let x = &inputs[0].shape;
    Some(match op {
        Op::Unary(_) => Ok(x.clone()),
        Op::PRelu => prelu(x, &inputs[1].shape),
        Op::Pad { value, .. } if !value.get().is_finite() => {
            Err("the pad value must be finite".to_string())
        }
        Op::Pad { pads, .. } => pad(x, pads, op),
        Op::Reduce { axes, keepdims, .. } => reduce(x, axes, *keepdims),
        Op::Slice {
            axes,
            starts,
            ends,
            steps,
        } => slice(x, axes, starts, ends, steps),
        Op::Gather { axis } => gather(x, &inputs[1].shape, *axis as usize),
        Op::Expand { shape } => {
            let target = Shape(shape.clone());
            match broadcast(x, &target) {
                Ok(s) if s == target => Ok(target),
                _ => Err(format!("{x} does not expand to {target}")),
            }
        }
        Op::Tile { repeats } => tile(x, repeats),
        Op::Resize {
            size,
            scale_h,
            scale_w,
            ..
        } => {
            if x.rank() != 4 || size.len() != 2 {
                return Some(Err(format!(
                    "resize takes an NCHW tensor and an [h, w] size, got {x} and {size:?}"
                )));
            }
            if [scale_h, scale_w]
                .iter()
                .any(|s| !(s.get().is_finite() && s.get() > 0.0))
                || size.contains(&0)
            {
                return Some(Err("resize scales and sizes must be positive".into()));
            }
            Ok(Shape(vec![
                x.0[0],
                x.0[1],
                Dim::Fixed(size[0]),
                Dim::Fixed(size[1]),
            ]))
        }
        _ => return None,
    })
}

/// PRelu's slope must broadcast to the input (unidirectionally).
fn prelu(x: &Shape, slope: &Shape) -> Res<Shape> {
    if broadcast(x, slope)? != *x {
        return Err(format!("slope {slope} does not broadcast to {x}"));
    }
    Ok(x.clone())
}

fn pad(x: &Shape, pads: &[u64], op: &Op) -> Res<Shape> {
    let r = x.rank();
    if pads.len() != 2 * r {
        return Err(format!(
            "pads needs {} values for rank {r}, got {}",
            2 * r,
            pads.len()
        ));
    }
    let reflect = matches!(
        op,
        Op::Pad {
            mode: crate::op::PadMode::Reflect,
            ..
        }
    );
    let mut out = Vec::with_capacity(r);
    for (i, d) in x.0.iter().enumerate() {
        let (b, e) = (pads[i], pads[r + i]);
        match d {
            Dim::Batch if b != 0 || e != 0 => {
                return Err("pad may not change the batch axis 0".into())
            }
            Dim::Batch => out.push(Dim::Batch),
            Dim::Fixed(n) => {
                if reflect && (b >= *n || e >= *n) {
                    return Err(format!(
                        "reflect padding of axis {i} must be smaller than its extent {n}"
                    ));
                }
                let total = n
                    .checked_add(b)
                    .and_then(|t| t.checked_add(e))
                    .ok_or("padded extent overflows")?;
                out.push(Dim::Fixed(total));
            }
        }
    }
    Ok(Shape(out))
}

fn reduce(x: &Shape, axes: &[u64], keepdims: bool) -> Res<Shape> {
    if axes.is_empty() || axes.windows(2).any(|w| w[0] >= w[1]) {
        return Err(format!(
            "axes {axes:?} must be non-empty, sorted and distinct"
        ));
    }
    let mut out = Vec::new();
    for (i, d) in x.0.iter().enumerate() {
        if axes.contains(&(i as u64)) {
            fixed_axis(x, i, "reduce")?;
            if keepdims {
                out.push(Dim::Fixed(1));
            }
        } else {
            out.push(*d);
        }
    }
    if let Some(&a) = axes.last() {
        if a as usize >= x.rank() {
            return Err(format!("axis {a} out of range for {x}"));
        }
    }
    Ok(Shape(out))
}

fn slice(x: &Shape, axes: &[u64], starts: &[i64], ends: &[i64], steps: &[i64]) -> Res<Shape> {
    let k = axes.len();
    if starts.len() != k || ends.len() != k || steps.len() != k {
        return Err("axes, starts, ends and steps must have the same length".into());
    }
    let mut out = x.0.clone();
    let mut seen = vec![false; x.rank()];
    for i in 0..k {
        let axis = axes[i] as usize;
        if axis >= x.rank() || std::mem::replace(&mut seen[axis], true) {
            return Err(format!("axes {axes:?} must be distinct axes of {x}"));
        }
        let n = fixed_axis(x, axis, "slice")? as i64;
        let (s, e, st) = (starts[i], ends[i], steps[i]);
        if st == 0 || !(0..=n).contains(&s) || !(-1..=n).contains(&e) {
            return Err(format!(
                "axis {axis}: start {s}, end {e}, step {st} are not resolved bounds of extent {n}"
            ));
        }
        let len = if st > 0 {
            (e - s).max(0).div_euclid(st) + i64::from((e - s).max(0) % st != 0)
        } else {
            (s - e).max(0).div_euclid(-st) + i64::from((s - e).max(0) % -st != 0)
        };
        if len > 0 && st < 0 && s >= n {
            return Err(format!(
                "axis {axis}: a backwards slice must start inside the axis"
            ));
        }
        out[axis] = Dim::Fixed(len as u64);
    }
    Ok(Shape(out))
}

fn gather(x: &Shape, indices: &Shape, axis: usize) -> Res<Shape> {
    fixed_axis(x, axis, "gather")?;
    let idx = indices
        .as_fixed()
        .ok_or("gather indices must have a fixed shape")?;
    let mut out = x.0[..axis].to_vec();
    out.extend(idx.iter().map(|&d| Dim::Fixed(d)));
    out.extend_from_slice(&x.0[axis + 1..]);
    Ok(Shape(out))
}

fn tile(x: &Shape, repeats: &[u64]) -> Res<Shape> {
    if repeats.len() != x.rank() {
        return Err(format!(
            "repeats needs {} values, got {}",
            x.rank(),
            repeats.len()
        ));
    }
    x.0.iter()
        .zip(repeats)
        .map(|(d, &r)| match d {
            Dim::Batch if r == 1 => Ok(Dim::Batch),
            Dim::Batch => Err("tile may not repeat the batch axis 0".to_string()),
            Dim::Fixed(n) => n
                .checked_mul(r)
                .map(Dim::Fixed)
                .ok_or_else(|| "tiled extent overflows".to_string()),
        })
        .collect::<Res<Vec<_>>>()
        .map(Shape)
}
