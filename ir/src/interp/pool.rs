//! Pooling over NCHW planes: MaxPool, AveragePool, GlobalAveragePool, GlobalMaxPool.
//!
//! A window at output `(oy, ox)` starts at `(oy·sh - top, ox·sw - left)` and has taps
//! every `dilation` up to `kernel` taps. Semantics follow ONNX, with ONNX Runtime's
//! choices where the spec leaves room (its `pool_functors.h`):
//!
//! * **MaxPool**: the max over taps inside the input; padding never wins. Like ORT, the
//!   first in-bounds tap seeds the max and later taps replace it only if greater (so
//!   `-inf` inputs give `-inf`); a window with no tap inside the input yields `f32::MIN`
//!   (ORT's `numeric_limits::lowest`).
//! * **AveragePool**: the sum over taps inside the input, divided by the number of those
//!   taps (`count_include_pad = 0`), or (`= 1`) by the number of taps inside the
//!   *padded* input `[-top, H + bottom)`: a ceil-mode window that hangs past the bottom /
//!   right padding does not count the part beyond it. A window without input taps is 0.
//! * **Global** pools reduce each whole `H×W` plane (mean = sum / (H·W)).
//! * **Integer** forms: max pooling is generic over the element type (an integer window
//!   without input taps yields the caller's `empty`, the dtype's `qmin`, as quantizing
//!   `f32::MIN` would); the sum pools add in i64 (exact: at most 2^31 taps of
//!   magnitude ≤ 2^8) and report the first window whose sum does not fit i32.

use crate::op::Window;

/// Per-axis geometry: for output `o`, taps at `o·stride - pad_begin + t·dilation`.
#[derive(Clone, Copy, Debug)]
struct Axis {
    len: usize,
    kernel: usize,
    stride: usize,
    dilation: usize,
    pad_begin: usize,
    pad_end: usize,
}

impl Axis {
    fn new(win: &Window, axis: usize, len: usize) -> Axis {
        Axis {
            len,
            kernel: win.kernel[axis] as usize,
            stride: win.strides[axis] as usize,
            dilation: win.dilations[axis] as usize,
            pad_begin: win.pads[axis] as usize,
            pad_end: win.pads[axis + 2] as usize,
        }
    }

    /// Input indices of the in-bounds taps of window `o`, and the number of taps inside
    /// the padded extent `[-pad_begin, len + pad_end)`.
    fn taps(&self, o: usize) -> (Vec<usize>, usize) {
        let start = (o * self.stride) as i64 - self.pad_begin as i64;
        let end =
            (start + (self.kernel * self.dilation) as i64).min((self.len + self.pad_end) as i64);
        let d = self.dilation as i64;
        let padded = if end > start {
            (1 + (end - start - 1) / d) as usize
        } else {
            0
        };
        let (first, count) =
            crate::scalar::taps_inside(start, self.kernel as i64, d, self.len as i64);
        let inside = (first..first + count)
            .map(|t| (start + t * d) as usize)
            .collect();
        (inside, padded)
    }
}

fn pool<T, R>(
    x: &[T],
    shape: &[usize],
    win: &Window,
    out: &[usize],
    f: impl Fn(&[T], &[usize], &[usize], usize) -> R,
) -> Vec<R> {
    let (h, w, oh, ow) = (shape[2], shape[3], out[2], out[3]);
    let ay = Axis::new(win, 0, h);
    let ax = Axis::new(win, 1, w);
    let rows: Vec<_> = (0..oh).map(|o| ay.taps(o)).collect();
    let cols: Vec<_> = (0..ow).map(|o| ax.taps(o)).collect();
    let planes = shape[0] * shape[1];
    let mut y = Vec::with_capacity(planes * oh * ow);
    for p in 0..planes {
        let xp = &x[p * h * w..(p + 1) * h * w];
        for (ys, yn) in &rows {
            for (xs, xn) in &cols {
                y.push(f(xp, ys, xs, yn * xn));
            }
        }
    }
    y
}

/// ONNX MaxPool; `empty` is the result of a window without input taps.
pub(crate) fn max_pool<T: Copy + PartialOrd>(
    x: &[T],
    shape: &[usize],
    win: &Window,
    out: &[usize],
    empty: T,
) -> Vec<T> {
    let w = shape[3];
    pool(x, shape, win, out, |xp, ys, xs, _| {
        let mut taps = ys
            .iter()
            .flat_map(|&iy| xs.iter().map(move |&ix| xp[iy * w + ix]));
        match taps.next() {
            Some(first) => taps.fold(first, |m, v| if v > m { v } else { m }),
            None => empty,
        }
    })
}

