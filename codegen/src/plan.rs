//! From an integer-only [`Graph`] to a list of steps: which buffers exist, which kernel
//! each node becomes, and what must hold for the kernel to be exact.
//!
//! * Only nodes the outputs depend on are planned, in schedule order.
//! * Every non-constant value lives in one byte buffer of `numel(batch) · size(elem)`
//!   bytes, with the storage [`Tensor`] uses (`u8`, `i8`, `i32`, or `f32` after the
//!   output `dequantize`). `reshape`/`flatten` alias their operand's buffer: row-major
//!   data with the same element count is the same bytes.
//! * Operands that must be constants (weights, bias, thresholds, factors) are read
//!   here and baked into the kernel; their storage and shape are checked.
//! * **Overflow proofs.** Each integer value gets a bound on its magnitude: its storage
//!   range for low-bit types, and for an i32 result the bound its kernel guarantees
//!   (`|bias| + max|x|·Σ|w|` per channel for `qconv`/`qgemm`, `taps·max|x|` for sums,
//!   `|ka|·max|a| + |kb|·max|b|` for `scaled_add`). A node whose bound exceeds `i32::MAX`
//!   is refused as `Unsupported` (the interpreter fails on an actual overflow; the
//!   JIT's wrapping arithmetic would not), so an accepted kernel never wraps.
//! * Anything else is `Unsupported`, naming the node and op.

use std::collections::HashMap;
use std::sync::Arc;

use fqc_ir::{DType, Dim, Graph, NodeData, Op, Scale, Tensor, Value, ValueDef};

use crate::emit::conv::{ConvSpec, Form};
use crate::emit::misc::{AddSpec, PoolKind, PoolSpec, RequantSpec};
use crate::emit::Elem;
use crate::error::{CodegenError, Result};
use crate::native::gemv::NativeGemv;
use crate::native::levels::NativeRequant;
use crate::native::pool::NativePool;
use crate::native::NativeConv;
use crate::ConvForm;

/// Element storage of a buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum BufElem {
    Int(Elem),
    F32,
}

impl BufElem {
    pub(crate) fn size(self) -> usize {
        match self {
            BufElem::Int(e) => e.size(),
            BufElem::F32 => 4,
        }
    }
}

/// One run-time buffer: element storage and the static type's axis 0 and the product
/// of the other extents.
#[derive(Clone, Debug)]
pub(crate) struct Buf {
    pub elem: BufElem,
    pub axis0: Dim,
    pub per_item: usize,
}

impl Buf {
    pub(crate) fn bytes(&self, batch: usize) -> Option<usize> {
        let n = self.axis0.resolve(batch as u64) as usize;
        n.checked_mul(self.per_item)?.checked_mul(self.elem.size())
    }
}

/// A kernel to JIT.
#[derive(Clone, Debug)]
pub(crate) enum Kernel {
    Conv(ConvSpec, Form),
    /// A `qconv`/`qgemm` run by the Rust AVX2 kernel (`native/`), not JIT'd.
    Native(Box<NativeConv>),
    /// A `requantize` (or `scaled_add` + `requantize`) run by `native/levels.rs`.
    NativeRequant(NativeRequant),
    /// A `maxpool`/`sumpool` of a low-bit tensor run by `native/pool.rs`.
    NativePool(NativePool),
    /// A `qgemm` (one product per image) run by `native/gemv.rs`.
    NativeGemv(NativeGemv),
    Requant(RequantSpec),
    Add(AddSpec),
    Pool(PoolSpec),
    Global {
        c: usize,
        plane: usize,
        kind: PoolKind,
        io: (Elem, Elem),
    },
}

impl Kernel {
    /// Whether the step runs Rust code (`native/`) instead of a JIT'd kernel.
    pub(crate) fn is_native(&self) -> bool {
        matches!(
            self,
            Kernel::Native(_)
                | Kernel::NativeRequant(_)
                | Kernel::NativePool(_)
                | Kernel::NativeGemv(_)
        )
    }
}

/// How `dequantize` maps its operand to f32.
#[derive(Clone, Debug)]
pub(crate) enum Deq {
    /// `q * s`.
    Tensor(f32),
    /// `q * scale[c] (+ bias[c])`, `c` the index along an axis with `inner` elements
    /// after it.
    Channel {
        inner: usize,
        scale: Vec<f32>,
        bias: Option<Vec<f32>>,
    },
}

/// One step of a run.
#[derive(Clone, Debug)]
pub(crate) enum Step {
    Quantize {
        input: usize,
        out: usize,
        dtype: DType,
        scale: f32,
        offset: f32,
    },
    Kernel {
        name: String,
        kernel: Box<Kernel>,
        a: usize,
        b: Option<usize>,
        out: usize,
        consts: Vec<u8>,
        scratch: usize,
    },
    Dequantize {
        x: usize,
        out: usize,
        deq: Deq,
    },
    /// A node run by the interpreter's kernel (`interp_step.rs`).
    Interp {
        node: Box<NodeData>,
        ins: Vec<crate::interp_step::Operand>,
        out: usize,
    },
}

