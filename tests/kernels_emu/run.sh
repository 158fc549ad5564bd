#!/bin/sh
# run.sh — build the small kernels for the CPU emulator (cuda_emu.h) and
# compare them with the CPU backend and sampler.  Needs only g++ and the
# engine library (make engine); no CUDA, no GPU.  Exit status 0 = passed.
set -e
cd "$(dirname "$0")/../.."
OUT=${EMU_BUILD:-build/kernels_emu}
CXX=${CXX:-g++}
CC=${CC:-cc}
mkdir -p "$OUT"
[ -f build/engine/libllamagpu_engine.a ] || make -s build/engine/libllamagpu_engine.a
FLAGS="-O2 -g -Wall -Wno-unknown-pragmas -Wno-comment -Ikernels -Isrc/engine -Itests/kernels_emu"
OBJS=""
for op in rmsnorm rope swiglu add kv_store sample; do
	python3 tests/kernels_emu/rewrite.py kernels/$op.cu "$OUT/$op.cpp"
	$CXX -std=c++17 $FLAGS -c "$OUT/$op.cpp" -o "$OUT/$op.o"
	OBJS="$OBJS $OUT/$op.o"
done
$CXX -std=c++17 $FLAGS -c tests/kernels_emu/emu.cpp -o "$OUT/emu.o"
$CC -std=c11 $FLAGS -D_GNU_SOURCE -c tests/kernels_emu/test_kernels_emu.c -o "$OUT/test_kernels_emu.o"
$CXX -o "$OUT/test_kernels_emu" "$OUT/test_kernels_emu.o" $OBJS "$OUT/emu.o" \
	build/engine/libllamagpu_engine.a $(pcre2-config --libs8 2>/dev/null || echo -lpcre2-8) -lm -pthread
"$OUT/test_kernels_emu"
