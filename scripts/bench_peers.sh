#!/usr/bin/env bash
# fqc vs ONNX Runtime vs tract, side by side in one run, into reports/bench.md.
#
#   bash scripts/bench_peers.sh            # full run (~10-15 min on 2 vCPU once tract is built;
#                                          #   the first tract build adds a few minutes)
#   QUICK=1 bash scripts/bench_peers.sh    # mnist_cnn + resnet20, few runs: smoke test (~2 min)
#
# What runs (each stage after waiting for an idle machine, its load recorded):
#   peak   the harness's register-only peak probe (peak/), patched in a scratch copy with an
#          AVX2 `madd_ymm` kernel (vpmaddubsw+vpmaddwd+vpaddd ymm: the int8 peak of CPUs
#          without AVX-512/VNNI); kernels the CPU lacks are skipped by the probe (CPUID)
#   ort    ONNX Runtime fp32 and int8 QDQ (U8S8, after quant_pre_process), batch 1/32, 1/2 threads
#   tract  tract fp32 and the int8 graphs it loads, batch 1/32, 1 thread
#   fqc    `fqc compile` (ternary weights + 4-bit activations, and w8a8) then `fqc bench --json`
#          (JIT), batch 1/32, 1/2 threads
#   duel   batch 1, 1 thread: ORT int8, fqc t2a4 and fqc w8a8 alternating in DUEL_ROUNDS rounds of
#          >= DUEL_SECS each (needs the fqc and ort stages' files), so that the engines meet the
#          same machine mode (batch-1 speed on this VM switches between two modes over minutes)
# on mnist_cnn, resnet20 (3x32x32) and resnet18_imagenet (3x224x224) from the harness's
# make_models.py; median of >= RUNS runs lasting >= MIN_SECS after warm-up.
#
# Needs: the Rust toolchain, python3 with `pip install -r ../shared/bench/requirements.txt`
# (onnx, onnxruntime, numpy; installed here if missing), and crates.io access the first time
# (tract-onnx for the harness's tract-bench). The harness folder may be read-only: it is
# copied to $WORK/harness; Rust builds are cached in $WORK (default target/bench-peers/).
#
# Knobs: QUICK=1; MODELS (comma list); RUNS (30); MIN_SECS (1.0); RUNS_BIG (10: timed runs of
# resnet18_imagenet at batch 32, whose runs take seconds each; 30 makes the whole run ~25 min);
# WAIT_QUIET (1: wait for an idle machine before each stage); QUIET_TIMEOUT (600 s);
# TRACT_TIMEOUT (400 s per model/precision/batch); TRACT_PRECISIONS (fp32,int8_qdq; add int8_qlc
# to opt in); STAGES (peak,ort,tract,fqc,duel; the report merges whatever is in $WORK); DUEL_ROUNDS
# (9), DUEL_SECS (1.0); BENCH_SRC (the
# harness, default ../shared/bench next to the repo, else /work/shared/bench); WORK (scratch,
# default target/bench-peers); OUT (reports/bench.md); FQC (an fqc binary to use instead of
# building target/release/fqc).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
RUNS=${RUNS:-30}
MIN_SECS=${MIN_SECS:-1.0}
RUNS_BIG=${RUNS_BIG:-10}  # resnet18_imagenet at batch 32: each run takes seconds on 2 vCPU
MODELS=${MODELS:-mnist_cnn,resnet20,resnet18_imagenet}
TRACT_TIMEOUT=${TRACT_TIMEOUT:-400}
STAGES=${STAGES:-peak,ort,tract,fqc,duel}
DUEL_ROUNDS=${DUEL_ROUNDS:-9}
DUEL_SECS=${DUEL_SECS:-1.0}
# tract int8_qlc (QOperator, only Conv quantized) runs ~100x slower than int8_qdq on an AVX2-only
# Zen 3 (resnet20 batch 32: ~12 s per run): opt in with TRACT_PRECISIONS=fp32,int8_qdq,int8_qlc.
TRACT_PRECISIONS=${TRACT_PRECISIONS:-fp32,int8_qdq}
MODE=full
if [[ "${QUICK:-0}" == 1 ]]; then MODELS=${QUICK_MODELS:-mnist_cnn,resnet20}; RUNS=5; RUNS_BIG=2; MIN_SECS=0.2; DUEL_ROUNDS=2; DUEL_SECS=0.2; MODE="QUICK smoke test (not a measurement)"; fi
if [[ -z "${BENCH_SRC:-}" ]]; then
  if [[ -d "$ROOT/../shared/bench" ]]; then BENCH_SRC="$ROOT/../shared/bench"; else BENCH_SRC=/work/shared/bench; fi
