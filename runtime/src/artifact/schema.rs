//! The protobuf schema of a `.fqc` body, written by hand with `prost` derives (no
//! `protoc`, no build script).
//!
//! The body is one [`GraphProto`]: the graph's name, its values in id order (each with
//! its type, optional name and definition: graph input, constant with packed payload,
//! or node with op, operands and node name) and its output ids. Because the values are
//! stored in id order and a value's id is its position, every reference (operands,
//! outputs, per-channel scale constants) is a plain `uint32` index that the loader
//! bounds-checks. Nodes appear in schedule order (the saver writes the compacted graph,
//! whose node order is its schedule).
//!
//! Why this is a sound wire format: every IR field has exactly one field here (an op's
//! attributes are the op table's list, which decodes back to the same op: see
//! `fqc_ir::op::attr`), tags are never reused, and absent-vs-default is
//! explicit where it matters (`optional` names, `optional bytes` payloads, oneofs for
//! definitions, ops and scales). Float attributes are stored as their bit patterns in
//! `fixed32` fields (not `float`: proto3 omits a float equal to the default `0.0`, which
//! would turn `-0.0` into `+0.0`), so they round-trip bit for bit (incl. `-0.0`,
//! infinities and NaN payloads); `oneof` attribute values are written even when zero.
//! The schema is format version 3: version 1 lacked
//! [`ConstProto::encoding`] (every payload was `Plain`), and versions 1 and 2 stored
//! each op as one message per kind ([`OpProto`]), where version 3 stores it as its name
//! and attribute list ([`TableOpProto`], from the IR's op table); a change that older
//! readers would misread must bump [`FORMAT_VERSION`](super::FORMAT_VERSION).

/// A whole graph.
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct GraphProto {
    #[prost(string, tag = "1")]
    pub name: String,
    /// Every value, in id order: value `%k` is `values[k]`.
    #[prost(message, repeated, tag = "2")]
    pub values: Vec<ValueProto>,
    /// Graph outputs, as value ids.
    #[prost(uint32, repeated, tag = "3")]
    pub outputs: Vec<u32>,
    /// Always [`END_MARKER`]. Fields are encoded in tag order, so this one comes last:
    /// a body cut short anywhere (even between fields, where protobuf alone cannot
    /// tell) lacks it and is rejected.
    #[prost(fixed32, tag = "15")]
    pub end: u32,
}

/// The value of [`GraphProto::end`]: "FQC." in little-endian bytes.
pub const END_MARKER: u32 = u32::from_le_bytes(*b"FQC.");

/// One value: its type, optional name and what defines it.
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct ValueProto {
    #[prost(message, optional, tag = "1")]
    pub ty: Option<TypeProto>,
    #[prost(string, optional, tag = "2")]
    pub name: Option<String>,
    #[prost(oneof = "value_proto::Def", tags = "3, 4, 5")]
    pub def: Option<value_proto::Def>,
}

/// Nested types of [`ValueProto`].
pub mod value_proto {
    /// What defines a value.
    #[derive(Clone, PartialEq, ::prost::Oneof)]
    pub enum Def {
        /// The next graph input (inputs are numbered in the order they appear).
        #[prost(message, tag = "3")]
        Input(super::Unit),
        #[prost(message, tag = "4")]
        Const(super::ConstProto),
        #[prost(message, tag = "5")]
        Node(super::NodeProto),
    }
}

/// A message without fields: marks a oneof variant that carries no data.
#[derive(Clone, Copy, PartialEq, Eq, ::prost::Message)]
pub struct Unit {}

/// A constant: its digest and, unless the graph had the payload elided, its encoded
/// elements (see `encoding.rs`; the element type and count come from the value's type).
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct ConstProto {
    #[prost(fixed64, tag = "1")]
    pub digest: u64,
    #[prost(bytes = "vec", optional, tag = "2")]
    pub payload: Option<Vec<u8>>,
    /// How `payload` is encoded (format 2; absent, i.e. `Plain`, in format 1).
    #[prost(enumeration = "PayloadEncoding", tag = "3")]
    pub encoding: i32,
}

