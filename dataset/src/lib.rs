//! Tensor files and labelled datasets for fqc: `.npy`, `.npz`, CIFAR-10/100 binary
//! batches, image folders, and the input convention.
//!
//! **The one place preprocessing is stated.** fqc models take images as `f32` NCHW
//! tensors of raw pixel values (a `u8` pixel `p` becomes the float `p`, no scaling);
//! any normalisation (`(x - mean) / std`) is part of the model graph itself, where the
//! quantizer can later absorb it. So every command feeds a dataset's pixels to a model the
//! same way, through [`LabelledSet::batch`], and nothing outside the model normalises —
//! unless asked: [`transform::Normalize`] is an explicit opt-in for models that expect
//! normalised inputs, and [`transform::Augment`] (random crop with padding, horizontal
//! flip, seeded) is for training.
//!
//! [`LabelledSet::open`] reads any supported labelled set, dispatching on the path:
//! `.npz` ([`LabelledSet::load_npz`]); a CIFAR `.bin` batch or a folder of them
//! ([`cifar`]); a folder with one sub-folder of `.png`/`.jpg` images per class
//! ([`folder`]), or such folders per split (`ROOT/<split>/<class>/…`).
//!
//! Readers check every header, size and element count before allocating, and cap what
//! they will read, so a corrupt or hostile file is an error, never a panic or an
//! unbounded allocation.

pub mod cifar;
pub mod folder;
pub mod npy;
pub mod npz;
pub mod transform;

use std::path::Path;

use fqc_ir::{Tensor, TensorData};

pub use folder::FolderOptions;
pub use transform::{Augment, Normalize, Rng};

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
    /// Reads split `split` of the labelled set at `path` (see the crate docs for the
    /// formats); image folders are read with default [`FolderOptions`].
    pub fn open(path: &Path, split: &str) -> Result<LabelledSet> {
        LabelledSet::open_with(path, split, &FolderOptions::default())
    }

    /// [`LabelledSet::open`] with options for image folders (e.g. a size to resize to).
    ///
    /// * a file ending in `.npz`: [`LabelledSet::load_npz`];
    /// * a file ending in `.bin`: one CIFAR batch (the split is not used);
    /// * a folder with CIFAR batches: those of `split` (see [`cifar`]);
    /// * a folder `ROOT` with a sub-folder `ROOT/<split>` that is an image folder: that;
    /// * otherwise a folder of class sub-folders: the whole folder (the split is not used).
    pub fn open_with(path: &Path, split: &str, opts: &FolderOptions) -> Result<LabelledSet> {
        let file_err = |msg: String| DataError::File {
            path: path.display().to_string(),
            msg,
        };
        let meta = std::fs::metadata(path).map_err(|source| DataError::Io {
            path: path.display().to_string(),
            source,
        })?;
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        if meta.is_file() {
            return match ext.as_deref() {
                Some("npz") => LabelledSet::load_npz(path, split),
                Some("bin") => {
                    let format = cifar::detect_file(path)?;
                    cifar::load_files(format, &[path.to_path_buf()])
                }
                _ => Err(file_err(
                    "not a labelled set: expected a .npz, a CIFAR .bin batch, or a folder \
                     (of CIFAR batches, or of one image sub-folder per class)"
                        .into(),
                )),
            };
        }
        if let Some((format, files)) = cifar::split_files(path, split)? {
            return cifar::load_files(format, &files);
        }
        let sub = path.join(split);
        if sub.is_dir() && folder::is_image_folder(&sub) {
            return folder::load(&sub, opts);
        }
        if folder::is_image_folder(path) {
            return folder::load(path, opts);
        }
        Err(file_err(
            "holds neither CIFAR batches (data_batch_*.bin / test_batch.bin, train.bin / \
             test.bin) nor class sub-folders with .png/.jpg images"
                .into(),
        ))
    }

    /// Loads CIFAR-10 or CIFAR-100 binary batches: a `.bin` file, or the batches of
    /// `split` in a folder (see [`cifar`]).
    pub fn load_cifar(path: &Path, split: &str) -> Result<LabelledSet> {
        if path.is_dir() {
            match cifar::split_files(path, split)? {
                Some((format, files)) => cifar::load_files(format, &files),
                None => Err(DataError::File {
                    path: path.display().to_string(),
                    msg: "holds no CIFAR batches (data_batch_*.bin / test_batch.bin, train.bin / test.bin)".into(),
                }),
            }
        } else {
            let format = cifar::detect_file(path)?;
            cifar::load_files(format, &[path.to_path_buf()])
        }
    }

    /// Loads an image folder `root/<class>/*.png|jpg` (see [`folder`]).
    pub fn load_image_folder(path: &Path, opts: &FolderOptions) -> Result<LabelledSet> {
        folder::load(path, opts)
    }

    /// Number of channels of the images.
    pub fn channels(&self) -> usize {
        self.x.shape.get(1).copied().unwrap_or(0)
    }

    /// Images `start..end` as model input, augmented (if `augment` is given, drawing
    /// from `rng`) and then normalised (if `normalize` is given). With neither it is
    /// [`LabelledSet::batch`].
    pub fn batch_with(
        &self,
        start: usize,
        end: usize,
        augment: Option<(&Augment, &mut Rng)>,
        normalize: Option<&Normalize>,
    ) -> Result<Tensor> {
        let mut t = self.batch(start, end);
        if let Some((a, rng)) = augment {
            a.apply(&mut t, rng)?;
        }
        if let Some(n) = normalize {
            n.apply(&mut t)?;
        }
        Ok(t)
    }

    /// Loads split `split` of an `.npz`: keys `x_<split>` / `y_<split>`, or plain `x` / `y`
    /// when the file holds a single unnamed split.
    pub fn load_npz(path: &Path, split: &str) -> Result<LabelledSet> {
        LabelledSet::from_npz(&mut npz::Npz::open(path)?, split)
    }

    /// [`LabelledSet::load_npz`] from an open archive.
    pub fn from_npz(npz: &mut npz::Npz, split: &str) -> Result<LabelledSet> {
        let path = npz.path().to_string();
        let file_err = |msg: String| DataError::File {
            path: path.clone(),
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
        if y.shape.len() != 1 {
            return Err(file_err(format!(
                "`{yk}` must be a 1-D array of class labels, got shape {:?}",
                y.shape
            )));
        }
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

    /// Checks that every label is a class index in `0..classes` (the model's output
    /// width); the error names the first label that is not.
    pub fn check_labels(&self, classes: usize) -> Result<()> {
        match self
            .y
            .iter()
            .position(|&y| y < 0 || y as u64 >= classes as u64)
        {
            Some(i) => Err(DataError::Format(format!(
                "label {i} is {}, not a class of the model (0 to {})",
                self.y[i],
                classes.saturating_sub(1)
            ))),
            None => Ok(()),
        }
    }

    /// Checks that every pixel is a finite number (float32 images may hold NaN or
    /// infinities); the error names the first that is not, by image and index.
    pub fn check_finite(&self) -> Result<()> {
        if let Some((i, v)) = self.x.first_non_finite() {
            let idx = self.x.index_of(i);
            return Err(DataError::Format(format!(
                "image {} holds {v} at {:?}; images must be finite numbers",
                idx[0],
                &idx[1..]
            )));
        }
        Ok(())
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
