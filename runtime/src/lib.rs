//! fqc's runtime.
//!
//! This crate will host the JIT session (compile an integer graph with Cranelift and run
//! it, with a Rust and a C embedding API; issue 4). Today it holds the `.fqc` artifact:
//! [`artifact::save`] / [`artifact::load`] turn a verified IR graph into a versioned,
//! checksummed, bit-packed file and back, with a loader that is bounded and checked on
//! any input.

pub mod artifact;

pub use artifact::{load, load_file, save, save_file, try_save, ArtifactError};
