//! The `fqc` binary end to end on the bundled models: `run` reproduces ONNX Runtime's
//! logits, `eval` reports the bundled MNIST CNN's accuracy (≥ 98%, the bar),
//! `inspect` prints IR that parses back, and every subcommand has `--help`.

mod common;
use common::*;

use std::path::Path;

fn npy(path: &Path) -> fqc_ir::Tensor {
    fqc_dataset::npy::read(&std::fs::read(path).unwrap()).unwrap()
}

#[test]
fn run_matches_onnx_runtime_on_bundled_models() {
    let refs = repo().join("testsuite/generated/models");
    if !refs.is_dir() {
        assert!(
            std::env::var_os("CI").is_none(),
            "ORT references missing: run scripts/test.sh"
        );
        eprintln!("NOT RUN: ORT references missing");
        return;
    }
    for (name, model) in [
        ("mnist_cnn", "examples/mnist/mnist_cnn.onnx"),
        ("fashion_cnn", "examples/fashion/fashion_cnn.onnx"),
    ] {
        let out = std::env::temp_dir().join(format!("fqc-e2e-{}-{name}.npy", std::process::id()));
        let input = refs.join(name).join("input_0.npy");
        fqc(&[
            "run",
            repo().join(model).to_str().unwrap(),
            "--input",
            input.to_str().unwrap(),
            "--output",
            out.to_str().unwrap(),
            "--threads",
            "2",
        ]);
        let (got, want) = (npy(&out), npy(&refs.join(name).join("ort_output_0.npy")));
        assert_eq!(got.shape, want.shape);
        let d = max_error_of_range(got.as_f32().unwrap(), want.as_f32().unwrap());
        assert!(d <= 1e-4, "{name}: max error {d} of the output range");
        std::fs::remove_file(out).ok();
    }
}

/// max |a - b| / max |b|
fn max_error_of_range(a: &[f32], b: &[f32]) -> f32 {
    let range = b.iter().fold(0f32, |m, x| m.max(x.abs()));
    a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs())) / range
}

#[test]
fn eval_reports_bundled_mnist_accuracy() {
    let model = repo().join("examples/mnist/mnist_cnn.onnx");
    let data = repo().join("examples/mnist/mnist10k.npz");
    let out = fqc(&[
        "eval",
        model.to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    let pct: f64 = text
        .strip_prefix("top-1: ")
        .and_then(|t| t.split('%').next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("unexpected eval output: {text}"));
    assert!(pct >= 98.0, "bundled MNIST CNN top-1 {pct}% < 98%");
    assert!(text.contains("/2000)"), "{text}");
}

#[test]
fn inspect_prints_parseable_ir() {
    let model = repo().join("examples/mnist/mnist_cnn.onnx");
    let out = fqc(&["inspect", model.to_str().unwrap()]);
    let text = String::from_utf8(out.stdout).unwrap();
    let graph = fqc_ir::text::parse(&text).expect("inspect output parses");
    assert_eq!(fqc_ir::text::print(&graph), text);
}

#[test]
fn every_subcommand_has_help() {
    for sub in [
        &["--help"][..],
        &["inspect", "--help"],
        &["run", "--help"],
        &["eval", "--help"],
    ] {
        let out = fqc(sub);
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("Usage"),
            "{sub:?}"
        );
    }
}
