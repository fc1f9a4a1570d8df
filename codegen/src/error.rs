//! The codegen crate's error type.
//!
//! Every failure that depends on the graph names the node and its op, so a user can see
//! which layer the JIT refused; nothing here is ever turned into a silently wrong result.

/// Errors from compiling or running a graph with the JIT.
#[derive(Debug, thiserror::Error)]
pub enum CodegenError {
    /// The graph uses an op, operand type or shape the JIT does not lower (the
    /// interpreter still runs it).
    #[error("node `{node}` ({op}): not supported by the JIT: {msg}")]
    Unsupported {
        node: String,
        op: &'static str,
        msg: String,
    },
    /// The graph is malformed (missing constant data, inconsistent types).
    #[error("invalid graph: {0}")]
    Invalid(String),
    /// Inputs given to [`CompiledGraph::run`](crate::CompiledGraph::run) do not fit.
    #[error("bad input: {0}")]
    Input(String),
    /// A step run by the interpreter's kernel failed (e.g. an i32 overflow it checks).
    #[error("{0}")]
    Run(String),
    /// Cranelift rejected the generated code or the host (an internal error).
    #[error("cranelift: {0}")]
    Cranelift(String),
}

/// Result alias of this crate.
pub type Result<T, E = CodegenError> = std::result::Result<T, E>;
