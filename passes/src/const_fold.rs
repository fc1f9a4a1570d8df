//! `const-fold`: a node whose operands are all constants with known payloads is evaluated
//! once, by the reference interpreter on a one-node graph, and replaced by a constant.
//!
//! Sound because the interpreter *defines* every op's semantics: the constant is exactly
//! what the node would compute at run time (nodes with all-constant operands do not
//! depend on the batch). The result keeps the node's declared type (incl. its scale);
//! a result whose storage does not fit that type is not folded. Kept on purpose:
//! `dequantize` of a low-bit constant — the fake-quant marker of a quantized weight;
//! folding it would turn the weight back into an opaque float constant — and results
//! above 2^24 elements (folding must not blow up the artifact). A node the interpreter
//! cannot evaluate is left in place and named in a note. Folded nodes leave the schedule.

use std::collections::{HashMap, HashSet};

use fqc_ir::{Graph, Node, Op, Scale, TensorType, Value, ValueDef};

use crate::context::PassContext;
use crate::edit::{label, reschedule};
use crate::{Pass, Result};

const NAME: &str = "const-fold";
/// Largest result folded into a constant.
const MAX_FOLD_ELEMENTS: u64 = 1 << 24;

/// Folds all-constant nodes (see the module docs).
#[derive(Debug, Default, Clone, Copy)]
pub struct ConstFold;

/// Copies constant `v` of `g` (and the scale constant its type names) into `sub`.
fn copy_const(
    g: &Graph,
    sub: &mut Graph,
    v: Value,
    map: &mut HashMap<Value, Value>,
) -> Option<Value> {
    if let Some(&m) = map.get(&v) {
        return Some(m);
    }
    let ValueDef::Const(c) = g.value(v).def else {
        return None;
    };
    let ty = remap_type(g, sub, g.ty(v), map)?;
    let data = g.const_data(c).clone();
    let nv = sub.add_const_data(g.value(v).name.clone(), ty, data);
    map.insert(v, nv);
    Some(nv)
}

fn remap_type(
    g: &Graph,
    sub: &mut Graph,
    ty: &TensorType,
    map: &mut HashMap<Value, Value>,
) -> Option<TensorType> {
    let mut ty = ty.clone();
    if let Some(Scale::Channel { scales, .. }) = &mut ty.scale {
        // Scale constants are unscaled f32 vectors (verifier), so this recursion ends.
        if g.ty(*scales).scale.is_some() {
            return None;
        }
        *scales = copy_const(g, sub, *scales, map)?;
    }
    Some(ty)
}

/// Evaluates node `n` if foldable: `Ok(None)` when it is not a candidate, `Err` with the
/// reason when evaluation failed.
fn fold(g: &Graph, n: Node) -> std::result::Result<Option<fqc_ir::Tensor>, String> {
    let node = g.node(n);
    if !node.inputs.iter().all(|&v| g.const_tensor(v).is_some()) {
        return Ok(None);
    }
    if node.op == Op::Dequantize && g.ty(node.inputs[0]).dtype.is_low_bit() {
        return Ok(None);
    }
    let out_ty = g.ty(node.output);
    if out_ty.shape.has_batch() || out_ty.shape.numel(1).is_none_or(|e| e > MAX_FOLD_ELEMENTS) {
        return Ok(None);
    }
    let mut sub = Graph::new("const-fold");
    let mut map = HashMap::new();
    let mut inputs = Vec::with_capacity(node.inputs.len());
    for &v in &node.inputs {
        inputs.push(
            copy_const(g, &mut sub, v, &mut map).ok_or("an operand's type cannot be copied")?,
        );
    }
    let ty = remap_type(g, &mut sub, out_ty, &mut map).ok_or("the result type cannot be copied")?;
    let out = sub.add_node(node.op.clone(), inputs, ty, node.name.clone(), None);
    sub.set_outputs(vec![out]);
    let mut res = fqc_ir::run(&sub, &[]).map_err(|e| e.to_string())?;
    let t = res.pop().ok_or("the interpreter returned no result")?;
    let fits = t.data.holds(out_ty.dtype)
        && out_ty.shape.as_fixed().is_some_and(|s| {
            s.len() == t.shape.len() && s.iter().zip(&t.shape).all(|(&a, &b)| a == b as u64)
        });
    if !fits {
        return Err(format!(
            "the result does not fit the declared type {}{}",
            out_ty.dtype, out_ty.shape
        ));
    }
    Ok(Some(t))
}

impl Pass for ConstFold {
    fn name(&self) -> &'static str {
        NAME
    }

    fn run(&self, g: &mut Graph, cx: &mut PassContext) -> Result<()> {
        let order: Vec<Node> = g.order().to_vec();
        let mut dropped = HashSet::new();
        for n in order {
            match fold(g, n) {
                Ok(None) => {}
                Ok(Some(t)) => {
                    let out = g.node(n).output;
                    let info = g.value(out).clone();
                    let c = g.add_const(info.name, info.ty, t);
                    g.replace_uses(out, c);
                    dropped.insert(n);
                }
                Err(why) => cx.notes.push(format!(
                    "{NAME}: left `{}` ({}): {why}",
                    label(g, n),
                    g.node(n).op.name()
                )),
            }
        }
        if dropped.is_empty() {
            return Ok(());
        }
        reschedule(g, NAME, &dropped)
    }
}
