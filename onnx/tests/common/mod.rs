//! Builds small ONNX models with the prost types for the importer's tests.
#![allow(dead_code)]

use fqc_onnx::proto::{
    attribute_proto::AttributeType, tensor_proto::DataType, tensor_shape_proto::dimension,
    type_proto, AttributeProto, GraphProto, ModelProto, NodeProto, OperatorSetIdProto, TensorProto,
    TensorShapeProto, TypeProto, ValueInfoProto,
};
use prost::Message;

/// A dimension of a graph input: fixed, named (symbolic) or unset.
#[derive(Clone, Copy, Debug)]
pub enum D {
    V(i64),
    P(&'static str),
    Unset,
}
pub use D::{P, V};

pub fn vi(name: &str, elem: DataType, dims: &[D]) -> ValueInfoProto {
    let dim = dims
        .iter()
        .map(|d| fqc_onnx::proto::tensor_shape_proto::Dimension {
            value: match d {
                D::V(v) => Some(dimension::Value::DimValue(*v)),
                D::P(p) => Some(dimension::Value::DimParam(p.to_string())),
                D::Unset => None,
            },
            ..Default::default()
        })
        .collect();
    ValueInfoProto {
        name: Some(name.into()),
        r#type: Some(TypeProto {
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type: Some(elem as i32),
                shape: Some(TensorShapeProto { dim }),
            })),
            ..Default::default()
        }),
        ..Default::default()
    }
}

pub fn tf32(name: &str, dims: &[i64], data: Vec<f32>) -> TensorProto {
    TensorProto {
        name: Some(name.into()),
        dims: dims.to_vec(),
        data_type: Some(DataType::Float as i32),
        float_data: data,
        ..Default::default()
    }
}

pub fn ti64(name: &str, dims: &[i64], data: Vec<i64>) -> TensorProto {
    TensorProto {
        name: Some(name.into()),
        dims: dims.to_vec(),
        data_type: Some(DataType::Int64 as i32),
        int64_data: data,
        ..Default::default()
    }
}

/// `0, 1, 2, …` scaled by `k`, for `n` elements.
pub fn ramp(n: usize, k: f32) -> Vec<f32> {
    (0..n).map(|i| i as f32 * k).collect()
}

pub fn ai(name: &str, v: i64) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        r#type: Some(AttributeType::Int as i32),
        i: Some(v),
        ..Default::default()
    }
}

pub fn ais(name: &str, v: &[i64]) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        r#type: Some(AttributeType::Ints as i32),
        ints: v.to_vec(),
        ..Default::default()
    }
}

pub fn af(name: &str, v: f32) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        r#type: Some(AttributeType::Float as i32),
        f: Some(v),
        ..Default::default()
    }
}

pub fn afs(name: &str, v: &[f32]) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        r#type: Some(AttributeType::Floats as i32),
        floats: v.to_vec(),
        ..Default::default()
    }
}

pub fn astr(name: &str, v: &str) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        r#type: Some(AttributeType::String as i32),
        s: Some(v.as_bytes().to_vec()),
        ..Default::default()
    }
}

pub fn at(name: &str, t: TensorProto) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        r#type: Some(AttributeType::Tensor as i32),
        t: Some(t),
        ..Default::default()
    }
}

/// A graph under construction.
#[derive(Default)]
pub struct G {
    pub graph: GraphProto,
    pub opset: i64,
}

impl G {
    pub fn new(opset: i64) -> G {
        G {
            graph: GraphProto {
                name: Some("test".into()),
                ..Default::default()
            },
            opset,
        }
    }

    /// A float32 graph input.
    pub fn input(&mut self, name: &str, dims: &[D]) -> &mut Self {
        self.graph.input.push(vi(name, DataType::Float, dims));
        self
    }

    pub fn output(&mut self, name: &str) -> &mut Self {
        self.graph.output.push(ValueInfoProto {
            name: Some(name.into()),
            ..Default::default()
        });
        self
    }

    pub fn init(&mut self, t: TensorProto) -> &mut Self {
        self.graph.initializer.push(t);
        self
    }

    /// Appends a node; returns it for attributes (`.attribute.push(…)`).
    pub fn node(&mut self, op: &str, inputs: &[&str], outputs: &[&str]) -> &mut NodeProto {
        self.node_attrs(op, inputs, outputs, vec![])
    }

    pub fn node_attrs(
        &mut self,
        op: &str,
        inputs: &[&str],
        outputs: &[&str],
        attrs: Vec<AttributeProto>,
    ) -> &mut NodeProto {
        let idx = self.graph.node.len();
        self.graph.node.push(NodeProto {
            name: Some(format!("n{idx}")),
            op_type: Some(op.into()),
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: outputs.iter().map(|s| s.to_string()).collect(),
            attribute: attrs,
            ..Default::default()
        });
        self.graph.node.last_mut().expect("pushed")
    }

    pub fn model(&self) -> ModelProto {
        ModelProto {
            ir_version: Some(8),
            opset_import: vec![OperatorSetIdProto {
                domain: Some(String::new()),
                version: Some(self.opset),
            }],
            graph: Some(self.graph.clone()),
            ..Default::default()
        }
    }

    pub fn bytes(&self) -> Vec<u8> {
        self.model().encode_to_vec()
    }

    pub fn import(&self) -> fqc_onnx::Result<fqc_ir::Graph> {
        fqc_onnx::import_bytes(&self.bytes())
    }

    /// Imports, panicking with the error message on failure.
    pub fn ok(&self) -> fqc_ir::Graph {
        match self.import() {
            Ok(g) => g,
            Err(e) => panic!("import failed: {e}"),
        }
    }

    /// Imports, expecting an error; returns its message.
    pub fn err(&self) -> String {
        match self.import() {
            Ok(_) => panic!("import unexpectedly succeeded"),
            Err(e) => e.to_string(),
        }
    }
}

/// The ops of `g` in schedule order, by text-format name.
pub fn ops(g: &fqc_ir::Graph) -> Vec<&'static str> {
    g.nodes().map(|(_, n)| n.op.name()).collect()
}

/// The type of output `i` as text (`f32[N,10]`-like).
pub fn out_ty(g: &fqc_ir::Graph, i: usize) -> String {
    let t = g.ty(g.outputs()[i]);
    format!("{}{}", t.dtype, t.shape)
}

/// Runs `g` with the reference interpreter.
pub fn run(g: &fqc_ir::Graph, inputs: &[fqc_ir::Tensor]) -> Vec<fqc_ir::Tensor> {
    fqc_ir::run(g, inputs).expect("interpreter runs")
}
