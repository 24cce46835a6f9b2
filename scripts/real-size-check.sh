#!/usr/bin/env bash
# Opt-in real-size check (issue #11; NOT part of npm test, it takes GBs and minutes): builds a
# random-weight model at a real variant's shapes, runs `harmon generate` (256², 4 steps) and
# `harmon describe` (4 tokens) on it, and prints build time, model-dir bytes vs fp32 weight bytes
# and the peak RSS (/usr/bin/time -f %M) and wall time of each step, with the machine's load.
#
#   scripts/real-size-check.sh [0.5b|1.5b|small|tiny] [fp32|fp16]
#
# REAL_SIZE_ROOT (default ${TMPDIR:-/tmp}/harmon-real-size) holds the model dir; REAL_SIZE_KEEP=1
# keeps it. Every heavy step runs under `flock $REAL_SIZE_LOCK` so on a shared machine only one
# real-size job runs at a time.
set -euo pipefail
cd "$(dirname "$0")/.."
variant=${1:-0.5b}
dtype=${2:-fp32}
root=${REAL_SIZE_ROOT:-${TMPDIR:-/tmp}/harmon-real-size}
lock=${REAL_SIZE_LOCK:-$root.lock}
dir="$root/$variant-$dtype"
mkdir -p "$root"
heavy() { flock "$lock" /usr/bin/time -f '%M KiB peak RSS, %e s wall' "$@"; }

echo "== $variant $dtype -> $dir ($(uptime | sed 's/.*load/load/'))"
rm -rf "$dir"
heavy node bin/harmon.js random --variant "$variant" --dtype "$dtype" --seed 1 --out "$dir"
echo "du -sb: $(du -sb "$dir" | cut -f1) bytes; fp32 weights counted once: $(node --import tsx -e "
  import('./src/onnx/weight-budget.ts').then(async ({ weightBudget }) => {
    const { VARIANTS } = await import('./src/model/config.ts');
    console.log(weightBudget(VARIANTS['$variant'], 'float32').uniqueParams * 4);
  });") bytes"
echo "== generate ($(uptime | sed 's/.*load/load/'))"
heavy node bin/harmon.js generate --model "$dir" --prompt 'a red fox in the snow' --size 256 --steps 4 \
  --seed 1 --out "$root/$variant-$dtype.png"
echo "== describe ($(uptime | sed 's/.*load/load/'))"
heavy node bin/harmon.js describe --model "$dir" --image "$root/$variant-$dtype.png" --max-tokens 4
[ "${REAL_SIZE_KEEP:-0}" = 1 ] || rm -rf "$dir"
