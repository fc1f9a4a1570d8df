//! ONNX models built from fuzzer bytes: the importer's vocabulary of ops and
//! attributes, graph inputs with fixed, symbolic, zero, negative or huge extents,
//! initializers of every element type with consistent or inconsistent payloads, and
//! nodes wired to earlier values (or to names that do not exist). Most draws are small
//! and plausible, so many models import and exercise lowering, shape inference and
//! constant folding; some are extreme, so the checks on hostile input are exercised too.

use arbitrary::{Result, Unstructured};
use fqc_onnx::proto::{
    attribute_proto::AttributeType, tensor_proto::DataType, tensor_shape_proto::dimension,
    type_proto, AttributeProto, GraphProto, ModelProto, NodeProto, OperatorSetIdProto, TensorProto,
    TensorShapeProto, TypeProto, ValueInfoProto,
};

/// Op types the builder draws (the importer's, a few it refuses, and one unknown).
pub const OPS: &[&str] = &[
    "Conv",
    "BatchNormalization",
    "Relu",
    "Clip",
    "Add",
    "Sub",
    "Mul",
    "Div",
    "Sum",
    "MaxPool",
    "AveragePool",
    "GlobalAveragePool",
    "GlobalMaxPool",
    "Gemm",
    "MatMul",
    "Flatten",
    "Reshape",
    "Concat",
    "Softmax",
    "LRN",
    "Transpose",
    "Constant",
    "ConstantOfShape",
    "Identity",
    "Dropout",
    "Shape",
    "Gather",
    "Unsqueeze",
    "Squeeze",
    "Cast",
    "Slice",
    "HardSwish",
    "Sigmoid",
    "Pad",
    "ReduceMean",
    "Split",
    "Expand",
    "Tile",
    "Resize",
    "Fuzz",
];

/// Attribute names the builder draws, with the kind of value each usually has.
const ATTRS: &[(&str, AttributeType)] = &[
    ("kernel_shape", AttributeType::Ints),
    ("strides", AttributeType::Ints),
    ("pads", AttributeType::Ints),
    ("dilations", AttributeType::Ints),
    ("group", AttributeType::Int),
    ("axis", AttributeType::Int),
    ("axes", AttributeType::Ints),
    ("perm", AttributeType::Ints),
    ("epsilon", AttributeType::Float),
    ("alpha", AttributeType::Float),
    ("beta", AttributeType::Float),
    ("bias", AttributeType::Float),
    ("size", AttributeType::Int),
    ("transA", AttributeType::Int),
    ("transB", AttributeType::Int),
    ("auto_pad", AttributeType::String),
    ("ceil_mode", AttributeType::Int),
    ("count_include_pad", AttributeType::Int),
    ("keepdims", AttributeType::Int),
    ("to", AttributeType::Int),
    ("min", AttributeType::Float),
    ("max", AttributeType::Float),
    ("value", AttributeType::Tensor),
    ("starts", AttributeType::Ints),
    ("ends", AttributeType::Ints),
    ("shape", AttributeType::Ints),
    ("mode", AttributeType::String),
    ("allowzero", AttributeType::Int),
    ("training_mode", AttributeType::Int),
    ("spatial", AttributeType::Int),
    ("split", AttributeType::Ints),
];

const ELEM_TYPES: &[DataType] = &[
    DataType::Float,
    DataType::Float,
    DataType::Float,
    DataType::Int64,
    DataType::Int64,
    DataType::Int32,
    DataType::Uint8,
    DataType::Int8,
    DataType::Double,
    DataType::Bool,
    DataType::Float16,
    DataType::String,
];

/// A small count, extent or index, now and then an extreme one.
fn small_int(u: &mut Unstructured<'_>) -> Result<i64> {
    Ok(match u.int_in_range(0u8..=31)? {
        0 => *u.choose(&[i64::MIN, i64::MAX, -(1 << 40), 1 << 40, 1 << 31, -1, 0])?,
        1..=3 => u.int_in_range(-3i64..=-1)?,
        _ => u.int_in_range(0i64..=9)?,
    })
}

