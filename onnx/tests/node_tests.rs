//! Imports every ONNX backend node test of `testsuite/generated/node` (written by
//! `python3 testsuite/scripts/gen_node_tests.py`): none may panic, and each either imports
//! or fails with a one-line message. Those with only float inputs and outputs (what fqc
//! graphs carry) are expected to import unless listed in `EXPECTED_REFUSALS`. Numerical
//! conformance is the testsuite's job. Fails under CI when the folder is absent.

use std::path::PathBuf;

/// Float node tests outside what fqc imports (by name prefix), with a fragment of the
/// expected message: 3-D pools, training mode, and runtime scalars where fqc needs
/// constants (Clip bounds, Dropout ratio, a rank-0 Gemm bias input).
const EXPECTED_REFUSALS: &[(&str, &str)] = &[
    (
        "test_averagepool_3d",
        "only 1-D and 2-D pools are supported",
    ),
    ("test_maxpool_3d", "only 1-D and 2-D pools are supported"),
    (
        "test_batchnorm_epsilon_training_mode",
        "training_mode=1 is not supported",
    ),
    (
        "test_batchnorm_example_training_mode",
        "training_mode=1 is not supported",
    ),
    ("test_clip_default_max", "must have rank >= 1"),
    ("test_clip_default_min", "must have rank >= 1"),
    ("test_clip_example", "must have rank >= 1"),
    ("test_clip_inbounds", "must have rank >= 1"),
    ("test_clip_min_greater_than_max", "must have rank >= 1"),
    ("test_clip_outbounds", "must have rank >= 1"),
    ("test_clip_splitbounds", "must have rank >= 1"),
    ("test_dropout_default_ratio", "must have rank >= 1"),
    ("test_gemm_default_scalar_bias", "must have rank >= 1"),
    // Slice of a runtime tensor (only shape values are sliced at import time).
    (
        "test_causal_conv_with_state",
        "Slice is only supported on shape values",
    ),
];

fn expected_refusal(name: &str) -> Option<&'static str> {
    if name == "test_clip" {
        return Some("must have rank >= 1");
    }
    EXPECTED_REFUSALS
        .iter()
        .find(|(p, _)| name.starts_with(p))
        .map(|(_, frag)| *frag)
}

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
        let floats_only = ["input_dtypes", "output_dtypes"].iter().all(|k| {
            e[k].as_array()
                .is_some_and(|a| a.iter().all(|d| d.as_str() == Some("FLOAT")))
        });
        let res = fqc_onnx::import_file(&dir.join(name).join("model.onnx"));
        let expected = expected_refusal(name);
        match (res, expected) {
            (Ok(_), None) => ok += 1,
            (Ok(_), Some(_)) => failures.push(format!("{name}: imported but listed as refused")),
            (Err(err), exp) => {
                refused += 1;
                let msg = err.to_string();
                all.push(format!("{name}: {msg}"));
                if msg.contains('\n') || msg.is_empty() {
                    failures.push(format!("{name}: message is not one line: {msg:?}"));
                }
                match exp {
                    Some(frag) if !msg.contains(frag) => {
                        failures.push(format!("{name}: expected `{frag}`, got: {msg}"))
                    }
                    None if floats_only && e["tensor_only"].as_bool() == Some(true) => {
                        failures.push(format!("{name}: {msg}"))
                    }
                    _ => {}
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
