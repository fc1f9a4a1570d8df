//! The dense form of `qconv` (any integer weights; `qgemm` arrives as a 1×1 conv).
//!
//! Both variants multiply 16-bit lanes with the multiply-add-pairs tree
//! ([`madd`]: `iadd_pairwise(imul(swiden_low), imul(swiden_high))` of two i16x8,
//! which Cranelift's x64 backend lowers to one `pmaddwd`), and both register-block
//! [`MB`] output channels so each input vector is loaded once per block. Weights are
//! pre-packed at compile time, as i16, in the order the code reads them.
//!
//! * **Direct** (stride-1 columns, `OW ≥ 8`): no window copy. For a block of output
//!   channels, an output row and 8 output columns, taps are taken in pairs
//!   `(t0, t1)` of the `C/G·kh·kw` window: the 8 input bytes under each tap
//!   (`uload8x8`/`sload8x8` at the tap's offset, read in place from the (padded)
//!   image) are interleaved word-wise (`punpcklwd`/`punpckhwd` shuffles) so each
//!   i32 lane pair holds `(x[t0], x[t1])` of one column; `pmaddwd` with the packed
//!   `(w[t0], w[t1])` of each channel adds both products into that column's i32
//!   lane. Two i32x4 accumulators per channel (columns 0..4, 4..8) start at the bias
//!   and are stored once. The last column block starts at `OW − 8` and recomputes
//!   overlapping columns, which rewrites the same values. An odd tap count pairs the
//!   last tap with itself and a zero weight. Tap offsets come from a table in the
//!   constant blob, as deltas that advance an input pointer carried by the loop.
//! * **Gather** (other strides, `OW < 8`, and `qgemm`): per output pixel the window is
//!   copied into an 8-byte-padded row of the scratch area (a contiguous window, as in
//!   `qgemm`, is copied by words), then each channel block runs over the row in
//!   chunks of 8: one widening load, then per channel one `pmaddwd` against its packed
//!   weights, and one horizontal sum per channel at the end.
//!
//! **Exactness.** Inputs are u8/i8 and weights i8, so every i16 lane is exact and each
//! `pmaddwd` lane (two products of magnitude ≤ 255·128) is exact in i32. Padding lanes
//! (tail of the gathered row, tail weights, zero-weight pad tap, channels past `M/G`
//! in the last block) multiply by a zero weight, or are never stored. i32 sums wrap,
//! but the plan only accepts a layer whose `|bias| + max|x|·Σ|w|` fits i32, so the
//! wrapped sum is the exact one. Reads stay inside the (padded) image for the reasons
//! given in `conv.rs`; the direct form's 8-column reads end at column `OW − 1 + tap`.

use cranelift_codegen::ir::{types, ConstantData, Endianness, InstBuilder, MemFlagsData, Value};
use cranelift_frontend::FunctionBuilder;

use super::conv::{copy_bytes, pad_copy, ConvSpec};
use super::{addr, counted, counted_const, hsum, iconst, mf, splat, Params};

/// Output channels per register block.
pub(crate) const MB: usize = 4;

/// Byte interleave masks of `punpcklwd` / `punpckhwd` as Cranelift shuffles.
const LO_WORDS: [u8; 16] = [0, 1, 16, 17, 2, 3, 18, 19, 4, 5, 20, 21, 6, 7, 22, 23];
const HI_WORDS: [u8; 16] = [8, 9, 24, 25, 10, 11, 26, 27, 12, 13, 28, 29, 14, 15, 30, 31];

/// Geometry shared by the packing and the emitters.
struct Layout {
    k: usize,
    mg: usize,
    nblk: usize,
    direct: bool,
    /// Direct: tap pairs; gather: chunks of 8 taps.
    steps: usize,
    /// Byte offset of the tap-offset table (direct only).
    table: usize,
    /// Byte offset of the packed weights.
    weights: usize,
}

impl Layout {
    fn of(s: &ConvSpec) -> Layout {
        let k = s.k();
        let mg = s.mg();
        let direct = s.strides[1] == 1 && s.ow >= 8;
        let steps = if direct { k.div_ceil(2) } else { k.div_ceil(8) };
        let table = (4 * s.m).next_multiple_of(16);
        let weights = if direct {
            (table + 8 * steps).next_multiple_of(16)
        } else {
            table
        };
        Layout {
            k,
            mg,
            nblk: mg.div_ceil(MB),
            direct,
            steps,
            table,
            weights,
        }
    }
    /// Bytes of one block's packed weights.
    fn block_bytes(&self) -> usize {
        self.steps * MB * 16
    }
}