/// How a constant's payload is encoded (see `encoding.rs`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, ::prost::Enumeration)]
#[repr(i32)]
pub enum PayloadEncoding {
    /// `pack.rs`'s layout: ternary at 2 bits, `uB`/`iB` at B bits, wide types
    /// little-endian. The only encoding of format 1.
    Plain = 0,
    /// Ternary, base 3: five elements per byte.
    Trits = 1,
    /// `i32` rows along the last axis: first value, first difference, bit-packed second
    /// differences.
    Delta2 = 2,
    /// Integers as their minimum and bit-packed offsets from it.
    Narrow = 3,
}

impl PayloadEncoding {
    /// The encoding's name, for messages.
    pub fn name(self) -> &'static str {
        match self {
            Self::Plain => "plain",
            Self::Trits => "trits",
            Self::Delta2 => "delta2",
            Self::Narrow => "narrow",
        }
    }
}

/// An operation node; its result is the value this node defines.
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct NodeProto {
    /// The op in formats 1 and 2 (one message per op kind; read, no longer written).
    #[prost(message, optional, tag = "1")]
    pub op: Option<OpProto>,
    /// Operand value ids.
    #[prost(uint32, repeated, tag = "2")]
    pub inputs: Vec<u32>,
    #[prost(string, tag = "3")]
    pub name: String,
    /// The op from format 3 on: its name and attributes as the IR's op table describes
    /// them (`fqc_ir::Op::attrs`), so a new op needs no change here.
    #[prost(message, optional, tag = "4")]
    pub table_op: Option<TableOpProto>,
}

/// An op by name with its attributes in the op table's order (format 3).
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct TableOpProto {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(message, repeated, tag = "2")]
    pub attrs: Vec<AttrProto>,
}

/// One attribute (`fqc_ir::op::Attr`): floats as bit patterns, dims with `-1` for the
/// batch.
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct AttrProto {
    #[prost(string, tag = "1")]
    pub key: String,
    #[prost(oneof = "attr_proto::Value", tags = "2, 3, 4, 5, 6, 7, 8, 9")]
    pub value: Option<attr_proto::Value>,
}

pub mod attr_proto {
    /// The attribute's value.
    #[derive(Clone, PartialEq, ::prost::Oneof)]
    pub enum Value {
        #[prost(uint64, tag = "2")]
        Int(u64),
        #[prost(fixed32, tag = "3")]
        Float(u32),
        #[prost(bool, tag = "4")]
        Bool(bool),
        #[prost(message, tag = "5")]
        Dtype(super::DTypeProto),
        #[prost(message, tag = "6")]
        Ints(super::UintList),
        #[prost(message, tag = "7")]
        Sints(super::IntList),
        #[prost(message, tag = "8")]
        Dims(super::IntList),
        #[prost(string, tag = "9")]
        Word(String),
    }
}

/// A list of unsigned integers.
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct UintList {
    #[prost(uint64, repeated, tag = "1")]
    pub values: Vec<u64>,
}

/// A list of signed integers.
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct IntList {
    #[prost(int64, repeated, tag = "1")]
    pub values: Vec<i64>,
}

/// Element kind of a [`DTypeProto`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, ::prost::Enumeration)]
#[repr(i32)]
pub enum ElemKind {
    /// Never written: a missing or unknown kind is a decode error.
    Unspecified = 0,
    F32 = 1,
    I32 = 2,
    I64 = 3,
    /// `u2..u8`, width in `bits`.
    UInt = 4,
    /// `i2..i8`, width in `bits`.
    SInt = 5,
    Ternary = 6,
}

/// An element type.
#[derive(Clone, Copy, PartialEq, Eq, ::prost::Message)]
pub struct DTypeProto {
    #[prost(enumeration = "ElemKind", tag = "1")]
    pub kind: i32,
    /// Width of `UInt` / `SInt` (2..=8); 0 otherwise.
    #[prost(uint32, tag = "2")]
    pub bits: u32,
}

/// A static type.
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct TypeProto {
    #[prost(message, optional, tag = "1")]
    pub dtype: Option<DTypeProto>,
    /// Extents; `-1` is the symbolic batch `N`.
    #[prost(int64, repeated, tag = "2")]
    pub dims: Vec<i64>,
    #[prost(oneof = "type_proto::Scale", tags = "3, 4")]
    pub scale: Option<type_proto::Scale>,
}

