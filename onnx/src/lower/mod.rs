//! Lowering ONNX nodes to IR: the per-node context, attribute access and the dispatch
//! table. One file per op family does the work:
//!
//! - [`conv`]: Conv, MaxPool, AveragePool, GlobalAveragePool, GlobalMaxPool (2-D, and
//!   1-D through a unit-height reshape);
//! - [`eltwise`]: Relu, Clip, Add/Sub/Mul/Div (incl. opset-6 `broadcast`/`axis`), Sum,
//!   Dropout, Identity;
//! - [`norm`]: BatchNormalization, LRN, Softmax (incl. the opset < 13 2-D coercion);
//! - [`linear`]: Gemm, MatMul, and PyTorch's `MatMul + Add` as one Gemm;
//! - [`layout`]: Flatten, Reshape, Concat, Transpose, Squeeze, Unsqueeze;
//! - [`activation`]: HardSwish, HardSigmoid, Sigmoid, Tanh, LeakyRelu, Elu, Selu,
//!   Softplus, Gelu, Erf, Mish, Swish, Exp, Log, Neg, Abs, Sqrt, Reciprocal, PRelu,
//!   Min, Max, Pow;
//! - [`select`]: Slice, Gather and Split of runtime tensors, Expand, Tile, Pad, Resize,
//!   Upsample;
//! - [`reduce`]: ReduceMean, ReduceMax, ReduceMin, ReduceSum;
//! - [`shape`]: import-time values — Constant, ConstantOfShape, and the int64 shape
//!   arithmetic (Shape, Gather, Cast, Slice, …) folded into "known vectors" whose
//!   elements may be linear in the symbolic batch;
//! - [`fold`]: evaluation of float nodes whose operands are all constants.
//!
//! Lowering functions report plain messages; [`lower_node`] wraps them into
//! [`OnnxError::Node`] naming the node, op, domain and opset.

pub(crate) mod activation;
pub(crate) mod conv;
pub(crate) mod eltwise;
pub(crate) mod fold;
pub(crate) mod layout;
pub(crate) mod linear;
pub(crate) mod norm;
pub(crate) mod reduce;
pub(crate) mod select;
pub(crate) mod shape;

use std::collections::{HashMap, HashSet};

use fqc_ir::{infer, DType, Graph, Op, Tensor, TensorType, Value};

use crate::error::{domain_name, one_line, OnnxError, Result};
use crate::proto::{attribute_proto::AttributeType, AttributeProto, NodeProto, TensorProto};
use crate::tensor::{Budget, External};

pub(crate) use shape::{Lin, SymVec};

/// A lowering step's result: errors are messages the caller attaches to the node.
pub(crate) type LResult<T> = std::result::Result<T, String>;

/// What an ONNX value name stands for during import.
#[derive(Clone, Debug)]
pub(crate) enum Val {
    /// An IR value: a graph input, a constant or a node result.
    Ir(Value),
    /// An int64 vector (or scalar) known at import time whose elements may depend on the
    /// symbolic batch; never materialised in the IR.
    Sym(SymVec),
}

/// Importer state shared by all nodes of one model.
#[derive(Debug)]
pub(crate) struct Importer {
    pub g: Graph,
    /// The default-domain opset.
    pub opset: i64,
    pub vals: HashMap<String, Val>,
    pub budget: Budget,
    pub ext: External,
    /// How many times each ONNX value is consumed (node inputs and graph outputs).
    pub uses: HashMap<String, usize>,
    /// The index of the last node consuming each ONNX value.
    pub user: HashMap<String, usize>,
    /// Nodes already lowered as part of an earlier node (MatMul + Add fusion).
    pub absorbed: HashSet<usize>,
}

/// One node being lowered.
pub(crate) struct Cx<'a> {
    pub imp: &'a mut Importer,
    pub nodes: &'a [NodeProto],
    pub index: usize,
    pub node: &'a NodeProto,
    /// The node's name, or `<OpType>_<index>` when it has none.
    pub name: String,
    pub attrs: Attrs<'a>,
}

