//! The NumPy `.npy` format (versions 1–3): read and write one tensor.
//!
//! Supported element types are those fqc's tensors hold: `<f4`, `<i4`, `<i8`, `|i1`,
//! `|u1` (and `|b1` read as u8), C order only. The header is parsed strictly (a Python
//! dict literal with `descr`, `fortran_order`, `shape`), the element count is computed
//! with checked arithmetic and capped at [`crate::MAX_ELEMENTS`], and the payload length
//! must match exactly, so a truncated or hostile file is a clear error.

use fqc_ir::{Tensor, TensorData};

use crate::{DataError, Result, MAX_ELEMENTS};

const MAGIC: &[u8] = b"\x93NUMPY";

fn err(msg: impl Into<String>) -> DataError {
    DataError::Format(msg.into())
}

/// Parses a whole `.npy` file.
pub fn read(bytes: &[u8]) -> Result<Tensor> {
    if bytes.len() < 10 || &bytes[..6] != MAGIC {
        return Err(err("not a .npy file (bad magic)"));
    }
    let major = bytes[6];
    let (hlen, start) = match major {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10usize),
        2 | 3 => {
            if bytes.len() < 12 {
                return Err(err("truncated .npy header"));
            }
            (
                u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
                12,
            )
        }
        v => return Err(err(format!("unsupported .npy version {v}"))),
    };
    let header = bytes
        .get(
            start
                ..start
                    .checked_add(hlen)
                    .ok_or_else(|| err("bad header length"))?,
        )
        .ok_or_else(|| err("truncated .npy header"))?;
    let header = std::str::from_utf8(header).map_err(|_| err("npy header is not text"))?;
    let descr = dict_value(header, "descr")?;
    let descr = descr.trim_matches(|c| c == '\'' || c == '"');
    let fortran = dict_value(header, "fortran_order")?;
    if fortran != "False" {
        return Err(err("Fortran-order .npy arrays are not supported"));
    }
    let shape = parse_shape(dict_value(header, "shape")?)?;
    let numel = shape
        .iter()
        .try_fold(1u64, |a, &d| a.checked_mul(d as u64))
        .filter(|&n| n <= MAX_ELEMENTS)
        .ok_or_else(|| err(format!("array of shape {shape:?} is too large")))?
        as usize;
    let payload = &bytes[start + hlen..];
    let size = match descr {
        "<f4" | "<i4" => 4,
        "<i8" => 8,
        "|i1" | "|u1" | "|b1" => 1,
        other => {
            return Err(err(format!(
            "unsupported .npy element type `{other}` (use float32, int32, int64, int8 or uint8)"
        )))
        }
    };
    if payload.len() != numel * size {
        return Err(err(format!(
            "payload is {} bytes, shape {shape:?} of `{descr}` needs {}",
            payload.len(),
            numel * size
        )));
    }
    let data = match descr {
        "<f4" => TensorData::F32(
            payload
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes(c.try_into().unwrap_or_default()))
                .collect(),
        ),
        "<i4" => TensorData::I32(
            payload
                .chunks_exact(4)
                .map(|c| i32::from_le_bytes(c.try_into().unwrap_or_default()))
                .collect(),
        ),
        "<i8" => TensorData::I64(
            payload
                .chunks_exact(8)
                .map(|c| i64::from_le_bytes(c.try_into().unwrap_or_default()))
                .collect(),
        ),
        "|i1" => TensorData::I8(payload.iter().map(|&b| b as i8).collect()),
        _ => TensorData::U8(payload.to_vec()),
    };
    Ok(Tensor { shape, data })
}

/// Finds `'key': value` in the header dict and returns the raw value text.
fn dict_value<'a>(header: &'a str, key: &str) -> Result<&'a str> {
    let pat_a = format!("'{key}':");
    let pat_b = format!("\"{key}\":");
    let pos = header
        .find(&pat_a)
        .map(|p| p + pat_a.len())
        .or_else(|| header.find(&pat_b).map(|p| p + pat_b.len()))
        .ok_or_else(|| err(format!("npy header lacks `{key}`")))?;
    let rest = header[pos..].trim_start();
    let end = if rest.starts_with('(') {
        rest.find(')').map(|e| e + 1)
    } else {
        rest.find([',', '}'])
    }
    .ok_or_else(|| err(format!("npy header: unterminated `{key}`")))?;
    Ok(rest[..end].trim())
}

