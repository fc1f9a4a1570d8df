#!/usr/bin/env bash
# README's test command: installs what the tests need, generates the conformance
# fixtures (ONNX node tests, ONNX Runtime references), then runs every Rust test.
# Set CI=true to make a missing insta snapshot or fixture a failure.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install --quiet --disable-pip-version-check -r testsuite/requirements.txt
python3 testsuite/scripts/gen_node_tests.py > /dev/null
python3 testsuite/scripts/gen_model_refs.py > /dev/null
cargo test --workspace --all-targets "$@"
# Doc examples too (--all-targets leaves them out): they are compiled, and run unless
# marked no_run.
cargo test --workspace --doc "$@"
