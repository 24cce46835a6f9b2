#!/usr/bin/env bash
# Opt-in (NOT npm test): the activation model of infra/lib/activations.ts against the CPU
# provider's real peak, one fresh process per case (scripts/measure-run-memory.ts), each under
# `flock $HEAVY_LOCK` so on a shared machine only one heavy job runs at a time.
#
#   scripts/measure-run-memory.sh [vae|lm|all]
set -euo pipefail
cd "$(dirname "$0")/.."
lock=${HEAVY_LOCK:-${TMPDIR:-/tmp}/harmon-heavy.lock}
what=${1:-all}
one() { flock "$lock" node --expose-gc --import tsx scripts/measure-run-memory.ts "$@"; }
echo "# $(date -u +%FT%TZ) $(nproc) CPUs, $(free -g | awk '/Mem:/{print $2}') GiB, load $(cut -d' ' -f1-3 /proc/loadavg)"
if [ "$what" = vae ] || [ "$what" = all ]; then
  for images in 1 4; do one vae_decoder "$images" 1024; done
  one vae_encoder 1 1024
fi
if [ "$what" = lm ] || [ "$what" = all ]; then
  for rows in 2 8; do one lm "$rows" 1024; done
fi
