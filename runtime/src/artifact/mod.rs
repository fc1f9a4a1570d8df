//! The `.fqc` artifact: a compiled graph saved as one self-describing, versioned,
//! checksummed file, and its verified, bounded loader.
//!
//! # Layout
//!
//! ```text
//! offset  size  field
//!      0     8  magic  89 'F' 'Q' 'C' '\r' '\n' 1A '\n'
//!      8     4  format version, u32 little-endian (this fqc writes 3, reads 1 to 3)
//!     12     8  body length in bytes, u64 little-endian
//!     20     8  FNV-1a 64 checksum of the body, u64 little-endian
//!     28     …  body: a prost-encoded `schema::GraphProto`
//! ```
//!
//! The magic follows PNG's: the high first byte and the CR-LF / ^Z / LF tail make a file
//! mangled by a text-mode transfer fail the magic check instead of decoding wrongly.
//! The version comes right after it and is checked before anything else is read, so a
//! newer fqc may change everything after it. Constant payloads inside the body are
//! encoded (`encoding`): ternary in base 3 (five weights per byte), `i32` thresholds as
//! bit-packed second differences per row, small-range integers at their range's width,
//! anything else packed plainly (`pack`: `uB`/`iB` at B bits, wide types
//! little-endian).
//!
//! # Versions
//!
//! * 1: every payload `Plain` (ternary at 2 bits, `i32` at 32 bits).
//! * 2: adds `ConstProto.encoding` (`Trits`, `Delta2`, `Narrow`); a version-1 reader
//!   would ignore that field and misread the payloads, hence the new version.
//! * 3: ops are stored as the IR's op table describes them — a name and a list of typed
//!   attributes (`NodeProto.table_op`) — instead of one message per op kind, so ops
//!   added to the IR need no schema change. A version-2 reader would find no op.
//!
//! This fqc reads all three and writes 3. Old artifacts keep loading: a version-1 body
//! is a version-2 body whose payloads are all `Plain` (a non-`Plain` encoding in a
//! version-1 file is corrupt), and version-1/2 ops are decoded by `legacy.rs` into the
//! same IR ops they were written from.
//!
//! # Why loading is safe on any input
//!
//! [`load`] checks, in order: magic, version, header length, exact body length (a
//! truncated file is reported as such), checksum (FNV-1a changes under any single-byte
//! change, since each step is a bijection of the state; so a flipped byte is caught even
//! where it would still decode), protobuf decoding (prost allocates at most in
//! proportion to the input) and the body's end marker (so a body cut between two
//! fields, which protobuf alone would accept, is still rejected), the structural and
//! size checks of `codec` (ids in range, per-tensor and total element caps with checked
//! arithmetic, payload lengths bounding the element counts, all before allocating;
//! strict payload decoding: exact counts, no trailing bytes), and finally
//! `fqc_ir::verify`, so the returned graph satisfies every IR invariant; a graph that
//! decodes but is semantically broken is an [`ArtifactError::Invalid`] naming the node.
//! No step indexes unchecked or recurses on input-controlled depth.
//!
//! [`save`] writes the compacted graph (`Graph::compact`: only what the outputs need,
//! numbered as the text format numbers it), so `text::print(load(save(g)))` equals
//! `text::print(g)`. [`save_file`] writes a temporary file next to the target and
//! renames it over the target, so an interrupted save never leaves a half-written file.

mod codec;
mod convert;
pub mod encoding;
pub mod legacy;
pub mod pack;
pub mod schema;

use std::fs;
use std::path::{Path, PathBuf};

use fqc_ir::Graph;
use prost::Message;

/// The first 8 bytes of every `.fqc` file.
pub const MAGIC: [u8; 8] = *b"\x89FQC\r\n\x1a\n";
/// The format version this fqc writes, and the newest it reads.
pub const FORMAT_VERSION: u32 = 3;
/// The oldest format version this fqc reads.
pub const MIN_FORMAT_VERSION: u32 = 1;
/// Bytes before the body: magic, version, body length, checksum.
pub const HEADER_LEN: usize = 28;
/// Most elements any one value may have (per batch item).
pub const MAX_TENSOR_ELEMENTS: u64 = 1 << 28;
/// Most elements all constants of one artifact may have together.
pub const MAX_TOTAL_ELEMENTS: u64 = 1 << 30;

