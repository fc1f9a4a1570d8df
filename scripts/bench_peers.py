#!/usr/bin/env python3
"""Helpers of scripts/bench_peers.sh (fqc vs ONNX Runtime vs tract, side by side).

  bench_peers.py patch-peak PEAK_DIR        add the AVX2 `madd_ymm` kernel to a scratch copy
                                             of the harness's peak/ (Zen 3 and other AVX2-only
                                             CPUs have no AVX-512 / VNNI: their int8 peak is
                                             vpmaddubsw+vpmaddwd+vpaddd on ymm)
  bench_peers.py calib MODELS_JSON MODEL N OUT.npy
                                             N seeded standard-normal images of MODEL's input
  bench_peers.py duel WORK FQC MODELS ROUNDS SECS
                                             batch 1, 1 thread, fqc's .fqc models and ORT int8
                                             QDQ alternating in ROUNDS rounds of >= SECS each
                                             (this VM's speed switches between two modes ~1.5x
                                             apart over minutes: a sequential run can put two
                                             engines in different modes) -> WORK/results_duel.jsonl
  bench_peers.py report WORK OUT.md          merge the raw results in WORK into the report

Raw results read by `report` (all in WORK, the harness copy): results_peak.json,
results_ort.jsonl, results_tract.jsonl, env_ort.json, models.json, results_load_*.txt
(from the harness's scripts) and results_fqc.jsonl, results_duel.jsonl, fqc_env.json (from
bench_peers.sh).
"""
import datetime
import json
import os
import platform
import re
import subprocess
import sys

MADD_YMM = r'''
/// AVX2 pre-VNNI int8 idiom on ymm: vpmaddubsw + vpmaddwd + vpaddd (32 u8*i8 MACs per
/// triple): the int8 peak of AVX2-only CPUs (Zen 2/3, Haswell..Comet Lake).
/// Added by fqc's scripts/bench_peers.py to a scratch copy of the harness.
#[target_feature(enable = "avx2")]
unsafe fn madd_ymm(iters: u64) -> (u64, i64) {
    let mut a = _mm256_set1_epi32(0x01020304);
    let ones = _mm256_set1_epi16(1);
    let b: [__m256i; 4] = core::array::from_fn(|i| _mm256_set1_epi32(0x00ff01fe + i as i32));
    let mut acc = [_mm256_setzero_si256(); 4];
    for _ in 0..iters {
        asm!("/* {0} */", inout(ymm_reg) a, options(nomem, nostack, preserves_flags));
        macro_rules! s {
            ($i:expr) => {
                acc[$i] = _mm256_add_epi32(acc[$i], _mm256_madd_epi16(_mm256_maddubs_epi16(a, b[$i]), ones));
            };
        }
        s!(0); s!(1); s!(2); s!(3);
        asm!("/* {0} */", inout(ymm_reg) a, options(nomem, nostack, preserves_flags));
        s!(0); s!(1); s!(2); s!(3);
    }
    let mut r = _mm256_setzero_si256();
    for x in acc { r = _mm256_add_epi32(r, x); }
    let mut o = [0i32; 8];
    _mm256_storeu_si256(o.as_mut_ptr() as *mut __m256i, r);
    (iters * 8 * 32, o.iter().map(|&v| v as i64).sum())
}

'''


def patch_peak(peak_dir):
    path = os.path.join(peak_dir, "src", "main.rs")
    src = open(path).read()
    if "fn madd_ymm" in src:
        return
    anchor = '#[target_feature(enable = "sse2,ssse3")]'
    steps = [
        (anchor, MADD_YMM + anchor),
        ('        _ => true,', '        "avx2" => is_x86_feature_detected!("avx2"),\n        _ => true,'),
        ('Kernel); 8] = [', 'Kernel); 9] = ['),
        ('        ("madd_xmm",',
         '        ("madd_ymm", "avx2", "vpmaddubsw+vpmaddwd+vpaddd ymm (AVX2)", madd_ymm),\n'
         '        ("madd_xmm",'),
    ]
    for old, new in steps:
        if src.count(old) != 1:
            sys.exit(f"patch-peak: anchor {old!r} not found once in {path}; harness changed?")
        src = src.replace(old, new)
    with open(path, "w") as f:
        f.write(src)


