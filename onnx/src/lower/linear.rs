//! Gemm and MatMul, and PyTorch's linear layer pattern.
//!
//! PyTorch exports `nn.Linear` on 2-D input as `MatMul(x[M,K], Wᵀ[K,N]) → Add(·, b[N])`.
//! When W and b are constants and the Add is the MatMul's only user, the pair becomes one
//! `Gemm{trans_b: true}` with W stored as `[N,K]` (PyTorch's own layout) and `C = b`,
//! which is the form later passes (quantization, integerization) expect for a dense layer.

use fqc_ir::{Op, Tensor, TensorData, TensorType, F32};

use super::{Cx, LResult, Val};

/// `Gemm` (opset < 7 `broadcast` accepted; C optional from opset 11).
pub(crate) fn gemm(cx: &mut Cx) -> LResult<()> {
    let a = cx.f32_tensor(0)?;
    let b = cx.f32_tensor(1)?;
    let c = match cx.input_name(2) {
        Some(_) => Some(cx.f32_tensor(2)?),
        None => None,
    };
    cx.attrs.ignore("broadcast");
    let op = Op::Gemm {
        alpha: F32(cx.attrs.float("alpha", 1.0)?),
        beta: F32(cx.attrs.float("beta", 1.0)?),
        trans_a: cx.attrs.int("transA", 0)? != 0,
        trans_b: cx.attrs.int("transB", 0)? != 0,
    };
    let mut inputs = vec![a, b];
    inputs.extend(c);
    cx.emit_out(op, inputs)
}

/// `MatMul`, fused with a following bias `Add` into a Gemm when possible.
pub(crate) fn matmul(cx: &mut Cx) -> LResult<()> {
    let a = cx.f32_tensor(0)?;
    let b = cx.f32_tensor(1)?;
    if try_linear(cx, a, b)? {
        return Ok(());
    }
    cx.emit_out(Op::MatMul, vec![a, b])
}

/// The MatMul + Add → Gemm rewrite; returns false when the pattern does not apply.
fn try_linear(cx: &mut Cx, x: fqc_ir::Value, w: fqc_ir::Value) -> LResult<bool> {
    let Some(out) = cx.out_name(0) else {
        return Ok(false);
    };
    if cx.imp.uses.get(&out).copied() != Some(1)
        || cx.ty(x).shape.rank() != 2
        || cx.imp.g.is_const(x)
    {
        return Ok(false);
    }
    let Some(wt) = cx.imp.g.const_tensor(w) else {
        return Ok(false);
    };
    let (k, n) = match wt.shape[..] {
        [k, n] => (k, n),
        _ => return Ok(false),
    };
    let Some(wdata) = wt.as_f32() else {
        return Ok(false);
    };
    // The single user must be a plain default-domain Add of a constant [N] bias.
    let Some(j) = cx.imp.user.get(&out).copied().filter(|&j| j > cx.index) else {
        return Ok(false);
    };
    let add = &cx.nodes[j];
    if add.op_type() != "Add"
        || !matches!(add.domain(), "" | "ai.onnx")
        || add.input.len() != 2
        || add.output.len() != 1
        || add.output[0].is_empty()
        || cx.imp.absorbed.contains(&j)
        || add
            .attribute
            .iter()
            .any(|a| a.name() != "broadcast" || a.i() != 1)
    {
        return Ok(false);
    }
    let other = if add.input[0] == out {
        &add.input[1]
    } else {
        &add.input[0]
    };
    if *other == out {
        return Ok(false);
    }
    let Some(Val::Ir(bv)) = cx.imp.vals.get(other).cloned() else {
        return Ok(false);
    };
    match cx.imp.g.const_tensor(bv) {
        Some(t) if t.shape == [n] && t.as_f32().is_some() => {}
        _ => return Ok(false),
    }
    // W[K,N] → Wᵀ[N,K].
    let mut tdata = vec![0f32; k * n];
    for (r, row) in wdata.chunks_exact(n.max(1)).enumerate() {
        for (c, &v) in row.iter().enumerate() {
            tdata[c * k + r] = v;
        }
    }
    let wname = cx.input_name(1).unwrap_or_default().to_string();
    let tname = if cx.imp.uses.get(&wname).copied() == Some(1) {
        wname
    } else {
        format!("{wname}/T")
    };
    let wt_v = cx.add_const(
        Some(tname),
        Tensor {
            shape: vec![n, k],
            data: TensorData::F32(tdata),
        },
    )?;
    let op = Op::Gemm {
        alpha: F32(1.0),
        beta: F32(1.0),
        trans_a: false,
        trans_b: true,
    };
    let tys: Vec<&TensorType> = [x, wt_v, bv].iter().map(|&v| cx.imp.g.ty(v)).collect();
    let ty = fqc_ir::infer::infer(&op, &tys)?;
    let add_out = add.output[0].clone();
    if cx.imp.vals.contains_key(&add_out) {
        return Err(format!("value `{add_out}` is defined more than once"));
    }
    let v = cx.imp.g.add_node(
        op,
        vec![x, wt_v, bv],
        ty,
        cx.name.clone(),
        Some(add_out.clone()),
    );
    cx.imp.vals.insert(add_out, Val::Ir(v));
    cx.imp.absorbed.insert(j);
    Ok(true)
}