fi
WORK=${WORK:-$ROOT/target/bench-peers}
OUT=${OUT:-$ROOT/reports/bench.md}
H=$WORK/harness
has_stage() { [[ ",$STAGES," == *",$1,"* ]]; }
runs_for() { if [[ $1 == resnet18_imagenet && $2 == 32 ]]; then echo "$RUNS_BIG"; else echo "$RUNS"; fi; }
T0=$(date +%s)
step() { echo "[$(( $(date +%s) - T0 ))s] $*" >&2; }

# ---- load metering (as the harness's run_all.sh): timings only mean something on an idle machine
cpu_busy() {  # % of all CPUs busy over 2 s
  local a b c d e f g h t1 i1 t2 i2
  read -r _ a b c d e f g h _ < /proc/stat; t1=$((a+b+c+d+e+f+g+h)); i1=$((d+e))
  sleep 2
  read -r _ a b c d e f g h _ < /proc/stat; t2=$((a+b+c+d+e+f+g+h)); i2=$((d+e))
  echo $(( 100 * ( (t2-t1) - (i2-i1) ) / (t2-t1) ))
}
busy_jiffies() { local a b c f g h; read -r _ a b c _ _ f g h _ < /proc/stat; echo $((a+b+c+f+g+h)); }
own_jiffies() { awk '{print $14+$15+$16+$17}' "/proc/$$/stat"; }  # this shell + waited children
meter_start() {
  local busy; busy=$(cpu_busy)
  if (( busy > 10 )) && [[ "${WAIT_QUIET:-1}" == 1 ]]; then
    step "machine ${busy}% busy; waiting up to ${QUIET_TIMEOUT:-600}s for idle"
    local end=$(( $(date +%s) + ${QUIET_TIMEOUT:-600} ))
    while (( busy > 10 )) && (( $(date +%s) < end )); do sleep 8; busy=$(cpu_busy); done
  fi
  if (( busy > 10 )); then step "WARNING: machine ${busy}% busy before stage: timings will be noisy"; fi
  M_BUSY=$busy; M_B0=$(busy_jiffies); M_O0=$(own_jiffies); M_W0=$(date +%s)
}
meter_end() {  # $1 = stage; writes $H/results_load_<stage>.txt
  local hz b o w other; hz=$(getconf CLK_TCK)
  b=$(( $(busy_jiffies) - M_B0 )); o=$(( $(own_jiffies) - M_O0 )); w=$(( $(date +%s) - M_W0 ))
  other=$(( (b - o) / hz )); (( other < 0 )) && other=0
  echo "stage=$1 date=$(date -u +%FT%TZ) busy_before_pct=$M_BUSY wall_s=$w own_cpu_s=$(( o / hz )) other_processes_cpu_s=$other" \
    | tee "$H/results_load_$1.txt" >&2
}

if [[ -z "${FQC:-}" ]]; then
  step "fqc (cargo build --release --bin fqc)"
  cargo build --release --bin fqc -q
  FQC=$ROOT/target/release/fqc
fi

step "harness: $BENCH_SRC -> $H"
[[ -f $BENCH_SRC/run_all.sh ]] || { echo "error: no peer harness at $BENCH_SRC (set BENCH_SRC)" >&2; exit 1; }
mkdir -p "$H"
cp -r "$BENCH_SRC/." "$H/"   # over any earlier copy: results of stages not re-run are kept
chmod -R u+w "$H"
rm -rf "$H/tract-bench/target" "$H/peak/target" "$H/results.md"  # results.md: another machine's
# $WORK may sit inside this workspace (target/): keep the harness crates out of it.
for c in tract-bench peak; do grep -q '^\[workspace\]' "$H/$c/Cargo.toml" || printf '\n[workspace]\n' >> "$H/$c/Cargo.toml"; done
python3 scripts/bench_peers.py patch-peak "$H/peak"

