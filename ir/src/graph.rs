//! The graph: arenas of values, nodes and constants addressed by typed `u32` ids.
//!
//! Nodes are kept in an explicit schedule (`order`) that is always topological: a node is
//! appended only after all of its operands exist, and passes that reorder must keep that
//! property (the verifier checks it). Removing a node only drops it from the schedule;
//! [`Graph::compact`] rebuilds dense arenas, so ids are cheap and never dangle while a pass
//! runs. Constants are values too (defined by [`ValueDef::Const`]), so every operand is a
//! `Value` and analyses need one id space.

use std::sync::Arc;

use crate::op::Op;
use crate::tensor::Tensor;
use crate::types::{Scale, TensorType};

macro_rules! id_type {
    ($(#[$m:meta])* $name:ident) => {
        $(#[$m])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(pub u32);
        impl $name {
            pub fn index(self) -> usize {
                self.0 as usize
            }
        }
    };
}

id_type!(
    /// A tensor value: a graph input, a constant, or a node's result.
    Value
);
id_type!(
    /// An operation node.
    Node
);
id_type!(
    /// A constant payload.
    Const
);

/// Where a value comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ValueDef {
    /// The `i`-th graph input.
    Input(usize),
    Const(Const),
    Node(Node),
}

/// Per-value facts.
#[derive(Clone, Debug, PartialEq)]
pub struct ValueInfo {
    pub ty: TensorType,
    /// The source model's name for it, if any (kept for diagnostics and I/O binding).
    pub name: Option<String>,
    pub def: ValueDef,
}

/// A constant's payload. `tensor` is `None` for a constant read back from text, where
/// only its digest was printed; such a graph can be printed and verified, not run.
#[derive(Clone, Debug, PartialEq)]
pub struct ConstData {
    /// Shared, so copying a graph (e.g. [`Graph::compact`]) never copies weights.
    pub tensor: Option<Arc<Tensor>>,
    pub digest: u64,
}

/// One operation with its operands and single result.
#[derive(Clone, Debug, PartialEq)]
pub struct NodeData {
    pub op: Op,
    pub inputs: Vec<Value>,
    pub output: Value,
    /// The source model's node name (may be empty).
    pub name: String,
}

/// A dataflow graph with a topological schedule.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Graph {
    pub name: String,
    values: Vec<ValueInfo>,
    nodes: Vec<NodeData>,
    consts: Vec<ConstData>,
    order: Vec<Node>,
    inputs: Vec<Value>,
    outputs: Vec<Value>,
}

impl Graph {
    pub fn new(name: impl Into<String>) -> Graph {
        Graph {
            name: name.into(),
            ..Graph::default()
        }
    }

    fn push_value(&mut self, ty: TensorType, name: Option<String>, def: ValueDef) -> Value {
        let v = Value(self.values.len() as u32);
        self.values.push(ValueInfo { ty, name, def });
        v
    }

    /// Appends a graph input.
    pub fn add_input(&mut self, name: impl Into<String>, ty: TensorType) -> Value {
        let v = self.push_value(ty, Some(name.into()), ValueDef::Input(self.inputs.len()));
        self.inputs.push(v);
        v
    }

    /// Adds a constant with a known payload.
    pub fn add_const(&mut self, name: Option<String>, ty: TensorType, tensor: Tensor) -> Value {
        let digest = tensor.digest();
        self.add_const_data(
            name,
            ty,
            ConstData {
                tensor: Some(Arc::new(tensor)),
                digest,
            },
        )
    }

    /// Adds a constant from raw parts (the text parser uses this for elided payloads).
    pub fn add_const_data(
        &mut self,
        name: Option<String>,
        ty: TensorType,
        data: ConstData,
    ) -> Value {
        let c = Const(self.consts.len() as u32);
        self.consts.push(data);
        self.push_value(ty, name, ValueDef::Const(c))
    }

    /// Appends a node at the end of the schedule and returns its result value.
    pub fn add_node(
        &mut self,
        op: Op,
        inputs: Vec<Value>,
        ty: TensorType,
        node_name: impl Into<String>,
        value_name: Option<String>,
    ) -> Value {
        let n = Node(self.nodes.len() as u32);
        let output = self.push_value(ty, value_name, ValueDef::Node(n));
        self.nodes.push(NodeData {
            op,
            inputs,
            output,
            name: node_name.into(),
        });
        self.order.push(n);
        output
    }

    pub fn set_outputs(&mut self, outputs: Vec<Value>) {
        self.outputs = outputs;
    }

    pub fn inputs(&self) -> &[Value] {
        &self.inputs
    }

    pub fn outputs(&self) -> &[Value] {
        &self.outputs
    }

    pub fn value(&self, v: Value) -> &ValueInfo {
        &self.values[v.index()]
    }

    pub fn value_mut(&mut self, v: Value) -> &mut ValueInfo {
        &mut self.values[v.index()]
    }

    pub fn ty(&self, v: Value) -> &TensorType {
        &self.values[v.index()].ty
    }

    pub fn num_values(&self) -> usize {
        self.values.len()
    }

    /// Size of the node arena (including unscheduled nodes); node ids are below it.
    pub fn num_nodes(&self) -> usize {
        self.nodes.len()
    }

    /// Size of the constant arena; constant ids are below it.
    pub fn num_consts(&self) -> usize {
        self.consts.len()
    }

    pub fn node(&self, n: Node) -> &NodeData {
        &self.nodes[n.index()]
    }

    pub fn node_mut(&mut self, n: Node) -> &mut NodeData {
        &mut self.nodes[n.index()]
    }

