//! Constant folding at import: a node whose operands are all constants is lowered as
//! usual, then the IR nodes it produced are evaluated with the reference interpreter
//! (`fqc_ir::interp::run` on a small graph holding just those nodes and their constant
//! operands) and its outputs become constants. The evaluated nodes leave the schedule;
//! `Graph::compact` later drops constants nobody uses any more. This keeps one
//! definition of every op's semantics (the interpreter) instead of a second evaluator
//! here. Int64 shape arithmetic is folded separately (see `shape`).

use std::collections::HashMap;

use fqc_ir::{Graph, Value, ValueDef};

use super::{Cx, LResult, Val};

/// Folds the outputs of the node being lowered, whose IR nodes start at schedule
/// position `start`.
pub(crate) fn fold_outputs(cx: &mut Cx, start: usize) -> LResult<()> {
    let order = cx.imp.g.order().to_vec();
    if order.len() <= start {
        return Ok(());
    }
    let emitted = &order[start..];
    // The outputs to fold: ONNX outputs bound to results of the nodes just emitted.
    let mut targets: Vec<(String, Value)> = Vec::new();
    for (i, name) in cx.node.output.iter().enumerate() {
        if name.is_empty() || !cx.output_used(i) {
            continue;
        }
        if let Some(Val::Ir(v)) = cx.imp.vals.get(name) {
            if let ValueDef::Node(n) = cx.imp.g.value(*v).def {
                if emitted.contains(&n) {
                    targets.push((name.clone(), *v));
                }
            }
        }
    }
    if targets.is_empty() {
        cx.imp.g.set_order(order[..start].to_vec());
        return Ok(());
    }
    let g = &cx.imp.g;
    // Bound what the interpreter will allocate before running it.
    for &n in emitted {
        let ty = g.ty(g.node(n).output);
        if ty
            .shape
            .numel(1)
            .is_none_or(|k| k > crate::tensor::MAX_TENSOR_ELEMS)
        {
            return Err(format!(
                "constant folding would create a tensor of shape {}, more than the limit of 2^28 elements",
                ty.shape
            ));
        }
    }
    let mut mini = Graph::new("fold");
    let mut map: HashMap<Value, Value> = HashMap::new();
    for &n in emitted {
        let node = g.node(n);
        let mut inputs = Vec::with_capacity(node.inputs.len());
        for &v in &node.inputs {
            let nv = match map.get(&v) {
                Some(&nv) => nv,
                None => {
                    let t = g
                        .const_tensor(v)
                        .ok_or("internal error: folded node has a non-constant operand")?;
                    let nv = mini.add_const(None, g.ty(v).clone(), t.clone());
                    map.insert(v, nv);
                    nv
                }
            };
            inputs.push(nv);
        }
        let out = mini.add_node(
            node.op.clone(),
            inputs,
            g.ty(node.output).clone(),
            node.name.clone(),
            None,
        );
        map.insert(node.output, out);
    }
    mini.set_outputs(targets.iter().map(|(_, v)| map[v]).collect());
    let results = fqc_ir::run(&mini, &[]).map_err(|e| format!("constant folding failed: {e}"))?;
    drop(mini);
    cx.imp.g.set_order(order[..start].to_vec());
    for ((name, _), t) in targets.into_iter().zip(results) {
        let v = cx.add_const(Some(name.clone()), t)?;
        cx.imp.vals.insert(name, Val::Ir(v));
    }
    Ok(())
}
