//! File-driven snapshots of every pass's output: the default pipeline (post-training,
//! ternary weights, 4-bit activations) on the conv-BN-ReLU chain, the residual block
//! with a projection shortcut, the depthwise block and the bundled MNIST CNN. One
//! snapshot per (model, pass), so a review shows exactly which pass changed what.
//! Calibration inputs are deterministic: MNIST training images for the MNIST CNN, a
//! seeded pseudo-random batch for the small models.

use std::path::Path;

use fqc_ir::{Graph, Tensor};
use fqc_passes::{PassContext, PipelineOptions, QuantConfig, WeightBits};

/// A deterministic batch of `n` inputs shaped like the graph's input, values in [-2, 2).
fn seeded_batch(g: &Graph, n: usize, seed: u64) -> Tensor {
    let mut shape: Vec<usize> = g.ty(g.inputs()[0]).shape.resolve(n as u64);
    shape[0] = n;
    let mut s = seed | 1;
    let data = (0..shape.iter().product::<usize>())
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 40) as f32 / (1u64 << 24) as f32 * 4.0 - 2.0
        })
        .collect();
    Tensor::f32(shape, data).expect("shape matches")
}

fn calibration(path: &Path, g: &Graph) -> Vec<Tensor> {
    if path.ends_with("examples/mnist/mnist_cnn.onnx") {
        let set = fqc_dataset::LabelledSet::load_npz(
            &fqc_testsuite::repo_root().join("examples/mnist/mnist10k.npz"),
            "train",
        )
        .expect("bundled MNIST data");
        vec![set.batch(0, 128)]
    } else {
        vec![seeded_batch(g, 16, 0x5eed)]
    }
}

fn snapshot_pipeline(path: &Path, label: &str) {
    let mut g = fqc_onnx::import_file(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut cx = PassContext {
        config: QuantConfig {
            weights: WeightBits::Ternary,
            act_bits: 4,
            ..QuantConfig::default()
        },
        calib_inputs: calibration(path, &g),
        ..PassContext::default()
    };
    let opts = PipelineOptions {
        print_all: true,
        ..PipelineOptions::default()
    };
    let records = fqc_passes::pipeline()
        .run(&mut g, &mut cx, &opts)
        .unwrap_or_else(|e| panic!("{label}: {e}"));
    for (i, r) in records.iter().enumerate() {
        let text = r.printed.as_deref().expect("print_all prints every pass");
        insta::assert_snapshot!(format!("{label}@{i:02}-{}", r.name), text);
    }
    assert!(
        fqc_passes::is_integer_only(&g),
        "{label}: not integer-only after the pipeline"
    );
}

#[test]
fn pipeline_on_filetests() {
    let root = fqc_testsuite::repo_root();
    for name in ["conv_bn_relu", "residual_projection", "depthwise_block"] {
        snapshot_pipeline(
            &root.join(format!("testsuite/filetests/import/{name}.onnx")),
            name,
        );
    }
}

#[test]
fn pipeline_on_bundled_mnist() {
    let root = fqc_testsuite::repo_root();
    snapshot_pipeline(&root.join("examples/mnist/mnist_cnn.onnx"), "mnist_cnn");
}
