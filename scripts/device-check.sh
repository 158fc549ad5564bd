#!/usr/bin/env bash
# scripts/device-check.sh — the GPU backend on a GPU machine, in one run of
# under 8 minutes: build, kernels against the CPU, logits and greedy text
# against the CPU, timings against the bandwidth limit.  For a fresh machine
# with CUDA (nvcc, cuBLAS) and python3, without PostgreSQL or network access;
# it installs nothing.
#
#   (a) build      make -f mk/standalone.mk GPU=cuda CUDA_ARCHS=90: engine,
#                  bin/llamagpu, build/gpu/check_kernels (no pg_config needed)
#   (b) kernels    build/gpu/check_kernels: every kernel vs the CPU backend
#   (c) logits     llamagpu eval with --device cpu and --device cuda:0 on
#                  stories260K and small synthetic models of every type: all
#                  logits compared (normalised error); greedy generation on
#                  stories260K must give the same text
#   (c2) embeddings llamagpu embed with --device cpu and --device cuda:0 on
#                  small synthetic encoders (bert F32 and F16, nomic-bert
#                  F16): vectors compared (max error, cosine) for one text
#                  at a time, a padded batch and cls pooling; then batch 1
#                  against batch 64 at 32 and 256 tokens on MiniLM- and
#                  bge-base-shaped F16 encoders (embeddings per second)
#   (d) timing     the synthetic 1.1B model (TinyLlama's shape) in F16, Q8_0
#                  and Q4_0: single-sequence decode, batched decode (8, 32,
#                  128 sequences), 512-token prompts; against the bandwidth
#                  limit (bytes read per token / measured D2D bandwidth) and
#                  the measured F16 GEMM rate (torch if importable, else cuBLAS)
#   (e) a summary table, printed last
#
# Every step has a time limit and a failure does not stop the later steps.
# Logs go to build/device-check/logs; with $OUT set (the device tool returns
# at most 8 files from it), $OUT gets summary.txt, build.log,
# check_kernels.log, bench-kernels.log and logs.tar.gz (everything).  Exit
# status 1 if any step failed.
#
# The GPU machine has no network and may lack pcre2's headers (the engine's
# one outside dependency); `scripts/device-check.sh --prepare`, run first on
# a machine with apt, puts libpcre2-dev (headers and static library) and the
# stories260K fixture into .devdeps/ (in .gitignore): name .devdeps in the
# device tool's carry, and this script uses what the machine lacks from there.
#
# Environment: LLAMAGPU_SHARED (default: ./shared, .devdeps/shared, ../shared) holds
# fixtures/models/stories260K.gguf; DEVICE (default cuda:0); CUDA_ARCHS
# (default 90); JOBS (default: nproc); DEVICE_CHECK_BUDGET seconds (default
# 450) after which the remaining timing runs are skipped; DEVICE_CHECK_ONLY
# (build, kernels, logits, embed or timing: that step only; every step but
# build then uses the bin/llamagpu already built, so DEVICE=cpu
# DEVICE_CHECK_ONLY=embed runs the embedding step on a machine without a GPU);
# LLAMAGPU_CLI (default bin/llamagpu): another binary for those steps, e.g.
# the GPU emulator's build/gpu_emu/llamagpu with DEVICE_CHECK_ONLY=embed.
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT" || exit 2
DEPS=$ROOT/.devdeps

