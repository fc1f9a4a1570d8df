//! The reference interpreter: the semantics of every [`Op`], float and bit-exact
//! integer, and the ground truth that passes and the JIT are checked against.
//!
//! Every float kernel follows the ONNX operator definition (and, where ONNX leaves room,
//! what ONNX Runtime's CPU provider does) in f32, NCHW. The quantization and integer ops
//! (and layout ops / max pooling on integer operands) are in `quant.rs`, exactly as
//! their doc comments in `op.rs` define them. Values are stored as [`TensorData`]: f32,
//! `I8` (signed low-bit and ternary), `U8` (unsigned low-bit) or `I32` (accumulators);
//! graph inputs are f32. This file is the driver:
//!
//! * **Binding.** Inputs bind to `g.inputs()` in order. Each is checked against its
//!   static type (storage kind, rank, every fixed extent); the batch size is axis 0 of
//!   the inputs whose type has `N`, and must agree across them and be ≥ 1.
//! * **Planning**, before anything is allocated: only nodes the outputs depend on run;
//!   each is re-typed with [`infer`](crate::infer::infer) against its operands so a stale
//!   type is an error instead of an out-of-bounds kernel; constants must carry data of
//!   their declared type; and every value's element count at the bound batch size is
//!   computed with checked arithmetic and refused above 2^31. Because operands then
//!   always have exactly their resolved types, kernels can index without further checks.
//! * **Lifetimes.** The last use of every value is computed once; an intermediate is
//!   freed right after it, and single-operand ops reuse their operand's buffer in place
//!   when it dies at that node.
//! * **Threads.** With `threads > 1` the batch is cut into contiguous chunks run on
//!   scoped threads and the outputs are concatenated along axis 0. That is only done when
//!   the graph provably treats batch items independently (see `batch_separable`);
//!   otherwise it runs on one thread, which gives the same result (`split.rs`).

mod conv;
mod elementwise;
mod int_ops;
mod layout;
mod linalg;
mod pool;
mod qlinear;
mod quant;
mod reduce;
mod select;
#[allow(unsafe_code)]
mod sgemm;
mod split;

use std::borrow::Cow;

use crate::error::{IrError, Result};
use crate::graph::{Graph, NodeData, Value, ValueDef};
use crate::op::Op;
use crate::tensor::{Tensor, TensorData};
use crate::types::{DType, Dim, TensorType};

/// Execution options.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// Worker threads; the batch is split into this many contiguous chunks.
    pub threads: usize,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions { threads: 1 }
    }
}

/// Largest element count any value may have.
const MAX_ELEMENTS: u64 = 1 << 31;

/// Runs `g` on `inputs` (bound to `g.inputs()` in order) on one thread.
pub fn run(g: &Graph, inputs: &[Tensor]) -> Result<Vec<Tensor>> {
    run_with(g, inputs, &RunOptions::default())
}

/// Runs `g` on `inputs` with `opts`.
pub fn run_with(g: &Graph, inputs: &[Tensor], opts: &RunOptions) -> Result<Vec<Tensor>> {
    let batch = bind(g, inputs)?;
    let plan = Plan::new(g, batch)?;
    let threads = opts.threads.clamp(1, batch.max(1));
    if threads > 1 && plan.separable {
        split::run_split(g, &plan, inputs, batch, threads)
    } else {
        execute(g, &plan, inputs.iter().collect())
    }
}

fn value_name(g: &Graph, v: Value) -> String {
    match &g.value(v).name {
        Some(n) if !n.is_empty() => n.clone(),
        _ => format!("%{}", v.0),
    }
}

fn type_string(t: &TensorType) -> String {
    format!("{}{}", t.dtype, t.shape)
}

fn storage_name(d: &TensorData) -> &'static str {
    match d {
        TensorData::F32(_) => "f32",
        TensorData::I32(_) => "i32",
        TensorData::I64(_) => "i64",
        TensorData::I8(_) => "i8",
        TensorData::U8(_) => "u8",
    }
}

