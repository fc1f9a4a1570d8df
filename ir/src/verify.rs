//! The verifier: checks every structural and typing invariant a well-formed graph keeps.
//!
//! Passes, the importer and the text parser all produce graphs through the same arena
//! API, which cannot stop a pass from leaving a stale type, a dangling id or a broken
//! schedule behind. [`verify`] re-establishes, from scratch and without trusting any id:
//!
//! * **Schedule**: every scheduled node exists and is scheduled once; every operand is a
//!   graph input, a constant, or the result of an *earlier* scheduled node (so the
//!   schedule is topological and evaluating it in order never reads an undefined value);
//!   each node's result value names that node as its definition.
//! * **Typing**: each node's stored result type equals [`infer`](crate::infer::infer) of
//!   its operand types (the one shape rule per op), and Conv windows never use
//!   `ceil_mode` (the text format has no way to say it, and Conv rounds down).
//! * **Types**: in every value's type the batch dimension appears only at axis 0. In
//!   the types of values reached (inputs, operands, results, outputs, scale constants)
//!   a per-tensor scale is positive and finite; a per-channel scale names an axis of the
//!   type and a constant `f32` vector (itself unscaled, so scale references cannot form
//!   cycles) whose extent equals the type's extent at that axis and whose known entries
//!   are positive and finite.
//! * **Constants**: their shape is fully fixed; a present payload is stored in the
//!   storage the dtype maps to, has the type's shape and element count, matches the
//!   stored digest, and (for low-bit types) keeps every element in the dtype's range.
//! * **Signature**: each graph input is a value defined as that input, input names are
//!   unique (a missing name counts as `""`), and every graph output is defined.
//!
//! Every id is bounds-checked before use, so `verify` never panics, whatever the graph.
//! Node errors use [`IrError::Type`] naming the node (its name, or `%k` of its result
//! when unnamed) and op; the rest are [`IrError::Invalid`]. Value ids in messages are
//! arena ids, which equal the text ids for parsed or compacted graphs.

use crate::error::{IrError, Result};
use crate::graph::{Graph, Node, Value, ValueDef};
use crate::infer;
use crate::op::Op;
use crate::tensor::TensorData;
use crate::text::fmt_type;
use crate::types::{DType, Dim, Scale, TensorType};
use std::collections::HashSet;

/// Checks all invariants of `g` (see the module docs); the first violation is returned.
pub fn verify(g: &Graph) -> Result<()> {
    let nv = g.num_values();
    let mut defined = vec![false; nv];
    let mut checked = vec![false; nv];
    let check = |v: Value, checked: &mut Vec<bool>| -> Result<()> {
        if !checked[v.index()] {
            checked[v.index()] = true;
            check_type(g, v).map_err(IrError::Invalid)?;
            if g.is_const(v) {
                check_const(g, v).map_err(IrError::Invalid)?;
            }
        }
        Ok(())
    };

    for (v, info) in g.values() {
        if info.ty.shape.0.iter().skip(1).any(|d| *d == Dim::Batch) {
            return Err(invalid(format!(
                "value %{} of type {}: the batch dimension N may only be axis 0",
                v.0,
                type_str(&info.ty)
            )));
        }
    }
    let mut names = HashSet::new();
    for (i, &v) in g.inputs().iter().enumerate() {
        if v.index() >= nv {
            return Err(invalid(format!(
                "graph input {i} is %{} which does not exist",
                v.0
            )));
        }
        let info = g.value(v);
        if info.def != ValueDef::Input(i) {
            return Err(invalid(format!(
                "graph input {i} is %{} whose definition is {:?}",
                v.0, info.def
            )));
        }
        let name = info.name.as_deref().unwrap_or_default();
        if !names.insert(name) {
            return Err(invalid(format!("duplicate graph input name {:?}", name)));
        }
        defined[v.index()] = true;
        check(v, &mut checked)?;
    }

    let mut scheduled = vec![false; g.num_nodes()];
    for &n in g.order() {
        if n.index() >= g.num_nodes() {
            return Err(invalid(format!(
                "the schedule names node n{} which does not exist",
                n.0
            )));
        }
        if std::mem::replace(&mut scheduled[n.index()], true) {
            return Err(invalid(format!(
                "node `{}` is scheduled twice",
                label(g, n)
            )));
        }
        let node = g.node(n);
        for (i, &v) in node.inputs.iter().enumerate() {
            if v.index() >= nv {
                return Err(invalid(format!(
                    "node `{}`: operand {i} is %{} which does not exist",
                    label(g, n),
                    v.0
                )));
            }
            if !(defined[v.index()] || is_const(g, v)) {
                return Err(invalid(format!(
                    "node `{}`: operand {i} %{} is not defined before it (the schedule is not \
                     topological, or the value is not a graph input, constant or scheduled result)",
                    label(g, n),
                    v.0
                )));
            }
            check(v, &mut checked)?;
        }
        let out = node.output;
        if out.index() >= nv {
            return Err(invalid(format!(
                "node `{}`: result %{} does not exist",
                label(g, n),
                out.0
            )));
        }
        if g.value(out).def != ValueDef::Node(n) {
            return Err(invalid(format!(
                "node `{}`: result %{} is defined as {:?}, not by this node",
                label(g, n),
                out.0,
                g.value(out).def
            )));
        }
        check(out, &mut checked)?;
        check_node(g, n)?;
        defined[out.index()] = true;
    }

    for (i, &v) in g.outputs().iter().enumerate() {
        if v.index() >= nv {
            return Err(invalid(format!(
                "graph output {i} is %{} which does not exist",
                v.0
            )));
        }
        if !(defined[v.index()] || is_const(g, v)) {
            return Err(invalid(format!(
                "graph output {i} %{} is not a graph input, a constant or a scheduled result",
                v.0
            )));
        }
        check(v, &mut checked)?;
    }
    Ok(())
}

