//! Loading a model file into fqc IR, whatever its format: ONNX (`.onnx`), fqc's IR text
//! (`.fqir`), or a compiled artifact (`.fqc`). Every later command works on the verified
//! `Graph` this returns; for a `.fqc` that is the integer-only graph, which the
//! interpreter runs like any other.

use std::path::Path;

use anyhow::{Context, Result};
use fqc_ir::Graph;

/// A model file's format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Onnx,
    IrText,
    Artifact,
}

/// The format of `path`: by extension, else by its first bytes (the artifact's magic,
/// `graph` for IR text, ONNX otherwise).
pub fn format_of(path: &Path) -> Result<Format> {
    Ok(match path.extension().and_then(|e| e.to_str()) {
        Some("fqir") => Format::IrText,
        Some("onnx") => Format::Onnx,
        Some("fqc") => Format::Artifact,
        _ => {
            let bytes =
                std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
            if bytes.starts_with(&fqc_runtime::artifact::MAGIC) {
                Format::Artifact
            } else if bytes.starts_with(b"graph") {
                Format::IrText
            } else {
                Format::Onnx
            }
        }
    })
}

/// Reads and imports `path` (see [`format_of`]).
pub fn load(path: &Path) -> Result<Graph> {
    let shown = path.display();
    match format_of(path)? {
        Format::IrText => {
            let text =
                std::fs::read_to_string(path).with_context(|| format!("cannot read {shown}"))?;
            fqc_ir::text::parse(&text).with_context(|| format!("{shown}"))
        }
        Format::Onnx => fqc_onnx::import_file(path).with_context(|| format!("{shown}")),
        Format::Artifact => {
            fqc_runtime::artifact::load_file(path).with_context(|| format!("{shown}"))
        }
    }
}
