#!/usr/bin/env bash
# Instructions per batch-1 inference of the JIT (callgrind: counts instructions, not
# seconds, so the figures repeat exactly whatever else the machine is doing), per model
# and precision, with the functions that spend them. Writes reports/batch1_profile.md.
#
# Method: runtime/examples/run_n.rs loads a .fqc, runs one warm-up inference, then N
# more; `valgrind --tool=callgrind --toggle-collect='*CompiledGraph*run_in*'` counts only
# inside the runs, at two N, and Ir per inference = (Ir(N2) - Ir(N1)) / (N2 - N1), so the
# warm-up's arena allocation and the JIT compile are excluded. Models: the bundled MNIST
# CNN and the peer harness's mnist_cnn, resnet20 and resnet18_imagenet
# (../shared/bench/make_models.py), compiled post-training at t2a4 and w8a8 as
# scripts/bench_peers.sh compiles them. JIT'd code shows as anonymous `0x…` functions.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v valgrind >/dev/null || { echo "needs valgrind (apt-get install valgrind)"; exit 1; }
cargo build --release --quiet --bin fqc
cargo build --release --quiet -p fqc-runtime --example run_n
FQC=target/release/fqc
RUN=target/release/examples/run_n
T=$(mktemp -d)
python3 ../shared/bench/make_models.py --out-dir "$T" > /dev/null
python3 - "$T" <<'PY'
import sys, numpy as np
o = sys.argv[1]; r = np.random.default_rng(1)
np.save(f"{o}/c32.npy", r.standard_normal((32, 3, 32, 32)).astype(np.float32))
np.save(f"{o}/m28.npy", (r.random((32, 1, 28, 28)) * 255).astype(np.float32))
np.save(f"{o}/c224.npy", r.standard_normal((4, 3, 224, 224)).astype(np.float32))
PY
cp examples/mnist/mnist_cnn.onnx "$T/bundled_mnist.onnx"
python3 -c "
import numpy as np
x = np.load('examples/mnist/mnist10k.npz')['x_train'][:256].astype(np.float32)
np.save('$T/bundled.npy', x)"
ir_of() {  # callgrind output file -> total Ir of the collected part
  grep -m1 '^summary:' "$1" | awk '{print $2}'
}
count() {  # model.fqc N -> Ir
  local out="$T/cg.$(basename "$1").$2"
  valgrind --tool=callgrind --toggle-collect='*CompiledGraph*run_in*' \
    --callgrind-out-file="$out" "$RUN" "$1" "$2" >/dev/null 2>&1
  ir_of "$out"
}
{
  echo "# Batch-1 JIT instructions per inference"
  echo
  bash scripts/report_header.sh "bash scripts/batch1_profile.sh"
  echo
  sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//' | grep -v '^Writes reports'
  echo
  echo "| model | precision | Ir per inference | kernels (\`fqc bench\`) |"
  echo "|---|---|---:|---|"
  for spec in "bundled_mnist bundled 5 25" "mnist_cnn m28 5 25" "resnet20 c32 5 25" "resnet18_imagenet c224 2 6"; do
    set -- $spec
    for wa in "t2a4 ternary 4" "w8a8 8 8"; do
      read -r label w a <<< "$wa"
      f="$T/$1_$label.fqc"
      "$FQC" compile "$T/$1.onnx" -o "$f" --calib "$T/$2.npy" --weights "$w" --act-bits "$a" >/dev/null 2>&1
      lo=$(count "$f" "$3"); hi=$(count "$f" "$4")
      per=$(( (hi - lo) / ($4 - $3) ))
      kernels=$("$FQC" bench "$f" --runs 1 --warmup 0 | sed -n 's/^kernels: //p')
      printf '| %s | %s | %s | %s |\n' "$1" "$label" "$(python3 -c "print(f'{$per:,}')")" "$kernels"
      echo "$1 $label $T/cg.$(basename "$f").$4" >> "$T/top"
    done
  done
  echo
  echo "## Where the instructions go"
  echo
  echo "The 8 functions with the most instructions of their own (exclusive) in the N2 run,"
  echo "warm-up included; anonymous \`0x…\` entries are JIT'd code."
  while read -r model label file; do
    echo
    echo "### $model $label"
    echo
    echo '```'
    callgrind_annotate "$file" 2>/dev/null | grep -E '^ *[0-9,]+ ' | head -9 | tail -8 \
      | sed -E 's/ \[[^]]*\]$//; s/\?\?\?://' | cut -c1-150
    echo '```'
  done < "$T/top"
} > reports/batch1_profile.md.new
mv reports/batch1_profile.md.new reports/batch1_profile.md
echo "wrote reports/batch1_profile.md"
