//! `qconv` (and `qgemm`, lowered as a 1×1 convolution) in two forms.
//!
//! Both read the image through a zero-padded copy (`scratch`, padding written once as
//! zero when the run allocates it, interior overwritten per image), so a tap never needs
//! a bounds check and padding contributes exactly 0, as the interpreter defines. Without
//! padding the input buffer is read directly.
//!
//! * **Dense** (any integer weights; `dense.rs`): i16 multiply-add pairs (`pmaddwd`)
//!   against weights pre-packed at compile time, 4 output channels per register
//!   block; stride-1 rows with `OW ≥ 8` read the image in place 8 columns at a time,
//!   other shapes gather each pixel's window into a row first.
//! * **Ternary**: weights are compiled into the code: per output channel, one `iadd` or
//!   `isub` per non-zero weight of the input value at that tap's constant offset; zero
//!   weights emit nothing. With stride-1 columns and `OW ≥ 8`, 8 output columns are done
//!   at once (`uload8x8`/`sload8x8` to i16x8); the last block starts at `OW-8` and
//!   recomputes overlapping columns, which rewrites the same values. Taps are summed in
//!   i16 in chunks of at most `32767 / max|x|`, so each chunk sum is exact in i16
//!   before it is widened into i32 accumulators. Otherwise a scalar loop per pixel.
//!
//! **Exactness.** All i32 arithmetic wraps, so the result is the exact sum modulo 2^32;
//! the plan only accepts a layer when `|bias| + max|x|·Σ|w|` fits i32 for every output
//! channel, so the exact sum fits and equals the wrapped one. Bounds: every tap read
//! `(c, oy·sh + ki·dh, ox·sw + kj·dw)` lies inside the padded image because the output
//! extent is `⌊(Hp − dh(kh−1) − 1)/sh⌋ + 1`; a vector read of 8 columns starts at most at
//! `OW − 8` and so ends at the last valid column.

use cranelift_codegen::ir::{types, InstBuilder, Value};
use cranelift_frontend::FunctionBuilder;

use super::{addr, counted, counted_const, dense, iconst, iconst_ty, mf, splat, Params};

/// Largest unrolled tap count (non-zero weights) of a ternary layer before the
/// dense form is used instead, bounding code size and compile time.
pub(crate) const MAX_UNROLLED_TAPS: usize = 40_000;

/// A convolution with everything resolved: extents, geometry and constant weights.
#[derive(Clone, Debug)]
pub(crate) struct ConvSpec {
    pub c: usize,
    pub h: usize,
    pub w: usize,
    pub m: usize,
    pub group: usize,
    pub kh: usize,
    pub kw: usize,
    pub strides: [usize; 2],
    pub dilations: [usize; 2],
    /// `[top, left, bottom, right]`.
    pub pads: [usize; 4],
    pub oh: usize,
    pub ow: usize,
    pub x_signed: bool,
    /// Largest magnitude of an input element.
    pub xmax: i64,
    /// `[M][C/G·kh·kw]`, each in i8.
    pub weights: Vec<i8>,
    pub bias: Vec<i32>,
}

/// Which code a convolution gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Form {
    Dense,
    Ternary,
}

