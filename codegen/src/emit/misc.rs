//! The element-wise and window integer ops: `requantize`, `scaled_add`, `maxpool`,
//! `sumpool`, `global_maxpool`, `global_sumpool`.
//!
//! * **requantize** counts thresholds exactly as the interpreter defines it:
//!   `qmin + #{k : T[c,k] <= acc}` (ascending) or `#{k : T[c,k] >= acc}` (descending).
//!   Each channel's `L` thresholds are sorted at compile time. Up to
//!   [`LINEAR_LEVELS`] levels: four thresholds per `i32x4` compare, the mask lanes
//!   (−1/0) subtracted from a counter; each row is padded to a multiple of 4 with
//!   thresholds that always count (`i32::MIN` ascending, `i32::MAX` descending) and
//!   the pad count is subtracted, so the count is unchanged. More levels (up to 8-bit
//!   outputs): a two-level 16-ary search over the sorted row padded to 16 buckets of
//!   16 — count the bucket ends that hold, then the thresholds of the one bucket
//!   where the count stops (16 compares each, counted as mask bits) — giving
//!   `#{T <= acc}` ascending and `L − #{T < acc}` descending. The count lies in
//!   `0..=L`, so `qmin + count` is in the output range and the byte store never
//!   truncates.
//! * **scaled_add** (same-shape operands only) computes `a·ka + b·kb` with wrapping
//!   i32 ops; the plan only accepts it when `|ka|·max|a| + |kb|·max|b|` fits i32, so
//!   wrapping never happens.
//! * **pools**: each tap position is bounds-checked with one unsigned compare
//!   (`iy <u H` also rejects negative `iy`); an out-of-bounds tap reads offset 0 (a
//!   valid address) and is discarded by `select`. A sum adds 0 for it; a max keeps its
//!   accumulator. The max starts at `i32::MIN`, below every element, so a window with
//!   taps gets the max over its taps and one without taps is mapped to the dtype's
//!   `qmin`, as the interpreter does. Sums are bounded by the plan like `scaled_add`.

use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::{types, InstBuilder, Value};
use cranelift_frontend::FunctionBuilder;

use super::{
    addr, counted, counted_const, hsum, iconst, iconst_ty, load_i32, mf, splat, store_elem, Elem,
    Params,
};

/// A `requantize` node, resolved.
#[derive(Clone, Debug)]
pub(crate) struct RequantSpec {
    pub c: usize,
    pub inner: usize,
    pub l: usize,
    pub qmin: i64,
    pub thresholds: Vec<i32>,
    pub descending: Vec<bool>,
    pub out: Elem,
}

/// Largest level count searched linearly by `requantize` (beyond: two-level search).
pub(crate) const LINEAR_LEVELS: usize = 16;

/// Threshold slots of a two-level row: 16 buckets of 16, plus one bucket of pads.
const SLOTS: usize = 17 * 16;

impl RequantSpec {
    fn lp(&self) -> usize {
        self.l.div_ceil(4).max(1) * 4
    }
    fn two_level(&self) -> bool {
        self.l > LINEAR_LEVELS && self.l < 256
    }
    /// i32 entries per channel row of the constant blob.
    fn row(&self) -> usize {
        if self.two_level() {
            16 + SLOTS
        } else {
            self.lp()
        }
    }
    /// Per channel: linear: `Lp` thresholds (sorted, then padded); two-level: the 16
    /// bucket ends `T[16i+15]`, then `SLOTS` thresholds (sorted, then `i32::MAX`).
    /// Then the flags `i32[C]`.
    pub(crate) fn consts(&self) -> Vec<u8> {
        let mut v: Vec<i32> = Vec::with_capacity(self.c * (self.row() + 1));
        for ch in 0..self.c {
            let mut row = self.thresholds[ch * self.l..(ch + 1) * self.l].to_vec();
            row.sort_unstable();
            if self.two_level() {
                row.resize(SLOTS, i32::MAX);
                v.extend((0..16).map(|i| row[16 * i + 15]));
                v.extend_from_slice(&row);
            } else {
                let pad = if self.descending[ch] {
                    i32::MAX
                } else {
                    i32::MIN
                };
                v.extend_from_slice(&row);
                v.extend(std::iter::repeat_n(pad, self.lp() - self.l));
            }
        }
        v.extend(self.descending.iter().map(|&d| i32::from(d)));
        v.iter().flat_map(|x| x.to_le_bytes()).collect()
    }
}

