//! The importer's error type. Every message is one line; a failure inside a node names
//! the node, its op type, domain and opset, e.g.
//! ``node `/conv1/Conv` (Conv, ai.onnx opset 13): unsupported attribute `foo` ``.

use std::path::PathBuf;

/// Errors from reading and lowering an ONNX model.
#[derive(Debug, thiserror::Error)]
pub enum OnnxError {
    /// A node could not be lowered (unsupported op, attribute, value or type).
    #[error("node `{node}` ({op_type}, {domain} opset {opset}): {msg}")]
    Node {
        node: String,
        op_type: String,
        /// The op's domain as written for people (`ai.onnx` for the default domain).
        domain: String,
        opset: i64,
        msg: String,
    },
    /// The bytes are not a protobuf-encoded ONNX model or tensor.
    #[error("{0}")]
    Decode(String),
    /// The model is well-formed protobuf but not a model fqc can import.
    #[error("invalid model: {0}")]
    Model(String),
    /// A tensor (initializer, attribute or `.pb` file) is malformed or too large.
    #[error("tensor `{name}`: {msg}")]
    Tensor { name: String, msg: String },
    /// A tensor's external data is refused or unreadable.
    #[error("external data of tensor `{name}`: {msg}")]
    ExternalData { name: String, msg: String },
    /// Reading the model file failed.
    #[error("cannot read `{}`: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// The importer's result type.
pub type Result<T, E = OnnxError> = std::result::Result<T, E>;

/// The ONNX default domain spelled for messages.
pub(crate) fn domain_name(domain: &str) -> &str {
    if domain.is_empty() {
        "ai.onnx"
    } else {
        domain
    }
}

/// `s` with control characters (newlines from hostile names, …) escaped, so every
/// message stays on one line.
pub(crate) fn one_line(s: &str) -> String {
    if !s.chars().any(char::is_control) {
        return s.to_string();
    }
    s.chars()
        .flat_map(|c| {
            let esc: Vec<char> = if c.is_control() {
                c.escape_default().collect()
            } else {
                vec![c]
            };
            esc
        })
        .collect()
}
