//! The schedule language of gradual requantization: a comma-separated list of stages
//! `wXaY` (weight bits `X` = `t`/`2` for ternary or 3..8; activation bits `Y` = 2..8),
//! e.g. METHOD.md's default `w8a8,w4a6,w3a4,w2a4`, plus per-layer overrides
//! `NAME=wXaY` (or just `NAME=wX` / `NAME=aY`) that hold for every stage, e.g. to keep
//! the first and last layers at 8 bits while the rest step down to ternary, or only in
//! some stages, `NAME=wXaY@A-B` (stages `A..=B`, counted from 1) or `NAME=wXaY@A`: the
//! schedule then steps layers down at different stages, e.g. the first and last layers
//! held at 8 bits until the others are ternary and trained, then made ternary too.
//!
//! Parsing is strict and every error names the offending piece, so a typo on the
//! command line is one clear line instead of a silently different compile.

use std::collections::BTreeMap;
use std::fmt;

use crate::context::{LayerBits, QuantConfig, WeightBits};
use crate::{PassError, Result};

/// METHOD.md's default schedule: fp32 → w8a8 → w4a6 → w3a4 → w2a4 (ternary).
pub const DEFAULT_SCHEDULE: &str = "w8a8,w4a6,w3a4,w2a4";

/// The bit widths of one stage.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StageBits {
    pub weights: WeightBits,
    /// Activation bits, 2..=8.
    pub act_bits: u8,
}

impl StageBits {
    /// Parses one stage, `wXaY`.
    pub fn parse(s: &str) -> Result<StageBits> {
        match parse_bits(s)? {
            (Some(weights), Some(act_bits)) => Ok(StageBits { weights, act_bits }),
            _ => Err(usage(format!(
                "stage `{s}` needs both weight and activation bits, like `w4a6` or `wta4`"
            ))),
        }
    }
}

impl fmt::Display for StageBits {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_bits(f, Some(self.weights), Some(self.act_bits))
    }
}

/// One per-layer override: bits, and the stages it holds in.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LayerOverride {
    pub bits: LayerBits,
    /// The stages (0-based, inclusive) the override holds in; `None`: every stage.
    pub stages: Option<(usize, usize)>,
}

impl LayerOverride {
    /// Whether the override holds in stage `i` (0-based).
    pub fn holds_in(&self, i: usize) -> bool {
        self.stages.is_none_or(|(a, b)| (a..=b).contains(&i))
    }
}

/// A gradual requantization schedule: the stages in order and per-layer overrides.
#[derive(Clone, Debug, PartialEq)]
pub struct Schedule {
    pub stages: Vec<StageBits>,
    /// Overrides by layer name (a Conv/Gemm node name, or an alias the driver resolves:
    /// the layer's weight name without `.weight`), in the order given: where two hold
    /// in the same stage, the later one's bits win.
    pub per_layer: BTreeMap<String, Vec<LayerOverride>>,
}

