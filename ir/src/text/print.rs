//! The printer: a graph to canonical text (format in the parent module's docs).
//!
//! Printing runs in two phases. The first walks the graph in canonical order (inputs,
//! then per live node its constants and the node, then constants needed only by outputs
//! or input types) and assigns the text ids; the second renders the lines with the
//! complete id map, so forward references (the header's outputs, scales in input types)
//! print correctly. The walk mirrors [`Graph::compact`] step for step, which is why
//! `parse(print(g))` equals `g.compact()`. Printing is total: ids that are out of bounds
//! or never numbered (only possible in graphs the verifier rejects) print as `%?`, and
//! such text does not parse back.

use super::{fmt_type, quote, INLINE_MAX};
use crate::graph::{Graph, Node, NodeData, Value, ValueDef, ValueInfo};
use crate::op::Op;
use crate::tensor::TensorData;
use crate::types::{Scale, TensorType};
use std::fmt::Write;

/// Prints `g` in canonical text form.
pub fn print(g: &Graph) -> String {
    let mut p = Numbering {
        g,
        ids: vec![None; g.num_values()],
        visiting: vec![false; g.num_values()],
        next: 0,
        items: Vec::new(),
    };
    p.walk();
    p.render()
}

/// A line of the body.
enum Item {
    Const(Value),
    Node(Node),
}

struct Numbering<'a> {
    g: &'a Graph,
    ids: Vec<Option<usize>>,
    visiting: Vec<bool>,
    next: usize,
    items: Vec<Item>,
}

fn info(g: &Graph, v: Value) -> Option<&ValueInfo> {
    (v.index() < g.num_values()).then(|| g.value(v))
}

fn node(g: &Graph, n: Node) -> Option<&NodeData> {
    (n.index() < g.num_nodes()).then(|| g.node(n))
}

