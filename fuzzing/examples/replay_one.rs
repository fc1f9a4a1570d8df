//! `cargo run --release -p fqc-fuzz --example replay_one -- TARGET FILE...`: runs one
//! target's harness on each file and prints where it got and how long it took — for
//! minimising and explaining a fuzzer's crash or timeout artifact.

use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((target, files)) = args.split_first() else {
        eprintln!("usage: replay_one TARGET FILE...");
        std::process::exit(2);
    };
    let Some((_, run)) = fqc_fuzz::TARGETS.iter().find(|(n, _)| n == target) else {
        eprintln!("unknown target {target}");
        std::process::exit(2);
    };
    for f in files {
        let data = std::fs::read(f).unwrap_or_else(|e| panic!("{f}: {e}"));
        let t = Instant::now();
        let reach = run(&data);
        println!("{f}: {reach} ({:.3} s)", t.elapsed().as_secs_f64());
    }
}
