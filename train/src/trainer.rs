//! [`QatFineTune`]: the built-in quantization-aware fine-tuner behind the `FineTune` hook.
//!
//! At every stage it builds the stage's network ([`Net::stage`]: the float master with
//! learnable weight and activation quantizers, initialised from what the stage
//! quantized), trains it for up to `epochs_per_stage` epochs — cross-entropy on the
//! labels, or the float model's soft outputs with `distill` — with SGD-momentum or Adam
//! under a cosine learning-rate decay, evaluates the validation split after every epoch,
//! keeps the best epoch's parameters (early stop after `patience` epochs without
//! improvement), and writes them back through the handle: latent weights, per-channel
//! weight scales, biases and activation clip ranges. The driver then re-quantizes the
//! stage from them, so the integer graph computes what was trained.

use std::time::{Duration, Instant};

use burn::tensor::activation::{log_softmax, softmax};
use burn::tensor::{Device, Int, Tensor, TensorData};
use fqc_dataset::{Augment, LabelledSet, Rng};
use fqc_ir::{Graph, Tensor as IrTensor, TensorData as IrData};
use fqc_passes::schedule::{FineTune, StageHandle, StageInfo};
use fqc_passes::{PassError, Range, WeightBits};

use crate::batchnorm::{self, Mode};
use crate::config::{OptimizerKind, TrainConfig};
use crate::net::{Group, HostParams, Net};
use crate::{Result, TrainError};

/// What one stage's training did.
#[derive(Clone, Debug, PartialEq)]
pub struct StageReport {
    pub label: String,
    pub index: usize,
    pub count: usize,
    /// Epochs run (early stopping may end a stage before `epochs_per_stage`).
    pub epochs: usize,
    /// Mean training loss of the last epoch run.
    pub train_loss: f64,
    /// Mean training loss of every epoch.
    pub epoch_losses: Vec<f64>,
    /// Validation top-1 of the stage's fake-quant model before training.
    pub val_acc_before: f64,
    /// Validation top-1 after training (the kept epoch).
    pub val_acc: f64,
    /// Layers trained with a BatchNorm (batch statistics) this stage.
    pub batchnorms: usize,
    pub time: Duration,
}

impl std::fmt::Display for StageReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "stage {}/{} {:<6} epochs {}{}  train loss {:.4}  val acc {:.2}% (before {:.2}%)  {:.1} s",
            self.index + 1,
            self.count,
            self.label,
            self.epochs,
            if self.batchnorms > 0 {
                format!("  BN trained in {} layers", self.batchnorms)
            } else {
                String::new()
            },
            self.train_loss,
            100.0 * self.val_acc,
            100.0 * self.val_acc_before,
            self.time.as_secs_f64()
        )
    }
}

/// The built-in QAT hook (see the module docs).
#[derive(Debug)]
pub struct QatFineTune {
    cfg: TrainConfig,
    train: LabelledSet,
    val: LabelledSet,
    device: Device,
    /// The float master as the first stage saw it (the distillation teacher).
    teacher: Option<Graph>,
    /// Whether a stage with ternary weights has been trained (BatchNorm is folded
    /// for good from then on).
    ternary_seen: bool,
    pub reports: Vec<StageReport>,
}

/// Images `idx` of `set` as an f32 NCHW burn tensor, with their labels; augmented with
/// `augment` drawing from `rng` when given.
fn gather(
    set: &LabelledSet,
    idx: &[usize],
    device: &Device,
    augment: Option<(&Augment, &mut Rng)>,
) -> Result<(Tensor<4>, Vec<i64>)> {
    let shape = &set.x.shape;
    let item: usize = shape[1..].iter().product();
    let mut data = Vec::with_capacity(idx.len() * item);
    for &i in idx {
        match &set.x.data {
            IrData::U8(v) => data.extend(v[i * item..(i + 1) * item].iter().map(|&p| f32::from(p))),
            IrData::F32(v) => data.extend_from_slice(&v[i * item..(i + 1) * item]),
            _ => {}
        }
    }
    let dims = [idx.len(), shape[1], shape[2], shape[3]];
    if let Some((aug, rng)) = augment {
        let mut batch = IrTensor {
            shape: dims.to_vec(),
            data: IrData::F32(data),
        };
        aug.apply(&mut batch, rng)
            .map_err(|e| TrainError::Data(format!("augmentation: {e}")))?;
        data = match batch.data {
            IrData::F32(v) => v,
            _ => Vec::new(),
        };
    }
    let t = Tensor::<4>::from_data(TensorData::new(data, dims), device);
    Ok((t, idx.iter().map(|&i| set.y[i]).collect()))
}

