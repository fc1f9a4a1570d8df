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

/// Compares element-wise; equal values (also equal infinities) agree, NaN anywhere (or a
/// shape mismatch, checked by the caller) is a violation.
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
        // Equal values (infinities included) agree; `inf - inf` would be NaN.
        let e = if a == b { 0.0 } else { (a - b).abs() };
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

/// Why a conformance test failed. A skip names the class it expects, and the run checks
/// each listed test fails with exactly that class, so a listed limitation cannot hide a
/// different failure; [`Class::WrongValue`], [`Class::WrongShape`] and [`Class::Panic`]
/// are wrong answers or bugs and may never be skipped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    /// The importer does not lower an op the model uses.
    UnsupportedOp,
    /// The importer refuses a feature of the model: an attribute value, an element type,
    /// a rank, a non-tensor input, training mode.
    Unsupported,
    /// The interpreter refuses to run the imported graph on the test's inputs.
    RunError,
    /// An output has another element type than the reference, with equal values.
    OutputType,
    /// No reference output exists (ONNX Runtime refused the model).
    NoReference,
    /// An output count or shape differs from the reference: never skippable.
    WrongShape,
    /// An output value differs beyond the tolerance: never skippable.
    WrongValue,
    /// fqc panicked: never skippable.
    Panic,
}

impl Class {
    pub const ALL: [Class; 8] = [
        Class::UnsupportedOp,
        Class::Unsupported,
        Class::RunError,
        Class::OutputType,
        Class::NoReference,
        Class::WrongShape,
        Class::WrongValue,
        Class::Panic,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Class::UnsupportedOp => "unsupported-op",
            Class::Unsupported => "unsupported",
            Class::RunError => "run-error",
            Class::OutputType => "output-type",
            Class::NoReference => "no-reference",
            Class::WrongShape => "wrong-shape",
            Class::WrongValue => "wrong-value",
            Class::Panic => "panic",
        }
    }

    pub fn parse(s: &str) -> Option<Class> {
        Class::ALL.into_iter().find(|c| c.name() == s)
    }

    /// Whether a test failing this way may be listed in the skip list.
    pub fn skippable(self) -> bool {
        !matches!(self, Class::WrongShape | Class::WrongValue | Class::Panic)
    }

    /// The class of an importer error.
    pub fn of_import(e: &fqc_onnx::OnnxError) -> Class {
        if e.to_string().contains("unsupported op type") {
            Class::UnsupportedOp
        } else {
            Class::Unsupported
        }
    }
}

/// A failed conformance test: its class and message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    pub class: Class,
    pub msg: String,
}

impl Failure {
    pub fn new(class: Class, msg: impl Into<String>) -> Failure {
        Failure {
            class,
            msg: msg.into(),
        }
    }

    pub fn import(e: &fqc_onnx::OnnxError) -> Failure {
        Failure::new(Class::of_import(e), e.to_string())
    }
}

/// One entry of the skip list: the class the test fails with, and why that is accepted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Skip {
    pub class: Class,
    pub reason: String,
}

/// The committed skip list `testsuite/skips.txt`: `kind/name<TAB>class<TAB>reason` per
/// line, `#` comments. Returns `name -> skip` for one kind (`node`, `model`). A line with
/// an unknown or unskippable class, or without a reason, panics: the list is data the
/// tests depend on.
pub fn skips(kind: &str) -> BTreeMap<String, Skip> {
    let text = std::fs::read_to_string(skips_path()).unwrap_or_default();
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .filter_map(|l| {
            let mut parts = l.splitn(3, '\t');
            let name = parts.next()?.strip_prefix(kind)?.strip_prefix('/')?;
            let class = parts.next().unwrap_or_default();
            let reason = parts.next().unwrap_or_default();
            let class = Class::parse(class)
                .unwrap_or_else(|| panic!("skips.txt: `{l}`: unknown class `{class}`"));
            assert!(
                class.skippable(),
                "skips.txt: `{l}`: a {} failure may never be skipped",
                class.name()
            );
            assert!(
                !reason.trim().is_empty(),
                "skips.txt: `{l}`: no reason given"
            );
            Some((
                name.to_string(),
                Skip {
                    class,
                    reason: reason.to_string(),
                },
            ))
        })
        .collect()
}

