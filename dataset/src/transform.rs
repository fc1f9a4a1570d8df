//! Opt-in batch transforms: per-channel normalisation and training augmentation.
//!
//! Neither is applied by default (see the crate docs: fqc's models normalise inside the
//! graph, on raw pixel values). [`Normalize`] is for models that expect normalised
//! inputs; [`Augment`] (random crop with zero padding, horizontal flip) is for training,
//! driven by a seeded [`Rng`] so a run is reproducible. Both work in place on `f32`
//! NCHW batches as [`crate::LabelledSet::batch`] returns them.

use fqc_ir::{Tensor, TensorData};

use crate::{DataError, Result};

/// A small deterministic PRNG (SplitMix64): the same seed gives the same augmentation
/// on every platform.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        // Multiply-shift: bias below 2^-64·n, irrelevant here.
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    pub fn coin(&mut self) -> bool {
        self.next_u64() >> 63 == 1
    }

    /// Fisher–Yates shuffle of `v` in place.
    pub fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            let j = self.below(i as u64 + 1) as usize;
            v.swap(i, j);
        }
    }
}

fn nchw(t: &mut Tensor) -> Result<([usize; 4], &mut Vec<f32>)> {
    let shape: [usize; 4] = t.shape.as_slice().try_into().map_err(|_| {
        DataError::Format(format!(
            "expected an N×C×H×W batch, got shape {:?}",
            t.shape
        ))
    })?;
    match &mut t.data {
        TensorData::F32(v) => Ok((shape, v)),
        _ => Err(DataError::Format("expected a float32 batch".into())),
    }
}

/// `x[n, c] = (x[n, c] - mean[c]) / std[c]`; one value of each applies to every channel.
#[derive(Clone, Debug, PartialEq)]
pub struct Normalize {
    pub mean: Vec<f32>,
    pub std: Vec<f32>,
}

impl Normalize {
    /// Checks the parameters: as many means as stds (≥ 1), finite, stds positive.
    pub fn new(mean: Vec<f32>, std: Vec<f32>) -> Result<Normalize> {
        if mean.is_empty() || mean.len() != std.len() {
            return Err(DataError::Format(format!(
                "normalisation needs as many means as stds (≥ 1), got {} and {}",
                mean.len(),
                std.len()
            )));
        }
        if !mean.iter().all(|m| m.is_finite()) || !std.iter().all(|s| s.is_finite() && *s > 0.0) {
            return Err(DataError::Format(
                "normalisation means must be finite and stds positive and finite".into(),
            ));
        }
        Ok(Normalize { mean, std })
    }

    /// Normalises a batch in place.
    pub fn apply(&self, batch: &mut Tensor) -> Result<()> {
        let ([_, c, h, w], data) = nchw(batch)?;
        if self.mean.len() != 1 && self.mean.len() != c {
            return Err(DataError::Format(format!(
                "normalisation has {} channels, the batch {c}",
                self.mean.len()
            )));
        }
        if self.mean.len() != self.std.len() {
            return Err(DataError::Format("as many means as stds needed".into()));
        }
        let plane = h * w;
        if plane == 0 {
            return Ok(());
        }
        for (i, p) in data.chunks_mut(plane).enumerate() {
            let k = if self.mean.len() == 1 { 0 } else { i % c };
            let (m, s) = (self.mean[k], self.std[k]);
            p.iter_mut().for_each(|x| *x = (*x - m) / s);
        }
        Ok(())
    }
}

/// Training augmentation, per image: a random `H×W` crop of the image zero-padded by
/// `crop_pad` on every side (offsets uniform in `0..=2·crop_pad`), then a horizontal flip
/// with probability ½ if `hflip`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Augment {
    pub crop_pad: usize,
    pub hflip: bool,
}

impl Augment {
    /// Whether this changes nothing.
    pub fn is_identity(&self) -> bool {
        self.crop_pad == 0 && !self.hflip
    }

    /// Augments a batch in place, drawing from `rng` (two draws per image, in image
    /// order, whatever the options, so a seed gives the same crops with or without flips).
    pub fn apply(&self, batch: &mut Tensor, rng: &mut Rng) -> Result<()> {
        let ([n, c, h, w], data) = nchw(batch)?;
        let item = c * h * w;
        if item == 0 {
            return Ok(());
        }
        let p = self.crop_pad as i64;
        let mut src = vec![0f32; item];
        for img in data.chunks_mut(item).take(n) {
            let r = rng.next_u64();
            let coin = rng.coin();
            let flip = self.hflip && coin;
            let (dy, dx) = if p > 0 {
                let span = 2 * p as u64 + 1;
                ((r % span) as i64 - p, ((r / span) % span) as i64 - p)
            } else {
                (0, 0)
            };
            if dy == 0 && dx == 0 && !flip {
                continue;
            }
            src.copy_from_slice(img);
            for ch in 0..c {
                for y in 0..h {
                    for x in 0..w {
                        let sx = if flip { w - 1 - x } else { x } as i64 + dx;
                        let sy = y as i64 + dy;
                        let inside = (0..h as i64).contains(&sy) && (0..w as i64).contains(&sx);
                        img[(ch * h + y) * w + x] = if inside {
                            src[(ch * h + sy as usize) * w + sx as usize]
                        } else {
                            0.0
                        };
                    }
                }
            }
        }
        Ok(())
    }
}
