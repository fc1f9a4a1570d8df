//! ONNX ReduceMean / ReduceMax / ReduceMin / ReduceSum over a set of axes.
//!
//! The input is viewed as `[outer..., reduced..., inner...]` per output element: every
//! output element combines the input elements whose coordinates agree with it off the
//! reduced axes, visited in row-major order (sums accumulate left to right in f32, as
//! ONNX Runtime's reference loop does; the mean divides the sum once). Max and min are
//! generic over the element type, so they run on integer levels too.

use crate::op::ReduceKind;

/// The input offsets each output element reduces over, and the output element count.
fn groups(shape: &[usize], axes: &[u64]) -> (Vec<usize>, Vec<usize>) {
    let r = shape.len();
    let mut strides = vec![1usize; r];
    for i in (0..r.saturating_sub(1)).rev() {
        strides[i] = strides[i + 1] * shape[i + 1];
    }
    let reduced: Vec<usize> = axes.iter().map(|&a| a as usize).collect();
    let kept: Vec<usize> = (0..r).filter(|a| !reduced.contains(a)).collect();
    let offsets = |axes: &[usize]| -> Vec<usize> {
        let mut v = vec![0usize];
        for &a in axes {
            let (n, step) = (shape[a], strides[a]);
            v = v
                .iter()
                .flat_map(|&o| (0..n).map(move |i| o + i * step))
                .collect();
        }
        v
    };
    (offsets(&kept), offsets(&reduced))
}

/// f32 reduction of `x` (shape `shape`) over `axes`, in output row-major order.
pub(crate) fn reduce_f32(x: &[f32], shape: &[usize], axes: &[u64], kind: ReduceKind) -> Vec<f32> {
    let (outs, taps) = groups(shape, axes);
    outs.iter()
        .map(|&o| {
            let vals = taps.iter().map(|&t| x[o + t]);
            match kind {
                ReduceKind::Sum => vals.fold(0.0f32, |a, v| a + v),
                ReduceKind::Mean => vals.fold(0.0f32, |a, v| a + v) / taps.len() as f32,
                ReduceKind::Max => vals.fold(f32::NEG_INFINITY, |a, v| {
                    if v.is_nan() || a.is_nan() {
                        f32::NAN
                    } else {
                        a.max(v)
                    }
                }),
                ReduceKind::Min => vals.fold(f32::INFINITY, |a, v| {
                    if v.is_nan() || a.is_nan() {
                        f32::NAN
                    } else {
                        a.min(v)
                    }
                }),
            }
        })
        .collect()
}

/// Max or min of integer levels over `axes`; None for a kind that is not a selection or
/// an empty set of elements (which has no level).
pub(crate) fn reduce_select<T: Copy + Ord>(
    x: &[T],
    shape: &[usize],
    axes: &[u64],
    kind: ReduceKind,
) -> Option<Vec<T>> {
    let (outs, taps) = groups(shape, axes);
    if taps.is_empty() {
        return None;
    }
    let pick = match kind {
        ReduceKind::Max => |a: T, b: T| a.max(b),
        ReduceKind::Min => |a: T, b: T| a.min(b),
        ReduceKind::Mean | ReduceKind::Sum => return None,
    };
    Some(
        outs.iter()
            .map(|&o| {
                taps[1..]
                    .iter()
                    .fold(x[o + taps[0]], |a, &t| pick(a, x[o + t]))
            })
            .collect(),
    )
}
