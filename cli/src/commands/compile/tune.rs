//! The fine-tuning side of `fqc compile`: the `--train` / `--finetune-cmd` flags and
//! [`finetune_hook`], the one place the hook of a compile is chosen — the built-in QAT
//! trainer (`fqc_train::QatFineTune`) with `--train`, the user's command with
//! `--finetune-cmd`, else none (post-training quantization). The hook is a [`Hook`]
//! value rather than a trait object so that, after the compile, the trainer's per-stage
//! reports can be read back for the summary.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use fqc_dataset::{Augment, LabelledSet};
use fqc_passes::schedule::{FineTune, NoFineTune};
use fqc_train::{QatFineTune, StageReport};

use crate::out::outln;

/// The `--train` options of `fqc compile`.
#[derive(Debug, clap::Args)]
pub(super) struct TrainArgs {
    /// Quantization-aware fine-tuning on this labelled set (.npz) at every stage.
    #[arg(long, value_name = "SET")]
    pub train: Option<PathBuf>,
    /// Split of --train to train on.
    #[arg(long, default_value = "train", requires = "train")]
    pub train_split: String,
    /// Validation set for fine-tuning (default: a held-out 10% of --train).
    #[arg(long, value_name = "SET", requires = "train")]
    val: Option<PathBuf>,
    /// Split of --val.
    #[arg(long, default_value = "test", requires = "val")]
    val_split: String,
    /// Training epochs per stage (at most; see --patience): one number for every stage,
    /// or one per stage, e.g. `1,1,2,6` (the last applies to later stages).
    #[arg(
        long,
        requires = "train",
        value_delimiter = ',',
        value_name = "N[,N...]"
    )]
    epochs_per_stage: Vec<usize>,
    /// Only the final stage (quantize straight to the target bits, then fine-tune).
    #[arg(long, requires = "train")]
    pub one_shot: bool,
    /// Train against the float model's outputs instead of the labels.
    #[arg(long, requires = "train")]
    distill: bool,
    /// Train every stage on the folded layers: by default the BatchNorms the model had
    /// are trained again (batch statistics) until the first stage with ternary
    /// weights, and folded back after each stage.
    #[arg(long, requires = "train")]
    no_train_bn: bool,
    /// Peak learning rate (cosine decay per stage; default 5e-4 for adam, 0.01 for sgd):
    /// one for every stage, or one per stage (the last applies to later stages).
    #[arg(
        long,
        requires = "train",
        value_delimiter = ',',
        value_name = "LR[,LR...]"
    )]
    lr: Vec<f64>,
    /// Training batch size, 1..=65536.
    #[arg(long, requires = "train", value_parser = clap::value_parser!(u64).range(1..=65536))]
    batch_size: Option<u64>,
    /// Optimizer: `adam` or `sgd` (momentum 0.9).
    #[arg(long, requires = "train")]
    optimizer: Option<String>,
    /// Weight decay of the latent weights.
    #[arg(long, requires = "train")]
    weight_decay: Option<f64>,
    /// Augmentation: random crops of the training images zero-padded by N pixels
    /// (0..=64).
    #[arg(long, default_value_t = 0, requires = "train", value_name = "N",
          value_parser = clap::value_parser!(u64).range(0..=64))]
    crop_pad: u64,
    /// Augmentation: flip half of the training images horizontally.
    #[arg(long, requires = "train")]
    hflip: bool,
    /// Seed of the shuffling, the augmentation and the validation hold-out.
    #[arg(long, default_value_t = 0, requires = "train")]
    seed: u64,
    /// Fine-tune every stage with an external command instead, e.g.
    /// `python3 tune.py {in} {out}`: `{in}` is the stage as QDQ ONNX, the command writes
    /// the same model with new weights/scales to `{out}`.
    #[arg(long, value_name = "CMD", conflicts_with = "train")]
    pub finetune_cmd: Option<String>,
    /// Folder for --finetune-cmd's stage files (default: OUTPUT.finetune).
    #[arg(long, value_name = "DIR", requires = "finetune_cmd")]
    finetune_dir: Option<PathBuf>,
    /// Use only the first N training images (quick runs).
    #[arg(long, requires = "train")]
    train_images: Option<usize>,
    /// Early stop: end a stage after N epochs without a better validation accuracy
    /// (0: never).
    #[arg(long, requires = "train")]
    patience: Option<usize>,
}

impl TrainArgs {
    /// The data sets the fine-tuning reads, by flag.
    pub fn inputs(&self) -> [(&'static str, &Option<PathBuf>); 2] {
        [("--train", &self.train), ("--val", &self.val)]
    }

    /// The files `--finetune-cmd` writes in its folder, for stages labelled `labels`.
    pub fn stage_files(&self, output: &Path, labels: &[String]) -> Result<Vec<PathBuf>> {
        if self.finetune_cmd.is_none() {
            return Ok(Vec::new());
        }
        let dir = self.finetune_dir(output);
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        Ok(labels
            .iter()
            .enumerate()
            .flat_map(|(i, l)| {
                let (a, b) = fqc_train::external::stage_paths_in(&dir, i, l);
                [a, b]
            })
            .collect())
    }

    /// `--finetune-dir`, or `OUTPUT.finetune`.
    fn finetune_dir(&self, output: &Path) -> PathBuf {
        self.finetune_dir.clone().unwrap_or_else(|| {
            let mut d = output.to_path_buf().into_os_string();
            d.push(".finetune");
            PathBuf::from(d)
        })
    }
}

/// The fine-tuning hook of a compile.
#[derive(Debug)]
pub(super) enum Hook {
    None(NoFineTune),
    Trainer(Box<QatFineTune>),
    External(Box<fqc_train::external::ExternalCommand>),
}

impl Hook {
    pub fn as_dyn(&mut self) -> &mut dyn FineTune {
        match self {
            Hook::None(h) => h,
            Hook::Trainer(h) => h.as_mut(),
            Hook::External(h) => h.as_mut(),
        }
    }

