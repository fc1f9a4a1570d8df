//! fqc's rewrite passes, from an imported float graph to an integer-only one.
//!
//! The default pipeline (see [`pipeline`]): `fold-batchnorm` → `calibrate` →
//! `quantize-weights` → `quantize-activations` → `fuse-activation` → `integerize` →
//! `const-fold` → `dce`. Every pass is verified by the [`PassManager`]. Shared state
//! (configuration, calibration ranges, latent weights) is in [`PassContext`].

pub mod calibrate;
pub mod const_fold;
pub mod context;
pub mod dce;
mod edit;
pub mod finite;
pub mod fold_batchnorm;
pub mod fuse_activation;
pub mod integer_report;
pub mod integerize;
mod integerize_acc;
mod integerize_float;
mod integerize_ints;
mod integerize_layer;
mod integerize_quant;
mod integerize_table;
pub mod manager;
pub mod pipeline;
pub mod quantize_activations;
pub mod quantize_weights;
mod regions;
pub mod schedule;
pub mod streamline;
pub mod thresholds;

pub use context::{CalibMethod, LayerBits, PassContext, QuantConfig, Range, WeightBits};
pub use integer_report::{integer_only_report, is_integer_only, BoundaryReport};
pub use integerize::{integerize, Integerize};
pub use manager::{Pass, PassManager, PassRecord, PipelineOptions};
pub use pipeline::pipeline;

/// Errors from running passes.
#[derive(Debug, thiserror::Error)]
pub enum PassError {
    /// A pass cannot handle the graph (names the node and op).
    #[error("{pass}: node `{node}` ({op}): {msg}")]
    Unsupported {
        pass: &'static str,
        node: String,
        op: &'static str,
        msg: String,
    },
    /// A pass left the graph invalid: a bug in that pass.
    #[error("pass {pass} produced an invalid graph: {msg}")]
    Broken { pass: &'static str, msg: String },
    /// The pipeline was asked for something that does not exist.
    #[error("{0}")]
    Usage(String),
    /// Running the interpreter (calibration, checks) failed.
    #[error("{pass}: {source}")]
    Interp {
        pass: &'static str,
        source: fqc_ir::IrError,
    },
}

pub type Result<T, E = PassError> = std::result::Result<T, E>;
