//! Ops that select or repeat elements: Pad, Slice, Gather, Expand, Tile, and nearest
//! Resize (linear Resize interpolates, in f32 only). Every kernel but linear Resize is
//! generic over the element type, so integer tensors (levels) move exactly like floats —
//! which is why these ops commute with a per-tensor quantizer and run on integers after
//! `integerize`.
//!
//! Each walks the output in row-major order and computes the source index of every
//! element from its coordinates, as the ONNX operator definition does; shapes have been
//! checked by type inference, so every source index is in bounds by construction (a
//! resolved slice never leaves its axis, gather indices are resolved and checked at
//! import, reflect padding is smaller than the axis).

use crate::op::{CoordMode, NearestMode, PadMode};

/// Row-major strides of `shape`.
fn strides(shape: &[usize]) -> Vec<usize> {
    let mut s = vec![1usize; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        s[i] = s[i + 1] * shape[i + 1];
    }
    s
}

/// Calls `f(out_index, coords)` for every output element in row-major order.
fn each(out: &[usize], mut f: impl FnMut(&[usize])) {
    let total: usize = out.iter().product();
    if total == 0 {
        return;
    }
    let mut idx = vec![0usize; out.len()];
    for _ in 0..total {
        f(&idx);
        for d in (0..out.len()).rev() {
            idx[d] += 1;
            if idx[d] < out[d] {
                break;
            }
            idx[d] = 0;
        }
    }
}

/// ONNX Pad: `pads` = begin counts then end counts per axis.
pub(crate) fn pad<T: Copy>(
    x: &[T],
    shape: &[usize],
    pads: &[usize],
    mode: PadMode,
    value: T,
    out: &[usize],
) -> Vec<T> {
    let r = shape.len();
    let st = strides(shape);
    let mut y = Vec::with_capacity(out.iter().product());
    each(out, |c| {
        let mut off = 0usize;
        for a in 0..r {
            let p = c[a] as i64 - pads[a] as i64;
            let n = shape[a] as i64;
            let i = if (0..n).contains(&p) {
                p
            } else {
                match mode {
                    PadMode::Constant => {
                        y.push(value);
                        return;
                    }
                    PadMode::Edge => p.clamp(0, n - 1),
                    PadMode::Reflect => {
                        if p < 0 {
                            -p
                        } else {
                            2 * (n - 1) - p
                        }
                    }
                }
            };
            off += i as usize * st[a];
        }
        y.push(x[off]);
    });
    y
}

/// ONNX Slice with resolved bounds: axis `axes[k]` walks `starts[k]` by `steps[k]`.
pub(crate) fn slice<T: Copy>(
    x: &[T],
    shape: &[usize],
    axes: &[u64],
    starts: &[i64],
    steps: &[i64],
    out: &[usize],
) -> Vec<T> {
    let st = strides(shape);
    let mut start = vec![0i64; shape.len()];
    let mut step = vec![1i64; shape.len()];
    for (k, &a) in axes.iter().enumerate() {
        start[a as usize] = starts[k];
        step[a as usize] = steps[k];
    }
    let mut y = Vec::with_capacity(out.iter().product());
    each(out, |c| {
        let off: i64 = (0..c.len())
            .map(|a| (start[a] + c[a] as i64 * step[a]) * st[a] as i64)
            .sum();
        y.push(x[off as usize]);
    });
    y
}

/// ONNX Gather along `axis` with non-negative, in-range `indices` of shape `ishape`.
pub(crate) fn gather<T: Copy>(
    x: &[T],
    shape: &[usize],
    axis: usize,
    indices: &[i64],
    ishape: &[usize],
    out: &[usize],
) -> Vec<T> {
    let st = strides(shape);
    let ist = strides(ishape);
    let k = ishape.len();
    let mut y = Vec::with_capacity(out.iter().product());
    each(out, |c| {
        let mut off = 0usize;
        for a in 0..axis {
            off += c[a] * st[a];
        }
        let i: usize = (0..k).map(|j| c[axis + j] * ist[j]).sum();
        off += indices[i] as usize * st[axis];
        for a in axis + 1..shape.len() {
            off += c[a + k - 1] * st[a];
        }
        y.push(x[off]);
    });
    y
}

/// NumPy broadcast of `x` (shape `shape`, right-aligned) to `out`.
pub(crate) fn expand<T: Copy>(x: &[T], shape: &[usize], out: &[usize]) -> Vec<T> {
    let lead = out.len() - shape.len();
    let st = strides(shape);
    let mut y = Vec::with_capacity(out.iter().product());
    each(out, |c| {
        let off: usize = (0..shape.len())
            .map(|a| {
                if shape[a] == 1 {
                    0
                } else {
                    c[lead + a] * st[a]
                }
            })
            .sum();
        y.push(x[off]);
    });
    y
}

