//! fqc's runtime.
//!
//! * [`artifact`]: [`artifact::save`] / [`artifact::load`] turn a verified IR graph into
//!   a versioned, checksummed, bit-packed `.fqc` file and back, with a loader that is
//!   bounded and checked on any input.
//! * [`Model`] / [`Session`]: load a `.fqc`, JIT-compile it once (`fqc-codegen`), and run
//!   it from any number of threads, one [`Session`] (with its reusable activation arena)
//!   per thread.
//! * `ffi`: the same as a C ABI (`include/fqc.h`, built as a `cdylib`).
//!
//! ```no_run
//! let model = fqc_runtime::Model::load("mnist.fqc")?;
//! let mut session = model.session();
//! let x = fqc_ir::Tensor { shape: vec![1, 1, 28, 28], data: fqc_ir::TensorData::F32(vec![0.0; 784]) };
//! let logits = session.run(&x)?;
//! # Ok::<(), fqc_runtime::RuntimeError>(())
//! ```

pub mod artifact;
mod error;
#[allow(unsafe_code)]
mod ffi;
mod model;
mod session;

pub use artifact::{load, load_file, save, save_file, try_save, ArtifactError};
pub use error::{Result, RuntimeError};
pub use model::Model;
pub use session::Session;
