//! Whole models against ONNX Runtime: the `onnx` wheel's light models (resnet50, vgg19,
//! densenet121, …, weights from ConstantOfShape), its pytorch-converted tests, the bundled
//! MNIST/Fashion CNNs, the filetest models, and six light architectures with seeded random
//! weights compared on their logits (`lightrand_*`). References come from
//! `testsuite/scripts/gen_model_refs.py`. Each output must be within 1e-4 of the
//! reference relative to the output's largest magnitude (`max|got - want| <= 1e-4 *
//! max|want|`). Every model runs through fqc, whatever ops it uses; one that fails must
//! be named in `testsuite/skips.txt` with the class of its failure (an op the importer
//! does not lower, a refused feature, ...), and so must a model ONNX Runtime gave no
//! reference for.

use std::path::Path;

use fqc_ir::interp::{run_with, RunOptions};
use fqc_testsuite::{catch, compare, generated, skips, Class, Failure, Tally};
use serde_json::Value as Json;

/// A fixture problem: a bug of the harness or the generator, never skippable.
fn harness(msg: String) -> Failure {
    Failure::new(Class::Panic, format!("harness: {msg}"))
}

fn npy(path: &Path) -> Result<fqc_ir::Tensor, Failure> {
    let bytes = std::fs::read(path).map_err(|e| harness(format!("{}: {e}", path.display())))?;
    fqc_dataset::npy::read(&bytes).map_err(|e| harness(format!("{}: {e}", path.display())))
}

fn run_one(dir: &Path, entry: &Json) -> Result<(), Failure> {
    let model = entry["model_path"]
        .as_str()
        .ok_or_else(|| harness("manifest entry lacks model_path".into()))?;
    let model = if Path::new(model).is_absolute() {
        model.into()
    } else {
        fqc_testsuite::repo_root().join(model)
    };
    let graph = fqc_onnx::import_file(&model).map_err(|e| Failure::import(&e))?;
    let inputs = entry["inputs"]
        .as_array()
        .ok_or_else(|| harness("no inputs".into()))?
        .iter()
        .map(|i| npy(&dir.join(i["file"].as_str().unwrap_or_default())))
        .collect::<Result<Vec<_>, _>>()?;
    let got = run_with(&graph, &inputs, &RunOptions { threads: 2 })
        .map_err(|e| Failure::new(Class::RunError, e.to_string()))?;
    let outs = entry["outputs"]
        .as_array()
        .ok_or_else(|| harness("no outputs".into()))?;
    if got.len() != outs.len() {
        return Err(Failure::new(
            Class::WrongShape,
            format!("{} outputs, expected {}", got.len(), outs.len()),
        ));
    }
    for (i, (g, o)) in got.iter().zip(outs).enumerate() {
        let want = npy(&dir.join(o["file"].as_str().unwrap_or_default()))?;
        if g.shape != want.shape {
            return Err(Failure::new(
                Class::WrongShape,
                format!(
                    "output {i} has shape {:?}, ORT gives {:?}",
                    g.shape, want.shape
                ),
            ));
        }
        let (Some(a), Some(b)) = (g.as_f32(), want.as_f32()) else {
            return Err(Failure::new(
                Class::OutputType,
                format!("output {i}: fqc's or the reference's output is not f32"),
            ));
        };
        let d = compare(a, b, 0.0, 0.0);
        println!(
            "  {:<36} output {i}: max abs err {:.3e}, relative to range {:.3e}",
            entry["name"].as_str().unwrap_or("?"),
            d.max_abs,
            d.rel_to_range
        );
        if d.rel_to_range.is_nan() || d.rel_to_range > 1e-4 {
            return Err(Failure::new(
                Class::WrongValue,
                format!(
                    "output {i}: max abs error {:e} is {:e} of the output range (limit 1e-4)",
                    d.max_abs, d.rel_to_range
                ),
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
    // Models ONNX Runtime gave no reference for: listed too, with ORT's reason.
    let skipped: Json = serde_json::from_slice(
        &std::fs::read(dir.join("skipped.json")).unwrap_or_else(|_| b"[]".to_vec()),
    )
    .expect("skipped.json");
    for s in skipped.as_array().into_iter().flatten() {
        let name = s["name"].as_str().unwrap_or_default().to_string();
        let why = s["reason"].as_str().unwrap_or("no reason given");
        tally.record(
            &name,
            Err(Failure::new(
                Class::NoReference,
                format!("ONNX Runtime: {why}"),
            )),
            &skips,
        );
    }
    tally.finish("model");
}
