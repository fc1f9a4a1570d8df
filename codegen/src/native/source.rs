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
                    for oy in 0..s.oh {
                        let base = (c * hs + oy * sh + ki * dh) * ws + kj * dw;
                        let dst = &mut row[oy * s.ow..(oy + 1) * s.ow];
                        if sw == 1 {
                            dst.copy_from_slice(&src[base..base + s.ow]);
                        } else if sw == 2 {
                            even_bytes(&src[base..], dst);
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

/// `dst[i] = src[2·i]` for every `i < dst.len()` (`src` holds `2·dst.len() − 1` bytes at
/// least; more let more of the loads below be whole): the stride-2 rows of the im2col
/// matrix. On AVX2 sixteen at a time, as the even bytes of a 32-byte load
/// (`x86::even_bytes`, which also takes a row of 8 to 15 by one 16-byte load), the rest
/// by the loop here.
fn even_bytes(src: &[u8], dst: &mut [u8]) {
    let mut done = 0;
    #[cfg(target_arch = "x86_64")]
    if super::available() {
        // SAFETY: AVX2 was detected just above; every access is bounds-checked.
        done = unsafe { super::x86::even_bytes(src, dst) };
    }
    if done < dst.len() {
        // `chunks_exact` lets the compiler vectorise the de-interleave; the last tap
        // separately (the row may end there).
        let rest = dst.len() - done;
        let (head, last) = dst[done..].split_at_mut(rest - 1);
        let line = &src[2 * done..];
        for (d, p) in head.iter_mut().zip(line.chunks_exact(2)) {
            *d = p[0];
        }
        last[0] = line[2 * head.len()];
    }
}
