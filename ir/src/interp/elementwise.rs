//! Element-wise kernels: NumPy broadcasting, the binary arithmetic ops, n-ary Sum,
//! ReLU, Clip, inference BatchNorm, Softmax and LRN (all f32, ONNX semantics).
//!
//! Broadcasting aligns shapes on the right; an operand dimension of 1 (or a missing
//! leading one) is read with stride 0. Runs of dimensions that are contiguous in the
//! output *and* in both operands are coalesced, so the inner loop is as long as
//! possible (e.g. `[N,C,H,W] + [1,C,1,1]` runs over `H*W` with a constant second
//! operand). Results are computed in the order ONNX defines them, one f32 rounding per
//! arithmetic op, so they agree with ONNX Runtime to an ulp or two.

use crate::op::BinaryOp;

/// Strides of an operand of shape `shape` read as broadcast to `out` (right-aligned; 0
/// where the operand's extent is 1 or the dimension is missing).
pub(crate) fn broadcast_strides(shape: &[usize], out: &[usize]) -> Vec<usize> {
    let off = out.len() - shape.len();
    let mut strides = vec![0; out.len()];
    let mut acc = 1;
    for i in (0..shape.len()).rev() {
        strides[off + i] = if shape[i] == 1 { 0 } else { acc };
        acc *= shape[i];
    }
    strides
}

/// Calls `f(out_offset, a_offset, b_offset, len, a_step, b_step)` once per inner run of
/// the output (row-major order), for two operands read with strides `sa` and `sb`.
pub(crate) fn for_each_run(
    out: &[usize],
    sa: &[usize],
    sb: &[usize],
    mut f: impl FnMut(usize, usize, usize, usize, usize, usize),
) {
    let total: usize = out.iter().product();
    if total == 0 {
        return;
    }
    // (extent, a stride, b stride), extents of 1 dropped, mergeable neighbours merged.
    let mut dims: Vec<(usize, usize, usize)> = Vec::with_capacity(out.len());
    for i in 0..out.len() {
        if out[i] == 1 {
            continue;
        }
        match dims.last_mut() {
            Some(last) if last.1 == sa[i] * out[i] && last.2 == sb[i] * out[i] => {
                *last = (last.0 * out[i], sa[i], sb[i]);
            }
            _ => dims.push((out[i], sa[i], sb[i])),
        }
    }
    let (len, ia, ib) = dims.pop().unwrap_or((1, 0, 0));
    let mut idx = vec![0usize; dims.len()];
    let (mut oa, mut ob) = (0, 0);
    for o in 0..total / len {
        f(o * len, oa, ob, len, ia, ib);
        for d in (0..dims.len()).rev() {
            idx[d] += 1;
            oa += dims[d].1;
            ob += dims[d].2;
            if idx[d] < dims[d].0 {
                break;
            }
            oa -= dims[d].1 * dims[d].0;
            ob -= dims[d].2 * dims[d].0;
            idx[d] = 0;
        }
    }
}

/// `out = f(a, b)` element-wise with broadcasting; `out` is contiguous of shape `shape`.
fn zip_into(
    out: &mut [f32],
    shape: &[usize],
    (a, a_shape): (&[f32], &[usize]),
    (b, b_shape): (&[f32], &[usize]),
    f: impl Fn(f32, f32) -> f32 + Copy,
) {
    let sa = broadcast_strides(a_shape, shape);
    let sb = broadcast_strides(b_shape, shape);
    for_each_run(shape, &sa, &sb, |o, pa, pb, len, ia, ib| {
        let dst = &mut out[o..o + len];
        match (ia, ib) {
            (1, 1) => {
                let (a, b) = (&a[pa..pa + len], &b[pb..pb + len]);
                for ((d, &x), &y) in dst.iter_mut().zip(a).zip(b) {
                    *d = f(x, y);
                }
            }
            (1, 0) => {
                let y = b[pb];
                for (d, &x) in dst.iter_mut().zip(&a[pa..pa + len]) {
                    *d = f(x, y);
                }
            }
            (0, 1) => {
                let x = a[pa];
                for (d, &y) in dst.iter_mut().zip(&b[pb..pb + len]) {
                    *d = f(x, y);
                }
            }
            _ => {
                for (k, d) in dst.iter_mut().enumerate() {
                    *d = f(a[pa + k * ia], b[pb + k * ib]);
                }
            }
        }
    });
}

/// `data` (of shape `shape`) broadcast to `out`.
pub(crate) fn expand(data: &[f32], shape: &[usize], out: &[usize]) -> Vec<f32> {
    let mut y = vec![0.0; out.iter().product()];
    zip_into(&mut y, out, (data, shape), (data, shape), |x, _| x);
    y
}

/// A binary op (`BinaryOp::apply`) with NumPy broadcasting to `out`.
pub(crate) fn binary(
    op: BinaryOp,
    a: (&[f32], &[usize]),
    b: (&[f32], &[usize]),
    out: &[usize],
) -> Vec<f32> {
    let mut y = vec![0.0; out.iter().product()];
    match op {
        BinaryOp::Add => zip_into(&mut y, out, a, b, |x, y| x + y),
        BinaryOp::Sub => zip_into(&mut y, out, a, b, |x, y| x - y),
        BinaryOp::Mul => zip_into(&mut y, out, a, b, |x, y| x * y),
        BinaryOp::Div => zip_into(&mut y, out, a, b, |x, y| x / y),
        op => zip_into(&mut y, out, a, b, |x, y| crate::scalar::binary(op, x, y)),
    }
    y
}

