//! Loading a model file into fqc IR, whatever its format: ONNX (`.onnx`) or fqc's IR
//! text (`.fqir`). Every later command works on the verified `Graph` this returns.

use std::path::Path;

use anyhow::{Context, Result};
use fqc_ir::Graph;

/// Reads and imports `path`, choosing the format by extension (IR text when the file
/// starts with `graph`, ONNX otherwise).
pub fn load(path: &Path) -> Result<Graph> {
    let shown = path.display();
    let is_text = match path.extension().and_then(|e| e.to_str()) {
        Some("fqir") => true,
        Some("onnx") => false,
        _ => std::fs::read(path)
            .with_context(|| format!("cannot read {shown}"))?
            .starts_with(b"graph"),
    };
    if is_text {
        let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {shown}"))?;
        fqc_ir::text::parse(&text).with_context(|| format!("{shown}"))
    } else {
        fqc_onnx::import_file(path).with_context(|| format!("{shown}"))
    }
}