pub(crate) fn emit_requantize(b: &mut FunctionBuilder, s: &RequantSpec, p: &Params) {
    let lp = s.lp();
    let row = s.row();
    let flags_off = (s.c * row * 4) as i64;
    let base_level = s.qmin - (lp - s.l) as i64;
    let esize = s.out.size() as i64;
    let inner = s.inner;
    counted(b, p.n, |b, img| {
        counted_const(b, s.c, |b, ch| {
            let plane = b.ins().imul_imm_s(img, s.c as i64);
            let plane = b.ins().iadd(plane, ch);
            let ap = addr(b, p.a, plane, (inner * 4) as i64);
            let yp = addr(b, p.out, plane, inner as i64 * esize);
            let t = addr(b, p.k, ch, (row * 4) as i64);
            let fp = addr(b, p.k, ch, 4);
            let flag = b.ins().load(types::I32, mf(), fp, flags_off as i32);
            let asc = b.create_block();
            let desc = b.create_block();
            let join = b.create_block();
            b.ins().brif(flag, desc, &[], asc, &[]);
            for (blk, cc) in [
                (asc, IntCC::SignedLessThanOrEqual),
                (desc, IntCC::SignedGreaterThanOrEqual),
            ] {
                b.switch_to_block(blk);
                if s.two_level() {
                    let desc = cc == IntCC::SignedGreaterThanOrEqual;
                    counted_const(b, inner, |b, i| {
                        let a = addr(b, ap, i, 4);
                        let acc = b.ins().load(types::I32, mf(), a, 0);
                        let n = search(b, (s.l, s.qmin), t, acc, desc);
                        let o = addr(b, yp, i, esize);
                        store_elem(b, s.out, n, o, 0);
                    });
                    b.ins().jump(join, &[]);
                    continue;
                }
                counted_const(b, inner, |b, i| {
                    let a = addr(b, ap, i, 4);
                    let acc = b.ins().load(types::I32, mf(), a, 0);
                    let sv = b.ins().splat(types::I32X4, acc);
                    let mut cnt = splat(b, types::I32X4, 0);
                    for k in 0..lp / 4 {
                        let tk = b.ins().load(types::I32X4, mf(), t, (16 * k) as i32);
                        let m = b.ins().icmp(cc, tk, sv);
                        cnt = b.ins().isub(cnt, m);
                    }
                    let n = hsum(b, cnt);
                    let y = b.ins().iadd_imm_s(n, base_level);
                    let o = addr(b, yp, i, esize);
                    store_elem(b, s.out, y, o, 0);
                });
                b.ins().jump(join, &[]);
            }
            b.switch_to_block(join);
        });
    });
}

/// How many of the 16 thresholds at `t` satisfy the search predicate (`sv`: `acc`
/// splatted): `T < acc` when `desc`, else `T <= acc`, counted as 16 minus the lanes
/// with `T > acc` (one `pcmpgtd` either way). Four `i32x4` compares, the masks
/// narrowed to bytes, their sign bits counted.
fn count16(b: &mut FunctionBuilder, desc: bool, t: Value, off: i32, sv: Value) -> Value {
    let cc = if desc {
        IntCC::SignedLessThan
    } else {
        IntCC::SignedGreaterThan
    };
    let m: Vec<Value> = (0..4)
        .map(|i| {
            let tv = b.ins().load(types::I32X4, mf(), t, off + 16 * i);
            b.ins().icmp(cc, tv, sv)
        })
        .collect();
    let n01 = b.ins().snarrow(m[0], m[1]);
    let n23 = b.ins().snarrow(m[2], m[3]);
    let n = b.ins().snarrow(n01, n23);
    let bits = b.ins().vhigh_bits(types::I32, n);
    let k = b.ins().popcnt(bits);
    if desc {
        k
    } else {
        let k = b.ins().ineg(k);
        b.ins().iadd_imm_s(k, 16)
    }
}

