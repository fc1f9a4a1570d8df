//! `quantize-activations`: a quantize/dequantize pair on every activation point, giving
//! the fake-quant graph (still runnable in float, every activation on its integer grid).
//!
//! *Activation points* ([`activation_points`], shared with `calibrate`) are where FQ-Conv
//! keeps low-bit values between layers: the network input, and the outputs of compute ops
//! (conv, gemm, matmul, add/sub/mul/div, sum, avgpool, global_avgpool, relu, clip,
//! batchnorm) that have at least one user which is not a relu/clip (a relu/clip user
//! means the quantizer belongs after it: `fuse-activation` then absorbs it). Graph
//! outputs are not points: the logits stay float until `integerize`. An input
//! normalisation — a chain of `sub`/`div` by scalar constants starting at a graph input —
//! is treated as part of the input: the chain's end is the input's point, so no quantizer
//! splits the chain and `integerize` can fold it into the input quantizer's scale/offset.
//!
//! For a point `v` with a calibrated range, `q = quantize(v)`, `d = dequantize(q)` and every
//! other user of `v` reads `d`. Unsigned `u<b>` with `scale = hi/(2^b−1)` when `lo ≥ 0`,
//! else signed symmetric `i<b>` with `scale = max(|lo|,|hi|)/(2^(b−1)−1)`; offset 0. Bits:
//! the input uses `input_bits`; any other point uses the activation bits of the conv/gemm
//! that produced it, or of the nearest one upstream along operand 0. Users of `v` see
//! `dequantize(quantize(v))`, which is the FQ-Conv quantizer applied to `v` — the only
//! change this pass makes to what the graph computes.

use std::collections::HashSet;

use fqc_ir::op::{PadMode, ReduceKind, ResizeMode};
use fqc_ir::{BinaryOp, DType, Graph, Op, OpClass, Scale, TensorType, Value, ValueDef, F32};

use crate::context::{PassContext, Range};
use crate::edit::{producer, reschedule, users, value_label};
use crate::regions::Regions;
use crate::{Pass, PassError, Result};

const NAME: &str = "quantize-activations";

/// Inserts quantize/dequantize pairs at activation points (see the module docs).
#[derive(Debug, Default, Clone, Copy)]
pub struct QuantizeActivations;

/// Ops whose result is a new real value (not a rearrangement of its operand's levels):
/// their results are candidate points. Layout ops, max pooling, max/min reductions and
/// nearest-neighbour resizing carry their operand's levels and scale, so they need none;
/// concat is a point because its operands may come at different scales.
fn is_compute(op: &Op) -> bool {
    match op {
        Op::Reduce {
            kind: ReduceKind::Max | ReduceKind::Min,
            ..
        } => false,
        Op::Resize {
            mode: ResizeMode::Nearest,
            ..
        } => false,
        Op::Concat { .. } => true,
        _ => op.class() == OpClass::Float,
    }
}

/// The end of the input-normalisation chain starting at graph input `x`, and the chain's
/// interior values (which are no points).
fn normalisation_chain(g: &Graph, uses: &[Vec<fqc_ir::Node>], x: Value) -> (Value, Vec<Value>) {
    let mut cur = x;
    let mut interior = Vec::new();
    loop {
        if g.outputs().contains(&cur) || uses[cur.index()].len() != 1 {
            break;
        }
        let node = g.node(uses[cur.index()][0]);
        let scalar = node.inputs.get(1).is_some_and(|&c| {
            g.const_tensor(c)
                .is_some_and(|t| t.numel() == 1 && t.as_f32().is_some())
        });
        let norm = matches!(node.op, Op::Binary(BinaryOp::Sub | BinaryOp::Div));
        if !(norm && scalar && node.inputs[0] == cur && node.inputs[1] != cur) {
            break;
        }
        interior.push(cur);
        cur = node.output;
    }
    (cur, interior)
}

/// Activation points with whether each stands for a graph input (see the module docs).
pub(crate) fn classified_points(g: &Graph) -> Vec<(Value, bool)> {
    let uses = users(g);
    let regions = Regions::of(g);
    let mut points = Vec::new();
    let mut skip = HashSet::new();
    let is_f32 = |v: Value| g.ty(v).dtype == DType::F32;
    for &x in g.inputs() {
        let (end, interior) = normalisation_chain(g, &uses, x);
        skip.extend(interior);
        if !g.outputs().contains(&end) && is_f32(end) && !uses[end.index()].is_empty() {
            points.push((end, true));
            skip.insert(end);
        }
    }
    let candidate = |v: Value| {
        !g.outputs().contains(&v)
            && is_f32(v)
            && !uses[v.index()].is_empty()
            && !only_output_tail(g, &uses, v, 0)
    };
    // Table regions whose result is quantized somewhere need their root quantized.
    let mut root_needed = vec![false; g.num_values()];
    for (_, node) in g.nodes() {
        let v = node.output;
        if let Some(r) = regions.member_root[v.index()] {
            if regions.table_root[r.index()] && regions.exits[v.index()] && candidate(v) {
                root_needed[r.index()] = true;
            }
        }
    }
    for (_, node) in g.nodes() {
        let v = node.output;
        if skip.contains(&v) || !candidate(v) {
            continue;
        }
        let wanted = match regions.member_root[v.index()] {
            Some(_) => regions.exits[v.index()],
            None => is_compute(&node.op) && (regions.exits[v.index()] || root_needed[v.index()]),
        };
        if wanted {
            points.push((v, false));
        }
    }
    points
}