/// ONNX Tile: output coordinate `c` reads input coordinate `c mod extent`.
pub(crate) fn tile<T: Copy>(x: &[T], shape: &[usize], out: &[usize]) -> Vec<T> {
    let st = strides(shape);
    let mut y = Vec::with_capacity(out.iter().product());
    each(out, |c| {
        let off: usize = (0..shape.len()).map(|a| (c[a] % shape[a]) * st[a]).sum();
        y.push(x[off]);
    });
    y
}

/// Where output pixel `x` of `lout` samples an input axis of `lin` at scale `s`.
pub(crate) fn source_coord(mode: CoordMode, x: usize, s: f32, lin: usize, lout: usize) -> f32 {
    let x = x as f32;
    match mode {
        CoordMode::HalfPixel => (x + 0.5) / s - 0.5,
        CoordMode::PytorchHalfPixel if lout > 1 => (x + 0.5) / s - 0.5,
        CoordMode::PytorchHalfPixel => 0.0,
        CoordMode::Asymmetric => x / s,
        // ONNX divides by the resized length before flooring (`lin·s`, which is `lout`
        // when the size was given), as its reference and ONNX Runtime do.
        CoordMode::AlignCorners => {
            let lr = lin as f32 * s;
            if lout > 1 && lr != 1.0 {
                x * (lin as f32 - 1.0) / (lr - 1.0)
            } else {
                0.0
            }
        }
        CoordMode::TfHalfPixelForNn => (x + 0.5) / s,
    }
}

/// The input index nearest to coordinate `v`, by ONNX's `nearest_mode`, clamped.
fn nearest_index(mode: NearestMode, v: f32, lin: usize) -> usize {
    let i = match mode {
        NearestMode::RoundPreferFloor if v.fract() == 0.5 => v.floor(),
        NearestMode::RoundPreferCeil if v.fract() == 0.5 => v.ceil(),
        NearestMode::RoundPreferFloor | NearestMode::RoundPreferCeil => v.round(),
        NearestMode::Floor => v.floor(),
        NearestMode::Ceil => v.ceil(),
    };
    i.clamp(0.0, lin as f32 - 1.0) as usize
}

/// The source row (or column) index of every output row (column), nearest mode.
pub(crate) fn nearest_map(
    coord: CoordMode,
    mode: NearestMode,
    s: f32,
    lin: usize,
    lout: usize,
) -> Vec<usize> {
    (0..lout)
        .map(|x| nearest_index(mode, source_coord(coord, x, s, lin, lout), lin))
        .collect()
}

/// Nearest Resize of an NCHW tensor, rows/columns mapped by `rows`/`cols`.
pub(crate) fn resize_nearest<T: Copy>(
    x: &[T],
    shape: &[usize],
    rows: &[usize],
    cols: &[usize],
) -> Vec<T> {
    let (h, w) = (shape[2], shape[3]);
    let planes = shape[0] * shape[1];
    let mut y = Vec::with_capacity(planes * rows.len() * cols.len());
    for p in 0..planes {
        let plane = &x[p * h * w..(p + 1) * h * w];
        for &r in rows {
            y.extend(cols.iter().map(|&c| plane[r * w + c]));
        }
    }
    y
}

/// Bilinear taps of one axis: `(i1, i2, w1, w2)` per output pixel, as ONNX Runtime
/// computes them (the coordinate clamped to the axis, equal weights on a degenerate pair).
fn linear_taps(coord: CoordMode, s: f32, lin: usize, lout: usize) -> Vec<(usize, usize, f32, f32)> {
    (0..lout)
        .map(|x| {
            let v = source_coord(coord, x, s, lin, lout).clamp(0.0, lin as f32 - 1.0);
            let i1 = (v as usize).min(lin - 1);
            let i2 = (i1 + 1).min(lin - 1);
            if i1 == i2 {
                return (i1, i2, 0.5, 0.5);
            }
            // weight of i1 is the distance to i2, and the other way round
            (i1, i2, (v - i2 as f32).abs(), (v - i1 as f32).abs())
        })
        .collect()
}

/// Bilinear Resize of an NCHW f32 tensor to `[oh, ow]` at scales `(sh, sw)`.
pub(crate) fn resize_linear(
    x: &[f32],
    shape: &[usize],
    coord: CoordMode,
    (sh, sw): (f32, f32),
    (oh, ow): (usize, usize),
) -> Vec<f32> {
    let (h, w) = (shape[2], shape[3]);
    let ys = linear_taps(coord, sh, h, oh);
    let xs = linear_taps(coord, sw, w, ow);
    let planes = shape[0] * shape[1];
    let mut y = Vec::with_capacity(planes * oh * ow);
    for p in 0..planes {
        let plane = &x[p * h * w..(p + 1) * h * w];
        for &(r1, r2, wy1, wy2) in &ys {
            for &(c1, c2, wx1, wx2) in &xs {
                let v = wx1 * wy1 * plane[r1 * w + c1]
                    + wx2 * wy1 * plane[r1 * w + c2]
                    + wx1 * wy2 * plane[r2 * w + c1]
                    + wx2 * wy2 * plane[r2 * w + c2];
                y.push(v);
            }
        }
    }
    y
}
