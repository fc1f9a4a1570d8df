//! The files fqc writes, and the one policy every one of them follows.
//!
//! * **No output is an input.** A command records what it reads ([`Guard::input`]) and
//!   claims each path it will write ([`Guard::output`]) before it computes anything. A
//!   claim is refused when the path names the same file as an input or as an earlier
//!   output — compared by canonical path (so `./x.npy`, `/abs/x.npy`, `d/../d/x.npy` and
//!   symbolic links are caught) and by device + inode (so hard links are caught) — or an
//!   existing file inside an input folder (a data set given as a folder of images), or a
//!   folder, or a read-only file. Claims come before the work, so a refused output costs
//!   nothing and writes nothing.
//! * **Regular files are written atomically** ([`write`]): the bytes go to a new
//!   temporary file in the same folder (`create_new`, so never an existing file), are
//!   synced, and the temporary file is renamed over the target; the target's
//!   permissions are kept. A rename within one folder is atomic on POSIX file systems,
//!   so a reader sees the old file or the new one, never a mix, and a failure (a full
//!   disk, a dead process) leaves the old file as it was. The temporary file is removed
//!   on every error path: it is owned by a value whose `Drop` removes it unless the
//!   rename succeeded.
//! * **Other existing files are written in place**: a device node (`/dev/null`,
//!   `/dev/full`, a terminal) or a FIFO is opened for writing and written, never replaced
//!   by a regular file. A symbolic link is followed: the file it points to is written
//!   (atomically, if regular) and the link stays.
//!
//! Why this is sound: two paths name the same file exactly when they resolve to the same
//! canonical path or to the same (device, inode) pair; both are checked, for every
//! input against every output, and for outputs against each other. The one window left
//! is a file system changed by another process between the claim and the write, which no
//! check made before writing can close.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Errors from claiming or writing an output file.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// The output would overwrite something the command reads or writes elsewhere.
    #[error("{role} {path} {why}; nothing was written: choose another path")]
    Refused {
        role: String,
        path: String,
        why: String,
    },
    /// The file system refused a read or write. (The I/O error is part of the message,
    /// not a `source`, so an error chain does not print it twice.)
    #[error("cannot write {path}: {error}")]
    Io { path: String, error: std::io::Error },
}

pub type Result<T, E = FileError> = std::result::Result<T, E>;

/// What identifies a file: its canonical path and, where the platform has them, its
/// device and inode numbers.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Identity {
    canonical: PathBuf,
    inode: Option<(u64, u64)>,
}

impl Identity {
    fn same_file(&self, other: &Identity) -> bool {
        self.canonical == other.canonical
            || matches!((self.inode, other.inode), (Some(a), Some(b)) if a == b)
    }
}

#[cfg(unix)]
fn inode_of(meta: &fs::Metadata) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    Some((meta.dev(), meta.ino()))
}

#[cfg(not(unix))]
fn inode_of(_meta: &fs::Metadata) -> Option<(u64, u64)> {
    None
}

/// The identity of an existing file or folder (links followed), or None if `path`
/// does not exist.
fn existing_identity(path: &Path) -> Option<(Identity, fs::Metadata)> {
    let meta = fs::metadata(path).ok()?;
    let canonical = fs::canonicalize(path).ok()?;
    Some((
        Identity {
            canonical,
            inode: inode_of(&meta),
        },
        meta,
    ))
}

/// The canonical path a not-yet-existing `path` would have: its folder canonicalized,
/// joined with its file name.
fn future_canonical(path: &Path) -> Option<PathBuf> {
    let name = path.file_name()?;
    let dir = parent_dir(path);
    Some(fs::canonicalize(dir).ok()?.join(name))
}

/// The folder a file path lives in (`.` for a bare name).
fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    }
}

#[derive(Debug)]
struct Entry {
    role: String,
    shown: PathBuf,
    identity: Identity,
    is_dir: bool,
}

/// The inputs and outputs of one command (see the module docs).
#[derive(Debug, Default)]
pub struct Guard {
    inputs: Vec<Entry>,
    outputs: Vec<Entry>,
}

impl Guard {
    pub fn new() -> Guard {
        Guard::default()
    }

    /// Records that the command reads `path` as `role` (e.g. `the model`, `--data`).
    /// A path that does not exist is not recorded: reading it will fail on its own.
    pub fn input(&mut self, role: &str, path: &Path) -> &mut Guard {
        if let Some((identity, meta)) = existing_identity(path) {
            self.inputs.push(Entry {
                role: role.to_string(),
                shown: path.to_path_buf(),
                identity,
                is_dir: meta.is_dir(),
            });
        }
        self
    }

