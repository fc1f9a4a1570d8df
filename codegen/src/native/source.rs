//! The native convolution's input side: the image copied into its padded scratch
//! area (and, for signed activations on path A, offset to unsigned), and the im2col
//! matrix for layers that do not pack their panel straight from the image.
//!
//! **Why the offset is exact.** `vpmaddubsw` multiplies *unsigned* bytes by signed ones.
//! A signed activation `x ∈ [−128, 127]` is stored as `x ^ 0x80 = x + 128 ∈ [0, 255]`,
//! so the kernel computes `Σ w·(x + 128) = Σ w·x + 128·Σ w` over a channel's taps;
//! [`NativeConv::new`] subtracts `128·Σ w` (every tap of the channel) from the bias it
//! starts the accumulators at, which leaves exactly `bias + Σ w·x`. A padding tap holds
//! `0x80` (the offset zero), so it also contributes `w·128`, cancelled the same way;
//! taps past `K` have zero weights. The i16 bounds of path A are checked with
//! `max x = 128 + max|x|` (at most 255) and the corrected bias.

use super::NativeConv;

impl NativeConv {
    /// Copies image `x` into the padded area (or returns `x` itself when unpadded and
    /// not offset). With [`NativeConv::flip`] every byte is offset (`x ^ 0x80`) and the
    /// border is the offset zero, `0x80`, written here each time (the arena's scratch
    /// starts at zero).
    pub(super) fn source<'a>(&self, x: &'a [u8], pad: &'a mut [u8]) -> &'a [u8] {
        let s = &self.spec;
        if self.flip {
            if !self.padded() {
                let pad = &mut pad[..x.len()];
                for (d, v) in pad.iter_mut().zip(x) {
                    *d = v ^ 0x80;
                }
                return pad;
            }
            pad.fill(0x80);
        } else if !self.padded() {
            return x;
        }
        let (hp, wp) = s.extent();
        for c in 0..s.c {
            for y in 0..s.h {
                let src = &x[(c * s.h + y) * s.w..][..s.w];
                let d = (c * hp + y + s.pads[0]) * wp + s.pads[1];
                let dst = &mut pad[d..d + s.w];
                if self.flip {
                    for (d, v) in dst.iter_mut().zip(src) {
                        *d = v ^ 0x80;
                    }
                } else {
                    dst.copy_from_slice(src);
                }
            }
        }
        pad
    }

    /// Fills rows `0..K` of `col` with the im2col matrix of group `g`.
    pub(super) fn im2col(&self, src: &[u8], g: usize, col: &mut [u8]) {
        let s = &self.spec;
        let (hs, ws) = s.extent();
        let np = self.np();
        let (cg, [sh, sw], [dh, dw]) = (s.cg(), s.strides, s.dilations);
        for ci in 0..cg {
            let c = g * cg + ci;
            for ki in 0..s.kh {
                for kj in 0..s.kw {
                    let k = (ci * s.kh + ki) * s.kw + kj;
                    let row = &mut col[k * np..k * np + self.n];
                    if sw == 2 {
                        let first = (c * hs + ki * dh) * ws + kj * dw;
                        even_rows(src, (first, sh * ws), row, s.ow);
                        continue;
                    }
                    for oy in 0..s.oh {
                        let base = (c * hs + oy * sh + ki * dh) * ws + kj * dw;
                        let dst = &mut row[oy * s.ow..(oy + 1) * s.ow];
                        if sw == 1 {
                            dst.copy_from_slice(&src[base..base + s.ow]);
                        } else {
                            let line = &src[base..base + (s.ow - 1) * sw + 1];
                            for (d, v) in dst.iter_mut().zip(line.iter().step_by(sw)) {
                                *d = *v;
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The stride-2 rows of one im2col row: output row `oy` (`ow` bytes of `dst`) takes
/// every other byte of the image from `first + oy·rs`. On AVX2 by `pack::even_rows`
/// (sixteen at a time, as the even bytes of 32-byte loads), else by this loop.
fn even_rows(src: &[u8], (first, rs): (usize, usize), dst: &mut [u8], ow: usize) {
    #[cfg(target_arch = "x86_64")]
    if super::available() {
        // SAFETY: AVX2 was detected just above; every access is bounds-checked.
        unsafe { super::pack::even_rows(src, (first, rs), dst, ow) };
        return;
    }
    for (oy, d) in dst.chunks_exact_mut(ow).enumerate() {
        let line = &src[first + oy * rs..];
        for (d, v) in d.iter_mut().zip(line.iter().step_by(2)) {
            *d = *v;
        }
    }
}