step "python deps"
python3 -c "import onnx, onnxruntime, numpy" 2>/dev/null || python3 -m pip install -q -r "$H/requirements.txt"

step "building tract-bench and peak (release, cached in $WORK)"
(cd "$H/peak" && CARGO_TARGET_DIR="$WORK/peak-target" cargo build --release -q)
if has_stage tract; then (cd "$H/tract-bench" && CARGO_TARGET_DIR="$WORK/tract-target" cargo build --release -q); fi
PEAK=$WORK/peak-target/release/peak
TRACT=$WORK/tract-target/release/tract-bench

step "models (harness make_models.py)"
(cd "$H" && python3 make_models.py >&2)
mminfo() { python3 -c "import json,sys;i=json.load(open('$H/models.json'))['$1'];print(','.join(map(str,i['input_shape'][1:])), i['macs_per_image'])"; }

if has_stage peak; then
  meter_start
  step "peak micro-benchmark (2 threads)"
  "$PEAK" --threads 2 --json > "$H/results_peak.json"
  python3 -c "import json;d=json.load(open('$H/results_peak.json'))
print('clock ~%.2f GHz' % d['clock_ghz_est'])
for k in d['kernels']: print('  %-14s %s' % (k['kernel'], ('%-36s %7.1f GMAC/s/core %5.1f MAC/cycle' % (k['desc'], k['gmacs_per_s_1core'], k['macs_per_cycle'])) if 'error' not in k else 'n/a on this CPU: ' + k['error']))" >&2
  meter_end peak
fi

if has_stage ort; then
  meter_start
  step "onnxruntime fp32 / int8 QDQ (quantization included)"
  # One ort_bench call for the small models, two for resnet18_imagenet (batch 32 gets RUNS_BIG
  # runs); the raw files are concatenated / merged afterwards.
  rm -f "$H"/results_ort.part*.jsonl "$H"/env_ort.part*.json
  small=$(echo ",$MODELS," | sed 's/,resnet18_imagenet,/,/; s/^,//; s/,$//')
  if [[ -n $small ]]; then
    (cd "$H" && python3 ort_bench.py --models "$small" --precisions fp32,int8_qdq --runs "$RUNS" \
      --min-secs "$MIN_SECS" --out results_ort.part1.jsonl --env-out env_ort.part1.json)
  fi
  if [[ ",$MODELS," == *",resnet18_imagenet,"* ]]; then
    for b in 1 32; do
      (cd "$H" && python3 ort_bench.py --models resnet18_imagenet --precisions fp32,int8_qdq --batches "$b" \
        --runs "$(runs_for resnet18_imagenet "$b")" --min-secs "$MIN_SECS" \
        --out "results_ort.part2_$b.jsonl" --env-out "env_ort.part2_$b.json")
    done
  fi
  cat "$H"/results_ort.part*.jsonl > "$H/results_ort.jsonl"
  python3 -c "
import glob, json, sys
env = {}
for f in sorted(glob.glob(sys.argv[1] + '/env_ort.part*.json')):
    e = json.load(open(f))
    for k, v in e.items():
        if isinstance(v, dict) and isinstance(env.get(k), dict):
            env[k].update(v)
        else:
            env.setdefault(k, v)
json.dump(env, open(sys.argv[1] + '/env_ort.json', 'w'), indent=1)" "$H"
  rm -f "$H"/results_ort.part*.jsonl "$H"/env_ort.part*.json
  meter_end ort
fi
IFS=',' read -ra MLIST <<< "$MODELS"
if [[ ! -f $H/${MLIST[0]}.int8_qdq.onnx ]]; then  # tract and the size table need the quantized models
  (cd "$H" && python3 ort_bench.py --models "$MODELS" --precisions int8_qdq --batches 1 --threads 1 --runs 1 \
    --min-secs 0 --out /dev/null --env-out /dev/null)
