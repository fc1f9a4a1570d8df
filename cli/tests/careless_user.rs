//! What a careless or hostile user did to fqc, case by case: outputs that name an input
//! (by other spellings and links), device nodes as outputs, stdout closed or full, counts
//! beyond every limit, NaN and infinities in weights, calibration data and inputs,
//! labels that are not classes, duplicate names in an ONNX graph, and a post-training
//! compile that collapses. Each case runs in its own scratch folder and checks that the
//! user's files are untouched.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::*;
use fqc_ir::{Tensor, TensorData};
use fqc_onnx::proto::{tensor_proto::DataType, ModelProto};
use prost::Message;

/// A scratch folder holding copies of the bundled MNIST model (`m.onnx`), its compiled
/// form (`M.fqc`), four test images (`x.npy`) and the labelled set (`d.npz`).
fn workspace(name: &str) -> PathBuf {
    let dir = scratch("careless", name);
    let ex = repo().join("examples/mnist");
    fs::copy(ex.join("mnist_cnn.onnx"), dir.join("m.onnx")).unwrap();
    fs::copy(ex.join("mnist_cnn_w2a4.fqc"), dir.join("M.fqc")).unwrap();
    fs::copy(ex.join("mnist10k.npz"), dir.join("d.npz")).unwrap();
    let set = fqc_dataset::LabelledSet::open(&dir.join("d.npz"), "test").unwrap();
    fs::write(dir.join("x.npy"), fqc_dataset::npy::write(&set.batch(0, 4))).unwrap();
    dir
}

fn p(dir: &Path, name: &str) -> String {
    dir.join(name).display().to_string()
}

/// Runs `fqc ARGS` in `dir`.
fn fqc_in(dir: &Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_fqc"))
        .current_dir(dir)
        .args(args)
        .output()
        .expect("spawn fqc")
}

/// Requires `fqc ARGS` (in `dir`) to exit 1 with one `error:` line holding `words`.
fn fails_in(dir: &Path, args: &[&str], words: &[&str]) {
    let out = fqc_in(dir, args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "fqc {args:?}: {stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(
        lines.len(),
        1,
        "fqc {args:?}: one error line, got:\n{stderr}"
    );
    assert!(lines[0].starts_with("error: "), "{stderr}");
    for w in words {
        assert!(
            lines[0].contains(w),
            "fqc {args:?}: `{w}` missing from {stderr}"
        );
    }
}

/// Requires the argument parser to refuse `fqc ARGS`: exit 2, one `error:` line.
fn refused_usage(args: &[&str], words: &[&str]) {
    let out = fqc(args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "fqc {args:?}: {stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(
        lines.len(),
        1,
        "fqc {args:?}: one error line, got:\n{stderr}"
    );
    for w in words {
        assert!(
            lines[0].contains(w),
            "fqc {args:?}: `{w}` missing from {stderr}"
        );
    }
}

/// The bytes of every file in `dir` (sorted by name), to check nothing changed.
fn snapshot(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<(String, Vec<u8>)> = fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_file())
        .map(|e| {
            (
                e.file_name().to_string_lossy().into_owned(),
                fs::read(e.path()).unwrap(),
            )
        })
        .collect();
    v.sort();
    v
}

fn no_temporaries(dir: &Path) {
    for e in fs::read_dir(dir).unwrap().filter_map(|e| e.ok()) {
        let name = e.file_name().to_string_lossy().into_owned();
        assert!(
            !name.contains("fqc-tmp"),
            "a temporary file was left: {name}"
        );
    }
}