if [ "${1:-}" = --prepare ]; then
	set -e
	mkdir -p "$DEPS/debs" "$DEPS/shared/fixtures/models"
	(cd "$DEPS/debs" && apt-get download libpcre2-dev)
	dpkg -x "$DEPS"/debs/libpcre2-dev_*.deb "$DEPS"
	# static only: a binary linked with it runs without the package
	rm -f "$DEPS"/usr/lib/*/libpcre2*.so
	src=${LLAMAGPU_SHARED:-$ROOT/../shared}/fixtures/models/stories260K.gguf
	[ -f "$src" ] && cp "$src" "$DEPS/shared/fixtures/models/"
	du -sh "$DEPS"
	echo "carry .devdeps with the device tool"
	exit 0
fi
START=$SECONDS
DEVICE=${DEVICE:-cuda:0}
CUDA_ARCHS=${CUDA_ARCHS:-90}
JOBS=${JOBS:-$(nproc)}
BUDGET=${DEVICE_CHECK_BUDGET:-450}
ONLY=${DEVICE_CHECK_ONLY:-}
LOG=$ROOT/build/device-check/logs
WORK=$ROOT/build/device-check/work
rm -rf "$LOG"
mkdir -p "$LOG" "$WORK"
SUMMARY=$LOG/summary.txt
: >"$SUMMARY"
CLI=${LLAMAGPU_CLI:-$ROOT/bin/llamagpu}
CHECK=$ROOT/build/gpu/check_kernels
PY=(python3 "$ROOT/scripts/device-check.py")
export PATH="$PATH:/usr/local/cuda/bin"

# One row of the summary: step, PASS/FAIL/SKIP/INFO, numbers.
row() {
	printf '%s|%s|%s\n' "$1" "$2" "$3" >>"$SUMMARY"
	printf '%s: %s  %s\n' "$2" "$1" "$3"
}

# Whether step $1 runs (all do unless DEVICE_CHECK_ONLY names one).
want() {
	[ -z "$ONLY" ] || [ "$ONLY" = "$1" ]
}

# Seconds left of the budget, for the optional timing runs.
time_left() {
	echo $((BUDGET - (SECONDS - START)))
}

SHARED=${LLAMAGPU_SHARED:-}
if [ -z "$SHARED" ]; then
	for d in "$ROOT/shared" "$DEPS/shared" "$ROOT/../shared"; do
		[ -f "$d/fixtures/models/stories260K.gguf" ] && { SHARED=$d; break; }
	done
fi
STORIES=${SHARED:+$SHARED/fixtures/models/stories260K.gguf}

echo "== device-check $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(hostname)"
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv,noheader 2>/dev/null |
	tee "$LOG/gpu.txt"
nvcc --version 2>/dev/null | tail -1 | tee -a "$LOG/gpu.txt"
df -h "$ROOT" | tail -1

# ---- (a) build --------------------------------------------------------------
echo "== (a) build"
# pcre2's header: the machine's, else the carried one (static library beside it)
make_extra=()
if ! printf '#define PCRE2_CODE_UNIT_WIDTH 8\n#include <pcre2.h>\n' | cc -E -x c - >/dev/null 2>&1; then
	if [ -f "$DEPS/usr/include/pcre2.h" ]; then
		libdir=$DEPS/usr/lib
		for a in "$DEPS"/usr/lib/*/libpcre2-8.a; do libdir=$(dirname "$a"); done
		make_extra=(ENGINE_CC="cc -I$DEPS/usr/include -L$libdir")
		echo "pcre2: the carried copy in $DEPS"
	else
		echo "pcre2.h is missing: run scripts/device-check.sh --prepare where apt works, and carry .devdeps"
	fi
fi
t0=$SECONDS
if ! want build; then
	built=0
	[ -x "$CLI" ] && built=1
	echo "DEVICE_CHECK_ONLY=$ONLY: no build; $CLI $([ $built = 1 ] && echo is there || echo is missing)"
elif timeout 420 make -s -j"$JOBS" -f mk/standalone.mk GPU=cuda CUDA_ARCHS="$CUDA_ARCHS" "${make_extra[@]}" all >"$LOG/build.log" 2>&1; then
	row "build sm_$CUDA_ARCHS" PASS "$((SECONDS - t0)) s; $(grep -ci warning "$LOG/build.log") warning lines"
	built=1
else
	grep -E 'error|Error' "$LOG/build.log" | head -30
	tail -15 "$LOG/build.log"
	row "build sm_$CUDA_ARCHS" FAIL "$((SECONDS - t0)) s; see build.log"
	built=0
fi

