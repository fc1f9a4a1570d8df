//! `fuse-activation`: a relu/clip read by a quantizer is absorbed into the quantizer's
//! clamp (FQ-Conv: "the clip at 0 *is* the ReLU").
//!
//! `quantize` computes `f(x) = clamp(round_half_even((x − offset)/scale), qmin, qmax)` in
//! f32, a monotone (non-decreasing) function of `x`. So for `clip(x, l, u)` (relu is
//! `l = 0, u = +∞`), `f(clip(x, l, u)) = f(x)` for every `x` iff `f(l) = qmin` and
//! `f(u) = qmax`: below `l` both sides are `f(l)` resp. `f(x) ≤ f(l)` and both clamp to
//! `qmin`; above `u` symmetrically; in between the clip is the identity. The pass checks
//! exactly that, with the same f32 arithmetic as the op, and rewires the quantizer to `x`.
//! For an unsigned quantizer with offset 0 a relu always qualifies; a clip(0, a) does when
//! `scale·qmax ≤ a` up to rounding (calibration caps a clip output's range at `a`, which
//! guarantees it). A pair that does not qualify is left alone and explained in a note.
//! Relu/clip nodes left without users are removed from the schedule.

use std::collections::HashSet;

use fqc_ir::{Graph, Node, Op};

use crate::context::PassContext;
use crate::edit::{label, producer, reschedule, unused};
use crate::{Pass, Result};

const NAME: &str = "fuse-activation";

/// Absorbs relu/clip into the quantizers reading them (see the module docs).
#[derive(Debug, Default, Clone, Copy)]
pub struct FuseActivation;

/// The quantizer's level for `x` (the op's arithmetic, before the clamp).
fn level(x: f32, scale: f32, offset: f32) -> f32 {
    ((x - offset) / scale).round_ties_even()
}

/// Whether `quantize(clip(x, lo, hi))` equals `quantize(x)`; otherwise why not.
fn absorbable(op: &Op, q: &Op) -> Result<(), String> {
    let (lo, hi) = match op {
        Op::Relu => (0.0, f32::INFINITY),
        Op::Clip { min, max } => (min.get(), max.get()),
        _ => return Err("not an activation".into()),
    };
    let Op::Quantize {
        dtype,
        scale,
        offset,
    } = q
    else {
        return Err("not a quantizer".into());
    };
    let Some((qmin, qmax)) = dtype.quant_range() else {
        return Err(format!("quantizer type {dtype} has no range"));
    };
    let (s, off) = (scale.get(), offset.get());
    if lo > f32::NEG_INFINITY && level(lo, s, off) > qmin as f32 {
        return Err(format!(
            "its lower bound {lo} quantizes above the {dtype} minimum {qmin}"
        ));
    }
    if hi < f32::INFINITY && level(hi, s, off) < qmax as f32 {
        return Err(format!(
            "its upper bound {hi} is below the quantizer's top level {qmax}·{s} (+{off})"
        ));
    }
    if lo.is_nan() || hi.is_nan() {
        return Err("a bound is NaN".into());
    }
    Ok(())
}

impl Pass for FuseActivation {
    fn name(&self) -> &'static str {
        NAME
    }

    fn run(&self, g: &mut Graph, cx: &mut PassContext) -> Result<()> {
        let quantizers: Vec<Node> = g
            .nodes()
            .filter(|(_, d)| matches!(d.op, Op::Quantize { .. }))
            .map(|(n, _)| n)
            .collect();
        let mut acts = Vec::new();
        for q in quantizers {
            let Some(a) = producer(g, g.node(q).inputs[0]) else {
                continue;
            };
            let act = g.node(a);
            if !matches!(act.op, Op::Relu | Op::Clip { .. }) {
                continue;
            }
            match absorbable(&act.op, &g.node(q).op) {
                Ok(()) => {
                    let x = act.inputs[0];
                    g.node_mut(q).inputs[0] = x;
                    acts.push(a);
                }
                Err(why) => cx.notes.push(format!(
                    "{NAME}: kept `{}` ({}) before quantizer `{}`: {why}",
                    label(g, a),
                    g.node(a).op.name(),
                    label(g, q)
                )),
            }
        }
        let dead: HashSet<Node> = unused(g, acts);
        reschedule(g, NAME, &dead)
    }
}