impl Schedule {
    /// Parses `w8a8,w4a6,…` (at least one stage; spaces around commas are allowed).
    pub fn parse(spec: &str) -> Result<Schedule> {
        if spec.trim().is_empty() {
            return Err(usage(format!(
                "empty schedule: give stages like `{DEFAULT_SCHEDULE}`"
            )));
        }
        let stages = spec
            .split(',')
            .enumerate()
            .map(|(i, s)| {
                StageBits::parse(s.trim())
                    .map_err(|e| usage(format!("schedule `{spec}`, stage {}: {e}", i + 1)))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Schedule {
            stages,
            per_layer: BTreeMap::new(),
        })
    }

    /// One stage: one-shot post-training quantization at these bits.
    pub fn one_shot(weights: WeightBits, act_bits: u8) -> Schedule {
        Schedule {
            stages: vec![StageBits { weights, act_bits }],
            per_layer: BTreeMap::new(),
        }
    }

    /// Parses a per-layer override `NAME=wXaY`, `NAME=wX` or `NAME=aY`, each optionally
    /// followed by `@A-B` or `@A` (the stages it holds in, counted from 1). The name is
    /// everything before the last `=`.
    pub fn parse_layer(spec: &str) -> Result<(String, LayerOverride)> {
        let Some((name, rest)) = spec.rsplit_once('=') else {
            return Err(usage(format!(
                "layer override `{spec}`: expected NAME=wXaY, like `/conv1/Conv=w8a8`"
            )));
        };
        let (bits, stages) = match rest.split_once('@') {
            Some((bits, range)) => (
                bits,
                Some(
                    parse_stage_range(range.trim())
                        .map_err(|e| usage(format!("layer override `{spec}`: {e}")))?,
                ),
            ),
            None => (rest, None),
        };
        let name = name.trim();
        if name.is_empty() {
            return Err(usage(format!(
                "layer override `{spec}`: the layer name is empty"
            )));
        }
        let (weights, acts) =
            parse_bits(bits.trim()).map_err(|e| usage(format!("layer override `{spec}`: {e}")))?;
        let bits = LayerBits { weights, acts };
        Ok((name.to_string(), LayerOverride { bits, stages }))
    }

    /// Adds the override `NAME=wXaY[@A-B]` (where a later override of the same layer
    /// holds too, its bits win). A stage range must lie within the schedule's stages.
    pub fn add_layer_override(&mut self, spec: &str) -> Result<()> {
        let (name, o) = Schedule::parse_layer(spec)?;
        if let Some((_, last)) = o.stages {
            if last >= self.stages.len() {
                return Err(usage(format!(
                    "layer override `{spec}`: stage {} is past the schedule's {} stage(s)",
                    last + 1,
                    self.stages.len()
                )));
            }
        }
        self.per_layer.entry(name).or_default().push(o);
        Ok(())
    }

    /// The configuration of stage `i`: `base` (input bits, calibration method, its own
    /// per-layer entries) with the stage's bits and this schedule's overrides on top.
    pub fn stage_config(&self, i: usize, base: &QuantConfig) -> QuantConfig {
        let mut c = base.clone();
        if let Some(s) = self.stages.get(i) {
            c.weights = s.weights;
            c.act_bits = s.act_bits;
        }
        for (name, overrides) in &self.per_layer {
            for o in overrides.iter().filter(|o| o.holds_in(i)) {
                let e = c.per_layer.entry(name.clone()).or_default();
                e.weights = o.bits.weights.or(e.weights);
                e.acts = o.bits.acts.or(e.acts);
            }
        }
        c
    }
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, s) in self.stages.iter().enumerate() {
            if i > 0 {
                write!(f, ",")?;
            }
            write!(f, "{s}")?;
        }
        for (name, overrides) in &self.per_layer {
            for o in overrides {
                write!(f, " {name}=")?;
                write_bits(f, o.bits.weights, o.bits.acts)?;
                match o.stages {
                    Some((a, b)) if a == b => write!(f, "@{}", a + 1)?,
                    Some((a, b)) => write!(f, "@{}-{}", a + 1, b + 1)?,
                    None => {}
                }
            }
        }
        Ok(())
    }
}

/// Formats `wXaY` (ternary as `wt`), leaving out absent parts.
pub fn write_bits(
    f: &mut impl fmt::Write,
    weights: Option<WeightBits>,
    acts: Option<u8>,
) -> fmt::Result {
    match weights {
        Some(WeightBits::Ternary) => write!(f, "wt")?,
        Some(WeightBits::Bits(b)) => write!(f, "w{b}")?,
        None => {}
    }
    if let Some(a) = acts {
        write!(f, "a{a}")?;
    }
    Ok(())
}

fn usage(msg: String) -> PassError {
    PassError::Usage(msg)
}

/// Parses `A-B` or `A` (stages counted from 1, `A <= B`) into 0-based bounds.
fn parse_stage_range(s: &str) -> Result<(usize, usize)> {
    let bad = || {
        usage(format!(
            "`@{s}`: expected stages `@A-B` or `@A`, counted from 1"
        ))
    };
    let (a, b) = s.split_once('-').unwrap_or((s, s));
    let stage = |t: &str| t.trim().parse::<usize>().ok().filter(|&n| n >= 1);
    match (stage(a), stage(b)) {
        (Some(a), Some(b)) if a <= b => Ok((a - 1, b - 1)),
        _ => Err(bad()),
    }
}

/// Parses `wXaY`, `wX` or `aY` into its optional halves.
fn parse_bits(s: &str) -> Result<(Option<WeightBits>, Option<u8>)> {
    let bad = |why: &str| usage(format!("`{s}`: {why}"));
    let mut rest = s;
    let mut weights = None;
    if let Some(r) = rest.strip_prefix('w') {
        let end = r.find('a').unwrap_or(r.len());
        let w = &r[..end];
        weights = Some(match w {
            "t" | "2" => WeightBits::Ternary,
            _ => match w.parse::<u8>() {
                Ok(b @ 3..=8) => WeightBits::Bits(b),
                _ => {
                    return Err(bad(
                        "weight bits must be `t` or 2 (ternary), or 3..8, as in `w4`",
                    ))
                }
            },
        });
        rest = &r[end..];
    }
    let mut acts = None;
    if let Some(r) = rest.strip_prefix('a') {
        acts = Some(match r.parse::<u8>() {
            Ok(b @ 2..=8) => b,
            _ => return Err(bad("activation bits must be 2..8, as in `a4`")),
        });
        rest = "";
    }
    if !rest.is_empty() || (weights.is_none() && acts.is_none()) {
        return Err(bad("expected `wXaY` like `w4a6` (`wt` = ternary)"));
    }
    Ok((weights, acts))
}
