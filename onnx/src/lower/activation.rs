//! Element-wise activations and the other element-wise ops of modern CNNs: HardSwish,
//! HardSigmoid, Sigmoid, Tanh, LeakyRelu, Elu, Selu, Softplus, Gelu, Erf, Mish, Swish,
//! Exp, Log, Neg, Abs, Sqrt, Reciprocal (one `unary` op each, ONNX's defaults filled in),
//! PRelu, variadic Min/Max (a chain of binary ops, left to right), and Pow.
//!
//! Each maps onto an op whose f32 semantics (`fqc_ir::UnaryOp::apply`) follow the ONNX
//! definition, so the float graph computes what ONNX Runtime computes up to f32 rounding
//! (checked by ONNX's own node tests and the model zoo).

use fqc_ir::{BinaryOp, Op, UnaryOp, F32};

use super::{Cx, LResult, Val};

/// ONNX's Selu defaults (the exact f32 values of the spec's constants).
const SELU_ALPHA: f32 = 1.673_263_2;
const SELU_GAMMA: f32 = 1.050_701;

/// One of the element-wise functions of [`UnaryOp`].
pub(crate) fn unary(cx: &mut Cx) -> LResult<()> {
    let x = cx.f32_tensor(0)?;
    let f = |v: f32| F32(v);
    let op = match cx.op_type() {
        "HardSwish" => UnaryOp::HardSwish,
        "HardSigmoid" => UnaryOp::HardSigmoid {
            alpha: f(cx.attrs.float("alpha", 0.2)?),
            beta: f(cx.attrs.float("beta", 0.5)?),
        },
        "Sigmoid" => UnaryOp::Sigmoid,
        "Tanh" => UnaryOp::Tanh,
        "LeakyRelu" => UnaryOp::LeakyRelu {
            alpha: f(cx.attrs.float("alpha", 0.01)?),
        },
        "Elu" => UnaryOp::Elu {
            alpha: f(cx.attrs.float("alpha", 1.0)?),
        },
        "Selu" => UnaryOp::Selu {
            alpha: f(cx.attrs.float("alpha", SELU_ALPHA)?),
            gamma: f(cx.attrs.float("gamma", SELU_GAMMA)?),
        },
        "Softplus" => UnaryOp::Softplus,
        "Gelu" => match cx.attrs.string("approximate")?.as_deref() {
            None | Some("none") => UnaryOp::Gelu { tanh: false },
            Some("tanh") => UnaryOp::Gelu { tanh: true },
            Some(a) => return Err(format!("approximate=`{a}` is not supported")),
        },
        "Erf" => UnaryOp::Erf,
        "Mish" => UnaryOp::Mish,
        "Swish" => UnaryOp::Swish {
            alpha: f(cx.attrs.float("alpha", 1.0)?),
        },
        "Exp" => UnaryOp::Exp,
        "Log" => UnaryOp::Log,
        "Neg" => UnaryOp::Neg,
        "Abs" => UnaryOp::Abs,
        "Sqrt" => UnaryOp::Sqrt,
        "Reciprocal" => UnaryOp::Reciprocal,
        other => return Err(format!("internal error: `{other}` is not a unary op")),
    };
    // Opset-6 forms carry an ignored `consumed_inputs` attribute.
    cx.attrs.ignore("consumed_inputs");
    cx.emit_out(Op::Unary(op), vec![x])
}

/// `PRelu`: the slope broadcasts to the input (PyTorch exports `[C, 1, 1]`).
pub(crate) fn prelu(cx: &mut Cx) -> LResult<()> {
    let x = cx.f32_tensor(0)?;
    let mut slope = cx.f32_tensor(1)?;
    cx.attrs.ignore("consumed_inputs");
    // Before opset 7 a 1-D slope of the channel count means per-channel.
    let (xs, ss) = (cx.ty(x).shape.clone(), cx.ty(slope).shape.clone());
    if cx.opset() < 7 && ss.rank() == 1 && xs.rank() > 2 && ss.0[0] == xs.0[1] {
        let mut d = ss.0.clone();
        d.extend(std::iter::repeat_n(fqc_ir::Dim::Fixed(1), xs.rank() - 2));
        slope = cx.reshape(slope, d, "slope")?;
    }
    cx.emit_out(Op::PRelu, vec![x, slope])
}

/// Variadic `Min` / `Max` (left to right) and `Pow`.
pub(crate) fn min_max_pow(cx: &mut Cx) -> LResult<()> {
    let op = match cx.op_type() {
        "Min" => BinaryOp::Min,
        "Max" => BinaryOp::Max,
        _ => BinaryOp::Pow,
    };
    cx.attrs.ignore("consumed_inputs");
    let n = cx.num_inputs();
    if op == BinaryOp::Pow && n != 2 {
        return Err(format!("Pow takes 2 inputs, got {n}"));
    }
    let mut acc = cx.f32_tensor(0)?;
    if n == 1 {
        cx.set_out(0, Val::Ir(acc));
        return Ok(());
    }
    for i in 1..n {
        let b = cx.f32_tensor(i)?;
        let suffix = if i + 1 == n {
            String::new()
        } else {
            format!("{}{i}", op.name())
        };
        acc = cx.emit(Op::Binary(op), vec![acc, b], &suffix)?;
    }
    cx.set_out(0, Val::Ir(acc));
    Ok(())
}