fi

if has_stage tract; then
  meter_start
  step "tract (single thread)"
  : > "$H/results_tract.jsonl"
  for m in "${MLIST[@]}"; do
    read -r shape macs < <(mminfo "$m")
    # int8_qop (com.microsoft QLinearAdd/QGemm) does not load in tract 0.23.9: not tried.
    IFS=',' read -ra TPRECS <<< "$TRACT_PRECISIONS"
    for prec in "${TPRECS[@]}"; do
      if [[ $prec == fp32 ]]; then f=$H/$m.onnx; else f=$H/$m.$prec.onnx; fi
      if [[ ! -f $f ]]; then
        echo "{\"engine\":\"tract\",\"model\":\"$m\",\"precision\":\"$prec\",\"threads\":1,\"error\":\"$(basename "$f") missing\"}" >> "$H/results_tract.jsonl"
        continue
      fi
      for b in 1 32; do
      errf=$(mktemp)
      set +e
      out=$(timeout "$TRACT_TIMEOUT" "$TRACT" --onnx "$f" --label "$m" --precision "$prec" --shape "$shape" \
            --batches "$b" --runs "$(runs_for "$m" "$b")" --min-secs "$MIN_SECS" --macs "$macs" 2>"$errf")
      rc=$?
      set -e
      [[ -n "$out" ]] && echo "$out" >> "$H/results_tract.jsonl"
      if [[ $rc -ne 0 ]]; then
        err=$(tail -c 300 "$errf" | tr '\n"\\' '   ')
        [[ $rc -eq 124 ]] && err="timeout after ${TRACT_TIMEOUT}s $err"
        echo "{\"engine\":\"tract\",\"model\":\"$m\",\"precision\":\"$prec\",\"batch\":$b,\"threads\":1,\"error\":\"rc=$rc $err\"}" >> "$H/results_tract.jsonl"
      fi
      rm -f "$errf"
      [[ -n "$out" ]] && echo "$out" | python3 -c "import sys,json
for l in sys.stdin:
    l=l.strip()
    if not l: continue
    r=json.loads(l); print('  tract', r['model'].ljust(18), r['precision'].ljust(9), 'b=%-3s'%r.get('batch','-'), ('%10.3f ms %8.2f GMAC/s (%d runs)'%(r['median_ms'],r['gmacs_per_s'],r['runs'])) if 'median_ms' in r else r.get('error','')[:200])" >&2
      done
    done
  done
  meter_end tract
fi

declare -A CSECS=()
if has_stage fqc; then
  F=$H/fqc
  mkdir -p "$F"
  # Compile first (not timed as a benchmark; its wall time goes into the report).
  for m in "${MLIST[@]}"; do
    n=32; [[ $m == resnet18_imagenet ]] && n=4
    python3 scripts/bench_peers.py calib "$H/models.json" "$m" "$n" "$F/$m.calib.npy"
    for p in t2a4 w8a8; do
      if [[ $p == t2a4 ]]; then qa=(--weights ternary --act-bits 4); else qa=(--weights 8 --act-bits 8); fi
      step "fqc compile $m $p"
      s=$(date +%s.%N)
      if "$FQC" compile "$H/$m.onnx" -o "$F/$m.$p.fqc" --calib "$F/$m.calib.npy" "${qa[@]}" > "$F/$m.$p.compile.txt" 2>&1; then
        CSECS[$m/$p]=$(python3 -c "print(round($(date +%s.%N) - $s, 2))")
        grep -E "integer-only" "$F/$m.$p.compile.txt" | sed 's/^/  /' >&2 || true
      else
        echo "  FAILED: $(tail -n 1 "$F/$m.$p.compile.txt")" >&2
        rm -f "$F/$m.$p.fqc"
      fi
    done
  done
  meter_start
  step "fqc bench (JIT)"
  : > "$H/results_fqc.jsonl"
  for m in "${MLIST[@]}"; do
    read -r _ macs < <(mminfo "$m")
    for p in t2a4 w8a8; do
      for b in 1 32; do
        for t in 1 2; do
          if [[ ! -f $F/$m.$p.fqc ]]; then
            echo "{\"engine\":\"fqc\",\"model\":\"$m\",\"precision\":\"$p\",\"batch\":$b,\"threads\":$t,\"error\":\"fqc compile failed: $(tail -n 1 "$F/$m.$p.compile.txt" | tr '\n"\\' '   ')\"}" >> "$H/results_fqc.jsonl"
            continue
          fi
          set +e
          out=$("$FQC" bench "$F/$m.$p.fqc" --batch "$b" --threads "$t" --runs "$(runs_for "$m" "$b")" --min-secs "$MIN_SECS" --warmup 3 --json 2>&1)
          rc=$?
          set -e
          python3 -c "
