//! Graph ⇄ [`GraphProto`]: the body of a `.fqc` file.
//!
//! **Encoding** writes a graph's values in id order (value `%k` is entry `k`), each with
//! its type, optional name and definition; nodes carry op, operand ids and node name;
//! constants carry their digest and encoded payload (`encoding`: the smallest of the
//! encodings that apply to the dtype; format 1 files have only `Plain` ones). The saver
//! passes the *compacted* graph (`Graph::compact`), whose value ids are the text
//! format's numbering and whose node order is its schedule, so nodes are stored in
//! schedule order. Every lookup is
//! bounds-checked, so encoding never panics even on a graph that fails `verify`; such
//! an artifact simply fails to load.
//!
//! **Decoding** rebuilds the graph through the public arena API in entry order, which
//! allocates value `k` for entry `k` (inputs, constants and nodes share one id space),
//! so every stored id means the same value again. It is bounded and checked before
//! anything proportional to a declared size is allocated:
//!
//! * every referenced id (operands, outputs, per-channel scales) is below the number
//!   of entries;
//! * every value's element count (per batch item) is computed with checked arithmetic
//!   and must be at most [`MAX_TENSOR_ELEMENTS`]; constants' counts also add up to at
//!   most [`MAX_TOTAL_ELEMENTS`];
//! * a payload must decode to exactly its type's element count with no bytes left over
//!   (`encoding::decode`; lengths are checked before allocating), so decoded storage is
//!   bounded by a constant times the file size.
//!
//! Everything semantic (types matching each op's rule, topological order, digests
//! matching payloads, scales valid, elements in range) is then checked by
//! `fqc_ir::verify` in [`load`](super::load).

use std::sync::Arc;

use fqc_ir::{ConstData, Dim, Graph, Shape, Tensor, Value, ValueDef};

use super::convert::{op_from_table, op_to_table, type_from_proto, type_to_proto};
use super::encoding;
use super::schema::{
    value_proto::Def, ConstProto, GraphProto, NodeProto, PayloadEncoding, Unit, ValueProto,
    END_MARKER,
};
use super::{ArtifactError, MAX_TENSOR_ELEMENTS, MAX_TOTAL_ELEMENTS};

/// Encodes `g` value by value, in arena id order.
pub(crate) fn encode(g: &Graph) -> GraphProto {
    let values = g
        .values()
        .map(|(_, info)| {
            let def = match info.def {
                ValueDef::Input(_) => Some(Def::Input(Unit {})),
                ValueDef::Const(c) => (c.index() < g.num_consts()).then(|| {
                    let data = g.const_data(c);
                    // A payload that cannot be packed (only in a graph failing `verify`)
                    // is written empty and plain, so loading it reports the length.
                    let (encoding, payload) = match data.tensor.as_ref().map(|t| {
                        encoding::encode(info.ty.dtype, row_len(&info.ty.shape), &t.data)
                            .unwrap_or((PayloadEncoding::Plain, Vec::new()))
                    }) {
                        Some((e, p)) => (e, Some(p)),
                        None => (PayloadEncoding::Plain, None),
                    };
                    Def::Const(ConstProto {
                        digest: data.digest,
                        payload,
                        encoding: encoding as i32,
                    })
                }),
                ValueDef::Node(n) => (n.index() < g.num_nodes()).then(|| {
                    let node = g.node(n);
                    Def::Node(NodeProto {
                        op: None,
                        table_op: Some(op_to_table(&node.op)),
                        inputs: node.inputs.iter().map(|v| v.0).collect(),
                        name: node.name.clone(),
                    })
                }),
            };
            ValueProto {
                ty: Some(type_to_proto(&info.ty)),
                name: info.name.clone(),
                def,
            }
        })
        .collect();
    GraphProto {
        name: g.name.clone(),
        values,
        outputs: g.outputs().iter().map(|v| v.0).collect(),
        end: END_MARKER,
    }
}

/// The length of a constant's rows for row-wise encodings: its last extent (1 for a
/// scalar, 0 for a symbolic one, which no constant has).
fn row_len(shape: &Shape) -> u64 {
    match shape.0.last() {
        None => 1,
        Some(Dim::Fixed(n)) => *n,
        Some(Dim::Batch) => 0,
    }
}

