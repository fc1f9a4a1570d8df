//! JIT ≡ integer interpreter, bit for bit, on every model the testsuite uses: the
//! entries of `testsuite/generated/models/manifest.json` (the `onnx` wheel's light
//! models, its pytorch-converted tests, the bundled MNIST/Fashion CNNs, the filetest
//! models and the seeded-random `lightrand_*` models; see `models_vs_ort.rs`).
//!
//! Each model is compiled to an integer-only graph by the `fqc_passes` pipeline
//! (`compile_gradual`, one stage, as `fqc compile` does) at ternary weights / 4-bit
//! activations (`t4`) and at `w8a8`, calibrated on seeded standard-normal inputs of the
//! model's input shape; then `fqc_codegen::compile(&g)` runs two seeded inputs (batch 2
//! and batch 1; twice the batch size for models whose graph fixes it) and its outputs
//! must equal `fqc_ir::interp::run`'s exactly. Models fqc cannot import are checked by
//! `models_vs_ort.rs` against `testsuite/skips.txt` and only counted here.
//!
//! Models the passes or the JIT refuse are named in [`EXPECTED_REFUSALS`] with (a piece
//! of) the error they give, and models compiled with float islands in
//! [`EXPECTED_ISLANDS`] with an op of the island, so a change in status — a model
//! starting to work, a new refusal or island — fails the test, as `testsuite/skips.txt`
//! does for conformance. A mismatch or a panic is never expected.
//!
//! Wall time (about 1-2 min at the test profile on 2 vCPU, more on a loaded machine):
//! the float interpreter calibrates (2 items for models over 50 M MACs or 200 k inputs)
//! and the integer interpreter checks, so models above [`MAX_MACS`] multiply-accumulates
//! per batch item (resnet50 at 4.1 G and vgg19 at 19.6 G, light and lightrand) are not
//! run: they are printed as not run, as is `pt_MaxPool2d_stride_padding_dilation`
//! (1000×1000 input, over [`MAX_ITEM`]). `FQC_JIT_VS_INTERP_MAX_MACS=N` changes the cap (e.g.
//! `100000000000` for all of them, minutes each).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use fqc_ir::{Graph, Op, Tensor};
use fqc_passes::schedule::{compile_gradual, NoFineTune, Schedule};
use fqc_passes::{PassContext, PipelineOptions, WeightBits};
use fqc_testsuite::{catch, generated, Class, Failure};
use serde_json::Value as Json;

/// Default cap on conv + gemm MACs per batch item (see the module docs).
const MAX_MACS: u64 = 3_000_000_000;

/// Cap on input elements per batch item: the 1000×1000 dilated max-pool test takes
/// minutes in calibration and the interpreter and has no layer to compare.
const MAX_ITEM: usize = 500_000;

/// Calibration items (in batches of the model's batch size when it is fixed); models
/// over [`BIG_MACS`] per item, or with items over [`BIG_ITEM`] elements (the 1000×1000
/// max-pool test), calibrate on [`CALIB_N_BIG`].
const CALIB_N: usize = 8;
const CALIB_N_BIG: usize = 2;
const BIG_MACS: u64 = 50_000_000;
const BIG_ITEM: usize = 200_000;

/// `(model or model/precision, piece of the error)`: every refusal the test expects.
/// An entry without `/precision` covers both precisions and requires both to refuse.
/// Since the JIT runs every op the interpreter runs and `integerize` keeps float islands
/// instead of failing, nothing the passes accept is refused.
const EXPECTED_REFUSALS: &[(&str, &str)] = &[];

/// `(model or model/precision, op)`: every model compiled with float islands, by an op
/// of the island (the ops without an exact integer form). Same matching as
/// [`EXPECTED_REFUSALS`]; JIT ≡ interpreter is checked for them all the same.
const EXPECTED_ISLANDS: &[(&str, &str)] = &[
    // Local response normalisation (alexnet, zfnet, inception v1) has no integer form.
    ("light_bvlc_alexnet", "lrn"),
    ("light_zfnet512", "lrn"),
    ("light_inception_v1", "lrn"),
    ("lightrand_inception_v1", "lrn"),
    // PoissonNLLLoss: a `mul` by a constant that varies along non-channel axes (no
    // per-channel table holds it).
    ("pt_PoissonNLLLLoss_no_reduce", "mul"),
];