#[test]
fn run_never_overwrites_its_model_or_input() {
    let dir = workspace("run-same");
    fs::create_dir_all(dir.join("d")).unwrap();
    let before = snapshot(&dir);
    let abs = p(&dir, "x.npy");
    for output in ["M.fqc", "x.npy", "./x.npy", abs.as_str(), "d/../x.npy"] {
        fails_in(
            &dir,
            &["run", "M.fqc", "--input", "x.npy", "--output", output],
            &["same file", "nothing was written"],
        );
    }
    fails_in(
        &dir,
        &["run", "m.onnx", "--input", "x.npy", "--output", "m.onnx"],
        &["same file as the model"],
    );
    #[cfg(unix)]
    {
        std::os::unix::fs::symlink(dir.join("x.npy"), dir.join("soft.npy")).unwrap();
        fs::hard_link(dir.join("M.fqc"), dir.join("hard.fqc")).unwrap();
        fails_in(
            &dir,
            &["run", "M.fqc", "--input", "x.npy", "--output", "soft.npy"],
            &["same file as --input"],
        );
        fails_in(
            &dir,
            &["run", "M.fqc", "--input", "x.npy", "--output", "hard.fqc"],
            &["same file as the model"],
        );
        fs::remove_file(dir.join("soft.npy")).unwrap();
        fs::remove_file(dir.join("hard.fqc")).unwrap();
    }
    assert_eq!(snapshot(&dir), before, "a file of the user's changed");
    no_temporaries(&dir);
}

#[test]
fn compile_never_overwrites_its_inputs() {
    let dir = workspace("compile-same");
    let before = snapshot(&dir);
    fails_in(
        &dir,
        &["compile", "m.onnx", "--data", "d.npz", "-o", "d.npz"],
        &["-o d.npz", "same file as --data"],
    );
    fails_in(
        &dir,
        &["compile", "m.onnx", "--calib", "x.npy", "-o", "./x.npy"],
        &["same file as --calib"],
    );
    fails_in(
        &dir,
        &["compile", "m.onnx", "--calib", "x.npy", "-o", "m.onnx"],
        &["same file as the model"],
    );
    fails_in(
        &dir,
        &[
            "compile",
            "m.onnx",
            "--calib",
            "x.npy",
            "-o",
            "o.fqc",
            "--summary-json",
            "m.onnx",
        ],
        &["--summary-json", "same file as the model"],
    );
    fails_in(
        &dir,
        &[
            "compile",
            "m.onnx",
            "--calib",
            "x.npy",
            "-o",
            "o.fqc",
            "--summary-json",
            "./o.fqc",
        ],
        &["--summary-json", "same file as -o"],
    );
    assert_eq!(snapshot(&dir), before);
    assert!(!dir.join("o.fqc").exists(), "nothing may be written");
}