/// Nested types of [`TypeProto`].
pub mod type_proto {
    /// A quantization scale; absent for unscaled types.
    #[derive(Clone, Copy, PartialEq, ::prost::Oneof)]
    pub enum Scale {
        /// The scale's `f32` bit pattern.
        #[prost(fixed32, tag = "3")]
        Tensor(u32),
        #[prost(message, tag = "4")]
        Channel(super::ChannelScale),
    }
}

/// Per-channel scales along `axis`, held in the `f32` constant value `scales`.
#[derive(Clone, Copy, PartialEq, Eq, ::prost::Message)]
pub struct ChannelScale {
    #[prost(uint32, tag = "1")]
    pub axis: u32,
    #[prost(uint32, tag = "2")]
    pub scales: u32,
}

/// 2-D window geometry.
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct WindowProto {
    /// Exactly 2 entries.
    #[prost(uint64, repeated, tag = "1")]
    pub kernel: Vec<u64>,
    /// Exactly 2 entries.
    #[prost(uint64, repeated, tag = "2")]
    pub strides: Vec<u64>,
    /// Exactly 4 entries: top, left, bottom, right.
    #[prost(uint64, repeated, tag = "3")]
    pub pads: Vec<u64>,
    /// Exactly 2 entries.
    #[prost(uint64, repeated, tag = "4")]
    pub dilations: Vec<u64>,
    #[prost(bool, tag = "5")]
    pub ceil_mode: bool,
}

/// Attributes of `conv` and `qconv`.
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct ConvAttrs {
    #[prost(message, optional, tag = "1")]
    pub window: Option<WindowProto>,
    #[prost(uint64, tag = "2")]
    pub group: u64,
}

/// Attributes of `avgpool`.
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct AvgPoolAttrs {
    #[prost(message, optional, tag = "1")]
    pub window: Option<WindowProto>,
    #[prost(bool, tag = "2")]
    pub count_include_pad: bool,
}

/// Attributes of `clip`.
#[derive(Clone, Copy, PartialEq, ::prost::Message)]
pub struct ClipAttrs {
    #[prost(fixed32, tag = "1")]
    pub min: u32,
    #[prost(fixed32, tag = "2")]
    pub max: u32,
}

/// A single float attribute (`batchnorm`'s epsilon).
#[derive(Clone, Copy, PartialEq, ::prost::Message)]
pub struct FloatAttr {
    #[prost(fixed32, tag = "1")]
    pub value: u32,
}

/// A single axis attribute (`flatten`, `concat`, `softmax`).
#[derive(Clone, Copy, PartialEq, Eq, ::prost::Message)]
pub struct AxisAttr {
    #[prost(uint64, tag = "1")]
    pub axis: u64,
}

/// Attributes of `gemm`.
#[derive(Clone, Copy, PartialEq, ::prost::Message)]
pub struct GemmAttrs {
    #[prost(fixed32, tag = "1")]
    pub alpha: u32,
    #[prost(fixed32, tag = "2")]
    pub beta: u32,
    #[prost(bool, tag = "3")]
    pub trans_a: bool,
    #[prost(bool, tag = "4")]
    pub trans_b: bool,
}

/// `reshape`'s resolved target; `-1` is the batch `N`.
#[derive(Clone, PartialEq, Eq, ::prost::Message)]
pub struct ReshapeAttrs {
    #[prost(int64, repeated, tag = "1")]
    pub dims: Vec<i64>,
}

/// Attributes of `lrn`.
#[derive(Clone, Copy, PartialEq, ::prost::Message)]
pub struct LrnAttrs {
    #[prost(uint64, tag = "1")]
    pub size: u64,
    #[prost(fixed32, tag = "2")]
    pub alpha: u32,
    #[prost(fixed32, tag = "3")]
    pub beta: u32,
    #[prost(fixed32, tag = "4")]
    pub bias: u32,
}

