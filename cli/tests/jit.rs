//! `fqc run` / `fqc eval` on the JIT and `fqc bench`, end to end on the MNIST CNN
//! compiled to ternary weights / 4-bit activations: the JIT's logits on 64 test images
//! are identical (byte for byte in the written `.npy`) to `--interp`'s, `eval` gives the
//! same accuracy on both engines, `bench` prints its figures, and a float model given
//! to `bench` is one clear error.

mod common;
use common::*;

use std::path::Path;

/// The top-1 figure and engine of an `fqc eval` line.
fn top1(eval: &str) -> (&str, &str) {
    let pct = eval.split('%').next().unwrap();
    let engine = eval.trim_end().rsplit(", ").next().unwrap();
    (pct, engine)
}

#[test]
fn jit_run_and_eval_match_the_interpreter_and_bench_reports() {
    let dir = std::env::temp_dir().join(format!("fqc-jit-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let model = dir.join("mnist_t4.fqc");
    let m = model.to_str().unwrap();
    let data = path("examples/mnist/mnist10k.npz");
    ok(&[
        "compile",
        &path("examples/mnist/mnist_cnn.onnx"),
        "-o",
        m,
        "--data",
        &data,
        "--weights",
        "ternary",
        "--act-bits",
        "4",
    ]);

    // 64 test images; logits from the JIT (2 threads) and the interpreter.
    let x = dir.join("x.npy");
    let t = fqc_dataset::LabelledSet::load_npz(Path::new(&data), "test")
        .unwrap()
        .batch(0, 64);
    std::fs::write(&x, fqc_dataset::npy::write(&t)).unwrap();
    let xs = x.to_str().unwrap();
    let (yj, yi) = (dir.join("jit.npy"), dir.join("interp.npy"));
    let out = ok(&[
        "run",
        m,
        "--input",
        xs,
        "--output",
        yj.to_str().unwrap(),
        "--threads",
        "2",
        "--repeat",
        "2",
    ]);
    assert!(out.contains("run (JIT)"), "{out}");
    let out = ok(&[
        "run",
        m,
        "--input",
        xs,
        "--output",
        yi.to_str().unwrap(),
        "--interp",
        "--repeat",
        "2",
    ]);
    assert!(out.contains("run (interpreter)"), "{out}");
    let (jit, interp) = (std::fs::read(&yj).unwrap(), std::fs::read(&yi).unwrap());
    assert_eq!(jit, interp, "JIT and interpreter logits differ");
    let logits = fqc_dataset::npy::read(&jit).unwrap();
    assert_eq!(logits.shape, vec![64, 10]);

    // Same accuracy on both engines.
    let ej = ok(&["eval", m, "--data", &data, "--limit", "300"]);
    let ei = ok(&["eval", m, "--data", &data, "--limit", "300", "--interp"]);
    assert_eq!(top1(&ej).0, top1(&ei).0, "{ej}{ei}");
    assert_eq!((top1(&ej).1, top1(&ei).1), ("JIT]", "interpreter]"));

    // bench prints compile time, the kernels the steps got, latency, images/s and GMAC/s.
    let b = ok(&[
        "bench",
        m,
        "--batch",
        "4",
        "--threads",
        "2",
        "--runs",
        "3",
        "--warmup",
        "1",
    ]);
    for piece in [
        "JIT compile:",
        "MACs/image",
        "batch 4, 2 thread(s)",
        "images/s",
        "GMAC/s",
    ] {
        assert!(b.contains(piece), "`{piece}` missing:\n{b}");
    }
    // One `form ×count` entry per distinct kernel form, the counts summing to the
    // compiled steps (the MNIST CNN has at least its 2 convolutions and 2 Gemms).
    let kernels = b
        .lines()
        .find_map(|l| l.strip_prefix("kernels: "))
        .unwrap_or_else(|| panic!("no kernels line:\n{b}"));
    let counts: Vec<usize> = kernels
        .split(", ")
        .map(|e| {
            e.rsplit_once(" ×")
                .expect("form ×count")
                .1
                .parse()
                .expect("count")
        })
        .collect();
    assert!(counts.iter().sum::<usize>() >= 4, "{kernels}");
    // A float model cannot be JIT'd: one error line naming the file.
    let onnx = path("examples/mnist/mnist_cnn.onnx");
    let out = fqc(&["bench", &onnx]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("error: ") && err.contains("mnist_cnn.onnx"),
        "{err}"
    );
    std::fs::remove_dir_all(dir).ok();
}