fn shape_string(s: &[usize]) -> String {
    let dims: Vec<String> = s.iter().map(|d| d.to_string()).collect();
    format!("[{}]", dims.join(","))
}

/// Checks the inputs against the graph signature and returns the batch size (1 if no
/// input has a batch dimension).
fn bind(g: &Graph, inputs: &[Tensor]) -> Result<usize> {
    if inputs.len() != g.inputs().len() {
        return Err(IrError::Input(format!(
            "the graph takes {} input(s), got {}",
            g.inputs().len(),
            inputs.len()
        )));
    }
    let mut batch: Option<(usize, String)> = None;
    for (&v, t) in g.inputs().iter().zip(inputs) {
        let ty = g.ty(v);
        let name = value_name(g, v);
        let given = format!("{}{}", storage_name(&t.data), shape_string(&t.shape));
        let mismatch = || {
            IrError::Input(format!(
                "input `{name}` expects {}, got {given}",
                type_string(ty)
            ))
        };
        if ty.dtype != DType::F32 {
            return Err(IrError::Input(format!(
                "input `{name}` has type {}; the interpreter runs f32 inputs only",
                type_string(ty)
            )));
        }
        if !t.data.holds(ty.dtype) || t.shape.len() != ty.shape.rank() {
            return Err(mismatch());
        }
        for (d, &n) in ty.shape.0.iter().zip(&t.shape) {
            match d {
                Dim::Fixed(f) if *f != n as u64 => return Err(mismatch()),
                Dim::Fixed(_) => {}
                Dim::Batch => match &batch {
                    Some((b, other)) if *b != n => {
                        return Err(IrError::Input(format!(
                            "input `{name}` has batch size {n} but input `{other}` has {b}"
                        )))
                    }
                    Some(_) => {}
                    None => batch = Some((n, name.clone())),
                },
            }
        }
        let numel = t.shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
        if numel != Some(t.data.len()) {
            return Err(IrError::Input(format!(
                "input `{name}`: shape {} does not match its {} data elements",
                shape_string(&t.shape),
                t.data.len()
            )));
        }
    }
    match batch {
        Some((0, name)) => Err(IrError::Input(format!(
            "input `{name}`: batch size must be at least 1, got 0"
        ))),
        Some((b, _)) => Ok(b),
        None => Ok(1),
    }
}

/// What the driver precomputes once per graph and batch size.
#[derive(Debug)]
pub(crate) struct Plan {
    /// Live nodes in schedule order, as indices into `g.order()`.
    nodes: Vec<usize>,
    /// For each value: the position in `nodes` of its last use; `usize::MAX` for graph
    /// outputs (never freed); `None` if unused.
    last_use: Vec<Option<usize>>,
    /// Whether batch items are independent, so the batch can be split across threads.
    separable: bool,
}

fn eval_err(g: &Graph, node: &NodeData, msg: String) -> IrError {
    IrError::Eval {
        node: if node.name.is_empty() {
            value_name(g, node.output)
        } else {
            node.name.clone()
        },
        op: node.op.name(),
        msg,
    }
}

/// The constant behind `v`, checked against its declared type.
fn const_tensor(g: &Graph, v: Value) -> std::result::Result<&Tensor, String> {
    let ValueDef::Const(c) = g.value(v).def else {
        return Err(format!("value `{}` is not a constant", value_name(g, v)));
    };
    let ty = g.ty(v);
    let Some(t) = g.const_data(c).tensor.as_ref() else {
        return Err(format!(
            "constant `{}` has no data (only its digest is known)",
            value_name(g, v)
        ));
    };
    // Storage must hold the declared dtype; which dtypes an op accepts is type
    // inference's business.
    let fits = t.data.holds(ty.dtype)
        && ty.shape.as_fixed().is_some_and(|s| {
            s.len() == t.shape.len() && s.iter().zip(&t.shape).all(|(&a, &b)| a == b as u64)
        })
        && t.shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d)) == Some(t.data.len());
    if !fits {
        return Err(format!(
            "constant `{}` holds {}{} but is typed {}",
            value_name(g, v),
            storage_name(&t.data),
            shape_string(&t.shape),
            type_string(ty)
        ));
    }
    Ok(t)
}