/// `transpose`'s permutation.
#[derive(Clone, PartialEq, Eq, ::prost::Message)]
pub struct PermAttrs {
    #[prost(uint64, repeated, tag = "1")]
    pub perm: Vec<u64>,
}

/// Attributes of `quantize`.
#[derive(Clone, Copy, PartialEq, ::prost::Message)]
pub struct QuantizeAttrs {
    #[prost(message, optional, tag = "1")]
    pub dtype: Option<DTypeProto>,
    #[prost(fixed32, tag = "2")]
    pub scale: u32,
    #[prost(fixed32, tag = "3")]
    pub offset: u32,
}

/// Attributes of `qgemm`.
#[derive(Clone, Copy, PartialEq, Eq, ::prost::Message)]
pub struct QGemmAttrs {
    #[prost(bool, tag = "1")]
    pub trans_b: bool,
}

/// Attributes of `requantize`.
#[derive(Clone, Copy, PartialEq, ::prost::Message)]
pub struct RequantizeAttrs {
    #[prost(message, optional, tag = "1")]
    pub dtype: Option<DTypeProto>,
    #[prost(fixed32, tag = "2")]
    pub scale: u32,
}

/// `add` / `sub` / `mul` / `div`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, ::prost::Enumeration)]
#[repr(i32)]
pub enum BinaryKind {
    /// Never written: a missing or unknown kind is a decode error.
    Unspecified = 0,
    Add = 1,
    Sub = 2,
    Mul = 3,
    Div = 4,
}

/// Attribute of the element-wise binary ops.
#[derive(Clone, Copy, PartialEq, Eq, ::prost::Message)]
pub struct BinaryAttrs {
    #[prost(enumeration = "BinaryKind", tag = "1")]
    pub kind: i32,
}

/// An operation: exactly one variant per [`fqc_ir::Op`] variant.
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct OpProto {
    #[prost(
        oneof = "op_proto::Kind",
        tags = "1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26"
    )]
    pub kind: Option<op_proto::Kind>,
}

/// Nested types of [`OpProto`].
pub mod op_proto {
    use super::*;

    /// The op and its attributes.
    #[derive(Clone, PartialEq, ::prost::Oneof)]
    pub enum Kind {
        #[prost(message, tag = "1")]
        Conv(ConvAttrs),
        #[prost(message, tag = "2")]
        BatchNorm(FloatAttr),
        #[prost(message, tag = "3")]
        Relu(Unit),
        #[prost(message, tag = "4")]
        Clip(ClipAttrs),
        #[prost(message, tag = "5")]
        Binary(BinaryAttrs),
        #[prost(message, tag = "6")]
        Sum(Unit),
        #[prost(message, tag = "7")]
        MaxPool(WindowProto),
        #[prost(message, tag = "8")]
        AveragePool(AvgPoolAttrs),
        #[prost(message, tag = "9")]
        GlobalAveragePool(Unit),
        #[prost(message, tag = "10")]
        GlobalMaxPool(Unit),
        #[prost(message, tag = "11")]
        Gemm(GemmAttrs),
        #[prost(message, tag = "12")]
        MatMul(Unit),
        #[prost(message, tag = "13")]
        Flatten(AxisAttr),
        #[prost(message, tag = "14")]
        Reshape(ReshapeAttrs),
        #[prost(message, tag = "15")]
        Concat(AxisAttr),
        #[prost(message, tag = "16")]
        Softmax(AxisAttr),
        #[prost(message, tag = "17")]
        Lrn(LrnAttrs),
        #[prost(message, tag = "18")]
        Transpose(PermAttrs),
        #[prost(message, tag = "19")]
        Quantize(QuantizeAttrs),
        #[prost(message, tag = "20")]
        Dequantize(Unit),
        #[prost(message, tag = "21")]
        QConv(ConvAttrs),
        #[prost(message, tag = "22")]
        QGemm(QGemmAttrs),
        #[prost(message, tag = "23")]
        Requantize(RequantizeAttrs),
        #[prost(message, tag = "24")]
        ScaledAdd(Unit),
        #[prost(message, tag = "25")]
        SumPool(WindowProto),
        #[prost(message, tag = "26")]
        GlobalSumPool(Unit),
    }
}
