//! Conversions between IR types and ops and their [`schema`](super::schema) messages.
//!
//! The IR → proto direction is total and matches exhaustively on [`Op`] and [`DType`],
//! so adding an op to the IR fails to compile here until the artifact can store it. The
//! proto → IR direction is a checked decode: every enum value, dtype width, window
//! arity, dimension and value reference is validated and reported (as a message the
//! caller prefixes with the value it belongs to) instead of trusted. Semantic checks
//! (shapes fitting the op, scales being positive, ...) are left to `fqc_ir::verify`,
//! which the loader runs on the finished graph; what is checked here is exactly what
//! is needed to build IR values that cannot make later code panic (e.g. a 0-bit
//! integer type, whose range computation would overflow a shift).

use fqc_ir::{BinaryOp, DType, Dim, Op, Scale, TensorType, Value, Window, F32};

use super::schema::{
    op_proto::Kind, type_proto, AvgPoolAttrs, AxisAttr, BinaryAttrs, BinaryKind, ChannelScale,
    ClipAttrs, ConvAttrs, DTypeProto, ElemKind, FloatAttr, GemmAttrs, LrnAttrs, OpProto, PermAttrs,
    QGemmAttrs, QuantizeAttrs, RequantizeAttrs, ReshapeAttrs, TypeProto, Unit, WindowProto,
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

fn window_to_proto(w: &Window) -> WindowProto {
    WindowProto {
        kernel: w.kernel.to_vec(),
        strides: w.strides.to_vec(),
        pads: w.pads.to_vec(),
        dilations: w.dilations.to_vec(),
        ceil_mode: w.ceil_mode,
    }
}

fn window_from_proto(p: Option<&WindowProto>) -> Res<Window> {
    let p = p.ok_or("missing window")?;
    fn arr<const K: usize>(v: &[u64], what: &str) -> Res<[u64; K]> {
        v.try_into()
            .map_err(|_| format!("window {what} needs {K} entries, found {}", v.len()))
    }
    Ok(Window {
        kernel: arr(&p.kernel, "kernel")?,
        strides: arr(&p.strides, "strides")?,
        pads: arr(&p.pads, "pads")?,
        dilations: arr(&p.dilations, "dilations")?,
        ceil_mode: p.ceil_mode,
    })
}

fn conv_attrs(window: &Window, group: u64) -> ConvAttrs {
    ConvAttrs {
        window: Some(window_to_proto(window)),
        group,
    }
}

pub(crate) fn op_to_proto(op: &Op) -> OpProto {
    let kind = match op {
        Op::Conv { window, group } => Kind::Conv(conv_attrs(window, *group)),
        Op::BatchNorm { epsilon } => Kind::BatchNorm(FloatAttr {
            value: epsilon.get().to_bits(),
        }),
        Op::Relu => Kind::Relu(Unit {}),
        Op::Clip { min, max } => Kind::Clip(ClipAttrs {
            min: min.get().to_bits(),
            max: max.get().to_bits(),
        }),
        Op::Binary(b) => Kind::Binary(BinaryAttrs {
            kind: match b {
                BinaryOp::Add => BinaryKind::Add,
                BinaryOp::Sub => BinaryKind::Sub,
                BinaryOp::Mul => BinaryKind::Mul,
                BinaryOp::Div => BinaryKind::Div,
            } as i32,
        }),
        Op::Sum => Kind::Sum(Unit {}),
        Op::MaxPool { window } => Kind::MaxPool(window_to_proto(window)),
        Op::AveragePool {
            window,
            count_include_pad,
        } => Kind::AveragePool(AvgPoolAttrs {
            window: Some(window_to_proto(window)),
            count_include_pad: *count_include_pad,
        }),
        Op::GlobalAveragePool => Kind::GlobalAveragePool(Unit {}),
        Op::GlobalMaxPool => Kind::GlobalMaxPool(Unit {}),
        Op::Gemm {
            alpha,
            beta,
            trans_a,
            trans_b,
        } => Kind::Gemm(GemmAttrs {
            alpha: alpha.get().to_bits(),
            beta: beta.get().to_bits(),
            trans_a: *trans_a,
            trans_b: *trans_b,
        }),
        Op::MatMul => Kind::MatMul(Unit {}),
        Op::Flatten { axis } => Kind::Flatten(AxisAttr { axis: *axis }),
        Op::Reshape { shape } => Kind::Reshape(ReshapeAttrs {
            dims: dims_to_proto(shape),
        }),
        Op::Concat { axis } => Kind::Concat(AxisAttr { axis: *axis }),
        Op::Softmax { axis } => Kind::Softmax(AxisAttr { axis: *axis }),
        Op::Lrn {
            size,
            alpha,
            beta,
            bias,
        } => Kind::Lrn(LrnAttrs {
            size: *size,
            alpha: alpha.get().to_bits(),
            beta: beta.get().to_bits(),
            bias: bias.get().to_bits(),
        }),
        Op::Transpose { perm } => Kind::Transpose(PermAttrs { perm: perm.clone() }),
        Op::Quantize {
            dtype,
            scale,
            offset,
        } => Kind::Quantize(QuantizeAttrs {
            dtype: Some(dtype_to_proto(*dtype)),
            scale: scale.get().to_bits(),
            offset: offset.get().to_bits(),
        }),
        Op::Dequantize => Kind::Dequantize(Unit {}),
        Op::QConv { window, group } => Kind::QConv(conv_attrs(window, *group)),
        Op::QGemm { trans_b } => Kind::QGemm(QGemmAttrs { trans_b: *trans_b }),
        Op::Requantize { dtype, scale } => Kind::Requantize(RequantizeAttrs {
            dtype: Some(dtype_to_proto(*dtype)),
            scale: scale.get().to_bits(),
        }),
        Op::ScaledAdd => Kind::ScaledAdd(Unit {}),
        Op::SumPool { window } => Kind::SumPool(window_to_proto(window)),
        Op::GlobalSumPool => Kind::GlobalSumPool(Unit {}),
    };
    OpProto { kind: Some(kind) }
}

pub(crate) fn op_from_proto(p: Option<&OpProto>) -> Res<Op> {
    let kind = p.and_then(|p| p.kind.as_ref()).ok_or("missing op")?;
    Ok(match kind {
        Kind::Conv(a) => Op::Conv {
            window: window_from_proto(a.window.as_ref())?,
            group: a.group,
        },
        Kind::BatchNorm(a) => Op::BatchNorm {
            epsilon: F32(f32::from_bits(a.value)),
        },
        Kind::Relu(Unit {}) => Op::Relu,
        Kind::Clip(a) => Op::Clip {
            min: F32(f32::from_bits(a.min)),
            max: F32(f32::from_bits(a.max)),
        },
        Kind::Binary(a) => Op::Binary(
            match BinaryKind::try_from(a.kind)
                .map_err(|_| format!("unknown binary op kind {}", a.kind))?
            {
                BinaryKind::Unspecified => return Err("missing binary op kind".into()),
                BinaryKind::Add => BinaryOp::Add,
                BinaryKind::Sub => BinaryOp::Sub,
                BinaryKind::Mul => BinaryOp::Mul,
                BinaryKind::Div => BinaryOp::Div,
            },
        ),
        Kind::Sum(Unit {}) => Op::Sum,
        Kind::MaxPool(w) => Op::MaxPool {
            window: window_from_proto(Some(w))?,
        },
        Kind::AveragePool(a) => Op::AveragePool {
            window: window_from_proto(a.window.as_ref())?,
            count_include_pad: a.count_include_pad,
        },
        Kind::GlobalAveragePool(Unit {}) => Op::GlobalAveragePool,
        Kind::GlobalMaxPool(Unit {}) => Op::GlobalMaxPool,
        Kind::Gemm(a) => Op::Gemm {
            alpha: F32(f32::from_bits(a.alpha)),
            beta: F32(f32::from_bits(a.beta)),
            trans_a: a.trans_a,
            trans_b: a.trans_b,
        },
        Kind::MatMul(Unit {}) => Op::MatMul,
        Kind::Flatten(a) => Op::Flatten { axis: a.axis },
        Kind::Reshape(a) => Op::Reshape {
            shape: dims_from_proto(&a.dims)?,
        },
        Kind::Concat(a) => Op::Concat { axis: a.axis },
        Kind::Softmax(a) => Op::Softmax { axis: a.axis },
        Kind::Lrn(a) => Op::Lrn {
            size: a.size,
            alpha: F32(f32::from_bits(a.alpha)),
            beta: F32(f32::from_bits(a.beta)),
            bias: F32(f32::from_bits(a.bias)),
        },
        Kind::Transpose(a) => Op::Transpose {
            perm: a.perm.clone(),
        },
        Kind::Quantize(a) => Op::Quantize {
            dtype: dtype_from_proto(a.dtype.as_ref())?,
            scale: F32(f32::from_bits(a.scale)),
            offset: F32(f32::from_bits(a.offset)),
        },
        Kind::Dequantize(Unit {}) => Op::Dequantize,
        Kind::QConv(a) => Op::QConv {
            window: window_from_proto(a.window.as_ref())?,
            group: a.group,
        },
        Kind::QGemm(a) => Op::QGemm { trans_b: a.trans_b },
        Kind::Requantize(a) => Op::Requantize {
            dtype: dtype_from_proto(a.dtype.as_ref())?,
            scale: F32(f32::from_bits(a.scale)),
        },
        Kind::ScaledAdd(Unit {}) => Op::ScaledAdd,
        Kind::SumPool(w) => Op::SumPool {
            window: window_from_proto(Some(w))?,
        },
        Kind::GlobalSumPool(Unit {}) => Op::GlobalSumPool,
    })
}
