//! 2-D convolution (ONNX `Conv`, NCHW): groups, strides, dilations, asymmetric pads
//! `[top, left, bottom, right]`, optional bias.
//!
//! `y[n, m, oy, ox] = bias[m] + Σ_{c, ki, kj} w[m, c, ki, kj] ·
//! x[n, g·C/G + c, oy·sh + ki·dh - top, ox·sw + kj·dw - left]`, with out-of-range input
//! positions reading 0 (zero padding) and `g = m / (M/G)` the group of output channel
//! `m`. Three evaluation strategies compute exactly that sum, in f32 like ONNX Runtime:
//!
//! * **1×1, stride 1, no padding**: the input plane of a group *is* the `[C/G, H·W]`
//!   matrix, so `Y_g = W_g · X_g` is one sgemm.
//! * **General**: im2col per group builds `[C/G·kh·kw, rows·OW]` (zeros where the
//!   window is in the padding), and `Y_g[:, tile] = W_g · cols`. Output rows are tiled so
//!   the scratch buffer stays bounded (about 4 MiB) however large the image.
//! * **Depthwise** (one input channel per group): a direct loop, since a gemm with
//!   K = kh·kw would be all overhead.
//!
//! Bias is added after the sum, as ONNX Runtime does.

use super::sgemm::{sgemm, Mat};
use crate::op::Window;

/// Scratch budget of the im2col buffer, in f32 elements.
pub(super) const SCRATCH: usize = 1 << 20;

/// The range `[lo, hi)` of output positions `o` for which the input position
/// `o·stride + offset - pad` lies in `[0, len)`.
pub(crate) fn valid_range(
    out: usize,
    stride: usize,
    offset: usize,
    pad: usize,
    len: usize,
) -> (usize, usize) {
    let lo = if pad > offset {
        (pad - offset).div_ceil(stride)
    } else {
        0
    };
    let hi = if len + pad > offset {
        (len + pad - offset).div_ceil(stride)
    } else {
        0
    };
    let hi = hi.min(out);
    (lo.min(hi), hi)
}

/// Geometry of one convolution, all extents resolved.
#[derive(Clone, Copy, Debug)]
pub(super) struct Geom {
    pub c: usize,
    pub h: usize,
    pub w: usize,
    pub kh: usize,
    pub kw: usize,
    pub oh: usize,
    pub ow: usize,
    pub sh: usize,
    pub sw: usize,
    pub dh: usize,
    pub dw: usize,
    pub top: usize,
    pub left: usize,
}

impl Geom {
    /// From the input shape `xs` `[N,C,H,W]`, weight shape `ws` `[M,C/G,kh,kw]`, the
    /// window and the result shape `out` `[N,M,OH,OW]`.
    pub(super) fn new(xs: &[usize], ws: &[usize], win: &Window, out: &[usize]) -> Geom {
        Geom {
            c: ws[1],
            h: xs[2],
            w: xs[3],
            kh: ws[2],
            kw: ws[3],
            oh: out[2],
            ow: out[3],
            sh: win.strides[0] as usize,
            sw: win.strides[1] as usize,
            dh: win.dilations[0] as usize,
            dw: win.dilations[1] as usize,
            top: win.pads[0] as usize,
            left: win.pads[1] as usize,
        }
    }

    /// Whether the convolution is a plain `[M,C]·[C,H·W]` product (1×1, stride 1, no
    /// padding): then an input plane is already the im2col matrix.
    pub(super) fn pointwise(&self, win: &Window) -> bool {
        self.kh == 1 && self.kw == 1 && self.sh == 1 && self.sw == 1 && win.pads == [0; 4]
    }
}