    /// Claims `path` as the output `role` (e.g. `--output`): refused when it is the same
    /// file as an input or an earlier output, an existing file inside an input folder, a
    /// folder, or a read-only file. A claimed path may be written with [`write`].
    pub fn output(&mut self, role: &str, path: &Path) -> Result<()> {
        let refuse = |why: String| FileError::Refused {
            role: role.to_string(),
            path: path.display().to_string(),
            why,
        };
        let target = resolve_links(path).map_err(|why| refuse(why.to_string()))?;
        let (identity, exists) = match existing_identity(&target) {
            Some((identity, meta)) => {
                if meta.is_dir() {
                    return Err(refuse("is a folder".into()));
                }
                if meta.is_file() && meta.permissions().readonly() {
                    return Err(refuse("is read-only".into()));
                }
                (identity, true)
            }
            None => {
                let canonical = future_canonical(&target).ok_or_else(|| {
                    refuse(format!(
                        "is not in an existing folder ({} cannot be opened)",
                        parent_dir(&target).display()
                    ))
                })?;
                (
                    Identity {
                        canonical,
                        inode: None,
                    },
                    false,
                )
            }
        };
        for e in &self.inputs {
            if e.identity.same_file(&identity) {
                return Err(refuse(format!(
                    "is the same file as {} {}",
                    e.role,
                    e.shown.display()
                )));
            }
            if e.is_dir && exists && identity.canonical.starts_with(&e.identity.canonical) {
                return Err(refuse(format!(
                    "is a file inside {} {}",
                    e.role,
                    e.shown.display()
                )));
            }
        }
        if let Some(e) = self
            .outputs
            .iter()
            .find(|e| e.identity.same_file(&identity))
        {
            return Err(refuse(format!(
                "is the same file as {} {}",
                e.role,
                e.shown.display()
            )));
        }
        self.outputs.push(Entry {
            role: role.to_string(),
            shown: path.to_path_buf(),
            identity,
            is_dir: false,
        });
        Ok(())
    }

    /// [`Guard::output`], then [`write`].
    pub fn write(&mut self, role: &str, path: &Path, bytes: &[u8]) -> Result<()> {
        self.output(role, path)?;
        write(path, bytes)
    }
}

/// Where writing `path` lands: `path` itself, or for a symbolic link the file it points
/// to (the link is kept). A dangling link is refused.
fn resolve_links(path: &Path) -> std::result::Result<PathBuf, &'static str> {
    match fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => {
            fs::canonicalize(path).map_err(|_| "is a symbolic link to nothing")
        }
        _ => Ok(path.to_path_buf()),
    }
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> FileError + '_ {
    move |error| FileError::Io {
        path: path.display().to_string(),
        error,
    }
}

/// Writes `bytes` to `path` by the policy of the module docs: atomically for a regular
/// file (new or replaced), in place for an existing device node or FIFO, through a
/// symbolic link to its target. Does not check inputs; claim the path with
/// [`Guard::output`] first.
pub fn write(path: &Path, bytes: &[u8]) -> Result<()> {
    let target = resolve_links(path).map_err(|why| FileError::Io {
        path: path.display().to_string(),
        error: std::io::Error::new(std::io::ErrorKind::NotFound, why),
    })?;
    let meta = fs::metadata(&target).ok();
    match &meta {
        Some(m) if m.is_dir() => Err(FileError::Io {
            path: path.display().to_string(),
            error: std::io::Error::new(std::io::ErrorKind::IsADirectory, "it is a folder"),
        }),
        Some(m) if !m.is_file() => write_in_place(&target, bytes).map_err(io_error(path)),
        _ => write_atomically(&target, meta.as_ref(), bytes),
    }
}

/// Writes into an existing non-regular file (device, FIFO) without replacing it.
fn write_in_place(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut f = fs::OpenOptions::new().write(true).open(path)?;
    f.write_all(bytes)?;
    f.flush()
}

/// A temporary file that removes itself unless [`TempFile::persist`] renamed it.
struct TempFile {
    path: PathBuf,
    file: Option<fs::File>,
}

impl TempFile {
    /// A new, uniquely named file `.NAME.fqc-tmp-PID-K` beside `target`.
    fn beside(target: &Path) -> Result<TempFile> {
        let dir = parent_dir(target);
        let name = target
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .ok_or_else(|| FileError::Io {
                path: target.display().to_string(),
                error: std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    "the path has no file name",
                ),
            })?;
        let pid = std::process::id();
        let mut last = None;
        for k in 0..64u32 {
            let path = dir.join(format!(".{name}.fqc-tmp-{pid}-{k}"));
            match fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
            {
                Ok(file) => {
                    return Ok(TempFile {
                        path,
                        file: Some(file),
                    })
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => last = Some(e),
                Err(e) => return Err(io_error(target)(e)),
            }
        }
        Err(io_error(target)(last.unwrap_or_else(|| {
            std::io::Error::other("no free temporary file name")
        })))
    }

    fn persist(mut self, target: &Path) -> std::io::Result<()> {
        if let Some(f) = self.file.take() {
            f.sync_all()?;
        }
        fs::rename(&self.path, target)?;
        self.path = PathBuf::new();
        Ok(())
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        self.file = None;
        if !self.path.as_os_str().is_empty() {
            let _ = fs::remove_file(&self.path);
        }
    }
}

fn write_atomically(target: &Path, old: Option<&fs::Metadata>, bytes: &[u8]) -> Result<()> {
    let mut tmp = TempFile::beside(target)?;
    let written = (|| {
        let f = tmp
            .file
            .as_mut()
            .ok_or_else(|| std::io::Error::other("closed"))?;
        f.write_all(bytes)?;
        if let Some(m) = old {
            f.set_permissions(m.permissions())?;
        }
        Ok(())
    })();
    written
        .and_then(|()| tmp.persist(target))
        .map_err(io_error(target))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_rename_removes_the_temporary_file() {
        let dir = std::env::temp_dir().join(format!("fqc-files-unit-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let target = dir.join("out.fqc");
        let tmp = TempFile::beside(&target).unwrap();
        let tmp_path = tmp.path.clone();
        assert!(tmp_path.exists());
        let e = tmp.persist(&dir.join("no/such/folder/out.fqc"));
        assert!(e.is_err());
        assert!(!tmp_path.exists(), "the temporary file must be gone");
        let _ = fs::remove_dir_all(&dir);
    }
}