/// The plan of a whole graph.
#[derive(Debug)]
pub(crate) struct Plan {
    pub bufs: Vec<Buf>,
    pub steps: Vec<Step>,
    /// Buffer of each graph output, with the output's axis 0 and other extents.
    pub outputs: Vec<(usize, Dim, Vec<usize>)>,
    /// The graph, kept when an interpreter step needs it (types and constants).
    pub graph: Option<Arc<Graph>>,
}

pub(crate) fn elem_of(d: DType) -> Option<Elem> {
    match d {
        DType::Int { signed: true, .. } | DType::Ternary => Some(Elem::I8),
        DType::Int { signed: false, .. } => Some(Elem::U8),
        DType::I32 => Some(Elem::I32),
        DType::F32 | DType::I64 => None,
    }
}

pub(crate) struct Planner<'g> {
    pub(crate) g: &'g Graph,
    pub(crate) plan: Plan,
    pub(crate) buf_of: HashMap<Value, usize>,
    /// Bound on |element| of each integer buffer.
    pub(crate) bound: HashMap<usize, i64>,
    /// The convolution form asked for by [`crate::CompileOptions::force_form`].
    pub(crate) force: Option<ConvForm>,
    /// Uses of each value (by value index) by live nodes and graph outputs.
    pub(crate) uses: Vec<u32>,
    /// The graph shared by the interpreter steps (cloned once, on first need).
    shared: Option<Arc<Graph>>,
}

/// Plans `g` (see the module docs).
pub(crate) fn plan(g: &Graph, force: Option<ConvForm>) -> Result<Plan> {
    fqc_ir::verify(g).map_err(|e| CodegenError::Invalid(e.to_string()))?;
    let mut needed = vec![false; g.num_values()];
    g.outputs().iter().for_each(|v| needed[v.index()] = true);
    let mut live = Vec::new();
    let mut uses = vec![0u32; g.num_values()];
    g.outputs().iter().for_each(|v| uses[v.index()] += 1);
    for &n in g.order().iter().rev() {
        let node = g.node(n);
        if needed[node.output.index()] {
            for v in &node.inputs {
                needed[v.index()] = true;
                uses[v.index()] += 1;
            }
            live.push(n);
        }
    }
    live.reverse();
    let mut p = Planner {
        g,
        plan: Plan {
            bufs: Vec::new(),
            steps: Vec::new(),
            outputs: Vec::new(),
            graph: None,
        },
        buf_of: HashMap::new(),
        bound: HashMap::new(),
        force,
        uses,
        shared: None,
    };
    for n in live {
        p.node(g.node(n))?;
    }
    for &v in g.outputs() {
        // A graph whose output is one of its inputs or a constant is valid IR (the
        // interpreter runs it) but no compiler makes one; the JIT only writes node
        // results, so it declines such a graph instead of calling it invalid.
        let id = *p.buf_of.get(&v).ok_or_else(|| CodegenError::Unsupported {
            node: g
                .value(v)
                .name
                .clone()
                .unwrap_or_else(|| format!("%{}", v.0)),
            op: "output",
            msg: "a graph output that is a graph input or a constant, not a node's result".into(),
        })?;
        let dims = &g.ty(v).shape.0;
        let rest = dims.iter().skip(1).map(|d| d.resolve(1) as usize).collect();
        let axis0 = dims.first().copied().unwrap_or(Dim::Fixed(1));
        p.plan.outputs.push((id, axis0, rest));
    }
    Ok(p.plan)
}

impl<'g> Planner<'g> {
    pub(crate) fn unsupported(&self, node: &NodeData, msg: impl Into<String>) -> CodegenError {
        CodegenError::Unsupported {
            node: if node.name.is_empty() {
                format!("%{}", node.output.0)
            } else {
                node.name.clone()
            },
            op: node.op.name(),
            msg: msg.into(),
        }
    }

    pub(crate) fn new_buf(&mut self, node: &NodeData, elem: BufElem) -> Result<usize> {
        let ty = self.g.ty(node.output);
        let Some(&axis0) = ty.shape.0.first() else {
            return Err(self.unsupported(node, "rank-0 results"));
        };
        let rest: Option<u64> = ty.shape.0[1..]
            .iter()
            .try_fold(1u64, |a, d| a.checked_mul(d.fixed()?));
        let per_item = rest
            .and_then(|r| usize::try_from(r).ok())
            .ok_or_else(|| self.unsupported(node, "the batch may only be axis 0"))?;
        self.plan.bufs.push(Buf {
            elem,
            axis0,
            per_item,
        });
        let id = self.plan.bufs.len() - 1;
        self.buf_of.insert(node.output, id);
        Ok(id)
    }

