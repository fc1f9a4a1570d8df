//! fqc's intermediate representation.
//!
//! An arena graph with typed ids ([`Value`], [`Node`], [`Const`]), static shapes with a
//! symbolic batch, element types down to ternary and 2-bit integers with their scales,
//! a closed [`Op`] set, one type-inference rule per op ([`infer`]), a verifier, a text
//! format that round-trips, and the reference interpreter that defines every op's
//! semantics. Nothing here depends on ONNX or on any other fqc crate.

pub mod error;
pub mod graph;
pub mod infer;
mod infer_layout;
mod infer_quant;
pub mod interp;
pub mod op;
pub mod scalar;
pub mod tensor;
pub mod text;
pub mod types;
pub mod verify;

pub use error::{IrError, Result};
pub use graph::{Const, ConstData, Graph, Node, NodeData, Value, ValueDef, ValueInfo};
pub use interp::{run, run_with, RunOptions};
pub use op::{BinaryOp, Op, OpClass, UnaryOp, Window};
pub use tensor::{Tensor, TensorData};
pub use types::{DType, Dim, Scale, Shape, TensorType, F32};
pub use verify::verify;