impl Plan {
    fn new(g: &Graph, batch: usize) -> Result<Plan> {
        let nv = g.num_values();
        let in_range = |v: Value| v.index() < nv;
        for &v in g.outputs() {
            if !in_range(v) {
                return Err(IrError::Invalid(format!("output %{} does not exist", v.0)));
            }
        }
        let order = g.order();
        // Liveness: walk the schedule backwards from the outputs.
        let mut needed = vec![false; nv];
        g.outputs().iter().for_each(|v| needed[v.index()] = true);
        let mut live = Vec::new();
        for (pos, &n) in order.iter().enumerate().rev() {
            let node = g.node(n);
            if !in_range(node.output) || node.inputs.iter().any(|&v| !in_range(v)) {
                return Err(eval_err(
                    g,
                    node,
                    "refers to a value that does not exist".into(),
                ));
            }
            if needed[node.output.index()] {
                node.inputs.iter().for_each(|v| needed[v.index()] = true);
                live.push(pos);
            }
        }
        live.reverse();

        let mut defined = vec![false; nv];
        g.inputs().iter().for_each(|v| defined[v.index()] = true);
        let mut last_use = vec![None; nv];
        let mut separable = true;
        let too_big = |v: Value, what: String| -> Result<()> {
            match g.ty(v).shape.numel(batch as u64) {
                Some(n) if n <= MAX_ELEMENTS => Ok(()),
                _ => Err(IrError::Input(format!(
                    "{what} would hold more than 2^31 elements at batch size {batch} ({})",
                    type_string(g.ty(v))
                ))),
            }
        };
        for (i, &pos) in live.iter().enumerate() {
            let node = g.node(order[pos]);
            for &v in &node.inputs {
                if g.is_const(v) {
                    const_tensor(g, v).map_err(|m| eval_err(g, node, m))?;
                    defined[v.index()] = true;
                } else if !defined[v.index()] {
                    return Err(eval_err(
                        g,
                        node,
                        format!(
                            "operand `{}` is used before it is defined",
                            value_name(g, v)
                        ),
                    ));
                }
                last_use[v.index()] = Some(i);
            }
            let tys: Vec<&TensorType> = node.inputs.iter().map(|&v| g.ty(v)).collect();
            let want = crate::infer::infer(&node.op, &tys).map_err(|m| eval_err(g, node, m))?;
            let have = g.ty(node.output);
            if want.dtype != have.dtype || want.shape != have.shape {
                return Err(eval_err(
                    g,
                    node,
                    format!(
                        "result is typed {} but its operands give {}",
                        type_string(have),
                        type_string(&want)
                    ),
                ));
            }
            too_big(
                node.output,
                format!("the result of node `{}` ({})", node.name, node.op.name()),
            )?;
            defined[node.output.index()] = true;
            separable &= split::node_separable(&node.op, &tys, have);
        }
        for &v in g.outputs() {
            if g.is_const(v) {
                const_tensor(g, v).map_err(IrError::Invalid)?;
            } else if !defined[v.index()] {
                return Err(IrError::Invalid(format!(
                    "output `{}` is never computed",
                    value_name(g, v)
                )));
            }
            last_use[v.index()] = Some(usize::MAX);
            separable &= g.ty(v).shape.0.first() == Some(&Dim::Batch);
        }
        Ok(Plan {
            nodes: live,
            last_use,
            separable,
        })
    }
}

