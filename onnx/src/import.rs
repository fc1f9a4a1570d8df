//! Model-level import: opset check, initializers, graph inputs and outputs, the node
//! loop, and the final `compact` + verify.

use std::collections::{HashMap, HashSet};

use fqc_ir::{Dim, Graph, Shape, TensorType};

use crate::error::{OnnxError, Result};
use crate::lower::{lower_node, Importer, Val};
use crate::proto::{
    tensor_proto::DataType, tensor_shape_proto::dimension, type_proto, ModelProto, NodeProto,
    ValueInfoProto,
};
use crate::shapes::{Given, GivenDim, InputShape};
use crate::tensor::{decode, Budget, External};

/// Oldest and newest supported default-domain opsets.
pub const MIN_OPSET: i64 = 6;
pub const MAX_OPSET: i64 = 28;

fn model_err(msg: impl Into<String>) -> OnnxError {
    OnnxError::Model(crate::error::one_line(&msg.into()))
}

/// The default-domain opset the model declares, checked against the supported range.
fn default_opset(model: &ModelProto) -> Result<i64> {
    let mut found = None;
    for o in &model.opset_import {
        if matches!(o.domain(), "" | "ai.onnx") {
            found = Some(found.map_or(o.version(), |f: i64| f.max(o.version())));
        }
    }
    let v = found.ok_or_else(|| model_err("the model declares no ai.onnx opset"))?;
    if !(MIN_OPSET..=MAX_OPSET).contains(&v) {
        return Err(model_err(format!(
            "ai.onnx opset {v} is not supported (supported: {MIN_OPSET} to {MAX_OPSET})"
        )));
    }
    Ok(v)
}

/// A declared input dim: a fixed extent, or unknown (symbolic, `-1` or absent) with
/// how the model spells it.
enum Declared {
    Fixed(u64),
    Unknown(String),
}

/// The IR type of a real graph input: float32, rank ≥ 1; every dim fixed by the model or
/// by the `given` shape, except a symbolic dim 0, which is the batch.
fn input_type(vi: &ValueInfoProto, given: Option<&InputShape>) -> Result<TensorType> {
    let name = vi.name();
    let err = |msg: String| model_err(format!("graph input `{name}`: {msg}"));
    let tt = match vi.r#type.as_ref().and_then(|t| t.value.as_ref()) {
        Some(type_proto::Value::TensorType(t)) => t,
        Some(_) => return Err(err("only tensor inputs are supported".into())),
        None => return Err(err("has no type".into())),
    };
    if tt.elem_type() != DataType::Float as i32 {
        return Err(err(format!(
            "element type {} is not supported (inputs must be FLOAT)",
            crate::tensor::dtype_name(tt.elem_type())
        )));
    }
    let dims = &tt
        .shape
        .as_ref()
        .ok_or_else(|| err("has no shape".into()))?
        .dim;
    if dims.is_empty() {
        return Err(err("must have rank >= 1".into()));
    }
    let mut declared = Vec::with_capacity(dims.len());
    for (i, d) in dims.iter().enumerate() {
        declared.push(match &d.value {
            Some(dimension::Value::DimValue(v)) if *v >= 0 && *v <= 1 << 31 => {
                Declared::Fixed(*v as u64)
            }
            Some(dimension::Value::DimValue(-1)) => Declared::Unknown("-1".into()),
            Some(dimension::Value::DimValue(v)) => {
                return Err(err(format!("dim {i} has invalid extent {v}")))
            }
            Some(dimension::Value::DimParam(p)) => Declared::Unknown(crate::error::one_line(p)),
            None => Declared::Unknown("unknown".into()),
        });
    }
    let example = || {
        let parts: Vec<String> = declared
            .iter()
            .enumerate()
            .map(|(i, d)| match d {
                Declared::Fixed(v) => v.to_string(),
                Declared::Unknown(_) if i == 0 => "N".into(),
                Declared::Unknown(_) => "?".into(),
            })
            .collect();
        format!("{name}={}", parts.join("x"))
    };
    if let Some(g) = given {
        if g.dims.len() != declared.len() {
            return Err(err(format!(
                "--input-shape {g} has {} dims, the input has {} ({})",
                g.dims.len(),
                declared.len(),
                example()
            )));
        }
    }
    let mut out = Vec::with_capacity(declared.len());
    for (i, d) in declared.iter().enumerate() {
        let g = given.map(|g| g.dims[i]);
        let dim = match (d, g) {
            (Declared::Fixed(v), None) => Dim::Fixed(*v),
            (Declared::Fixed(v), Some(GivenDim::Fixed(k))) if k == *v => Dim::Fixed(*v),
            (Declared::Fixed(v), Some(g)) => {
                let shown = match g {
                    GivenDim::Batch => "N".to_string(),
                    GivenDim::Fixed(k) => k.to_string(),
                };
                return Err(err(format!(
                    "dim {i} is {v} in the model; --input-shape gives {shown}"
                )));
            }
            (Declared::Unknown(_), Some(GivenDim::Fixed(k))) => Dim::Fixed(k),
            (Declared::Unknown(_), Some(GivenDim::Batch) | None) if i == 0 => Dim::Batch,
            (Declared::Unknown(p), _) => {
                return Err(err(format!(
                    "dim {i} is symbolic (`{p}`); only dim 0 (the batch) may be: give the size \
                     with --input-shape (e.g. `--input-shape {}` with each ? a number)",
                    example()
                )))
            }
        };
        out.push(dim);
    }
    let shape = Shape(out);
    if shape.numel_per_item().is_none_or(|n| n > 1 << 40) {
        return Err(err(format!("shape {shape} is too large")));
    }
    Ok(TensorType::f32(shape))
}

