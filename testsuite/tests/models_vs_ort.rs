//! Whole models against ONNX Runtime: the `onnx` wheel's light models (resnet50, vgg19,
//! densenet121, …, weights from ConstantOfShape), its pytorch-converted tests, the bundled
//! MNIST/Fashion CNNs, the filetest models, and six light architectures with seeded random
//! weights compared on their logits (`lightrand_*`). References come from
//! `testsuite/scripts/gen_model_refs.py`. Each output must be within 1e-4 of the
//! reference relative to the output's largest magnitude (`max|got - want| <= 1e-4 *
//! max|want|`). Models the generator skipped (ops outside fqc's importer) must be named in
//! `testsuite/skips.txt`.

use std::path::Path;

use fqc_ir::interp::{run_with, RunOptions};
use fqc_testsuite::{catch, compare, generated, skips, Tally};
use serde_json::Value as Json;

fn npy(path: &Path) -> Result<fqc_ir::Tensor, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    fqc_dataset::npy::read(&bytes).map_err(|e| format!("{}: {e}", path.display()))
}

fn run_one(dir: &Path, entry: &Json) -> Result<(), String> {
    let model = entry["model_path"]
        .as_str()
        .ok_or("manifest entry lacks model_path")?;
    let model = if Path::new(model).is_absolute() {
        model.into()
    } else {
        fqc_testsuite::repo_root().join(model)
    };
    let graph = fqc_onnx::import_file(&model).map_err(|e| e.to_string())?;
    let inputs = entry["inputs"]
        .as_array()
        .ok_or("no inputs")?
        .iter()
        .map(|i| npy(&dir.join(i["file"].as_str().unwrap_or_default())))
        .collect::<Result<Vec<_>, _>>()?;
    let got = run_with(&graph, &inputs, &RunOptions { threads: 2 }).map_err(|e| e.to_string())?;
    let outs = entry["outputs"].as_array().ok_or("no outputs")?;
    if got.len() != outs.len() {
        return Err(format!("{} outputs, expected {}", got.len(), outs.len()));
    }
    for (i, (g, o)) in got.iter().zip(outs).enumerate() {
        let want = npy(&dir.join(o["file"].as_str().unwrap_or_default()))?;
        if g.shape != want.shape {
            return Err(format!(
                "output {i} has shape {:?}, ORT gives {:?}",
                g.shape, want.shape
            ));
        }
        let (a, b) = (
            g.as_f32().ok_or("output not f32")?,
            want.as_f32().ok_or("reference not f32")?,
        );
        let d = compare(a, b, 0.0, 0.0);
        println!(
            "  {:<36} output {i}: max abs err {:.3e}, relative to range {:.3e}",
            entry["name"].as_str().unwrap_or("?"),
            d.max_abs,
            d.rel_to_range
        );
        if d.rel_to_range.is_nan() || d.rel_to_range > 1e-4 {
            return Err(format!(
                "output {i}: max abs error {:e} is {:e} of the output range (limit 1e-4)",
                d.max_abs, d.rel_to_range
            ));
        }
    }
    Ok(())
}

#[test]
fn models_match_onnx_runtime() {
    let Some(dir) = generated("models") else {
        return;
    };
    let manifest: Json =
        serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).expect("manifest.json"))
            .expect("manifest JSON");
    let skips = skips("model");
    let mut tally = Tally::default();
    for entry in manifest.as_array().expect("manifest is a list") {
        let name = entry["name"].as_str().expect("name").to_string();
        tally.record(&name, catch(|| run_one(&dir.join(&name), entry)), &skips);
    }
    // Models the generator could not give a reference for: they must be listed too.
    let skipped: Json = serde_json::from_slice(
        &std::fs::read(dir.join("skipped.json")).unwrap_or_else(|_| b"[]".to_vec()),
    )
    .expect("skipped.json");
    for s in skipped.as_array().into_iter().flatten() {
        let name = s["name"].as_str().unwrap_or_default().to_string();
        let ops: Vec<&str> = s["extra_ops"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|o| o.as_str())
            .collect();
        tally.record(
            &name,
            Err(format!("uses ops fqc does not import: {}", ops.join(", "))),
            &skips,
        );
    }
    tally.finish("model");
}
