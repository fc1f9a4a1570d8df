//! `calibrate`: observes every activation point on the calibration batches and picks
//! each point's quantizer clip range into `cx.ranges`.
//!
//! A copy of the graph whose outputs are the activation points (see
//! `quantize_activations::activation_points`) runs batch by batch in the reference
//! interpreter. Per point only constant-size statistics are kept: min, max, the count,
//! Σx², and a 2048-bin histogram of |x| over `[0, R)`; when a batch exceeds `R`, `R`
//! doubles and bin pairs merge, so the histogram stays exact at its (coarser) resolution
//! and memory never grows with the number of batches. Large batches run in chunks of 16
//! items, bounding the activations held at once.
//!
//! Methods (`cx.config.calib`): MinMax (the observed range); Percentile(p) of |x|; Mse
//! (default): the clip `c` among 100 candidates `max|x|·k/100` that minimises
//! `E[(x − q_c(x))²]` over the histogram for the point's bits — unsigned
//! `q_c(x) = s·min(round(x/s), 2^b−1)`, `s = c/(2^b−1)` when the point is known
//! non-negative (a relu or clip(min ≥ 0) result, or observed min ≥ 0), else signed
//! symmetric (which depends only on |x|, hence the |x| histogram). Every bin is
//! evaluated at 4 points across its width. Non-negative points get `lo = 0`, others
//! `lo = −hi` (MinMax keeps the observed min). A clip's bounds cap the range. `hi` is
//! floored at a tiny positive value so every quantizer scale is positive. Non-finite
//! observations are ignored. Calibration never changes the graph; it only reads it.
//!
//! It also notes, for every method, the mean quantization MSE over all points (and the
//! mean MSE relative to E[x²]), so the compile report can say which method wins.

use std::collections::HashMap;

use fqc_ir::{Dim, Graph, Op, RunOptions, Tensor, TensorData, Value};

use crate::context::{CalibMethod, PassContext, Range};
use crate::edit::{producer, value_label};
use crate::quantize_activations::{classified_points, point_bits};
use crate::{Pass, PassError, Result};

const NAME: &str = "calibrate";
const BINS: usize = 2048;
/// Smallest `hi` a range may have (keeps scales positive for all-zero activations).
const MIN_HI: f32 = 1e-12;
/// The percentile shown in the method comparison when the config asks for another method.
const DEFAULT_PERCENTILE: f32 = 99.99;
/// Largest number of batch items run at once (bounds the activations held in memory).
const CHUNK: usize = 16;

/// Picks activation clip ranges from calibration data (see the module docs).
#[derive(Debug, Default, Clone, Copy)]
pub struct Calibrate;

/// Constant-size statistics of one activation point over all batches.
#[derive(Debug, Clone)]
pub(crate) struct Stats {
    min: f32,
    max: f32,
    count: u64,
    sum_sq: f64,
    hist: Vec<u64>,
    /// Histogram upper bound `R` (0 until a non-zero value is seen).
    range: f64,
}

impl Default for Stats {
    fn default() -> Self {
        Stats {
            min: f32::INFINITY,
            max: f32::NEG_INFINITY,
            count: 0,
            sum_sq: 0.0,
            hist: vec![0; BINS],
            range: 0.0,
        }
    }
}

impl Stats {
    pub(crate) fn add(&mut self, data: &[f32]) {
        let mut amax = 0f64;
        for &x in data.iter().filter(|x| x.is_finite()) {
            self.min = self.min.min(x);
            self.max = self.max.max(x);
            amax = amax.max(f64::from(x.abs()));
        }
        if self.range == 0.0 {
            self.range = amax;
        }
        while amax > self.range {
            let merged: Vec<u64> = (0..BINS)
                .map(|i| match (self.hist.get(2 * i), self.hist.get(2 * i + 1)) {
                    (Some(a), Some(b)) => a + b,
                    (Some(a), None) => *a,
                    _ => 0,
                })
                .collect();
            self.hist = merged;
            self.range *= 2.0;
        }
        for &x in data.iter().filter(|x| x.is_finite()) {
            let a = f64::from(x.abs());
            let idx = if self.range > 0.0 {
                ((a / self.range * BINS as f64) as usize).min(BINS - 1)
            } else {
                0
            };
            self.hist[idx] += 1;
            self.count += 1;
            self.sum_sq += a * a;
        }
    }

    fn max_abs(&self) -> f32 {
        if self.count == 0 {
            0.0
        } else {
            self.min.abs().max(self.max.abs())
        }
    }

