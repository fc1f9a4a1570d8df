//! fqc-train: fine-tuning hooks for the gradual schedule (`fqc_passes::schedule`).
//!
//! [`QatFineTune`] is the built-in quantization-aware trainer (METHOD.md): at every
//! stage it trains the stage's fake-quant network — the IR float master (BatchNorm
//! folded) interpreted on burn tensors ([`net`]), with the METHOD.md quantizer made
//! learnable ([`quant`]: learned log-scale per tensor for activations and per output
//! channel for weights, straight-through round, LSQ gradients to the scales) — and writes
//! latent weights, weight scales, biases and activation ranges back through the
//! `StageHandle`, so the driver's integer graph computes what was trained. Until the
//! first stage with ternary weights, the layers the model had BatchNorms after train
//! with a BatchNorm again (batch statistics), folded back exactly after each stage
//! ([`batchnorm`]); the ternary stages train the folded form.
//!
//! It runs on burn's pure-Rust `flex` CPU backend with `autodiff`; a run is deterministic
//! given [`TrainConfig::seed`].

pub mod batchnorm;
pub mod config;
pub mod external;
pub mod net;
pub mod qdq_export;
pub mod quant;
pub mod trainer;

pub use config::{OptimizerKind, TrainConfig};
pub use net::Net;
pub use trainer::{accuracy, write_back, QatFineTune, StageReport};

/// Errors of the trainer.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// The graph uses something the trainer cannot run (names the node).
    #[error("{0}")]
    Unsupported(String),
    #[error("{0}")]
    Data(String),
    #[error("{0}")]
    Config(String),
    /// The loss became NaN or infinite.
    #[error("{0}")]
    Diverged(String),
    #[error(transparent)]
    Pass(#[from] fqc_passes::PassError),
    #[error(transparent)]
    Dataset(#[from] fqc_dataset::DataError),
}

pub type Result<T, E = TrainError> = std::result::Result<T, E>;
