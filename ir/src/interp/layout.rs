//! Data-movement ops: Reshape, Flatten, Concat, Transpose.
//!
//! Reshape and Flatten never move data: a row-major buffer read with a new shape of the
//! same element count is exactly ONNX's definition, so the driver just relabels the
//! buffer (in place when the operand dies there). Concat copies, for every index of the
//! axes before `axis`, each operand's contiguous `extent·inner` block in operand order.
//! Transpose writes `y[i_0..i_r] = x[i_{perm⁻¹}]`, i.e. output axis `j` walks input
//! axis `perm[j]`, iterating the output in row-major order. All are generic over the
//! element type, so integer tensors move exactly like floats.

/// ONNX Concat along `axis`; `out` is the result shape.
pub(crate) fn concat<T: Copy>(operands: &[(&[T], &[usize])], axis: usize, out: &[usize]) -> Vec<T> {
    let outer: usize = out[..axis].iter().product();
    let inner: usize = out[axis + 1..].iter().product();
    let mut y = Vec::with_capacity(out.iter().product());
    for o in 0..outer {
        for &(data, shape) in operands {
            let block = shape[axis] * inner;
            y.extend_from_slice(&data[o * block..(o + 1) * block]);
        }
    }
    y
}

/// ONNX Transpose: output axis `j` is input axis `perm[j]`.
pub(crate) fn transpose<T: Copy>(x: &[T], shape: &[usize], perm: &[usize]) -> Vec<T> {
    let r = shape.len();
    let mut in_strides = vec![1usize; r];
    for i in (0..r.saturating_sub(1)).rev() {
        in_strides[i] = in_strides[i + 1] * shape[i + 1];
    }
    let out: Vec<usize> = perm.iter().map(|&p| shape[p]).collect();
    let strides: Vec<usize> = perm.iter().map(|&p| in_strides[p]).collect();
    let total: usize = out.iter().product();
    let mut y = Vec::with_capacity(total);
    if total == 0 {
        return y;
    }
    if r == 0 {
        y.push(x[0]);
        return y;
    }
    let (len, step) = (out[r - 1], strides[r - 1]);
    let mut idx = vec![0usize; r - 1];
    let mut off = 0usize;
    for _ in 0..total / len {
        y.extend((0..len).map(|t| x[off + t * step]));
        for d in (0..r - 1).rev() {
            idx[d] += 1;
            off += strides[d];
            if idx[d] < out[d] {
                break;
            }
            off -= strides[d] * out[d];
            idx[d] = 0;
        }
    }
    y
}