/// Lowers node `index` of `nodes`, attaching the node's identity to any error.
pub(crate) fn lower_node(imp: &mut Importer, nodes: &[NodeProto], index: usize) -> Result<()> {
    let node = &nodes[index];
    let name = if node.name().is_empty() {
        format!("{}_{index}", node.op_type())
    } else {
        node.name().to_string()
    };
    let opset = imp.opset;
    let wrap = |msg: String| OnnxError::Node {
        node: one_line(&name),
        op_type: one_line(node.op_type()),
        domain: one_line(domain_name(node.domain())),
        opset,
        msg: one_line(&msg),
    };
    if !matches!(node.domain(), "" | "ai.onnx") {
        return Err(wrap(format!(
            "ops from domain `{}` are not supported (only ai.onnx)",
            node.domain()
        )));
    }
    let mut cx = Cx {
        imp,
        nodes,
        index,
        node,
        name: name.clone(),
        attrs: Attrs::new(&node.attribute),
    };
    cx.run().map_err(wrap)
}

/// How a node is lowered.
type Lowering = fn(&mut Cx<'_>) -> LResult<()>;

/// Every ONNX op type (default domain) the importer lowers, with its lowering: the one
/// list [`supported_ops`] reports (`fqc ops`, and the conformance generators filter
/// ONNX's node tests by it).
const LOWERINGS: &[(&str, Lowering)] = &[
    ("Conv", conv::conv),
    ("MaxPool", conv::pool),
    ("AveragePool", conv::pool),
    ("GlobalAveragePool", conv::global_pool),
    ("GlobalMaxPool", conv::global_pool),
    ("Relu", eltwise::relu),
    ("Clip", eltwise::clip),
    ("Add", eltwise::binary),
    ("Sub", eltwise::binary),
    ("Mul", eltwise::binary),
    ("Div", eltwise::binary),
    ("Sum", eltwise::sum),
    ("Dropout", eltwise::dropout),
    ("Identity", eltwise::identity),
    ("BatchNormalization", norm::batch_norm),
    ("LRN", norm::lrn),
    ("Softmax", norm::softmax),
    ("Gemm", linear::gemm),
    ("MatMul", linear::matmul),
    ("Flatten", layout::flatten),
    ("Reshape", layout::reshape),
    ("Concat", layout::concat),
    ("Transpose", layout::transpose),
    ("Squeeze", layout::squeeze),
    ("Unsqueeze", layout::squeeze),
    ("Constant", shape::constant),
    ("ConstantOfShape", shape::constant_of_shape),
    ("Shape", shape::shape),
    ("Gather", gather),
    ("Cast", shape::cast),
    ("Slice", slice),
    ("Split", select::split),
    ("Expand", select::expand),
    ("Tile", select::tile),
    ("Pad", select::pad),
    ("Resize", select::resize),
    ("Upsample", select::resize),
    ("HardSwish", activation::unary),
    ("HardSigmoid", activation::unary),
    ("Sigmoid", activation::unary),
    ("Tanh", activation::unary),
    ("LeakyRelu", activation::unary),
    ("Elu", activation::unary),
    ("Selu", activation::unary),
    ("Softplus", activation::unary),
    ("Gelu", activation::unary),
    ("Erf", activation::unary),
    ("Mish", activation::unary),
    ("Swish", activation::unary),
    ("Exp", activation::unary),
    ("Log", activation::unary),
    ("Neg", activation::unary),
    ("Abs", activation::unary),
    ("Sqrt", activation::unary),
    ("Reciprocal", activation::unary),
    ("PRelu", activation::prelu),
    ("Min", activation::min_max_pow),
    ("Max", activation::min_max_pow),
    ("Pow", activation::min_max_pow),
    ("ReduceMean", reduce::reduce),
    ("ReduceMax", reduce::reduce),
    ("ReduceMin", reduce::reduce),
    ("ReduceSum", reduce::reduce),
];

/// `Slice`: evaluated on a shape value, an op on a runtime tensor.
fn slice(cx: &mut Cx<'_>) -> LResult<()> {
    if cx.is_int(0)? {
        shape::slice(cx)
    } else {
        select::slice(cx)
    }
}

/// `Gather`: evaluated on a shape value, an op on a runtime tensor.
fn gather(cx: &mut Cx<'_>) -> LResult<()> {
    if cx.is_int(0)? {
        shape::gather(cx)
    } else {
        select::gather(cx)
    }
}

/// The ONNX op types (default domain) the importer lowers, sorted.
pub fn supported_ops() -> Vec<&'static str> {
    let mut ops: Vec<&str> = LOWERINGS.iter().map(|(op, _)| *op).collect();
    ops.sort_unstable();
    ops
}