/// The first `n` images of `set`.
pub fn first(set: &LabelledSet, n: usize) -> LabelledSet {
    take(set, Some(n))
}

/// `set` split into (train, validation): a `fraction` of the images (at least one, and
/// fewer than all when there are two or more) drawn with `seed`, each part in the
/// set's order.
pub fn split_holdout(set: &LabelledSet, fraction: f64, seed: u64) -> (LabelledSet, LabelledSet) {
    let mut idx: Vec<usize> = (0..set.len()).collect();
    Rng::new(seed ^ 0x5eed).shuffle(&mut idx);
    let nv = ((set.len() as f64 * fraction).round() as usize)
        .clamp(1, set.len().saturating_sub(1).max(1));
    let (v, t) = idx.split_at(nv.min(idx.len()));
    let (mut v, mut t) = (v.to_vec(), t.to_vec());
    v.sort_unstable();
    t.sort_unstable();
    if t.is_empty() {
        t.clone_from(&v);
    }
    (subset(set, &t), subset(set, &v))
}

/// The first `n` images of `set` (all when `n` is `None`).
fn take(set: &LabelledSet, n: Option<usize>) -> LabelledSet {
    match n {
        Some(n) if n < set.len() => subset(set, &(0..n).collect::<Vec<_>>()),
        _ => set.clone(),
    }
}

fn subset(set: &LabelledSet, idx: &[usize]) -> LabelledSet {
    let item: usize = set.x.shape[1..].iter().product();
    let mut shape = set.x.shape.clone();
    shape[0] = idx.len();
    let data = match &set.x.data {
        IrData::U8(v) => IrData::U8(
            idx.iter()
                .flat_map(|&i| v[i * item..(i + 1) * item].iter().copied())
                .collect(),
        ),
        IrData::F32(v) => IrData::F32(
            idx.iter()
                .flat_map(|&i| v[i * item..(i + 1) * item].iter().copied())
                .collect(),
        ),
        other => other.clone(),
    };
    LabelledSet {
        x: IrTensor { shape, data },
        y: idx.iter().map(|&i| set.y[i]).collect(),
    }
}

/// Top-1 accuracy of `logits` against `labels` (count of hits).
fn hits(logits: Tensor<2>, labels: &[i64]) -> usize {
    let pred: Tensor<2, Int> = logits.argmax(1);
    let pred = pred
        .into_data()
        .convert::<i64>()
        .try_to_vec::<i64>()
        .unwrap_or_default();
    pred.iter().zip(labels).filter(|(p, y)| p == y).count()
}

fn one_hot(labels: &[i64], classes: usize, device: &Device) -> Tensor<2> {
    let mut v = vec![0f32; labels.len() * classes];
    for (i, &y) in labels.iter().enumerate() {
        if (y as usize) < classes {
            v[i * classes + y as usize] = 1.0;
        }
    }
    Tensor::from_data(TensorData::new(v, [labels.len(), classes]), device)
}

fn scalar(t: Tensor<1>) -> f64 {
    f64::from(t.into_scalar::<f32>())
}

/// Per-parameter optimizer state.
#[derive(Debug)]
struct Optim {
    kind: OptimizerKind,
    momentum: f64,
    m: Vec<Option<Tensor<1>>>,
    v: Vec<Option<Tensor<1>>>,
    step: i32,
}

impl Optim {
    fn new(cfg: &TrainConfig, n: usize) -> Optim {
        Optim {
            kind: cfg.optimizer,
            momentum: cfg.momentum,
            m: vec![None; n],
            v: vec![None; n],
            step: 0,
        }
    }

