//! BatchNorm trained again in the early stages of the gradual schedule, and folded
//! back before the ternary ones (METHOD.md; issue 5: "BN trained in the early stages and
//! folded before the ternary stages, then training the folded form").
//!
//! The float master has every BatchNorm folded (`fold-batchnorm`), so a layer `l` the
//! pass folded a BN into computes `conv(x, Q(w; α)) + b`. In a stage that trains BN,
//! [`Net::train_batchnorm`](crate::Net::train_batchnorm) gives such a layer a BatchNorm
//! again: with `z = conv(x, Q(w; α))` (no bias),
//!
//! * training: `y = γ·(z − μ_B)/√(σ²_B + ε) + β` with the batch's per-channel mean and
//!   biased variance; the running statistics `μ`, `σ²` follow them (momentum 0.1,
//!   unbiased variance, as PyTorch does), and `γ`, `β` are learned;
//! * evaluation (validation, the stage's result): `y = k·z + (β − k·μ)`, `k = γ/√(σ² + ε)`.
//!
//! **Initialisation keeps the folded function.** With `γ = √(σ² + ε)` and `β = b + μ`,
//! evaluation gives `k = 1` and `y = z + b` whatever `μ`, `σ²` are, so the stage starts
//! from exactly the folded layer; `μ`, `σ²` are then set to `z`'s statistics on training
//! images, which makes training-mode outputs start near it too.
//!
//! **Folding back is exact.** The per-channel symmetric weight quantizer satisfies
//! `Q(k·w; |k|·α) = k·Q(w; α)` for any real `k ≠ 0` (`round` half to even is odd and the
//! clamp `[−n, n]` is symmetric), so [`fold`] writes `w ← k·w`, `α ← |k|·α`,
//! `b ← β − k·μ`, which computes evaluation mode's function with a plain biased layer —
//! the form the driver quantizes. (`k = 0`, a dead channel, folds to zero weights.)

use std::collections::HashMap;

use burn::tensor::Tensor;

use crate::net::{Group, HostParams, Net};
use crate::Result;

/// BatchNorm's `ε`.
pub const EPSILON: f64 = 1e-5;
/// Weight of a batch's statistics in the running ones.
pub const MOMENTUM: f64 = 0.1;
/// Training images whose statistics initialise `μ`, `σ²`.
pub const INIT_IMAGES: usize = 512;

/// Parameter indices of a layer's BatchNorm (its `β` is the layer's bias parameter).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bn {
    pub gamma: usize,
    pub mean: usize,
    pub var: usize,
}

/// One BatchNorm's per-channel batch mean and biased variance in one forward pass
/// (without autodiff), and the number of values per channel they were taken over.
#[derive(Clone, Debug)]
pub struct BatchStats {
    pub layer: usize,
    pub mean: Tensor<1>,
    pub var: Tensor<1>,
    pub count: usize,
}

/// How a forward pass treats the BatchNorms.
#[derive(Debug)]
pub enum Mode {
    /// Running statistics (the folded function).
    Eval,
    /// Batch statistics, recorded for the running ones.
    Train(Vec<BatchStats>),
    /// Running statistics, with the batch statistics recorded (initialisation).
    Observe(Vec<BatchStats>),
}

/// Per-channel mean and biased variance of `z` over every axis but 1, shaped
/// `[1, C, 1, 1]`.
fn moments(z: &Tensor<4>) -> (Tensor<4>, Tensor<4>) {
    let mean = z.clone().mean_dims(&[0, 2, 3]);
    let d = z.clone() - mean.clone();
    let var = (d.clone() * d).mean_dims(&[0, 2, 3]);
    (mean, var)
}

/// The BatchNorm of layer `layer` on its bias-less output `z` (`beta` its `β`).
pub fn apply(
    z: Tensor<4>,
    (layer, bn): (usize, &Bn),
    beta: Tensor<1>,
    p: &[Tensor<1>],
    mode: &mut Mode,
) -> Tensor<4> {
    let [n, c, h, w] = z.dims();
    let shape = [1, c, 1, 1];
    let gamma = p[bn.gamma].clone().reshape(shape);
    let beta = beta.reshape(shape);
    let record = |stats: &mut Vec<BatchStats>, mean: &Tensor<4>, var: &Tensor<4>| {
        stats.push(BatchStats {
            layer,
            mean: mean.clone().reshape([c]).inner(),
            var: var.clone().reshape([c]).inner(),
            count: n * h * w,
        })
    };
    match mode {
        Mode::Train(stats) => {
            let (mean, var) = moments(&z);
            record(stats, &mean, &var);
            (z - mean) / var.add_scalar(EPSILON).sqrt() * gamma + beta
        }
        Mode::Eval | Mode::Observe(_) => {
            if let Mode::Observe(stats) = mode {
                let (mean, var) = moments(&z);
                record(stats, &mean, &var);
            }
            let mean = p[bn.mean].clone().reshape(shape);
            let k = gamma / p[bn.var].clone().reshape(shape).add_scalar(EPSILON).sqrt();
            z * k.clone() + (beta - k * mean)
        }
    }
}

