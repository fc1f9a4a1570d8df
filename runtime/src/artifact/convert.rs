//! Conversions between IR types and ops and their [`schema`](super::schema) messages.
//!
//! Ops are written as the IR's op table describes them (`Op::name`, `Op::attrs`) and
//! read back through it (`Op::from_attrs`), so a new op needs nothing here. The
//! IR → proto direction is total; the proto → IR direction is a checked decode: every enum value, dtype width, window
//! arity, dimension and value reference is validated and reported (as a message the
//! caller prefixes with the value it belongs to) instead of trusted. Semantic checks
//! (shapes fitting the op, scales being positive, ...) are left to `fqc_ir::verify`,
//! which the loader runs on the finished graph; what is checked here is exactly what
//! is needed to build IR values that cannot make later code panic (e.g. a 0-bit
//! integer type, whose range computation would overflow a shift).

use fqc_ir::op::{Attr, AttrSource};
use fqc_ir::{DType, Dim, Op, Scale, TensorType, Value, F32};

use super::schema::attr_proto::Value as AttrValue;
use super::schema::{
    type_proto, AttrProto, ChannelScale, DTypeProto, ElemKind, IntList, TableOpProto, TypeProto,
    UintList,
};

type Res<T> = Result<T, String>;

pub(crate) fn dtype_to_proto(d: DType) -> DTypeProto {
    let (kind, bits) = match d {
        DType::F32 => (ElemKind::F32, 0),
        DType::I32 => (ElemKind::I32, 0),
        DType::I64 => (ElemKind::I64, 0),
        DType::Int {
            signed: false,
            bits,
        } => (ElemKind::UInt, bits),
        DType::Int { signed: true, bits } => (ElemKind::SInt, bits),
        DType::Ternary => (ElemKind::Ternary, 0),
    };
    DTypeProto {
        kind: kind as i32,
        bits: u32::from(bits),
    }
}

pub(crate) fn dtype_from_proto(p: Option<&DTypeProto>) -> Res<DType> {
    let p = p.ok_or("missing element type")?;
    let kind =
        ElemKind::try_from(p.kind).map_err(|_| format!("unknown element kind {}", p.kind))?;
    let int = |signed: bool| {
        u8::try_from(p.bits)
            .ok()
            .and_then(|b| DType::int(signed, b))
            .ok_or_else(|| format!("integer width {} is not in 2..=8", p.bits))
    };
    let plain = |d: DType| {
        if p.bits == 0 {
            Ok(d)
        } else {
            Err(format!("{d} carries a width ({})", p.bits))
        }
    };
    match kind {
        ElemKind::Unspecified => Err("missing element kind".into()),
        ElemKind::F32 => plain(DType::F32),
        ElemKind::I32 => plain(DType::I32),
        ElemKind::I64 => plain(DType::I64),
        ElemKind::Ternary => plain(DType::Ternary),
        ElemKind::UInt => int(false),
        ElemKind::SInt => int(true),
    }
}

/// `-1` for the batch; a fixed extent beyond `i64::MAX` (which no loadable shape can
/// have) is written as `i64::MIN` and rejected on load.
pub(crate) fn dims_to_proto(dims: &[Dim]) -> Vec<i64> {
    dims.iter()
        .map(|d| match d {
            Dim::Batch => -1,
            Dim::Fixed(n) => i64::try_from(*n).unwrap_or(i64::MIN),
        })
        .collect()
}

pub(crate) fn dims_from_proto(dims: &[i64]) -> Res<Vec<Dim>> {
    dims.iter()
        .map(|&d| match d {
            -1 => Ok(Dim::Batch),
            d if d >= 0 => Ok(Dim::Fixed(d as u64)),
            d => Err(format!("invalid dimension {d}")),
        })
        .collect()
}

pub(crate) fn type_to_proto(ty: &TensorType) -> TypeProto {
    TypeProto {
        dtype: Some(dtype_to_proto(ty.dtype)),
        dims: dims_to_proto(&ty.shape.0),
        scale: ty.scale.as_ref().map(|s| match s {
            Scale::Tensor(s) => type_proto::Scale::Tensor(s.get().to_bits()),
            Scale::Channel { axis, scales } => type_proto::Scale::Channel(ChannelScale {
                axis: u32::try_from(*axis).unwrap_or(u32::MAX),
                scales: scales.0,
            }),
        }),
    }
}

/// Decodes a type; a per-channel scale must reference one of the `num_values` values.
pub(crate) fn type_from_proto(p: Option<&TypeProto>, num_values: usize) -> Res<TensorType> {
    let p = p.ok_or("missing type")?;
    let scale = match p.scale {
        None => None,
        Some(type_proto::Scale::Tensor(s)) => Some(Scale::Tensor(F32(f32::from_bits(s)))),
        Some(type_proto::Scale::Channel(c)) => {
            if c.scales as usize >= num_values {
                return Err(format!(
                    "per-channel scales %{} do not exist ({num_values} values)",
                    c.scales
                ));
            }
            Some(Scale::Channel {
                axis: c.axis as usize,
                scales: Value(c.scales),
            })
        }
    };
    Ok(TensorType {
        dtype: dtype_from_proto(p.dtype.as_ref())?,
        shape: fqc_ir::Shape(dims_from_proto(&p.dims)?),
        scale,
    })
}

