//! Element-wise regions: the connected runs of element-wise ops that compute a function
//! of one tensor, shared by `quantize-activations` (where quantizers go) and checked
//! again by `integerize` (which turns a quantized region into a `table`).
//!
//! A node is a *member* of the region rooted at value `r` when its op is element-wise
//! ([`fqc_ir::scalar::is_elementwise`]), every operand that is not a constant is `r` or
//! a member's result of the same region, its result has `r`'s shape, and its constant
//! operands are per-channel (all extents 1 except the one aligned with axis 1 of `r`).
//! Then every element of the result is a function of the element of `r` at the same
//! position and of its channel only — `hard_swish` spelled out as `x·clip(x+3,0,6)/6`,
//! SiLU as `x·sigmoid(x)`, a LeakyRelu after a per-channel affine are all one region
//! each. A value that is not a member result is a root of its own region.
//!
//! A region is *foldable* when every member is `relu` or `clip`, or — when the root is a
//! conv, gemm or matmul, whose result `integerize` keeps as an accumulator — `add` /
//! `sub` / `mul` by a constant or division by one: those fold exactly into an
//! accumulator's per-channel affine and clip (`integerize_acc`), or (relu) into the
//! quantizer of a join or pool, so the region needs no quantizer at its root. Any other
//! member makes it a *table region*: `integerize` evaluates it at every level of the
//! quantized root, which therefore must be an activation point.
//!
//! Soundness: the analysis only decides where quantizers go; it never changes what a
//! float graph computes. `integerize` re-checks each table it builds (same operands,
//! same shape, per-channel constants) on the fake-quant graph itself and keeps a float
//! island wherever the check fails, so a wrong classification costs precision or speed,
//! never correctness.

use fqc_ir::scalar::is_elementwise;
use fqc_ir::{BinaryOp, Graph, Op, Value};

use crate::edit::users;

/// The region structure of a graph (see the module docs).
pub(crate) struct Regions {
    /// For each value: the root of the region its producer is a member of.
    pub member_root: Vec<Option<Value>>,
    /// For each value: whether it is the root of a table region.
    pub table_root: Vec<bool>,
    /// For each value: whether some user is not a member of its own region (or it is a
    /// graph output): the region's result is needed outside it.
    pub exits: Vec<bool>,
}

/// Whether constant `c` is per-channel for an operand of shape `shape` (right-aligned:
/// only the extent aligned with axis 1 may exceed 1, and it must equal it).
pub(crate) fn per_channel_shape(c: &[usize], shape: &fqc_ir::Shape) -> bool {
    let rank = shape.rank();
    if c.len() > rank {
        return false;
    }
    let off = rank - c.len();
    c.iter().enumerate().all(|(i, &d)| {
        d == 1
            || (off + i == 1
                && shape
                    .0
                    .get(1)
                    .and_then(|x| x.fixed())
                    .is_some_and(|e| e == d as u64))
    })
}

/// Whether the member op folds into what `integerize` makes of the root (see the module
/// docs); `const_at` tells which operand positions hold constants, `acc_root` whether
/// the root is a layer's accumulator. A relu or clip folds into anything (an
/// accumulator's clip, or the relu a join's or pool's quantizer absorbs); an affine by
/// constants only into an accumulator.
fn foldable(op: &Op, const_at: &[bool], acc_root: bool) -> bool {
    match op {
        Op::Relu | Op::Clip { .. } => true,
        Op::Binary(BinaryOp::Add | BinaryOp::Sub | BinaryOp::Mul) => {
            acc_root && const_at.iter().filter(|&&c| c).count() == 1
        }
        Op::Binary(BinaryOp::Div) => acc_root && const_at == [false, true],
        _ => false,
    }
}

/// Whether `integerize` makes an accumulator of the value `v`: a conv, gemm or matmul.
fn is_acc_root(g: &Graph, v: Value) -> bool {
    match g.value(v).def {
        fqc_ir::ValueDef::Node(n) => {
            matches!(g.node(n).op, Op::Conv { .. } | Op::Gemm { .. } | Op::MatMul)
        }
        _ => false,
    }
}

impl Regions {
    /// Analyses the scheduled nodes of `g`.
    pub fn of(g: &Graph) -> Regions {
        let n = g.num_values();
        let mut member_root: Vec<Option<Value>> = vec![None; n];
        let mut table_root = vec![false; n];
        let root_of = |mr: &[Option<Value>], v: Value| mr[v.index()].unwrap_or(v);
        for (_, node) in g.nodes() {
            if !is_elementwise(&node.op) {
                continue;
            }
            let const_at: Vec<bool> = node
                .inputs
                .iter()
                .map(|&v| g.const_tensor(v).is_some())
                .collect();
            let mut roots = node
                .inputs
                .iter()
                .zip(&const_at)
                .filter(|(_, &c)| !c)
                .map(|(&v, _)| root_of(&member_root, v));
            let Some(r) = roots.next() else { continue };
            if roots.any(|x| x != r) {
                continue;
            }
            let shape = &g.ty(r).shape;
            if g.ty(node.output).shape != *shape {
                continue;
            }
            let consts_ok = node.inputs.iter().zip(&const_at).all(|(&v, &c)| {
                !c || g
                    .const_tensor(v)
                    .is_some_and(|t| per_channel_shape(&t.shape, shape))
            });
            if !consts_ok {
                continue;
            }
            member_root[node.output.index()] = Some(r);
            if !foldable(&node.op, &const_at, is_acc_root(g, r)) {
                table_root[r.index()] = true;
            }
        }
        let uses = users(g);
        let mut exits = vec![false; n];
        for v in 0..n {
            let val = Value(v as u32);
            let own_root = member_root[v].unwrap_or(val);
            exits[v] = g.outputs().contains(&val)
                || uses[v]
                    .iter()
                    .any(|&u| member_root[g.node(u).output.index()] != Some(own_root));
        }
        Regions {
            member_root,
            table_root,
            exits,
        }
    }
}
