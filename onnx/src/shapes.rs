//! Input shapes given by the user (`--input-shape NAME=DIMS`), for exports that leave
//! height, width or the batch symbolic (`-1`, `"?"`, `"height"`).
//!
//! `DIMS` is `x`-separated: an integer fixes a dim; `N` (dim 0 only) keeps the batch
//! free. A given shape must have the input's rank and agree with every dim the model
//! fixes; every symbolic or unknown dim it names becomes static, so the imported graph
//! (and a `.fqc` compiled from it) has fixed H and W. Without a given shape, dim 0 may be
//! symbolic (it is the batch) and any other symbolic dim is an error that names the
//! flag.

use std::fmt;

use crate::error::{OnnxError, Result};

/// One given dim.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GivenDim {
    /// `N`: the batch, free at run time.
    Batch,
    Fixed(u64),
}

/// A shape given for one graph input; `name: None` stands for the only input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InputShape {
    pub name: Option<String>,
    pub dims: Vec<GivenDim>,
}

impl fmt::Display for InputShape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(n) = &self.name {
            write!(f, "{n}=")?;
        }
        let dims: Vec<String> = self
            .dims
            .iter()
            .map(|d| match d {
                GivenDim::Batch => "N".to_string(),
                GivenDim::Fixed(v) => v.to_string(),
            })
            .collect();
        write!(f, "{}", dims.join("x"))
    }
}

/// Largest extent a given dim may have.
const MAX_DIM: u64 = 1 << 31;

impl std::str::FromStr for InputShape {
    type Err = String;

    /// `NAME=DIMS` or `DIMS`, e.g. `x=Nx3x48x192` (see the module docs).
    fn from_str(s: &str) -> std::result::Result<InputShape, String> {
        let (name, dims) = match s.rsplit_once('=') {
            Some((n, d)) if !n.is_empty() => (Some(n.to_string()), d),
            Some((_, _)) => return Err(format!("`{s}`: the name before `=` is empty")),
            None => (None, s),
        };
        if dims.is_empty() {
            return Err(format!("`{s}`: no dims (e.g. `x=Nx3x224x224`)"));
        }
        let mut out = Vec::new();
        for (i, d) in dims.split('x').enumerate() {
            let dim = match d {
                "N" | "n" if i == 0 => GivenDim::Batch,
                "N" | "n" => {
                    return Err(format!(
                        "`{s}`: `N` (the free batch) is allowed in dim 0 only"
                    ))
                }
                _ => match d.parse::<u64>() {
                    Ok(v) if (1..=MAX_DIM).contains(&v) => GivenDim::Fixed(v),
                    _ => {
                        return Err(format!(
                            "`{s}`: dim {i} `{d}` is not `N` or an extent from 1 to {MAX_DIM}"
                        ))
                    }
                },
            };
            out.push(dim);
        }
        if out.len() > 8 {
            return Err(format!("`{s}`: more than 8 dims"));
        }
        Ok(InputShape { name, dims: out })
    }
}

/// The given shapes, checked against the model's real input names.
pub(crate) struct Given<'a> {
    shapes: &'a [InputShape],
}

impl<'a> Given<'a> {
    /// Checks that every shape names a real input (or, unnamed, that there is one) and
    /// that no input is given twice.
    pub fn new(shapes: &'a [InputShape], inputs: &[&str]) -> Result<Given<'a>> {
        let err = |m: String| OnnxError::Model(crate::error::one_line(&m));
        let mut seen: Vec<&str> = Vec::new();
        for s in shapes {
            let target = match &s.name {
                Some(n) if inputs.contains(&n.as_str()) => n.as_str(),
                Some(n) => {
                    return Err(err(format!(
                        "--input-shape {s}: the model has no input `{n}` (its inputs: {})",
                        inputs.join(", ")
                    )))
                }
                None if inputs.len() == 1 => inputs[0],
                None => {
                    return Err(err(format!(
                        "--input-shape {s}: the model has {} inputs; name one (NAME=DIMS)",
                        inputs.len()
                    )))
                }
            };
            if seen.contains(&target) {
                return Err(err(format!(
                    "--input-shape: input `{target}` is given twice"
                )));
            }
            seen.push(target);
        }
        Ok(Given { shapes })
    }

    /// The shape given for input `name` of a model with `inputs` real inputs.
    pub fn for_input(&self, name: &str, inputs: usize) -> Option<&'a InputShape> {
        self.shapes.iter().find(|s| match &s.name {
            Some(n) => n == name,
            None => inputs == 1,
        })
    }
}
