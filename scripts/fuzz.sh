#!/usr/bin/env bash
# A coverage-guided fuzzing campaign: every target of fuzz/ (libFuzzer through cargo
# fuzz) for SECONDS each, one after another, then reports/fuzz.md rebuilt from every
# run recorded so far.
#
#   bash scripts/fuzz.sh [SECONDS]        # default 600 s a target
#   TARGETS="onnx_import npy" bash scripts/fuzz.sh 3600
#   SANITIZER=address bash scripts/fuzz.sh 600   # with AddressSanitizer (slower)
#   JOBS=2 bash scripts/fuzz.sh 3600     # two fuzzing processes per target
#
# Why libFuzzer, built by this script rather than by `cargo fuzz`: it runs in-process
# (hundreds of thousands of executions a second on the small targets), measures edge
# coverage itself, and comes from crates.io (`libfuzzer-sys` builds it from source).
# `cargo fuzz` instruments every crate, Cranelift included, which made the JIT targets
# ten times slower; fuzz/Cargo.toml instead instruments fqc's crates only, through
# per-package rustflags — a nightly cargo feature that this machine's one stable
# toolchain accepts under RUSTC_BOOTSTRAP=1 (rustup cannot fetch a nightly here).
#
# Limits of every run: -rss_limit_mb=2048 (a run that needs more memory is a finding),
# -timeout=10 (an input that takes more than 10 s is a hang, a finding), and
# -max_len=8192. The working corpus persists in target/fuzz-corpus/<target> (seeded
# from fuzz/seeds/<target>); a crashing input lands in target/fuzz-artifacts/<target>/
# and stops that target's run: minimise it (fuzz/<bin> -minimize_crash=1 ...), fix the
# bug, and commit the input to fuzz/regressions/<target>/, which `cargo test -p
# fqc-fuzz` replays from then on. Each run appends one line of figures (executions,
# edges covered, features, corpus size, crashes) to reports/fuzz_runs.jsonl.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-600}
targets=${TARGETS:-"onnx_import fqc_load ir_text npy npz jit_vs_interp"}
sanitizer=${SANITIZER:-none}

export RUSTC_BOOTSTRAP=1
triple=$(rustc -vV | sed -n 's/^host: //p')
flags="--cfg fuzzing -Ccodegen-units=1"
if [ "$sanitizer" != none ]; then
    flags="$flags -Zsanitizer=$sanitizer"
fi
RUSTFLAGS="$flags" cargo build --release --locked --manifest-path fuzz/Cargo.toml --target "$triple"
bin_dir=fuzz/target/$triple/release
commit=$(git rev-parse --short HEAD)
dirty=$(git status --porcelain -- . ':!reports' | grep -q . && echo "+dirty" || true)
cpu=$(bash scripts/cpu.sh)
mkdir -p target/fuzz-logs reports
for t in $targets; do
    corpus=target/fuzz-corpus/$t
    artifacts=target/fuzz-artifacts/$t
    mkdir -p "$corpus" "$artifacts"
    log=target/fuzz-logs/$t-$(date -u +%Y%m%dT%H%M%S).log
    started=$(date -u +%Y-%m-%dT%H:%M:%SZ)
    echo "fuzz: $t for ${secs}s ($log)"
    set +e
    "$bin_dir/$t" "$corpus" "fuzz/seeds/$t" -max_total_time="$secs" -rss_limit_mb=2048 \
        -timeout=10 -max_len=8192 -print_final_stats=1 -artifact_prefix="$artifacts/" \
        >"$log" 2>&1
    status=$?
    set -e
    python3 scripts/fuzz_report.py record "$t" "$log" "$status" "$secs" "$sanitizer" \
        "$commit$dirty" "$cpu" "$started"
done
cargo run --release --locked -p fqc-fuzz --example reach -- $targets
python3 scripts/fuzz_report.py report
