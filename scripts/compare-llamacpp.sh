#!/usr/bin/env bash
# scripts/compare-llamacpp.sh — check that llamagpu agrees with an unmodified
# llama.cpp (node-llama-cpp 3.21.1's prebuilt CPU binary) beyond the shipped
# fixtures: both architectures, every weight type, real vocabularies, and
# prompts with non-ASCII text, digits, punctuation and ~200 tokens.
#
#   1. synthesizes small random-weight models with `bin/llamagpu synth`
#      (llama and qwen2, dim 256, 3 layers, 8 heads / 2 KV heads, ffn 768,
#      512-token byte vocabulary) in f32 f16 q8_0 q4_0 q4_1 q5_0 q5_1 q4_k
#      q5_k q6_k q4_k_m; plus, when $LLAMAGPU_SHARED/fixtures/tokenizer has them,
#      a llama model on the 32000-token llama-spm vocabulary and a qwen2 model
#      on the gpt-2 BPE vocabulary (both dim 64, tied embeddings); plus the real
#      fixtures/models/stories260K.gguf;
#   2. runs scripts/compare/compare.mjs on them, which compares tokenization,
#      24-token greedy continuations and teacher-forced next-token
#      distributions (F32 KV cache on both sides) and prints one line per model;
#   3. exits non-zero when a tokenization differs, a distribution differs
#      beyond the bound of its type family, or greedy ids diverge where the
#      top-2 margin is not a near-tie.
#
# usage: scripts/compare-llamacpp.sh [--types f32,q4_0,...] [--arch llama,qwen2]
#          [--no-extra] [--threads N] [--work-dir DIR] [--json OUT] [--llamagpu BIN]
#   --no-extra   only the synthesized byte-vocabulary models
#   --work-dir   where the models go (default build/compare)
# Needs node (>= 18) and scripts/bench/node_modules (`cd scripts/bench && npm ci`).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
LLAMAGPU_SHARED=${LLAMAGPU_SHARED:-$ROOT/../shared}
TYPES="f32,f16,q8_0,q4_0,q4_1,q5_0,q5_1,q4_k,q5_k,q6_k,q4_k_m"
ARCHS="llama,qwen2"
EXTRA=1
THREADS=2
WORK="$ROOT/build/compare"
JSON=""
BIN="$ROOT/bin/llamagpu"
while [ $# -gt 0 ]; do
	case "$1" in
	--types) TYPES=$2; shift 2 ;;
	--arch) ARCHS=$2; shift 2 ;;
	--no-extra) EXTRA=0; shift ;;
	--threads) THREADS=$2; shift 2 ;;
	--work-dir) WORK=$2; shift 2 ;;
	--json) JSON=$2; shift 2 ;;
	--llamagpu) BIN=$2; shift 2 ;;
	-h|--help) sed -n '2,25p' "$0"; exit 0 ;;
	*) echo "unknown option $1" >&2; exit 2 ;;
	esac
done

if [ ! -x "$BIN" ]; then
	echo "== make engine"
	make -C "$ROOT" -s engine
fi
if [ ! -d "$ROOT/scripts/bench/node_modules/node-llama-cpp" ]; then
	echo "== npm ci (scripts/bench)"
	(cd "$ROOT/scripts/bench" && npm ci --no-audit --no-fund)
fi
mkdir -p "$WORK"
# Copy the binary so that a rebuild during the run cannot mix builds.
cp "$BIN" "$WORK/llamagpu"
BIN="$WORK/llamagpu"

family() {
	case "$1" in
	f32) echo f32 ;;
	f16|bf16) echo f16 ;;
	q8_0) echo q8 ;;
	*) echo quant ;;
	esac
}

MODELS=()
synth() {  # label family file synth-args...
	local label=$1 fam=$2 file=$3; shift 3
	"$BIN" synth "$@" -o "$file.tmp" >/dev/null && mv "$file.tmp" "$file"
	MODELS+=("$label:$fam:$file")
}
echo "== synthesizing models in $WORK"
for arch in ${ARCHS//,/ }; do
	for t in ${TYPES//,/ }; do
		synth "$arch-$t" "$(family "$t")" "$WORK/$arch-$t.gguf" \
			--arch "$arch" --dim 256 --layers 3 --heads 8 --kv-heads 2 --ffn 768 \
			--vocab-bytes --vocab-size 512 --type "$t" --seed 5
	done
done
if [ "$EXTRA" = 1 ]; then
	tok="$LLAMAGPU_SHARED/fixtures/tokenizer"
	if [ -f "$tok/ggml-vocab-llama-spm.gguf" ]; then
		synth "llama-spm32k-f16" f16 "$WORK/llama-spm32k-f16.gguf" \
			--arch llama --dim 64 --layers 2 --heads 4 --kv-heads 2 --ffn 192 --tied \
			--vocab-from "$tok/ggml-vocab-llama-spm.gguf" --type f16 --seed 7
	fi
	if [ -f "$tok/ggml-vocab-gpt-2.gguf" ]; then
		synth "qwen2-gpt2bpe-q8_0" q8 "$WORK/qwen2-gpt2bpe-q8_0.gguf" \
			--arch qwen2 --dim 64 --layers 2 --heads 4 --kv-heads 2 --ffn 192 --tied \
			--vocab-from "$tok/ggml-vocab-gpt-2.gguf" --type q8_0 --seed 7
	fi
	st="$LLAMAGPU_SHARED/fixtures/models/stories260K.gguf"
	[ -f "$st" ] && MODELS+=("stories260K:f32:$st")
fi

echo "== comparing with llama.cpp (${#MODELS[@]} models)"
args=(--bin "$BIN" --threads "$THREADS")
[ -n "$JSON" ] && args+=(--json-out "$JSON")
node "$ROOT/scripts/compare/compare.mjs" "${args[@]}" "${MODELS[@]}"