/// The f32 payload of an operand (guaranteed by planning).
fn f32s<'t>(g: &Graph, node: &NodeData, t: &'t Tensor) -> Result<&'t [f32]> {
    t.as_f32()
        .ok_or_else(|| eval_err(g, node, "operand is not f32".into()))
}

/// Runs the planned nodes on one batch (or chunk) of inputs.
pub(crate) fn execute(g: &Graph, plan: &Plan, inputs: Vec<&Tensor>) -> Result<Vec<Tensor>> {
    let batch = g
        .inputs()
        .iter()
        .zip(&inputs)
        .find(|(v, _)| g.ty(**v).shape.has_batch())
        .map_or(1, |(_, t)| t.shape[0]);
    let mut slots: Vec<Option<Cow<'_, Tensor>>> = vec![None; g.num_values()];
    for (&v, t) in g.inputs().iter().zip(inputs) {
        if plan.last_use[v.index()].is_some() {
            slots[v.index()] = Some(Cow::Borrowed(t));
        }
    }
    let order = g.order();
    for (i, &pos) in plan.nodes.iter().enumerate() {
        let node = g.node(order[pos]);
        for &v in &node.inputs {
            if slots[v.index()].is_none() && g.is_const(v) {
                let t = const_tensor(g, v).map_err(|m| eval_err(g, node, m))?;
                slots[v.index()] = Some(Cow::Borrowed(t));
            }
        }
        let out_shape = g.ty(node.output).shape.resolve(batch as u64);
        let x = node.inputs[0];
        let dies_here = plan.last_use[x.index()] == Some(i)
            && node.inputs.iter().filter(|&&v| v == x).count() == 1;
        let taken = if dies_here {
            slots[x.index()].take()
        } else {
            None
        };
        let result = {
            let mut args: Vec<&Tensor> = Vec::with_capacity(node.inputs.len());
            for &v in &node.inputs {
                if v == x && taken.is_some() {
                    continue;
                }
                let t = slots[v.index()].as_deref().ok_or_else(|| {
                    eval_err(
                        g,
                        node,
                        format!("operand `{}` is not available", value_name(g, v)),
                    )
                })?;
                args.push(t);
            }
            let first = match taken {
                Some(t) => t,
                None => Cow::Borrowed(args.remove(0)),
            };
            eval(g, node, first, &args, out_shape)?
        };
        for &v in &node.inputs {
            if plan.last_use[v.index()] == Some(i) {
                slots[v.index()] = None;
            }
        }
        if plan.last_use[node.output.index()].is_some() {
            slots[node.output.index()] = Some(Cow::Owned(result));
        }
    }
    g.outputs()
        .iter()
        .map(|&v| match &slots[v.index()] {
            Some(t) => Ok(t.clone().into_owned()),
            None => const_tensor(g, v).cloned().map_err(IrError::Invalid),
        })
        .collect()
}

/// Evaluates node `node` of `g` on its operand values `operands` (one per input, in
/// order, constants included) at batch size `batch`: the step a JIT runs for an op it
/// has no code of its own for. The operands must have the node's operand types (their
/// storage and, at `batch`, their shapes), as the JIT's buffers do.
pub fn eval_node(g: &Graph, node: &NodeData, operands: &[&Tensor], batch: usize) -> Result<Tensor> {
    if operands.len() != node.inputs.len() || operands.is_empty() {
        return Err(eval_err(g, node, "wrong operand count".into()));
    }
    for (&v, t) in node.inputs.iter().zip(operands) {
        let want = g.ty(v).shape.resolve(batch as u64);
        if t.shape != want || !t.data.holds(g.ty(v).dtype) || t.numel() != t.data.len() {
            return Err(eval_err(
                g,
                node,
                format!("operand `{}` does not have its type", value_name(g, v)),
            ));
        }
    }
    let shape = g.ty(node.output).shape.resolve(batch as u64);
    eval(g, node, Cow::Borrowed(operands[0]), &operands[1..], shape)
}

