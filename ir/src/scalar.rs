//! The f32 semantics of the element-wise ops and of the quantizer, one scalar at a time.
//!
//! This is the single definition of what `relu`, `clip`, `prelu`, the binary ops, n-ary
//! `sum`, the [`UnaryOp`] family and `quantize` compute on one element. The
//! interpreter's kernels call these functions in their inner loops, and `integerize`
//! evaluates a function of one quantized tensor at every input level with them to build
//! its `table`: because both use the same f32 operations in the same order, a table is
//! bit-for-bit what the fake-quant interpreter computes for that level — not an
//! approximation of it.
//!
//! [`avg_pool_divisors`] likewise gives, per output position, the divisor the
//! interpreter's average pooling uses, so a pool whose divisor varies by position can
//! be rewritten to integer sums and exact per-position factors.

use crate::op::{BinaryOp, Op, UnaryOp, Window};

/// `clamp(round_half_even((x - offset) / scale), qmin, qmax)` with the subtraction and
/// division in f32; NaN quantizes to 0 (real zero). The `quantize` op, per element.
#[inline]
pub fn quantize_level(x: f32, scale: f32, offset: f32, qmin: i64, qmax: i64) -> i64 {
    let r = ((x - offset) / scale).round_ties_even();
    if r.is_nan() {
        0
    } else {
        r.max(qmin as f32).min(qmax as f32) as i64
    }
}

/// `max(x, 0)`; NaN propagates (as `x < 0` is false for NaN).
#[inline]
pub fn relu(x: f32) -> f32 {
    if x < 0.0 {
        0.0
    } else {
        x
    }
}

/// `min(max(x, lo), hi)`; NaN propagates.
#[inline]
pub fn clip(x: f32, lo: f32, hi: f32) -> f32 {
    let mut v = x;
    if v < lo {
        v = lo;
    }
    if v > hi {
        v = hi;
    }
    v
}

/// ONNX PRelu: `x < 0 ? slope·x : x`.
#[inline]
pub fn prelu(x: f32, slope: f32) -> f32 {
    if x < 0.0 {
        slope * x
    } else {
        x
    }
}

/// Whether `op` is element-wise on operands of one shape (constants broadcast): the
/// ops [`elementwise`] evaluates.
pub fn is_elementwise(op: &Op) -> bool {
    matches!(
        op,
        Op::Unary(_) | Op::Relu | Op::Clip { .. } | Op::PRelu | Op::Binary(_) | Op::Sum
    )
}

/// One element of an element-wise op from one element of each operand (operands in
/// the op's order); None for any other op or a wrong operand count.
pub fn elementwise(op: &Op, args: &[f32]) -> Option<f32> {
    match (op, args) {
        (Op::Unary(u), &[x]) => Some(unary(*u, x)),
        (Op::Relu, &[x]) => Some(relu(x)),
        (Op::Clip { min, max }, &[x]) => Some(clip(x, min.get(), max.get())),
        (Op::PRelu, &[x, s]) => Some(prelu(x, s)),
        (Op::Binary(b), &[x, y]) => Some(binary(*b, x, y)),
        // Accumulated left to right, as the interpreter (and ONNX Runtime) does.
        (Op::Sum, [first, rest @ ..]) => Some(rest.iter().fold(*first, |acc, &v| acc + v)),
        _ => None,
    }
}

/// A binary op on one pair of elements.
#[inline]
pub fn binary(op: BinaryOp, x: f32, y: f32) -> f32 {
    op.apply(x, y)
}

/// A [`UnaryOp`] on one element.
#[inline]
pub fn unary(op: UnaryOp, x: f32) -> f32 {
    op.apply(x)
}

/// The taps `t` in `0..kernel` of a window starting at `start` with dilation `d` (> 0)
/// whose input index `start + t·d` lies in `0..len`: `(first t, count)`. Computed in
/// O(1), so a window as wide as a hostile file makes it costs nothing to bound.
pub fn taps_inside(start: i64, kernel: i64, d: i64, len: i64) -> (i64, i64) {
    // First t with start + t·d >= 0, last t with start + t·d <= len - 1.
    let first = if start >= 0 { 0 } else { (-start + d - 1) / d };
    let last = if len - 1 - start < 0 {
        -1
    } else {
        ((len - 1 - start) / d).min(kernel - 1)
    };
    (first, (last - first + 1).max(0))
}

/// The divisor of every output position (row-major `oh × ow`) of an average pool with
/// `window` over an `h × w` input: the number of taps inside the input
/// (`count_include_pad = false`) or inside the padded input (`true`), as the
/// interpreter's `avgpool` divides; 0 for a window without input taps (whose result is
/// 0).
pub fn avg_pool_divisors(
    window: &Window,
    count_include_pad: bool,
    (h, w): (usize, usize),
    (oh, ow): (usize, usize),
) -> Vec<u64> {
    let axis = |a: usize, len: usize, out: usize| -> Vec<(u64, u64)> {
        let (k, s, d) = (
            window.kernel[a] as i64,
            window.strides[a] as i64,
            window.dilations[a] as i64,
        );
        let (pb, pe) = (window.pads[a] as i64, window.pads[a + 2] as i64);
        (0..out as i64)
            .map(|o| {
                let start = o * s - pb;
                let end = (start + k * d).min(len as i64 + pe);
                let padded = if end > start {
                    1 + (end - start - 1) / d
                } else {
                    0
                };
                let (_, inside) = taps_inside(start, k, d, len as i64);
                (inside as u64, padded as u64)
            })
            .collect()
    };
    let rows = axis(0, h, oh);
    let cols = axis(1, w, ow);
    let mut out = Vec::with_capacity(oh * ow);
    for &(ri, rp) in &rows {
        for &(ci, cp) in &cols {
            let inside = ri * ci;
            out.push(match (inside, count_include_pad) {
                (0, _) => 0,
                (_, true) => rp * cp,
                (_, false) => inside,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantize_level_rounds_half_to_even_and_clamps() {
        assert_eq!(quantize_level(2.5, 1.0, 0.0, -8, 7), 2);
        assert_eq!(quantize_level(3.5, 1.0, 0.0, -8, 7), 4);
        assert_eq!(quantize_level(100.0, 1.0, 0.0, -8, 7), 7);
        assert_eq!(quantize_level(f32::NAN, 1.0, 0.0, 0, 15), 0);
    }

    #[test]
    fn taps_inside_matches_counting() {
        for start in -9..9 {
            for kernel in 0..7 {
                for d in 1..4 {
                    for len in 0..6 {
                        let want: Vec<i64> = (0..kernel)
                            .filter(|t| (0..len).contains(&(start + t * d)))
                            .collect();
                        let (first, count) = taps_inside(start, kernel, d, len);
                        let got: Vec<i64> = (first..first + count).collect();
                        assert_eq!(got, want, "{start} {kernel} {d} {len}");
                    }
                }
            }
        }
    }

    #[test]
    fn exclude_pad_divisors_count_the_taps_inside() {
        let w = Window {
            kernel: [3, 3],
            strides: [1, 1],
            dilations: [1, 1],
            pads: [1, 1, 1, 1],
            ceil_mode: false,
        };
        let d = avg_pool_divisors(&w, false, (3, 3), (3, 3));
        assert_eq!(d, vec![4, 6, 4, 6, 9, 6, 4, 6, 4]);
        let d = avg_pool_divisors(&w, true, (3, 3), (3, 3));
        assert_eq!(d, vec![9; 9]);
    }
}
