#!/usr/bin/env bash
# The provenance line every generated report in reports/ carries: when, by which
# command, at which commit (and whether the tree was clean: a report measured with
# uncommitted changes cannot be reproduced from the repository, and says so), on which
# CPU (scripts/cpu.sh). Usage: bash scripts/report_header.sh "bash scripts/ptq_report.sh"
set -euo pipefail
cd "$(dirname "$0")/.."
commit=$(git rev-parse --short HEAD)
if git status --porcelain -- . ':!reports' | grep -q .; then
    state="with uncommitted changes, so not reproducible from the repository"
else
    state="clean"
fi
echo "Measured $(date -u +%Y-%m-%dT%H:%MZ) by \`$1\` at commit \`$commit\` ($state), on $(bash scripts/cpu.sh)."