/// ONNX AveragePool.
pub(crate) fn avg_pool(
    x: &[f32],
    shape: &[usize],
    win: &Window,
    count_include_pad: bool,
    out: &[usize],
) -> Vec<f32> {
    let w = shape[3];
    pool(x, shape, win, out, |xp, ys, xs, padded| {
        let count = ys.len() * xs.len();
        if count == 0 {
            return 0.0;
        }
        let mut s = 0.0f32;
        for &iy in ys {
            for &ix in xs {
                s += xp[iy * w + ix];
            }
        }
        s / if count_include_pad { padded } else { count } as f32
    })
}

/// ONNX GlobalAveragePool: `[N,C,H,W] -> [N,C,1,1]`.
pub(crate) fn global_avg(x: &[f32], shape: &[usize]) -> Vec<f32> {
    let plane = shape[2] * shape[3];
    let planes = shape[0] * shape[1];
    if plane == 0 {
        return vec![f32::NAN; planes];
    }
    x.chunks(plane)
        .map(|p| p.iter().sum::<f32>() / plane as f32)
        .collect()
}

/// ONNX GlobalMaxPool: `[N,C,H,W] -> [N,C,1,1]`; an empty plane gives `empty`.
pub(crate) fn global_max<T: Copy + PartialOrd>(x: &[T], shape: &[usize], empty: T) -> Vec<T> {
    let plane = shape[2] * shape[3];
    let planes = shape[0] * shape[1];
    if plane == 0 {
        return vec![empty; planes];
    }
    x.chunks(plane)
        .map(|p| p[1..].iter().fold(p[0], |m, &v| if v > m { v } else { m }))
        .collect()
}

/// Integer window sums (pads contribute 0) of `x` `[N,C,H,W]` into `out`; `Err(i)` names
/// the first output element whose sum does not fit i32.
pub(crate) fn sum_pool(
    x: &[i32],
    shape: &[usize],
    win: &Window,
    out: &[usize],
) -> Result<Vec<i32>, usize> {
    let w = shape[3];
    let sums = pool(x, shape, win, out, |xp, ys, xs, _| {
        let mut s = 0i64;
        for &iy in ys {
            for &ix in xs {
                s += i64::from(xp[iy * w + ix]);
            }
        }
        s
    });
    narrow(sums)
}

/// Per-plane integer sums: `[N,C,H,W] -> [N,C,1,1]`; `Err(i)` as for [`sum_pool`].
pub(crate) fn global_sum(x: &[i32], shape: &[usize]) -> Result<Vec<i32>, usize> {
    let plane = shape[2] * shape[3];
    let planes = shape[0] * shape[1];
    if plane == 0 {
        return Ok(vec![0; planes]);
    }
    narrow(
        x.chunks(plane)
            .map(|p| p.iter().map(|&v| i64::from(v)).sum())
            .collect(),
    )
}

/// The sums as i32, or the index of the first that does not fit.
fn narrow(sums: Vec<i64>) -> Result<Vec<i32>, usize> {
    sums.iter()
        .enumerate()
        .map(|(i, &s)| i32::try_from(s).map_err(|_| i))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `scalar::avg_pool_divisors` is the divisor `avg_pool` uses: pooling a plane of
    /// ones gives `1` where a window has taps, so `sum / divisor` recovers the divisor
    /// from a plane of ones and a plane counting taps.
    #[test]
    fn divisors_agree_with_avg_pool() {
        for (k, s, p, ceil, incl) in [
            (3, 1, 1, false, false),
            (3, 2, 1, true, true),
            (3, 2, 1, true, false),
            (2, 2, 0, true, true),
            (5, 3, 2, true, false),
            (4, 1, 3, false, true),
        ] {
            let win = Window {
                kernel: [k, k],
                strides: [s, s],
                pads: [p, p, p, p],
                dilations: [1, 1],
                ceil_mode: ceil,
            };
            let (h, w) = (7usize, 6usize);
            let (oh, ow) = (
                win.output_extent(0, h as u64).unwrap() as usize,
                win.output_extent(1, w as u64).unwrap() as usize,
            );
            let ones = vec![1.0f32; h * w];
            let shape = [1, 1, h, w];
            let out = [1, 1, oh, ow];
            let means = avg_pool(&ones, &shape, &win, incl, &out);
            let sums = sum_pool(&vec![1; h * w], &shape, &win, &out).unwrap();
            let d = crate::scalar::avg_pool_divisors(&win, incl, (h, w), (oh, ow));
            for i in 0..oh * ow {
                if d[i] == 0 {
                    assert_eq!(sums[i], 0);
                } else {
                    assert_eq!(means[i], sums[i] as f32 / d[i] as f32, "{win:?} {i}");
                }
            }
        }
    }
}