impl Numbering<'_> {
    fn assign(&mut self, v: Value) -> bool {
        match self.ids.get_mut(v.index()) {
            Some(slot @ None) => {
                *slot = Some(self.next);
                self.next += 1;
                true
            }
            _ => false,
        }
    }

    fn is_assigned(&self, v: Value) -> bool {
        self.ids.get(v.index()).is_some_and(Option::is_some)
    }

    fn walk(&mut self) {
        let g = self.g;
        for &v in g.inputs() {
            self.assign(v);
        }
        let live = live_values(g);
        for &n in g.order() {
            let Some(data) = node(g, n) else { continue };
            let out = data.output;
            if !live.get(out.index()).copied().unwrap_or(false) || self.is_assigned(out) {
                continue;
            }
            for &v in &data.inputs {
                self.operand(v);
            }
            self.type_deps(&g.value(out).ty);
            self.assign(out);
            self.items.push(Item::Node(n));
        }
        for &v in g.outputs() {
            self.operand(v);
        }
        for &v in g.inputs() {
            if let Some(i) = info(g, v) {
                self.type_deps(&i.ty);
            }
        }
    }

    /// Numbers what a use of `v` needs: a constant (after its scale constant), or the
    /// scale constant of a non-constant's type.
    fn operand(&mut self, v: Value) {
        let Some(i) = info(self.g, v) else { return };
        if matches!(i.def, ValueDef::Const(_)) {
            self.constant(v);
        } else {
            self.type_deps(&i.ty);
        }
    }

    fn constant(&mut self, v: Value) {
        let Some(i) = info(self.g, v) else { return };
        if !matches!(i.def, ValueDef::Const(_)) || self.is_assigned(v) || self.visiting[v.index()] {
            return;
        }
        self.visiting[v.index()] = true;
        self.type_deps(&i.ty);
        self.assign(v);
        self.items.push(Item::Const(v));
    }

    fn type_deps(&mut self, ty: &TensorType) {
        if let Some(Scale::Channel { scales, .. }) = &ty.scale {
            self.constant(*scales);
        }
    }

    fn id(&self, v: Value) -> String {
        match self.ids.get(v.index()) {
            Some(Some(i)) => format!("%{i}"),
            _ => "%?".into(),
        }
    }

    fn ty(&self, ty: &TensorType) -> String {
        fmt_type(ty, |v| self.id(v))
    }

    fn render(&self) -> String {
        let g = self.g;
        let mut out = format!("graph {}(", quote(&g.name));
        for (k, &v) in g.inputs().iter().enumerate() {
            if k > 0 {
                out.push_str(", ");
            }
            out.push_str(&self.id(v));
            match info(g, v) {
                Some(i) => {
                    let name = i.name.as_deref().unwrap_or_default();
                    let _ = write!(out, " {}: {}", quote(name), self.ty(&i.ty));
                }
                None => out.push_str(" \"\": ?"),
            }
        }
        out.push_str(") -> (");
        let outs: Vec<String> = g.outputs().iter().map(|&v| self.id(v)).collect();
        out.push_str(&outs.join(", "));
        out.push_str(") {\n");
        for item in &self.items {
            match *item {
                Item::Const(v) => self.const_line(&mut out, v),
                Item::Node(n) => self.node_line(&mut out, n),
            }
        }
        out.push_str("}\n");
        out
    }

    /// `  %k "name": type = ` for a defined value (the name only when present).
    fn lhs(&self, out: &mut String, v: Value, i: &ValueInfo) {
        let _ = write!(out, "  {}", self.id(v));
        if let Some(name) = &i.name {
            let _ = write!(out, " {}", quote(name));
        }
        let _ = write!(out, ": {} = ", self.ty(&i.ty));
    }

    fn const_line(&self, out: &mut String, v: Value) {
        let g = self.g;
        let i = g.value(v); // in bounds: only numbered values become items
        self.lhs(out, v, i);
        out.push_str("const ");
        let data = match i.def {
            ValueDef::Const(c) if c.index() < g.num_consts() => Some(g.const_data(c)),
            _ => None,
        };
        match data {
            Some(d) => match &d.tensor {
                Some(t) if t.numel() <= INLINE_MAX => out.push_str(&payload(&t.data)),
                _ => {
                    let _ = write!(out, "#{:016x}", d.digest);
                }
            },
            None => out.push('?'),
        }
        out.push('\n');
    }

    fn node_line(&self, out: &mut String, n: Node) {
        let g = self.g;
        let data = g.node(n); // in bounds: only existing nodes become items
        self.lhs(out, data.output, g.value(data.output));
        let args: Vec<String> = data.inputs.iter().map(|&v| self.id(v)).collect();
        let _ = write!(out, "{}({})", data.op.name(), args.join(", "));
        let attrs = attrs(&data.op);
        if !attrs.is_empty() {
            let kv: Vec<String> = attrs.iter().map(|(k, v)| format!("{k}={v}")).collect();
            let _ = write!(out, " {{{}}}", kv.join(", "));
        }
        if !data.name.is_empty() {
            let _ = write!(out, " {}", quote(&data.name));
        }
        out.push('\n');
    }
}

/// Values the graph outputs depend on (through scheduled nodes), bounds-checked.
fn live_values(g: &Graph) -> Vec<bool> {
    let mut live = vec![false; g.num_values()];
    for &v in g.outputs() {
        if let Some(l) = live.get_mut(v.index()) {
            *l = true;
        }
    }
    for &n in g.order().iter().rev() {
        let Some(data) = node(g, n) else { continue };
        if live.get(data.output.index()).copied().unwrap_or(false) {
            for &v in &data.inputs {
                if let Some(l) = live.get_mut(v.index()) {
                    *l = true;
                }
            }
        }
    }
    live
}

/// An inline payload: `[a, b, ...]`, floats via `{:?}`.
fn payload(d: &TensorData) -> String {
    fn join<T>(v: &[T], f: impl Fn(&T) -> String) -> String {
        format!("[{}]", v.iter().map(f).collect::<Vec<_>>().join(", "))
    }
    match d {
        TensorData::F32(v) => join(v, |x| format!("{x:?}")),
        TensorData::I32(v) => join(v, i32::to_string),
        TensorData::I64(v) => join(v, i64::to_string),
        TensorData::I8(v) => join(v, i8::to_string),
        TensorData::U8(v) => join(v, u8::to_string),
    }
}

/// Every attribute of `op`, in the canonical order the parser expects: the op table's
/// description (`Op::attrs`), each value in its text form.
pub(super) fn attrs(op: &Op) -> Vec<(&'static str, String)> {
    op.attrs()
        .into_iter()
        .map(|(k, v)| (k, v.to_string()))
        .collect()
}