fn small_float(u: &mut Unstructured<'_>) -> Result<f32> {
    Ok(match u.int_in_range(0u8..=15)? {
        0 => *u.choose(&[f32::NAN, f32::INFINITY, f32::NEG_INFINITY, 1e30, -1e30, 0.0])?,
        1 => f32::from_bits(u.arbitrary()?),
        _ => f32::from(u.int_in_range(-40i8..=40)?) / 8.0,
    })
}

/// A graph-input extent: mostly small and fixed, sometimes symbolic, unset, zero,
/// negative or huge.
fn input_dim(u: &mut Unstructured<'_>, axis: usize) -> Result<dimension::Value> {
    Ok(match u.int_in_range(0u8..=15)? {
        0 => dimension::Value::DimParam(if axis == 0 { "N" } else { "H" }.into()),
        1 => dimension::Value::DimValue(small_int(u)?),
        _ if axis == 0 && u.arbitrary()? => dimension::Value::DimParam("N".into()),
        _ => dimension::Value::DimValue(u.int_in_range(1i64..=8)?),
    })
}

fn value_info(name: &str, elem: DataType, dims: Option<Vec<dimension::Value>>) -> ValueInfoProto {
    ValueInfoProto {
        name: Some(name.into()),
        r#type: Some(TypeProto {
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type: Some(elem as i32),
                shape: dims.map(|d| TensorShapeProto {
                    dim: d
                        .into_iter()
                        .map(|v| fqc_onnx::proto::tensor_shape_proto::Dimension {
                            value: Some(v),
                            ..Default::default()
                        })
                        .collect(),
                }),
            })),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// A tensor of `elem` and small dims; its payload mostly matches the dims.
fn tensor(u: &mut Unstructured<'_>, name: &str) -> Result<TensorProto> {
    let elem = *u.choose(ELEM_TYPES)?;
    let rank = u.int_in_range(0usize..=4)?;
    let mut dims = Vec::with_capacity(rank);
    for _ in 0..rank {
        dims.push(if u.ratio(1u8, 24)? {
            small_int(u)?
        } else {
            u.int_in_range(1i64..=6)?
        });
    }
    let count = dims
        .iter()
        .try_fold(1i64, |a, &d| a.checked_mul(d))
        .filter(|&n| (0..=4096).contains(&n))
        .unwrap_or(1) as usize;
    let count = if u.ratio(1u8, 16)? {
        u.int_in_range(0usize..=16)?
    } else {
        count
    };
    let mut t = TensorProto {
        name: Some(name.into()),
        dims,
        data_type: Some(elem as i32),
        ..Default::default()
    };
    let raw = u.ratio(1u8, 3)?;
    match elem {
        DataType::Float => {
            let v: Vec<f32> = (0..count).map(|_| small_float(u)).collect::<Result<_>>()?;
            if raw {
                t.raw_data = Some(v.iter().flat_map(|x| x.to_le_bytes()).collect());
            } else {
                t.float_data = v;
            }
        }
        DataType::Int64 => {
            let v: Vec<i64> = (0..count).map(|_| small_int(u)).collect::<Result<_>>()?;
            if raw {
                t.raw_data = Some(v.iter().flat_map(|x| x.to_le_bytes()).collect());
            } else {
                t.int64_data = v;
            }
        }
        DataType::Double => {
            t.double_data = (0..count)
                .map(|_| small_float(u).map(f64::from))
                .collect::<Result<_>>()?;
        }
        DataType::String => {
            t.string_data = (0..count.min(4))
                .map(|_| u.arbitrary::<Vec<u8>>())
                .collect::<Result<_>>()?;
        }
        _ => {
            t.int32_data = (0..count)
                .map(|_| small_int(u).map(|v| v as i32))
                .collect::<Result<_>>()?;
        }
    }
    Ok(t)
}

