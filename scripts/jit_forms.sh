#!/usr/bin/env bash
# Per-layer timing of the convolution forms (native AVX2 paths A/B vs JIT dense/ternary)
# and whole-model fqc bench before/after; see reports/jit_forms.md.
#   bash scripts/jit_forms.sh            # per-layer table only
#   BASE=/path/to/old/fqc bash scripts/jit_forms.sh models   # also whole models
set -euo pipefail
cd "$(dirname "$0")/.."
cargo run --release -p fqc-codegen --example jit_forms
if [[ "${1:-}" == models ]]; then
  out=${OUT:-/tmp/fqc_jit_forms}
  mkdir -p "$out"
  python3 ../shared/bench/make_models.py --out-dir "$out" >/dev/null
  python3 - "$out" <<'EOF'
import sys, numpy as np
o = sys.argv[1]; r = np.random.default_rng(1)
np.save(f"{o}/c32.npy", r.standard_normal((32, 3, 32, 32)).astype(np.float32))
np.save(f"{o}/m28.npy", (r.random((32, 1, 28, 28)) * 255).astype(np.float32))
np.save(f"{o}/c224.npy", r.standard_normal((2, 3, 224, 224)).astype(np.float32))
EOF
  cargo build --release --bin fqc
  for spec in "mnist_cnn m28" "resnet20 c32" "resnet18_imagenet c224"; do
    set -- $spec
    for wa in "ternary 4 t" "8 8 8"; do
      set -- "$1" "$2" $wa
      f="$out/$1_$5.fqc"
      target/release/fqc compile "$out/$1.onnx" -o "$f" --calib "$out/$2.npy" --weights "$3" --act-bits "$4" >/dev/null
      for bin in ${BASE:-} target/release/fqc; do
        echo "== $bin $f"; "$bin" bench "$f" --batch 1 --threads 1 | tail -3
      done
    done
  done
fi
