#!/bin/sh
# run.sh — the GPU kernels and the GPU backend on the host emulator (no GPU,
# no CUDA): every kernels/*.cu with runtime.cu, graph.cu and blas.cu built
# as host C++ against tests/gpu_emu/gpu_compat.cuh (emu.mk), then
#   test_attention_emu   attention kernels vs the CPU backend
#   test_elem_emu        rmsnorm, rope, swiglu, add, kv_store, sample vs CPU
#   test_quant_emu       matmul (mmv, GEMM, cuBLAS path), get_rows, dequantize
#   test_quant_host      quants.cuh's index math alone
#   check_kernels        tests/gpu's checker (the one the real GPU run uses)
#   test_backend_emu.py  llamagpu --device cuda:0 vs --device cpu end to end
#
#   tests/gpu_emu/run.sh [quick]     exit status 0 = everything passed
cd "$(dirname "$0")/../.." || exit 1
mode=${1:-full}
start=$(date +%s)
make -s -f tests/gpu_emu/emu.mk -j2 all || { echo "FAIL: the emulated build"; exit 1; }
E=build/gpu_emu
fail=0
step() {
	name=$1
	shift
	t0=$(date +%s)
	if "$@" >"$E/$name.log" 2>&1; then
		echo "ok   $name ($(($(date +%s) - t0)) s)"
	else
		echo "FAIL $name ($(($(date +%s) - t0)) s): last lines of $E/$name.log:"
		grep -E 'FAIL|emu:|error' "$E/$name.log" | head -20
		tail -3 "$E/$name.log"
		fail=1
	fi
}
q=
[ "$mode" = quick ] && q=quick
# two lanes, one per core; each step logs to $E/<step>.log and prints one line
(
	step check_kernels $E/check_kernels $( [ -n "$q" ] && echo --quick )
	step test_attention_emu $E/test_attention_emu $q
	step test_quant_emu $E/test_quant_emu
	step test_quant_host $E/test_quant_host
	exit $fail
) &
lane=$!
step test_elem_emu $E/test_elem_emu $q
step test_backend_emu python3 tests/gpu_emu/test_backend_emu.py $q
wait $lane || fail=1
echo "gpu_emu: $( [ $fail = 0 ] && echo passed || echo FAILED ) in $(($(date +%s) - start)) s"
exit $fail
