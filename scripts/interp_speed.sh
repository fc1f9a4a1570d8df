#!/usr/bin/env bash
# Reference-interpreter speed on the onnx wheel's light resnet50 (224x224, 4.1 GMAC per
# image, batch fixed to 1 by the model), ResNet-18 (from ../shared/bench/make_models.py,
# symbolic batch) and the bundled MNIST CNN: median latency of `fqc run --repeat`, 1 and
# 2 threads (threads split the batch). Writes reports/interp_speed.md. Needs the fixtures from
# testsuite/scripts/gen_model_refs.py. A benchmark, not a test: run it on an idle machine.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet --bin fqc
FQC=target/release/fqc
REFS=testsuite/generated/models
RESNET=$(python3 -c "import json;print(next(m['model_path'] for m in json.load(open('$REFS/manifest.json')) if m['name']=='light_resnet50'))")
BENCH=$(mktemp -d)
python3 ../shared/bench/make_models.py --out-dir "$BENCH" > /dev/null
python3 - <<'PY'
import numpy as np
x = np.load("testsuite/generated/models/light_resnet50/input_0.npy")
np.save("/tmp/fqc_resnet18_b8.npy", np.repeat(x, 8, axis=0))
m = np.load("examples/mnist/mnist10k.npz")["x_test"][:256].astype(np.float32)
np.save("/tmp/fqc_mnist_b256.npy", m)
PY
{
  echo "# Reference interpreter speed"
  echo
  bash scripts/report_header.sh "bash scripts/interp_speed.sh"
  echo "Median of 10 runs after one warm-up; f32, im2col + matrixmultiply sgemm."
  echo
  echo "| model | batch | threads | result |"
  echo "|---|---|---|---|"
  echo "| light resnet50 (4.09 GMAC/image) | 1 | 1 | $($FQC run "$RESNET" --input $REFS/light_resnet50/input_0.npy --repeat 10 | head -1) |"
  for t in 1 2; do
    echo "| resnet18 (1.81 GMAC/image) | 8 | $t | $($FQC run "$BENCH/resnet18_imagenet.onnx" --input /tmp/fqc_resnet18_b8.npy --repeat 10 --threads $t | head -1) |"
    echo "| mnist_cnn | 256 | $t | $($FQC run examples/mnist/mnist_cnn.onnx --input /tmp/fqc_mnist_b256.npy --repeat 10 --threads $t | head -1) |"
  done
} | tee reports/interp_speed.md
