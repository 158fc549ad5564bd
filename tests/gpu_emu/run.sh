#!/bin/sh
# Build the attention kernels for the host emulator (no GPU, no CUDA) and
# run their test against the CPU backend.
#   tests/gpu_emu/run.sh [quick]
set -e
cd "$(dirname "$0")/../.."
make -s build/engine/libllamagpu_engine.a
out=build/gpu_emu
mkdir -p $out/src
python3 tests/gpu_emu/prep.py $out/src kernels/common.cuh kernels/lg_kernels.h kernels/attention.cuh \
	kernels/attention.cu kernels/attention_decode.cu kernels/attention_prompt.cu kernels/attention_prompt_tc.cu
cp tests/gpu_emu/gpu_compat.cuh $out/src/
CXX=${CXX:-g++}
FLAGS="-std=c++17 -O1 -g -Wall -Wno-unknown-pragmas -fno-strict-aliasing -I$out/src -Isrc/engine"
objs=
for f in attention attention_decode attention_prompt attention_prompt_tc; do
	$CXX $FLAGS -x c++ -c $out/src/$f.cu -o $out/$f.o
	objs="$objs $out/$f.o"
done
$CXX $FLAGS -c tests/gpu_emu/emu.cc -o $out/emu.o
$CXX $FLAGS -c tests/gpu_emu/test_attention_emu.cc -o $out/test_attention_emu.o
$CXX -o $out/test_attention_emu $out/test_attention_emu.o $out/emu.o $objs \
	build/engine/libllamagpu_engine.a $(pcre2-config --libs8 2>/dev/null || echo -lpcre2-8) -lm -pthread
exec $out/test_attention_emu "$@"
