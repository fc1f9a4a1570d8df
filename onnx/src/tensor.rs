//! `TensorProto` → [`Tensor`], with every size checked before anything is allocated.
//!
//! Limits (hostile input must never allocate without bound): a tensor holds at most
//! [`MAX_TENSOR_ELEMS`] (2^28) elements — enough for light VGG-19's 4096×25088 weight —
//! and one model at most [`MAX_MODEL_ELEMS`] (2^30) in total, counted by [`Budget`].
//! Dimensions must be non-negative and their product is computed with checked
//! arithmetic. The stored data (typed field, `raw_data` or external file) must hold
//! exactly as many elements as the dims say.
//!
//! External data (`data_location == EXTERNAL`, keys `location`/`offset`/`length`) is read
//! only when importing from a file, only from a relative path without `..` that,
//! canonicalized (symlinks resolved), stays under the canonicalized model folder; the file
//! size is checked before the `length` bytes at `offset` are read.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Component, Path, PathBuf};

use fqc_ir::{DType, Tensor, TensorData};

use crate::error::{one_line, OnnxError, Result};
use crate::proto::{tensor_proto, TensorProto};

/// Most elements one tensor may hold (2^28).
pub const MAX_TENSOR_ELEMS: u64 = 1 << 28;
/// Most elements all tensors of one model may hold together (2^30).
pub const MAX_MODEL_ELEMS: u64 = 1 << 30;

/// Running element count of a model's tensors.
#[derive(Debug, Default)]
pub(crate) struct Budget {
    used: u64,
}

impl Budget {
    /// Reserves `n` elements for tensor `name`, failing past [`MAX_MODEL_ELEMS`].
    pub(crate) fn take(&mut self, name: &str, n: u64) -> Result<()> {
        match self.used.checked_add(n) {
            Some(t) if t <= MAX_MODEL_ELEMS => {
                self.used = t;
                Ok(())
            }
            _ => Err(tensor_err(
                name,
                format!("the model's tensors exceed the limit of 2^30 elements in total (this one has {n})"),
            )),
        }
    }
}

/// Where external data may come from.
#[derive(Debug, Clone)]
pub(crate) enum External {
    /// Importing from bytes: external data is refused.
    Refuse,
    /// Importing from a file: the canonicalized folder of the model.
    Dir(PathBuf),
}

fn tensor_err(name: &str, msg: impl Into<String>) -> OnnxError {
    OnnxError::Tensor {
        name: one_line(name),
        msg: one_line(&msg.into()),
    }
}

fn ext_err(name: &str, msg: impl Into<String>) -> OnnxError {
    OnnxError::ExternalData {
        name: one_line(name),
        msg: one_line(&msg.into()),
    }
}

/// The element count of `dims`, checked: non-negative, no overflow, at most
/// [`MAX_TENSOR_ELEMS`]. `what` names the tensor in errors.
pub(crate) fn checked_numel(what: &str, dims: &[i64]) -> Result<usize> {
    let mut n: u64 = 1;
    for &d in dims {
        if d < 0 {
            return Err(tensor_err(
                what,
                format!("negative dimension {d} in {dims:?}"),
            ));
        }
        n = n
            .checked_mul(d as u64)
            .filter(|&n| n <= MAX_TENSOR_ELEMS)
            .ok_or_else(|| {
                tensor_err(
                    what,
                    format!("shape {dims:?} has more than the limit of 2^28 elements"),
                )
            })?;
    }
    // Rank 0 is a scalar; a zero dim anywhere gives 0 elements.
    if dims.contains(&0) {
        n = 0;
    }
    Ok(n as usize)
}

/// ONNX's name for a `TensorProto.DataType` code.
pub(crate) fn dtype_name(code: i32) -> String {
    tensor_proto::DataType::try_from(code)
        .map(|d| d.as_str_name().to_string())
        .unwrap_or_else(|_| format!("unknown data type {code}"))
}

