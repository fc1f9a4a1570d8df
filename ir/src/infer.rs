//! Type and shape inference: the result type of an op from its operand types.
//!
//! This is the single definition of each op's shape rule. The importer uses it to type
//! the nodes it creates and the verifier re-runs it on every node, so a pass that leaves a
//! stale type is caught. Only the batch dimension may be symbolic, so every rule is exact
//! arithmetic on known extents plus a few structural facts about `N` (it broadcasts
//! against 1 and itself only, and may not be merged into another dimension).

use crate::op::{Op, Window};
use crate::types::{DType, Dim, Shape, TensorType};

type Res<T> = std::result::Result<T, String>;

fn want_rank(t: &TensorType, rank: usize, what: &str) -> Res<()> {
    if t.shape.rank() != rank {
        return Err(format!("{what} must have rank {rank}, got {}", t.shape));
    }
    Ok(())
}

fn fixed(d: Dim, what: &str) -> Res<u64> {
    d.fixed()
        .ok_or_else(|| format!("{what} may not be the symbolic batch dimension"))
}

/// NumPy broadcasting of two shapes.
pub fn broadcast(a: &Shape, b: &Shape) -> Res<Shape> {
    let rank = a.rank().max(b.rank());
    let mut out = Vec::with_capacity(rank);
    for i in 0..rank {
        let da = if i + a.rank() >= rank {
            a.0[i + a.rank() - rank]
        } else {
            Dim::Fixed(1)
        };
        let db = if i + b.rank() >= rank {
            b.0[i + b.rank() - rank]
        } else {
            Dim::Fixed(1)
        };
        out.push(match (da, db) {
            (x, y) if x == y => x,
            (Dim::Fixed(1), y) => y,
            (x, Dim::Fixed(1)) => x,
            _ => return Err(format!("shapes {a} and {b} do not broadcast")),
        });
    }
    Ok(Shape(out))
}

fn spatial_out(window: &Window, h: u64, w: u64) -> Res<(u64, u64)> {
    let oh = window.output_extent(0, h);
    let ow = window.output_extent(1, w);
    match (oh, ow) {
        (Some(oh), Some(ow)) if oh > 0 && ow > 0 => Ok((oh, ow)),
        _ => Err(format!(
            "window {:?} does not fit input {h}x{w}",
            window.kernel
        )),
    }
}

fn check_window(window: &Window) -> Res<()> {
    if window.kernel.contains(&0) || window.strides.contains(&0) || window.dilations.contains(&0) {
        return Err("kernel, strides and dilations must be positive".into());
    }
    Ok(())
}

/// The result type of `op` applied to operands of types `inputs`.
pub fn infer(op: &Op, inputs: &[&TensorType]) -> Res<TensorType> {
    if let Some(result) = crate::infer_quant::infer(op, inputs) {
        return result;
    }
    infer_float(op, inputs)
}