/// Lowers a decoded model to IR.
/// Refuses a node output whose name is already defined — by an initializer, a graph
/// input or an earlier node: ONNX graphs are in single-assignment form, and a second
/// definition would silently rebind the name for every later use.
fn check_single_definitions(imp: &Importer, nodes: &[NodeProto], opset: i64) -> Result<()> {
    let mut defined: HashSet<&str> = imp.vals.keys().map(String::as_str).collect();
    for (j, n) in nodes.iter().enumerate() {
        for o in n.output.iter().filter(|o| !o.is_empty()) {
            if !defined.insert(o) {
                let name = if n.name().is_empty() {
                    format!("{}_{j}", n.op_type())
                } else {
                    n.name().to_string()
                };
                return Err(OnnxError::Node {
                    node: crate::error::one_line(&name),
                    op_type: crate::error::one_line(n.op_type()),
                    domain: crate::error::one_line(crate::error::domain_name(n.domain())),
                    opset,
                    msg: format!(
                        "output `{}` is already defined (ONNX defines each value once)",
                        crate::error::one_line(o)
                    ),
                });
            }
        }
    }
    Ok(())
}

pub(crate) fn import_model(
    mut model: ModelProto,
    ext: External,
    shapes: &[InputShape],
) -> Result<Graph> {
    let opset = default_opset(&model)?;
    let mut graph = model
        .graph
        .take()
        .ok_or_else(|| model_err("the model has no graph"))?;
    if !graph.sparse_initializer.is_empty() {
        return Err(model_err("sparse initializers are not supported"));
    }
    let mut imp = Importer {
        g: Graph::new(graph.name()),
        opset,
        vals: HashMap::new(),
        budget: Budget::default(),
        ext,
        uses: HashMap::new(),
        user: HashMap::new(),
        absorbed: HashSet::new(),
    };
    for (j, n) in graph.node.iter().enumerate() {
        for i in &n.input {
            if !i.is_empty() {
                *imp.uses.entry(i.clone()).or_default() += 1;
                imp.user.insert(i.clone(), j);
            }
        }
    }
    for o in &graph.output {
        *imp.uses.entry(o.name().to_string()).or_default() += 1;
    }
    for tp in &mut graph.initializer {
        let name = tp.name().to_string();
        if name.is_empty() {
            return Err(model_err("an initializer has no name"));
        }
        if imp.vals.contains_key(&name) {
            return Err(model_err(format!("initializer `{name}` is defined twice")));
        }
        let t = decode(tp, &imp.ext, &mut imp.budget)?;
        let ty = TensorType::new(crate::tensor::data_dtype(&t.data), t.static_shape());
        let v = imp.g.add_const(Some(name.clone()), ty, t);
        imp.vals.insert(name, Val::Ir(v));
    }
    let initializers: HashSet<String> = imp.vals.keys().cloned().collect();
    graph.initializer.clear();
    let real_inputs: Vec<&str> = graph
        .input
        .iter()
        .map(|vi| vi.name())
        .filter(|n| !initializers.contains(*n))
        .collect();
    let given = Given::new(shapes, &real_inputs)?;
    let n_inputs = real_inputs.len();
    for vi in &graph.input {
        let name = vi.name();
        if initializers.contains(name) {
            // Old IR versions list initializers as inputs too: they are constants.
            continue;
        }
        if name.is_empty() {
            return Err(model_err("a graph input has no name"));
        }
        if imp.vals.contains_key(name) {
            return Err(model_err(format!(
                "graph input `{name}` is listed twice (ONNX names each value once)"
            )));
        }
        let ty = input_type(vi, given.for_input(name, n_inputs))?;
        let v = imp.g.add_input(name, ty);
        imp.vals.insert(name.to_string(), Val::Ir(v));
    }
    let nodes = std::mem::take(&mut graph.node);
    check_single_definitions(&imp, &nodes, opset)?;
    for i in 0..nodes.len() {
        if imp.absorbed.contains(&i) {
            continue;
        }
        lower_node(&mut imp, &nodes, i)?;
    }
    let mut outputs = Vec::new();
    for vo in &graph.output {
        let name = vo.name();
        let v = match imp.vals.get(name) {
            Some(Val::Ir(v)) => *v,
            Some(Val::Sym(s)) => match s.concrete() {
                // A fully known shape value (e.g. `Shape` of a static tensor).
                Some(c) => {
                    let t = fqc_ir::Tensor {
                        shape: if s.scalar { vec![] } else { vec![c.len()] },
                        data: fqc_ir::TensorData::I64(c),
                    };
                    let ty = TensorType::new(fqc_ir::DType::I64, t.static_shape());
                    imp.g.add_const(Some(name.to_string()), ty, t)
                }
                None => {
                    return Err(model_err(format!(
                    "graph output `{name}` is a shape value that depends on the batch size ({s})"
                )))
                }
            },
            None => {
                return Err(model_err(format!(
                    "graph output `{name}` is never computed"
                )))
            }
        };
        outputs.push(v);
    }
    if outputs.is_empty() {
        return Err(model_err("the graph has no outputs"));
    }
    imp.g.set_outputs(outputs);
    let g = imp.g.compact();
    fqc_ir::verify::verify(&g)
        .map_err(|e| model_err(format!("the imported graph does not verify: {e}")))?;
    Ok(g)
}