/// Evaluates one node: `x` is operand 0 (owned when it dies here, so unary ops can
/// work in place), `rest` the other operands.
fn eval(
    g: &Graph,
    node: &NodeData,
    x: Cow<'_, Tensor>,
    rest: &[&Tensor],
    shape: Vec<usize>,
) -> Result<Tensor> {
    if !node.op.is_float_op() || !matches!(x.data, TensorData::F32(_)) {
        return quant::eval(g, node, x, rest, shape);
    }
    let numel: usize = shape.iter().product();
    let r = |i: usize| f32s(g, node, rest[i]);
    let data: Vec<f32> = match &node.op {
        Op::Quantize { .. }
        | Op::Dequantize
        | Op::QConv { .. }
        | Op::QGemm { .. }
        | Op::Requantize { .. }
        | Op::ScaledAdd
        | Op::SumPool { .. }
        | Op::GlobalSumPool
        | Op::Table { .. }
        | Op::QMul => {
            return Err(eval_err(
                g,
                node,
                "internal error: integer op reached the float kernels".into(),
            ))
        }
        Op::Unary(u) => elementwise::unary(*u, owned_f32(g, node, x)?),
        Op::PRelu => elementwise::prelu(f32s(g, node, &x)?, (r(0)?, &rest[0].shape), &shape),
        Op::Pad { pads, mode, value } => {
            let pads: Vec<usize> = pads.iter().map(|&p| p as usize).collect();
            select::pad(
                f32s(g, node, &x)?,
                &x.shape,
                &pads,
                *mode,
                value.get(),
                &shape,
            )
        }
        Op::Reduce { kind, axes, .. } => {
            reduce::reduce_f32(f32s(g, node, &x)?, &x.shape, axes, *kind)
        }
        Op::Slice {
            axes,
            starts,
            steps,
            ..
        } => select::slice(f32s(g, node, &x)?, &x.shape, axes, starts, steps, &shape),
        Op::Gather { axis } => {
            let idx = rest[0]
                .as_i64()
                .ok_or_else(|| eval_err(g, node, "gather indices are not i64".into()))?;
            select::gather(
                f32s(g, node, &x)?,
                &x.shape,
                *axis as usize,
                idx,
                &rest[0].shape,
                &shape,
            )
        }
        Op::Expand { .. } => select::expand(f32s(g, node, &x)?, &x.shape, &shape),
        Op::Tile { .. } => select::tile(f32s(g, node, &x)?, &x.shape, &shape),
        Op::Resize {
            mode: crate::op::ResizeMode::Linear,
            coord,
            scale_h,
            scale_w,
            ..
        } => select::resize_linear(
            f32s(g, node, &x)?,
            &x.shape,
            *coord,
            (scale_h.get(), scale_w.get()),
            (shape[2], shape[3]),
        ),
        Op::Resize { .. } => {
            let (rows, cols) = resize_maps(&node.op, &x.shape, &shape);
            select::resize_nearest(f32s(g, node, &x)?, &x.shape, &rows, &cols)
        }
        Op::Relu => elementwise::relu(owned_f32(g, node, x)?),
        Op::Clip { min, max } => elementwise::clip(owned_f32(g, node, x)?, min.get(), max.get()),
        Op::BatchNorm { epsilon } => {
            let params = [r(0)?, r(1)?, r(2)?, r(3)?];
            elementwise::batchnorm(owned_f32(g, node, x)?, &shape, params, epsilon.get())
        }
        Op::Reshape { .. } | Op::Flatten { .. } => owned_f32(g, node, x)?,
        Op::Binary(b) => {
            let a = f32s(g, node, &x)?;
            elementwise::binary(*b, (a, &x.shape), (r(0)?, &rest[0].shape), &shape)
        }
        Op::Sum => {
            let mut ops = vec![(f32s(g, node, &x)?, x.shape.as_slice())];
            for (i, t) in rest.iter().enumerate() {
                ops.push((r(i)?, t.shape.as_slice()));
            }
            elementwise::sum(&ops, &shape)
        }
        Op::Softmax { axis } => elementwise::softmax(f32s(g, node, &x)?, &x.shape, *axis as usize),
        Op::Lrn {
            size,
            alpha,
            beta,
            bias,
        } => elementwise::lrn(
            f32s(g, node, &x)?,
            &x.shape,
            *size as usize,
            (alpha.get(), beta.get(), bias.get()),
        ),
        Op::Conv { window, group } => conv::conv(
            (f32s(g, node, &x)?, &x.shape),
            (r(0)?, &rest[0].shape),
            rest.get(1).map(|_| r(1)).transpose()?,
            window,
            *group as usize,
            &shape,
        ),
        Op::MaxPool { window } => {
            pool::max_pool(f32s(g, node, &x)?, &x.shape, window, &shape, f32::MIN)
        }
        Op::AveragePool {
            window,
            count_include_pad,
        } => pool::avg_pool(
            f32s(g, node, &x)?,
            &x.shape,
            window,
            *count_include_pad,
            &shape,
        ),
        Op::GlobalAveragePool => pool::global_avg(f32s(g, node, &x)?, &x.shape),
        Op::GlobalMaxPool => pool::global_max(f32s(g, node, &x)?, &x.shape, f32::MIN),
        Op::Gemm {
            alpha,
            beta,
            trans_a,
            trans_b,
        } => linalg::gemm(
            (f32s(g, node, &x)?, &x.shape),
            (r(0)?, &rest[0].shape),
            rest.get(1)
                .map(|t| r(1).map(|d| (d, t.shape.as_slice())))
                .transpose()?,
            (alpha.get(), beta.get()),
            (*trans_a, *trans_b),
            &shape,
        ),
        Op::MatMul => linalg::matmul(
            (f32s(g, node, &x)?, &x.shape),
            (r(0)?, &rest[0].shape),
            &shape,
        ),
        Op::Concat { axis } => {
            let mut ops = vec![(f32s(g, node, &x)?, x.shape.as_slice())];
            for (i, t) in rest.iter().enumerate() {
                ops.push((r(i)?, t.shape.as_slice()));
            }
            layout::concat(&ops, *axis as usize, &shape)
        }
        Op::Transpose { perm } => {
            let perm: Vec<usize> = perm.iter().map(|&p| p as usize).collect();
            layout::transpose(f32s(g, node, &x)?, &x.shape, &perm)
        }
    };
    if data.len() != numel {
        return Err(eval_err(
            g,
            node,
            format!(
                "internal error: produced {} elements for shape {}",
                data.len(),
                shape_string(&shape)
            ),
        ));
    }
    Ok(Tensor {
        shape,
        data: TensorData::F32(data),
    })
}

/// The source rows and columns of a nearest `resize` from `input` to `out` (NCHW).
pub(crate) fn resize_maps(op: &Op, input: &[usize], out: &[usize]) -> (Vec<usize>, Vec<usize>) {
    let Op::Resize {
        coord,
        nearest,
        scale_h,
        scale_w,
        ..
    } = op
    else {
        return (Vec::new(), Vec::new());
    };
    (
        select::nearest_map(*coord, *nearest, scale_h.get(), input[2], out[2]),
        select::nearest_map(*coord, *nearest, scale_w.get(), input[3], out[3]),
    )
}

/// Operand 0's f32 buffer, moved out if owned, copied otherwise.
fn owned_f32(g: &Graph, node: &NodeData, x: Cow<'_, Tensor>) -> Result<Vec<f32>> {
    match x.into_owned().data {
        TensorData::F32(v) => Ok(v),
        _ => Err(eval_err(g, node, "operand is not f32".into())),
    }
}
