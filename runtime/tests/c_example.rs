//! The C example (`examples/embed/c/main.c`) builds against `include/fqc.h` and the
//! cdylib, runs the MNIST ternary/a4 `.fqc` on 16 test images, and prints exactly the
//! logits of the integer interpreter (what `fqc run --interp` prints) and of a Rust
//! `Session` (what `fqc run` prints). Logits are printed with `%.9g`, which round-trips
//! every f32, so equality is bit for bit. Also checks the C-side errors: a corrupt
//! artifact and a wrong input shape give a message and a status, not a crash.

mod mnist;

use std::path::{Path, PathBuf};
use std::process::Command;

/// The folder holding `libfqc_runtime.so` built for this test run.
fn lib_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let deps = exe.parent().unwrap().to_path_buf();
    assert!(
        deps.join("libfqc_runtime.so").is_file(),
        "cdylib missing in {}",
        deps.display()
    );
    deps
}

fn build(dir: &Path, src: &Path) -> PathBuf {
    let exe = dir.join("embed");
    let lib = lib_dir();
    let out = Command::new("cc")
        .arg(src)
        .arg("-std=c99")
        .arg("-Wall")
        .arg("-Werror")
        .arg("-I")
        .arg(mnist::root().join("runtime/include"))
        .arg("-L")
        .arg(&lib)
        // DT_RPATH (not RUNPATH) so this run's cdylib wins over a stale one that
        // cargo's LD_LIBRARY_PATH (target/debug) may hold from an earlier `cargo build`.
        .arg("-Wl,--disable-new-dtags")
        .arg(format!("-Wl,-rpath,{}", lib.display()))
        .arg("-lfqc_runtime")
        .arg("-o")
        .arg(&exe)
        .output()
        .expect("cc runs");
    assert!(
        out.status.success(),
        "cc failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    exe
}

#[test]
fn c_example_prints_the_same_logits_as_fqc_run() {
    let dir = mnist::scratch("c-example");
    let g = mnist::ternary_a4();
    let model_path = mnist::save(&g, &dir);
    let exe = build(&dir, &mnist::root().join("examples/embed/c/main.c"));

    let x = mnist::test_set().batch(0, 16);
    let xf = fqc_dataset::to_model_input(x).unwrap();
    let raw: Vec<u8> = xf
        .as_f32()
        .unwrap()
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    let images = dir.join("images.f32");
    std::fs::write(&images, raw).unwrap();

    let out = Command::new(&exe)
        .arg(&model_path)
        .arg(&images)
        .arg("16")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got: Vec<f32> = stdout
        .split_whitespace()
        .map(|s| s.parse().unwrap())
        .collect();
    assert_eq!(stdout.lines().count(), 16);

    let interp = fqc_ir::interp::run(&g, std::slice::from_ref(&xf)).unwrap();
    let want = interp[0].as_f32().unwrap();
    let session = fqc_runtime::Model::load(&model_path)
        .unwrap()
        .session()
        .run(&xf)
        .unwrap();
    assert_eq!(got.len(), 160);
    assert_eq!(
        got.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
        want.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
    );
    assert_eq!(session.as_f32().unwrap(), want);

    // Errors reach C as a message and a status: a corrupt artifact …
    let mut bytes = std::fs::read(&model_path).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x5a;
    let bad = dir.join("corrupt.fqc");
    std::fs::write(&bad, bytes).unwrap();
    let out = Command::new(&exe)
        .arg(&bad)
        .arg(&images)
        .arg("16")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        err.contains("corrupt.fqc") && err.contains("corrupt"),
        "{err}"
    );
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn c_abi_reports_a_wrong_shape_without_crashing() {
    let dir = mnist::scratch("c-shape");
    let model_path = mnist::save(&mnist::ternary_a4(), &dir);
    let src = dir.join("shape.c");
    std::fs::write(
        &src,
        r#"
#include <stdio.h>
#include <string.h>
#include "fqc.h"
int main(int argc, char **argv) {
    (void)argc;
    FqcModel *m = fqc_model_load(argv[1], NULL, 0);
    if (!m || fqc_model_output_len(m) != 10) return 10;
    FqcSession *s = fqc_session_new(m);
    static float x[3 * 32 * 32], y[100];
    int rc = fqc_session_run_f32(s, x, 1, 3, 32, 32, y, 100);
    printf("%d %s\n", rc, fqc_last_error());
    int rc2 = fqc_session_run_f32(s, x, 1, 1, 28, 28, y, 5);
    printf("%d %s\n", rc2, fqc_last_error());
    int rc3 = fqc_session_run_f32(NULL, x, 1, 1, 28, 28, y, 10);
    int rc4 = fqc_session_run_f32(s, x, 1, 1, 28, 28, y, 10);
    printf("%d %d\n", rc3, rc4);
    fqc_session_free(s);
    fqc_model_free(m);
    return fqc_model_load("/nonexistent.fqc", NULL, 0) == NULL ? 0 : 11;
}
"#,
    )
    .unwrap();
    let exe = build(&dir, &src);
    let out = Command::new(&exe).arg(&model_path).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(
        lines[0].starts_with("3 bad input") && lines[0].contains("[N,1,28,28]"),
        "{stdout}"
    );
    assert!(
        lines[1].starts_with("4 ") && lines[1].contains("10 floats"),
        "{stdout}"
    );
    assert_eq!(lines[2], "1 0");
    std::fs::remove_dir_all(dir).ok();
}