# ---- (b) kernels vs the CPU backend ----------------------------------------------
echo "== (b) check_kernels"
if ! want kernels; then
	:
elif [ $built = 1 ] && [ -x "$CHECK" ]; then
	t0=$SECONDS
	timeout 240 "$CHECK" >"$LOG/check_kernels.log" 2>&1
	rc=$?
	grep -E '^(FAIL|SKIP)|^device ' "$LOG/check_kernels.log" | head -60
	counts=$(tail -1 "$LOG/check_kernels.log")
	if [ $rc -eq 0 ] && grep -q '^SKIP: no GPU' "$LOG/check_kernels.log"; then
		row "kernels vs cpu" FAIL "the checker found no GPU: $(head -1 "$LOG/check_kernels.log")"
	elif [ $rc -eq 0 ]; then
		row "kernels vs cpu" PASS "$counts; $((SECONDS - t0)) s"
	else
		row "kernels vs cpu" FAIL "rc $rc; $counts; see check_kernels.log"
	fi
else
	row "kernels vs cpu" SKIP "not built"
fi

# ---- (c) logits and greedy text: CPU vs GPU ---------------------------------------
echo "== (c) logits"
# run one llamagpu subcommand on the CPU and on DEVICE, then compare the two
# JSON outputs with device-check.py's KIND check: compare_on_devices KIND LABEL BOUND
# SUBCOMMAND ARGS... (a row "KIND LABEL")
compare_on_devices() {
	local kind=$1 label=$2 bound=$3 sub=$4 tag rc out
	shift 4
	tag=$(printf '%s' "$label" | tr -c 'a-zA-Z0-9_.-' '_')
	for dev in cpu "$DEVICE"; do
		if ! timeout 60 "$CLI" "$sub" --device "$dev" "$@" \
				>"$WORK/$kind-$tag-${dev%%:*}.json" 2>"$LOG/$kind-$tag-${dev%%:*}.err"; then
			row "$kind $label" FAIL "$sub --device $dev failed: $(head -c 300 "$LOG/$kind-$tag-${dev%%:*}.err")"
			return
		fi
	done
	out=$("${PY[@]}" "$kind" "$WORK/$kind-$tag-cpu.json" "$WORK/$kind-$tag-${DEVICE%%:*}.json" "$bound")
	rc=$?
	row "$kind $label" "$([ $rc -eq 0 ] && echo PASS || echo FAIL)" "$out"
}

# eval on both devices with every logit listed: compare_logits NAME MODEL VOCAB BOUND IDS KV
compare_logits() {
	compare_on_devices logits "$1" "$4" eval -m "$2" --ids "$5" --top "$3" --kv "$6" --json
}

# a prompt of n ids below vocab, the same every run
ids_of() {
	python3 -c "import random; r = random.Random($3); print(','.join(['1'] + [str(r.randrange(3, $2)) for _ in range($1 - 1)]))"
}

if ! want logits; then
	:
elif [ $built = 1 ]; then
	if [ -n "$STORIES" ] && [ -f "$STORIES" ]; then
		ids=$(ids_of 48 512 7)
		compare_logits "stories260K kv=f32" "$STORIES" 512 1e-4 "$ids" f32
		compare_logits "stories260K kv=f16" "$STORIES" 512 2e-3 "$ids" f16
		# greedy text: identical on both devices
		for p in "Once upon a time" "The little dog"; do
			tag=$(printf '%s' "$p" | tr -c 'a-zA-Z0-9' '_')
			ok=1
			for dev in cpu "$DEVICE"; do
				timeout 60 "$CLI" generate -m "$STORIES" -p "$p" -n 96 --temp 0 --device "$dev" --json \
					>"$WORK/gen-$tag-${dev%%:*}.json" 2>"$LOG/gen-$tag-${dev%%:*}.err" || ok=0
			done
			if [ $ok = 0 ]; then
				row "greedy \"$p\"" FAIL "generate failed: $(cat "$LOG"/gen-"$tag"-*.err | head -c 300)"
			else
				if out=$("${PY[@]}" ids "$WORK/gen-$tag-cpu.json" "$WORK/gen-$tag-${DEVICE%%:*}.json"); then
					row "greedy \"$p\"" PASS "$out"
				else
					row "greedy \"$p\"" FAIL "$out"
				fi
			fi
		done
	else
		row "logits stories260K" SKIP "no stories260K.gguf (set LLAMAGPU_SHARED, or put fixtures in ./shared)"
	fi

	# synthetic models: every type, llama (head_dim 64) and qwen2 (bias, NeoX RoPE, head_dim 128);
	# bounds: F32 as the kernels, F16/BF16 where the CPU rounds activations, quantized where
	# the CPU quantizes them to Q8 and the difference grows through the layers
	for spec in "llama f32 1e-4" "llama f16 5e-3" "llama bf16 2e-2" "llama q8_0 5e-2" "llama q4_0 5e-2" \
			"llama q4_1 5e-2" "llama q5_0 5e-2" "llama q5_1 5e-2" "llama q2_k 5e-2" "llama q3_k 5e-2" \
			"llama q4_k 5e-2" "llama q5_k 5e-2" "llama q6_k 5e-2" "llama q4_k_m 5e-2" "qwen2 f16 5e-3" "qwen2 q4_k 5e-2"; do
		read -r arch type bound <<<"$spec"
		if [ "$arch" = qwen2 ]; then shape=(--dim 512 --heads 4 --kv-heads 2); else shape=(--dim 256 --heads 4 --kv-heads 2); fi
		model=$WORK/synth-$arch-$type.gguf
		if ! timeout 60 "$CLI" synth --arch "$arch" "${shape[@]}" --layers 3 --ffn 768 --vocab-bytes --vocab-size 1000 \
				--type "$type" --seed 11 -o "$model" >"$LOG/synth-$arch-$type.log" 2>&1; then
			row "logits synth $arch $type" FAIL "synth failed: $(tail -1 "$LOG/synth-$arch-$type.log")"
			continue
		fi
		compare_logits "synth $arch $type" "$model" 1000 "$bound" "$(ids_of 40 1000 3)" f16
	done
else
	row "logits" SKIP "not built"
fi

# ---- (c2) embeddings: CPU vs GPU vectors, batch 1 vs 64 ----------------------------
echo "== (c2) embeddings"
ENC_TEXTS=("hello world" "a" "the quick brown fox jumps over the lazy dog, twice!" "embeddings: 42 + 7 = 49" "x y z")
# embed the texts on both devices with these options: compare_embed NAME MODEL BOUND OPTIONS...
compare_embed() {
	local name=$1 model=$2 bound=$3
	shift 3
	compare_on_devices embed "$name $*" "$bound" embed -m "$model" --json "$@" "${ENC_TEXTS[@]}"
}

# embeddings per second of `embed --bench-len` on DEVICE (prints the number, or nothing)
embed_rate() {
	local model=$1 len=$2 batch=$3 count=$4 tag=$5
	timeout 90 "$CLI" embed -m "$model" --bench-len "$len" --batch "$batch" --bench-count "$count" -r 2 \
		--device "$DEVICE" >"$LOG/embed-bench-$tag.json" 2>"$LOG/embed-bench-$tag.log" &&
		"${PY[@]}" field "$LOG/embed-bench-$tag.json" emb_per_s
}

if ! want embed; then
	:
elif [ $built = 1 ]; then
	# vectors: bounds as tests/gpu_emu/test_backend_emu.py's (F32 the same math up to
	# summation order; F16 where the CPU rounds activations to f16 for its dot products)
	for spec in "bert f32 5e-6" "bert f16 5e-4" "nomic-bert f16 5e-4"; do
		read -r arch type bound <<<"$spec"
		model=$WORK/enc-$arch-$type.gguf
		if ! timeout 60 "$CLI" synth --arch "$arch" --dim 256 --layers 2 --heads 4 --ffn 512 --ctx 512 --vocab-wpm \
				--pooling mean --type "$type" --seed 7 -o "$model" >"$LOG/synth-enc-$arch-$type.log" 2>&1; then
			row "embed $arch $type" FAIL "synth failed: $(tail -1 "$LOG/synth-enc-$arch-$type.log")"
			continue
		fi
		compare_embed "$arch $type" "$model" "$bound" --batch 1
		compare_embed "$arch $type" "$model" "$bound" --batch 64
		compare_embed "$arch $type" "$model" "$bound" --pooling cls --batch 64
	done
	# timing: MiniLM- and bge-base-shaped F16 encoders (scripts/bench-embed.sh's shapes),
	# batch 1 against batch 64 at 32 and 256 tokens
	for spec in "minilm 384 6 1536 mean" "bge 768 12 3072 cls"; do
		read -r name dim layers ffn pool <<<"$spec"
		if [ "$(time_left)" -lt 60 ]; then
			row "embed timing $name" SKIP "time budget of ${BUDGET} s spent"
			continue
		fi
		model=$WORK/enc-$name-f16.gguf
		if ! timeout 90 "$CLI" synth --arch bert --dim "$dim" --layers "$layers" --heads 12 --ffn "$ffn" --ctx 512 \
				--vocab-wpm --pooling "$pool" --type f16 --seed 1 -o "$model" >"$LOG/synth-$name.log" 2>&1; then
			row "embed timing $name" FAIL "synth failed: $(tail -1 "$LOG/synth-$name.log")"
			continue
		fi
		for len in 32 256; do
			few=$([ "$len" -le 64 ] && echo 32 || echo 16)
			r1=$(embed_rate "$model" "$len" 1 "$few" "$name-$len-b1")
			r64=$(embed_rate "$model" "$len" 64 128 "$name-$len-b64")
			if [ -n "$r1" ] && [ -n "$r64" ]; then
				ratio=$(python3 -c 'import sys; print("%.1f" % (float(sys.argv[2]) / float(sys.argv[1])))' "$r1" "$r64")
				row "embed $name f16 L$len" INFO "batch 1: $r1 emb/s, batch 64: $r64 emb/s (${ratio}x) on $DEVICE"
			else
				row "embed $name f16 L$len" FAIL "embed --bench-len failed: $(cat "$LOG"/embed-bench-"$name-$len"-*.log | head -c 300)"
			fi
		done
		rm -f "$model"
	done
else
	row "embeddings" SKIP "not built"
fi

# ---- (d) timing ----------------------------------------------------------------------
echo "== (d) timing"
d2d=0
gemm=0
if ! want timing; then
	:
elif [ $built = 1 ]; then
	if timeout 120 "$CHECK" --bench >"$LOG/bench-kernels.log" 2>&1; then :; fi
	grep '^BENCH' "$LOG/bench-kernels.log"
	d2d=$(sed -n 's/^BENCH d2d_GBps=\([0-9.]*\).*/\1/p' "$LOG/bench-kernels.log")
	d2d=${d2d:-0}
	gemm_cublas=$(sed -n 's/^BENCH gemm_f16 .*TFLOPs=\([0-9.]*\).*/\1/p' "$LOG/bench-kernels.log")
	# the card's F16 GEMM rate: torch (cuBLAS, tuned) when importable
	gemm_torch=$(timeout 90 python3 - 2>"$LOG/gemm-torch.err" <<'EOF'
import torch
a = torch.randn(4096, 4096, device="cuda", dtype=torch.float16)
b = torch.randn(4096, 4096, device="cuda", dtype=torch.float16)
for _ in range(5):
    a @ b
torch.cuda.synchronize()
s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
times = []
for _ in range(7):
    s.record()
    for _ in range(20):
        a @ b
    e.record()
    e.synchronize()
    times.append(s.elapsed_time(e) / 20)
times.sort()
print("%.1f" % (2 * 4096 ** 3 / (times[3] / 1e3) / 1e12))
EOF
)
	if [ -n "$gemm_torch" ]; then
		gemm=$gemm_torch
		row "f16 gemm rate" INFO "torch 4096^3: $gemm_torch TFLOP/s; lg_gpu_matmul: ${gemm_cublas:-?} TFLOP/s"
	elif [ -n "$gemm_cublas" ]; then
		gemm=$gemm_cublas
		row "f16 gemm rate" INFO "lg_gpu_matmul (cuBLAS) 4096^3: $gemm_cublas TFLOP/s (torch not importable)"
	else
		row "f16 gemm rate" FAIL "neither torch nor check_kernels --bench measured it"
	fi
	if [ "$d2d" = 0 ]; then
		row "d2d bandwidth" FAIL "check_kernels --bench did not measure it; see bench-kernels.log"
	else
		row "d2d bandwidth" INFO "$d2d GB/s (read + write)"
	fi

	avail=$(df -Pk "$WORK" | awk 'NR == 2 {print $4}')
	for type in f16 q8_0 q4_0; do
		if [ "$(time_left)" -lt 60 ]; then
			row "timing $type" SKIP "time budget of ${BUDGET} s spent"
			continue
		fi
		# 2.2 GB for F16: make sure the disk has it (and some room to spare)
		if [ "${avail:-0}" -lt 3000000 ]; then
			row "timing $type" SKIP "less than 3 GB free on $(df -P "$WORK" | awk 'NR == 2 {print $6}')"
			continue
		fi
		model=$WORK/tiny-1.1b-$type.gguf
		t0=$SECONDS
		if ! timeout 90 "$CLI" synth --arch llama --dim 2048 --layers 22 --heads 32 --kv-heads 4 --ffn 5632 \
				--vocab-bytes --vocab-size 32000 --ctx 2048 --type "$type" --seed 1 -o "$model" \
				>"$LOG/synth-1.1b-$type.log" 2>&1; then
			row "timing $type" FAIL "synth failed: $(tail -1 "$LOG/synth-1.1b-$type.log")"
			rm -f "$model"
			continue
		fi
		echo "synth 1.1B $type: $((SECONDS - t0)) s, $(du -h "$model" | cut -f1)"
		for run in "tg1:-p 0 -n 64 -r 3" "tg8:-p 0 -n 32 -s 8 -r 2" "tg32:-p 0 -n 32 -s 32 -r 2" \
				"tg128:-p 0 -n 32 -s 128 -r 2" "pp512:-p 512 -n 0 -r 3"; do
			name=${run%%:*}
			read -ra args <<<"${run#*:}"
			timeout 60 "$CLI" bench -m "$model" "${args[@]}" --device "$DEVICE" --json \
				>"$LOG/bench-$type-$name.json" 2>"$LOG/bench-$type-$name.log" ||
				echo "bench $type $name failed: $(head -c 300 "$LOG/bench-$type-$name.log")"
		done
		"${PY[@]}" perf "$type" "$d2d" "$gemm" "$LOG" | while IFS='|' read -r s r n; do row "$s" "$r" "$n"; done
		rm -f "$model"
	done
else
	row "timing" SKIP "not built"
fi

# ---- (e) summary, last ------------------------------------------------------------------
echo
echo "== summary ($((SECONDS - START)) s; logs in $LOG)"
awk -F'|' '{ printf "%-28s %-5s %s\n", $1, $2, $3 }' "$SUMMARY"
n_fail=$(grep -c '|FAIL|' "$SUMMARY")
echo "$(grep -c '|PASS|' "$SUMMARY") passed, $n_fail failed, $(grep -c '|SKIP|' "$SUMMARY") skipped"
if [ -n "${OUT:-}" ]; then
	mkdir -p "$OUT"
	for f in build.log check_kernels.log bench-kernels.log; do
		[ -f "$LOG/$f" ] && cp "$LOG/$f" "$OUT/"
	done
	cp "$SUMMARY" "$OUT/summary.txt"
	tar czf "$OUT/logs.tar.gz" -C "$LOG" . 2>/dev/null
fi
[ "$n_fail" -eq 0 ]