#[cfg(target_os = "linux")]
#[test]
fn device_nodes_are_written_in_place() {
    let dir = workspace("devices");
    let out = fqc_in(
        &dir,
        &["run", "M.fqc", "--input", "x.npy", "--output", "/dev/null"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    fails_in(
        &dir,
        &["run", "M.fqc", "--input", "x.npy", "--output", "/dev/full"],
        &["/dev/full", "No space left"],
    );
    let out = fqc_in(
        &dir,
        &[
            "compile",
            "m.onnx",
            "--data",
            "d.npz",
            "--weights",
            "8",
            "--act-bits",
            "8",
            "-o",
            "/dev/null",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for dev in ["/dev/null", "/dev/full"] {
        assert!(!fs::metadata(dev).unwrap().is_file(), "{dev} was replaced");
    }
    no_temporaries(&dir);
}

#[test]
fn a_full_stdout_is_one_error_line() {
    let dir = workspace("stdout-full");
    let Ok(full) = fs::OpenOptions::new().write(true).open("/dev/full") else {
        assert!(
            std::env::var_os("CI").is_none(),
            "/dev/full is missing on CI"
        );
        return;
    };
    let out = Command::new(env!("CARGO_BIN_EXE_fqc"))
        .current_dir(&dir)
        .args(["inspect", "m.onnx"])
        .stdout(full)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with("error: cannot write to stdout"),
        "{stderr}"
    );
}

#[test]
fn a_closed_pipe_ends_quietly() {
    let dir = workspace("stdout-closed");
    for args in [
        vec!["inspect", "m.onnx"],
        vec!["run", "M.fqc", "--input", "x.npy", "--repeat", "3"],
        vec!["eval", "M.fqc", "--data", "d.npz", "--limit", "64"],
    ] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_fqc"))
            .current_dir(&dir)
            .args(&args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // Close the reading end before the first line is written.
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "fqc {args:?}: {stderr}");
        assert!(stderr.is_empty(), "fqc {args:?} printed: {stderr}");
    }
}

#[test]
fn counts_beyond_the_limits_are_refused() {
    let m = path("examples/mnist/mnist_cnn_w2a4.fqc");
    refused_usage(
        &["bench", &m, "--batch", "1000000000"],
        &["--batch", "1..=1048576"],
    );
    refused_usage(
        &["bench", &m, "--batch", "4611686018427387904"],
        &["--batch"],
    );
    refused_usage(
        &["bench", &m, "--runs", "10000000000"],
        &["--runs", "1..=1000000"],
    );
    refused_usage(&["bench", &m, "--warmup", "10000000000"], &["--warmup"]);
    refused_usage(
        &["bench", &m, "--threads", "1099511627776"],
        &["--threads", "1..=1024"],
    );
    refused_usage(
        &["run", &m, "--input", "x.npy", "--repeat", "4294967295"],
        &["--repeat", "1..=1000000"],
    );
    refused_usage(
        &["run", &m, "--input", "x.npy", "--threads", "2000"],
        &["--threads"],
    );
    refused_usage(
        &["eval", &m, "--data", "d.npz", "--batch", "0"],
        &["--batch"],
    );
}

#[test]
fn a_batch_that_does_not_fit_is_an_error_not_an_abort() {
    // Under the 2 GiB address-space limit of `fails`, 2^20 MNIST images (3.3 GB of
    // input alone) cannot be allocated: the failure must be an error line.
    fails(
        &[
            "bench",
            &path("examples/mnist/mnist_cnn_w2a4.fqc"),
            "--batch",
            "1048576",
            "--runs",
            "1",
            "--warmup",
            "0",
        ],
        &["cannot allocate"],
    );
}

#[test]
fn threads_beyond_the_cores_are_clamped_with_a_note() {
    let dir = workspace("threads");
    let out = fqc_in(
        &dir,
        &["run", "M.fqc", "--input", "x.npy", "--threads", "1000"],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("note: --threads 1000 clamped to"),
        "{stderr}"
    );
}

/// `m.onnx` with element 5 of its first 4-D initializer set to `value`, as `name`.
fn model_with_bad_weight(dir: &Path, name: &str, value: f32) -> String {
    let bytes = fs::read(dir.join("m.onnx")).unwrap();
    let mut m = ModelProto::decode(bytes.as_slice()).unwrap();
    let g = m.graph.as_mut().unwrap();
    let t = g
        .initializer
        .iter_mut()
        .find(|t| t.dims.len() == 4 && t.data_type() == DataType::Float as i32)
        .unwrap();
    let mut v: Vec<f32> = if t.raw_data().is_empty() {
        t.float_data.clone()
    } else {
        t.raw_data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect()
    };
    v[5] = value;
    t.raw_data = Some(v.iter().flat_map(|x| x.to_le_bytes()).collect());
    t.float_data.clear();
    fs::write(dir.join(name), m.encode_to_vec()).unwrap();
    name.to_string()
}

#[test]
fn non_finite_weights_are_refused() {
    let dir = workspace("nan-weight");
    for (name, value, shown) in [
        ("nan.onnx", f32::NAN, "NaN"),
        ("inf.onnx", f32::INFINITY, "inf"),
    ] {
        let model = model_with_bad_weight(&dir, name, value);
        fails_in(
            &dir,
            &["compile", &model, "--data", "d.npz", "-o", "o.fqc"],
            &["conv1.weight", "/conv1/Conv", "[0, 0, 1, 2]", shown],
        );
    }
    assert!(!dir.join("o.fqc").exists());
}

fn write_npy(path: &Path, t: &Tensor) {
    fs::write(path, fqc_dataset::npy::write(t)).unwrap();
}

/// `x.npy` with element `at` (flat index) set to `value`.
fn images_with(dir: &Path, name: &str, at: usize, value: f32) -> String {
    let t = fqc_dataset::npy::read(&fs::read(dir.join("x.npy")).unwrap()).unwrap();
    let mut t = fqc_dataset::to_model_input(t).unwrap();
    if let TensorData::F32(v) = &mut t.data {
        v[at] = value;
    }
    write_npy(&dir.join(name), &t);
    name.to_string()
}

#[test]
fn non_finite_calibration_data_is_refused() {
    let dir = workspace("nan-calib");
    let t = Tensor::f32(vec![4, 1, 28, 28], vec![f32::NAN; 4 * 784]).unwrap();
    write_npy(&dir.join("nan.npy"), &t);
    fails_in(
        &dir,
        &["compile", "m.onnx", "--calib", "nan.npy", "-o", "o.fqc"],
        &["nan.npy", "[0, 0, 0, 0]", "NaN", "finite"],
    );
    // One infinity in the second image.
    let one = images_with(&dir, "inf.npy", 784 + 30, f32::INFINITY);
    fails_in(
        &dir,
        &["compile", "m.onnx", "--calib", &one, "-o", "o.fqc"],
        &["[1, 0, 1, 2]", "inf"],
    );
}

#[test]
fn non_finite_inputs_are_refused_by_every_engine() {
    let dir = workspace("nan-input");
    let bad = images_with(&dir, "bad.npy", 2 * 784 + 3 * 28 + 4, f32::NAN);
    for args in [
        vec!["run", "M.fqc", "--input", bad.as_str()],
        vec!["run", "M.fqc", "--interp", "--input", bad.as_str()],
        vec!["run", "m.onnx", "--input", bad.as_str()],
        vec!["bench", "M.fqc", "--input", bad.as_str(), "--runs", "1"],
    ] {
        fails_in(&dir, &args, &["bad.npy", "[2, 0, 3, 4]", "NaN"]);
    }
    let x = fqc_dataset::to_model_input(
        fqc_dataset::npy::read(&fs::read(dir.join(&bad)).unwrap()).unwrap(),
    )
    .unwrap();
    let y = Tensor {
        shape: vec![4],
        data: TensorData::I64(vec![0, 1, 2, 3]),
    };
    fqc_dataset::npz::write(&dir.join("bad.npz"), &[("x_test", &x), ("y_test", &y)]).unwrap();
    fails_in(
        &dir,
        &["eval", "M.fqc", "--data", "bad.npz"],
        &["bad.npz", "image 2", "NaN"],
    );
}

#[test]
fn labels_that_are_not_classes_are_refused() {
    let dir = workspace("labels");
    let x = fqc_dataset::to_model_input(
        fqc_dataset::npy::read(&fs::read(dir.join("x.npy")).unwrap()).unwrap(),
    )
    .unwrap();
    for (label, shown) in [(57i64, "57"), (-1, "-1"), (1 << 62, "4611686018427387904")] {
        let y = Tensor {
            shape: vec![4],
            data: TensorData::I64(vec![0, 1, label, 3]),
        };
        fqc_dataset::npz::write(&dir.join("l.npz"), &[("x_test", &x), ("y_test", &y)]).unwrap();
        fails_in(
            &dir,
            &["eval", "M.fqc", "--data", "l.npz"],
            &["l.npz", "label 2", shown, "0 to 9"],
        );
        fails_in(
            &dir,
            &["eval", "m.onnx", "--data", "l.npz"],
            &["label 2", shown],
        );
    }
    let y = Tensor {
        shape: vec![4, 1],
        data: TensorData::I64(vec![0, 1, 2, 3]),
    };
    fqc_dataset::npz::write(&dir.join("y2.npz"), &[("x_test", &x), ("y_test", &y)]).unwrap();
    fails_in(
        &dir,
        &["eval", "M.fqc", "--data", "y2.npz"],
        &["y_test", "1-D", "[4, 1]"],
    );
    // Training labels too, before any training starts.
    let y = Tensor {
        shape: vec![4],
        data: TensorData::I64(vec![0, 1, 99, 3]),
    };
    fqc_dataset::npz::write(&dir.join("t.npz"), &[("x_train", &x), ("y_train", &y)]).unwrap();
    fails_in(
        &dir,
        &["compile", "m.onnx", "--train", "t.npz", "-o", "o.fqc"],
        &["t.npz", "label 2", "99"],
    );
}

#[test]
fn duplicate_names_in_an_onnx_graph_are_refused() {
    let dir = workspace("duplicates");
    let bytes = fs::read(dir.join("m.onnx")).unwrap();
    let mut m = ModelProto::decode(bytes.as_slice()).unwrap();
    let g = m.graph.as_mut().unwrap();
    let first = g.input[0].clone();
    g.input.push(first);
    fs::write(dir.join("dup_input.onnx"), m.encode_to_vec()).unwrap();
    fails_in(
        &dir,
        &["inspect", "dup_input.onnx"],
        &["graph input `x`", "twice"],
    );

    let mut m = ModelProto::decode(bytes.as_slice()).unwrap();
    let g = m.graph.as_mut().unwrap();
    let out0 = g.node[0].output[0].clone();
    g.node[1].output[0].clone_from(&out0);
    fs::write(dir.join("dup_value.onnx"), m.encode_to_vec()).unwrap();
    fails_in(
        &dir,
        &["inspect", "dup_value.onnx"],
        &[&format!("output `{out0}`"), "already defined"],
    );
}

#[test]
fn a_collapsed_post_training_compile_warns() {
    let dir = workspace("collapse");
    // README's post-training command, ternary weights and 4-bit activations.
    let out = fqc_in(
        &dir,
        &[
            "compile",
            "m.onnx",
            "--data",
            "d.npz",
            "--weights",
            "ternary",
            "--act-bits",
            "4",
            "-o",
            "t.fqc",
        ],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stdout.contains("check against the float model on 256 held-out images"),
        "{stdout}"
    );
    let warning: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("warning:"))
        .collect();
    assert_eq!(warning.len(), 1, "{stderr}");
    assert!(warning[0].contains("--train"), "{stderr}");
    // An 8-bit compile of the same model agrees with it and does not warn.
    let out = fqc_in(
        &dir,
        &[
            "compile",
            "m.onnx",
            "--data",
            "d.npz",
            "--weights",
            "8",
            "--act-bits",
            "8",
            "-o",
            "e.fqc",
        ],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert!(!String::from_utf8_lossy(&out.stderr).contains("warning:"));
    let agreement: f64 = stdout
        .lines()
        .find_map(|l| l.split("top-1 agreement ").nth(1))
        .and_then(|r| r.split('%').next())
        .and_then(|v| v.parse().ok())
        .expect("an agreement figure");
    assert!(agreement >= 98.0, "w8a8 agreement {agreement}%: {stdout}");
}

#[test]
fn calibration_on_every_image_says_so() {
    let dir = workspace("all-calib");
    let out = fqc_in(
        &dir,
        &[
            "compile",
            "m.onnx",
            "--calib",
            "x.npy",
            "--weights",
            "8",
            "--act-bits",
            "8",
            "-o",
            "o.fqc",
        ],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout
            .contains("4 calibration inputs of x.npy (all were used to calibrate: none held out)"),
        "{stdout}"
    );
}