def calib(models_json, model, n, out):
    import numpy as np
    info = json.load(open(models_json))[model]
    rng = np.random.default_rng(20261127)
    x = rng.standard_normal([int(n)] + info["input_shape"][1:]).astype(np.float32)
    np.save(out, x)


# ---------------------------------------------------------------- report

def jsonl(path):
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(l) for l in f if l.strip()]


def load(path, default=None):
    if not os.path.exists(path):
        return default
    with open(path) as f:
        return json.load(f)


def sh(cmd):
    try:
        return subprocess.run(cmd, shell=True, capture_output=True, text=True).stdout.strip()
    except Exception:
        return ""


def cpu_facts():
    out = sh("lscpu")
    d = dict((k.strip(), v.strip()) for k, v in (l.split(":", 1) for l in out.splitlines() if ":" in l))
    flags = set(d.get("Flags", "").split())
    want = ["sse4_2", "avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl", "avx512_vnni",
            "avx_vnni", "amx_int8"]
    has = [f for f in want if f in flags]
    lacks = [f for f in want if f not in flags]
    mem = sh("awk '/MemTotal/ {printf \"%.1f GiB\", $2/1048576}' /proc/meminfo")
    return {
        "model": d.get("Model name", platform.processor()),
        "family_model": f"family {d.get('CPU family', '?')}, model {d.get('Model', '?')}",
        "vcpus": d.get("CPU(s)", "?"),
        "hypervisor": d.get("Hypervisor vendor", "none"),
        "l1d": d.get("L1d cache", "?"), "l2": d.get("L2 cache", "?"), "l3": d.get("L3 cache", "?"),
        "has": has, "lacks": lacks, "mem": mem, "kernel": platform.release(),
    }


def fmt_table(hdr, rows):
    w = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(hdr)]
    line = lambda cells: "| " + " | ".join(c.ljust(w[i]) for i, c in enumerate(cells)) + " |"
    return [line(hdr), "|" + "|".join("-" * (x + 2) for x in w) + "|"] + [line(r) for r in rows]


PREC_LABEL = {"fp32": "fp32", "int8_qdq": "int8 QDQ (u8s8)", "int8_qop": "int8 QOperator",
              "int8_qlc": "int8 QLinearConv only", "t2a4": "ternary w / 4-bit act", "w8a8": "w8a8"}

