//! Training settings of the built-in fine-tuner.

use fqc_dataset::Augment;

/// Which optimizer updates the parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OptimizerKind {
    /// SGD with momentum (no dampening, Nesterov off), L2 weight decay on the weights.
    Sgd,
    /// Adam with decoupled weight decay on the weights (AdamW).
    Adam,
}

impl OptimizerKind {
    pub fn parse(s: &str) -> Option<OptimizerKind> {
        match s {
            "sgd" => Some(OptimizerKind::Sgd),
            "adam" | "adamw" => Some(OptimizerKind::Adam),
            _ => None,
        }
    }

    /// The default learning rate of this optimizer.
    pub fn default_lr(self) -> f64 {
        match self {
            OptimizerKind::Sgd => 0.01,
            OptimizerKind::Adam => 5e-4,
        }
    }
}

/// Settings of [`crate::QatFineTune`]; [`TrainConfig::default`] works for the bundled
/// MNIST/Fashion-MNIST CNNs.
#[derive(Clone, Debug, PartialEq)]
pub struct TrainConfig {
    /// Epochs of each schedule stage, in stage order; the last entry applies to every
    /// later stage (at most; early stopping may end a stage sooner).
    pub epochs_per_stage: Vec<usize>,
    pub batch_size: usize,
    /// Peak learning rate of each stage (cosine decay to 0 over the stage), in stage
    /// order; the last entry applies to every later stage; empty: the optimizer's
    /// default.
    pub lr: Vec<f64>,
    pub optimizer: OptimizerKind,
    /// SGD momentum (dampening 0).
    pub momentum: f64,
    /// Weight decay of the latent weights (not of scales or biases).
    pub weight_decay: f64,
    /// Learning-rate multiplier of the quantizer scales (`log α`, `log amax`).
    pub scale_lr_mult: f64,
    /// Seed of the shuffling (and of burn's device RNG): a run is deterministic.
    pub seed: u64,
    /// Train the BatchNorms folded into Conv/Gemm layers again (batch statistics,
    /// learned `γ`, `β`) in the stages before the first one with ternary weights,
    /// folding them back at the end of each (`crate::batchnorm`).
    pub train_batchnorm: bool,
    /// Train against the float model's soft outputs instead of the labels.
    pub distill: bool,
    /// Distillation temperature.
    pub temperature: f64,
    /// Stop a stage after this many epochs without a better validation accuracy
    /// (`None`: run every epoch); the best epoch's parameters are kept either way.
    pub patience: Option<usize>,
    /// Fraction of the training set held out for validation when no validation set is
    /// given.
    pub val_fraction: f64,
    /// Use at most this many training images (quick runs).
    pub max_train_images: Option<usize>,
    /// Use at most this many validation images.
    pub max_val_images: Option<usize>,
    /// Training-time augmentation (random crop with padding, horizontal flip); the
    /// identity by default.
    pub augment: Augment,
    /// Draw a progress bar (on stderr, only when it is a terminal).
    pub progress: bool,
    /// Print one line per stage on stdout.
    pub print_stages: bool,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            epochs_per_stage: vec![2],
            batch_size: 64,
            lr: Vec::new(),
            optimizer: OptimizerKind::Adam,
            momentum: 0.9,
            weight_decay: 5e-5,
            scale_lr_mult: 1.0,
            seed: 0,
            train_batchnorm: true,
            distill: false,
            temperature: 1.0,
            patience: Some(2),
            val_fraction: 0.1,
            max_train_images: None,
            max_val_images: None,
            augment: Augment::default(),
            progress: true,
            print_stages: true,
        }
    }
}

impl TrainConfig {
    /// Peak learning rate of stage `index` (see [`TrainConfig::lr`]).
    pub fn lr_of_stage(&self, index: usize) -> f64 {
        self.lr
            .get(index)
            .or(self.lr.last())
            .copied()
            .unwrap_or_else(|| self.optimizer.default_lr())
    }

    /// Epochs of stage `index` (see [`TrainConfig::epochs_per_stage`]; 0 when empty).
    pub fn epochs_of_stage(&self, index: usize) -> usize {
        self.epochs_per_stage
            .get(index)
            .or(self.epochs_per_stage.last())
            .copied()
            .unwrap_or(0)
    }
}