fn corrupt(k: usize, msg: impl std::fmt::Display) -> ArtifactError {
    ArtifactError::Corrupt(format!("value %{k}: {msg}"))
}

/// Rebuilds a graph from `p`, a body of format `version`, with the structural and size
/// checks of the module docs (not yet `verify`).
pub(crate) fn decode(p: &GraphProto, version: u32) -> Result<Graph, ArtifactError> {
    if p.end != END_MARKER {
        return Err(ArtifactError::Corrupt(
            "the graph message is incomplete (its end marker is missing)".into(),
        ));
    }
    let n = p.values.len();
    if u32::try_from(n).is_err() {
        return Err(ArtifactError::TooLarge(format!("{n} values")));
    }
    let in_range = |id: u32| (id as usize) < n;
    let mut g = Graph::new(p.name.clone());
    let mut total: u64 = 0;
    for (k, vp) in p.values.iter().enumerate() {
        let ty = type_from_proto(vp.ty.as_ref(), n).map_err(|e| corrupt(k, e))?;
        let numel = ty
            .shape
            .numel_per_item()
            .filter(|&c| c <= MAX_TENSOR_ELEMENTS)
            .ok_or_else(|| {
                ArtifactError::TooLarge(format!(
                    "value %{k} has shape {}, over the limit of {MAX_TENSOR_ELEMENTS} elements \
                     per tensor",
                    ty.shape
                ))
            })?;
        let name = vp.name.clone();
        let def = vp
            .def
            .as_ref()
            .ok_or_else(|| corrupt(k, "has no definition"))?;
        // Each arm allocates exactly one value, so this entry becomes value `%k`.
        match def {
            Def::Input(Unit {}) => g.add_input(name.unwrap_or_default(), ty),
            Def::Const(c) => {
                if ty.shape.has_batch() {
                    return Err(corrupt(k, "a constant's shape may not contain N"));
                }
                total = total.saturating_add(numel);
                if total > MAX_TOTAL_ELEMENTS {
                    return Err(ArtifactError::TooLarge(format!(
                        "constants up to %{k} hold more than {MAX_TOTAL_ELEMENTS} elements"
                    )));
                }
                let encoding = PayloadEncoding::try_from(c.encoding)
                    .map_err(|_| corrupt(k, format!("unknown payload encoding {}", c.encoding)))?;
                if version < 2 && encoding != PayloadEncoding::Plain {
                    return Err(corrupt(
                        k,
                        format!(
                            "payload encoding {} does not exist in format {version}",
                            encoding.name()
                        ),
                    ));
                }
                let tensor = match &c.payload {
                    None => None,
                    Some(bytes) => {
                        let data =
                            encoding::decode(encoding, ty.dtype, numel, row_len(&ty.shape), bytes)
                                .map_err(|e| corrupt(k, format!("payload: {e}")))?;
                        let shape = ty.shape.resolve(1);
                        Some(Arc::new(Tensor { shape, data }))
                    }
                };
                let data = ConstData {
                    tensor,
                    digest: c.digest,
                };
                g.add_const_data(name, ty, data)
            }
            Def::Node(node) => {
                let op = if version >= 3 {
                    op_from_table(node.table_op.as_ref())
                } else {
                    super::legacy::op_from_proto(node.op.as_ref())
                }
                .map_err(|e| corrupt(k, e))?;
                if let Some(&bad) = node.inputs.iter().find(|&&i| !in_range(i)) {
                    return Err(corrupt(
                        k,
                        format!(
                            "node `{}`: operand %{bad} does not exist ({n} values)",
                            node.name
                        ),
                    ));
                }
                let inputs = node.inputs.iter().map(|&i| Value(i)).collect();
                g.add_node(op, inputs, ty, node.name.clone(), name)
            }
        };
    }
    if let Some(&bad) = p.outputs.iter().find(|&&i| !in_range(i)) {
        return Err(ArtifactError::Corrupt(format!(
            "graph output %{bad} does not exist ({n} values)"
        )));
    }
    g.set_outputs(p.outputs.iter().map(|&i| Value(i)).collect());
    Ok(g)
}