fn invalid(msg: String) -> IrError {
    IrError::Invalid(msg)
}

fn is_const(g: &Graph, v: Value) -> bool {
    v.index() < g.num_values() && g.is_const(v)
}

/// How errors name node `n` (in bounds): its name, or `%k` of its result if unnamed.
fn label(g: &Graph, n: Node) -> String {
    let node = g.node(n);
    if node.name.is_empty() {
        format!("%{}", node.output.0)
    } else {
        node.name.clone()
    }
}

/// A type in text syntax, scale constants named by arena id.
pub(crate) fn type_str(ty: &TensorType) -> String {
    fmt_type(ty, |v| format!("%{}", v.0))
}

/// Checks node `n` (in bounds) against its op's typing rule: the stored result type must
/// equal the inferred one. Operand and result ids are bounds-checked here too.
pub(crate) fn check_node(g: &Graph, n: Node) -> Result<()> {
    let node = g.node(n);
    let err = |msg: String| IrError::Type {
        node: label(g, n),
        op: node.op.name(),
        msg,
    };
    if let Op::Conv { window, .. } = &node.op {
        if window.ceil_mode {
            return Err(err("conv windows never use ceil_mode".into()));
        }
    }
    let mut tys = Vec::with_capacity(node.inputs.len());
    for &v in node.inputs.iter().chain([&node.output]) {
        if v.index() >= g.num_values() {
            return Err(err(format!("%{} does not exist", v.0)));
        }
        tys.push(g.ty(v));
    }
    let declared = tys.pop().expect("the result was pushed last");
    let inferred = infer::infer(&node.op, &tys).map_err(err)?;
    if &inferred != declared {
        return Err(err(format!(
            "result type {} does not match the inferred {}",
            type_str(declared),
            type_str(&inferred)
        )));
    }
    Ok(())
}

