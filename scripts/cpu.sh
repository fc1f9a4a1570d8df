#!/usr/bin/env bash
# One line naming this machine's CPU for reports: model name, family/model (AMD family
# 25 is Zen 3/4, 26 is Zen 5), core count, and which of the vector extensions fqc's
# kernels dispatch on it has. Every report that quotes a speed or a campaign cites it.
set -euo pipefail
name=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
family=$(grep -m1 'cpu family' /proc/cpuinfo | cut -d: -f2 | tr -d ' ')
model=$(grep -m1 '^model[[:space:]]*:' /proc/cpuinfo | cut -d: -f2 | tr -d ' ')
flags=$(grep -m1 '^flags' /proc/cpuinfo)
have=()
for f in avx2 avx512f avx512bw avx512vl avx512_vnni avx_vnni; do
    [[ " $flags " == *" $f "* ]] && have+=("$f")
done
echo "$name (family $family, model $model; $(nproc) cores; ${have[*]:-no AVX2})"
