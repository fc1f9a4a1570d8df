//! fqc's fuzz harnesses: one function per fuzz target, each taking the fuzzer's bytes
//! and running the code under test on them, plus the structure-aware builders that turn
//! bytes into inputs deep enough to test something.
//!
//! A harness returns normally whatever it is given — a refused input is the expected
//! outcome for most bytes — and panics only on a finding: a panic inside fqc, a graph
//! that the importer or loader returns but that does not verify, a text that does not
//! round-trip, or a JIT whose output differs from the interpreter's by one bit. The
//! `cargo fuzz` targets in `fuzz/` are one line each over these functions (coverage-
//! guided, run by `scripts/fuzz.sh`); `cargo test` replays every committed input
//! (`fuzz/seeds/`, `fuzz/regressions/`) and a fixed-seed sample of generated ones
//! through the same functions on the stable toolchain, so a finding once fixed stays
//! fixed.
//!
//! Inputs get past the first check because most of them are built, not mutated:
//! * [`onnx_model`] builds ONNX models from the bytes (`arbitrary`): the importer's ops
//!   and attributes, initializers of plausible shapes and types, edges between them;
//!   raw bytes (mutated real models) are the other mode;
//! * [`graphs`] builds integer graphs the JIT compiles (convolutions, GEMMs,
//!   requantizations, pools, residual adds, boundary ops) — the differential target
//!   runs them on the JIT and the interpreter, and the `.fqc` target saves them and
//!   then mutates the body *under a correct header and checksum*, so a mutation reaches
//!   the protobuf decoder, the codec and the verifier instead of the checksum test.

pub mod graphs;
pub mod onnx_model;
pub mod targets;

pub use targets::{fqc_load, ir_text, jit_vs_interp, npy, npz, onnx_import, TARGETS};