    /// Mean squared error of the quantizer with clip `c` and `n` positive levels.
    pub(crate) fn mse(&self, c: f64, n: i64) -> f64 {
        if self.count == 0 {
            return 0.0;
        }
        if c <= 0.0 {
            return self.sum_sq / self.count as f64;
        }
        let s = c / n as f64;
        let w = self.range / BINS as f64;
        let mut err = 0.0;
        for (i, &h) in self.hist.iter().enumerate().filter(|(_, &h)| h > 0) {
            let mut e = 0.0;
            for j in 0..4 {
                let x = (i as f64 + (j as f64 + 0.5) / 4.0) * w;
                let level = (x / s).round_ties_even().min(n as f64);
                e += (x - level * s).powi(2);
            }
            err += e / 4.0 * h as f64;
        }
        err / self.count as f64
    }

    /// The `p`-th percentile of |x| (interpolated inside its bin).
    fn percentile(&self, p: f32) -> f32 {
        let target = f64::from(p.clamp(0.0, 100.0)) / 100.0 * self.count as f64;
        let w = self.range / BINS as f64;
        let mut cum = 0.0;
        for (i, &h) in self.hist.iter().enumerate() {
            let h = h as f64;
            if h > 0.0 && cum + h >= target {
                let frac = ((target - cum) / h).clamp(0.0, 1.0);
                return (((i as f64 + frac) * w) as f32).min(self.max_abs());
            }
            cum += h;
        }
        self.max_abs()
    }

    /// The MSE-optimal clip over 100 candidates.
    fn best_clip(&self, n: i64) -> f32 {
        let amax = f64::from(self.max_abs());
        let mut best = (f64::INFINITY, amax);
        for k in 1..=100 {
            let c = amax * f64::from(k) / 100.0;
            let e = self.mse(c, n);
            if e < best.0 {
                best = (e, c);
            }
        }
        best.1 as f32
    }
}

/// One activation point with what calibration needs to know about it.
struct Point {
    value: Value,
    bits: u8,
    /// Known non-negative from its producer (relu, clip(min ≥ 0)).
    nonneg_op: bool,
    /// A producing clip's bounds.
    clip: Option<(f32, f32)>,
    stats: Stats,
}

impl Point {
    fn nonneg(&self) -> bool {
        self.nonneg_op || self.stats.count == 0 || self.stats.min >= 0.0
    }

    /// Positive levels of the point's quantizer.
    fn levels(&self) -> i64 {
        let b = i64::from(self.bits.clamp(2, 8));
        if self.nonneg() {
            (1 << b) - 1
        } else {
            (1 << (b - 1)) - 1
        }
    }

    fn range(&self, method: CalibMethod) -> Range {
        let s = &self.stats;
        let observed = s.count > 0;
        let (mut lo, mut hi) = match method {
            CalibMethod::MinMax if observed => (s.min.min(0.0), s.max.max(0.0)),
            CalibMethod::MinMax => (0.0, 0.0),
            CalibMethod::Percentile(p) => {
                let hi = s.percentile(p);
                (-hi, hi)
            }
            CalibMethod::Mse => {
                let hi = s.best_clip(self.levels());
                (-hi, hi)
            }
        };
        if self.nonneg() {
            lo = 0.0;
        }
        if let Some((cmin, cmax)) = self.clip {
            hi = hi.min(cmax);
            lo = lo.max(cmin.min(0.0));
        }
        hi = hi.max(MIN_HI);
        Range { lo, hi }
    }

    /// The quantization MSE of `range` (symmetric/unsigned quantizer on |x|).
    fn mse_of(&self, r: Range) -> f64 {
        let amax = if self.nonneg() { r.hi } else { r.hi.max(-r.lo) };
        self.stats.mse(f64::from(amax), self.levels())
    }
}

fn method_name(m: CalibMethod) -> String {
    match m {
        CalibMethod::MinMax => "minmax".into(),
        CalibMethod::Percentile(p) => format!("percentile({p})"),
        CalibMethod::Mse => "mse".into(),
    }
}

/// Runs the graph on the calibration batches, feeding every point's statistics.
fn observe(g: &Graph, cx: &PassContext, points: &mut [Point]) -> Result<()> {
    let ni = g.inputs().len().max(1);
    if !cx.calib_inputs.len().is_multiple_of(ni) {
        return Err(PassError::Usage(format!(
            "{NAME}: {} calibration tensors do not form batches of the graph's {ni} inputs",
            cx.calib_inputs.len()
        )));
    }
    let mut cg = g.clone();
    cg.set_outputs(points.iter().map(|p| p.value).collect());
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let opts = RunOptions { threads };
    let batched = g
        .inputs()
        .iter()
        .all(|&v| g.ty(v).shape.0.first() == Some(&Dim::Batch));
    for batch in cx.calib_inputs.chunks(ni) {
        for chunk in sub_batches(batch, batched) {
            observe_chunk(g, &cg, &chunk, &opts, points)?;
        }
    }
    Ok(())
}

