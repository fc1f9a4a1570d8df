//! The integer-only check: where the float ops of a graph are, relative to its boundary.
//!
//! After `integerize` (DESIGN.md invariant 1) the only float computations left may be
//! the *boundary*: `quantize` of a graph input (input quantizers), `dequantize` whose
//! result never flows back into an integer op (output dequantizers), and float ops
//! downstream of an output dequantizer that never flow back either (trailing ops, e.g.
//! softmax over the logits). Everything else that computes on floats — a float op on the
//! inference path between the boundaries, a float op before an input quantizer, a
//! quantize of a computed value, a float constant feeding an integer op — is listed in
//! [`BoundaryReport::float_ops`]. A node computes on floats when its op is a float op
//! and an operand or its result is `f32` (max pooling or a reshape of integers is
//! integer); the check looks at types only, so it is sound for any graph the verifier
//! accepts.

use std::fmt;

use fqc_ir::{DType, Graph, Node, Op, Value, ValueDef};

/// The float ops of a graph, by role. Entries are node names (or `%k` of the result).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BoundaryReport {
    pub input_quantizers: Vec<String>,
    pub output_dequantizers: Vec<String>,
    /// Float ops after an output dequantizer that never reach an integer op.
    pub trailing: Vec<String>,
    /// Float ops on the inference path that are not boundary ops, with the reason.
    pub float_ops: Vec<(String, &'static str, String)>,
    /// The float ops grouped into islands: connected runs of float ops (an island's
    /// members feed each other), each listed by node label in schedule order.
    pub islands: Vec<Vec<String>>,
}

impl BoundaryReport {
    pub fn is_integer_only(&self) -> bool {
        self.float_ops.is_empty()
    }
}

impl fmt::Display for BoundaryReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "input quantizers [{}]; output dequantizers [{}]; trailing [{}]",
            self.input_quantizers.join(", "),
            self.output_dequantizers.join(", "),
            self.trailing.join(", ")
        )?;
        for (node, op, why) in &self.float_ops {
            write!(f, "; float op `{node}` ({op}): {why}")?;
        }
        Ok(())
    }
}

impl BoundaryReport {
    /// `yes`, or `no (N float islands: a, b; c)` naming each island's nodes.
    pub fn verdict(&self) -> String {
        if self.is_integer_only() {
            return "yes".into();
        }
        let n = self.islands.len();
        format!(
            "no ({n} float island{}: {})",
            if n == 1 { "" } else { "s" },
            self.islands
                .iter()
                .map(|i| i.join(", "))
                .collect::<Vec<_>>()
                .join("; ")
        )
    }
}

/// The node's name, or `%k` of its result when unnamed.
pub(crate) fn node_label(g: &Graph, n: Node) -> String {
    let d = g.node(n);
    if d.name.is_empty() {
        format!("%{}", d.output.0)
    } else {
        d.name.clone()
    }
}

fn is_f32(g: &Graph, v: Value) -> bool {
    g.ty(v).dtype == DType::F32
}

/// Classifies the float ops of the live part of `g` (what the outputs depend on).
pub fn integer_only_report(g: &Graph) -> BoundaryReport {
    let nv = g.num_values();
    let mut live = vec![false; nv];
    for &v in g.outputs() {
        live[v.index()] = true;
    }
    let order: Vec<Node> = g.order().to_vec();
    for &n in order.iter().rev() {
        let d = g.node(n);
        if live[d.output.index()] {
            for &v in &d.inputs {
                live[v.index()] = true;
            }
        }
    }
    let computes_float = |n: Node| {
        let d = g.node(n);
        d.op.is_float_op() && (is_f32(g, d.output) || d.inputs.iter().any(|&v| is_f32(g, v)))
    };
    // Forward: values at or after an output dequantizer.
    let mut after = vec![false; nv];
    for &n in &order {
        let d = g.node(n);
        after[d.output.index()] =
            matches!(d.op, Op::Dequantize) || d.inputs.iter().any(|v| after[v.index()]);
    }
    // Backward: values that flow into an integer computation (or any quantizer).
    let mut into_int = vec![false; nv];
    for &n in order.iter().rev() {
        let d = g.node(n);
        let integer_node = !computes_float(n) || matches!(d.op, Op::Quantize { .. });
        if integer_node || into_int[d.output.index()] {
            for &v in &d.inputs {
                into_int[v.index()] = true;
            }
        }
    }
    let mut r = BoundaryReport::default();
    let mut island_nodes: Vec<Node> = Vec::new();
    for &n in &order {
        let d = g.node(n);
        if !live[d.output.index()] {
            continue;
        }
        let label = node_label(g, n);
        let mut bad = |why: &str| {
            island_nodes.push(n);
            r.float_ops
                .push((label.clone(), d.op.name(), why.to_string()))
        };
        match d.op {
            Op::Quantize { .. } => match g.value(d.inputs[0]).def {
                ValueDef::Input(_) => r.input_quantizers.push(label.clone()),
                _ => bad("quantizes a computed float value (only graph inputs may be quantized)"),
            },
            Op::Dequantize => {
                if into_int[d.output.index()] {
                    bad("its float result flows back into integer ops");
                } else {
                    r.output_dequantizers.push(label.clone());
                }
            }
            _ if computes_float(n) => {
                if !after[d.output.index()] {
                    bad("float op before the output boundary");
                } else if into_int[d.output.index()] {
                    bad("float op whose result flows back into integer ops");
                } else {
                    r.trailing.push(label.clone());
                }
            }
            _ => {
                if d.inputs.iter().any(|&v| g.is_const(v) && is_f32(g, v)) {
                    bad("integer op with a float constant operand");
                }
            }
        }
    }
    r.islands = islands(g, &island_nodes);
    r
}

/// Groups `nodes` (in schedule order) into connected components of the dataflow
/// between them (union-find over "one consumes the other's result").
fn islands(g: &Graph, nodes: &[Node]) -> Vec<Vec<String>> {
    let index_of: std::collections::HashMap<Value, usize> = nodes
        .iter()
        .enumerate()
        .map(|(i, &n)| (g.node(n).output, i))
        .collect();
    let mut parent: Vec<usize> = (0..nodes.len()).collect();
    fn find(p: &mut [usize], mut i: usize) -> usize {
        while p[i] != i {
            p[i] = p[p[i]];
            i = p[i];
        }
        i
    }
    for (i, &n) in nodes.iter().enumerate() {
        for v in &g.node(n).inputs {
            if let Some(&j) = index_of.get(v) {
                let (a, b) = (find(&mut parent, i), find(&mut parent, j));
                parent[a] = b;
            }
        }
    }
    let mut groups: Vec<(usize, Vec<String>)> = Vec::new();
    for (i, &n) in nodes.iter().enumerate() {
        let root = find(&mut parent, i);
        match groups.iter_mut().find(|(r, _)| *r == root) {
            Some((_, list)) => list.push(node_label(g, n)),
            None => groups.push((root, vec![node_label(g, n)])),
        }
    }
    groups.into_iter().map(|(_, l)| l).collect()
}

/// Whether `g` computes only on integers between its input quantizers and output
/// dequantizers (see [`integer_only_report`]).
pub fn is_integer_only(g: &Graph) -> bool {
    integer_only_report(g).is_integer_only()
}