fn parse_shape(s: &str) -> Result<Vec<usize>> {
    let inner = s
        .strip_prefix('(')
        .and_then(|s| s.strip_suffix(')'))
        .ok_or_else(|| err(format!("npy header: bad shape `{s}`")))?;
    inner
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| {
            p.parse::<usize>()
                .map_err(|_| err(format!("npy header: bad dimension `{p}`")))
        })
        .collect()
}

/// Serialises a tensor as a version-1.0 `.npy` file.
pub fn write(t: &Tensor) -> Vec<u8> {
    let descr = match t.data {
        TensorData::F32(_) => "<f4",
        TensorData::I32(_) => "<i4",
        TensorData::I64(_) => "<i8",
        TensorData::I8(_) => "|i1",
        TensorData::U8(_) => "|u1",
    };
    let dims: Vec<String> = t.shape.iter().map(|d| d.to_string()).collect();
    let shape = match dims.len() {
        1 => format!("({},)", dims[0]),
        _ => format!("({})", dims.join(", ")),
    };
    let mut header = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}");
    // Pad so that magic + version + length + header is a multiple of 64, ending in '\n'.
    let total = MAGIC.len() + 2 + 2 + header.len() + 1;
    header.push_str(&" ".repeat((64 - total % 64) % 64));
    header.push('\n');
    let mut out = Vec::with_capacity(10 + header.len() + t.numel() * 8);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&[1, 0]);
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    match &t.data {
        TensorData::F32(v) => v
            .iter()
            .for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
        TensorData::I32(v) => v
            .iter()
            .for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
        TensorData::I64(v) => v
            .iter()
            .for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
        TensorData::I8(v) => v
            .iter()
            .for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
        TensorData::U8(v) => out.extend_from_slice(v),
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_every_dtype() {
        for data in [
            TensorData::F32(vec![1.5, -2.0, 0.0, 3.25, 1e-7, f32::MAX]),
            TensorData::I32(vec![1, -2, 3, 4, 5, 6]),
            TensorData::I64(vec![1, -2, 3, 4, 5, i64::MIN]),
            TensorData::I8(vec![1, -2, 3, 4, 5, -128]),
            TensorData::U8(vec![1, 2, 3, 4, 5, 255]),
        ] {
            let t = Tensor {
                shape: vec![2, 3],
                data,
            };
            assert_eq!(read(&write(&t)).unwrap(), t);
        }
        let scalar = Tensor {
            shape: vec![],
            data: TensorData::F32(vec![7.0]),
        };
        assert_eq!(read(&write(&scalar)).unwrap(), scalar);
        let vector = Tensor {
            shape: vec![3],
            data: TensorData::U8(vec![1, 2, 3]),
        };
        assert_eq!(read(&write(&vector)).unwrap(), vector);
    }

    #[test]
    fn rejects_truncated_and_hostile_files() {
        let t = Tensor {
            shape: vec![2, 3],
            data: TensorData::F32(vec![0.0; 6]),
        };
        let bytes = write(&t);
        for cut in [0, 5, 9, 20, bytes.len() - 1] {
            assert!(read(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        let edit = |from: &str, to: &str| {
            let mut b = bytes.clone();
            let pos = b
                .windows(from.len())
                .position(|w| w == from.as_bytes())
                .unwrap();
            b.splice(pos..pos + from.len(), to.bytes());
            b
        };
        let e = read(&edit("(2, 3)", "(99999999, 99999999)"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("too large"), "{e}");
        let e = read(&edit("<f4", "<f8")).unwrap_err().to_string();
        assert!(e.contains("unsupported .npy element type `<f8`"), "{e}");
    }
}