/// Cuts one calibration batch into chunks of at most [`CHUNK`] items along axis 0 (when
/// every graph input is batched and all tensors agree on the batch size), so the point
/// values held at once stay bounded; statistics are per element, so chunking changes
/// nothing else.
fn sub_batches(batch: &[Tensor], batched: bool) -> Vec<Vec<Tensor>> {
    let n = batch
        .first()
        .and_then(|t| t.shape.first().copied())
        .unwrap_or(0);
    let splittable = batched
        && n > CHUNK
        && batch
            .iter()
            .all(|t| t.shape.first() == Some(&n) && t.as_f32().is_some_and(|d| d.len() % n == 0));
    if !splittable {
        return vec![batch.to_vec()];
    }
    (0..n)
        .step_by(CHUNK)
        .map(|start| {
            let end = (start + CHUNK).min(n);
            batch
                .iter()
                .map(|t| {
                    let d = t.as_f32().unwrap_or_default();
                    let item = d.len() / n;
                    let mut shape = t.shape.clone();
                    shape[0] = end - start;
                    Tensor {
                        shape,
                        data: TensorData::F32(d[start * item..end * item].to_vec()),
                    }
                })
                .collect()
        })
        .collect()
}

fn observe_chunk(
    g: &Graph,
    cg: &Graph,
    chunk: &[Tensor],
    opts: &RunOptions,
    points: &mut [Point],
) -> Result<()> {
    let outs = fqc_ir::run_with(cg, chunk, opts)
        .map_err(|source| PassError::Interp { pass: NAME, source })?;
    for (p, t) in points.iter_mut().zip(&outs) {
        let data = t.as_f32().ok_or_else(|| {
            PassError::Usage(format!(
                "{NAME}: activation `{}` is not f32",
                value_label(g, p.value)
            ))
        })?;
        p.stats.add(data);
    }
    Ok(())
}

/// The comparison note: mean MSE per method over all points.
fn comparison_note(points: &[Point], chosen: CalibMethod) -> String {
    let pct = match chosen {
        CalibMethod::Percentile(p) => p,
        _ => DEFAULT_PERCENTILE,
    };
    let methods = [
        CalibMethod::MinMax,
        CalibMethod::Percentile(pct),
        CalibMethod::Mse,
    ];
    let mut rows: Vec<(String, f64, f64)> = methods
        .iter()
        .map(|&m| {
            let (mut abs, mut rel) = (0.0, 0.0);
            for p in points {
                let e = p.mse_of(p.range(m));
                let ex2 = p.stats.sum_sq / p.stats.count.max(1) as f64;
                abs += e;
                rel += if ex2 > 0.0 { e / ex2 } else { 0.0 };
            }
            let n = points.len().max(1) as f64;
            (method_name(m), abs / n, rel / n)
        })
        .collect();
    let list: Vec<String> = rows
        .iter()
        .map(|(m, a, r)| format!("{m} {a:.4e} (relative {r:.4e})"))
        .collect();
    rows.sort_by(|a, b| a.1.total_cmp(&b.1));
    let ratio = if rows[0].1 > 0.0 {
        format!("{:.2}x lower than {}", rows[1].1 / rows[0].1, rows[1].0)
    } else {
        format!("zero error; next is {}", rows[1].0)
    };
    format!(
        "{NAME}: mean activation quantization MSE over {} points: {}; lowest: {} ({ratio}); using {}",
        points.len(),
        list.join(", "),
        rows[0].0,
        method_name(chosen)
    )
}

impl Pass for Calibrate {
    fn name(&self) -> &'static str {
        NAME
    }

    fn run(&self, g: &mut Graph, cx: &mut PassContext) -> Result<()> {
        let classified = classified_points(g);
        if cx.calib_inputs.is_empty() {
            return match classified.iter().find(|(v, _)| !cx.ranges.contains_key(v)) {
                None => Ok(()),
                Some(&(v, _)) => Err(PassError::Usage(format!(
                    "{NAME}: no calibration inputs, and activation `{}` has no range",
                    value_label(g, v)
                ))),
            };
        }
        let mut points: Vec<Point> = classified
            .iter()
            .map(|&(v, is_input)| {
                let op = producer(g, v).map(|n| &g.node(n).op);
                let clip = match op {
                    Some(Op::Clip { min, max }) => Some((min.get(), max.get())),
                    _ => None,
                };
                Point {
                    value: v,
                    bits: point_bits(g, cx, v, is_input),
                    nonneg_op: matches!(op, Some(Op::Relu)) || clip.is_some_and(|c| c.0 >= 0.0),
                    clip,
                    stats: Stats::default(),
                }
            })
            .collect();
        if points.is_empty() {
            return Ok(());
        }
        observe(g, cx, &mut points)?;
        let method = cx.config.calib;
        let ranges: HashMap<Value, Range> =
            points.iter().map(|p| (p.value, p.range(method))).collect();
        cx.ranges.extend(ranges);
        cx.notes.push(comparison_note(&points, method));
        Ok(())
    }
}