/// Scratch bytes of the dense form: the padded image, then (gather) the window row.
pub(crate) fn scratch_bytes(s: &ConvSpec) -> usize {
    let l = Layout::of(s);
    let pad = s.pad_bytes().next_multiple_of(16);
    if l.direct {
        pad
    } else {
        pad + 8 * l.steps
    }
}

/// The constant blob: bias `i32[M]`, (direct) the tap-offset table `[pairs][2] i32`
/// (pair `p`: `off(t0_p) − off(t0_{p−1})` and `off(t1_p) − off(t0_p)`, so the loop
/// advances one input pointer),
/// then the weights as i16, `[G][block][step][MB][8]`: direct: lanes
/// `(w[t0], w[t1]) × 4` of pair `step`; gather: taps `8·step..8·step+8`.
pub(crate) fn consts(s: &ConvSpec) -> Vec<u8> {
    let l = Layout::of(s);
    let (hp, wp) = s.extent();
    let mut out = vec![0u8; l.weights + s.group * l.nblk * l.block_bytes()];
    for (o, b) in s.bias.iter().enumerate() {
        out[4 * o..4 * o + 4].copy_from_slice(&b.to_le_bytes());
    }
    let tap_off = |t: usize| {
        let (ci, r) = (t / (s.kh * s.kw), t % (s.kh * s.kw));
        let (ki, kj) = (r / s.kw, r % s.kw);
        ((ci * hp + ki * s.dilations[0]) * wp + kj * s.dilations[1]) as i32
    };
    if l.direct {
        let mut prev = 0;
        for p in 0..l.steps {
            let t1 = if 2 * p + 1 < l.k { 2 * p + 1 } else { 2 * p };
            let (o0, o1) = (tap_off(2 * p), tap_off(t1));
            let at = l.table + 8 * p;
            out[at..at + 4].copy_from_slice(&(o0 - prev).to_le_bytes());
            out[at + 4..at + 8].copy_from_slice(&(o1 - o0).to_le_bytes());
            prev = o0;
        }
    }
    let w = |o: usize, t: usize| -> i16 {
        if t < l.k {
            i16::from(s.weights[o * l.k + t])
        } else {
            0
        }
    };
    for g in 0..s.group {
        for blk in 0..l.nblk {
            for st in 0..l.steps {
                for j in 0..MB {
                    let mi = blk * MB + j;
                    if mi >= l.mg {
                        continue;
                    }
                    let o = g * l.mg + mi;
                    let at = l.weights + ((g * l.nblk + blk) * l.steps + st) * MB * 16 + j * 16;
                    for lane in 0..8 {
                        let v = if l.direct {
                            let t = 2 * st + lane % 2;
                            if lane % 2 == 1 && t >= l.k {
                                0
                            } else {
                                w(o, t)
                            }
                        } else {
                            w(o, 8 * st + lane)
                        };
                        out[at + 2 * lane..at + 2 * lane + 2].copy_from_slice(&v.to_le_bytes());
                    }
                }
            }
        }
    }
    out
}

/// `pmaddwd(x, y)`: lane `j` is `x[2j]·y[2j] + x[2j+1]·y[2j+1]` (i16x8 → i32x4).
pub(crate) fn madd(b: &mut FunctionBuilder, x: Value, y: Value) -> Value {
    let xl = b.ins().swiden_low(x);
    let yl = b.ins().swiden_low(y);
    let xh = b.ins().swiden_high(x);
    let yh = b.ins().swiden_high(y);
    let lo = b.ins().imul(xl, yl);
    let hi = b.ins().imul(xh, yh);
    b.ins().iadd_pairwise(lo, hi)
}

/// 8 input bytes at `p + off` widened to i16x8.
fn load8(b: &mut FunctionBuilder, signed: bool, p: Value, off: i32) -> Value {
    if signed {
        b.ins().sload8x8(mf(), p, off)
    } else {
        b.ins().uload8x8(mf(), p, off)
    }
}

/// A frontend variable of type `ty` holding `v`.
fn var(b: &mut FunctionBuilder, ty: types::Type, v: Value) -> cranelift_frontend::Variable {
    let x = b.declare_var(ty);
    b.def_var(x, v);
    x
}

/// Word-interleaves `x` and `y` (i16x8) with `mask`.
fn interleave(b: &mut FunctionBuilder, x: Value, y: Value, mask: &[u8; 16]) -> Value {
    let le = MemFlagsData::new().with_endianness(Endianness::Little);
    let xb = b.ins().bitcast(types::I8X16, le, x);
    let yb = b.ins().bitcast(types::I8X16, le, y);
    let imm = b.func.dfg.immediates.push(ConstantData::from(&mask[..]));
    let s = b.ins().shuffle(xb, yb, imm);
    b.ins().bitcast(types::I16X8, le, s)
}

