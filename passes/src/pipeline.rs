//! The default pipeline: from an imported float graph to the fake-quant graph, then to
//! the integer-only graph, then cleanup.
//!
//! Order matters and each step's soundness relies on the previous ones: BN is folded
//! first so calibration observes (and weights are quantized in) the folded form;
//! calibration must see the float graph before any quantizer is inserted; weights and
//! activations are then quantized independently; relu/clip fusion needs the activation
//! quantizers in place; `integerize` turns the fake-quant graph into integer ops; and
//! `const-fold` + `dce` clean up, `dce` last because it renumbers values.

use crate::calibrate::Calibrate;
use crate::const_fold::ConstFold;
use crate::dce::Dce;
use crate::fold_batchnorm::FoldBatchNorm;
use crate::fuse_activation::FuseActivation;
use crate::integerize::Integerize;
use crate::quantize_activations::QuantizeActivations;
use crate::quantize_weights::QuantizeWeights;
use crate::{Pass, PassManager};

/// `fold-batchnorm` → `calibrate` → `quantize-weights` → `quantize-activations` →
/// `fuse-activation` → `integerize` → `const-fold` → `dce`.
pub fn pipeline() -> PassManager {
    let mut passes: Vec<Box<dyn Pass>> = vec![
        Box::new(FoldBatchNorm),
        Box::new(Calibrate),
        Box::new(QuantizeWeights),
        Box::new(QuantizeActivations),
        Box::new(FuseActivation),
    ];
    // ---- integerize ---------------------------------------------------------------
    // Fake-quant graph in, integer-only graph out: `Integerize` (passes/src/integerize*.rs
    // and passes/src/streamline/, owned separately) plugs in here and nowhere else.
    passes.push(Box::new(Integerize));
    // --------------------------------------------------------------------------------
    passes.push(Box::new(ConstFold));
    passes.push(Box::new(Dce));
    PassManager::new(passes)
}
