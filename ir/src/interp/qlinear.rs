//! Integer convolution (`qconv`) and matrix product (`qgemm`): exact i32 accumulators,
//! computed with the f32 sgemm kernel on integer-valued floats.
//!
//! **Semantics.** `acc = bias + Σ x·w` over the same taps as [`conv`](super::conv) (pads
//! contribute 0), resp. over `K` for `qgemm`, as the *mathematically exact* integer sum;
//! if it does not fit i32 the node fails with an error naming the element, it never
//! wraps.
//!
//! **Why f32 arithmetic is exact here.** Every integer of magnitude ≤ 2^24 is an f32, so
//! an f32 product or sum whose exact result is such an integer is computed without
//! rounding (also inside a fused multiply-add). The reduction axis `K` is cut into
//! chunks of `kc` terms with `kc · max|x| · max|w| ≤ 2^24` (the maxima measured on the
//! actual operands). Whatever order and blocking the sgemm kernel uses, each of its
//! intermediates is a sum of a subset of one chunk's products, so its magnitude is at
//! most `kc · max|x| · max|w| ≤ 2^24`: every operation is exact, and each chunk's result
//! is its exact integer sum. Chunk results are added in i64 (|chunk| ≤ 2^24 and at most
//! 2^31 chunks: no i64 overflow), the bias is added in i64, and the total is narrowed to
//! i32 with a check. For ternary weights and 8-bit inputs `kc ≥ 65793`, so a layer is
//! one sgemm per output tile; 8×8-bit products give `kc = 516`.
//!
//! Convolution uses the float path's im2col (row tiles of bounded scratch) on the
//! operand converted to f32 (exact: 8-bit values); a 1×1 stride-1 unpadded convolution
//! reads the input planes directly.

use super::conv::{im2col, Geom, SCRATCH};
use super::elementwise::broadcast_strides;
use super::sgemm::{sgemm, Mat};
use crate::op::Window;

/// Largest magnitude any intermediate of an exact f32 dot product may reach.
const EXACT: u64 = 1 << 24;

/// A low-bit operand as f32 (exact) with its largest magnitude.
pub(super) struct Operand {
    pub data: Vec<f32>,
    pub max_abs: u64,
}

impl Operand {
    pub(super) fn new(v: Vec<i32>) -> Operand {
        let max_abs = v.iter().map(|&x| u64::from(x.unsigned_abs())).max();
        Operand {
            data: v.iter().map(|&x| x as f32).collect(),
            max_abs: max_abs.unwrap_or(0),
        }
    }
}

/// The chunk length along `K` for which every partial sum stays within [`EXACT`].
/// `None` when an operand is so wide that even one product may not be exact.
fn chunk_len(k: usize, x: &Operand, w: &Operand) -> Option<usize> {
    let per = x.max_abs.checked_mul(w.max_abs)?;
    if per == 0 {
        return Some(k.max(1));
    }
    let kc = EXACT / per;
    (kc >= 1).then(|| usize::try_from(kc).unwrap_or(usize::MAX).min(k.max(1)))
}

/// `acc[i, j] += Σ_{k} A[i, k] B[k, j]` over `K` chunks of `kc`, exactly, for `A` `m×k`
/// and `B` `k×n` placed by `la`, `lb`; `tile` and `acc` hold at least `m·n` elements.
#[allow(clippy::too_many_arguments)]
fn exact_gemm(
    (m, k, n): (usize, usize, usize),
    kc: usize,
    a: &[f32],
    la: Mat,
    b: &[f32],
    lb: Mat,
    tile: &mut [f32],
    acc: &mut [i64],
) {
    acc[..m * n].iter_mut().for_each(|v| *v = 0);
    let mut k0 = 0;
    while k0 < k {
        let kl = kc.min(k - k0);
        let la = Mat {
            offset: la.offset + k0 * la.cs,
            ..la
        };
        let lb = Mat {
            offset: lb.offset + k0 * lb.rs,
            ..lb
        };
        sgemm((m, kl, n), 1.0, a, la, b, lb, 0.0, tile, Mat::rows(0, n));
        for (s, &t) in acc[..m * n].iter_mut().zip(&tile[..m * n]) {
            // `t` is an exact integer of magnitude ≤ 2^24 (module docs).
            *s += t as i64;
        }
        k0 += kl;
    }
}

/// Narrows `acc + bias` to i32, or returns the message for the first overflow.
fn narrow(acc: i64, bias: i64, what: impl FnOnce() -> String) -> Result<i32, String> {
    let v = acc + bias;
    i32::try_from(v).map_err(|_| format!("accumulator {} ({v}) overflows i32", what()))
}