    /// One update of parameter `i` with gradient `g` at learning rate `lr` and weight
    /// decay `wd`.
    fn update(&mut self, i: usize, p: Tensor<1>, g: Tensor<1>, lr: f64, wd: f64) -> Tensor<1> {
        match self.kind {
            OptimizerKind::Sgd => {
                let g = if wd > 0.0 {
                    g + p.clone().mul_scalar(wd)
                } else {
                    g
                };
                let m = match self.m[i].take() {
                    Some(m) => m.mul_scalar(self.momentum) + g,
                    None => g,
                };
                self.m[i] = Some(m.clone());
                p - m.mul_scalar(lr)
            }
            OptimizerKind::Adam => {
                let (b1, b2, eps) = (0.9f64, 0.999f64, 1e-8f64);
                let m = match self.m[i].take() {
                    Some(m) => m.mul_scalar(b1) + g.clone().mul_scalar(1.0 - b1),
                    None => g.clone().mul_scalar(1.0 - b1),
                };
                let v = match self.v[i].take() {
                    Some(v) => v.mul_scalar(b2) + g.clone().powi_scalar(2).mul_scalar(1.0 - b2),
                    None => g.powi_scalar(2).mul_scalar(1.0 - b2),
                };
                self.m[i] = Some(m.clone());
                self.v[i] = Some(v.clone());
                let t = self.step.max(1);
                let c1 = 1.0 - b1.powi(t);
                let c2 = 1.0 - b2.powi(t);
                let upd = m.div_scalar(c1) / v.div_scalar(c2).sqrt().add_scalar(eps);
                let p = if wd > 0.0 {
                    p.clone() - p.mul_scalar(lr * wd)
                } else {
                    p
                };
                p - upd.mul_scalar(lr)
            }
        }
    }
}

impl QatFineTune {
    /// A fine-tuner on `train`, validating on `val` (else on a held-out split of
    /// `train`, `cfg.val_fraction`, drawn with the seed).
    pub fn new(
        train: LabelledSet,
        val: Option<LabelledSet>,
        cfg: TrainConfig,
    ) -> Result<QatFineTune> {
        if train.is_empty() {
            return Err(TrainError::Data("the training set is empty".into()));
        }
        if cfg.batch_size == 0 {
            return Err(TrainError::Config(
                "the batch size must be at least 1".into(),
            ));
        }
        let train = take(&train, cfg.max_train_images);
        let (train, val) = match val {
            Some(v) => (train, v),
            None => split_holdout(&train, cfg.val_fraction, cfg.seed),
        };
        let val = take(&val, cfg.max_val_images);
        let device = Device::flex();
        device.seed(cfg.seed);
        Ok(QatFineTune {
            cfg,
            train,
            val,
            device,
            teacher: None,
            ternary_seen: false,
            reports: Vec::new(),
        })
    }

    pub fn config(&self) -> &TrainConfig {
        &self.cfg
    }

    pub fn train_len(&self) -> usize {
        self.train.len()
    }

    pub fn val_len(&self) -> usize {
        self.val.len()
    }

    /// Validation top-1 of `net` with `params` (fake-quant) or without (float).
    pub fn accuracy(&self, net: &Net, params: Option<&[Tensor<1>]>) -> Result<f64> {
        accuracy(net, params, &self.val, self.cfg.batch_size.max(256))
    }