/// A small deterministic generator (splitmix64) for standard-normal inputs.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn uniform(&mut self) -> f64 {
        ((self.next_u64() >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }

    /// Box–Muller.
    fn normal(&mut self) -> f32 {
        let (u, v) = (self.uniform(), self.uniform());
        ((-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()) as f32
    }
}

fn normal_input(item: &[usize], batch: usize, seed: u64) -> Tensor {
    let mut shape = vec![batch];
    shape.extend_from_slice(item);
    let n: usize = shape.iter().product();
    let mut rng = Rng(seed);
    Tensor::f32(shape, (0..n).map(|_| rng.normal()).collect()).expect("shape matches data")
}

/// Conv + Gemm + MatMul MACs per batch item of the float graph (constant weights only).
fn float_macs(g: &Graph) -> u64 {
    g.nodes()
        .filter_map(|(_, d)| {
            let w = g.const_tensor(*d.inputs.get(1)?)?;
            let out = g.ty(d.output);
            let per_item = out.shape.numel_per_item()?;
            match d.op {
                Op::Conv { .. } => {
                    let m = *w.shape.first()?;
                    Some(per_item.saturating_mul((w.numel() / m.max(1)) as u64))
                }
                Op::Gemm { .. } | Op::MatMul => {
                    let n = out.shape.0.last()?.fixed()?.max(1);
                    Some((per_item / n).saturating_mul(w.numel() as u64))
                }
                _ => None,
            }
        })
        .sum()
}

/// What happened to one model at one precision.
#[derive(Debug)]
enum Outcome {
    /// JIT ≡ interpreter; with the ops of its float islands, if it has any.
    Same(Option<String>),
    /// The passes or the JIT refused (an error, not a panic).
    Refused(String),
    /// Output mismatch or panic: never acceptable.
    Broken(String),
}

/// How a model is fed: its item shape, and its batch size if the graph fixes one.
struct Feed {
    item: Vec<usize>,
    fixed_batch: Option<usize>,
    calib_n: usize,
}

/// Compiles `float` at `weights`/`act_bits`, JITs it and compares with the interpreter
/// on two seeded inputs (batch 2 and 1, or twice the fixed batch).
fn check(float: &Graph, feed: &Feed, weights: WeightBits, act_bits: u8, seed: u64) -> Outcome {
    let item = &feed.item[..];
    let calib_inputs = match feed.fixed_batch {
        None => vec![normal_input(item, feed.calib_n, seed)],
        Some(b) => (0..feed.calib_n.div_ceil(b) as u64)
            .map(|i| normal_input(item, b, seed.wrapping_add(i * 7919)))
            .collect(),
    };
    let mut cx = PassContext {
        calib_inputs,
        ..PassContext::default()
    };
    let s = Schedule::one_shot(weights, act_bits);
    let compiled = catch(|| {
        compile_gradual(
            float,
            &s,
            &mut cx,
            &mut NoFineTune,
            &PipelineOptions::default(),
        )
        .map_err(|e| Failure::new(Class::RunError, format!("passes: {e}")))
    });
    let g = match compiled {
        Ok(out) => out.graph,
        Err(f) if f.class == Class::Panic => return Outcome::Broken(format!("passes: {}", f.msg)),
        Err(f) => return Outcome::Refused(f.msg),
    };
    let report = fqc_passes::integer_only_report(&g);
    let islands = (!report.is_integer_only()).then(|| {
        let ops: BTreeSet<&str> = report.float_ops.iter().map(|(_, op, _)| *op).collect();
        ops.into_iter().collect::<Vec<_>>().join(", ")
    });
    let jit = match catch(|| {
        fqc_codegen::compile(&g).map_err(|e| Failure::new(Class::RunError, format!("jit: {e}")))
    }) {
        Ok(j) => j,
        Err(f) if f.class == Class::Panic => return Outcome::Broken(format!("jit: {}", f.msg)),
        Err(f) => return Outcome::Refused(f.msg),
    };
    let batches = match feed.fixed_batch {
        None => [2, 1],
        Some(b) => [b, b],
    };
    for (batch, s) in batches.into_iter().zip([seed ^ 0xa5a5, seed ^ 0x5a5a]) {
        let x = normal_input(item, batch, s);
        let r = catch(|| {
            let fail = |m: String| Failure::new(Class::RunError, m);
            let want = fqc_ir::interp::run(&g, std::slice::from_ref(&x))
                .map_err(|e| fail(format!("interpreter: {e}")))?;
            let got = jit
                .run(std::slice::from_ref(&x))
                .map_err(|e| fail(format!("jit run: {e}")))?;
            if got != want {
                let detail = got
                    .iter()
                    .zip(&want)
                    .enumerate()
                    .find(|(_, (a, b))| a != b)
                    .map(|(i, (a, b))| format!("output {i}: shapes {:?} vs {:?}", a.shape, b.shape))
                    .unwrap_or_else(|| format!("{} vs {} outputs", got.len(), want.len()));
                return Err(fail(format!(
                    "JIT != interpreter at batch {batch}: {detail}"
                )));
            }
            Ok(())
        });
        if let Err(f) = r {
            return Outcome::Broken(f.msg);
        }
    }
    Outcome::Same(islands)
}

#[test]
fn jit_matches_interpreter_on_every_testsuite_model() {
    let Some(dir) = generated("models") else {
        return;
    };
    let manifest: Json =
        serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).expect("manifest.json"))
            .expect("manifest JSON");
    let cap = std::env::var("FQC_JIT_VS_INTERP_MAX_MACS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(MAX_MACS);
    let precisions = [
        ("t4", WeightBits::Ternary, 4u8),
        ("w8a8", WeightBits::Bits(8), 8),
    ];
    // model -> precision -> refusal
    let mut refused: BTreeMap<String, BTreeMap<&str, String>> = BTreeMap::new();
    // model -> precision -> ops of its float islands
    let mut islands: BTreeMap<String, BTreeMap<&str, String>> = BTreeMap::new();
    let mut broken = Vec::new();
    let import_skips = fqc_testsuite::skips("model");
    let mut not_imported = Vec::new();
    let (mut same, mut too_big) = (Vec::new(), Vec::new());
    for (k, entry) in manifest
        .as_array()
        .expect("manifest is a list")
        .iter()
        .enumerate()
    {
        let name = entry["name"].as_str().expect("name").to_string();
        let path = entry["model_path"].as_str().expect("model_path");
        let path = if Path::new(path).is_absolute() {
            path.into()
        } else {
            fqc_testsuite::repo_root().join(path)
        };
        let t = std::time::Instant::now();
        let float = match fqc_onnx::import_file(&path) {
            Ok(g) => g,
            Err(e) => {
                // Import is models_vs_ort's business: a model fqc cannot import must be in
                // skips.txt there; here it is only counted.
                if import_skips.contains_key(&name) {
                    not_imported.push(name);
                } else {
                    broken.push(format!("{name}: import fails and is not in skips.txt: {e}"));
                }
                continue;
            }
        };
        let inputs = entry["inputs"].as_array().expect("inputs");
        let refuse_all = |why: String, refused: &mut BTreeMap<String, BTreeMap<&str, String>>| {
            for (p, ..) in precisions {
                refused
                    .entry(name.clone())
                    .or_default()
                    .insert(p, why.clone());
            }
        };
        if inputs.len() != 1 || float.inputs().len() != 1 {
            refuse_all(
                format!("{} inputs (the passes calibrate one)", inputs.len()),
                &mut refused,
            );
            continue;
        }
        if inputs[0]["dtype"].as_str() != Some("<f4") {
            refuse_all(
                format!("input dtype {} is not float32", inputs[0]["dtype"]),
                &mut refused,
            );
            continue;
        }
        let item: Vec<usize> = inputs[0]["shape"]
            .as_array()
            .expect("shape")
            .iter()
            .skip(1)
            .map(|d| d.as_u64().expect("fixed dim") as usize)
            .collect();
        let macs = float_macs(&float);
        let numel: usize = item.iter().product();
        if numel > MAX_ITEM {
            too_big.push(format!("{name} ({numel} inputs/item)"));
            continue;
        }
        if macs > cap {
            too_big.push(format!("{name} ({:.2} GMAC/item)", macs as f64 / 1e9));
            continue;
        }
        let fixed_batch = float
            .ty(float.inputs()[0])
            .shape
            .0
            .first()
            .and_then(|d| d.fixed())
            .map(|b| b as usize);
        let feed = Feed {
            item,
            fixed_batch,
            calib_n: if macs > BIG_MACS || numel > BIG_ITEM {
                CALIB_N_BIG
            } else {
                CALIB_N
            },
        };
        let mut line = Vec::new();
        for (p, w, a) in precisions {
            match check(&float, &feed, w, a, 1000 + k as u64) {
                Outcome::Same(None) => line.push(format!("{p}: same")),
                Outcome::Same(Some(ops)) => {
                    line.push(format!("{p}: same (float islands: {ops})"));
                    islands.entry(name.clone()).or_default().insert(p, ops);
                }
                Outcome::Refused(e) => {
                    line.push(format!("{p}: refused"));
                    refused.entry(name.clone()).or_default().insert(p, e);
                }
                Outcome::Broken(e) => {
                    line.push(format!("{p}: BROKEN"));
                    broken.push(format!("{name}/{p}: {e}"));
                }
            }
        }
        if line.iter().all(|l| l.contains(": same")) {
            same.push(name.clone());
        }
        println!(
            "  {name:<40} {:>8.3} GMAC/item  {}  ({:.1} s)",
            macs as f64 / 1e9,
            line.join(", "),
            t.elapsed().as_secs_f64()
        );
    }

    // Refusals and float islands against the expected lists.
    let mut failures = broken;
    let nprec = precisions.len();
    failures.extend(unexpected("refused", &refused, EXPECTED_REFUSALS, nprec));
    failures.extend(unexpected(
        "float islands",
        &islands,
        EXPECTED_ISLANDS,
        nprec,
    ));
    println!(
        "jit_vs_interp: {} models identical at both precisions ({} of them with float islands), {} with refusals, {} not imported (skips.txt), {} not run (over the {} MACs/item or {} inputs/item caps: {})",
        same.len(),
        islands.len(),
        refused.len(),
        not_imported.len(),
        too_big.len(),
        cap,
        MAX_ITEM,
        too_big.join(", ")
    );
    for f in &failures {
        eprintln!("FAIL {f}");
    }
    assert!(
        failures.is_empty(),
        "{} failure(s), see above",
        failures.len()
    );
    assert!(!same.is_empty(), "no model ran");
}