/// Convolution of `x` `[N,C,H,W]` with `w` `[M,C/G,kh,kw]` into `out` `[N,M,OH,OW]`.
pub(crate) fn conv(
    (x, xs): (&[f32], &[usize]),
    (w, ws): (&[f32], &[usize]),
    bias: Option<&[f32]>,
    win: &Window,
    group: usize,
    out: &[usize],
) -> Vec<f32> {
    let (n, m) = (xs[0], ws[0]);
    let geo = Geom::new(xs, ws, win, out);
    let mg = m / group;
    let plane = geo.oh * geo.ow;
    let in_plane = geo.h * geo.w;
    let k = geo.c * geo.kh * geo.kw;
    let mut y = vec![0.0f32; n * m * plane];
    if plane == 0 || m == 0 {
        return y;
    }
    let pointwise = geo.pointwise(win);
    let rows_per_tile = (SCRATCH / (k * geo.ow).max(1)).clamp(1, geo.oh);
    let mut scratch = if pointwise || geo.c == 1 && group > 1 {
        Vec::new()
    } else {
        vec![0.0f32; k * rows_per_tile * geo.ow]
    };
    for b in 0..n {
        for gi in 0..group {
            let x_off = (b * group + gi) * geo.c * in_plane;
            let xg = &x[x_off..x_off + geo.c * in_plane];
            let wg = &w[gi * mg * k..(gi + 1) * mg * k];
            let y_off = (b * m + gi * mg) * plane;
            let yg = &mut y[y_off..y_off + mg * plane];
            if pointwise {
                // SGEMM: [mg × c] · [c × H·W] (H·W == OH·OW here).
                sgemm(
                    (mg, geo.c, plane),
                    1.0,
                    wg,
                    Mat::rows(0, k),
                    xg,
                    Mat::rows(0, in_plane),
                    0.0,
                    yg,
                    Mat::rows(0, plane),
                );
            } else if geo.c == 1 && group > 1 {
                depthwise(xg, wg, yg, mg, &geo);
            } else {
                let mut oy0 = 0;
                while oy0 < geo.oh {
                    let rows = rows_per_tile.min(geo.oh - oy0);
                    let cols = rows * geo.ow;
                    im2col(xg, &mut scratch[..k * cols], oy0, rows, &geo);
                    sgemm(
                        (mg, k, cols),
                        1.0,
                        wg,
                        Mat::rows(0, k),
                        &scratch,
                        Mat::rows(0, cols),
                        0.0,
                        yg,
                        Mat::rows(oy0 * geo.ow, plane),
                    );
                    oy0 += rows;
                }
            }
        }
    }
    if let Some(bias) = bias {
        for (i, yp) in y.chunks_mut(plane).enumerate() {
            let bv = bias[i % m];
            yp.iter_mut().for_each(|v| *v += bv);
        }
    }
    y
}

/// Fills `cols` (`[c·kh·kw, rows·OW]`) with the input patches of output rows
/// `oy0..oy0+rows` of one group; padding positions are 0.
pub(super) fn im2col(xg: &[f32], cols: &mut [f32], oy0: usize, rows: usize, geo: &Geom) {
    let ncols = rows * geo.ow;
    let in_plane = geo.h * geo.w;
    for (row, dst) in cols.chunks_mut(ncols).enumerate() {
        let kj = row % geo.kw;
        let ki = (row / geo.kw) % geo.kh;
        let ci = row / (geo.kw * geo.kh);
        let src = &xg[ci * in_plane..(ci + 1) * in_plane];
        let (ox_lo, ox_hi) = valid_range(geo.ow, geo.sw, kj * geo.dw, geo.left, geo.w);
        for (r, d) in dst.chunks_mut(geo.ow).enumerate() {
            let iy = (oy0 + r) * geo.sh + ki * geo.dh;
            if iy < geo.top || iy - geo.top >= geo.h || ox_lo == ox_hi {
                d.iter_mut().for_each(|v| *v = 0.0);
                continue;
            }
            let line = &src[(iy - geo.top) * geo.w..(iy - geo.top + 1) * geo.w];
            d[..ox_lo].iter_mut().for_each(|v| *v = 0.0);
            d[ox_hi..].iter_mut().for_each(|v| *v = 0.0);
            // First valid input column; ox_lo·sw + kj·dw >= left by construction.
            let ix0 = ox_lo * geo.sw + kj * geo.dw - geo.left;
            if geo.sw == 1 {
                d[ox_lo..ox_hi].copy_from_slice(&line[ix0..ix0 + (ox_hi - ox_lo)]);
            } else {
                for (t, v) in d[ox_lo..ox_hi].iter_mut().enumerate() {
                    *v = line[ix0 + t * geo.sw];
                }
            }
        }
    }
}

/// Direct convolution for groups with one input channel: every output channel of the
/// group convolves the same input plane with its own `kh×kw` filter.
fn depthwise(xg: &[f32], wg: &[f32], yg: &mut [f32], mg: usize, geo: &Geom) {
    let plane = geo.oh * geo.ow;
    for (mi, yp) in yg.chunks_mut(plane).enumerate().take(mg) {
        for ki in 0..geo.kh {
            let (oy_lo, oy_hi) = valid_range(geo.oh, geo.sh, ki * geo.dh, geo.top, geo.h);
            for kj in 0..geo.kw {
                let wv = wg[(mi * geo.kh + ki) * geo.kw + kj];
                let (ox_lo, ox_hi) = valid_range(geo.ow, geo.sw, kj * geo.dw, geo.left, geo.w);
                if ox_lo == ox_hi {
                    continue;
                }
                for oy in oy_lo..oy_hi {
                    let iy = oy * geo.sh + ki * geo.dh - geo.top;
                    let line = &xg[iy * geo.w..(iy + 1) * geo.w];
                    let ix0 = ox_lo * geo.sw + kj * geo.dw - geo.left;
                    let dst = &mut yp[oy * geo.ow + ox_lo..oy * geo.ow + ox_hi];
                    if geo.sw == 1 {
                        for (d, &v) in dst.iter_mut().zip(&line[ix0..]) {
                            *d += wv * v;
                        }
                    } else {
                        for (t, d) in dst.iter_mut().enumerate() {
                            *d += wv * line[ix0 + t * geo.sw];
                        }
                    }
                }
            }
        }
    }
}
