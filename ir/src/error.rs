//! The IR crate's error type: every failure names where it happened (node, line).

/// Errors from building, verifying, parsing or interpreting IR.
#[derive(Debug, thiserror::Error)]
pub enum IrError {
    /// A node's operands or attributes do not type-check.
    #[error("node `{node}` ({op}): {msg}")]
    Type {
        node: String,
        op: &'static str,
        msg: String,
    },
    /// A structural invariant of the graph is broken.
    #[error("invalid graph: {0}")]
    Invalid(String),
    /// The text format could not be parsed.
    #[error("line {line}: {msg}")]
    Parse { line: usize, msg: String },
    /// The interpreter was given inputs that do not fit the graph.
    #[error("bad input: {0}")]
    Input(String),
    /// The interpreter cannot evaluate a node (e.g. a constant whose data was elided).
    #[error("cannot evaluate node `{node}` ({op}): {msg}")]
    Eval {
        node: String,
        op: &'static str,
        msg: String,
    },
}

pub type Result<T, E = IrError> = std::result::Result<T, E>;
