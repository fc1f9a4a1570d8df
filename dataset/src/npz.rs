//! NumPy `.npz` archives (zip of `.npy` members, stored or deflated).
//!
//! Members are looked up by array name (without `.npy`). Each member's declared
//! uncompressed size is checked against the element cap before reading and the read is
//! bounded by it, so a zip bomb or a lying header cannot make us allocate without limit.

use std::fs::File;
use std::io::{BufReader, Read, Seek};
use std::path::Path;

use fqc_ir::Tensor;

use crate::{npy, DataError, Result, MAX_ELEMENTS};

/// What an archive is read from: a file, or bytes in memory.
trait Source: Read + Seek + Send {}
impl<T: Read + Seek + Send> Source for T {}

/// An open `.npz` archive.
pub struct Npz {
    path: String,
    archive: zip::ZipArchive<Box<dyn Source>>,
}

impl std::fmt::Debug for Npz {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Npz").field("path", &self.path).finish()
    }
}

impl Npz {
    pub fn open(path: &Path) -> Result<Npz> {
        let p = path.display().to_string();
        let file = File::open(path).map_err(|source| DataError::Io {
            path: p.clone(),
            source,
        })?;
        Npz::from_source(p, Box::new(BufReader::new(file)))
    }

    /// An archive held in memory; `name` stands for its path in messages.
    pub fn from_bytes(name: &str, bytes: Vec<u8>) -> Result<Npz> {
        Npz::from_source(name.to_string(), Box::new(std::io::Cursor::new(bytes)))
    }

    fn from_source(path: String, source: Box<dyn Source>) -> Result<Npz> {
        let archive = zip::ZipArchive::new(source).map_err(|e| DataError::File {
            path: path.clone(),
            msg: format!("not a .npz archive: {e}"),
        })?;
        Ok(Npz { path, archive })
    }

    /// The path (or name) the archive was opened from.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// Array names in the archive.
    pub fn names(&self) -> Vec<String> {
        self.archive
            .file_names()
            .filter_map(|n| n.ok())
            .map(|n| n.trim_end_matches(".npy").to_string())
            .collect()
    }

    pub fn contains(&self, name: &str) -> bool {
        self.archive
            .index_for_name(&format!("{name}.npy"))
            .is_some()
    }

    /// Reads array `name`.
    pub fn read(&mut self, name: &str) -> Result<Tensor> {
        let path = self.path.clone();
        let fail = |msg: String| DataError::File {
            path: path.clone(),
            msg,
        };
        let mut member = self
            .archive
            .by_name(&format!("{name}.npy"))
            .map_err(|_| fail(format!("no array `{name}`")))?;
        let limit = MAX_ELEMENTS * 8 + 4096;
        if member.size() > limit {
            return Err(fail(format!(
                "array `{name}` is too large ({} bytes)",
                member.size()
            )));
        }
        let mut bytes = Vec::with_capacity(member.size() as usize);
        (&mut member)
            .take(limit)
            .read_to_end(&mut bytes)
            .map_err(|e| fail(format!("array `{name}`: {e}")))?;
        npy::read(&bytes).map_err(|e| fail(format!("array `{name}`: {e}")))
    }
}

/// Writes `arrays` (name, tensor) as an uncompressed `.npz` that `numpy.load` reads.
pub fn write(path: &Path, arrays: &[(&str, &Tensor)]) -> Result<()> {
    let p = path.display().to_string();
    let fail = |msg: String| DataError::File {
        path: p.clone(),
        msg,
    };
    let file = File::create(path).map_err(|source| DataError::Io {
        path: p.clone(),
        source,
    })?;
    let mut zip = zip::ZipWriter::new(std::io::BufWriter::new(file));
    let opts = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Stored)
        .large_file(
            arrays
                .iter()
                .any(|(_, t)| t.numel() as u64 * 8 > u32::MAX as u64 / 2),
        );
    for (name, t) in arrays {
        zip.start_file(format!("{name}.npy"), opts)
            .map_err(|e| fail(format!("array `{name}`: {e}")))?;
        std::io::Write::write_all(&mut zip, &npy::write(t)).map_err(|source| DataError::Io {
            path: p.clone(),
            source,
        })?;
    }
    let mut inner = zip
        .finish()
        .map_err(|e| fail(format!("cannot finish the archive: {e}")))?;
    std::io::Write::flush(&mut inner).map_err(|source| DataError::Io {
        path: p.clone(),
        source,
    })?;
    Ok(())
}
