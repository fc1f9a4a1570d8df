//! Lowering of each integer node to a kernel description ([`Kernel`]), with the
//! operand checks and overflow bounds of `plan.rs` (see its module docs).
//!
//! `qgemm` becomes a 1×1 convolution of `[M,K,1,1]` by `[N,K,1,1]` (its weights
//! transposed here when `trans_b` is false), which is the same sum `bias[j] +
//! Σ_k a[i,k]·b[k,j]`; only a bias of shape `[N]` or `[1,N]` (one value per output
//! column, as `integerize` produces) is accepted.

use fqc_ir::{DType, NodeData, Op, Tensor, TensorData, Window};

use crate::emit::conv::{ConvSpec, Form};
use crate::emit::misc::{AddSpec, PoolKind, PoolSpec, RequantSpec};
use crate::emit::Elem;
use crate::error::Result;
use crate::native::gemv::NativeGemv;
use crate::native::pool::NativePool;
use crate::native::{self, NativeConv};
use crate::plan::{elem_of, BufElem, Kernel, Planner, Step};
use crate::ConvForm;

pub(crate) fn int_values(t: &Tensor) -> Vec<i64> {
    match &t.data {
        TensorData::I8(v) => v.iter().map(|&x| i64::from(x)).collect(),
        TensorData::U8(v) => v.iter().map(|&x| i64::from(x)).collect(),
        TensorData::I32(v) => v.iter().map(|&x| i64::from(x)).collect(),
        TensorData::I64(v) => v.clone(),
        TensorData::F32(_) => Vec::new(),
    }
}

fn spatial(w: &Window) -> ([usize; 2], [usize; 2], [usize; 2], [usize; 4]) {
    let u = |v: u64| v as usize;
    (
        w.kernel.map(u),
        w.strides.map(u),
        w.dilations.map(u),
        w.pads.map(u),
    )
}

/// Most taps of a pooling window the JIT unrolls (and the native kernel loops over per
/// output); wider windows — which only a hostile or degenerate file has — run as an
/// interpreter step, whose cost is bounded by the taps inside the input.
const MAX_POOL_TAPS: usize = 1024;

/// Whether the native kernel is expected to beat the JIT forms (measured, see
/// `reports/jit_forms.md`): enough output pixels per image to fill tiles and enough
/// output channels per group to fill a register block.
fn native_pays(s: &ConvSpec) -> bool {
    s.oh * s.ow >= 16 && s.mg() >= 2
}