def duel(work, fqc, models, rounds, secs):
    """Alternates ORT int8 QDQ (the harness's session and timing loop) and `fqc bench` (t2a4,
    w8a8) at batch 1, 1 thread: per round and engine the median of >= 20 runs lasting >= secs
    after 3 warm-up runs. Writes one JSON line per model and fqc precision."""
    sys.path.insert(0, work)
    import numpy as np
    import ort_bench  # the harness's: same session options and timing loop as the ort stage

    info = load(os.path.join(work, "models.json"), {})
    rounds, secs = int(rounds), float(secs)
    out = []
    for m in models.split(","):
        x = np.random.default_rng(1).standard_normal([1] + info[m]["input_shape"][1:]).astype(np.float32)
        sess = ort_bench.make_session(os.path.join(work, f"{m}.int8_qdq.onnx"), 1)
        fqc_files = {p: os.path.join(work, "fqc", f"{m}.{p}.fqc") for p in ("t2a4", "w8a8")}
        med = {k: [] for k in ["ort", *fqc_files]}
        for r in range(rounds):
            times, _ = ort_bench.time_session(sess, x, 20, secs, 3)
            med["ort"].append(1e3 * times[len(times) // 2])
            for p, f in fqc_files.items():
                res = subprocess.run([fqc, "bench", f, "--runs", "20", "--min-secs", str(secs),
                                      "--warmup", "3", "--json"], capture_output=True, text=True, check=True)
                med[p].append(json.loads(res.stdout.strip().splitlines()[-1])["median_ms"])
            print(f"  duel {m} round {r + 1}/{rounds}: ORT int8 {med['ort'][-1]:.3f} ms, "
                  + ", ".join(f"fqc {p} {med[p][-1]:.3f} ms" for p in fqc_files), file=sys.stderr)
        for p in fqc_files:
            out.append({"model": m, "precision": p, "fqc_ms": med[p], "ort_int8_ms": med["ort"]})
    with open(os.path.join(work, "results_duel.jsonl"), "w") as f:
        f.writelines(json.dumps(r) + "\n" for r in out)


def median(v):
    v = sorted(v)
    n = len(v)
    return v[n // 2] if n % 2 else (v[n // 2 - 1] + v[n // 2]) / 2


def duel_section(rows):
    """The report's table of `duel` results."""
    o = ["", "## Interleaved, batch 1, 1 thread: fqc vs ORT int8 QDQ in the same minutes", "",
         "Rounds alternate the engines (ORT int8, fqc t2a4, fqc w8a8; each the median of >= 20 runs "
         "lasting >= the round length, after warm-up), so both meet the same machine mode. "
         "Ratio = median over rounds of fqc / ORT in that round.", "",
         "| model | fqc | rounds | fqc median ms | ORT int8 median ms | ratio (median of rounds) | "
         "ratio range | rounds with ratio <= 0.5 |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        ratios = [f / o_ for f, o_ in zip(r["fqc_ms"], r["ort_int8_ms"])]
        o.append(f"| {r['model']} | {r['precision']} | {len(ratios)} | {median(r['fqc_ms']):.3f} | "
                 f"{median(r['ort_int8_ms']):.3f} | **{median(ratios):.2f}** | "
                 f"{min(ratios):.2f}-{max(ratios):.2f} | {sum(x <= 0.5 for x in ratios)} |")
    return o


def report(work, out_md):
    P = lambda f: os.path.join(work, f)
    models = load(P("models.json"), {})
    env = load(P("env_ort.json"), {})
    fenv = load(P("fqc_env.json"), {})
    peak = load(P("results_peak.json"))
    ort_rows = jsonl(P("results_ort.jsonl"))
    tract_rows = jsonl(P("results_tract.jsonl"))
    fqc_rows = [r for r in jsonl(P("results_fqc.jsonl"))]
    rows = ort_rows + tract_rows + fqc_rows

    kern = {k["kernel"]: k for k in (peak or {}).get("kernels", []) if "error" not in k}
    pthreads = (peak or {}).get("threads", 1)

    def peak_for(prec, threads):
        """(GMAC/s, kernel) of the relevant peak: int8 -> best int8 kernel the CPU has, fp32 -> FMA."""
        names = (["fma_zmm", "fma_ymm"] if prec == "fp32"
                 else ["vnni_zmm", "vnni_ymm", "madd_zmm", "madd_ymm", "madd_xmm"])
        for n in names:
            k = kern.get(n)
            if not k:
                continue
            if threads == 1:
                return k["gmacs_per_s_1core"], n
            if threads == pthreads:
                return k[f"gmacs_per_s_{pthreads}threads"], n
            return k["gmacs_per_s_1core"] * threads, n
        return None, None

    ort_int8 = {(r["model"], r["batch"], r["threads"]): r for r in ort_rows
                if r.get("precision") == "int8_qdq" and "median_ms" in r}
    order_m = {m: i for i, m in enumerate(["mnist_cnn", "resnet20", "resnet18_imagenet"])}
    order_e = {"fqc": 0, "onnxruntime": 1, "tract": 2}
    order_p = {p: i for i, p in enumerate(["t2a4", "w8a8", "int8_qdq", "int8_qop", "int8_qlc", "fp32"])}
    rows.sort(key=lambda r: (order_m.get(r.get("model"), 9), r.get("batch", 0), r.get("threads", 0),
                             order_e.get(r.get("engine"), 9), order_p.get(r.get("precision"), 9)))
    hdr = ["model", "engine", "precision", "batch", "threads", "median ms", "GMAC/s",
           "speed vs ORT int8", "% of peak", "min ms", "min vs ORT int8", "runs"]
    table, errors, peaks_used = [], [], set()
    for r in rows:
        base = [r.get("model", "?"), r.get("engine", "?"), PREC_LABEL.get(r.get("precision"), str(r.get("precision"))),
                str(r.get("batch", "-")), str(r.get("threads", "-"))]
        if "median_ms" not in r:
            errors.append(f"{' / '.join(base)}: {r.get('error', 'no result')}")
            table.append(base + ["FAILED", "-", "-", "-", "-", "-", "-"])
            continue
        ref = ort_int8.get((r["model"], r["batch"], r["threads"]))
        ratio = f"{ref['median_ms'] / r['median_ms']:.2f}x" if ref and r["engine"] == "fqc" else "-"
        pk, pn = peak_for(r["precision"], r["threads"])
        if pn:
            peaks_used.add(pn)
        pct = f"{100 * r['gmacs_per_s'] / pk:.0f}% {pn}" if pk else "-"
        mn = r.get("min_ms")
        min_ratio = (f"{ref['min_ms'] / mn:.2f}x" if ref and mn and ref.get("min_ms")
                     and r["engine"] == "fqc" else "-")
        table.append(base + [f"{r['median_ms']:.3f}", f"{r['gmacs_per_s']:.1f}", ratio, pct,
                             f"{mn:.3f}" if mn else "-", min_ratio, str(r["runs"])])
    md_table = fmt_table(hdr, table)

    cpu = cpu_facts()
    today = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    o = [f"# fqc vs ONNX Runtime vs tract: CNN inference on this machine ({today})", "",
         "Made by `bash scripts/bench_peers.sh` (this file is its output; do not edit by hand). "
         "Every engine ran in the same invocation, on the same machine, one after the other, "
         "on the models of the peer harness `../shared/bench` (copied to a scratch folder). "
         "The harness's own `results.md` was measured on a different machine (Zen 5 with "
         "AVX-512): compare with the figures below, not with it.",
         ]
    if "QUICK" in str(fenv.get("mode", "")):
        o += ["", "> **QUICK smoke test** (few runs, small models, machine possibly busy): checks the "
              "pipeline, not a measurement. Re-run `bash scripts/bench_peers.sh` on an idle machine."]
    o += ["", "## Machine", "",
         f"- CPU: {cpu['model']} ({cpu['family_model']}), {cpu['vcpus']} vCPU, hypervisor {cpu['hypervisor']}; "
         f"L1d {cpu['l1d']}, L2 {cpu['l2']}, L3 {cpu['l3']}; RAM {cpu['mem']}; Linux {cpu['kernel']}",
         f"- ISA: has {' '.join(cpu['has']) or '-'}; lacks {' '.join(cpu['lacks']) or '-'}",
         f"- Estimated core clock: {peak['clock_ghz_est']} GHz (dependent add chain)" if peak else "- peak probe: not run",
         f"- fqc {fenv.get('git', '?')}, {fenv.get('rustc', '?')}; onnxruntime {env.get('onnxruntime', '?')}, "
         f"onnx {env.get('onnx', '?')}, numpy {env.get('numpy', '?')}, python {env.get('python', '?')}; "
         f"tract-onnx 0.23.9",
         f"- Run: {fenv.get('mode', '?')}; RUNS={fenv.get('runs', '?')}, MIN_SECS={fenv.get('min_secs', '?')}, "
         f"RUNS_BIG={fenv.get('runs_big', '?')} (resnet18_imagenet at batch 32, every engine)",
         ]
    loads = [open(P(f"results_load_{st}.txt")).read().strip() for st in ("peak", "ort", "tract", "fqc", "duel")
             if os.path.exists(P(f"results_load_{st}.txt"))]
    if loads:
        o += ["", "Machine load per stage (`other_processes_cpu_s` = CPU time used outside the benchmark "
              "while the stage ran; ~0 means a clean measurement):", "", "```"] + loads + ["```"]
    o += ["", "## Method", "",
          "- Latency = median wall time of one run of a batch over >= RUNS timed runs lasting >= MIN_SECS, "
          "after warm-up (the harness's convention; `fqc bench --runs --min-secs --warmup 3`); "
          "resnet18_imagenet at batch 32 takes seconds per run on 2 vCPU, so it gets RUNS_BIG runs "
          "(see Machine) to keep the whole benchmark near 15 min. "
          "GMAC/s = (conv + gemm MACs per image, from the harness's `models.json`) x batch / median.",
          "- fqc: `fqc compile M.onnx --calib CALIB.npy --weights ternary --act-bits 4` (t2a4) and "
          "`--weights 8 --act-bits 8` (w8a8), calibrated on seeded standard-normal images (32; 4 for "
          "resnet18_imagenet), then `fqc bench --json` (JIT, Cranelift). Threads split the batch.",
          "- ONNX Runtime: fp32 graph, and int8 QDQ from `quant_pre_process` + `quantize_static` "
          "(QUInt8 activations, per-channel QInt8 weights: MLAS U8S8 kernels; MinMax on 32 seeded N(0,1) "
          "inputs); `intra_op_num_threads` as listed.",
          "- tract: single thread; fp32 and the int8 graphs it loads: QDQ, and (opt-in, "
          "`TRACT_PRECISIONS=fp32,int8_qdq,int8_qlc`: much slower than QDQ, see its rows when run) "
          "QOperator with only Conv quantized (`int8 QLinearConv only`); the full QOperator graph "
          "(com.microsoft QLinearAdd/QGemm) does not load in tract 0.23.9 and is not tried.",
          "- `speed vs ORT int8` (fqc rows) = ORT int8 QDQ median / fqc median at the same model, batch and "
          "threads: fqc's speed relative to ORT int8 (> 1: fqc is faster). `% of peak` = GMAC/s / the machine's peak for that thread count: "
          "the int8 kernel (`madd_ymm` on AVX2-only CPUs) for integer rows, FMA for fp32 rows. "
          "fqc's ternary kernels add/subtract instead of multiplying, so for t2a4 the int8 peak is a "
          "reference point, not a ceiling.",
          "- `min ms` / `min vs ORT int8`: the fastest run, and ORT int8's fastest over fqc's. On these VMs "
          "batch-1 run times of every engine can fall in two modes (compare `min ms` with the medians "
          "below), so the minimum compares the engines in the same (fast) mode; the median ratio is the "
          "headline, and the interleaved duel below alternates the engines round by round.",
          "", "## Models", "", "| model | input | params | MACs/image (conv + gemm) |", "|---|---|---|---|"]
    for m, i in models.items():
        o.append(f"| {m} | {'x'.join(map(str, i['input_shape']))} | {i['params']:,} | "
                 f"{i['macs_per_image']:,} ({i['conv_macs']:,} + {i['gemm_macs']:,}) |")
    o += ["", "## Latency", ""] + md_table
    duel_rows = jsonl(P("results_duel.jsonl"))
    if duel_rows:
        o += duel_section(duel_rows)

    # compile times and sizes
    comp = {}
    for r in fqc_rows:
        if "compile_ms" in r:
            comp.setdefault((r["model"], r["precision"]), []).append(r)
    if comp:
        o += ["", "## fqc compile times and artifact sizes", "",
              "`fqc compile` = the whole pass pipeline (import, calibration, quantization, integerize, "
              "writing the artifact), wall time. JIT = Cranelift compile when the `.fqc` is loaded "
              "(median over the bench invocations). Size: the `.fqc` artifact vs ORT's int8 QDQ `.onnx` "
              "of the same model.", ""]
        srows = []
        for (m, p), rs in sorted(comp.items(), key=lambda kv: (order_m.get(kv[0][0], 9), order_p.get(kv[0][1], 9))):
            jit = sorted(x["compile_ms"] for x in rs)[len(rs) // 2]
            fb = rs[0].get("fqc_bytes")
            qdq = P(f"{m}.int8_qdq.onnx")
            qb = os.path.getsize(qdq) if os.path.exists(qdq) else None
            passes_s = (fenv.get("compile_s") or {}).get(f"{m}/{p}")
            srows.append([m, PREC_LABEL.get(p, p), f"{passes_s:.1f} s" if passes_s is not None else "-",
                          f"{jit:.1f} ms", f"{fb:,}" if fb else "-", f"{qb:,}" if qb else "-",
                          (f"{qb / fb:.1f}x smaller" if qb >= fb else f"{fb / qb:.1f}x larger")
                          if fb and qb else "-"])
        o += fmt_table(["model", "fqc precision", "fqc compile", "JIT compile", ".fqc bytes",
                        "ORT int8 QDQ .onnx bytes", ".fqc vs QDQ"], srows)

    if errors:
        o += ["", "## Failures / refusals", ""] + [f"- {e}" for e in errors]
    acc = env.get("accuracy_vs_fp32")
    if acc:
        o += ["", "## ORT int8 vs fp32 agreement (16 random inputs)", "",
              "| model/precision | mean cosine | top-1 agree |", "|---|---|---|"]
        for k, v in acc.items():
            o.append(f"| {k} | {v['cosine']} | {v['top1_agree']} |" if isinstance(v, dict) else f"| {k} | {v} | |")
    if env.get("mlas_probe_1thread"):
        o += ["", f"MLAS 1024^3 GEMM probe, 1 thread: {env['mlas_probe_1thread']}"]
    if peak:
        o += ["", "## Machine peak (harness `peak/` + `madd_ymm`, register-only loops)", "",
              f"Estimated core clock: {peak['clock_ghz_est']} GHz (a dependent `add` chain; "
              "MAC/cycle uses it, so it is only as good as that estimate, poor on a loaded machine or "
              "where the hypervisor hides boost). Kernels the CPU lacks were not run "
              "(the probe checks CPUID first).", "",
              f"| kernel | instruction | GMAC/s per core | MAC/cycle | GMAC/s {pthreads} threads |",
              "|---|---|---|---|---|"]
        for k in peak["kernels"]:
            if "error" in k:
                o.append(f"| {k['kernel']} | n/a on this CPU ({k['error']}) | | | |")
            else:
                o.append(f"| {k['kernel']} | {k['desc']} | {k['gmacs_per_s_1core']} | {k['macs_per_cycle']} | "
                         f"{k[f'gmacs_per_s_{pthreads}threads']} |")
    with open(out_md, "w") as f:
        f.write("\n".join(o) + "\n")
    print("\n".join(md_table))
    print(f"\nwrote {out_md}")


if __name__ == "__main__":
    cmd = sys.argv[1] if len(sys.argv) > 1 else ""
    if cmd == "patch-peak" and len(sys.argv) == 3:
        patch_peak(sys.argv[2])
    elif cmd == "calib" and len(sys.argv) == 6:
        calib(*sys.argv[2:])
    elif cmd == "duel" and len(sys.argv) == 7:
        duel(*sys.argv[2:])
    elif cmd == "report" and len(sys.argv) == 4:
        report(sys.argv[2], sys.argv[3])
    else:
        sys.exit(__doc__)