/// Emits `f(block index, channels)` for every block of `MB` output channels: a loop
/// over the full blocks, then the partial last block unrolled.
fn blocks(
    b: &mut FunctionBuilder,
    mg: usize,
    mut f: impl FnMut(&mut FunctionBuilder, Value, usize),
) {
    if mg >= MB {
        counted_const(b, mg / MB, |b, blk| f(b, blk, MB));
    }
    if !mg.is_multiple_of(MB) {
        let blk = iconst(b, (mg / MB) as i64);
        f(b, blk, mg % MB);
    }
}

/// Emits the dense form (module docs).
pub(crate) fn emit(b: &mut FunctionBuilder, s: &ConvSpec, p: &Params) {
    let l = Layout::of(s);
    let in_item = (s.c * s.h * s.w) as i64;
    let out_item = (s.m * s.oh * s.ow * 4) as i64;
    counted(b, p.n, |b, img| {
        let xi = addr(b, p.a, img, in_item);
        let yi = addr(b, p.out, img, out_item);
        let src = pad_copy(b, s, xi, p.scratch);
        counted_const(b, s.group, |b, g| {
            if l.direct {
                direct_group(b, s, &l, p, (src, yi, g));
            } else {
                gather_group(b, s, &l, p, (src, yi, g));
            }
        });
    });
}

/// Packed weights of block `blk` of group `g`.
fn block_weights(b: &mut FunctionBuilder, l: &Layout, k: Value, g: Value, blk: Value) -> Value {
    let gb = b.ins().imul_imm_s(g, l.nblk as i64);
    let gb = b.ins().iadd(gb, blk);
    let w = addr(b, k, gb, l.block_bytes() as i64);
    b.ins().iadd_imm_s(w, l.weights as i64)
}

/// First output channel of block `blk` of group `g`.
fn first_channel(b: &mut FunctionBuilder, l: &Layout, g: Value, blk: Value) -> Value {
    let gm = b.ins().imul_imm_s(g, l.mg as i64);
    let bm = b.ins().imul_imm_s(blk, MB as i64);
    b.ins().iadd(gm, bm)
}

fn direct_group(
    b: &mut FunctionBuilder,
    s: &ConvSpec,
    l: &Layout,
    p: &Params,
    (src, yi, g): (Value, Value, Value),
) {
    let (hp, wp) = s.extent();
    let (oh, ow) = (s.oh, s.ow);
    let gsrc = addr(b, src, g, (s.cg() * hp * wp) as i64);
    blocks(b, l.mg, |b, blk, nch| {
        let wb = block_weights(b, l, p.k, g, blk);
        let m0 = first_channel(b, l, g, blk);
        let bias: Vec<Value> = (0..nch)
            .map(|j| {
                let bp = addr(b, p.k, m0, 4);
                let v = b.ins().load(types::I32, mf(), bp, (4 * j) as i32);
                b.ins().splat(types::I32X4, v)
            })
            .collect();
        let yb = addr(b, yi, m0, (oh * ow * 4) as i64);
        counted_const(b, oh, |b, oy| {
            let row = addr(b, gsrc, oy, (s.strides[0] * wp) as i64);
            let yrow = addr(b, yb, oy, (ow * 4) as i64);
            counted_const(b, ow.div_ceil(8), |b, cb| {
                let x0 = b.ins().imul_imm_s(cb, 8);
                let last = iconst(b, (ow - 8) as i64);
                let ox = b.ins().smin(x0, last);
                let px = b.ins().iadd(row, ox);
                let acc: Vec<_> = (0..2 * nch)
                    .map(|i| {
                        let v = b.declare_var(types::I32X4);
                        b.def_var(v, bias[i / 2]);
                        v
                    })
                    .collect();
                // Pointers carried by the loop (loop-invariant addresses would be
                // recomputed in the body: Cranelift rematerialises their constants
                // there, which pins them inside the loop).
                let xv = var(b, types::I64, px);
                let tab = b.ins().iadd_imm_s(p.k, l.table as i64);
                let tv = var(b, types::I64, tab);
                let wv_ = var(b, types::I64, wb);
                counted_const(b, l.steps, |b, _| {
                    let t = b.use_var(tv);
                    let d0 = b.ins().sload32(mf(), t, 0);
                    let d1 = b.ins().sload32(mf(), t, 4);
                    let xc = b.use_var(xv);
                    let xc = b.ins().iadd(xc, d0);
                    let a1 = b.ins().iadd(xc, d1);
                    let x0 = load8(b, s.x_signed, xc, 0);
                    let x1 = load8(b, s.x_signed, a1, 0);
                    let lo = interleave(b, x0, x1, &LO_WORDS);
                    let hi = interleave(b, x0, x1, &HI_WORDS);
                    let wst = b.use_var(wv_);
                    for j in 0..nch {
                        let wv = b.ins().load(types::I16X8, mf(), wst, (16 * j) as i32);
                        for (h, x) in [lo, hi].into_iter().enumerate() {
                            let d = madd(b, x, wv);
                            let a = b.use_var(acc[2 * j + h]);
                            let a = b.ins().iadd(a, d);
                            b.def_var(acc[2 * j + h], a);
                        }
                    }
                    b.def_var(xv, xc);
                    let t = b.ins().iadd_imm_s(t, 8);
                    b.def_var(tv, t);
                    let w = b.ins().iadd_imm_s(wst, (MB * 16) as i64);
                    b.def_var(wv_, w);
                });
                let yp = addr(b, yrow, ox, 4);
                for j in 0..nch {
                    for h in 0..2 {
                        let a = b.use_var(acc[2 * j + h]);
                        let off = (j * oh * ow * 4 + 16 * h) as i32;
                        b.ins().store(mf(), a, yp, off);
                    }
                }
            });
        });
    });
}

