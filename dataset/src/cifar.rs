//! CIFAR-10 and CIFAR-100 in their binary distributions.
//!
//! A record is the label byte(s) then 3072 pixel bytes: 1024 red, 1024 green, 1024 blue,
//! each 32×32 row-major, which already is one CHW image. CIFAR-10 records have one label
//! byte (0..9); CIFAR-100 records have two, coarse (0..19) then fine (0..99), and fqc
//! uses the fine label.
//!
//! A path is one batch file, or a directory holding the batches, split by file name:
//! CIFAR-10's `data_batch_*.bin` are split `train` and `test_batch.bin` split `test`;
//! CIFAR-100's `train.bin` / `test.bin` are the splits of those names. Every file's
//! length is checked against the record size (and the total against
//! [`crate::MAX_ELEMENTS`]) before anything is read.

use std::path::{Path, PathBuf};

use fqc_ir::{Tensor, TensorData};

use crate::{DataError, LabelledSet, Result, MAX_ELEMENTS};

/// Pixel bytes of one 3×32×32 image.
pub const IMAGE_BYTES: usize = 3 * 32 * 32;

/// Which CIFAR binary format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cifar {
    /// One label byte, 10 classes.
    Ten,
    /// Coarse then fine label byte; the fine label (100 classes) is used.
    Hundred,
}

impl Cifar {
    /// Bytes per record.
    pub fn record_bytes(self) -> usize {
        self.label_bytes() + IMAGE_BYTES
    }

    fn label_bytes(self) -> usize {
        match self {
            Cifar::Ten => 1,
            Cifar::Hundred => 2,
        }
    }

    pub fn classes(self) -> i64 {
        match self {
            Cifar::Ten => 10,
            Cifar::Hundred => 100,
        }
    }

    /// The format a batch file's name implies (`data_batch_*.bin` / `test_batch.bin`:
    /// CIFAR-10; `train.bin` / `test.bin`: CIFAR-100).
    pub fn from_file_name(name: &str) -> Option<Cifar> {
        if name == "test_batch.bin" || (name.starts_with("data_batch") && name.ends_with(".bin")) {
            Some(Cifar::Ten)
        } else if name == "train.bin" || name == "test.bin" {
            Some(Cifar::Hundred)
        } else {
            None
        }
    }
}

fn file_err(path: &Path, msg: impl Into<String>) -> DataError {
    DataError::File {
        path: path.display().to_string(),
        msg: msg.into(),
    }
}

fn file_len(path: &Path) -> Result<u64> {
    std::fs::metadata(path)
        .map(|m| m.len())
        .map_err(|source| DataError::Io {
            path: path.display().to_string(),
            source,
        })
}

/// The format of one `.bin` file: from its name, else from its length (which must be a
/// whole number of records of exactly one of the formats).
pub fn detect_file(path: &Path) -> Result<Cifar> {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    if let Some(f) = Cifar::from_file_name(name) {
        return Ok(f);
    }
    let len = file_len(path)?;
    let fits = |f: Cifar| len > 0 && len % f.record_bytes() as u64 == 0;
    match (fits(Cifar::Ten), fits(Cifar::Hundred)) {
        (true, false) => Ok(Cifar::Ten),
        (false, true) => Ok(Cifar::Hundred),
        (true, true) => Err(file_err(
            path,
            "cannot tell CIFAR-10 from CIFAR-100 by the file length; name the file like the \
             official batches (data_batch_N.bin / test_batch.bin, or train.bin / test.bin)",
        )),
        (false, false) => Err(file_err(
            path,
            format!(
                "{len} bytes is not a whole number of CIFAR records ({} bytes for CIFAR-10, {} for CIFAR-100)",
                Cifar::Ten.record_bytes(),
                Cifar::Hundred.record_bytes()
            ),
        )),
    }
}

