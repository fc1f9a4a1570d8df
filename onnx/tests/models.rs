//! Imports every model of `testsuite/generated/models/manifest.json` (written by
//! `python3 testsuite/scripts/gen_model_refs.py`) and checks the IR output type against
//! the manifest. Models with 3-D convolutions/pools or integer inputs (embeddings) are
//! outside fqc's op set: they must fail with a clear message instead; models with ops the
//! importer does not lower are counted (the testsuite's skip list names each). Fails under
//! CI when the manifest is absent.

use std::path::PathBuf;

use fqc_ir::Dim;

fn manifest() -> Option<serde_json::Value> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../testsuite/generated/models/manifest.json");
    let text = std::fs::read_to_string(&p).ok()?;
    serde_json::from_str(&text).ok()
}

/// Models that must be refused, with a fragment of the expected message.
fn expected_refusal(name: &str) -> Option<&'static str> {
    if name.contains("Conv3d") || name.contains("Pool3d") {
        Some("only 1-D and 2-D")
    } else if name.contains("Embedding") {
        // Integer (token id) inputs: fqc imports float CNNs.
        Some("element type INT64 is not supported")
    } else {
        None
    }
}

#[test]
fn manifest_models_import_with_expected_output_types() {
    let Some(m) = manifest() else {
        // Under CI a missing fixture is a failure: CI can never pass vacuously.
        assert!(
            std::env::var_os("CI").is_none(),
            "testsuite/generated/models/manifest.json is absent (scripts/test.sh generates it)"
        );
        eprintln!("NOT RUN: testsuite/generated/models/manifest.json is absent");
        return;
    };
    let mut failures = Vec::new();
    let (mut imported, mut unsupported) = (0, 0);
    for e in m.as_array().expect("manifest is a list") {
        let name = e["name"].as_str().expect("name");
        let path = PathBuf::from(e["model_path"].as_str().expect("model_path"));
        if !path.exists() {
            assert!(
                std::env::var_os("CI").is_none(),
                "{name}: {} is absent",
                path.display()
            );
            eprintln!("NOT RUN {name}: {} is absent", path.display());
            continue;
        }
        let t0 = std::time::Instant::now();
        let res = fqc_onnx::import_file(&path);
        eprintln!("{name}: {:.2}s", t0.elapsed().as_secs_f64());
        match (res, expected_refusal(name)) {
            (Err(err), Some(frag)) => {
                let msg = err.to_string();
                if !msg.contains(frag) {
                    failures.push(format!("{name}: expected `{frag}`, got: {msg}"));
                }
            }
            (Ok(_), Some(frag)) => failures.push(format!("{name}: expected refusal `{frag}`")),
            // A model using an op the importer does not lower: every such model is named
            // in testsuite/skips.txt, checked by the testsuite's models_vs_ort.
            (Err(err), None) if err.to_string().contains("unsupported op type") => {
                unsupported += 1;
            }
            (Err(err), None) => failures.push(format!("{name}: {err}")),
            (Ok(g), None) => {
                imported += 1;
                let want: Vec<u64> = e["outputs"][0]["shape"]
                    .as_array()
                    .expect("shape")
                    .iter()
                    .map(|d| d.as_u64().expect("dim"))
                    .collect();
                let got = &g.ty(g.outputs()[0]).shape;
                let batch = e["inputs"][0]["shape"][0].as_u64().unwrap_or(1);
                let resolved: Vec<u64> = got.0.iter().map(|d| d.resolve(batch)).collect();
                if resolved != want || (got.0.first() == Some(&Dim::Batch) && want.is_empty()) {
                    failures.push(format!("{name}: output type {got}, manifest says {want:?}"));
                }
                if let Err(err) = fqc_ir::verify::verify(&g) {
                    failures.push(format!("{name}: verify: {err}"));
                }
            }
        }
    }
    eprintln!("imported {imported} models; {unsupported} use ops the importer does not lower");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