impl ConvSpec {
    pub(crate) fn cg(&self) -> usize {
        self.c / self.group
    }
    pub(crate) fn mg(&self) -> usize {
        self.m / self.group
    }
    /// Taps per output channel: `C/G·kh·kw`.
    pub(crate) fn k(&self) -> usize {
        self.cg() * self.kh * self.kw
    }
    /// `(rows, columns)` of the image the kernel reads: padded, or the input itself.
    pub(crate) fn extent(&self) -> (usize, usize) {
        if self.padded() {
            (self.hp(), self.wp())
        } else {
            (self.h, self.w)
        }
    }
    fn padded(&self) -> bool {
        self.pads.iter().any(|&p| p > 0)
    }
    fn hp(&self) -> usize {
        self.h + self.pads[0] + self.pads[2]
    }
    fn wp(&self) -> usize {
        self.w + self.pads[1] + self.pads[3]
    }
    fn vector_cols(&self) -> bool {
        self.strides[1] == 1 && self.ow >= 8
    }
    /// The largest `|bias| + max|x|·Σ|w|` over output channels: a bound on every
    /// accumulator.
    pub(crate) fn bound(&self) -> i64 {
        let k = self.k().max(1);
        (0..self.m)
            .map(|o| {
                let s: i64 = self.weights[o * k..(o + 1) * k]
                    .iter()
                    .map(|&v| i64::from(v).abs())
                    .sum();
                i64::from(self.bias[o]).abs() + s * self.xmax
            })
            .max()
            .unwrap_or(0)
    }
    /// The form used: ternary when all weights are in {-1, 0, 1} and the unrolled code
    /// stays small; dense otherwise.
    pub(crate) fn form(&self, ternary_dtype: bool) -> Form {
        let nz = self.weights.iter().filter(|&&v| v != 0).count();
        if ternary_dtype && nz <= MAX_UNROLLED_TAPS {
            Form::Ternary
        } else {
            Form::Dense
        }
    }
    pub(crate) fn pad_bytes(&self) -> usize {
        if self.padded() {
            self.c * self.hp() * self.wp()
        } else {
            0
        }
    }
    /// Scratch bytes per run of this kernel.
    pub(crate) fn scratch_bytes(&self, form: Form) -> usize {
        match form {
            Form::Ternary => self.pad_bytes(),
            Form::Dense => dense::scratch_bytes(self),
        }
    }
    /// The constant blob: dense: see [`dense::consts`]; ternary: nothing (weights and
    /// bias are immediates).
    pub(crate) fn consts(&self, form: Form) -> Vec<u8> {
        match form {
            Form::Ternary => Vec::new(),
            Form::Dense => dense::consts(self),
        }
    }
}

/// Copies image `xi` into the padded scratch interior (or returns `xi` when unpadded).
pub(crate) fn pad_copy(b: &mut FunctionBuilder, s: &ConvSpec, xi: Value, scratch: Value) -> Value {
    if !s.padded() {
        return xi;
    }
    let (hp, wp, w, h) = (s.hp(), s.wp(), s.w, s.h);
    let (top, left) = (s.pads[0], s.pads[1]);
    counted_const(b, s.c * h, |b, r| {
        // Row r = (channel, y): source row r, destination row c·hp + top + y.
        let src = addr(b, xi, r, w as i64);
        let hv = iconst(b, h as i64);
        let ch = b.ins().udiv(r, hv);
        let y = b.ins().urem(r, hv);
        let drow = b.ins().imul_imm_s(ch, hp as i64);
        let drow = b.ins().iadd(drow, y);
        let dst = addr(b, scratch, drow, wp as i64);
        let dst = b.ins().iadd_imm_s(dst, (top * wp + left) as i64);
        copy_bytes(b, src, dst, w);
    });
    scratch
}

/// Copies `len` bytes `src → dst`: 8-byte words, then single bytes (unrolled up to 512
/// bytes; beyond, a loop of words, then the tail unrolled).
pub(crate) fn copy_bytes(b: &mut FunctionBuilder, src: Value, dst: Value, len: usize) {
    let mut o = 0;
    if len > 512 {
        counted_const(b, len / 8, |b, i| {
            let off = b.ins().imul_imm_s(i, 8);
            let s = b.ins().iadd(src, off);
            let d = b.ins().iadd(dst, off);
            let v = b.ins().load(types::I64, mf(), s, 0);
            b.ins().store(mf(), v, d, 0);
        });
        o = len / 8 * 8;
    }
    while o + 8 <= len {
        let v = b.ins().load(types::I64, mf(), src, o as i32);
        b.ins().store(mf(), v, dst, o as i32);
        o += 8;
    }
    while o < len {
        let v = b.ins().load(types::I8, mf(), src, o as i32);
        b.ins().store(mf(), v, dst, o as i32);
        o += 1;
    }
}

/// Emits the dense form (`dense.rs`).
pub(crate) fn emit_dense(b: &mut FunctionBuilder, s: &ConvSpec, p: &Params) {
    dense::emit(b, s, p);
}