/// The batch files of split `split` in directory `dir`, with their format; None if the
/// directory holds no CIFAR batches at all.
pub fn split_files(dir: &Path, split: &str) -> Result<Option<(Cifar, Vec<PathBuf>)>> {
    let entries = std::fs::read_dir(dir).map_err(|source| DataError::Io {
        path: dir.display().to_string(),
        source,
    })?;
    let mut names: Vec<String> = entries
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_file())
        .filter_map(|e| e.file_name().to_str().map(str::to_string))
        .filter(|n| Cifar::from_file_name(n).is_some())
        .collect();
    names.sort();
    let ten = names
        .iter()
        .any(|n| Cifar::from_file_name(n) == Some(Cifar::Ten));
    let hundred = names
        .iter()
        .any(|n| Cifar::from_file_name(n) == Some(Cifar::Hundred));
    let format = match (ten, hundred) {
        (false, false) => return Ok(None),
        (true, true) => {
            return Err(file_err(
                dir,
                "holds both CIFAR-10 (data_batch_*.bin, test_batch.bin) and CIFAR-100 (train.bin, test.bin) batches",
            ))
        }
        (true, false) => Cifar::Ten,
        (false, true) => Cifar::Hundred,
    };
    let wanted: Vec<PathBuf> = names
        .iter()
        .filter(|n| match (format, split) {
            (Cifar::Ten, "train") => n.starts_with("data_batch"),
            (Cifar::Ten, "test") => *n == "test_batch.bin",
            (Cifar::Hundred, s) => **n == format!("{s}.bin"),
            _ => false,
        })
        .map(|n| dir.join(n))
        .collect();
    if wanted.is_empty() {
        return Err(file_err(
            dir,
            format!(
                "no CIFAR-{} batches for split `{split}` (splits: train, test; files: {})",
                format.classes(),
                names.join(", ")
            ),
        ));
    }
    Ok(Some((format, wanted)))
}

/// Reads CIFAR batch files of one format into one set (images in file order).
pub fn load_files(format: Cifar, files: &[PathBuf]) -> Result<LabelledSet> {
    let rec = format.record_bytes();
    let mut total: u64 = 0;
    for f in files {
        let len = file_len(f)?;
        if len == 0 || len % rec as u64 != 0 {
            return Err(file_err(
                f,
                format!(
                    "{len} bytes is not a whole number of CIFAR-{} records of {rec} bytes",
                    format.classes()
                ),
            ));
        }
        total += len / rec as u64;
    }
    if total.saturating_mul(IMAGE_BYTES as u64) > MAX_ELEMENTS {
        return Err(DataError::Format(format!(
            "{total} CIFAR images are more than fqc reads at once ({MAX_ELEMENTS} pixels)"
        )));
    }
    let n = total as usize;
    let mut pixels = Vec::with_capacity(n * IMAGE_BYTES);
    let mut labels = Vec::with_capacity(n);
    for f in files {
        let bytes = std::fs::read(f).map_err(|source| DataError::Io {
            path: f.display().to_string(),
            source,
        })?;
        if bytes.len() % rec != 0 {
            return Err(file_err(f, "the file changed while it was read"));
        }
        for (i, r) in bytes.chunks_exact(rec).enumerate() {
            let label = i64::from(r[format.label_bytes() - 1]);
            if label >= format.classes() {
                return Err(file_err(
                    f,
                    format!(
                        "record {i}: label {label} is out of range for CIFAR-{} (is this the right format?)",
                        format.classes()
                    ),
                ));
            }
            if format == Cifar::Hundred && r[0] >= 20 {
                return Err(file_err(
                    f,
                    format!("record {i}: coarse label {} is out of range (0..19)", r[0]),
                ));
            }
            labels.push(label);
            pixels.extend_from_slice(&r[format.label_bytes()..]);
        }
    }
    if labels.len() != n {
        return Err(DataError::Format(
            "the CIFAR files changed while they were read".into(),
        ));
    }
    Ok(LabelledSet {
        x: Tensor {
            shape: vec![n, 3, 32, 32],
            data: TensorData::U8(pixels),
        },
        y: labels,
    })
}

/// Serialises images and labels as one CIFAR batch file (for tests and conversions):
/// `x` must be `u8 [N, 3, 32, 32]`; CIFAR-100 records get coarse label `fine / 5`.
pub fn write(format: Cifar, set: &LabelledSet) -> Result<Vec<u8>> {
    let TensorData::U8(px) = &set.x.data else {
        return Err(DataError::Format("CIFAR images must be uint8".into()));
    };
    if set.x.shape[1..] != [3, 32, 32] || set.x.shape[0] != set.y.len() {
        return Err(DataError::Format(format!(
            "CIFAR images must be N×3×32×32 with N labels, got {:?} and {} labels",
            set.x.shape,
            set.y.len()
        )));
    }
    let mut out = Vec::with_capacity(set.len() * format.record_bytes());
    for (img, &y) in px.chunks_exact(IMAGE_BYTES).zip(&set.y) {
        if !(0..format.classes()).contains(&y) {
            return Err(DataError::Format(format!(
                "label {y} is out of range for CIFAR-{}",
                format.classes()
            )));
        }
        if format == Cifar::Hundred {
            out.push((y / 5) as u8);
        }
        out.push(y as u8);
        out.extend_from_slice(img);
    }
    Ok(out)
}