    /// The buffer of a computed integer operand, its element storage and bound.
    pub(crate) fn int_operand(&self, node: &NodeData, v: Value) -> Result<(usize, Elem, i64)> {
        let id = *self
            .buf_of
            .get(&v)
            .ok_or_else(|| self.unsupported(node, "operand is not a computed value"))?;
        match self.plan.bufs[id].elem {
            BufElem::Int(e) => Ok((id, e, self.bound[&id])),
            BufElem::F32 => Err(self.unsupported(node, "operand is f32")),
        }
    }

    pub(crate) fn constant(&self, node: &NodeData, v: Value, what: &str) -> Result<&'g Tensor> {
        self.g
            .const_tensor(v)
            .ok_or_else(|| self.unsupported(node, format!("{what} must be a constant with data")))
    }

    pub(crate) fn dims(&self, v: Value) -> Vec<usize> {
        self.g.ty(v).shape.resolve(1)
    }

    /// The graph as shared by interpreter steps.
    pub(crate) fn shared_graph(&mut self) -> Arc<Graph> {
        self.shared
            .get_or_insert_with(|| Arc::new(self.g.clone()))
            .clone()
    }

    /// Plans `node`: its JIT'd or native kernel, or else an interpreter step.
    fn node(&mut self, node: &NodeData) -> Result<()> {
        match self.lowered(node) {
            Err(CodegenError::Unsupported { .. }) => self.interp_step(node),
            r => r,
        }
    }

    fn lowered(&mut self, node: &NodeData) -> Result<()> {
        let g = self.g;
        let out_ty = g.ty(node.output);
        match &node.op {
            Op::Quantize {
                dtype,
                scale,
                offset,
            } => {
                let ValueDef::Input(input) = g.value(node.inputs[0]).def else {
                    return Err(self.unsupported(node, "only graph inputs are quantized"));
                };
                let e = elem_of(*dtype)
                    .filter(|_| dtype.is_low_bit())
                    .ok_or_else(|| self.unsupported(node, format!("quantize to {dtype}")))?;
                let out = self.new_buf(node, BufElem::Int(e))?;
                let (lo, hi) = dtype.quant_range().unwrap_or((0, 0));
                self.bound.insert(out, lo.abs().max(hi.abs()));
                self.plan.steps.push(Step::Quantize {
                    input,
                    out,
                    dtype: *dtype,
                    scale: scale.get(),
                    offset: offset.get(),
                });
            }
            Op::Reshape { .. } | Op::Flatten { .. } => {
                let id = *self
                    .buf_of
                    .get(&node.inputs[0])
                    .ok_or_else(|| self.unsupported(node, "operand is not a computed value"))?;
                if g.ty(node.inputs[0]).shape.0.first() != out_ty.shape.0.first() {
                    return Err(self.unsupported(node, "reshape across the batch axis"));
                }
                self.buf_of.insert(node.output, id);
            }
            Op::Dequantize => self.dequantize(node)?,
            _ => self.kernel(node)?,
        }
        Ok(())
    }

    fn dequantize(&mut self, node: &NodeData) -> Result<()> {
        let g = self.g;
        let x = node.inputs[0];
        let (xb, _, _) = self.int_operand(node, x)?;
        let shape = self.dims(x);
        let channel = |axis: usize, t: &Tensor| -> Result<(usize, Vec<f32>)> {
            let s = t
                .as_f32()
                .filter(|s| shape.get(axis) == Some(&s.len()))
                .ok_or_else(|| self.unsupported(node, "per-channel scales do not fit"))?;
            Ok((shape[axis + 1..].iter().product(), s.to_vec()))
        };
        let deq = if node.inputs.len() > 1 {
            let (inner, scale) = channel(1, self.constant(node, node.inputs[1], "scale")?)?;
            let bias = match node.inputs.get(2) {
                Some(&b) => Some(channel(1, self.constant(node, b, "bias")?)?.1),
                None => None,
            };
            Deq::Channel { inner, scale, bias }
        } else {
            match &g.ty(x).scale {
                Some(Scale::Tensor(s)) => Deq::Tensor(s.get()),
                Some(Scale::Channel { axis, scales }) => {
                    let (inner, scale) = channel(*axis, self.constant(node, *scales, "scales")?)?;
                    Deq::Channel {
                        inner,
                        scale,
                        bias: None,
                    }
                }
                None => return Err(self.unsupported(node, "operand type has no scale")),
            }
        };
        let out = self.new_buf(node, BufElem::F32)?;
        self.plan.steps.push(Step::Dequantize { x: xb, out, deq });
        Ok(())
    }
}
