//! The METHOD.md quantizer on burn tensors, with a straight-through round.
//!
//! `q(x) = (e^s / n) · round(clip(x / (e^s / n), lo·n, n))`: the IR's `quantize` →
//! `dequantize` pair (`clamp(round_half_even(x / scale), qmin, qmax) · scale`) with
//! `scale = e^s / n`, written so that autodiff sees
//!
//! * `round` as the identity (STE: `y + (round(y) − y).detach()`; burn rounds half to
//!   even, like the IR),
//! * the clip's zero gradient outside `[qmin, qmax]` (for an unsigned activation the
//!   clip at 0 *is* the ReLU, as `fuse-activation` makes it in the graph),
//! * `s` through both the `x / scale` and the `· scale` factors (LSQ), with its gradient
//!   multiplied by `grad_scale` (LSQ's `1/√(numel·n)`), since it sums over the whole
//!   tensor.

use burn::tensor::Tensor;

/// `x` in the forward pass, `g·∂` in the backward pass (LSQ's gradient scaling).
pub fn grad_scale<const D: usize>(x: Tensor<D>, g: f64) -> Tensor<D> {
    let scaled = x.clone().mul_scalar(g);
    (x - scaled.clone()).detach() + scaled
}

/// `round_half_even(y)` forward, identity backward.
pub fn round_ste<const D: usize>(y: Tensor<D>) -> Tensor<D> {
    y.clone() + (y.clone().round() - y).detach()
}

/// Fake-quantizes `x` at `scale` (one step; broadcast against `x`) to the integer levels
/// `[qmin, qmax]`: `clamp(round(x / scale), qmin, qmax) · scale` with STE round.
pub fn fake_quant<const D: usize>(
    x: Tensor<D>,
    scale: Tensor<D>,
    qmin: f64,
    qmax: f64,
) -> Tensor<D> {
    let y = (x / scale.clone()).clamp(qmin, qmax);
    round_ste(y) * scale
}

/// The integer levels `(qmin, qmax)` of an activation quantizer with `bits` bits:
/// unsigned `[0, 2^b − 1]`, or signed symmetric `[−(2^(b−1) − 1), 2^(b−1) − 1]`
/// (`DType::quant_range`).
pub fn act_levels(bits: u8, signed: bool) -> (f64, f64) {
    if signed {
        let n = f64::from((1u32 << (bits - 1)) - 1);
        (-n, n)
    } else {
        (0.0, f64::from((1u32 << bits) - 1))
    }
}
