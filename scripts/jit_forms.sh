#!/usr/bin/env bash
# The convolution forms of the JIT: per layer, the native kernels (paths A and B) against
# the JIT'd dense and ternary forms; per whole model, which form each step got and the
# batch-1 median. Writes reports/jit_forms.md (every figure below is this script's).
#   bash scripts/jit_forms.sh           # per-layer table and whole models
#   QUICK=1 bash scripts/jit_forms.sh   # fewer repetitions (a smoke test, not a measurement)
# A benchmark: run it on an idle machine.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet --bin fqc
cargo build --release --quiet -p fqc-codegen --example jit_forms
FQC=target/release/fqc
T=$(mktemp -d)
python3 ../shared/bench/make_models.py --out-dir "$T" >/dev/null
python3 - "$T" <<'EOF'
import sys, numpy as np
o = sys.argv[1]; r = np.random.default_rng(1)
np.save(f"{o}/c32.npy", r.standard_normal((32, 3, 32, 32)).astype(np.float32))
np.save(f"{o}/m28.npy", (r.random((32, 1, 28, 28)) * 255).astype(np.float32))
np.save(f"{o}/c224.npy", r.standard_normal((4, 3, 224, 224)).astype(np.float32))
EOF
quick=${QUICK:+quick}
{
  echo "# JIT convolution forms: native kernels vs JIT'd dense/ternary code"
  echo
  bash scripts/report_header.sh "bash scripts/jit_forms.sh"
  echo
  echo "## Per layer (batch 1, one thread)"
  echo
  echo "Single \`qconv\` layers shaped like those of the MNIST CNN, ResNet-20 and ResNet-18"
  echo "(\`codegen/examples/jit_forms.rs\`), every form forced in turn (\`used\` is what ran:"
  echo "a form that cannot apply falls back), each checked against the interpreter."
  echo
  target/release/examples/jit_forms $quick
  echo
  echo "## Whole models (batch 1, one thread): the form of every step"
  echo
  echo "The peer harness's models (\`../shared/bench/make_models.py\`), compiled post-training"
  echo "as \`scripts/bench_peers.sh\` compiles them; \`fqc bench --batch 1 --threads 1\`."
  echo
  echo "| model | precision | median ms | steps and forms |"
  echo "|---|---|---:|---|"
  for spec in "mnist_cnn m28" "resnet20 c32" "resnet18_imagenet c224"; do
    set -- $spec
    for wa in "t2a4 ternary 4" "w8a8 8 8"; do
      read -r label w a <<< "$wa"
      f="$T/$1_$label.fqc"
      "$FQC" compile "$T/$1.onnx" -o "$f" --calib "$T/$2.npy" --weights "$w" --act-bits "$a" >/dev/null 2>&1
      out=$("$FQC" bench "$f" --batch 1 --threads 1 --runs "${RUNS:-200}" --min-secs "${MIN_SECS:-2}")
      median=$(echo "$out" | sed -n 's/.*: \([0-9.]*\) ms (min.*/\1/p')
      kernels=$(echo "$out" | sed -n 's/^kernels: //p')
      echo "| $1 | $label | $median | $kernels |"
    done
  done
} > reports/jit_forms.md.new
mv reports/jit_forms.md.new reports/jit_forms.md
echo "wrote reports/jit_forms.md"
