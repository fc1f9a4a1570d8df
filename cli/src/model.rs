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
    load_with(path, &[])
}

/// [`load`] with `--input-shape`s for an ONNX model's symbolic input dims (see
/// `fqc_onnx::shapes`); other formats have static shapes and refuse them.
pub fn load_with(path: &Path, shapes: &[fqc_onnx::InputShape]) -> Result<Graph> {
    let shown = path.display();
    let format = format_of(path)?;
    if !shapes.is_empty() && format != Format::Onnx {
        anyhow::bail!(
            "--input-shape applies to ONNX models; {shown} has the static shapes it was built with"
        );
    }
    match format {
        Format::IrText => {
            let text =
                std::fs::read_to_string(path).with_context(|| format!("cannot read {shown}"))?;
            fqc_ir::text::parse(&text).with_context(|| format!("{shown}"))
        }
        Format::Onnx => {
            fqc_onnx::import_file_with(path, shapes).with_context(|| format!("{shown}"))
        }
        Format::Artifact => {
            fqc_runtime::artifact::load_file(path).with_context(|| format!("{shown}"))
        }
    }
}

/// The `--input-shape` flag of every command that reads ONNX.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ShapeArgs {
    /// Static shape for a model input the ONNX file leaves symbolic or -1, e.g.
    /// `x=Nx3x48x192` (`N`, in dim 0 only, keeps the batch free; every other dim
    /// becomes fixed). NAME may be left out for a one-input model; repeat the flag for
    /// several inputs.
    #[arg(long = "input-shape", value_name = "[NAME=]DIMS")]
    pub input_shape: Vec<fqc_onnx::InputShape>,
}
