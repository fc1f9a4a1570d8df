//! `fqc bench --json` and `--min-secs` on the MNIST CNN compiled to w8a8: one JSON object
//! line with every field `scripts/bench_peers.sh` reads, consistent with itself (runs ≥
//! `--runs`, min ≤ median, GMAC/s = MACs × batch / median, `fqc_bytes` = the file's size),
//! and bad `--min-secs` is one clear error.

mod common;
use common::*;

/// The raw text of field `key` in a flat one-line JSON object (numbers and strings
/// without commas are all this test needs).
fn field<'a>(json: &'a str, key: &str) -> &'a str {
    let pat = format!("\"{key}\":");
    let at = json
        .find(&pat)
        .unwrap_or_else(|| panic!("`{key}` missing: {json}"));
    let rest = &json[at + pat.len()..];
    let end = rest.find([',', '}']).unwrap_or(rest.len());
    rest[..end].trim()
}

fn num(json: &str, key: &str) -> f64 {
    field(json, key)
        .parse()
        .unwrap_or_else(|e| panic!("`{key}` not a number ({e}): {json}"))
}

#[test]
fn bench_json_prints_one_consistent_object() {
    let dir = scratch("bench-json", "w8a8");
    let model = dir.join("mnist_w8a8.fqc");
    let m = model.to_str().unwrap();
    ok(&[
        "compile",
        &path("examples/mnist/mnist_cnn.onnx"),
        "-o",
        m,
        "--data",
        &path("examples/mnist/mnist10k.npz"),
        "--calib-images",
        "32",
        "--weights",
        "8",
        "--act-bits",
        "8",
    ]);
    let out = ok(&[
        "bench",
        m,
        "--batch",
        "2",
        "--threads",
        "2",
        "--runs",
        "3",
        "--warmup",
        "1",
        "--min-secs",
        "0.2",
        "--json",
    ]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 1, "one line expected:\n{out}");
    let j = lines[0];
    assert!(j.starts_with('{') && j.ends_with('}'), "{j}");
    assert_eq!(field(j, "model"), format!("\"{m}\""));
    assert_eq!(num(j, "batch"), 2.0);
    assert_eq!(num(j, "threads"), 2.0);
    assert!(num(j, "runs") >= 3.0, "{j}");
    let (median, min) = (num(j, "median_ms"), num(j, "min_ms"));
    assert!(min > 0.0 && min <= median, "{j}");
    // --min-secs 0.2: timing goes on past the 3 runs asked for (3 runs of a batch of 2
    // MNIST images take far less than 0.2 s).
    assert!(num(j, "runs") > 3.0, "{j}");
    assert!(num(j, "compile_ms") > 0.0, "{j}");
    let macs = num(j, "macs_per_image");
    assert!(macs > 0.0, "{j}");
    let gmacs = num(j, "gmacs");
    let expect = macs * 2.0 / (median / 1e3) / 1e9;
    assert!((gmacs - expect).abs() <= 0.01 * expect + 1e-3, "{j}");
    let ips = num(j, "images_per_s");
    assert!((ips - 2e3 / median).abs() <= 0.01 * ips + 0.01, "{j}");
    let bytes = std::fs::metadata(&model).unwrap().len();
    assert_eq!(num(j, "fqc_bytes"), bytes as f64, "{j}");

    // Text mode still prints its figures.
    let t = ok(&["bench", m, "--runs", "2", "--warmup", "0"]);
    assert!(t.contains("JIT compile:") && t.contains("GMAC/s"), "{t}");

    fails(&["bench", m, "--min-secs=-1"], &["--min-secs"]);
    fails(&["bench", m, "--min-secs", "nan"], &["--min-secs"]);
    std::fs::remove_dir_all(dir).ok();
}
