//! The runtime's error type: one variant per way loading or running a model can fail,
//! each with a message that says what was expected.

use crate::artifact::ArtifactError;

/// Errors from loading or running a model.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// The `.fqc` artifact cannot be read or is not valid (corrupt, truncated, newer, …).
    #[error(transparent)]
    Artifact(#[from] ArtifactError),
    /// The JIT refused the graph, or an internal run error.
    #[error(transparent)]
    Codegen(#[from] fqc_codegen::CodegenError),
    /// The model is valid but not runnable by a session (e.g. several inputs).
    #[error("unsupported model: {0}")]
    Model(String),
    /// The input tensor has the wrong element type or shape.
    #[error("bad input: {0}")]
    Input(String),
}

/// Result alias of this crate.
pub type Result<T, E = RuntimeError> = std::result::Result<T, E>;