fn gather_group(
    b: &mut FunctionBuilder,
    s: &ConvSpec,
    l: &Layout,
    p: &Params,
    (src, yi, g): (Value, Value, Value),
) {
    let (hp, wp) = s.extent();
    let (oh, ow, cg) = (s.oh, s.ow, s.cg());
    let (kh, kw) = (s.kh, s.kw);
    let [sh, sw] = s.strides;
    let [dh, dw] = s.dilations;
    let gather = b
        .ins()
        .iadd_imm_s(p.scratch, s.pad_bytes().next_multiple_of(16) as i64);
    let gsrc = addr(b, src, g, (cg * hp * wp) as i64);
    // A window that is one contiguous run of bytes (1×1 over a 1×1 image: `qgemm`).
    let contiguous = kh * kw == 1 && hp * wp == 1;
    counted_const(b, oh, |b, oy| {
        counted_const(b, ow, |b, ox| {
            let row = b.ins().imul_imm_s(oy, (sh * wp) as i64);
            let col = b.ins().imul_imm_s(ox, sw as i64);
            let o = b.ins().iadd(row, col);
            let base = b.ins().iadd(gsrc, o);
            if contiguous {
                copy_bytes(b, base, gather, cg);
            } else {
                counted_const(b, cg, |b, ci| {
                    let cb = addr(b, base, ci, (hp * wp) as i64);
                    let gp = addr(b, gather, ci, (kh * kw) as i64);
                    for ki in 0..kh {
                        for kj in 0..kw {
                            let off = (ki * dh * wp + kj * dw) as i32;
                            let v = b.ins().load(types::I8, mf(), cb, off);
                            b.ins().store(mf(), v, gp, (ki * kw + kj) as i32);
                        }
                    }
                });
            }
            let pix = b.ins().imul_imm_s(oy, ow as i64);
            let pix = b.ins().iadd(pix, ox);
            blocks(b, l.mg, |b, blk, nch| {
                let wb = block_weights(b, l, p.k, g, blk);
                let m0 = first_channel(b, l, g, blk);
                let zero = splat(b, types::I32X4, 0);
                let acc: Vec<_> = (0..nch)
                    .map(|_| {
                        let v = b.declare_var(types::I32X4);
                        b.def_var(v, zero);
                        v
                    })
                    .collect();
                let xv = var(b, types::I64, gather);
                let wv_ = var(b, types::I64, wb);
                counted_const(b, l.steps, |b, _| {
                    let xa = b.use_var(xv);
                    let x = load8(b, s.x_signed, xa, 0);
                    let wst = b.use_var(wv_);
                    for (j, &v) in acc.iter().enumerate() {
                        let wv = b.ins().load(types::I16X8, mf(), wst, (16 * j) as i32);
                        let d = madd(b, x, wv);
                        let a = b.use_var(v);
                        let a = b.ins().iadd(a, d);
                        b.def_var(v, a);
                    }
                    let xa = b.ins().iadd_imm_s(xa, 8);
                    b.def_var(xv, xa);
                    let w = b.ins().iadd_imm_s(wst, (MB * 16) as i64);
                    b.def_var(wv_, w);
                });
                let bp = addr(b, p.k, m0, 4);
                let plane = b.ins().imul_imm_s(m0, (oh * ow) as i64);
                let idx = b.ins().iadd(plane, pix);
                let yp = addr(b, yi, idx, 4);
                for (j, &v) in acc.iter().enumerate() {
                    let a = b.use_var(v);
                    let sum = hsum(b, a);
                    let bias = b.ins().load(types::I32, mf(), bp, (4 * j) as i32);
                    let y = b.ins().iadd(sum, bias);
                    b.ins().store(mf(), y, yp, (j * oh * ow * 4) as i32);
                }
            });
        });
    });
}
