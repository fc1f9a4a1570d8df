//! Helpers shared by the CLI tests: where the repository is, scratch folders, running
//! the `fqc` binary, and the one-line-error check every bad request must pass.
#![allow(dead_code)] // each test file uses a subset

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("cli is inside the repo")
        .to_path_buf()
}

/// `rel` inside the repository, as a string argument.
pub fn path(rel: &str) -> String {
    repo().join(rel).display().to_string()
}

/// A fresh-per-process scratch folder `fqc-<test>-<pid>-<name>`.
pub fn scratch(test: &str, name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("fqc-{test}-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("create scratch folder");
    dir
}

pub fn fqc(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_fqc"))
        .args(args)
        .output()
        .expect("spawn fqc")
}

/// Runs `fqc ARGS`, requires success, returns stdout.
pub fn ok(args: &[&str]) -> String {
    let out = fqc(args);
    assert!(
        out.status.success(),
        "fqc {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 output")
}

/// Runs `fqc ARGS` under a 2 GiB address-space limit (an attempt to allocate for a
/// hostile shape would abort) and checks it exits 1 — not a panic or a signal — with
/// exactly one `error:` line containing every word of `expected`.
pub fn fails(args: &[&str], expected: &[&str]) {
    let out = Command::new("sh")
        .arg("-c")
        .arg("ulimit -v 2097152; exec \"$0\" \"$@\"")
        .arg(env!("CARGO_BIN_EXE_fqc"))
        .args(args)
        .output()
        .expect("spawn fqc");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(1),
        "fqc {args:?}: status {:?}, stderr:\n{stderr}",
        out.status
    );
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(
        lines.len(),
        1,
        "fqc {args:?}: expected one error line, got:\n{stderr}"
    );
    assert!(lines[0].starts_with("error: "), "{stderr}");
    for word in expected {
        assert!(
            lines[0].contains(word),
            "fqc {args:?}: `{word}` missing from: {}",
            lines[0]
        );
    }
}