/// The IR element type for an ONNX data type code, for the types fqc can hold.
pub(crate) fn ir_dtype(code: i32) -> Option<DType> {
    use tensor_proto::DataType as D;
    match D::try_from(code).ok()? {
        D::Float => Some(DType::F32),
        D::Int64 => Some(DType::I64),
        D::Int32 => Some(DType::I32),
        D::Uint8 => Some(DType::U8),
        D::Int8 => Some(DType::I8),
        // Booleans (e.g. Dropout's training_mode) are held as 0/1 bytes.
        D::Bool => Some(DType::U8),
        _ => None,
    }
}

/// The IR type of a tensor payload.
pub(crate) fn data_dtype(d: &TensorData) -> DType {
    match d {
        TensorData::F32(_) => DType::F32,
        TensorData::I32(_) => DType::I32,
        TensorData::I64(_) => DType::I64,
        TensorData::I8(_) => DType::I8,
        TensorData::U8(_) => DType::U8,
    }
}

/// Decodes `tp` (taking its data out of it to avoid a copy) into a tensor.
pub(crate) fn decode(tp: &mut TensorProto, ext: &External, budget: &mut Budget) -> Result<Tensor> {
    let name = if tp.name().is_empty() {
        "<unnamed>".to_string()
    } else {
        tp.name().to_string()
    };
    let name = name.as_str();
    let n = checked_numel(name, &tp.dims)?;
    let code = tp.data_type();
    let dtype = ir_dtype(code).ok_or_else(|| {
        tensor_err(
            name,
            format!(
                "element type {} is not supported (FLOAT, INT64, INT32, UINT8, INT8 and BOOL are)",
                dtype_name(code)
            ),
        )
    })?;
    if tp.segment.is_some() {
        return Err(tensor_err(name, "segmented tensors are not supported"));
    }
    budget.take(name, n as u64)?;
    let esize = match dtype {
        DType::F32 | DType::I32 => 4,
        DType::I64 => 8,
        _ => 1,
    };
    let nbytes = n * esize; // ≤ 2^31: n ≤ 2^28, esize ≤ 8
    let raw: Option<Vec<u8>> = if tp.data_location() == tensor_proto::DataLocation::External {
        Some(read_external(name, tp, ext, nbytes)?)
    } else {
        match tp.raw_data.take() {
            Some(r) if !r.is_empty() || n == 0 => Some(r),
            _ => None,
        }
    };
    let shape: Vec<usize> = tp.dims.iter().map(|&d| d as usize).collect();
    let data = if let Some(raw) = raw {
        if raw.len() != nbytes {
            return Err(tensor_err(
                name,
                format!(
                    "raw data has {} bytes, but shape {:?} of {} needs {nbytes}",
                    raw.len(),
                    tp.dims,
                    dtype_name(code)
                ),
            ));
        }
        from_le_bytes(dtype, &raw)
    } else {
        let have = match dtype {
            DType::F32 => tp.float_data.len(),
            DType::I64 => tp.int64_data.len(),
            _ => tp.int32_data.len(),
        };
        if have != n {
            return Err(tensor_err(
                name,
                format!(
                    "has {have} stored elements, but shape {:?} needs {n}",
                    tp.dims
                ),
            ));
        }
        match dtype {
            DType::F32 => TensorData::F32(std::mem::take(&mut tp.float_data)),
            DType::I64 => TensorData::I64(std::mem::take(&mut tp.int64_data)),
            DType::I32 => TensorData::I32(std::mem::take(&mut tp.int32_data)),
            DType::I8 => TensorData::I8(tp.int32_data.iter().map(|&v| v as i8).collect()),
            _ => TensorData::U8(tp.int32_data.iter().map(|&v| v as u8).collect()),
        }
    };
    Ok(Tensor { shape, data })
}

