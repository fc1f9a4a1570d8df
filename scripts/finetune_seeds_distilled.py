#!/usr/bin/env python3
"""Report of scripts/finetune_seeds_distilled.sh (prints Markdown to stdout).

The distilled w2a2 comparison of the seed study (gradual vs one-shot, Fashion-MNIST CNN,
first and last layer at 8-bit weights), every seed pooled:

* seeds whose run summaries are kept in reports/runs/fashion_fl8_distill_seedS/
  (gradual.json, oneshot_w2a2.json, written by `fqc compile --summary-json`);
* seeds 0-2 as reports/finetune_seeds.md records them in its "Distilled from the float
  model" table (their run folders were not kept), for every seed not in reports/runs/.

The float model's top-1 is read from the JSON `fqc eval --json` printed (env FP_JSON).
"""
import glob
import json
import os
import re
import statistics

RUNS = "reports/runs"
SEEDS_REPORT = "reports/finetune_seeds.md"


def top1(stage_or_run):
    return stage_or_run["test"]["integer_top1"] * 100


def kept_rows():
    """{seed: (gradual w2a4, gradual w2a2, one-shot w2a2, gradual s, one-shot s)}."""
    rows = {}
    for d in sorted(glob.glob(f"{RUNS}/fashion_fl8_distill_seed*")):
        seed = int(re.search(r"seed(\d+)$", d).group(1))
        g = json.load(open(f"{d}/gradual.json"))
        o = json.load(open(f"{d}/oneshot_w2a2.json"))
        assert "--distill" in g["command"] and "--distill" in o["command"], d
        assert g["command"][g["command"].index("--seed") + 1] == str(seed), d
        stages = {s["label"]: top1(s) for s in g["stages"]}
        rows[seed] = (stages["wta4"], stages["wta2"], top1(o),
                      g["compile_seconds"], o["compile_seconds"])
    return rows


def recorded_rows():
    """{seed: (gradual w2a4, gradual w2a2, one-shot w2a2)} of the seeds report's table."""
    text = open(SEEDS_REPORT).read()
    section = text[text.index("## Distilled from the float model"):]
    rows = {}
    for m in re.finditer(r"^\| (\d+) \| ([\d.]+) \| ([\d.]+) \| ([\d.]+) \|", section, re.M):
        rows[int(m.group(1))] = tuple(float(m.group(i)) for i in (2, 3, 4))
    return rows


def main():
    fp = json.load(open(os.environ["FP_JSON"]))["top1"] * 100
    kept = kept_rows()
    recorded = recorded_rows()
    rows = [(s, *kept[s][:3], "reports/runs/ (this script)") if s in kept
            else (s, *recorded[s], "reports/finetune_seeds.md")
            for s in sorted(set(kept) | set(recorded))]

    print("# Distilled w2a2: gradual vs one-shot over more seeds (Fashion-MNIST CNN, first/last layer 8-bit)")
    print()
    print("Made by `bash scripts/finetune_seeds_distilled.sh` (this file is its output). Both")
    print("runs distilled from the float model (`--distill`), with the command lines of")
    print("`scripts/finetune_seeds.sh` (`scripts/finetune_seeds_lib.sh`): gradual")
    print("`w8a8,w4a6,w3a4,w2a4,w2a3,w2a2` with epochs `1,1,1,3,1,10`, one-shot w2a2 at 17")
    print("epochs, `--layer /conv1/Conv=w8 --layer /fc2/Gemm=w8`. Test top-1 of the")
    print("integer-only JIT on the 10,000 test images, %. Seeds 0-2 are the rows")
    print("`reports/finetune_seeds.md` records; later seeds' run summaries are kept in")
    print("`reports/runs/`.")
    print()
    print("| seed | gradual w2a4 (3 epochs) | gradual w2a2 | one-shot w2a2 | gradual − one-shot | source |")
    print("|---:|---:|---:|---:|---:|---|")
    for s, g4, g2, o2, source in rows:
        print(f"| {s} | {g4:.2f} | {g2:.2f} | {o2:.2f} | {g2 - o2:+.2f} | {source} |")
    cols = [[r[i] for r in rows] for i in (1, 2, 3)] + [[r[2] - r[3] for r in rows]]
    mean = [statistics.mean(c) for c in cols]
    sd = [statistics.stdev(c) for c in cols] if len(rows) > 1 else [0.0] * 4
    print("| mean ± sd | " + " | ".join(f"{m:.2f} ± {d:.2f}" for m, d in zip(mean, sd)) + " | |")
    ahead = sum(1 for r in rows if r[2] >= r[3])
    print()
    print(f"Float model (`fqc eval examples/fashion/fashion_cnn.onnx`): {fp:.2f} %.")
    print()
    g2_gap = [r[2] - fp for r in rows]
    print(f"- gradual w2a2 within 1.5 points of float: mean {mean[1] - fp:+.2f}, "
          f"worst seed {min(g2_gap):+.2f} — {'met' if min(g2_gap) >= -1.5 else 'missed in some seed'}")
    print(f"- gradual ≥ one-shot at w2a2: mean {mean[3]:+.2f} ± {sd[3]:.2f} (sd) over {len(rows)} "
          f"seeds, standard error of the mean {sd[3] / len(rows) ** 0.5:.2f}; gradual ahead "
          f"or equal in {ahead} of {len(rows)} — "
          f"{'met on the mean' if mean[3] >= 0 else 'missed on the mean'}")
    if kept:
        print()
        print("Wall time of the runs kept here (each on one core, the two side by side):")
        print()
        for s, (_, _, _, gs, os_) in sorted(kept.items()):
            print(f"- seed {s}: gradual {gs:.0f} s, one-shot {os_:.0f} s")


if __name__ == "__main__":
    main()