/// Whether every path from `v` goes through output-side ops only (softmax and layout
/// ops) to graph outputs: such a value is the network's float result in all but shape
/// (e.g. logits before a final softmax), so it is not quantized; `integerize` puts the
/// output dequantize before that tail, which the report lists as boundary float ops.
fn only_output_tail(g: &Graph, uses: &[Vec<fqc_ir::Node>], v: Value, depth: usize) -> bool {
    if depth > 8 {
        return false;
    }
    let users = &uses[v.index()];
    (g.outputs().contains(&v) || !users.is_empty())
        && users.iter().all(|&u| {
            let node = g.node(u);
            matches!(
                node.op,
                Op::Softmax { .. }
                    | Op::Unary(_)
                    | Op::Reshape { .. }
                    | Op::Flatten { .. }
                    | Op::Transpose { .. }
            ) && only_output_tail(g, uses, node.output, depth + 1)
        })
}

/// The activation points of `g` (see the module docs), inputs first, then in schedule order.
pub fn activation_points(g: &Graph) -> Vec<Value> {
    classified_points(g).into_iter().map(|(v, _)| v).collect()
}

/// Name of the conv/gemm/matmul node that produced `v`, or of the nearest one upstream
/// along operand 0.
fn producing_layer(g: &Graph, mut v: Value) -> Option<&str> {
    for _ in 0..=g.num_nodes() {
        let n = producer(g, v)?;
        let node = g.node(n);
        if matches!(node.op, Op::Conv { .. } | Op::Gemm { .. } | Op::MatMul) {
            return Some(&node.name);
        }
        v = *node.inputs.first()?;
    }
    None
}

/// Activation bits of point `v` (`is_input`: it stands for a graph input).
pub(crate) fn point_bits(g: &Graph, cx: &PassContext, v: Value, is_input: bool) -> u8 {
    if is_input {
        return cx.config.input_bits;
    }
    match producing_layer(g, v) {
        Some(name) => cx.config.acts_for(name),
        None => cx.config.act_bits,
    }
}

/// The quantizer's dtype and scale for a range at `bits` (see the module docs), and the
/// number of positive levels `n` (so `hi ≈ scale·n`).
pub(crate) fn quantizer_for(range: Range, bits: u8) -> Option<(DType, f32, i64)> {
    let signed = range.lo < 0.0;
    let dtype = DType::int(signed, bits)?;
    let (_, qmax) = dtype.quant_range()?;
    let amax = if signed {
        range.lo.abs().max(range.hi)
    } else {
        range.hi
    };
    let scale = amax / qmax as f32;
    (scale.is_finite() && scale > 0.0).then_some((dtype, scale, qmax))
}

impl Pass for QuantizeActivations {
    fn name(&self) -> &'static str {
        NAME
    }

    fn run(&self, g: &mut Graph, cx: &mut PassContext) -> Result<()> {
        let uses = users(g);
        let points = classified_points(g);
        for (v, is_input) in points {
            let already = uses[v.index()]
                .iter()
                .any(|&u| matches!(g.node(u).op, Op::Quantize { .. }));
            let Some(&range) = cx.ranges.get(&v) else {
                continue;
            };
            if already {
                continue;
            }
            let bits = point_bits(g, cx, v, is_input);
            let (dtype, scale, _) = quantizer_for(range, bits).ok_or_else(|| {
                PassError::Usage(format!(
                    "{NAME}: value `{}` has an unusable range [{}, {}] at {bits} bits",
                    value_label(g, v),
                    range.lo,
                    range.hi
                ))
            })?;
            let base = match g.value(v).def {
                ValueDef::Node(n) if !g.node(n).name.is_empty() => g.node(n).name.clone(),
                _ => value_label(g, v),
            };
            let vname = value_label(g, v);
            let shape = g.ty(v).shape.clone();
            let qty = TensorType {
                dtype,
                shape: shape.clone(),
                scale: Some(Scale::Tensor(F32(scale))),
            };
            let q = g.add_node(
                Op::Quantize {
                    dtype,
                    scale: F32(scale),
                    offset: F32(0.0),
                },
                vec![v],
                qty,
                format!("{base}/quantize"),
                Some(format!("{vname}.q")),
            );
            let d = g.add_node(
                Op::Dequantize,
                vec![q],
                TensorType::f32(shape),
                format!("{base}/dequantize"),
                Some(format!("{vname}.dq")),
            );
            for &u in &uses[v.index()] {
                for x in &mut g.node_mut(u).inputs {
                    if *x == v {
                        *x = d;
                    }
                }
            }
        }
        snap_pad_values(g);
        reschedule(g, NAME, &HashSet::new())
    }
}

/// A constant `pad` of a quantized tensor fills with the value's nearest level, so that
/// the fake-quant graph pads exactly with what the integer graph can: the quantizer
/// applied to the pad value (a no-op for the usual 0, which is always a level).
fn snap_pad_values(g: &mut Graph) {
    let mut edits = Vec::new();
    for (n, node) in g.nodes() {
        let Op::Pad {
            mode: PadMode::Constant,
            value,
            ..
        } = node.op
        else {
            continue;
        };
        let quantizer = producer(g, node.inputs[0])
            .filter(|&d| matches!(g.node(d).op, Op::Dequantize))
            .and_then(|d| producer(g, g.node(d).inputs[0]))
            .map(|q| g.node(q).op.clone());
        if let Some(Op::Quantize {
            dtype,
            scale,
            offset,
        }) = quantizer
        {
            let Some((qmin, qmax)) = dtype.quant_range() else {
                continue;
            };
            if offset.get() != 0.0 {
                continue;
            }
            let level = fqc_ir::scalar::quantize_level(value.get(), scale.get(), 0.0, qmin, qmax);
            let snapped = level as f32 * scale.get();
            if snapped != value.get() {
                edits.push((n, snapped));
            }
        }
    }
    for (n, snapped) in edits {
        if let Op::Pad { value, .. } = &mut g.node_mut(n).op {
            *value = F32(snapped);
        }
    }
}