impl Cx<'_> {
    fn run(&mut self) -> LResult<()> {
        // (Every output name is new: `import::check_single_definitions` checked the
        // whole graph before any node was lowered.)
        let all_const = self.node.input.iter().any(|n| !n.is_empty())
            && (0..self.node.input.len()).all(|i| match self.val_opt(i) {
                Ok(None) => true,
                Ok(Some(Val::Ir(v))) => self.imp.g.is_const(v),
                Ok(Some(Val::Sym(s))) => s.concrete().is_some(),
                Err(_) => true,
            });
        let start = self.imp.g.order().len();
        self.dispatch()?;
        self.attrs.finish()?;
        if all_const {
            fold::fold_outputs(self, start)?;
        }
        Ok(())
    }

    fn dispatch(&mut self) -> LResult<()> {
        match LOWERINGS.iter().find(|(op, _)| *op == self.node.op_type()) {
            Some((_, lower)) => lower(self),
            None => Err(format!("unsupported op type `{}`", self.node.op_type())),
        }
    }

    pub fn opset(&self) -> i64 {
        self.imp.opset
    }

    pub fn op_type(&self) -> &str {
        self.node.op_type()
    }

    /// The name of input `i`, or None when absent or empty (an omitted optional input).
    pub fn input_name(&self, i: usize) -> Option<&str> {
        self.node
            .input
            .get(i)
            .map(String::as_str)
            .filter(|s| !s.is_empty())
    }

    pub fn num_inputs(&self) -> usize {
        self.node.input.len()
    }

    /// Input `i` if present.
    pub fn val_opt(&self, i: usize) -> LResult<Option<Val>> {
        match self.input_name(i) {
            None => Ok(None),
            Some(n) => self
                .imp
                .vals
                .get(n)
                .cloned()
                .map(Some)
                .ok_or_else(|| format!("input `{n}` is not defined before this node")),
        }
    }

    /// Required input `i`.
    pub fn val(&self, i: usize) -> LResult<Val> {
        self.val_opt(i)?
            .ok_or_else(|| format!("required input {i} is missing"))
    }

    /// Input `i` as an IR value (a runtime tensor or a constant).
    pub fn tensor_opt(&mut self, i: usize) -> LResult<Option<Value>> {
        match self.val_opt(i)? {
            None => Ok(None),
            Some(Val::Ir(v)) => Ok(Some(v)),
            Some(Val::Sym(s)) => match s.concrete() {
                Some(c) => {
                    let v = self.add_const(None, Tensor {
                        shape: if s.scalar { vec![] } else { vec![c.len()] },
                        data: fqc_ir::TensorData::I64(c),
                    })?;
                    Ok(Some(v))
                }
                None => Err(format!(
                    "input `{}` is a shape value that depends on the batch size; it cannot be used as a tensor",
                    self.input_name(i).unwrap_or_default()
                )),
            },
        }
    }

    /// Required input `i` as an IR value.
    pub fn tensor(&mut self, i: usize) -> LResult<Value> {
        self.tensor_opt(i)?
            .ok_or_else(|| format!("required input {i} is missing"))
    }

    /// Required input `i` as a float IR value.
    pub fn f32_tensor(&mut self, i: usize) -> LResult<Value> {
        let v = self.tensor(i)?;
        let dt = self.ty(v).dtype;
        if dt != DType::F32 {
            return Err(format!(
                "input `{}` has element type {dt}; only float32 is supported here",
                self.input_name(i).unwrap_or_default()
            ));
        }
        Ok(v)
    }

    /// The payload of input `i` if it is a constant.
    pub fn const_of(&self, i: usize) -> LResult<Option<&Tensor>> {
        Ok(match self.val_opt(i)? {
            Some(Val::Ir(v)) => self.imp.g.const_tensor(v),
            _ => None,
        })
    }

    pub fn ty(&self, v: Value) -> &TensorType {
        self.imp.g.ty(v)
    }

    /// Adds a constant, counting it against the model's element budget.
    pub fn add_const(&mut self, name: Option<String>, t: Tensor) -> LResult<Value> {
        let what = name
            .clone()
            .unwrap_or_else(|| format!("{}/const", self.name));
        self.imp
            .budget
            .take(&what, t.numel() as u64)
            .map_err(|e| e.to_string())?;
        let ty = TensorType::new(crate::tensor::data_dtype(&t.data), t.static_shape());
        Ok(self.imp.g.add_const(name, ty, t))
    }

    /// ONNX name of output `i` (None when absent or empty).
    pub fn out_name(&self, i: usize) -> Option<String> {
        self.node.output.get(i).filter(|s| !s.is_empty()).cloned()
    }

    /// Whether output `i` is consumed by any node or is a graph output.
    pub fn output_used(&self, i: usize) -> bool {
        self.out_name(i)
            .is_some_and(|n| self.imp.uses.get(&n).copied().unwrap_or(0) > 0)
    }

    /// Errors if any output from `first` on is used (unsupported optional outputs).
    pub fn forbid_outputs_from(&self, first: usize, what: &str) -> LResult<()> {
        for i in first..self.node.output.len() {
            if self.output_used(i) {
                return Err(format!(
                    "output {i} (`{}`, {what}) is used, which is not supported",
                    self.node.output[i]
                ));
            }
        }
        Ok(())
    }

    /// Binds output `i` to `v`.
    pub fn set_out(&mut self, i: usize, v: Val) {
        if let Some(n) = self.out_name(i) {
            self.imp.vals.insert(n, v);
        }
    }

    /// Appends an IR node typed by [`infer`]. `suffix` distinguishes helper nodes of one
    /// ONNX node (`""` for the main one, which also gets output 0's name).
    pub fn emit(&mut self, op: Op, inputs: Vec<Value>, suffix: &str) -> LResult<Value> {
        let tys: Vec<&TensorType> = inputs.iter().map(|&v| self.imp.g.ty(v)).collect();
        let ty = infer::infer(&op, &tys)?;
        let (node_name, value_name) = if suffix.is_empty() {
            (self.name.clone(), self.out_name(0))
        } else {
            (format!("{}/{suffix}", self.name), None)
        };
        Ok(self.imp.g.add_node(op, inputs, ty, node_name, value_name))
    }

    /// Emits the main node and binds it to output 0.
    pub fn emit_out(&mut self, op: Op, inputs: Vec<Value>) -> LResult<()> {
        let v = self.emit(op, inputs, "")?;
        self.set_out(0, Val::Ir(v));
        Ok(())
    }

    /// Reshapes `v` to `dims`: a new constant for constants, a Reshape node otherwise.
    pub fn reshape(&mut self, v: Value, dims: Vec<fqc_ir::Dim>, suffix: &str) -> LResult<Value> {
        if let Some(t) = self.imp.g.const_tensor(v) {
            if let Some(fixed) = fqc_ir::Shape(dims.clone()).as_fixed() {
                let n: u64 = fixed.iter().product();
                if n as usize == t.numel() {
                    let t = Tensor {
                        shape: fixed.iter().map(|&d| d as usize).collect(),
                        data: t.data.clone(),
                    };
                    let name = self.imp.g.value(v).name.clone();
                    return self.add_const(name, t);
                }
            }
        }
        self.emit(Op::Reshape { shape: dims }, vec![v], suffix)
    }

    /// Normalises a possibly negative `axis` for rank `rank` (`inclusive` allows `rank`).
    pub fn axis(&self, axis: i64, rank: usize, inclusive: bool) -> LResult<usize> {
        let r = rank as i64 + i64::from(inclusive);
        let a = if axis < 0 { axis + rank as i64 } else { axis };
        if a < 0 || a >= r {
            return Err(format!("axis {axis} is out of range for rank {rank}"));
        }
        Ok(a as usize)
    }
}

