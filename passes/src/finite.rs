//! What a compile refuses before it starts: non-finite numbers in the model or in the
//! calibration data.
//!
//! A NaN weight propagates through BatchNorm folding and the exact threshold
//! arithmetic as a comparison that is always false, so a layer with one NaN weight
//! compiles to an integer network that answers one class; an infinite calibration value
//! makes a range (and so a scale) infinite or, for all-NaN data, the minimum positive
//! scale. Neither is a model the user meant. So every f32 constant of the float graph
//! (weights, biases, BatchNorm parameters, normalisation constants) and every
//! calibration image must be finite, and the error names the first element that is not:
//! the constant and the node that uses it, or the calibration image.

use fqc_ir::{Graph, Tensor, ValueDef};

use crate::{PassError, Result};

/// Refuses an f32 constant of `g` with a NaN or infinite element, naming the constant,
/// a node that uses it, and the element's index.
pub fn check_constants(g: &Graph) -> Result<()> {
    for (v, info) in g.values() {
        let ValueDef::Const(_) = info.def else {
            continue;
        };
        let Some(t) = g.const_tensor(v) else { continue };
        let Some((i, x)) = t.first_non_finite() else {
            continue;
        };
        let name = info
            .name
            .clone()
            .unwrap_or_else(|| format!("%{}", v.index()));
        let user = g
            .nodes()
            .find(|(_, n)| n.inputs.contains(&v))
            .map(|(_, n)| format!(" (an operand of node `{}`, {})", n.name, n.op.name()))
            .unwrap_or_default();
        return Err(PassError::Usage(format!(
            "constant `{name}`{user}: element {:?} is {x}; the model's weights and \
             parameters must be finite numbers",
            t.index_of(i)
        )));
    }
    Ok(())
}

/// Refuses calibration batches with a NaN or infinite value, naming the first image
/// (counted over all batches, from 0) and the element's index within it.
pub fn check_calibration(batches: &[Tensor]) -> Result<()> {
    let mut before = 0usize;
    for b in batches {
        if let Some((i, x)) = b.first_non_finite() {
            let idx = b.index_of(i);
            return Err(PassError::Usage(format!(
                "calibration image {} holds {x} at {:?}; calibration data must be finite \
                 numbers",
                before + idx.first().copied().unwrap_or(0),
                idx.get(1..).unwrap_or(&[])
            )));
        }
        before += b.shape.first().copied().unwrap_or(1);
    }
    Ok(())
}