/// The level of `acc` (i32) against a two-level row at `t` (see [`RequantSpec::consts`]):
/// `qmin + #{T <= acc}`, or `qmin + l − #{T < acc}` when `desc`. The bucket count `c1`
/// (bucket ends satisfying the predicate) picks the bucket whose 16 thresholds are
/// counted next: the predicate holds on a prefix of the sorted row, so the count is
/// `16·c1 +` the bucket's count. Pads (`i32::MAX`) never satisfy `T < acc`; they
/// satisfy `T <= acc` only when `acc = i32::MAX`, and then all `SLOTS − l` of them,
/// which are subtracted.
fn search(
    b: &mut FunctionBuilder,
    (l, qmin): (usize, i64),
    t: Value,
    acc: Value,
    desc: bool,
) -> Value {
    let sv = b.ins().splat(types::I32X4, acc);
    let c1 = count16(b, desc, t, 0, sv);
    let c1w = b.ins().uextend(types::I64, c1);
    let bucket = addr(b, t, c1w, 64);
    let c2 = count16(b, desc, bucket, 64, sv);
    let hi = b.ins().ishl_imm_u(c1, 4);
    let n = b.ins().iadd(hi, c2);
    if desc {
        let n = b.ins().ineg(n);
        b.ins().iadd_imm_s(n, qmin + l as i64)
    } else {
        let top = iconst_ty(b, types::I32, i64::from(i32::MAX));
        let at_top = b.ins().icmp(IntCC::Equal, acc, top);
        let pads = b.ins().iadd_imm_s(n, -((SLOTS - l) as i64));
        let n = b.ins().select(at_top, pads, n);
        b.ins().iadd_imm_s(n, qmin)
    }
}

/// A same-shape `scaled_add`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct AddSpec {
    pub per_item: usize,
    pub a: Elem,
    pub b: Elem,
    pub ka: i32,
    pub kb: i32,
}

pub(crate) fn emit_scaled_add(b: &mut FunctionBuilder, s: &AddSpec, p: &Params) {
    let total = b.ins().imul_imm_s(p.n, s.per_item as i64);
    counted(b, total, |b, i| {
        let pa = addr(b, p.a, i, s.a.size() as i64);
        let pb = addr(b, p.b, i, s.b.size() as i64);
        let x = load_i32(b, s.a, pa, 0);
        let y = load_i32(b, s.b, pb, 0);
        let x = b.ins().imul_imm_s(x, i64::from(s.ka));
        let y = b.ins().imul_imm_s(y, i64::from(s.kb));
        let v = b.ins().iadd(x, y);
        let po = addr(b, p.out, i, 4);
        b.ins().store(mf(), v, po, 0);
    });
}

/// What a pool computes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PoolKind {
    /// Max, with the value of a window without taps.
    Max {
        qmin: i64,
    },
    Sum,
}

/// A `maxpool` / `sumpool` (global ones have a kernel the size of the plane).
#[derive(Clone, Debug)]
pub(crate) struct PoolSpec {
    pub c: usize,
    pub h: usize,
    pub w: usize,
    pub oh: usize,
    pub ow: usize,
    pub kernel: [usize; 2],
    pub strides: [usize; 2],
    pub dilations: [usize; 2],
    pub pads: [usize; 4],
    pub kind: PoolKind,
    pub input: Elem,
    pub out: Elem,
}