    /// The schedule: live nodes in topological order.
    pub fn order(&self) -> &[Node] {
        &self.order
    }

    /// Live nodes with their data, in schedule order.
    pub fn nodes(&self) -> impl Iterator<Item = (Node, &NodeData)> + '_ {
        self.order.iter().map(move |&n| (n, &self.nodes[n.index()]))
    }

    /// Replaces the schedule (a pass that reorders or deletes nodes).
    pub fn set_order(&mut self, order: Vec<Node>) {
        self.order = order;
    }

    pub fn const_data(&self, c: Const) -> &ConstData {
        &self.consts[c.index()]
    }

    /// The payload of `v` if it is a constant whose data is known.
    pub fn const_tensor(&self, v: Value) -> Option<&Tensor> {
        match self.value(v).def {
            ValueDef::Const(c) => self.consts[c.index()].tensor.as_deref(),
            _ => None,
        }
    }

    pub fn is_const(&self, v: Value) -> bool {
        matches!(self.value(v).def, ValueDef::Const(_))
    }

    /// All values ever created, in id order (including dead ones before `compact`).
    pub fn values(&self) -> impl Iterator<Item = (Value, &ValueInfo)> + '_ {
        self.values
            .iter()
            .enumerate()
            .map(|(i, info)| (Value(i as u32), info))
    }

    /// Replaces every use of `old` (node operands and graph outputs) by `new`.
    pub fn replace_uses(&mut self, old: Value, new: Value) {
        for &n in &self.order {
            for v in &mut self.nodes[n.index()].inputs {
                if *v == old {
                    *v = new;
                }
            }
        }
        for v in &mut self.outputs {
            if *v == old {
                *v = new;
            }
        }
    }

    /// Rebuilds the arenas with only what the outputs need: live scheduled nodes, the
    /// constants they use (as operands or as per-channel scales of a used type), and all
    /// graph inputs (the signature never changes). Ids are renumbered densely in the
    /// text printer's order (inputs; then per node its constants, each preceded by its
    /// scale constant, then the node; then constants only outputs or input types need),
    /// so the result is canonical and `Scale::Channel` references are remapped.
    pub fn compact(&self) -> Graph {
        let mut live = vec![false; self.values.len()];
        for &v in &self.outputs {
            live[v.index()] = true;
        }
        for &n in self.order.iter().rev() {
            let node = &self.nodes[n.index()];
            if live[node.output.index()] {
                for &v in &node.inputs {
                    live[v.index()] = true;
                }
            }
        }
        let mut c = Compactor {
            src: self,
            g: Graph::new(self.name.clone()),
            map: vec![None; self.values.len()],
            visiting: vec![false; self.values.len()],
        };
        for &v in &self.inputs {
            let info = &self.values[v.index()];
            // The type is patched below, once its scale constant (if any) exists.
            c.map[v.index()] =
                Some(c.g.add_input(info.name.clone().unwrap_or_default(), info.ty.clone()));
        }
        for &n in &self.order {
            let node = &self.nodes[n.index()];
            if !live[node.output.index()] {
                continue;
            }
            for &v in &node.inputs {
                c.operand(v);
            }
            let out = &self.values[node.output.index()];
            let ty = c.ty(&out.ty);
            let inputs = node
                .inputs
                .iter()
                .map(|v| c.map[v.index()].expect("operand defined before use"))
                .collect();
            let nv = c.g.add_node(
                node.op.clone(),
                inputs,
                ty,
                node.name.clone(),
                out.name.clone(),
            );
            c.map[node.output.index()] = Some(nv);
        }
        for &v in &self.outputs {
            c.operand(v);
        }
        for &v in &self.inputs {
            let ty = c.ty(&self.values[v.index()].ty);
            let nv = c.map[v.index()].expect("input mapped");
            c.g.value_mut(nv).ty = ty;
        }
        let mut g = c.g;
        g.outputs = self
            .outputs
            .iter()
            .map(|v| c.map[v.index()].expect("output defined"))
            .collect();
        g
    }
}

/// State of [`Graph::compact`]: the new graph and the old-to-new value map.
struct Compactor<'a> {
    src: &'a Graph,
    g: Graph,
    map: Vec<Option<Value>>,
    /// Constants whose scale dependencies are being copied (breaks reference cycles).
    visiting: Vec<bool>,
}

impl Compactor<'_> {
    /// Makes a used value available: a constant is copied (after its scale constant);
    /// for any other value, the scale constant its type refers to is copied.
    fn operand(&mut self, v: Value) {
        if self.src.is_const(v) {
            self.constant(v);
        } else {
            self.ty(&self.src.values[v.index()].ty);
        }
    }

    fn constant(&mut self, v: Value) {
        let i = v.index();
        if self.map[i].is_some() || self.visiting[i] {
            return;
        }
        let ValueDef::Const(c) = self.src.values[i].def else {
            return;
        };
        self.visiting[i] = true;
        let info = &self.src.values[i];
        let ty = self.ty(&info.ty);
        let data = self.src.consts[c.index()].clone();
        self.map[i] = Some(self.g.add_const_data(info.name.clone(), ty, data));
    }

    /// `ty` with its per-channel scale reference remapped (copying the constant first).
    fn ty(&mut self, ty: &TensorType) -> TensorType {
        let mut ty = ty.clone();
        if let Some(Scale::Channel { scales, .. }) = &mut ty.scale {
            self.constant(*scales);
            if let Some(s) = self.map[scales.index()] {
                *scales = s;
            }
        }
        ty
    }
}
