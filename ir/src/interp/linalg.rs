//! Gemm and MatMul on top of the checked sgemm wrapper.
//!
//! * **Gemm** (ONNX): `Y = alpha · A' · B' + beta · C` with `A' = transA ? Aᵀ : A`
//!   (likewise B'), and C unidirectionally broadcast to `[M, N]`. Transposes are strides,
//!   never copies. As in ONNX Runtime, C is ignored when `beta == 0` (so a NaN in C does
//!   not leak through `0 · NaN`).
//! * **MatMul** (NumPy): a 1-D left operand is a row `[1, K]`, a 1-D right operand a
//!   column `[K, 1]` (the promoted axis is dropped from the result); leading batch axes
//!   broadcast, and each batch item is one `[M,K]·[K,N]` sgemm on the broadcast operands.

use super::elementwise::{broadcast_strides, expand, for_each_run};
use super::sgemm::{sgemm, Mat};

/// ONNX Gemm; `out` is `[M, N]`.
pub(crate) fn gemm(
    (a, a_shape): (&[f32], &[usize]),
    (b, b_shape): (&[f32], &[usize]),
    c: Option<(&[f32], &[usize])>,
    (alpha, beta): (f32, f32),
    (trans_a, trans_b): (bool, bool),
    out: &[usize],
) -> Vec<f32> {
    let (m, n) = (out[0], out[1]);
    let k = if trans_a { a_shape[0] } else { a_shape[1] };
    let la = if trans_a {
        Mat {
            offset: 0,
            rs: 1,
            cs: a_shape[1],
        }
    } else {
        Mat::rows(0, a_shape[1])
    };
    let lb = if trans_b {
        Mat {
            offset: 0,
            rs: 1,
            cs: b_shape[1],
        }
    } else {
        Mat::rows(0, b_shape[1])
    };
    let (mut y, beta) = match c {
        Some((c, c_shape)) if beta != 0.0 => (expand(c, c_shape, out), beta),
        _ => (vec![0.0; m * n], 0.0),
    };
    sgemm(
        (m, k, n),
        alpha,
        a,
        la,
        b,
        lb,
        beta,
        &mut y,
        Mat::rows(0, n),
    );
    y
}

/// NumPy matmul; `out` is the inferred result shape.
pub(crate) fn matmul(
    (a, a_shape): (&[f32], &[usize]),
    (b, b_shape): (&[f32], &[usize]),
    out: &[usize],
) -> Vec<f32> {
    let a2: Vec<usize> = if a_shape.len() == 1 {
        vec![1, a_shape[0]]
    } else {
        a_shape.to_vec()
    };
    let b2: Vec<usize> = if b_shape.len() == 1 {
        vec![b_shape[0], 1]
    } else {
        b_shape.to_vec()
    };
    let (ar, br) = (a2.len(), b2.len());
    let (m, k, n) = (a2[ar - 2], a2[ar - 1], b2[br - 1]);
    let (batch_a, batch_b) = (&a2[..ar - 2], &b2[..br - 2]);
    let rank = batch_a.len().max(batch_b.len());
    let dim = |s: &[usize], i: usize| {
        if i + s.len() >= rank {
            s[i + s.len() - rank]
        } else {
            1
        }
    };
    let batch: Vec<usize> = (0..rank)
        .map(|i| match (dim(batch_a, i), dim(batch_b, i)) {
            (1, d) => d,
            (d, _) => d,
        })
        .collect();
    let sa = broadcast_strides(batch_a, &batch);
    let sb = broadcast_strides(batch_b, &batch);
    let mut y = vec![0.0f32; out.iter().product()];
    for_each_run(&batch, &sa, &sb, |o, pa, pb, len, ia, ib| {
        for t in 0..len {
            sgemm(
                (m, k, n),
                1.0,
                a,
                Mat::rows((pa + t * ia) * m * k, k),
                b,
                Mat::rows((pb + t * ib) * k * n, n),
                0.0,
                &mut y,
                Mat::rows((o + t) * m * n, n),
            );
        }
    });
    y
}