/// Running statistics after one training step's `stats`.
pub fn update_running(p: &mut [Tensor<1>], bns: &[(usize, Bn)], stats: Vec<BatchStats>) {
    for s in stats {
        let Some((_, bn)) = bns.iter().find(|(l, _)| *l == s.layer) else {
            continue;
        };
        let unbiased = s.count as f64 / (s.count.max(2) - 1) as f64;
        p[bn.mean] = p[bn.mean].clone().mul_scalar(1.0 - MOMENTUM) + s.mean.mul_scalar(MOMENTUM);
        p[bn.var] =
            p[bn.var].clone().mul_scalar(1.0 - MOMENTUM) + s.var.mul_scalar(MOMENTUM * unbiased);
    }
}

/// Folds a layer's BatchNorm into its weights, weight scales and bias (see the module
/// docs): `w` has `channels` output channels along `channel_axis` of `shape`.
pub fn fold(
    p: &mut HostParams,
    bn: &Bn,
    (w, s, b): (usize, usize, usize),
    shape: &[usize],
    channel_axis: usize,
) {
    let k: Vec<f64> = p.values[bn.gamma]
        .iter()
        .zip(&p.values[bn.var])
        .map(|(&g, &v)| f64::from(g) / (f64::from(v) + EPSILON).sqrt())
        .collect();
    let inner: usize = shape[channel_axis + 1..].iter().product();
    let channels = k.len();
    for (i, x) in p.values[w].iter_mut().enumerate() {
        let c = (i / inner) % channels;
        *x = (f64::from(*x) * k[c]) as f32;
    }
    for (c, log_alpha) in p.values[s].iter_mut().enumerate() {
        if k[c] != 0.0 {
            *log_alpha = (f64::from(*log_alpha) + k[c].abs().ln()) as f32;
        }
    }
    let mean = p.values[bn.mean].clone();
    for (c, beta) in p.values[b].iter_mut().enumerate() {
        *beta = (f64::from(*beta) - k[c] * f64::from(mean[c])) as f32;
    }
}

impl Net {
    /// Gives every layer a BatchNorm was folded into one again (see the module docs),
    /// its running statistics taken from the batches `images`; returns how many layers
    /// got one. The network's evaluation-mode function does not change.
    pub fn train_batchnorm(&mut self, p: &mut HostParams, images: &[Tensor<4>]) -> Result<usize> {
        let mut added = Vec::new();
        for (li, l) in self.layers.iter_mut().enumerate() {
            let (true, None, Some(b)) = (l.batchnorm, l.bn, l.b) else {
                continue;
            };
            let m = p.values[b].len();
            // γ = 1, μ = 0, σ² = 1 − ε: the identity, until the statistics are known.
            let bn = Bn {
                gamma: p.push(vec![1.0; m], Group::Bias),
                mean: p.push(vec![0.0; m], Group::Stat),
                var: p.push(vec![(1.0 - EPSILON) as f32; m], Group::Stat),
            };
            l.bn = Some(bn);
            added.push((li, bn, b));
        }
        if added.is_empty() {
            return Ok(0);
        }
        // Per layer: Σ n·mean, Σ n·(var + mean²), Σ n over the batches.
        let mut sums: HashMap<usize, (Vec<f64>, Vec<f64>, f64)> = HashMap::new();
        let tensors = self.tensors(p);
        for x in images {
            let mut mode = Mode::Observe(Vec::new());
            self.forward_mode(Some(&tensors), x.clone(), &mut mode)?;
            let Mode::Observe(stats) = mode else {
                continue;
            };
            for s in stats {
                let mean = host(s.mean);
                let var = host(s.var);
                let n = s.count as f64;
                let e = sums
                    .entry(s.layer)
                    .or_insert_with(|| (vec![0.0; mean.len()], vec![0.0; mean.len()], 0.0));
                for c in 0..mean.len().min(e.0.len()) {
                    let m = f64::from(mean[c]);
                    e.0[c] += n * m;
                    e.1[c] += n * (f64::from(var[c]) + m * m);
                }
                e.2 += n;
            }
        }
        for (li, bn, b) in added {
            let Some((s1, s2, n)) = sums.get(&li).filter(|s| s.2 > 0.0) else {
                continue;
            };
            for c in 0..s1.len().min(p.values[b].len()) {
                let mean = s1[c] / n;
                let var = (s2[c] / n - mean * mean).max(0.0);
                p.values[bn.mean][c] = mean as f32;
                p.values[bn.var][c] = var as f32;
                p.values[bn.gamma][c] = (var + EPSILON).sqrt() as f32;
                p.values[b][c] = (f64::from(p.values[b][c]) + mean) as f32;
            }
        }
        Ok(self.layers.iter().filter(|l| l.bn.is_some()).count())
    }

    /// The layers with a BatchNorm, with its parameter indices.
    pub fn batchnorms(&self) -> Vec<(usize, Bn)> {
        self.layers
            .iter()
            .enumerate()
            .filter_map(|(i, l)| l.bn.map(|bn| (i, bn)))
            .collect()
    }

    /// `p` with every BatchNorm folded into its layer (see [`fold`]): the parameters of
    /// the plain (BatchNorm-free) layers that compute the evaluation-mode network.
    pub fn folded(&self, p: &HostParams) -> HostParams {
        let mut q = p.clone();
        for l in &self.layers {
            if let (Some(bn), Some(b)) = (&l.bn, l.b) {
                fold(&mut q, bn, (l.w, l.s, b), &l.shape, l.channel_axis);
            }
        }
        q
    }
}

fn host(t: Tensor<1>) -> Vec<f32> {
    t.into_data()
        .convert::<f32>()
        .try_to_vec::<f32>()
        .unwrap_or_default()
}
