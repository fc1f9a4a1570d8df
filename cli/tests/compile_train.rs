//! `fqc compile --train`: the built-in QAT fine-tuner end to end on a few MNIST images
//! (fast: one epoch per stage over 256 images), and its argument checks.

mod common;

use common::{fails, ok, path, scratch};

#[test]
fn compile_with_training_prints_stages_and_writes_an_artifact() {
    let dir = scratch("compile_train", "w2a4");
    let out = dir.join("m.fqc");
    let stdout = ok(&[
        "compile",
        &path("examples/mnist/mnist_cnn.onnx"),
        "--train",
        &path("examples/mnist/mnist10k.npz"),
        "--train-images",
        "256",
        "--epochs-per-stage",
        "1",
        "--weights",
        "ternary",
        "--act-bits",
        "4",
        "-o",
        out.to_str().unwrap(),
    ]);
    // The default schedule down to the target, one line per stage.
    for (i, label) in ["w8a8", "w4a6", "w3a4", "wta4"].iter().enumerate() {
        let line = stdout
            .lines()
            .find(|l| l.starts_with(&format!("stage {}/4 {label}", i + 1)))
            .unwrap_or_else(|| panic!("no line for stage {label} in:\n{stdout}"));
        assert!(
            line.contains("epochs 1") && line.contains("val acc"),
            "{line}"
        );
    }
    assert!(
        stdout.contains("quantization-aware fine-tuning"),
        "{stdout}"
    );
    assert!(stdout.contains("integer-only: yes"), "{stdout}");
    assert!(stdout.contains("integer-only val top-1:"), "{stdout}");
    assert!(out.exists());
    // The artifact runs.
    let eval = ok(&[
        "eval",
        out.to_str().unwrap(),
        "--data",
        &path("examples/mnist/mnist10k.npz"),
    ]);
    assert!(eval.contains('%'), "{eval}");
}

#[test]
fn one_shot_training_runs_only_the_target_stage() {
    let dir = scratch("compile_train", "oneshot");
    let out = dir.join("m.fqc");
    let stdout = ok(&[
        "compile",
        &path("examples/mnist/mnist_cnn.onnx"),
        "--train",
        &path("examples/mnist/mnist10k.npz"),
        "--train-images",
        "128",
        "--epochs-per-stage",
        "1",
        "--one-shot",
        "--distill",
        "--optimizer",
        "sgd",
        "--weights",
        "ternary",
        "--act-bits",
        "2",
        "-o",
        out.to_str().unwrap(),
    ]);
    assert!(
        stdout.lines().any(|l| l.starts_with("stage 1/1 wta2")),
        "{stdout}"
    );
    assert!(!stdout.contains("stage 2/"), "{stdout}");
}

#[test]
fn bad_training_options_are_one_line_errors() {
    let dir = scratch("compile_train", "bad");
    let out = dir.join("m.fqc");
    let o = out.to_str().unwrap();
    let model = path("examples/mnist/mnist_cnn.onnx");
    let data = path("examples/mnist/mnist10k.npz");
    fails(
        &[
            "compile",
            &model,
            "--train",
            &data,
            "--optimizer",
            "rmsprop",
            "-o",
            o,
        ],
        &["optimizer", "rmsprop"],
    );
    fails(
        &[
            "compile",
            &model,
            "--train",
            &data,
            "--train-split",
            "nope",
            "-o",
            o,
        ],
        &["nope"],
    );
}
