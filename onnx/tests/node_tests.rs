//! Imports every ONNX backend node test of `testsuite/generated/node` (written by
//! `python3 testsuite/scripts/gen_node_tests.py`) as it is, inputs unfrozen: none may
//! panic, and each either imports or fails with a one-line message. Which tests must
//! pass, and why the others may not, is the testsuite's job (`onnx_node_tests.rs`, its
//! class-checked skip list). Fails under CI when the folder is absent.

use std::path::PathBuf;

#[test]
fn node_test_models_import_or_fail_cleanly() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../testsuite/generated/node");
    let Ok(text) = std::fs::read_to_string(dir.join("manifest.json")) else {
        // Under CI a missing fixture is a failure: CI can never pass vacuously.
        assert!(
            std::env::var_os("CI").is_none(),
            "testsuite/generated/node/manifest.json is absent (scripts/test.sh generates it)"
        );
        eprintln!("NOT RUN: testsuite/generated/node/manifest.json is absent");
        return;
    };
    let m: serde_json::Value = serde_json::from_str(&text).expect("manifest parses");
    let mut failures = Vec::new();
    let (mut ok, mut refused) = (0, 0);
    let mut all = Vec::new();
    for e in m.as_array().expect("a list") {
        let name = e["name"].as_str().expect("name");
        match fqc_onnx::import_file(&dir.join(name).join("model.onnx")) {
            Ok(_) => ok += 1,
            Err(err) => {
                refused += 1;
                let msg = err.to_string();
                all.push(format!("{name}: {msg}"));
                if msg.contains('\n') || msg.is_empty() {
                    failures.push(format!("{name}: message is not one line: {msg:?}"));
                }
            }
        }
    }
    eprintln!("{ok} imported, {refused} refused");
    if std::env::var("FQC_SHOW_REFUSED").is_ok() {
        eprintln!("{}", all.join("\n"));
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
