//! Shared helpers for fqc's file-driven tests: where fixtures live, how outputs are
//! compared, and the committed skip list that names every conformance test fqc does not
//! pass and why.
//!
//! Fixtures under `testsuite/generated/` are produced by the Python scripts in
//! `testsuite/scripts/` (README's test command runs them). When they are missing, a test
//! fails under `CI=true` and is reported as not run otherwise, so CI can never pass
//! vacuously.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("testsuite is inside the repo")
        .to_path_buf()
}

/// `testsuite/generated/<what>` if it exists; panics under CI when it does not.
pub fn generated(what: &str) -> Option<PathBuf> {
    let dir = repo_root().join("testsuite").join("generated").join(what);
    if dir.is_dir() {
        return Some(dir);
    }
    let msg = format!(
        "fixtures {} are missing: run `python3 testsuite/scripts/gen_node_tests.py` and `gen_model_refs.py` (scripts/test.sh does)",
        dir.display()
    );
    assert!(std::env::var_os("CI").is_none(), "{msg}");
    eprintln!("NOT RUN: {msg}");
    None
}

/// Worst-case differences between an output and its reference.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Diff {
    /// max |got - want|
    pub max_abs: f32,
    /// max |got - want| / max |want| (error relative to the output's magnitude)
    pub rel_to_range: f32,
    /// Elements violating `|got - want| <= atol + rtol * |want|` for the given tolerances.
    pub violations: usize,
}

/// Compares element-wise; NaN anywhere (or a shape mismatch, checked by the caller) is a
/// violation.
pub fn compare(got: &[f32], want: &[f32], rtol: f32, atol: f32) -> Diff {
    let range = want
        .iter()
        .fold(0f32, |m, x| m.max(x.abs()))
        .max(f32::MIN_POSITIVE);
    let mut d = Diff {
        max_abs: 0.0,
        rel_to_range: 0.0,
        violations: 0,
    };
    for (a, b) in got.iter().zip(want) {
        let e = (a - b).abs();
        if e.is_nan() || e > atol + rtol * b.abs() {
            d.violations += 1;
        }
        d.max_abs = if e.is_nan() {
            f32::INFINITY
        } else {
            d.max_abs.max(e)
        };
    }
    d.rel_to_range = d.max_abs / range;
    d
}

/// The committed skip list `testsuite/skips.txt`: `kind/name<TAB>reason` per line,
/// `#` comments. Returns `name -> reason` for one kind (`node`, `model`).
pub fn skips(kind: &str) -> BTreeMap<String, String> {
    let text = std::fs::read_to_string(skips_path()).unwrap_or_default();
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .filter_map(|l| {
            let (key, reason) = l.split_once('\t')?;
            let name = key.strip_prefix(kind)?.strip_prefix('/')?;
            Some((name.to_string(), reason.to_string()))
        })
        .collect()
}

pub fn skips_path() -> PathBuf {
    repo_root().join("testsuite").join("skips.txt")
}

/// Rewrites one kind's section of the skip list (used with `FQC_BLESS_SKIPS=1`), keeping
/// the other kinds' lines and the header comments.
pub fn bless_skips(kind: &str, entries: &BTreeMap<String, String>) {
    let text = std::fs::read_to_string(skips_path()).unwrap_or_default();
    let prefix = format!("{kind}/");
    let mut out: Vec<String> = text
        .lines()
        .filter(|l| !l.starts_with(&prefix))
        .map(str::to_string)
        .collect();
    for (name, reason) in entries {
        out.push(format!(
            "{prefix}{name}\t{}",
            reason.replace(['\n', '\t'], " ")
        ));
    }
    std::fs::write(skips_path(), out.join("\n") + "\n").expect("write skips.txt");
}

/// Outcome bookkeeping for a conformance run against the skip list.
#[derive(Debug, Default)]
pub struct Tally {
    pub passed: Vec<String>,
    pub skipped: Vec<String>,
    /// Not in the skip list but failed, or in it but passed (a stale entry).
    pub failures: Vec<String>,
    /// Observed failure reasons (for blessing the list).
    pub observed: BTreeMap<String, String>,
}

impl Tally {
    /// Records one test's result against `skips`. A panic is never skippable.
    pub fn record(
        &mut self,
        name: &str,
        result: Result<(), String>,
        skips: &BTreeMap<String, String>,
    ) {
        match (result, skips.get(name)) {
            (Ok(()), None) => self.passed.push(name.to_string()),
            (Ok(()), Some(_)) => self.failures.push(format!(
                "{name}: passes but is listed in skips.txt (remove it)"
            )),
            (Err(e), Some(_)) if !e.starts_with("PANIC") => {
                self.skipped.push(name.to_string());
                self.observed.insert(name.to_string(), e);
            }
            (Err(e), _) => {
                self.failures.push(format!("{name}: {e}"));
                self.observed.insert(name.to_string(), e);
            }
        }
    }

    /// Prints the summary line, blesses the list if asked, and panics on failures.
    /// When blessing, an entry that is still failing keeps its hand-written reason.
    pub fn finish(self, kind: &str) {
        if std::env::var_os("FQC_BLESS_SKIPS").is_some() {
            let listed = skips(kind);
            let keep: BTreeMap<_, _> = self
                .observed
                .into_iter()
                .filter(|(_, e)| !e.starts_with("PANIC"))
                .map(|(name, e)| {
                    let reason = listed.get(&name).cloned().unwrap_or(e);
                    (name, reason)
                })
                .collect();
            bless_skips(kind, &keep);
        }
        for f in &self.failures {
            eprintln!("FAIL {f}");
        }
        println!(
            "{kind} tests: {} passed, {} failed, {} skipped",
            self.passed.len(),
            self.failures.len(),
            self.skipped.len()
        );
        assert!(
            self.failures.is_empty(),
            "{} {kind} test(s) failed (see above)",
            self.failures.len()
        );
        assert!(!self.passed.is_empty(), "no {kind} test ran");
    }
}

/// Runs `f`, turning a panic into an error string starting with `PANIC`.
pub fn catch<T>(f: impl FnOnce() -> Result<T, String>) -> Result<T, String> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(p) => Err(format!(
            "PANIC: {}",
            p.downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default()
        )),
    }
}