/// The float rule of `op` (every operand f32).
pub(crate) fn infer_float(op: &Op, inputs: &[&TensorType]) -> Res<TensorType> {
    let (lo, hi) = op.arity();
    if inputs.len() < lo || hi.is_some_and(|hi| inputs.len() > hi) {
        return Err(format!(
            "expects {lo}..{} operands, got {}",
            hi.map_or("".into(), |h| h.to_string()),
            inputs.len()
        ));
    }
    for (i, t) in inputs.iter().enumerate() {
        if matches!(op, Op::Gather { .. }) && i == 1 {
            if t.dtype != DType::I64 {
                return Err(format!("gather indices must be i64, got {}", t.dtype));
            }
            continue;
        }
        if t.dtype != DType::F32 {
            return Err(format!("operand {i} has type {}, expected f32", t.dtype));
        }
        if t.shape.0.iter().skip(1).any(|d| *d == Dim::Batch) {
            return Err(format!(
                "operand {i}: the batch dimension may only be axis 0, got {}",
                t.shape
            ));
        }
    }
    let x = inputs[0];
    if let Some(shape) = crate::infer_layout::shape(op, inputs) {
        return result(shape?);
    }
    let shape = match op {
        Op::Relu | Op::Clip { .. } => x.shape.clone(),
        Op::Binary(_) => broadcast(&x.shape, &inputs[1].shape)?,
        Op::Sum => inputs[1..]
            .iter()
            .try_fold(x.shape.clone(), |acc, t| broadcast(&acc, &t.shape))?,
        Op::BatchNorm { .. } => {
            if x.shape.rank() < 2 {
                return Err(format!("input must have rank >= 2, got {}", x.shape));
            }
            let c = fixed(x.shape.0[1], "the channel dimension")?;
            for (i, t) in inputs[1..].iter().enumerate() {
                if t.shape != Shape::fixed(&[c]) {
                    return Err(format!(
                        "parameter {} must have shape [{c}], got {}",
                        i + 1,
                        t.shape
                    ));
                }
            }
            x.shape.clone()
        }
        Op::Conv { window, group } => {
            check_window(window)?;
            want_rank(x, 4, "conv input")?;
            want_rank(inputs[1], 4, "conv weight")?;
            let c = fixed(x.shape.0[1], "channels")?;
            let w: Vec<u64> = inputs[1]
                .shape
                .as_fixed()
                .ok_or("weight shape must be fixed")?;
            let (m, cg) = (w[0], w[1]);
            if *group == 0 || c % group != 0 || m % group != 0 || cg != c / group {
                return Err(format!(
                    "weight {} does not fit input channels {c} with group {group}",
                    inputs[1].shape
                ));
            }
            if [w[2], w[3]] != window.kernel {
                return Err(format!(
                    "kernel {:?} does not match weight {}",
                    window.kernel, inputs[1].shape
                ));
            }
            if let Some(b) = inputs.get(2) {
                if b.shape != Shape::fixed(&[m]) {
                    return Err(format!("bias must have shape [{m}], got {}", b.shape));
                }
            }
            let h = fixed(x.shape.0[2], "height")?;
            let wd = fixed(x.shape.0[3], "width")?;
            let (oh, ow) = spatial_out(window, h, wd)?;
            Shape(vec![
                x.shape.0[0],
                Dim::Fixed(m),
                Dim::Fixed(oh),
                Dim::Fixed(ow),
            ])
        }
        Op::MaxPool { window } | Op::AveragePool { window, .. } => {
            check_window(window)?;
            want_rank(x, 4, "pool input")?;
            let h = fixed(x.shape.0[2], "height")?;
            let w = fixed(x.shape.0[3], "width")?;
            let eh = window.kernel[0].saturating_mul(window.dilations[0]);
            let ew = window.kernel[1].saturating_mul(window.dilations[1]);
            if window.pads[0] >= eh
                || window.pads[2] >= eh
                || window.pads[1] >= ew
                || window.pads[3] >= ew
            {
                return Err("pads must be smaller than the kernel".into());
            }
            let (oh, ow) = spatial_out(window, h, w)?;
            Shape(vec![
                x.shape.0[0],
                x.shape.0[1],
                Dim::Fixed(oh),
                Dim::Fixed(ow),
            ])
        }
        Op::GlobalAveragePool | Op::GlobalMaxPool => {
            want_rank(x, 4, "pool input")?;
            Shape(vec![
                x.shape.0[0],
                x.shape.0[1],
                Dim::Fixed(1),
                Dim::Fixed(1),
            ])
        }
        Op::Lrn { size, .. } => {
            want_rank(x, 4, "LRN input")?;
            if *size == 0 {
                return Err("size must be positive".into());
            }
            x.shape.clone()
        }
        Op::Gemm {
            trans_a, trans_b, ..
        } => {
            want_rank(x, 2, "A")?;
            want_rank(inputs[1], 2, "B")?;
            let (m, ka) = if *trans_a {
                (x.shape.0[1], x.shape.0[0])
            } else {
                (x.shape.0[0], x.shape.0[1])
            };
            let b = &inputs[1].shape.0;
            let (kb, n) = if *trans_b { (b[1], b[0]) } else { (b[0], b[1]) };
            if ka != kb {
                return Err(format!(
                    "inner dimensions differ: A {} B {}",
                    x.shape, inputs[1].shape
                ));
            }
            let out = Shape(vec![m, n]);
            if let Some(c) = inputs.get(2) {
                if broadcast(&c.shape, &out)? != out {
                    return Err(format!("C {} does not broadcast to {out}", c.shape));
                }
            }
            out
        }
        Op::MatMul => matmul_shape(&x.shape, &inputs[1].shape)?,
        Op::Flatten { axis } => {
            let axis = *axis as usize;
            if axis > x.shape.rank() {
                return Err(format!("axis {axis} out of range for {}", x.shape));
            }
            let (head, tail) = x.shape.0.split_at(axis);
            let tail_n = tail
                .iter()
                .try_fold(1u64, |a, d| a.checked_mul(d.fixed()?))
                .ok_or("trailing dimensions must be fixed")?;
            let head_d = match head {
                [Dim::Batch, rest @ ..] if rest.iter().all(|d| *d == Dim::Fixed(1)) => Dim::Batch,
                _ => Dim::Fixed(
                    head.iter()
                        .try_fold(1u64, |a, d| a.checked_mul(d.fixed()?))
                        .ok_or("cannot merge the batch dimension with others")?,
                ),
            };
            Shape(vec![head_d, Dim::Fixed(tail_n)])
        }
        Op::Reshape { shape } => {
            let target = Shape(shape.clone());
            if target.0.iter().skip(1).any(|d| *d == Dim::Batch) {
                return Err(format!(
                    "the batch dimension may only be axis 0, got {target}"
                ));
            }
            if x.shape.has_batch() != target.has_batch()
                || x.shape.numel_per_item() != target.numel_per_item()
            {
                return Err(format!("cannot reshape {} to {target}", x.shape));
            }
            target
        }
        Op::Concat { axis } => {
            let axis = *axis as usize;
            if axis >= x.shape.rank() {
                return Err(format!("axis {axis} out of range for {}", x.shape));
            }
            let mut total = 0u64;
            for t in inputs {
                if t.shape.rank() != x.shape.rank()
                    || t.shape
                        .0
                        .iter()
                        .zip(&x.shape.0)
                        .enumerate()
                        .any(|(i, (a, b))| i != axis && a != b)
                {
                    return Err(format!(
                        "operands {} and {} differ off axis {axis}",
                        x.shape, t.shape
                    ));
                }
                total = total
                    .checked_add(fixed(t.shape.0[axis], "the concatenation axis")?)
                    .ok_or("concatenated extent overflows")?;
            }
            let mut s = x.shape.clone();
            s.0[axis] = Dim::Fixed(total);
            s
        }
        Op::Softmax { axis } => {
            if *axis as usize >= x.shape.rank() {
                return Err(format!("axis {axis} out of range for {}", x.shape));
            }
            x.shape.clone()
        }
        Op::Transpose { perm } => {
            let r = x.shape.rank();
            let mut seen = vec![false; r];
            if perm.len() != r
                || perm
                    .iter()
                    .any(|&p| (p as usize) >= r || std::mem::replace(&mut seen[p as usize], true))
            {
                return Err(format!("perm {perm:?} is not a permutation of rank {r}"));
            }
            let s = Shape(perm.iter().map(|&p| x.shape.0[p as usize]).collect());
            if s.0.iter().skip(1).any(|d| *d == Dim::Batch) {
                return Err("the batch dimension must stay at axis 0".into());
            }
            s
        }
        Op::Quantize { .. }
        | Op::Dequantize
        | Op::QConv { .. }
        | Op::QGemm { .. }
        | Op::Requantize { .. }
        | Op::ScaledAdd
        | Op::SumPool { .. }
        | Op::GlobalSumPool
        | Op::Table { .. }
        | Op::QMul => return Err(format!("`{}` is not a float op", op.name())),
        // Handled by `infer_layout` above.
        Op::Unary(_)
        | Op::PRelu
        | Op::Pad { .. }
        | Op::Reduce { .. }
        | Op::Slice { .. }
        | Op::Gather { .. }
        | Op::Expand { .. }
        | Op::Tile { .. }
        | Op::Resize { .. } => unreachable!("infer_layout gives these shapes"),
    };
    result(shape)
}