    /// The built-in trainer's per-stage reports (empty for the other hooks).
    pub fn stage_reports(&self) -> &[StageReport] {
        match self {
            Hook::Trainer(h) => &h.reports,
            _ => &[],
        }
    }
}

/// The hook `args` ask for (see the module docs); with the trainer, also the validation
/// set it uses (for the integer-only accuracy after the compile). `output` names the
/// default folder of `--finetune-cmd`'s stage files; `classes` is the model's output
/// width, which every training and validation label must be below.
pub(super) fn finetune_hook(
    args: &TrainArgs,
    output: &Path,
    classes: Option<usize>,
) -> Result<(Hook, Option<LabelledSet>)> {
    if let Some(cmd) = &args.finetune_cmd {
        let dir = args.finetune_dir(output);
        let hook = fqc_train::external::ExternalCommand::new(cmd.clone(), dir)?;
        return Ok((Hook::External(Box::new(hook)), None));
    }
    let Some(train_path) = &args.train else {
        return Ok((Hook::None(NoFineTune), None));
    };
    let cfg = train_config(args)?;
    let train = labelled(train_path, &args.train_split, classes)?;
    let train = match args.train_images {
        Some(n) if n < train.len() => fqc_train::trainer::first(&train, n),
        _ => train,
    };
    let (train, val) = match &args.val {
        Some(p) => (train, labelled(p, &args.val_split, classes)?),
        None => fqc_train::trainer::split_holdout(&train, cfg.val_fraction, cfg.seed),
    };
    let ntrain = train.len();
    let list = |v: &[String]| v.join(",");
    let epochs: Vec<String> = cfg.epochs_per_stage.iter().map(|e| e.to_string()).collect();
    let lrs: Vec<String> = if cfg.lr.is_empty() {
        vec![cfg.lr_of_stage(0).to_string()]
    } else {
        cfg.lr.iter().map(|l| l.to_string()).collect()
    };
    let aug = &cfg.augment;
    outln!(
        "fine-tuning: {ntrain} training / {} validation images, epochs per stage {}, batch {}, {} lr {}{}{}{}",
        val.len(),
        list(&epochs),
        cfg.batch_size,
        match cfg.optimizer {
            fqc_train::OptimizerKind::Adam => "adam",
            fqc_train::OptimizerKind::Sgd => "sgd",
        },
        list(&lrs),
        if cfg.distill { ", distilling from the float model" } else { "" },
        if cfg.train_batchnorm { "" } else { ", BatchNorm folded from the start" },
        if aug.is_identity() {
            String::new()
        } else {
            format!(", augmented (crop pad {}, hflip {})", aug.crop_pad, aug.hflip)
        }
    )?;
    let hook = QatFineTune::new(train, Some(val.clone()), cfg)?;
    Ok((Hook::Trainer(Box::new(hook)), Some(val)))
}

/// Most training epochs one stage may ask for.
const MAX_EPOCHS: usize = 100_000;

/// Split `split` of the labelled set at `path`, with finite images and labels that are
/// classes of the model.
fn labelled(path: &Path, split: &str, classes: Option<usize>) -> Result<LabelledSet> {
    let set = crate::commands::eval::labelled_set(path, split)?;
    if let Some(c) = classes {
        set.check_labels(c)
            .with_context(|| format!("{} (split `{split}`)", path.display()))?;
    }
    Ok(set)
}

/// The trainer's settings: the defaults with what the flags change.
fn train_config(args: &TrainArgs) -> Result<fqc_train::TrainConfig> {
    let mut cfg = fqc_train::TrainConfig::default();
    if let Some(o) = &args.optimizer {
        cfg.optimizer = fqc_train::OptimizerKind::parse(o)
            .with_context(|| format!("--optimizer `{o}`: expected adam or sgd"))?;
    }
    if !args.epochs_per_stage.is_empty() {
        cfg.epochs_per_stage.clone_from(&args.epochs_per_stage);
    }
    if let Some(b) = args.batch_size {
        cfg.batch_size = b as usize;
    }
    if let Some(e) = args.epochs_per_stage.iter().find(|&&e| e > MAX_EPOCHS) {
        bail!("--epochs-per-stage {e}: at most {MAX_EPOCHS} epochs a stage");
    }
    if args.lr.iter().any(|lr| !(lr.is_finite() && *lr > 0.0)) {
        bail!("--lr must be positive");
    }
    cfg.lr.clone_from(&args.lr);
    if let Some(wd) = args.weight_decay {
        cfg.weight_decay = wd;
    }
    if let Some(p) = args.patience {
        cfg.patience = (p > 0).then_some(p);
    }
    if args
        .weight_decay
        .is_some_and(|wd| !(wd.is_finite() && wd >= 0.0))
    {
        bail!("--weight-decay must be a non-negative number");
    }
    cfg.augment = Augment {
        crop_pad: args.crop_pad as usize,
        hflip: args.hflip,
    };
    cfg.seed = args.seed;
    cfg.distill = args.distill;
    cfg.train_batchnorm = !args.no_train_bn;
    cfg.max_train_images = args.train_images;
    Ok(cfg)
}
