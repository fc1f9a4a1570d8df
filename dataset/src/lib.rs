//! Tensor files and labelled datasets for fqc: `.npy`, `.npz`, and the input convention.
//!
//! **The one place preprocessing is stated.** fqc models take images as `f32` NCHW
//! tensors of raw pixel values (a `u8` pixel `p` becomes the float `p`, no scaling);
//! any normalisation (`(x - mean) / std`) is part of the model graph itself, where the
//! quantizer can later absorb it. So every command feeds a dataset's pixels to a model the
//! same way, through [`LabelledSet::batch`], and nothing outside the model normalises.
//!
//! Readers check every header, size and element count before allocating, and cap what
//! they will read, so a corrupt or hostile file is an error, never a panic or an
//! unbounded allocation.

pub mod npy;
pub mod npz;

use std::path::Path;

use fqc_ir::{Tensor, TensorData};

/// Errors reading tensor files and datasets.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("{path}: {msg}")]
    File { path: String, msg: String },
    #[error("{0}")]
    Format(String),
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
}

pub type Result<T, E = DataError> = std::result::Result<T, E>;

/// Largest tensor a reader will materialise (elements).
pub const MAX_ELEMENTS: u64 = 1 << 30;

/// Images with integer class labels, as stored in fqc's `.npz` files.
#[derive(Debug, Clone)]
pub struct LabelledSet {
    /// `u8` or `f32`, shape `[N, C, H, W]`.
    pub x: Tensor,
    /// Class index per image.
    pub y: Vec<i64>,
}

impl LabelledSet {
    /// Loads split `split` of an `.npz`: keys `x_<split>` / `y_<split>`, or plain `x` / `y`
    /// when the file holds a single unnamed split.
    pub fn load_npz(path: &Path, split: &str) -> Result<LabelledSet> {
        let mut npz = npz::Npz::open(path)?;
        let file_err = |msg: String| DataError::File {
            path: path.display().to_string(),
            msg,
        };
        let (xk, yk) = if npz.contains(&format!("x_{split}")) {
            (format!("x_{split}"), format!("y_{split}"))
        } else if npz.contains("x") {
            ("x".to_string(), "y".to_string())
        } else {
            return Err(file_err(format!(
                "no split `{split}`: expected arrays `x_{split}` and `y_{split}` (the file has: {})",
                npz.names().join(", ")
            )));
        };
        let x = npz.read(&xk)?;
        let y = npz.read(&yk)?;
        if x.shape.len() != 4 {
            return Err(file_err(format!(
                "`{xk}` must be N×C×H×W, got shape {:?}",
                x.shape
            )));
        }
        if !matches!(x.data, TensorData::U8(_) | TensorData::F32(_)) {
            return Err(file_err(format!("`{xk}` must be uint8 or float32")));
        }
        let y: Vec<i64> = match y.data {
            TensorData::I64(v) => v,
            TensorData::I32(v) => v.into_iter().map(i64::from).collect(),
            TensorData::U8(v) => v.into_iter().map(i64::from).collect(),
            _ => return Err(file_err(format!("`{yk}` must hold integer labels"))),
        };
        if y.len() != x.shape[0] {
            return Err(file_err(format!(
                "`{xk}` has {} images but `{yk}` {} labels",
                x.shape[0],
                y.len()
            )));
        }
        Ok(LabelledSet { x, y })
    }

    pub fn len(&self) -> usize {
        self.y.len()
    }

    pub fn is_empty(&self) -> bool {
        self.y.is_empty()
    }

    /// Images `start..end` as the model input: `f32` raw pixel values (see module docs).
    pub fn batch(&self, start: usize, end: usize) -> Tensor {
        let item: usize = self.x.shape[1..].iter().product();
        let mut shape = self.x.shape.clone();
        shape[0] = end - start;
        let data = match &self.x.data {
            TensorData::U8(v) => v[start * item..end * item]
                .iter()
                .map(|&p| f32::from(p))
                .collect(),
            TensorData::F32(v) => v[start * item..end * item].to_vec(),
            _ => unreachable!("checked in load_npz"),
        };
        Tensor {
            shape,
            data: TensorData::F32(data),
        }
    }
}

/// Converts a tensor read from a file into a model input: `f32` as is, `u8` as raw pixel
/// values (the convention above); other element types are refused.
pub fn to_model_input(t: Tensor) -> Result<Tensor> {
    match t.data {
        TensorData::F32(_) => Ok(t),
        TensorData::U8(v) => Ok(Tensor {
            shape: t.shape,
            data: TensorData::F32(v.into_iter().map(f32::from).collect()),
        }),
        _ => Err(DataError::Format(
            "model inputs must be float32 (or uint8 pixels)".into(),
        )),
    }
}
