#!/usr/bin/env bash
# Seed study for the closest comparisons of reports/finetune.md: the Fashion-MNIST CNN
# with first and last layers at 8-bit weights (the `fashion_fl8` settings of
# scripts/finetune_results.sh, unchanged), gradual vs one-shot QAT at w2a2 (and gradual
# w2a4), repeated with other seeds. The seed drives the shuffling, the augmentation and
# the validation hold-out; the gaps in question (tenths of a point) are of the size of
# what one seed changes, so one run cannot decide them.
#
#   bash scripts/finetune_seeds.sh [SEED ...]     (default: 1 2)
#
# It also runs (once) the gradual schedule with its budget moved to the final precision
# (epochs 1,1,1,3,1,10: the same 17, 10 of them at w2a2 instead of 3), seed 0, into
# target/finetune/fashion_fl8_w2a2sched/: does gradual lose at w2a2 for lack of w2a2
# epochs? And (once, seed 0, target/finetune/fashion_fl8_distill/) that schedule and the
# one-shot run both distilled from the float model.
#
# Seed 0 is the run of `scripts/finetune_results.sh fashion_fl8` (target/finetune/
# fashion_fl8, used when present); seed S goes to target/finetune/fashion_fl8_seedS/
# (a seed whose results are there is not run again). Writes reports/finetune_seeds.md:
# test top-1 (integer-only JIT) per seed, mean and spread.
set -euo pipefail
cd "$(dirname "$0")/.."
# builds fqc ($fqc), fetches the training split if missing; defines common,
# gradual DIR SEED EPOCHS [ARG...] and oneshot DIR SEED [ARG...]
source scripts/finetune_seeds_lib.sh
[ $# -gt 0 ] || set -- 1 2

dirs=()
[ -f target/finetune/fashion_fl8/oneshot_w2a2.json ] && dirs+=(target/finetune/fashion_fl8)
for seed in "$@"; do
    dir=target/finetune/fashion_fl8_seed$seed
    dirs+=("$dir")
    [ -f "$dir/oneshot_w2a2.json" ] && continue
    mkdir -p "$dir"
    echo "== seed $seed (started $(date -u +%H:%M:%S))"
    gradual "$dir" "$seed" 1,1,1,10,1,3
    oneshot "$dir" "$seed"
done

late=target/finetune/fashion_fl8_w2a2sched
if [ ! -f "$late/gradual.json" ]; then
    mkdir -p "$late"
    echo "== budget at w2a2 (started $(date -u +%H:%M:%S))"
    gradual "$late" 0 1,1,1,3,1,10
fi

# And, for seed 0 and the seeds above, both sides distilled from the float model
# (`--distill`: the float network's soft outputs as targets instead of the labels),
# gradual with the budget at w2a2 as above: target/finetune/fashion_fl8_distill/
# (seed 0) and fashion_fl8_distill_seedS/.
kds=()
for seed in 0 "$@"; do
    kd=target/finetune/fashion_fl8_distill
    [ "$seed" = 0 ] || kd=${kd}_seed$seed
    kds+=("$kd")
    [ -f "$kd/oneshot_w2a2.json" ] && continue
    mkdir -p "$kd"
    echo "== distilled, seed $seed (started $(date -u +%H:%M:%S))"
    gradual "$kd" "$seed" 1,1,1,3,1,10 --distill
    oneshot "$kd" "$seed" --distill
done

LATE=$late KD="${kds[*]}" python3 - "${dirs[@]}" <<'PY' | tee reports/finetune_seeds.md
import json, os, statistics, sys

fp = json.load(open("target/finetune/fashion_fl8/fp.json"))["top1"] * 100 \
    if os.path.exists("target/finetune/fashion_fl8/fp.json") else None
print("# Seed study: gradual vs one-shot QAT at w2a2, Fashion-MNIST CNN (first/last layer 8-bit)")
print()
print("Made by `bash scripts/finetune_seeds.sh` (this file is its output). The settings of")
print("`scripts/finetune_results.sh fashion_fl8` (gradual `w8a8,w4a6,w3a4,w2a4,w2a3,w2a2`,")
print("epochs `1,1,1,10,1,3`; one-shot w2a2 at the same 17 epochs), repeated with other seeds")
print("(shuffling, augmentation and validation hold-out). Test top-1 of the integer-only JIT")
print("on the 10,000 test images, %; seed 0 is the run in `reports/finetune.md`.")
print()

def seed_rows(dirs):
    """(seed, gradual w2a4, gradual w2a2, one-shot w2a2) of each run directory with both."""
    rows = []
    for d in dirs:
        if not os.path.exists(f"{d}/oneshot_w2a2.json"):
            continue
        g = json.load(open(f"{d}/gradual.json"))
        o = json.load(open(f"{d}/oneshot_w2a2.json"))
        top = {s["label"]: s["test"]["integer_top1"] * 100 for s in g["stages"]}
        seed = g["command"][g["command"].index("--seed") + 1] if "--seed" in g["command"] else "0"
        rows.append((seed, top["wta4"], top["wta2"], o["test"]["integer_top1"] * 100))
    return rows


def seed_table(rows, w2a4_head):
    """The per-seed table with mean ± sd; returns the means (or None for one row)."""
    print(f"| seed | {w2a4_head} | gradual w2a2 | one-shot w2a2 | gradual − one-shot (w2a2) |")
    print("|---:|---:|---:|---:|---:|")
    for s, g4, g2, o2 in rows:
        print(f"| {s} | {g4:.2f} | {g2:.2f} | {o2:.2f} | {g2 - o2:+.2f} |")
    if len(rows) < 2:
        return None
    cols = list(zip(*rows))[1:]
    diffs = [g2 - o2 for _, _, g2, o2 in rows]
    mean = [statistics.mean(c) for c in cols] + [statistics.mean(diffs)]
    sd = [statistics.stdev(c) for c in cols] + [statistics.stdev(diffs)]
    print("| mean ± sd | " + " | ".join(f"{m:.2f} ± {s:.2f}" for m, s in zip(mean, sd)) + " |")
    return mean


mean = seed_table(seed_rows(sys.argv[1:]), "gradual w2a4")
if mean and fp is not None:
    print(f"\nFloat model: {fp:.2f} %. Mean gap to it: gradual w2a4 {mean[0] - fp:+.2f}, "
          f"gradual w2a2 {mean[1] - fp:+.2f}, one-shot w2a2 {mean[2] - fp:+.2f} points.")
late = os.environ["LATE"] + "/gradual.json"
if os.path.exists(late):
    g = json.load(open(late))
    top = {s["label"]: s["test"]["integer_top1"] * 100 for s in g["stages"]}
    print("\n## The same budget, most of it at w2a2\n")
    print("Gradual `w8a8,w4a6,w3a4,w2a4,w2a3,w2a2` with epochs `1,1,1,3,1,10` (10 of the 17 at")
    print("w2a2 instead of 3; seed 0, otherwise as above):\n")
    print("| stage | w8a8 | w4a6 | w3a4 | w2a4 | w2a3 | w2a2 |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    print("| test top-1 | " + " | ".join(f"{top[k]:.2f}" for k in ["w8a8", "w4a6", "w3a4", "wta4", "wta3", "wta2"]) + " |")
rows = seed_rows(os.environ["KD"].split())
if rows:
    print("\n## Distilled from the float model\n")
    print("Both sides with `--distill` (the float network's soft outputs as the targets, no")
    print("labels): gradual with epochs `1,1,1,3,1,10` as in the section above, one-shot w2a2")
    print("at 17 epochs; the same seeds.\n")
    mean = seed_table(rows, "gradual w2a4 (3 epochs)")
    if mean and fp is not None:
        print(f"\nMean gap to the float model: gradual w2a2 {mean[1] - fp:+.2f}, "
              f"one-shot w2a2 {mean[2] - fp:+.2f} points.")
PY
