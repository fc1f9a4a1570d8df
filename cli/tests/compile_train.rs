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
        "512",
        "--epochs-per-stage",
        "1,1,1,3",
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
        let epochs = if i == 3 { "epochs 3" } else { "epochs 1" };
        assert!(line.contains(epochs) && line.contains("val acc"), "{line}");
    }
    assert!(
        stdout.contains("quantization-aware fine-tuning"),
        "{stdout}"
    );
    assert!(stdout.contains("integer-only: yes"), "{stdout}");
    assert!(stdout.contains("integer-only val top-1:"), "{stdout}");
    assert!(out.exists());
    // The artifact runs, and training did its job: the same ternary compile without
    // training gets 280 of the 2000 test digits (post-training quantization collapses),
    // this short run about 1840 (measured 92.15 % on the development machine); a
    // trainer that does not train, or trains the wrong thing, cannot reach 85 %.
    let eval = ok(&[
        "eval",
        out.to_str().unwrap(),
        "--data",
        &path("examples/mnist/mnist10k.npz"),
        "--json",
    ]);
    let e: serde_json::Value = serde_json::from_str(eval.trim()).unwrap();
    let top1 = e["top1"].as_f64().unwrap();
    assert!(top1 >= 0.85, "top-1 after a short QAT run: {top1}");
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

/// `--save-stages`, `--test` and `--summary-json`: every stage of a gradual run is saved
/// integerized and measured; the JSON holds what was printed; `fqc eval` of a saved
/// stage reproduces its measured top-1; per-stage epochs and augmentation are accepted.
#[test]
fn stages_are_saved_measured_and_summarised() {
    let dir = scratch("compile_train", "stages");
    let out = dir.join("m.fqc");
    let stages = dir.join("stages");
    let summary = dir.join("summary.json");
    let stdout = ok(&[
        "compile",
        &path("examples/mnist/mnist_cnn.onnx"),
        "--train",
        &path("examples/mnist/mnist10k.npz"),
        "--train-images",
        "192",
        "--schedule",
        "w8a8,w2a4",
        "--epochs-per-stage",
        "1,2",
        "--crop-pad",
        "2",
        "--hflip",
        "--test",
        &path("examples/mnist/mnist10k.npz"),
        "--save-stages",
        stages.to_str().unwrap(),
        "--summary-json",
        summary.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ]);
    assert!(stdout.contains("epochs per stage 1,2"), "{stdout}");
    assert!(
        stdout.contains("augmented (crop pad 2, hflip true)"),
        "{stdout}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&summary).unwrap()).unwrap();
    let st = json["stages"].as_array().unwrap();
    assert_eq!(st.len(), 2, "{json}");
    assert_eq!(json["trained_stages"][0]["epochs"], 1);
    assert!(json["trained_stages"][1]["epochs"].as_u64().unwrap() <= 2);
    // Floors a broken trainer or integerizer cannot reach (measured on the development
    // machine: w8a8 98.45 %, wta4 66.20 %, agreement 100 % in both): the w8a8 stage keeps
    // the float model's 98.65 %, and two epochs on 173 images lift ternary weights well
    // above the 14 % of post-training quantization; the integer-only JIT and the
    // fake-quant graph agree on at least 99.9 % of the images (as the reports claim).
    for (s, (label, floor)) in st.iter().zip([("w8a8", 0.97), ("wta4", 0.50)]) {
        assert_eq!(s["label"], label);
        let t = &s["test"];
        assert_eq!(t["images"], 2000);
        let int = t["integer_top1"].as_f64().unwrap();
        let fq = t["fake_quant_top1"].as_f64().unwrap();
        let agreement = t["agreement"].as_f64().unwrap();
        assert!(
            int >= floor,
            "{label}: integer-only top-1 {int} below {floor}"
        );
        assert!(
            (int - fq).abs() <= 0.001,
            "{label}: JIT {int} vs fake-quant {fq}"
        );
        assert!(agreement >= 0.999, "{label}: agreement {agreement}");
        assert!(std::path::Path::new(s["artifact"].as_str().unwrap()).exists());
    }
    // The last stage is the compile's output, and its measurement is the final one.
    assert_eq!(json["test"], st[1]["test"]);
    let line = stdout
        .lines()
        .find(|l| l.starts_with("test top-1: integer-only JIT"))
        .unwrap_or_else(|| panic!("no test line in:\n{stdout}"));
    assert!(line.contains("same prediction on"), "{line}");
    // `fqc eval --json` of the saved w8a8 stage gives the top-1 measured for it.
    let eval = ok(&[
        "eval",
        st[0]["artifact"].as_str().unwrap(),
        "--data",
        &path("examples/mnist/mnist10k.npz"),
        "--json",
    ]);
    let e: serde_json::Value = serde_json::from_str(eval.trim()).unwrap();
    assert_eq!(e["top1"], st[0]["test"]["integer_top1"]);
    assert_eq!(e["engine"], "JIT");
}