/// The non-zero taps of output channel `o`: (offset from the window origin in the
/// (padded) image, weight is negative).
fn taps(s: &ConvSpec, o: usize, hp: usize, wp: usize) -> Vec<(i32, bool)> {
    let (cg, k) = (s.cg(), s.k());
    let g = o / s.mg();
    let mut t = Vec::new();
    for ci in 0..cg {
        for ki in 0..s.kh {
            for kj in 0..s.kw {
                let v = s.weights[o * k + (ci * s.kh + ki) * s.kw + kj];
                if v != 0 {
                    let off = ((g * cg + ci) * hp + ki * s.dilations[0]) * wp + kj * s.dilations[1];
                    t.push((off as i32, v < 0));
                }
            }
        }
    }
    t
}

/// Emits the ternary form (module docs).
pub(crate) fn emit_ternary(b: &mut FunctionBuilder, s: &ConvSpec, p: &Params) {
    let (hp, wp) = s.extent();
    let in_item = (s.c * s.h * s.w) as i64;
    let out_item = (s.m * s.oh * s.ow * 4) as i64;
    let (oh, ow) = (s.oh, s.ow);
    let [sh, sw] = s.strides;
    let chunk = (32767 / s.xmax.max(1)).max(1) as usize;
    let all: Vec<Vec<(i32, bool)>> = (0..s.m).map(|o| taps(s, o, hp, wp)).collect();
    counted(b, p.n, |b, img| {
        let xi = addr(b, p.a, img, in_item);
        let yi = addr(b, p.out, img, out_item);
        let src = pad_copy(b, s, xi, p.scratch);
        for (o, t) in all.iter().enumerate() {
            let bias = i64::from(s.bias[o]);
            counted_const(b, oh, |b, oy| {
                let row = addr(b, src, oy, (sh * wp) as i64);
                let yrow = b.ins().imul_imm_s(oy, (ow * 4) as i64);
                let yrow = b.ins().iadd(yi, yrow);
                let yrow = b.ins().iadd_imm_s(yrow, (o * oh * ow * 4) as i64);
                if s.vector_cols() {
                    counted_const(b, ow.div_ceil(8), |b, bi| {
                        let x0 = b.ins().imul_imm_s(bi, 8);
                        let last = iconst(b, (ow - 8) as i64);
                        let ox = b.ins().smin(x0, last);
                        let px = b.ins().iadd(row, ox);
                        let mut lo = splat(b, types::I32X4, bias);
                        let mut hi = lo;
                        for c in t.chunks(chunk) {
                            let mut a16 = splat(b, types::I16X8, 0);
                            for &(off, neg) in c {
                                let v = if s.x_signed {
                                    b.ins().sload8x8(mf(), px, off)
                                } else {
                                    b.ins().uload8x8(mf(), px, off)
                                };
                                a16 = if neg {
                                    b.ins().isub(a16, v)
                                } else {
                                    b.ins().iadd(a16, v)
                                };
                            }
                            let wl = b.ins().swiden_low(a16);
                            let wh = b.ins().swiden_high(a16);
                            lo = b.ins().iadd(lo, wl);
                            hi = b.ins().iadd(hi, wh);
                        }
                        let yp = addr(b, yrow, ox, 4);
                        b.ins().store(mf(), lo, yp, 0);
                        b.ins().store(mf(), hi, yp, 16);
                    });
                } else {
                    counted_const(b, ow, |b, ox| {
                        let px = addr(b, row, ox, sw as i64);
                        let mut acc = iconst_ty(b, types::I32, bias);
                        for &(off, neg) in t {
                            let v = if s.x_signed {
                                b.ins().sload8(types::I32, mf(), px, off)
                            } else {
                                b.ins().uload8(types::I32, mf(), px, off)
                            };
                            acc = if neg {
                                b.ins().isub(acc, v)
                            } else {
                                b.ins().iadd(acc, v)
                            };
                        }
                        let yp = addr(b, yrow, ox, 4);
                        b.ins().store(mf(), acc, yp, 0);
                    });
                }
            });
        }
    });
}