/// An element-wise function, in place.
pub(crate) fn unary(op: crate::op::UnaryOp, mut x: Vec<f32>) -> Vec<f32> {
    for v in &mut x {
        *v = crate::scalar::unary(op, *v);
    }
    x
}

/// ONNX PRelu: `x < 0 ? slope·x : x`, the slope broadcast to `x`'s shape `out`.
pub(crate) fn prelu(x: &[f32], slope: (&[f32], &[usize]), out: &[usize]) -> Vec<f32> {
    let mut y = vec![0.0; out.iter().product()];
    zip_into(&mut y, out, (x, out), slope, crate::scalar::prelu);
    y
}

/// n-ary Sum, accumulated left to right (`((x0 + x1) + x2) + …`) as ONNX Runtime does.
pub(crate) fn sum(operands: &[(&[f32], &[usize])], out: &[usize]) -> Vec<f32> {
    let (d0, s0) = operands[0];
    let mut y = expand(d0, s0, out);
    for &(d, s) in &operands[1..] {
        let acc = std::mem::take(&mut y);
        y = vec![0.0; acc.len()];
        zip_into(&mut y, out, (&acc, out), (d, s), |x, v| x + v);
    }
    y
}

/// `max(x, 0)`; NaN propagates (as `x < 0` is false for NaN).
pub(crate) fn relu(mut x: Vec<f32>) -> Vec<f32> {
    for v in &mut x {
        *v = crate::scalar::relu(*v);
    }
    x
}

/// `min(max(x, lo), hi)`; NaN propagates.
pub(crate) fn clip(mut x: Vec<f32>, lo: f32, hi: f32) -> Vec<f32> {
    for v in &mut x {
        *v = crate::scalar::clip(*v, lo, hi);
    }
    x
}

/// Inference BatchNorm over axis 1 of a rank-≥2 tensor of shape `shape`:
/// `y = (x - mean) / sqrt(var + eps) * scale + bias`, evaluated in ONNX Runtime's fused
/// form `x * s + (bias - mean * s)` with `s = scale / sqrt(var + eps)`.
pub(crate) fn batchnorm(mut x: Vec<f32>, shape: &[usize], p: [&[f32]; 4], eps: f32) -> Vec<f32> {
    let [scale, bias, mean, var] = p;
    let c = shape[1];
    let inner: usize = shape[2..].iter().product();
    let s: Vec<f32> = (0..c).map(|i| scale[i] / (var[i] + eps).sqrt()).collect();
    let t: Vec<f32> = (0..c).map(|i| bias[i] - mean[i] * s[i]).collect();
    if inner == 0 {
        return x;
    }
    for (k, block) in x.chunks_mut(inner).enumerate() {
        let (s, t) = (s[k % c], t[k % c]);
        for v in block {
            *v = *v * s + t;
        }
    }
    x
}

/// Softmax along `axis`: `exp(x - max) / Σ exp(x - max)` over that axis, in f32.
pub(crate) fn softmax(x: &[f32], shape: &[usize], axis: usize) -> Vec<f32> {
    let n = shape[axis];
    let inner: usize = shape[axis + 1..].iter().product();
    let mut y = vec![0.0; x.len()];
    if n == 0 || inner == 0 {
        return y;
    }
    for (xb, yb) in x.chunks(n * inner).zip(y.chunks_mut(n * inner)) {
        for j in 0..inner {
            let max = (0..n)
                .map(|k| xb[k * inner + j])
                .fold(f32::NEG_INFINITY, f32::max);
            let mut total = 0.0f32;
            for k in 0..n {
                let e = (xb[k * inner + j] - max).exp();
                yb[k * inner + j] = e;
                total += e;
            }
            for k in 0..n {
                yb[k * inner + j] /= total;
            }
        }
    }
    y
}

/// Local response normalisation across channels of an NCHW tensor:
/// `y[c] = x[c] / (bias + alpha/size · Σ_{c'} x[c']²)^beta` with `c'` ranging over
/// `[c - floor((size-1)/2), c + ceil((size-1)/2)]` clipped to the channels.
pub(crate) fn lrn(
    x: &[f32],
    shape: &[usize],
    size: usize,
    (alpha, beta, bias): (f32, f32, f32),
) -> Vec<f32> {
    let (n, c) = (shape[0], shape[1]);
    let plane: usize = shape[2..].iter().product();
    let (below, above) = ((size - 1) / 2, size / 2);
    let scale = alpha / size as f32;
    let mut y = vec![0.0; x.len()];
    let mut sq = vec![0.0f32; plane];
    for b in 0..n {
        let xb = &x[b * c * plane..(b + 1) * c * plane];
        let yb = &mut y[b * c * plane..(b + 1) * c * plane];
        for ch in 0..c {
            sq.iter_mut().for_each(|s| *s = 0.0);
            for src in ch.saturating_sub(below)..(ch + above + 1).min(c) {
                for (s, &v) in sq.iter_mut().zip(&xb[src * plane..(src + 1) * plane]) {
                    *s += v * v;
                }
            }
            let xs = &xb[ch * plane..(ch + 1) * plane];
            for ((d, &v), &s) in yb[ch * plane..(ch + 1) * plane].iter_mut().zip(xs).zip(&sq) {
                *d = v / (bias + scale * s).powf(beta);
            }
        }
    }
    y
}
