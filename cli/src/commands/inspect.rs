//! `fqc inspect MODEL`: print the model as fqc IR text (the format snapshots use).

use std::path::PathBuf;

use anyhow::Result;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Model file (.onnx, .fqir, or a compiled .fqc).
    model: PathBuf,
    #[command(flatten)]
    shapes: crate::model::ShapeArgs,
}

pub fn main(args: Args) -> Result<()> {
    let graph = crate::model::load_with(&args.model, &args.shapes.input_shape)?;
    crate::out::out!("{}", fqc_ir::text::print(&graph))?;
    Ok(())
}
