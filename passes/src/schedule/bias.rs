//! Layer biases of the float master, as a hook reads and sets them: the per-output-channel
//! value added after the Conv/Gemm product (`bias[M]` of a Conv; `beta·C` of a Gemm whose
//! `C` is per output column, `[N]` or `[1, N]`). A layer without a bias has zeros; setting
//! one gives it a bias operand. A Gemm whose `C` is a full matrix has no per-channel bias.
//!
//! The driver applies biases a hook set to its float master (a new constant the layer
//! reads; values are only appended, never renumbered, so activation points and ranges
//! keyed by value stay valid), so every later stage and the integer graph use them.

use fqc_ir::{Graph, Node, Op, Tensor, TensorType, F32};

use super::handle::LayerKind;
use crate::{PassError, Result};

fn find(g: &Graph, name: &str) -> Option<Node> {
    g.nodes()
        .find(|(_, d)| d.name == name && matches!(d.op, Op::Conv { .. } | Op::Gemm { .. }))
        .map(|(n, _)| n)
}

/// Output channels of layer `n` (from its weight's type).
fn channels(g: &Graph, n: Node) -> Option<usize> {
    let d = g.node(n);
    let w = g.ty(*d.inputs.get(1)?).shape.resolve(1);
    match d.op {
        Op::Conv { .. } => w.first().copied(),
        Op::Gemm { trans_b, .. } if w.len() == 2 => Some(if trans_b { w[0] } else { w[1] }),
        _ => None,
    }
}

/// The effective per-channel bias of layer `name` of `g` (zeros when it has none), or
/// `None` when the layer is unknown or its bias is not per channel.
pub(super) fn layer_bias(g: &Graph, name: &str) -> Option<Vec<f32>> {
    let n = find(g, name)?;
    let m = channels(g, n)?;
    let d = g.node(n);
    let Some(&b) = d.inputs.get(2) else {
        return Some(vec![0.0; m]);
    };
    let t = g.const_tensor(b)?;
    let v = t.as_f32()?;
    let per_channel = t.numel() == m && t.shape.iter().filter(|&&e| e != 1).count() <= 1;
    let scalar = t.numel() == 1;
    if !(per_channel || scalar) {
        return None;
    }
    let beta = match d.op {
        Op::Gemm { beta, .. } => beta.get(),
        _ => 1.0,
    };
    Some(if scalar {
        vec![beta * v[0]; m]
    } else {
        v.iter().map(|x| beta * x).collect()
    })
}

/// Sets layer `name`'s bias in `g` to `bias` (one per output channel).
pub(super) fn set_layer_bias(
    g: &mut Graph,
    name: &str,
    kind: LayerKind,
    bias: &[f32],
) -> Result<()> {
    let err = |msg: String| PassError::Usage(format!("bias of `{name}`: {msg}"));
    let n = find(g, name).ok_or_else(|| err("no such layer".into()))?;
    let m = channels(g, n).ok_or_else(|| err("unknown output channels".into()))?;
    if bias.len() != m {
        return Err(err(format!(
            "{} values given, the layer has {m} output channels",
            bias.len()
        )));
    }
    if layer_bias(g, name).is_none() {
        return Err(err("the layer's bias is not per output channel".into()));
    }
    let d = g.node(n).clone();
    // Keep the operand's layout ([M] or [1, M]) when there is one.
    let shape = match d.inputs.get(2).and_then(|&b| g.const_tensor(b)) {
        Some(t) if t.numel() == m => t.shape.clone(),
        _ => vec![m],
    };
    let base = d
        .inputs
        .get(2)
        .and_then(|&b| g.value(b).name.clone())
        .unwrap_or_else(|| format!("{name}.bias"));
    let t = Tensor::f32(shape, bias.to_vec()).ok_or_else(|| err("bad shape".into()))?;
    let v = g.add_const(
        Some(format!("{base}.tuned")),
        TensorType::f32(t.static_shape()),
        t,
    );
    let node = g.node_mut(n);
    if node.inputs.len() > 2 {
        node.inputs[2] = v;
    } else {
        node.inputs.push(v);
    }
    if let (LayerKind::Gemm, Op::Gemm { beta, .. }) = (kind, &mut node.op) {
        *beta = F32(1.0);
    }
    Ok(())
}
