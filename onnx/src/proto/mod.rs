//! ONNX protobuf types.
//!
//! Decision: [prost](https://docs.rs/prost) types generated **once** from ONNX's own
//! `onnx.proto` (copied verbatim into `onnx/proto/onnx.proto`, from the `onnx` 1.23 Python
//! package) and committed here as `onnx.rs`. Nothing runs protoc or protox at build time,
//! so clean builds (CI) stay fast and need no protobuf toolchain. To regenerate after
//! updating `onnx.proto`, run `onnx/proto/regen.sh`: it builds a throw-away crate outside
//! the repository with `prost-build` 0.14 + `protox` (pure Rust) and writes `onnx.rs`.
//!
//! Not `onnx-protobuf`: it pins `protobuf = "=3.4.0"`, and its tensor helpers ignore
//! `raw_data` and panic on several element types — the importer decodes tensors itself
//! (`crate::tensor`), with every size checked.
//!
//! proto2 optional fields are `Option`s; prost derives getters (`name()`, `r#type()`,
//! `data_location()`, …) that return the default when a field is unset.

#[allow(
    clippy::all,
    clippy::pedantic,
    missing_docs,
    missing_debug_implementations,
    rustdoc::all
)]
mod generated {
    include!("onnx.rs");
}

pub use generated::*;