/// Integer convolution of `x` `[N,C,H,W]` with `w` `[M,C/G,kh,kw]` into `out`
/// `[N,M,OH,OW]`, plus the optional i32 bias `[M]`.
pub(super) fn qconv(
    (x, xs): (&Operand, &[usize]),
    (w, ws): (&Operand, &[usize]),
    bias: Option<&[i32]>,
    win: &Window,
    group: usize,
    out: &[usize],
) -> Result<Vec<i32>, String> {
    let (n, m) = (xs[0], ws[0]);
    let geo = Geom::new(xs, ws, win, out);
    let mg = m / group.max(1);
    let plane = geo.oh * geo.ow;
    let in_plane = geo.h * geo.w;
    let k = geo.c * geo.kh * geo.kw;
    let mut y = vec![0i32; n * m * plane];
    if plane == 0 || mg == 0 {
        return Ok(y);
    }
    let kc = chunk_len(k, x, w).ok_or("operands too wide for exact accumulation")?;
    let pointwise = geo.pointwise(win);
    let rows_per_tile = (SCRATCH / (k * geo.ow).max(1)).clamp(1, geo.oh);
    let tile_cols = rows_per_tile * geo.ow;
    let mut scratch = if pointwise {
        Vec::new()
    } else {
        vec![0.0f32; k * tile_cols]
    };
    let mut tile = vec![0.0f32; mg * tile_cols];
    let mut acc = vec![0i64; mg * tile_cols];
    for b in 0..n {
        for gi in 0..group {
            let x_off = (b * group + gi) * geo.c * in_plane;
            let xg = &x.data[x_off..x_off + geo.c * in_plane];
            let wg = &w.data[gi * mg * k..(gi + 1) * mg * k];
            let mut oy0 = 0;
            while oy0 < geo.oh {
                let rows = rows_per_tile.min(geo.oh - oy0);
                let cols = rows * geo.ow;
                let (src, lb) = if pointwise {
                    (xg, Mat::rows(oy0 * geo.ow, in_plane))
                } else {
                    im2col(xg, &mut scratch[..k * cols], oy0, rows, &geo);
                    (&scratch[..k * cols], Mat::rows(0, cols))
                };
                let la = Mat::rows(0, k);
                exact_gemm((mg, k, cols), kc, wg, la, src, lb, &mut tile, &mut acc);
                for mi in 0..mg {
                    let oc = gi * mg + mi;
                    let bv = bias.map_or(0, |bs| i64::from(bs[oc]));
                    let base = (b * m + oc) * plane + oy0 * geo.ow;
                    for j in 0..cols {
                        y[base + j] = narrow(acc[mi * cols + j], bv, || {
                            let (oy, ox) = (oy0 + j / geo.ow, j % geo.ow);
                            format!("[{b},{oc},{oy},{ox}]")
                        })?;
                    }
                }
                oy0 += rows;
            }
        }
    }
    Ok(y)
}

/// Integer matrix product `a` `[M,K]` · `b` (`[N,K]` if `trans_b`, else `[K,N]`) plus the
/// optional i32 bias (`[N]`, or any shape unidirectionally broadcast to `[M,N]` as
/// Gemm's C), into `[M,N]`.
pub(super) fn qgemm(
    (a, a_shape): (&Operand, &[usize]),
    (b, b_shape): (&Operand, &[usize]),
    bias: Option<(&[i32], &[usize])>,
    trans_b: bool,
) -> Result<Vec<i32>, String> {
    let (m, k) = (a_shape[0], a_shape[1]);
    let n = if trans_b { b_shape[0] } else { b_shape[1] };
    let mut y = vec![0i32; m * n];
    if m == 0 || n == 0 {
        return Ok(y);
    }
    let kc = chunk_len(k, a, b).ok_or("operands too wide for exact accumulation")?;
    let lb = if trans_b {
        Mat {
            offset: 0,
            rs: 1,
            cs: k,
        }
    } else {
        Mat::rows(0, n)
    };
    let mut tile = vec![0.0f32; m * n];
    let mut acc = vec![0i64; m * n];
    let la = Mat::rows(0, k);
    exact_gemm((m, k, n), kc, &a.data, la, &b.data, lb, &mut tile, &mut acc);
    let bias = bias.map(|(d, s)| (d, broadcast_strides(s, &[m, n])));
    for i in 0..m {
        for j in 0..n {
            let bv = bias
                .as_ref()
                .map_or(0, |(d, s)| i64::from(d[i * s[0] + j * s[1]]));
            y[i * n + j] = narrow(acc[i * n + j], bv, || format!("[{i},{j}]"))?;
        }
    }
    Ok(y)
}