fn from_le_bytes(dtype: DType, raw: &[u8]) -> TensorData {
    match dtype {
        DType::F32 => TensorData::F32(
            raw.chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
        ),
        DType::I32 => TensorData::I32(
            raw.chunks_exact(4)
                .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
        ),
        DType::I64 => TensorData::I64(
            raw.chunks_exact(8)
                .map(|c| i64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
                .collect(),
        ),
        DType::I8 => TensorData::I8(raw.iter().map(|&b| b as i8).collect()),
        _ => TensorData::U8(raw.to_vec()),
    }
}

/// Reads exactly `nbytes` of external data for tensor `name`.
fn read_external(name: &str, tp: &TensorProto, ext: &External, nbytes: usize) -> Result<Vec<u8>> {
    let base = match ext {
        External::Refuse => {
            return Err(ext_err(
                name,
                "external data is not allowed when importing from bytes (import the model file instead)",
            ))
        }
        External::Dir(d) => d,
    };
    let (mut location, mut offset, mut length) = (None, 0u64, None);
    for kv in &tp.external_data {
        let parse = |v: &str| {
            v.parse::<u64>().map_err(|_| {
                ext_err(
                    name,
                    format!("`{}` is not a non-negative integer: `{v}`", kv.key()),
                )
            })
        };
        match kv.key() {
            "location" => location = Some(kv.value().to_string()),
            "offset" => offset = parse(kv.value())?,
            "length" => length = Some(parse(kv.value())?),
            "checksum" => {}
            k => return Err(ext_err(name, format!("unknown key `{k}`"))),
        }
    }
    let location = location.ok_or_else(|| ext_err(name, "no `location` given"))?;
    let rel = Path::new(&location);
    if location.is_empty()
        || rel.is_absolute()
        || location.starts_with('/')
        || location.starts_with('\\')
        || rel
            .components()
            .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir))
    {
        return Err(ext_err(
            name,
            format!("location `{location}` must be a relative path inside the model's folder"),
        ));
    }
    let full = base.join(rel);
    let canon = full
        .canonicalize()
        .map_err(|e| ext_err(name, format!("cannot open `{location}`: {e}")))?;
    if !canon.starts_with(base) {
        return Err(ext_err(
            name,
            format!("location `{location}` leaves the model's folder"),
        ));
    }
    let mut f =
        File::open(&canon).map_err(|e| ext_err(name, format!("cannot open `{location}`: {e}")))?;
    let size = f
        .metadata()
        .map_err(|e| ext_err(name, format!("cannot stat `{location}`: {e}")))?
        .len();
    if offset > size {
        return Err(ext_err(
            name,
            format!("offset {offset} is past the end of `{location}` ({size} bytes)"),
        ));
    }
    let length = length.unwrap_or(size - offset);
    if length != nbytes as u64 {
        return Err(ext_err(
            name,
            format!("length {length} does not match the {nbytes} bytes its shape needs"),
        ));
    }
    if offset.checked_add(length).is_none_or(|end| end > size) {
        return Err(ext_err(
            name,
            format!(
                "bytes {offset}..{} are past the end of `{location}` ({size} bytes)",
                offset.saturating_add(length)
            ),
        ));
    }
    let mut buf = vec![0u8; nbytes];
    f.seek(SeekFrom::Start(offset))
        .and_then(|_| f.read_exact(&mut buf))
        .map_err(|e| ext_err(name, format!("cannot read `{location}`: {e}")))?;
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_caps_the_model_total() {
        let mut b = Budget::default();
        for _ in 0..4 {
            b.take("w", MAX_TENSOR_ELEMS).unwrap();
        }
        let e = b.take("last", 1).unwrap_err().to_string();
        assert!(
            e.starts_with("tensor `last`: the model's tensors exceed the limit of 2^30"),
            "{e}"
        );
        assert!(b.take("x", u64::MAX).is_err());
    }

    #[test]
    fn numel_is_checked() {
        assert_eq!(checked_numel("t", &[]).unwrap(), 1);
        assert_eq!(checked_numel("t", &[4096, 25088]).unwrap(), 4096 * 25088);
        assert_eq!(checked_numel("t", &[0, 5]).unwrap(), 0);
        assert!(checked_numel("t", &[1 << 14, 1 << 14, 2]).is_err());
        assert!(checked_numel("t", &[-1]).is_err());
    }
}
