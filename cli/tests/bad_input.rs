//! Bad input to the `fqc` binary: each case must end with exactly one `error:` line that
//! names the problem (and the node, where there is one), a non-zero exit status that is
//! not a panic or a signal, and no large allocation (the process runs under a 2 GiB
//! address-space limit, so an attempt to allocate for a 10^12-element tensor would abort).

mod common;
use common::*;

fn bad(name: &str) -> String {
    repo()
        .join("testsuite/filetests/bad")
        .join(name)
        .display()
        .to_string()
}

#[test]
fn truncated_model() {
    let good = std::fs::read(repo().join("examples/mnist/mnist_cnn.onnx")).unwrap();
    let path = scratch("bad-input", "truncated").join("truncated.onnx");
    std::fs::write(&path, &good[..good.len() / 2]).unwrap();
    fails(&["inspect", path.to_str().unwrap()], &["truncated.onnx"]);
}

#[test]
fn random_bytes() {
    // A fixed xorshift stream: deterministic "random" garbage.
    let mut s = 0x9e37_79b9_7f4a_7c15u64;
    let bytes: Vec<u8> = (0..4096)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            s as u8
        })
        .collect();
    let path = scratch("bad-input", "random").join("random.onnx");
    std::fs::write(&path, bytes).unwrap();
    fails(&["inspect", path.to_str().unwrap()], &["random.onnx"]);
}

#[test]
fn unknown_op() {
    fails(
        &["inspect", &bad("unknown_op.onnx")],
        &["Hardmax", "/act/Hardmax"],
    );
}

#[test]
fn unsupported_attribute() {
    fails(
        &["inspect", &bad("unsupported_attribute.onnx")],
        &["/conv/Conv", "auto_pad"],
    );
}

#[test]
fn huge_shape() {
    fails(&["inspect", &bad("huge_shape.onnx")], &["`w`"]);
}

#[test]
fn huge_constant_of_shape() {
    fails(
        &["inspect", &bad("huge_constant_of_shape.onnx")],
        &["/big/ConstantOfShape"],
    );
}

#[test]
fn negative_dims() {
    fails(&["inspect", &bad("negative_dims.onnx")], &["`w`", "-1"]);
}

#[test]
fn short_raw_data() {
    fails(&["inspect", &bad("short_raw_data.onnx")], &["`w`"]);
}

#[test]
fn external_data_outside_model_folder() {
    fails(
        &["inspect", &bad("external_escape.onnx")],
        &["`w`", "../../secret.bin"],
    );
    fails(
        &["inspect", &bad("external_absolute.onnx")],
        &["`w`", "/etc/passwd"],
    );
}

#[test]
fn symbolic_spatial_dimension() {
    fails(&["inspect", &bad("symbolic_height.onnx")], &["`x`", "H"]);
}

#[test]
fn missing_file() {
    fails(
        &["inspect", "/nonexistent/model.onnx"],
        &["/nonexistent/model.onnx"],
    );
}

#[test]
fn wrong_input_shape_to_run() {
    let dir = scratch("bad-input", "wrong-shape");
    let x = fqc_ir::Tensor::f32(vec![2, 1, 14, 28], vec![0.0; 2 * 14 * 28]).unwrap();
    let input = dir.join("x.npy");
    std::fs::write(&input, fqc_dataset::npy::write(&x)).unwrap();
    let output = dir.join("y.npy");
    std::fs::write(&output, b"keep me").unwrap();
    let model = repo().join("examples/mnist/mnist_cnn.onnx");
    fails(
        &[
            "run",
            model.to_str().unwrap(),
            "--input",
            input.to_str().unwrap(),
            "--output",
            output.to_str().unwrap(),
        ],
        &["`x`", "f32[N,1,28,28]", "f32[2,1,14,28]"],
    );
    // Nothing the user had is lost.
    assert_eq!(std::fs::read(&output).unwrap(), b"keep me");
}

#[test]
fn corrupt_npy_input_to_run() {
    let dir = scratch("bad-input", "corrupt-npy");
    let input = dir.join("x.npy");
    std::fs::write(&input, b"\x93NUMPY\x01\x00garbage").unwrap();
    let model = repo().join("examples/mnist/mnist_cnn.onnx");
    fails(
        &[
            "run",
            model.to_str().unwrap(),
            "--input",
            input.to_str().unwrap(),
        ],
        &["x.npy"],
    );
}
