//! One module per subcommand; each has clap `Args` and a `main`. Shared here: reading an
//! input tensor the way every command reads one.

pub mod bench;
pub mod compile;
pub mod eval;
pub mod inspect;
pub mod ops;
pub mod run;

use std::path::Path;

use anyhow::{bail, Context, Result};
use fqc_ir::Tensor;

/// Reads a model input from a `.npy` (float32, or uint8 pixels cast to float32 as the
/// input convention says), refusing NaN and infinite values.
pub fn read_input(path: &Path) -> Result<Tensor> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let t = fqc_dataset::npy::read(&bytes)
        .and_then(fqc_dataset::to_model_input)
        .with_context(|| format!("{}", path.display()))?;
    require_finite(&t, &path.display().to_string())?;
    Ok(t)
}

/// Refuses a tensor with a NaN or infinite element, naming the first one (`what` says
/// where the tensor came from). The quantized model would clamp such a value to a level
/// while the float model would carry it through as NaN: neither is an answer.
pub fn require_finite(t: &Tensor, what: &str) -> Result<()> {
    if let Some((i, v)) = t.first_non_finite() {
        bail!(
            "{what}: element {:?} is {v}; inputs must be finite numbers",
            t.index_of(i)
        );
    }
    Ok(())
}