/// Each observed `(model, precision) -> detail` not matched by `expected` (entries
/// `model` for all precisions or `model/precision`, with a piece of the detail), and
/// each expected entry nothing matched.
fn unexpected(
    what: &str,
    observed: &BTreeMap<String, BTreeMap<&str, String>>,
    expected: &[(&str, &str)],
    precisions: usize,
) -> Vec<String> {
    let mut failures = Vec::new();
    let mut used = BTreeSet::new();
    for (name, per) in observed {
        for (p, why) in per {
            let all = per.len() == precisions;
            let key_p = format!("{name}/{p}");
            let hit = expected
                .iter()
                .find(|(k, _)| *k == key_p || (*k == name && all));
            match hit {
                Some((k, piece)) => {
                    used.insert(*k);
                    if !why.contains(piece) {
                        failures.push(format!(
                            "{key_p}: {what} with `{why}`, expected `{piece}` (entry `{k}`)"
                        ));
                    }
                }
                None => failures.push(format!(
                    "{key_p}: {what}, not expected: (\"{}\", \"{}\")",
                    if all { name.as_str() } else { key_p.as_str() },
                    why.replace('"', "'")
                )),
            }
        }
    }
    for (k, _) in expected {
        if !used.contains(k) {
            failures.push(format!(
                "`{k}` is expected to give {what} but no longer does (or was not run): remove it"
            ));
        }
    }
    failures
}
