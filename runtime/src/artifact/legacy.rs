//! Decoding the ops of format versions 1 and 2, which stored each op as one message per
//! kind ([`OpProto`]); format 3 stores the op table's name and attributes instead
//! (`convert.rs`). Old artifacts keep loading: the op set of those versions is a subset
//! of today's, every kind maps to the same `Op` variant it was written from, and every
//! enum value, window arity and dimension is checked as in the current decoder.

use fqc_ir::{BinaryOp, Op, Window, F32};

use super::convert::{dims_from_proto, dims_to_proto, dtype_from_proto, dtype_to_proto};
use super::schema::{
    op_proto::Kind, AvgPoolAttrs, AxisAttr, BinaryAttrs, BinaryKind, ClipAttrs, ConvAttrs,
    FloatAttr, GemmAttrs, LrnAttrs, OpProto, PermAttrs, QGemmAttrs, QuantizeAttrs, RequantizeAttrs,
    ReshapeAttrs, Unit, WindowProto,
};

type Res<T> = Result<T, String>;

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

/// The op of a format-1/2 node.
pub fn op_from_proto(p: Option<&OpProto>) -> Res<Op> {
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

fn window_to_proto(w: &Window) -> WindowProto {
    WindowProto {
        kernel: w.kernel.to_vec(),
        strides: w.strides.to_vec(),
        pads: w.pads.to_vec(),
        dilations: w.dilations.to_vec(),
        ceil_mode: w.ceil_mode,
    }
}

fn conv_attrs(window: &Window, group: u64) -> ConvAttrs {
    ConvAttrs {
        window: Some(window_to_proto(window)),
        group,
    }
}

/// The op as fqc wrote it in formats 1 and 2 (None for ops those formats did not have).
/// Not used to save (every save writes format 3); kept so tests can write old-format
/// files and check they still load.
pub fn op_to_proto(op: &Op) -> Option<OpProto> {
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
                BinaryOp::Min | BinaryOp::Max | BinaryOp::Pow => return None,
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
        #[allow(unreachable_patterns)]
        _ => return None,
    };
    Some(OpProto { kind: Some(kind) })
}

/// The op of a format-3 node, decoded (a helper for tests that rewrite format-3 bodies
/// into older formats); panics on a missing or invalid op.
pub fn op_from_table_for_tests(p: Option<super::schema::TableOpProto>) -> Op {
    super::convert::op_from_table(p.as_ref()).expect("a valid format-3 op")
}
