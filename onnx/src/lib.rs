//! ONNX → fqc IR importer.
//!
//! [`import_file`] / [`import_bytes`] decode a `ModelProto` (prost types generated once
//! from `onnx.proto`, see [`proto`]) and lower it to a float [`Graph`]: attributes are
//! resolved (auto_pad → pads, Reshape targets → dims, opset differences normalised),
//! import-time computations are folded (constants, shape arithmetic, all-constant
//! nodes), and PyTorch's `MatMul + Add` becomes a Gemm. Supported: the default domain,
//! opsets 6 to 28, float32 graphs of 1-D/2-D CNN ops (see `lower`).
//!
//! No input may panic, hang or allocate without bound: decode errors are reported,
//! tensor sizes are checked before allocation (2^28 elements per tensor, 2^30 per
//! model), and external data is read only from inside the model's folder.

pub mod error;
mod import;
mod lower;
pub mod proto;
pub mod shapes;
mod tensor;

use std::path::Path;

use fqc_ir::{Graph, Tensor};
use prost::Message;

pub use error::{OnnxError, Result};
pub use import::{MAX_OPSET, MIN_OPSET};
pub use lower::supported_ops;
pub use shapes::{GivenDim, InputShape};
pub use tensor::{MAX_MODEL_ELEMS, MAX_TENSOR_ELEMS};

use tensor::{Budget, External};

fn decode_err(what: &str, e: prost::DecodeError) -> OnnxError {
    let msg = e.to_string();
    if msg.contains("buffer underflow") || msg.contains("unexpected EOF") {
        OnnxError::Decode(format!("not an ONNX {what}: the data is truncated ({msg})"))
    } else {
        OnnxError::Decode(format!("not an ONNX {what}: {msg}"))
    }
}

/// Imports the ONNX model at `path`. External tensor data is read only from files
/// inside the model's folder.
pub fn import_file(path: &Path) -> Result<Graph> {
    import_file_with(path, &[])
}

/// [`import_file`] with shapes for inputs the model leaves symbolic (see [`shapes`]).
pub fn import_file_with(path: &Path, shapes: &[InputShape]) -> Result<Graph> {
    let io = |source| OnnxError::Io {
        path: path.to_path_buf(),
        source,
    };
    let bytes = std::fs::read(path).map_err(io)?;
    let dir = path
        .parent()
        .map(|p| {
            if p.as_os_str().is_empty() {
                Path::new(".")
            } else {
                p
            }
        })
        .unwrap_or(Path::new("."));
    let dir = dir.canonicalize().map_err(io)?;
    let model = proto::ModelProto::decode(bytes.as_slice()).map_err(|e| decode_err("model", e))?;
    drop(bytes);
    import::import_model(model, External::Dir(dir), shapes)
}

/// Imports an ONNX model from memory. External tensor data is refused.
pub fn import_bytes(bytes: &[u8]) -> Result<Graph> {
    import_bytes_with(bytes, &[])
}

/// [`import_bytes`] with shapes for inputs the model leaves symbolic (see [`shapes`]).
pub fn import_bytes_with(bytes: &[u8], shapes: &[InputShape]) -> Result<Graph> {
    let model = proto::ModelProto::decode(bytes).map_err(|e| decode_err("model", e))?;
    import::import_model(model, External::Refuse, shapes)
}

/// Decodes a serialized `TensorProto` (an ONNX node test's `input_0.pb`, …): FLOAT →
/// f32, INT64 → i64, INT32 → i32, UINT8 → u8, INT8 → i8; other types are an error naming
/// the type. External data is refused.
pub fn decode_tensor_proto(bytes: &[u8]) -> Result<Tensor> {
    let mut tp = proto::TensorProto::decode(bytes).map_err(|e| decode_err("tensor", e))?;
    if tp.data_type() == proto::tensor_proto::DataType::Bool as i32 {
        return Err(OnnxError::Tensor {
            name: error::one_line(tp.name()),
            msg: "element type BOOL is not supported (FLOAT, INT64, INT32, UINT8 and INT8 are)"
                .into(),
        });
    }
    tensor::decode(&mut tp, &External::Refuse, &mut Budget::default())
}