pub fn skips_path() -> PathBuf {
    repo_root().join("testsuite").join("skips.txt")
}

/// Rewrites one kind's section of the skip list (used with `FQC_BLESS_SKIPS=1`), keeping
/// the other kinds' lines and the header comments.
pub fn bless_skips(kind: &str, entries: &BTreeMap<String, Skip>) {
    let text = std::fs::read_to_string(skips_path()).unwrap_or_default();
    let prefix = format!("{kind}/");
    let mut out: Vec<String> = text
        .lines()
        .filter(|l| !l.starts_with(&prefix))
        .map(str::to_string)
        .collect();
    for (name, skip) in entries {
        out.push(format!(
            "{prefix}{name}\t{}\t{}",
            skip.class.name(),
            skip.reason.replace(['\n', '\t'], " ")
        ));
    }
    std::fs::write(skips_path(), out.join("\n") + "\n").expect("write skips.txt");
}

/// Outcome bookkeeping for a conformance run against the skip list.
#[derive(Debug, Default)]
pub struct Tally {
    pub passed: Vec<String>,
    pub skipped: Vec<String>,
    /// Not in the skip list but failed; in it but passed (a stale entry); in it but
    /// failed with another class than listed.
    pub failures: Vec<String>,
    /// Every test seen (to find listed names that no longer exist).
    pub seen: Vec<String>,
    /// Observed failures (for blessing the list).
    pub observed: BTreeMap<String, Failure>,
}

impl Tally {
    /// Records one test's result against `skips`.
    pub fn record(
        &mut self,
        name: &str,
        result: Result<(), Failure>,
        skips: &BTreeMap<String, Skip>,
    ) {
        self.seen.push(name.to_string());
        match (result, skips.get(name)) {
            (Ok(()), None) => self.passed.push(name.to_string()),
            (Ok(()), Some(_)) => self.failures.push(format!(
                "{name}: passes but is listed in skips.txt (remove it)"
            )),
            (Err(f), Some(skip)) if f.class == skip.class => {
                self.skipped.push(name.to_string());
                self.observed.insert(name.to_string(), f);
            }
            (Err(f), Some(skip)) => {
                self.failures.push(format!(
                    "{name}: listed in skips.txt as {}, but fails as {}: {}",
                    skip.class.name(),
                    f.class.name(),
                    f.msg
                ));
                self.observed.insert(name.to_string(), f);
            }
            (Err(f), None) => {
                self.failures
                    .push(format!("{name}: {} ({})", f.msg, f.class.name()));
                self.observed.insert(name.to_string(), f);
            }
        }
    }

    /// Prints the summary line, blesses the list if asked, and panics on failures or on
    /// listed names the run never saw. When blessing, a still-failing entry of the same
    /// class keeps its hand-written reason; a wrong value, shape or a panic is never
    /// written into the list.
    pub fn finish(mut self, kind: &str) {
        let listed = skips(kind);
        for name in listed.keys() {
            if !self.seen.contains(name) {
                self.failures.push(format!(
                    "{name}: listed in skips.txt, but no such test exists (remove it)"
                ));
            }
        }
        if std::env::var_os("FQC_BLESS_SKIPS").is_some() {
            let keep: BTreeMap<_, _> = self
                .observed
                .iter()
                .filter(|(_, f)| f.class.skippable())
                .map(|(name, f)| {
                    let reason = match listed.get(name) {
                        Some(s) if s.class == f.class => s.reason.clone(),
                        _ => f.msg.clone(),
                    };
                    (
                        name.clone(),
                        Skip {
                            class: f.class,
                            reason,
                        },
                    )
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

/// Runs `f`, turning a panic into a [`Class::Panic`] failure.
pub fn catch<T>(f: impl FnOnce() -> Result<T, Failure>) -> Result<T, Failure> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(p) => Err(Failure::new(
            Class::Panic,
            format!(
                "PANIC: {}",
                p.downcast_ref::<String>()
                    .cloned()
                    .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default()
            ),
        )),
    }
}
