//! How far a fuzz corpus gets: every input of `target/fuzz-corpus/<target>/` and
//! `fuzz/seeds/<target>/` through its harness, tallied by the stage it reached; prints
//! the tally and writes `reports/fuzz_reach.json` for `scripts/fuzz_report.py`.
//!
//! `cargo run --release -p fqc-fuzz --example reach [TARGET ...]`

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

fn files(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.path())
                .filter(|p| p.is_file())
                .collect()
        })
        .unwrap_or_default()
}

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let wanted: Vec<String> = std::env::args().skip(1).collect();
    let out_path = root.join("reports/fuzz_reach.json");
    let mut json: serde_json::Map<String, serde_json::Value> = std::fs::read_to_string(&out_path)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default();
    for (name, target) in fqc_fuzz::TARGETS {
        if !wanted.is_empty() && !wanted.iter().any(|w| w == name) {
            continue;
        }
        let mut inputs = files(&root.join("target/fuzz-corpus").join(name));
        inputs.extend(files(&root.join("fuzz/seeds").join(name)));
        let mut tally: BTreeMap<&str, usize> = BTreeMap::new();
        for p in &inputs {
            let data = std::fs::read(p).unwrap_or_default();
            *tally.entry(target(&data)).or_default() += 1;
        }
        let n = inputs.len().max(1);
        let text: Vec<String> = tally
            .iter()
            .map(|(k, v)| format!("{k} {:.1}%", 100.0 * *v as f64 / n as f64))
            .collect();
        let compared = tally.get("compared with the JIT").copied().unwrap_or(0);
        println!("{name}: {} inputs: {}", inputs.len(), text.join(", "));
        json.insert(
            name.to_string(),
            serde_json::json!({"inputs": inputs.len(), "compared": compared, "text": text.join(", ")}),
        );
    }
    let text = serde_json::to_string_pretty(&json).expect("JSON") + "\n";
    std::fs::write(&out_path, text).expect("write reports/fuzz_reach.json");
}