    /// Trains one stage; returns its report and the trained parameters.
    pub fn train_stage(
        &mut self,
        info: &StageInfo,
        handle: &StageHandle<'_>,
    ) -> Result<(StageReport, Net, HostParams)> {
        let start = Instant::now();
        let (mut net, mut host) = Net::stage(handle, &self.device)?;
        // BatchNorm is trained until the first stage with ternary weights.
        self.ternary_seen |= handle
            .layers()
            .iter()
            .any(|l| l.weights == WeightBits::Ternary);
        let batchnorms = if self.cfg.train_batchnorm && !self.ternary_seen {
            let n = batchnorm::INIT_IMAGES.min(self.train.len());
            let idx: Vec<usize> = (0..n).collect();
            let batches = idx
                .chunks(256)
                .map(|c| gather(&self.train, c, &self.device, None).map(|(x, _)| x))
                .collect::<Result<Vec<_>>>()?;
            net.train_batchnorm(&mut host, &batches)?;
            net.batchnorms()
        } else {
            Vec::new()
        };
        let teacher = match (&self.teacher, self.cfg.distill) {
            (Some(g), true) => Some(Net::float(g, &self.device)?),
            _ => None,
        };
        let mut params = net.tensors(&host);
        let before = self.accuracy(&net, Some(&params))?;
        let mut best = (before, params.clone(), 0usize);
        let lr0 = self.cfg.lr_of_stage(info.index);
        let bs = self.cfg.batch_size.min(self.train.len());
        let steps_per_epoch = self.train.len().div_ceil(bs);
        let epochs = self.cfg.epochs_of_stage(info.index);
        let total = (steps_per_epoch * epochs).max(1);
        let mut optim = Optim::new(&self.cfg, params.len());
        let stage_seed = self.cfg.seed.wrapping_add(0x9e37 * (info.index as u64 + 1));
        let mut rng = Rng::new(stage_seed);
        let mut aug_rng = Rng::new(stage_seed ^ 0xa06e_a06e);
        let augment = (!self.cfg.augment.is_identity()).then_some(self.cfg.augment);
        let bar = self.progress_bar(info, total);
        let mut epoch_losses = Vec::new();
        let mut since_best = 0;
        let mut step = 0usize;
        for epoch in 0..epochs {
            let mut idx: Vec<usize> = (0..self.train.len()).collect();
            rng.shuffle(&mut idx);
            let (mut loss_sum, mut seen, mut correct) = (0.0, 0usize, 0usize);
            for chunk in idx.chunks(bs) {
                let lr =
                    lr0 * 0.5 * (1.0 + (std::f64::consts::PI * step as f64 / total as f64).cos());
                let aug = augment.as_ref().map(|a| (a, &mut aug_rng));
                let (x, y) = gather(&self.train, chunk, &self.device, aug)?;
                let leaves: Vec<Tensor<1>> = params
                    .iter()
                    .map(|p| p.clone().autodiff().require_grad())
                    .collect();
                let mut mode = if batchnorms.is_empty() {
                    Mode::Eval
                } else {
                    Mode::Train(Vec::new())
                };
                let logits = net.forward_mode(Some(&leaves), x.clone(), &mut mode)?;
                let classes = logits.dims()[1];
                let logp = log_softmax(logits.clone(), 1);
                let target = match &teacher {
                    Some(t) => {
                        let tl = t.forward(None, x)?;
                        softmax(tl.div_scalar(self.cfg.temperature), 1)
                    }
                    None => one_hot(&y, classes, &self.device),
                };
                let logp = if teacher.is_some() && self.cfg.temperature != 1.0 {
                    log_softmax(logits.clone().div_scalar(self.cfg.temperature), 1)
                } else {
                    logp
                };
                let loss = (logp * target).sum_dim(1).mean().neg();
                let grads = loss.backward();
                optim.step += 1;
                for (i, leaf) in leaves.iter().enumerate() {
                    let Some(g) = leaf.grad(&grads) else { continue };
                    let group = host.groups[i];
                    let (lr_i, wd) = match group {
                        Group::Weight => (lr, self.cfg.weight_decay),
                        Group::Scale => (lr * self.cfg.scale_lr_mult, 0.0),
                        Group::Bias => (lr, 0.0),
                        Group::Stat => continue,
                    };
                    params[i] = optim.update(i, params[i].clone(), g, lr_i, wd);
                }
                if let Mode::Train(stats) = mode {
                    batchnorm::update_running(&mut params, &batchnorms, stats);
                }
                let l = scalar(loss.inner());
                correct += hits(logits.inner(), &y);
                loss_sum += l * chunk.len() as f64;
                seen += chunk.len();
                step += 1;
                if let Some(b) = &bar {
                    b.set_message(format!(
                        "epoch {}/{} loss {:.4} acc {:.1}%",
                        epoch + 1,
                        epochs,
                        loss_sum / seen as f64,
                        100.0 * correct as f64 / seen as f64
                    ));
                    b.inc(1);
                }
                if !l.is_finite() {
                    return Err(TrainError::Diverged(format!(
                        "stage {} ({}): the loss is {l} at epoch {} (lower --lr?)",
                        info.index + 1,
                        info.label,
                        epoch + 1
                    )));
                }
            }
            epoch_losses.push(loss_sum / seen.max(1) as f64);
            let acc = self.accuracy(&net, Some(&params))?;
            if acc > best.0 || best.2 == 0 && epoch == 0 && acc >= best.0 {
                best = (acc, params.clone(), epoch + 1);
                since_best = 0;
            } else {
                since_best += 1;
            }
            if let Some(b) = &bar {
                b.println(format!(
                    "  stage {}/{} {} epoch {}: train loss {:.4}, val acc {:.2}%",
                    info.index + 1,
                    info.count,
                    info.label,
                    epoch + 1,
                    epoch_losses[epoch],
                    100.0 * acc
                ));
            }
            if self.cfg.patience.is_some_and(|p| since_best >= p) {
                break;
            }
        }
        if let Some(b) = bar {
            b.finish_and_clear();
        }
        let epochs = epoch_losses.len();
        let trained = HostParams {
            values: best
                .1
                .into_iter()
                .map(|t| {
                    t.into_data()
                        .convert::<f32>()
                        .try_to_vec::<f32>()
                        .unwrap_or_default()
                })
                .collect(),
            groups: host.groups.clone(),
        };
        let report = StageReport {
            label: info.label.clone(),
            index: info.index,
            count: info.count,
            epochs,
            train_loss: epoch_losses.last().copied().unwrap_or(f64::NAN),
            epoch_losses,
            val_acc_before: before,
            val_acc: best.0,
            batchnorms: batchnorms.len(),
            time: start.elapsed(),
        };
        Ok((report, net, trained))
    }

