//! Graph-editing helpers shared by the passes up to the fake-quant graph: use lists,
//! producers, constant payload access, error construction, and re-scheduling.
//!
//! Passes append nodes with `Graph::add_node` (which puts them at the end of the
//! schedule) and rewire operands in place. [`reschedule`] then rebuilds a topological
//! order: a depth-first walk over the old schedule that emits every node's operand
//! producers before the node itself. It keeps the old relative order wherever the
//! dependencies allow and places each new node right before its first user, so it is
//! sound for any edit that leaves the dataflow acyclic (a cycle is reported as a broken
//! graph, never looped on). The walk is iterative, so deep graphs cannot overflow the stack.

use std::collections::HashSet;

use fqc_ir::{Graph, Node, Tensor, Value, ValueDef};

use crate::{PassError, Result};

/// For every value (indexed by value id), the scheduled nodes that use it as an operand
/// (a node using it twice appears once).
pub(crate) fn users(g: &Graph) -> Vec<Vec<Node>> {
    let mut u: Vec<Vec<Node>> = vec![Vec::new(); g.num_values()];
    for (n, node) in g.nodes() {
        for &v in &node.inputs {
            if let Some(list) = u.get_mut(v.index()) {
                if list.last() != Some(&n) {
                    list.push(n);
                }
            }
        }
    }
    u
}

/// The node defining `v`, if it is a node result.
pub(crate) fn producer(g: &Graph, v: Value) -> Option<Node> {
    match g.value(v).def {
        ValueDef::Node(n) => Some(n),
        _ => None,
    }
}

/// The f32 payload of a constant operand, if `v` is one with known f32 data.
pub(crate) fn f32_const(g: &Graph, v: Value) -> Option<&Tensor> {
    g.const_tensor(v).filter(|t| t.as_f32().is_some())
}

/// A node's label for messages: its name, or `%k` of its result when unnamed.
pub(crate) fn label(g: &Graph, n: Node) -> String {
    let node = g.node(n);
    if node.name.is_empty() {
        format!("%{}", node.output.0)
    } else {
        node.name.clone()
    }
}

/// A value's name for derived names: its own, or `%k`.
pub(crate) fn value_label(g: &Graph, v: Value) -> String {
    match &g.value(v).name {
        Some(s) if !s.is_empty() => s.clone(),
        _ => format!("%{}", v.0),
    }
}

/// `PassError::Unsupported` naming node `n` and its op.
pub(crate) fn unsupported(
    pass: &'static str,
    g: &Graph,
    n: Node,
    msg: impl Into<String>,
) -> PassError {
    PassError::Unsupported {
        pass,
        node: label(g, n),
        op: g.node(n).op.name(),
        msg: msg.into(),
    }
}

/// Rebuilds the schedule topologically, dropping the nodes in `dropped` (see the module
/// docs). Operands produced by unscheduled or dropped nodes are left for the verifier.
pub(crate) fn reschedule(g: &mut Graph, pass: &'static str, dropped: &HashSet<Node>) -> Result<()> {
    let live: Vec<Node> = g
        .order()
        .iter()
        .copied()
        .filter(|n| !dropped.contains(n))
        .collect();
    let mut prod: Vec<Option<Node>> = vec![None; g.num_values()];
    let mut state = vec![0u8; g.num_nodes()];
    for &n in &live {
        if let Some(p) = prod.get_mut(g.node(n).output.index()) {
            *p = Some(n);
        }
    }
    let mut out = Vec::with_capacity(live.len());
    let mut stack: Vec<(Node, usize)> = Vec::new();
    for &root in &live {
        if state[root.index()] != 0 {
            continue;
        }
        state[root.index()] = 1;
        stack.push((root, 0));
        while let Some(&mut (n, ref mut i)) = stack.last_mut() {
            let inputs = &g.node(n).inputs;
            if *i < inputs.len() {
                let v = inputs[*i];
                *i += 1;
                if let Some(Some(p)) = prod.get(v.index()) {
                    match state[p.index()] {
                        0 => {
                            state[p.index()] = 1;
                            stack.push((*p, 0));
                        }
                        1 => {
                            return Err(PassError::Broken {
                                pass,
                                msg: format!("the edit made a cycle through `{}`", label(g, *p)),
                            })
                        }
                        _ => {}
                    }
                }
            } else {
                stack.pop();
                state[n.index()] = 2;
                out.push(n);
            }
        }
    }
    g.set_order(out);
    Ok(())
}

/// Nodes in `nodes` whose result is unused (by scheduled nodes and graph outputs).
pub(crate) fn unused(g: &Graph, nodes: impl IntoIterator<Item = Node>) -> HashSet<Node> {
    let u = users(g);
    nodes
        .into_iter()
        .filter(|&n| {
            let out = g.node(n).output;
            u[out.index()].is_empty() && !g.outputs().contains(&out)
        })
        .collect()
}
