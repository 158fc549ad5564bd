#!/usr/bin/env bash
# scripts/bench-structured.sh — issue 6's benchmark: what structured output
# costs.  Builds bin/llamagpu, then runs scripts/bench-structured.py, which
# prints three tables on the real 32k-token Llama 2 vocabulary:
#
#   1. compile time per JSON Schema (JSONSchemaBench fixtures): p50/p99;
#   2. token mask time per decoding step (`llamagpu grammar bench` over
#      valid instances): p50/p99, cold and warm;
#   3. generation tokens/s through `llamagpu serve` on a random-weight model
#      with that vocabulary, unconstrained and with a JSON schema, one
#      request alone and a batch at once, and their ratio.
#
# usage: scripts/bench-structured.sh [options of scripts/bench-structured.py]
#   e.g. --dim 512 --layers 4 --type q8_0 --threads 2 --max-tokens 128 --batch 8
#        --schemas 100 (per dataset; --all for every schema) --mask-schemas 40
# A script, not a test: numbers depend on the machine and on whatever else runs.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
export LLAMAGPU_SHARED=${LLAMAGPU_SHARED:-$ROOT/../shared}
make -s -j"$(nproc)" engine >/dev/null
echo "== $(date -u '+%Y-%m-%d %H:%M UTC'), $(uname -m), $(nproc) CPUs: $(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1)"
exec python3 scripts/bench-structured.py "$@"