impl Planner<'_> {
    /// Weights as i8 (`None` if an element does not fit, e.g. u8 weights above 127).
    fn weights(&self, node: &NodeData, t: &Tensor) -> Result<Vec<i8>> {
        let ok = matches!(t.data, TensorData::I8(_) | TensorData::U8(_));
        let v: Option<Vec<i8>> = ok
            .then(|| {
                int_values(t)
                    .into_iter()
                    .map(|x| i8::try_from(x).ok())
                    .collect()
            })
            .flatten();
        v.ok_or_else(|| self.unsupported(node, "weights must be low-bit integers that fit i8"))
    }

    fn bias(&self, node: &NodeData, m: usize) -> Result<Vec<i32>> {
        let Some(&b) = node.inputs.get(2) else {
            return Ok(vec![0; m]);
        };
        let t = self.constant(node, b, "bias")?;
        match &t.data {
            TensorData::I32(v) if v.len() == m && t.shape.iter().rev().skip(1).all(|&d| d == 1) => {
                Ok(v.clone())
            }
            _ => Err(self.unsupported(node, "bias must be i32 with one value per output channel")),
        }
    }

    /// The kernel of a convolution: on a CPU with AVX2, the native matrix-vector
    /// kernel (`native/gemv.rs`) for one product per image (`qgemm`), the native tiled
    /// kernel (`native/`) when the layer has enough output pixels and channels per
    /// group to fill its tiles, else a JIT form; or the form forced by the options (a
    /// forced form that cannot apply falls back to the automatic choice).
    fn conv_kernel(&self, spec: ConvSpec, ternary_dtype: bool) -> Kernel {
        let all_ternary = spec.weights.iter().all(|&v| (-1..=1).contains(&v));
        let jit = |spec: ConvSpec| {
            let form = spec.form(ternary_dtype);
            Kernel::Conv(spec, form)
        };
        match self.force {
            Some(ConvForm::Dense) => Kernel::Conv(spec, Form::Dense),
            Some(ConvForm::Ternary) if all_ternary => Kernel::Conv(spec, Form::Ternary),
            Some(f @ (ConvForm::NativeA | ConvForm::NativeB)) if native::available() => {
                match NativeConv::new(spec, f == ConvForm::NativeA) {
                    Some(nc) => Kernel::Native(Box::new(nc)),
                    None => unreachable!("AVX2 was detected"),
                }
            }
            None if native::available() && spec.oh * spec.ow == 1 => {
                match NativeGemv::new(spec.clone()) {
                    Some(nv) => Kernel::NativeGemv(nv),
                    None => jit(spec),
                }
            }
            _ if native::available() && native_pays(&spec) => {
                match NativeConv::new(spec.clone(), true) {
                    Some(nc) => Kernel::Native(Box::new(nc)),
                    None => jit(spec),
                }
            }
            _ => jit(spec),
        }
    }

    pub(crate) fn push(
        &mut self,
        node: &NodeData,
        kernel: Kernel,
        a: usize,
        b: Option<usize>,
    ) -> Result<()> {
        let (elem, bound, consts, scratch) = match &kernel {
            Kernel::Conv(s, f) => (Elem::I32, s.bound(), s.consts(*f), s.scratch_bytes(*f)),
            Kernel::Native(nc) => (Elem::I32, nc.spec.bound(), Vec::new(), nc.scratch_bytes()),
            Kernel::NativeGemv(nv) => (Elem::I32, nv.spec.bound(), Vec::new(), nv.scratch_bytes()),
            Kernel::Requant(r) => {
                let (lo, hi) = self.g.ty(node.output).dtype.quant_range().unwrap_or((0, 0));
                (r.out, lo.abs().max(hi.abs()), r.consts(), 0)
            }
            Kernel::NativeRequant(r) => {
                let (lo, hi) = self.g.ty(node.output).dtype.quant_range().unwrap_or((0, 0));
                (r.levels.out, lo.abs().max(hi.abs()), Vec::new(), 0)
            }
            Kernel::Add(s) => {
                let bound = i64::from(s.ka).abs() * self.bound[&a]
                    + i64::from(s.kb).abs() * b.map_or(0, |b| self.bound[&b]);
                (Elem::I32, bound, Vec::new(), 0)
            }
            Kernel::Pool(s) | Kernel::NativePool(NativePool { spec: s, .. }) => {
                let bound = match s.kind {
                    PoolKind::Sum => (s.kernel[0] * s.kernel[1]) as i64 * self.bound[&a],
                    PoolKind::Max { qmin } => self.bound[&a].max(qmin.abs()),
                };
                (s.out, bound, Vec::new(), 0)
            }
            Kernel::Global {
                plane, kind, io, ..
            } => {
                let bound = match kind {
                    PoolKind::Sum => (*plane as i64).saturating_mul(self.bound[&a]),
                    PoolKind::Max { qmin } => self.bound[&a].max(qmin.abs()),
                };
                (io.1, bound, Vec::new(), 0)
            }
        };
        if bound > i64::from(i32::MAX) {
            return Err(self.unsupported(
                node,
                format!("results may reach {bound}, beyond i32 (the JIT never wraps silently)"),
            ));
        }
        let out = self.new_buf(node, BufElem::Int(elem))?;
        self.bound.insert(out, bound);
        self.plan.steps.push(Step::Kernel {
            name: node.name.clone(),
            kernel: Box::new(kernel),
            a,
            b,
            out,
            consts,
            scratch,
        });
        Ok(())
    }

    pub(crate) fn kernel(&mut self, node: &NodeData) -> Result<()> {
        let g = self.g;
        let out_dt = g.ty(node.output).dtype;
        let od = self.dims(node.output);
        match &node.op {
            Op::QConv { window, group } => {
                let (a, e, xmax) = self.int_operand(node, node.inputs[0])?;
                let wt = self.constant(node, node.inputs[1], "weights")?;
                let xd = self.dims(node.inputs[0]);
                if e == Elem::I32 || xd.len() != 4 || wt.shape.len() != 4 {
                    return Err(self.unsupported(node, "needs a 4-D low-bit input"));
                }
                let (_, strides, dilations, pads) = spatial(window);
                let m = wt.shape[0];
                let spec = ConvSpec {
                    c: xd[1],
                    h: xd[2],
                    w: xd[3],
                    m,
                    group: *group as usize,
                    kh: wt.shape[2],
                    kw: wt.shape[3],
                    strides,
                    dilations,
                    pads,
                    oh: od[2],
                    ow: od[3],
                    x_signed: e == Elem::I8,
                    xmax,
                    weights: self.weights(node, wt)?,
                    bias: self.bias(node, m)?,
                };
                let kernel = self.conv_kernel(spec, g.ty(node.inputs[1]).dtype == DType::Ternary);
                self.push(node, kernel, a, None)
            }
            Op::QGemm { trans_b } => {
                let (a, e, xmax) = self.int_operand(node, node.inputs[0])?;
                let bt = self.constant(node, node.inputs[1], "weights")?;
                let ad = self.dims(node.inputs[0]);
                if e == Elem::I32 || ad.len() != 2 || bt.shape.len() != 2 {
                    return Err(self.unsupported(node, "needs a 2-D low-bit input"));
                }
                let k = ad[1];
                let raw = self.weights(node, bt)?;
                let n = if *trans_b { bt.shape[0] } else { bt.shape[1] };
                let weights = if *trans_b {
                    raw
                } else {
                    (0..n * k).map(|i| raw[(i % k) * n + i / k]).collect()
                };
                let spec = ConvSpec {
                    c: k,
                    h: 1,
                    w: 1,
                    m: n,
                    group: 1,
                    kh: 1,
                    kw: 1,
                    strides: [1, 1],
                    dilations: [1, 1],
                    pads: [0; 4],
                    oh: 1,
                    ow: 1,
                    x_signed: e == Elem::I8,
                    xmax,
                    weights,
                    bias: self.bias(node, n)?,
                };
                let kernel = self.conv_kernel(spec, g.ty(node.inputs[1]).dtype == DType::Ternary);
                self.push(node, kernel, a, None)
            }
            Op::Requantize { dtype, .. } => {
                let (a, e, _) = self.int_operand(node, node.inputs[0])?;
                let t = self.constant(node, node.inputs[1], "thresholds")?;
                let d = self.constant(node, node.inputs[2], "descending flags")?;
                let (qmin, qmax) = dtype.quant_range().unwrap_or((0, 0));
                let l = (qmax - qmin) as usize;
                let xd = self.dims(node.inputs[0]);
                let (TensorData::I32(t), TensorData::I8(d)) = (&t.data, &d.data) else {
                    return Err(self.unsupported(node, "thresholds i32 and flags i8 expected"));
                };
                let out = elem_of(*dtype).filter(|_| dtype.is_low_bit());
                let (Some(out), true, Some(&c)) = (out, e == Elem::I32, xd.get(1)) else {
                    return Err(self.unsupported(node, "needs an i32 [N,C,..] input"));
                };
                if t.len() != c * l || d.len() != c || l == 0 {
                    return Err(self.unsupported(node, format!("expected {c}x{l} thresholds")));
                }
                let spec = RequantSpec {
                    c,
                    inner: xd[2..].iter().product(),
                    l,
                    qmin,
                    thresholds: t.clone(),
                    descending: d.iter().map(|&f| f != 0).collect(),
                    out,
                };
                if self.native_requant(node, &spec, a)? {
                    return Ok(());
                }
                self.push(node, Kernel::Requant(spec), a, None)
            }
            Op::ScaledAdd => {
                let (a, ea, _) = self.int_operand(node, node.inputs[0])?;
                let (b, eb, _) = self.int_operand(node, node.inputs[1])?;
                let k = |i: usize| -> Result<i32> {
                    match &self.constant(node, node.inputs[i], "factor")?.data {
                        TensorData::I32(v) if v.len() == 1 => Ok(v[0]),
                        _ => Err(self.unsupported(node, "factors must be one i32 each")),
                    }
                };
                let (ka, kb) = (k(2)?, k(3)?);
                if g.ty(node.inputs[0]).shape != g.ty(node.inputs[1]).shape {
                    return Err(self.unsupported(node, "broadcasting operands"));
                }
                let spec = AddSpec {
                    per_item: od[1..].iter().product(),
                    a: ea,
                    b: eb,
                    ka,
                    kb,
                };
                self.push(node, Kernel::Add(spec), a, Some(b))
            }
            Op::MaxPool { window } | Op::SumPool { window } => {
                let (a, e, _) = self.int_operand(node, node.inputs[0])?;
                let xd = self.dims(node.inputs[0]);
                let max = matches!(node.op, Op::MaxPool { .. });
                if xd.len() != 4 || (max && e == Elem::I32) {
                    return Err(self.unsupported(node, "needs a 4-D low-bit input"));
                }
                let (kernel, strides, dilations, pads) = spatial(window);
                if kernel[0].saturating_mul(kernel[1]) > MAX_POOL_TAPS {
                    return Err(self.unsupported(
                        node,
                        format!(
                            "a {}x{} window is unrolled by neither the JIT nor the native kernel",
                            kernel[0], kernel[1]
                        ),
                    ));
                }
                let kind = if max {
                    PoolKind::Max {
                        qmin: out_dt.quant_range().map_or(0, |r| r.0),
                    }
                } else {
                    PoolKind::Sum
                };
                let spec = PoolSpec {
                    c: xd[1],
                    h: xd[2],
                    w: xd[3],
                    oh: od[2],
                    ow: od[3],
                    kernel,
                    strides,
                    dilations,
                    pads,
                    kind,
                    input: e,
                    out: if max { e } else { Elem::I32 },
                };
                let kernel = match NativePool::new(spec.clone()) {
                    Some(np) if self.native_steps() => Kernel::NativePool(np),
                    _ => Kernel::Pool(spec),
                };
                self.push(node, kernel, a, None)
            }
            Op::GlobalMaxPool | Op::GlobalSumPool => {
                let (a, e, _) = self.int_operand(node, node.inputs[0])?;
                let xd = self.dims(node.inputs[0]);
                let max = matches!(node.op, Op::GlobalMaxPool);
                if xd.len() != 4 || (max && e == Elem::I32) {
                    return Err(self.unsupported(node, "needs a 4-D low-bit input"));
                }
                let (kind, out) = if max {
                    let qmin = out_dt.quant_range().map_or(0, |r| r.0);
                    (PoolKind::Max { qmin }, e)
                } else {
                    (PoolKind::Sum, Elem::I32)
                };
                let k = Kernel::Global {
                    c: xd[1],
                    plane: xd[2] * xd[3],
                    kind,
                    io: (e, out),
                };
                self.push(node, k, a, None)
            }
            _ => Err(self.unsupported(node, "no JIT lowering for this op")),
        }
    }
}
