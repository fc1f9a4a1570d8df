//! Every committed fuzz input — the seed corpus (`fuzz/seeds/<target>/`) and each input
//! that ever found a bug (`fuzz/regressions/<target>/`) — through its target's harness,
//! then a fixed-seed sample of pseudo-random inputs for each target (a small campaign
//! that needs no fuzzer, so CI checks the harnesses themselves). A finding is a panic.

use std::path::PathBuf;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("fuzzing is inside the repo")
        .to_path_buf()
}

/// The files of `fuzz/<kind>/<target>/`, sorted.
fn inputs(kind: &str, target: &str) -> Vec<PathBuf> {
    let dir = repo().join("fuzz").join(kind).join(target);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut v: Vec<PathBuf> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.is_file() && p.file_name().is_none_or(|n| n != "README.md"))
        .collect();
    v.sort();
    v
}

#[test]
fn committed_inputs_replay_cleanly() {
    let mut count = 0;
    for (name, target) in fqc_fuzz::TARGETS {
        for path in inputs("seeds", name)
            .into_iter()
            .chain(inputs("regressions", name))
        {
            let data = std::fs::read(&path).expect("read a fuzz input");
            let run = std::panic::catch_unwind(|| target(&data));
            assert!(run.is_ok(), "{name}: {} panics", path.display());
            count += 1;
        }
    }
    assert!(count > 0, "no committed fuzz inputs found under fuzz/");
    println!("replayed {count} committed inputs");
}

/// Pseudo-random inputs of 0..=`max_len` bytes from a fixed xorshift stream.
fn samples(count: usize, max_len: usize, mut state: u64) -> Vec<Vec<u8>> {
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    (0..count)
        .map(|_| {
            let len = (next() as usize) % (max_len + 1);
            (0..len).map(|_| next() as u8).collect()
        })
        .collect()
}

#[test]
fn a_fixed_sample_of_random_inputs_finds_nothing() {
    for (i, (name, target)) in fqc_fuzz::TARGETS.iter().enumerate() {
        let (count, max_len) = match *name {
            "jit_vs_interp" | "fqc_load" => (150, 512),
            _ => (1500, 512),
        };
        for data in samples(count, max_len, 0x9e37_79b9_7f4a_7c15 ^ i as u64) {
            target(&data);
        }
    }
}
