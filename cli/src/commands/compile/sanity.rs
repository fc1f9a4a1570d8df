//! The check after every compile: does the quantized model still answer like the float
//! one? Post-training quantization to few bits can collapse a model (ternary weights
//! without fine-tuning often do) while every pass succeeds, so `fqc compile` runs both
//! models on held-out images — images that did not calibrate the quantizers, or the
//! fine-tuning's validation images — and prints how often their top-1 classes agree
//! and the mean cosine between their outputs. Below [`WARN_AGREEMENT`] it prints a
//! `warning:` on stderr that says what to do next.
//!
//! The float model runs on the interpreter, the quantized one on the JIT; the number of
//! images is capped so the float side stays within about [`MAC_BUDGET`] multiply-adds.

use anyhow::Result;
use fqc_ir::{Graph, Tensor};
use serde::Serialize;

use crate::commands::run::Engine;
use crate::out::{outln, warnln};

/// Agreement below which the compile warns.
pub const WARN_AGREEMENT: f64 = 0.90;
/// Multiply-adds the float model may spend on the check (at least 8 images run).
const MAC_BUDGET: u64 = 20_000_000_000;
/// Images per call.
const BATCH: usize = 64;

/// Images to check on, and a line saying which they are.
#[derive(Debug)]
pub struct HeldOut {
    images: Tensor,
    what: String,
}

impl HeldOut {
    pub fn new(images: Tensor, what: String) -> HeldOut {
        HeldOut { images, what }
    }

    /// The first images of a labelled set (up to the check's cap).
    pub fn from_set(set: &fqc_dataset::LabelledSet, what: &str) -> HeldOut {
        let n = set.len().min(crate::limits::MAX_BATCH as usize);
        HeldOut {
            images: set.batch(0, n),
            what: format!("{n} {what}"),
        }
    }
}

/// What the check measured.
#[derive(Clone, Debug, Serialize)]
pub struct FloatCheck {
    pub images: usize,
    /// Fraction of images whose top-1 class is the same for both models.
    pub agreement: f64,
    /// Mean over images of the cosine between the two models' outputs.
    pub cosine: f64,
    /// Which images: held out from calibration, or the calibration images themselves.
    pub held_out: String,
}

/// Compares `float` (interpreter) with `integer` (JIT) on up to `max_images` of
/// `held_out`; prints the result, and a warning when the agreement is low. None when
/// `max_images` is 0 or there are no images.
pub fn check(
    float: &Graph,
    integer: &Graph,
    held_out: &HeldOut,
    max_images: usize,
) -> Result<Option<FloatCheck>> {
    let mut jit = Engine::from_graph(integer.clone(), true, 2)?;
    let macs = match &jit {
        Engine::Jit(s) => s.model().macs_per_image(),
        Engine::Interp(..) => 0,
    };
    let budget = (MAC_BUDGET / macs.max(1)).max(8) as usize;
    let total = held_out.images.shape.first().copied().unwrap_or(0);
    let n = total.min(max_images).min(budget);
    if n == 0 {
        return Ok(None);
    }
    let mut interp = Engine::from_graph(float.clone(), false, 2)?;
    let (mut same, mut cos_sum) = (0usize, 0.0f64);
    for start in (0..n).step_by(BATCH) {
        let end = (start + BATCH).min(n);
        let x = slice(&held_out.images, start, end);
        let a = first_f32(interp.run(std::slice::from_ref(&x))?)?;
        let b = first_f32(jit.run(std::slice::from_ref(&x))?)?;
        let per = a.len() / (end - start);
        if per == 0 || b.len() != a.len() {
            anyhow::bail!("the float and quantized models' outputs differ in size");
        }
        for (ra, rb) in a.chunks(per).zip(b.chunks(per)) {
            same += usize::from(argmax(ra) == argmax(rb));
            cos_sum += cosine(ra, rb);
        }
    }
    let what = if n < total {
        format!("{n} of the {}", held_out.what)
    } else {
        held_out.what.clone()
    };
    let r = FloatCheck {
        images: n,
        agreement: same as f64 / n as f64,
        cosine: cos_sum / n as f64,
        held_out: what,
    };
    outln!(
        "check against the float model on {}: top-1 agreement {:.2}%, output cosine {:.4}",
        r.held_out,
        100.0 * r.agreement,
        r.cosine
    )?;
    if r.agreement < WARN_AGREEMENT {
        warnln!(
            "warning: the quantized model picks the float model's class on only {:.1}% of \
             {n} held-out images: fine-tune it with --train SET (gradual quantization-aware \
             training); keeping the first and last layers at 8 bits (--layer NAME=w8) \
             helps, but is rarely enough for ternary weights",
            100.0 * r.agreement
        );
    }
    Ok(Some(r))
}

fn first_f32(outs: Vec<Tensor>) -> Result<Vec<f32>> {
    match outs.into_iter().next().map(|t| t.data) {
        Some(fqc_ir::TensorData::F32(v)) => Ok(v),
        _ => anyhow::bail!("the model's first output is not float"),
    }
}

fn slice(t: &Tensor, start: usize, end: usize) -> Tensor {
    let item: usize = t.shape[1..].iter().product();
    let mut shape = t.shape.clone();
    shape[0] = end - start;
    let data = t.as_f32().unwrap_or_default();
    Tensor {
        shape,
        data: fqc_ir::TensorData::F32(data[start * item..end * item].to_vec()),
    }
}

fn argmax(v: &[f32]) -> usize {
    v.iter()
        .enumerate()
        .fold(0, |b, (j, x)| if *x > v[b] { j } else { b })
}

/// Cosine of two vectors; 1 when both are zero, 0 when one is.
fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let (mut ab, mut aa, mut bb) = (0.0f64, 0.0f64, 0.0f64);
    for (&x, &y) in a.iter().zip(b) {
        let (x, y) = (f64::from(x), f64::from(y));
        ab += x * y;
        aa += x * x;
        bb += y * y;
    }
    match (aa > 0.0, bb > 0.0) {
        (true, true) => ab / (aa.sqrt() * bb.sqrt()),
        (false, false) => 1.0,
        _ => 0.0,
    }
}