pub(crate) fn emit_pool(b: &mut FunctionBuilder, s: &PoolSpec, p: &Params) {
    let (h, w, oh, ow) = (s.h, s.w, s.oh, s.ow);
    let (ie, oe) = (s.input.size() as i64, s.out.size() as i64);
    counted(b, p.n, |b, img| {
        counted_const(b, s.c, |b, ch| {
            let plane = b.ins().imul_imm_s(img, s.c as i64);
            let plane = b.ins().iadd(plane, ch);
            let xp = addr(b, p.a, plane, (h * w) as i64 * ie);
            let yp = addr(b, p.out, plane, (oh * ow) as i64 * oe);
            counted_const(b, oh, |b, oy| {
                let hv = iconst(b, h as i64);
                let rows: Vec<_> = (0..s.kernel[0])
                    .map(|ki| {
                        let y0 = b.ins().imul_imm_s(oy, s.strides[0] as i64);
                        let d = (ki * s.dilations[0]) as i64 - s.pads[0] as i64;
                        let iy = b.ins().iadd_imm_s(y0, d);
                        let ok = b.ins().icmp(IntCC::UnsignedLessThan, iy, hv);
                        (iy, ok)
                    })
                    .collect();
                counted_const(b, ow, |b, ox| {
                    let wv = iconst(b, w as i64);
                    let mut acc = match s.kind {
                        PoolKind::Max { .. } => iconst_ty(b, types::I32, i64::from(i32::MIN)),
                        PoolKind::Sum => iconst_ty(b, types::I32, 0),
                    };
                    for kj in 0..s.kernel[1] {
                        let x0 = b.ins().imul_imm_s(ox, s.strides[1] as i64);
                        let d = (kj * s.dilations[1]) as i64 - s.pads[1] as i64;
                        let ix = b.ins().iadd_imm_s(x0, d);
                        let okx = b.ins().icmp(IntCC::UnsignedLessThan, ix, wv);
                        for &(iy, oky) in &rows {
                            let ok = b.ins().band(oky, okx);
                            let idx = b.ins().imul_imm_s(iy, w as i64);
                            let idx = b.ins().iadd(idx, ix);
                            let zero = iconst(b, 0);
                            let idx = b.ins().select(ok, idx, zero);
                            let pa = addr(b, xp, idx, ie);
                            let v = load_i32(b, s.input, pa, 0);
                            acc = match s.kind {
                                PoolKind::Max { .. } => {
                                    let m = b.ins().smax(acc, v);
                                    b.ins().select(ok, m, acc)
                                }
                                PoolKind::Sum => {
                                    let z = iconst_ty(b, types::I32, 0);
                                    let t = b.ins().select(ok, v, z);
                                    b.ins().iadd(acc, t)
                                }
                            };
                        }
                    }
                    if let PoolKind::Max { qmin } = s.kind {
                        let min = iconst_ty(b, types::I32, i64::from(i32::MIN));
                        let empty = b.ins().icmp(IntCC::Equal, acc, min);
                        let q = iconst_ty(b, types::I32, qmin);
                        acc = b.ins().select(empty, q, acc);
                    }
                    let r = b.ins().imul_imm_s(oy, ow as i64);
                    let idx = b.ins().iadd(r, ox);
                    let po = addr(b, yp, idx, oe);
                    store_elem(b, s.out, acc, po, 0);
                });
            });
        });
    });
}

/// Global max / sum over each `H×W` plane (`plane` elements) into one element.
pub(crate) fn emit_global(
    b: &mut FunctionBuilder,
    (c, plane): (usize, usize),
    kind: PoolKind,
    (input, out): (Elem, Elem),
    p: &Params,
) {
    let (ie, oe) = (input.size() as i64, out.size() as i64);
    let planes = b.ins().imul_imm_s(p.n, c as i64);
    counted(b, planes, |b, pl| {
        let xp = addr(b, p.a, pl, plane as i64 * ie);
        let acc = b.declare_var(types::I32);
        let init = match kind {
            PoolKind::Max { .. } => iconst_ty(b, types::I32, i64::from(i32::MIN)),
            PoolKind::Sum => iconst_ty(b, types::I32, 0),
        };
        b.def_var(acc, init);
        counted_const(b, plane, |b, i| {
            let pa = addr(b, xp, i, ie);
            let v = load_i32(b, input, pa, 0);
            let a = b.use_var(acc);
            let a = match kind {
                PoolKind::Max { .. } => b.ins().smax(a, v),
                PoolKind::Sum => b.ins().iadd(a, v),
            };
            b.def_var(acc, a);
        });
        let mut a = b.use_var(acc);
        if let PoolKind::Max { qmin } = kind {
            let min = iconst_ty(b, types::I32, i64::from(i32::MIN));
            let empty = b.ins().icmp(IntCC::Equal, a, min);
            let q = iconst_ty(b, types::I32, qmin);
            a = b.ins().select(empty, q, a);
        }
        let po = addr(b, p.out, pl, oe);
        store_elem(b, out, a, po, 0);
    });
}