fn attribute(u: &mut Unstructured<'_>, counter: &mut usize) -> Result<AttributeProto> {
    let (name, kind) = *u.choose(ATTRS)?;
    // Now and then the wrong kind of value for the name.
    let kind = if u.ratio(1u8, 20)? {
        *u.choose(&[
            AttributeType::Int,
            AttributeType::Ints,
            AttributeType::Float,
            AttributeType::String,
            AttributeType::Tensor,
            AttributeType::Graph,
        ])?
    } else {
        kind
    };
    let mut a = AttributeProto {
        name: Some(name.into()),
        r#type: Some(kind as i32),
        ..Default::default()
    };
    match kind {
        AttributeType::Int => a.i = Some(small_int(u)?),
        AttributeType::Ints => {
            let n = u.int_in_range(0usize..=6)?;
            a.ints = (0..n).map(|_| small_int(u)).collect::<Result<_>>()?;
        }
        AttributeType::Float => a.f = Some(small_float(u)?),
        AttributeType::String => {
            let s = *u.choose(&[
                "NOTSET",
                "SAME_UPPER",
                "SAME_LOWER",
                "VALID",
                "constant",
                "reflect",
                "edge",
                "nearest",
                "linear",
                "",
            ])?;
            a.s = Some(s.as_bytes().to_vec());
        }
        AttributeType::Tensor => {
            *counter += 1;
            a.t = Some(tensor(u, &format!("attr{counter}"))?);
        }
        _ => {}
    }
    Ok(a)
}

/// An ONNX model built from `u` (see the module docs).
pub fn model(u: &mut Unstructured<'_>) -> Result<ModelProto> {
    let opset = if u.ratio(1u8, 32)? {
        small_int(u)?
    } else {
        u.int_in_range(6i64..=28)?
    };
    let mut g = GraphProto {
        name: Some("fuzz".into()),
        ..Default::default()
    };
    let mut names: Vec<String> = Vec::new();
    for i in 0..u.int_in_range(1usize..=2)? {
        let name = format!("x{i}");
        let rank = u.int_in_range(1usize..=5)?;
        let dims = (0..rank)
            .map(|a| input_dim(u, a))
            .collect::<Result<Vec<_>>>()?;
        let elem = if u.ratio(1u8, 16)? {
            *u.choose(ELEM_TYPES)?
        } else {
            DataType::Float
        };
        g.input.push(value_info(&name, elem, Some(dims)));
        names.push(name);
    }
    let mut counter = 0usize;
    for i in 0..u.int_in_range(0usize..=6)? {
        let name = format!("w{i}");
        g.initializer.push(tensor(u, &name)?);
        names.push(name);
    }
    let nodes = u.int_in_range(1usize..=8)?;
    for j in 0..nodes {
        let op = *u.choose(OPS)?;
        let mut node = NodeProto {
            op_type: Some(op.into()),
            name: Some(format!("n{j}")),
            ..Default::default()
        };
        if u.ratio(1u8, 40)? {
            node.domain = Some("com.example".into());
        }
        for _ in 0..u.int_in_range(0usize..=4)? {
            let input = match u.int_in_range(0u8..=15)? {
                0 => String::new(),
                1 => "missing".into(),
                // Mostly the latest values: a chain, with some branches.
                _ => {
                    let back = u.int_in_range(0usize..=names.len().saturating_sub(1))?;
                    names[names.len() - 1 - back.min(names.len() - 1)].clone()
                }
            };
            node.input.push(input);
        }
        for _ in 0..u.int_in_range(0usize..=3)? {
            node.attribute.push(attribute(u, &mut counter)?);
        }
        let outputs = if u.ratio(1u8, 8)? { 2 } else { 1 };
        for k in 0..outputs {
            let name = format!("v{j}_{k}");
            node.output.push(name.clone());
            names.push(name);
        }
        g.node.push(node);
    }
    for _ in 0..u.int_in_range(1usize..=2)? {
        let back = u.int_in_range(0usize..=2)?.min(names.len() - 1);
        let name = names[names.len() - 1 - back].clone();
        g.output.push(value_info(&name, DataType::Float, None));
    }
    Ok(ModelProto {
        ir_version: Some(u.int_in_range(3i64..=10)?),
        opset_import: vec![OperatorSetIdProto {
            domain: Some(String::new()),
            version: Some(opset),
        }],
        graph: Some(g),
        ..Default::default()
    })
}
