#!/usr/bin/env bash
# More seeds for the distilled w2a2 comparison of reports/finetune_seeds.md: gradual
# (`w8a8,w4a6,w3a4,w2a4,w2a3,w2a2`, epochs `1,1,1,3,1,10`) vs one-shot w2a2 (17 epochs),
# both distilled from the float model (`--distill`), Fashion-MNIST CNN with first and
# last layer at 8-bit weights: the same command lines as scripts/finetune_seeds.sh
# (shared in scripts/finetune_seeds_lib.sh), for other seeds. Those two targets of the
# fine-tuning issue rest on this comparison (w2a2 within 1.5 points of float, gradual
# >= one-shot), and its gap is of the size of the seed spread.
#
#   bash scripts/finetune_seeds_distilled.sh [SEED ...]     (default: 3 4)
#
# Seed S trains into target/finetune/fashion_fl8_distill_seedS/, the gradual and the
# one-shot run side by side (one core each, ~35 min); their summary JSON is kept in
# reports/runs/fashion_fl8_distill_seedS/ (committed, a few KB), and a seed whose JSON
# is there is not run again. Writes reports/finetune_seeds_distilled.md: every seed with
# JSON in reports/runs/, pooled with seeds 0-2 as reports/finetune_seeds.md records them
# (their run folders were not kept), mean ± sd, and the two targets.
set -euo pipefail
cd "$(dirname "$0")/.."
# builds fqc ($fqc), fetches the training split if missing; defines common,
# gradual DIR SEED EPOCHS [ARG...] and oneshot DIR SEED [ARG...]
source scripts/finetune_seeds_lib.sh
[ $# -gt 0 ] || set -- 3 4

for seed in "$@"; do
    name=fashion_fl8_distill_seed$seed
    kept=reports/runs/$name
    [ -f "$kept/oneshot_w2a2.json" ] && [ -f "$kept/gradual.json" ] && continue
    dir=target/finetune/$name
    mkdir -p "$dir" "$kept"
    echo "== distilled, seed $seed (started $(date -u +%H:%M:%S))"
    gradual "$dir" "$seed" 1,1,1,3,1,10 --distill &
    pid_gradual=$!
    oneshot "$dir" "$seed" --distill &
    wait $!
    wait $pid_gradual
    cp "$dir/gradual.json" "$dir/oneshot_w2a2.json" "$kept/"
done

fp_json=$(mktemp)
trap 'rm -f "$fp_json"' EXIT
"$fqc" eval examples/fashion/fashion_cnn.onnx --data examples/fashion/fashion_test.npz --json \
    >"$fp_json"
FP_JSON=$fp_json python3 scripts/finetune_seeds_distilled.py | tee reports/finetune_seeds_distilled.md
