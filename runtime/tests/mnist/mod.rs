//! The bundled MNIST CNN compiled by `fqc_passes` (ternary weights, 4-bit activations)
//! and saved as a `.fqc`, shared by the session and C-example tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use fqc_dataset::LabelledSet;
use fqc_ir::Graph;
use fqc_passes::schedule::{compile_gradual, NoFineTune, Schedule};
use fqc_passes::{PassContext, PipelineOptions, WeightBits};

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

pub fn test_set() -> LabelledSet {
    LabelledSet::load_npz(&root().join("examples/mnist/mnist10k.npz"), "test").expect("data")
}

/// The integer-only ternary/a4 graph.
pub fn ternary_a4() -> Graph {
    let model = fqc_onnx::import_file(&root().join("examples/mnist/mnist_cnn.onnx")).unwrap();
    let train = LabelledSet::load_npz(&root().join("examples/mnist/mnist10k.npz"), "train")
        .expect("data loads");
    let mut cx = PassContext {
        calib_inputs: vec![train.batch(0, 64)],
        ..PassContext::default()
    };
    let s = Schedule::one_shot(WeightBits::Ternary, 4);
    compile_gradual(
        &model,
        &s,
        &mut cx,
        &mut NoFineTune,
        &PipelineOptions::default(),
    )
    .expect("compiles")
    .graph
}

/// A fresh scratch folder for one test.
pub fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("fqc-runtime-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Saves `g` as `dir/mnist_t4.fqc`.
pub fn save(g: &Graph, dir: &Path) -> PathBuf {
    let p = dir.join("mnist_t4.fqc");
    fqc_runtime::save_file(&p, g).expect("saves");
    p
}
