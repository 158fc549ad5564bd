#!/bin/sh
# Build and run the host check of kernels/quants.cuh (no GPU needed).
set -e
cd "$(dirname "$0")/../.."
out=${TMPDIR:-/tmp}/lg_quants_host.$$
cc -std=c11 -O2 -ffp-contract=off -Isrc/engine -c src/engine/lg_types.c -o "$out.t.o"
cc -std=c11 -O2 -ffp-contract=off -Isrc/engine -c src/engine/quants.c -o "$out.q.o"
cc -std=c11 -O2 -ffp-contract=off -Isrc/engine -c src/engine/quants_k.c -o "$out.k.o"
c++ -std=c++17 -O2 -Wall -Wextra -Wno-unknown-pragmas -ffp-contract=off -Isrc/engine -Ikernels tests/kernels/quants_host.cpp \
	"$out.t.o" "$out.q.o" "$out.k.o" -lm -o "$out"
status=0
"$out" || status=$?
rm -f "$out" "$out.t.o" "$out.q.o" "$out.k.o"
exit $status
