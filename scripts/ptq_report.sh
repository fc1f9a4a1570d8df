#!/usr/bin/env bash
# Post-training quantization of the bundled MNIST CNN: fqc compile at several bit widths
# (calibration: 256 training images, MSE clip), then fqc eval of each integer-only .fqc
# on the 2,000 test digits. Writes reports/ptq_mnist.md. An accuracy benchmark, not a test.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet --bin fqc
FQC=target/release/fqc
OUT=$(mktemp -d)
MODEL=examples/mnist/mnist_cnn.onnx
DATA=examples/mnist/mnist10k.npz
row() {  # label, compile args...
  local label=$1; shift
  local f="$OUT/$label.fqc"
  local report; report=$($FQC compile $MODEL -o "$f" --data $DATA "$@" 2>/dev/null)
  local acc; acc=$($FQC eval "$f" --data $DATA | sed -E 's/^top-1: ([0-9.]+%) \(([0-9]+\/[0-9]+)\).*/\1 (\2)/')
  local io; io=$(echo "$report" | grep -o 'integer-only: .*')
  local agree; agree=$(echo "$report" | grep -o 'top-1 agreement [0-9.]*%' | sed 's/top-1 agreement //')
  echo "| $label | \`$*\` | $acc | $agree | $(stat -c %s "$f") | $io |"
}
{
  echo "# Post-training quantization, bundled MNIST CNN"
  echo
  bash scripts/report_header.sh "bash scripts/ptq_report.sh"
  echo
  echo "\`fqc compile\` (calibration on 256 training images, MSE-optimal clip) then \`fqc eval\`"
  echo "of the integer-only \`.fqc\` on the 2,000 test digits; \`agreement\` is compile's own check"
  echo "against the float model (top-1 agreement on 256 held-out training images)."
  echo "No fine-tuning (that is the built-in trainer's job). ONNX model: $(stat -c %s $MODEL) bytes."
  echo
  echo "| model | compile flags | top-1 | agreement | .fqc bytes | |"
  echo "|---|---|---|---|---|---|"
  echo "| FP (ONNX) | | $($FQC eval $MODEL --data $DATA | sed -E 's/^top-1: ([0-9.]+%) \(([0-9]+\/[0-9]+)\).*/\1 (\2)/') | | $(stat -c %s $MODEL) (onnx) | float |"
  row w8a8 --weights 8 --act-bits 8
  row w4a4 --weights 4 --act-bits 4
  row w2a4 --weights ternary --act-bits 4
  row w2a4-first-last-w8 --weights ternary --act-bits 4 --layer /conv1/Conv=w8a4 --layer /fc2/Gemm=w8a4
  row w3a4 --weights 3 --act-bits 4
} | tee reports/ptq_mnist.md
