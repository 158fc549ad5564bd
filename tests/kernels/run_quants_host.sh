#!/bin/sh
# Host checks of kernels/ (no GPU needed):
#  1. quants_host: quants.cuh's dequantization and matrix-vector index math
#     against the CPU reference;
#  2. kernels_emu: the real kernel sources (mmv, gemm, get_rows, dequantize,
#     matmul dispatch) run through tests/kernels/emu.h, a thread per GPU
#     thread, against the CPU reference.
# Exit status 0 when everything passes.
set -e
cd "$(dirname "$0")/../.."
tmp=$(mktemp -d "${TMPDIR:-/tmp}/lg_kernels_host.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
CFL="-O2 -ffp-contract=off -Isrc/engine"
for f in lg_types quants quants_k; do
	cc -std=c11 $CFL -c src/engine/$f.c -o "$tmp/$f.o"
done
ENG="$tmp/lg_types.o $tmp/quants.o $tmp/quants_k.o"
CXX="c++ -std=c++20 $CFL -Wall -Wextra -Wno-unknown-pragmas -Ikernels -Itests/kernels"

$CXX tests/kernels/quants_host.cpp $ENG -lm -o "$tmp/quants_host"

# k<<<g, b, s, st>>>(a) -> lg_emu_launch(g, b, s, st, k, a)
objs=""
for f in mmv gemm get_rows dequantize matmul blas; do
	sed -E 's/([A-Za-z_][A-Za-z_0-9]*<[^<>]*>)<<<([^>]*)>>>\(/lg_emu_launch(\2, \1, /' kernels/$f.cu > "$tmp/$f.cpp"
	$CXX -Wno-unused-parameter -include emu.h -c "$tmp/$f.cpp" -o "$tmp/$f.o"
	objs="$objs $tmp/$f.o"
done
$CXX tests/kernels/kernels_emu.cpp $objs $ENG -lm -pthread -o "$tmp/kernels_emu"

status=0
"$tmp/quants_host" || status=1
"$tmp/kernels_emu" || status=1
exit $status