/// Checks the type of value `v` (in bounds): batch placement and scale validity.
pub(crate) fn check_type(g: &Graph, v: Value) -> Result<(), String> {
    let ty = g.ty(v);
    let what = || format!("value %{} of type {}", v.0, type_str(ty));
    if ty.shape.0.iter().skip(1).any(|d| *d == Dim::Batch) {
        return Err(format!(
            "{}: the batch dimension N may only be axis 0",
            what()
        ));
    }
    match &ty.scale {
        None => Ok(()),
        Some(Scale::Tensor(s)) => {
            if s.get().is_finite() && s.get() > 0.0 {
                Ok(())
            } else {
                Err(format!("{}: the scale must be positive and finite", what()))
            }
        }
        Some(Scale::Channel { axis, scales }) => {
            let (axis, scales) = (*axis, *scales);
            let Some(&extent) = ty.shape.0.get(axis) else {
                return Err(format!("{}: scale axis {axis} is out of range", what()));
            };
            if !is_const(g, scales) {
                return Err(format!(
                    "{}: scales %{} is not a constant",
                    what(),
                    scales.0
                ));
            }
            let sty = g.ty(scales);
            let count = match (sty.dtype, &sty.scale, sty.shape.0.as_slice()) {
                (DType::F32, None, &[Dim::Fixed(k)]) => k,
                _ => {
                    return Err(format!(
                        "{}: scales %{} must be an unscaled f32 vector, got {}",
                        what(),
                        scales.0,
                        type_str(sty)
                    ))
                }
            };
            if extent != Dim::Fixed(count) {
                return Err(format!(
                    "{}: {count} scales for axis {axis} of extent {extent}",
                    what()
                ));
            }
            check_const(g, scales)?;
            if let Some(t) = g.const_tensor(scales) {
                let vals = t.as_f32().unwrap_or_default();
                if vals.iter().any(|s| !(s.is_finite() && *s > 0.0)) {
                    return Err(format!(
                        "{}: scales %{} must be positive and finite",
                        what(),
                        scales.0
                    ));
                }
            }
            Ok(())
        }
    }
}

/// Checks constant value `v` (in bounds, defined as a constant): fixed shape and payload.
pub(crate) fn check_const(g: &Graph, v: Value) -> Result<(), String> {
    let ty = g.ty(v);
    let what = || format!("constant %{} of type {}", v.0, type_str(ty));
    let ValueDef::Const(c) = g.value(v).def else {
        return Err(format!("value %{} is not a constant", v.0));
    };
    if c.index() >= g.num_consts() {
        return Err(format!("{}: payload c{} does not exist", what(), c.0));
    }
    let Some(dims) = ty.shape.as_fixed() else {
        return Err(format!(
            "{}: a constant's shape must be fully fixed",
            what()
        ));
    };
    let numel = dims
        .iter()
        .try_fold(1u64, |a, &d| a.checked_mul(d))
        .ok_or_else(|| format!("{}: the element count overflows", what()))?;
    let data = g.const_data(c);
    let Some(t) = &data.tensor else {
        return Ok(());
    };
    if !t.data.holds(ty.dtype) {
        return Err(format!(
            "{}: payload storage {} cannot hold {}",
            what(),
            storage_name(&t.data),
            ty.dtype
        ));
    }
    if t.data.len() as u64 != numel {
        return Err(format!(
            "{}: payload has {} elements, the type needs {numel}",
            what(),
            t.data.len()
        ));
    }
    if t.shape.len() != dims.len() || t.shape.iter().zip(&dims).any(|(&a, &b)| a as u64 != b) {
        return Err(format!("{}: payload has shape {:?}", what(), t.shape));
    }
    if data.digest != t.digest() {
        return Err(format!(
            "{}: the stored digest does not match the payload",
            what()
        ));
    }
    if let (DType::Int { .. } | DType::Ternary, Some((lo, hi))) = (ty.dtype, ty.dtype.int_range()) {
        let bad = match &t.data {
            TensorData::I8(x) => x.iter().map(|&e| e as i64).find(|e| *e < lo || *e > hi),
            TensorData::U8(x) => x.iter().map(|&e| e as i64).find(|e| *e < lo || *e > hi),
            _ => None,
        };
        if let Some(e) = bad {
            return Err(format!("{}: element {e} is out of range", what()));
        }
    }
    Ok(())
}

fn storage_name(d: &TensorData) -> &'static str {
    match d {
        TensorData::F32(_) => "F32",
        TensorData::I32(_) => "I32",
        TensorData::I64(_) => "I64",
        TensorData::I8(_) => "I8",
        TensorData::U8(_) => "U8",
    }
}