/// An op as its name and attribute list (format 3).
pub(crate) fn op_to_table(op: &Op) -> TableOpProto {
    TableOpProto {
        name: op.name().to_string(),
        attrs: op
            .attrs()
            .into_iter()
            .map(|(key, a)| AttrProto {
                key: key.to_string(),
                value: Some(match a {
                    Attr::Int(v) => AttrValue::Int(v),
                    Attr::Float(v) => AttrValue::Float(v.get().to_bits()),
                    Attr::Bool(v) => AttrValue::Bool(v),
                    Attr::DType(d) => AttrValue::Dtype(dtype_to_proto(d)),
                    Attr::Ints(v) => AttrValue::Ints(UintList { values: v }),
                    Attr::SInts(v) => AttrValue::Sints(IntList { values: v }),
                    Attr::Dims(d) => AttrValue::Dims(IntList {
                        values: dims_to_proto(&d),
                    }),
                    Attr::Word(w) => AttrValue::Word(w.to_string()),
                }),
            })
            .collect(),
    }
}

/// The op of a format-3 node: its attributes read back in the op table's order.
pub(crate) fn op_from_table(p: Option<&TableOpProto>) -> Res<Op> {
    let p = p.ok_or("missing op")?;
    let mut src = ProtoAttrs {
        op: &p.name,
        items: p.attrs.iter(),
    };
    let op = Op::from_attrs(&p.name, &mut src)?;
    match src.items.next() {
        Some(a) => Err(format!("{}: unexpected attribute `{}`", p.name, a.key)),
        None => Ok(op),
    }
}

/// A node's attribute list as the op table's [`AttrSource`].
struct ProtoAttrs<'a> {
    op: &'a str,
    items: std::slice::Iter<'a, AttrProto>,
}

impl<'a> ProtoAttrs<'a> {
    fn next(&mut self, key: &str) -> Res<&'a AttrValue> {
        match self.items.next() {
            Some(a) if a.key == key => a
                .value
                .as_ref()
                .ok_or_else(|| format!("{}: attribute `{key}` has no value", self.op)),
            Some(a) => Err(format!(
                "{}: expected attribute `{key}`, found `{}`",
                self.op, a.key
            )),
            None => Err(format!("{}: missing attribute `{key}`", self.op)),
        }
    }

    fn wrong(&self, key: &str, want: &str) -> String {
        format!("{}: attribute `{key}` is not {want}", self.op)
    }
}

impl AttrSource for ProtoAttrs<'_> {
    fn int(&mut self, key: &str) -> Res<u64> {
        match self.next(key)? {
            AttrValue::Int(v) => Ok(*v),
            _ => Err(self.wrong(key, "an integer")),
        }
    }

    fn float(&mut self, key: &str) -> Res<F32> {
        match self.next(key)? {
            AttrValue::Float(v) => Ok(F32(f32::from_bits(*v))),
            _ => Err(self.wrong(key, "a float")),
        }
    }

    fn bool(&mut self, key: &str) -> Res<bool> {
        match self.next(key)? {
            AttrValue::Bool(v) => Ok(*v),
            _ => Err(self.wrong(key, "a flag")),
        }
    }

    fn dtype(&mut self, key: &str) -> Res<DType> {
        match self.next(key)? {
            AttrValue::Dtype(d) => dtype_from_proto(Some(d)),
            _ => Err(self.wrong(key, "an element type")),
        }
    }

    fn ints(&mut self, key: &str) -> Res<Vec<u64>> {
        match self.next(key)? {
            AttrValue::Ints(l) => Ok(l.values.clone()),
            _ => Err(self.wrong(key, "a list of unsigned integers")),
        }
    }

    fn sints(&mut self, key: &str) -> Res<Vec<i64>> {
        match self.next(key)? {
            AttrValue::Sints(l) => Ok(l.values.clone()),
            _ => Err(self.wrong(key, "a list of integers")),
        }
    }

    fn dims(&mut self, key: &str) -> Res<Vec<Dim>> {
        match self.next(key)? {
            AttrValue::Dims(l) => dims_from_proto(&l.values),
            _ => Err(self.wrong(key, "a list of dimensions")),
        }
    }

    fn word(&mut self, key: &str, choices: &[&'static str]) -> Res<&'static str> {
        match self.next(key)? {
            AttrValue::Word(w) => choices
                .iter()
                .copied()
                .find(|c| c == w)
                .ok_or_else(|| format!("{}: `{key}` has an unknown value `{w}`", self.op)),
            _ => Err(self.wrong(key, "a word")),
        }
    }
}