import json, sys
m, p, b, t, macs, rc, out = sys.argv[1:]
b, t, macs = int(b), int(t), int(macs)
try:
    j = json.loads(out.strip().splitlines()[-1]) if rc == '0' else None
except Exception:
    j = None
if j is None:
    r = {'engine': 'fqc', 'model': m, 'precision': p, 'batch': b, 'threads': t, 'error': out.strip()[-300:]}
    print('  fqc  ', m.ljust(18), p.ljust(9), 'b=%-3d t=%d FAILED %s' % (b, t, r['error']), file=sys.stderr)
else:
    med = j['median_ms']
    r = {'engine': 'fqc', 'model': m, 'precision': p, 'batch': b, 'threads': t, 'runs': j['runs'],
         'median_ms': med, 'min_ms': j['min_ms'], 'gmacs_per_s': round(macs * b / (med / 1e3) / 1e9, 3),
         'fqc_macs_per_image': j['macs_per_image'], 'compile_ms': j['compile_ms'], 'fqc_bytes': j['fqc_bytes']}
    print('  fqc  ', m.ljust(18), p.ljust(9), 'b=%-3d t=%d %10.3f ms %8.2f GMAC/s (%d runs)' % (b, t, med, r['gmacs_per_s'], r['runs']), file=sys.stderr)
print(json.dumps(r))" "$m" "$p" "$b" "$t" "$macs" "$rc" "$out" >> "$H/results_fqc.jsonl"
        done
      done
    done
  done
  meter_end fqc
fi
if has_stage duel; then
  meter_start
  step "duel: ORT int8 / fqc t2a4 / fqc w8a8 alternating, batch 1, 1 thread ($DUEL_ROUNDS rounds)"
  python3 scripts/bench_peers.py duel "$H" "$FQC" "$MODELS" "$DUEL_ROUNDS" "$DUEL_SECS"
  meter_end duel
fi
# Run facts for the report (fqc compile times: this run's, else those of the last fqc stage).
cs="{"; sep=""; for k in "${!CSECS[@]}"; do cs+="$sep\"$k\":${CSECS[$k]}"; sep=","; done; cs+="}"
if ! has_stage fqc && [[ -f $H/fqc_env.json ]]; then
  cs=$(python3 -c "import json;print(json.dumps(json.load(open('$H/fqc_env.json')).get('compile_s',{})))")
fi
git_rev="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
if [[ -n "$(git status --porcelain -- . ':!reports/bench.md' 2>/dev/null)" ]]; then git_rev+=" (+ uncommitted changes)"; fi
python3 -c "import json,sys;json.dump({'git':sys.argv[1],'rustc':sys.argv[2],'mode':sys.argv[3],'runs':int(sys.argv[4]),'runs_big':int(sys.argv[9]),'min_secs':float(sys.argv[5]),'models':sys.argv[6],'compile_s':json.loads(sys.argv[7])},open(sys.argv[8],'w'),indent=1)" \
  "$git_rev" "$(rustc --version)" "$MODE" "$RUNS" "$MIN_SECS" "$MODELS" "$cs" "$H/fqc_env.json" "$RUNS_BIG"

step "report -> $OUT"
mkdir -p "$(dirname "$OUT")"
python3 scripts/bench_peers.py report "$H" "$OUT"
step "done"