/// An f32 result of `shape`, unless the batch dimension ended up off axis 0: broadcasting
/// can align `N` with a non-batch axis (`[N,1] + [N,1,1,1]`), and no value may have
/// such a type.
fn result(shape: Shape) -> Res<TensorType> {
    if shape.0.iter().skip(1).any(|d| *d == Dim::Batch) {
        return Err(format!(
            "the result {shape} would have the batch dimension off axis 0"
        ));
    }
    Ok(TensorType::f32(shape))
}

fn matmul_shape(a: &Shape, b: &Shape) -> Res<Shape> {
    if a.rank() == 0 || b.rank() == 0 {
        return Err("matmul operands must have rank >= 1".into());
    }
    let a2 = if a.rank() == 1 {
        Shape(vec![Dim::Fixed(1), a.0[0]])
    } else {
        a.clone()
    };
    let b2 = if b.rank() == 1 {
        Shape(vec![b.0[0], Dim::Fixed(1)])
    } else {
        b.clone()
    };
    let (ar, br) = (a2.rank(), b2.rank());
    if a2.0[ar - 1] != b2.0[br - 2] {
        return Err(format!("inner dimensions differ: {a} x {b}"));
    }
    let batch = broadcast(
        &Shape(a2.0[..ar - 2].to_vec()),
        &Shape(b2.0[..br - 2].to_vec()),
    )?;
    let mut out = batch.0;
    if a.rank() > 1 {
        out.push(a2.0[ar - 2]);
    }
    if b.rank() > 1 {
        out.push(b2.0[br - 1]);
    }
    Ok(Shape(out))
}