/// Attribute access that remembers which attributes a lowering looked at, so that any
/// attribute it does not know is reported instead of silently ignored.
pub(crate) struct Attrs<'a> {
    list: &'a [AttributeProto],
    used: Vec<bool>,
}

impl<'a> Attrs<'a> {
    fn new(list: &'a [AttributeProto]) -> Attrs<'a> {
        Attrs {
            list,
            used: vec![false; list.len()],
        }
    }

    fn get(&mut self, name: &str, want: AttributeType) -> LResult<Option<&'a AttributeProto>> {
        let Some(i) = self.list.iter().position(|a| a.name() == name) else {
            return Ok(None);
        };
        self.used[i] = true;
        let a = &self.list[i];
        if !a.ref_attr_name().is_empty() {
            return Err(format!(
                "attribute `{name}` refers to a function attribute, which is not supported"
            ));
        }
        let ty = a.r#type();
        let ok = ty == want
            || (ty == AttributeType::Undefined
                && match want {
                    AttributeType::Int => a.i.is_some(),
                    AttributeType::Float => a.f.is_some(),
                    AttributeType::String => a.s.is_some(),
                    AttributeType::Tensor => a.t.is_some(),
                    AttributeType::Ints => true,
                    AttributeType::Floats => true,
                    _ => false,
                });
        if !ok {
            return Err(format!(
                "attribute `{name}` must be {}, got {}",
                want.as_str_name(),
                ty.as_str_name()
            ));
        }
        Ok(Some(a))
    }