/// Why an artifact could not be saved or loaded.
#[derive(Debug, thiserror::Error)]
pub enum ArtifactError {
    #[error("not a .fqc file (its first bytes are not the .fqc magic)")]
    NotFqc,
    #[error(
        "this .fqc was written by a newer fqc (format {found}, this fqc reads up to {supported})"
    )]
    NewerVersion { found: u32, supported: u32 },
    #[error("truncated .fqc file: {0}")]
    Truncated(String),
    #[error(
        "corrupt .fqc file: body checksum {computed:016x} does not match the stored {stored:016x}"
    )]
    Checksum { stored: u64, computed: u64 },
    #[error("corrupt .fqc file: cannot decode the graph: {0}")]
    Decode(#[from] prost::DecodeError),
    #[error("corrupt .fqc file: {0}")]
    Corrupt(String),
    #[error(".fqc file exceeds a size limit: {0}")]
    TooLarge(String),
    #[error("the graph in the .fqc file is invalid: {0}")]
    Invalid(#[source] fqc_ir::IrError),
    #[error("cannot save an invalid graph: {0}")]
    InvalidGraph(#[source] fqc_ir::IrError),
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// FNV-1a 64 over `bytes`: the body checksum stored in the header.
pub fn checksum(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// Prefixes an encoded body with the header (magic, version, length, checksum).
pub fn frame(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + body.len());
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    out.extend_from_slice(&(body.len() as u64).to_le_bytes());
    out.extend_from_slice(&checksum(body).to_le_bytes());
    out.extend_from_slice(body);
    out
}

/// Serializes `g` as a `.fqc` artifact.
///
/// `g` should pass `fqc_ir::verify` (every graph the importer and passes produce does);
/// it is then saved compacted. A graph failing `verify` is written as-is, never
/// panicking, and [`load`] reports why it is invalid; use [`try_save`] to refuse it up
/// front.
pub fn save(g: &Graph) -> Vec<u8> {
    let proto = if fqc_ir::verify(g).is_ok() {
        codec::encode(&g.compact())
    } else {
        codec::encode(g)
    };
    frame(&proto.encode_to_vec())
}

/// [`save`], refusing a graph that fails `fqc_ir::verify`.
pub fn try_save(g: &Graph) -> Result<Vec<u8>, ArtifactError> {
    fqc_ir::verify(g).map_err(ArtifactError::InvalidGraph)?;
    Ok(frame(&codec::encode(&g.compact()).encode_to_vec()))
}

fn le_u32(b: &[u8]) -> u32 {
    u32::from_le_bytes([b[0], b[1], b[2], b[3]])
}

fn le_u64(b: &[u8]) -> u64 {
    u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]])
}

/// Loads a `.fqc` artifact, checking it fully (see the module docs).
pub fn load(bytes: &[u8]) -> Result<Graph, ArtifactError> {
    let Some(magic) = bytes.get(..MAGIC.len()) else {
        return Err(if MAGIC.starts_with(bytes) && !bytes.is_empty() {
            ArtifactError::Truncated(format!("{} bytes, shorter than the magic", bytes.len()))
        } else if bytes.is_empty() {
            ArtifactError::Truncated("the file is empty".into())
        } else {
            ArtifactError::NotFqc
        });
    };
    if magic != MAGIC {
        return Err(ArtifactError::NotFqc);
    }
    let Some(version) = bytes.get(8..12) else {
        return Err(ArtifactError::Truncated(
            "the header ends inside the format version".into(),
        ));
    };
    let version = le_u32(version);
    if version > FORMAT_VERSION {
        return Err(ArtifactError::NewerVersion {
            found: version,
            supported: FORMAT_VERSION,
        });
    }
    if version < MIN_FORMAT_VERSION {
        return Err(ArtifactError::Corrupt(format!(
            "format version {version} does not exist"
        )));
    }
    let Some(header) = bytes.get(..HEADER_LEN) else {
        return Err(ArtifactError::Truncated(format!(
            "{} bytes, shorter than the {HEADER_LEN}-byte header",
            bytes.len()
        )));
    };
    let declared = le_u64(&header[12..20]);
    let stored = le_u64(&header[20..28]);
    let body = &bytes[HEADER_LEN..];
    let found = body.len() as u64;
    if found < declared {
        return Err(ArtifactError::Truncated(format!(
            "the header declares a {declared}-byte body, only {found} bytes follow"
        )));
    }
    if found > declared {
        return Err(ArtifactError::Corrupt(format!(
            "{} bytes after the declared {declared}-byte body",
            found - declared
        )));
    }
    let computed = checksum(body);
    if computed != stored {
        return Err(ArtifactError::Checksum { stored, computed });
    }
    let proto = schema::GraphProto::decode(body)?;
    let g = codec::decode(&proto, version)?;
    fqc_ir::verify(&g).map_err(ArtifactError::Invalid)?;
    Ok(g)
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> ArtifactError + '_ {
    move |source| ArtifactError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Reads and [`load`]s the artifact at `path`.
pub fn load_file(path: impl AsRef<Path>) -> Result<Graph, ArtifactError> {
    let path = path.as_ref();
    let bytes = fs::read(path).map_err(io_err(path))?;
    load(&bytes)
}

/// [`try_save`]s `g` to `path` as `fqc_files::write` writes every file: a regular file
/// atomically (a fresh temporary file in the same folder, synced, then renamed over
/// `path`; on any failure the temporary file is removed and an existing file at `path`
/// is left untouched), an existing device node or FIFO in place.
pub fn save_file(path: impl AsRef<Path>, g: &Graph) -> Result<(), ArtifactError> {
    let path = path.as_ref();
    let bytes = try_save(g)?;
    fqc_files::write(path, &bytes).map_err(|e| ArtifactError::Io {
        path: path.to_path_buf(),
        source: match e {
            fqc_files::FileError::Io { error, .. } => error,
            other => std::io::Error::other(other.to_string()),
        },
    })
}
