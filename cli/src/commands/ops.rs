//! `fqc ops`: the ONNX op types (default domain) the importer lowers, one per line — the
//! list the conformance generators filter ONNX's node tests by, asked of the importer
//! itself so it cannot drift from what `fqc` accepts.

use anyhow::Result;

use crate::out::outln;

#[derive(Debug, clap::Args)]
pub struct Args {}

pub fn main(_args: Args) -> Result<()> {
    for op in fqc_onnx::supported_ops() {
        outln!("{op}")?;
    }
    Ok(())
}