    /// Whether attribute `name` is present (marks it as known).
    pub fn has(&mut self, name: &str) -> bool {
        match self.list.iter().position(|a| a.name() == name) {
            Some(i) => {
                self.used[i] = true;
                true
            }
            None => false,
        }
    }

    /// Accepts attribute `name` without reading it (ignored at inference).
    pub fn ignore(&mut self, name: &str) {
        self.has(name);
    }

    pub fn int_opt(&mut self, name: &str) -> LResult<Option<i64>> {
        Ok(self.get(name, AttributeType::Int)?.map(|a| a.i()))
    }

    pub fn int(&mut self, name: &str, default: i64) -> LResult<i64> {
        Ok(self.int_opt(name)?.unwrap_or(default))
    }

    pub fn float_opt(&mut self, name: &str) -> LResult<Option<f32>> {
        Ok(self.get(name, AttributeType::Float)?.map(|a| a.f()))
    }

    pub fn float(&mut self, name: &str, default: f32) -> LResult<f32> {
        Ok(self.float_opt(name)?.unwrap_or(default))
    }

    pub fn ints(&mut self, name: &str) -> LResult<Option<Vec<i64>>> {
        Ok(self.get(name, AttributeType::Ints)?.map(|a| a.ints.clone()))
    }

    pub fn floats(&mut self, name: &str) -> LResult<Option<Vec<f32>>> {
        Ok(self
            .get(name, AttributeType::Floats)?
            .map(|a| a.floats.clone()))
    }

    pub fn string(&mut self, name: &str) -> LResult<Option<String>> {
        Ok(self
            .get(name, AttributeType::String)?
            .map(|a| String::from_utf8_lossy(a.s()).into_owned()))
    }

    pub fn tensor(&mut self, name: &str) -> LResult<Option<&'a TensorProto>> {
        Ok(self
            .get(name, AttributeType::Tensor)?
            .and_then(|a| a.t.as_ref()))
    }

    /// Errors on the first attribute no lowering step looked at.
    fn finish(&self) -> LResult<()> {
        match self.used.iter().position(|u| !u) {
            Some(i) => Err(format!("unsupported attribute `{}`", self.list[i].name())),
            None => Ok(()),
        }
    }
}
