//! Writing to stdout and stderr without ever panicking.
//!
//! `println!` panics when stdout is closed (`fqc inspect big.onnx | head -1`) or full
//! (`> /dev/full`). Every line the CLI prints goes through [`outln!`] / [`out!`]
//! instead, which return an error: a failed write stops the command there. `main` then
//! ends a closed pipe quietly with exit status 0, as `ls | head` leaves `ls` quietly
//! (the reader has what it wanted), and any other stdout failure as one `error:` line
//! and exit status 1. Messages for stderr (warnings, notes, the final error line) go
//! through [`warn`], which ignores a failure: there is nowhere left to report it.

use std::fmt;
use std::io::Write;

/// A failed write to stdout; `main` tells a closed pipe from other failures by it.
#[derive(Debug, thiserror::Error)]
#[error("cannot write to stdout: {0}")]
pub struct StdoutError(pub std::io::Error);

impl StdoutError {
    /// Whether the reader went away (a closed pipe).
    pub fn is_closed_pipe(&self) -> bool {
        self.0.kind() == std::io::ErrorKind::BrokenPipe
    }
}

/// Writes `args` to stdout.
pub fn write(args: fmt::Arguments<'_>) -> Result<(), StdoutError> {
    std::io::stdout()
        .lock()
        .write_fmt(args)
        .map_err(StdoutError)
}

/// Flushes stdout (at the end of a command, so a failure is still reported).
pub fn flush() -> Result<(), StdoutError> {
    std::io::stdout().lock().flush().map_err(StdoutError)
}

/// Writes one line to stderr, ignoring a failure.
pub fn warn(args: fmt::Arguments<'_>) {
    let mut e = std::io::stderr().lock();
    let _ = e.write_fmt(args);
    let _ = e.write_all(b"\n");
}

/// `println!` that returns `Result<(), StdoutError>` instead of panicking.
macro_rules! outln {
    () => {
        $crate::out::write(format_args!("\n"))
    };
    ($($arg:tt)*) => {
        $crate::out::write(format_args!("{}\n", format_args!($($arg)*)))
    };
}

/// `print!` that returns `Result<(), StdoutError>` instead of panicking.
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::out::write(format_args!($($arg)*))
    };
}

/// One line on stderr (`warning: …`, `note: …`), never failing.
macro_rules! warnln {
    ($($arg:tt)*) => {
        $crate::out::warn(format_args!($($arg)*))
    };
}

pub(crate) use {out, outln, warnln};