    fn progress_bar(&self, info: &StageInfo, total: usize) -> Option<indicatif::ProgressBar> {
        use std::io::IsTerminal;
        if !self.cfg.progress || !std::io::stderr().is_terminal() {
            return None;
        }
        let b = indicatif::ProgressBar::new(total as u64);
        let style = indicatif::ProgressStyle::with_template(
            "{prefix} [{elapsed_precise}] {wide_bar} {pos}/{len} {msg}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
        b.set_style(style);
        b.set_prefix(format!(
            "stage {}/{} {}",
            info.index + 1,
            info.count,
            info.label
        ));
        Some(b)
    }
}

/// Top-1 of `net` on `set`, in batches of `bs`.
pub fn accuracy(
    net: &Net,
    params: Option<&[Tensor<1>]>,
    set: &LabelledSet,
    bs: usize,
) -> Result<f64> {
    if set.is_empty() {
        return Ok(0.0);
    }
    let idx: Vec<usize> = (0..set.len()).collect();
    let mut correct = 0;
    for chunk in idx.chunks(bs.max(1)) {
        let (x, y) = gather(set, chunk, net.device(), None)?;
        correct += hits(net.forward(params, x)?, &y);
    }
    Ok(correct as f64 / set.len() as f64)
}

/// Writes trained parameters back through the handle, with any BatchNorm folded into
/// its layer (`batchnorm::fold`).
pub fn write_back(net: &Net, p: &HostParams, handle: &mut StageHandle<'_>) -> Result<()> {
    let p = &net.folded(p);
    for l in &net.layers {
        let w = IrTensor::f32(l.shape.clone(), p.values[l.w].clone()).ok_or_else(|| {
            TrainError::Unsupported(format!("layer `{}`: bad weight shape", l.name))
        })?;
        handle.set_latent(&l.name, w)?;
        let scales: Vec<f32> = p.values[l.s].iter().map(|s| s.exp()).collect();
        handle.set_weight_scales(&l.name, scales)?;
        if let Some(b) = l.b {
            handle.set_bias(&l.name, p.values[b].clone())?;
        }
    }
    for a in &net.acts {
        let amax = p.values[a.s][0].exp();
        let lo = if a.signed { -amax } else { 0.0 };
        handle.set_range(a.value, Range { lo, hi: amax })?;
    }
    Ok(())
}

impl FineTune for QatFineTune {
    fn after_stage(
        &mut self,
        stage: &StageInfo,
        handle: &mut StageHandle<'_>,
    ) -> fqc_passes::Result<()> {
        if self.teacher.is_none() {
            self.teacher = Some(handle.float_graph().clone());
        }
        let err = |e: TrainError| {
            PassError::Usage(format!(
                "fine-tuning stage {} ({}): {e}",
                stage.index + 1,
                stage.label
            ))
        };
        let (report, net, params) = self.train_stage(stage, handle).map_err(err)?;
        write_back(&net, &params, handle).map_err(err)?;
        if self.cfg.print_stages {
            // A closed or full stdout must not end hours of training: the line is
            // progress information, and the caller reports its own write failures.
            use std::io::Write as _;
            let _ = writeln!(std::io::stdout().lock(), "{report}");
        }
        self.reports.push(report);
        Ok(())
    }
}
