#!/usr/bin/env bash
# scripts/bench-embed.sh — issue 9's embedding benchmark: llamagpu vs unmodified
# llama.cpp on the same synthetic encoder files.
#
#   1. synthesizes two bert models with `bin/llamagpu synth --arch bert` on bge's
#      WordPiece vocabulary (30522 tokens, ../shared/fixtures/tokenizer):
#        minilm  6 layers, 384 wide, 12 heads, FFN 1536 (all-MiniLM-L6-v2's shape)
#        bge     12 layers, 768 wide, 12 heads, FFN 3072 (bge-base-en-v1.5's shape)
#      in each --types type (cached in the work dir);
#   2. for each model, type and sequence length (32, 256 tokens: [CLS], random
#      ids, [SEP]) runs `llamagpu embed --bench-len L --batch B` for B in 1 and 64
#      and llama.cpp (node-llama-cpp 3.21.1's prebuilt CPU binary and its
#      embedding API, scripts/bench/llamacpp-embed.mjs) on the same file;
#   3. prints embeddings per second and the ratio ours / llama.cpp, with the
#      load average before each measurement.
#
# node-llama-cpp's embedding API embeds one text per call (there is no batch of
# several texts), so its "batch 64" is 64 calls: one llama.cpp number serves
# both batch sizes of a row.
#
# usage: scripts/bench-embed.sh [--types f16,q8_0] [--models minilm,bge] [--lens 32,256]
#          [--reps N] [--threads N] [--count-ll N] [--no-llamacpp] [--json OUT] [--work-dir DIR]
#   --count-ll   texts per llama.cpp repetition (default 16; it is slow per call)
# A script, not a test: numbers depend on the machine and on whatever else runs.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
LLAMAGPU_SHARED=${LLAMAGPU_SHARED:-$ROOT/../shared}
WORK=${LLAMAGPU_BENCH_DIR:-$ROOT/build/bench-embed}
BENCHDIR=$ROOT/scripts/bench
LG=$ROOT/bin/llamagpu
VOCAB=$LLAMAGPU_SHARED/fixtures/tokenizer/ggml-vocab-bert-bge.gguf
TYPES=f16
MODELS=minilm,bge
LENS=32,256
REPS=2
THREADS=2
COUNT_LL=16
NO_LLAMACPP=0
JSON_OUT=

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; }

while [ $# -gt 0 ]; do
	case "$1" in
	--types) TYPES=$2; shift 2 ;;
	--models) MODELS=$2; shift 2 ;;
	--lens) LENS=$2; shift 2 ;;
	--reps) REPS=$2; shift 2 ;;
	--threads) THREADS=$2; shift 2 ;;
	--count-ll) COUNT_LL=$2; shift 2 ;;
	--no-llamacpp) NO_LLAMACPP=1; shift ;;
	--json) JSON_OUT=$2; shift 2 ;;
	--work-dir) WORK=$2; shift 2 ;;
	-h|--help) usage; exit 0 ;;
	*) echo "bench-embed.sh: unknown option $1" >&2; usage >&2; exit 2 ;;
	esac
done

log() { echo "[$(date -u +%H:%M:%S)] $*" >&2; }
load() { cut -d' ' -f1 /proc/loadavg; }

mkdir -p "$WORK"
[ -f "$VOCAB" ] || { echo "bench-embed.sh: $VOCAB not found (set LLAMAGPU_SHARED)" >&2; exit 1; }
[ -x "$LG" ] || make -C "$ROOT" -s -j2 engine
if [ "$NO_LLAMACPP" = 0 ] && [ ! -f "$BENCHDIR/node_modules/node-llama-cpp/package.json" ]; then
	log "npm ci in scripts/bench (node-llama-cpp, prebuilt CPU binary)"
	(cd "$BENCHDIR" && NODE_LLAMA_CPP_SKIP_DOWNLOAD=true npm ci --omit=optional --ignore-scripts \
		--no-audit --no-fund --loglevel=error >&2)
fi
# a private copy of the binary: others may rebuild bin/llamagpu meanwhile
cp "$LG" "$WORK/llamagpu.bin"
LG=$WORK/llamagpu.bin
log "llamagpu $(sha256sum "$LG" | cut -c1-12); $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), $(nproc) CPUs"

shape() {
	case "$1" in
	minilm) echo "--dim 384 --layers 6 --heads 12 --ffn 1536" ;;
	bge) echo "--dim 768 --layers 12 --heads 12 --ffn 3072" ;;
	*) echo "bench-embed.sh: unknown model $1 (minilm, bge)" >&2; exit 2 ;;
	esac
}

RUNS=$WORK/runs.jsonl
: >"$RUNS"
printf '| model | type | tokens | batch | llamagpu emb/s | llama.cpp emb/s | ratio | load |\n'
printf '|---|---|---:|---:|---:|---:|---:|---:|\n'
for model in ${MODELS//,/ }; do
	for type in ${TYPES//,/ }; do
		file=$WORK/$model-$type.gguf
		if [ ! -f "$file" ]; then
			log "synth $model $type"
			# shellcheck disable=SC2046
			"$LG" synth --arch bert $(shape "$model") --ctx 512 --pooling cls --vocab-from "$VOCAB" \
				--type "$type" --seed 1 -o "$file" >&2
		fi
		for len in ${LENS//,/ }; do
			ll=null
			if [ "$NO_LLAMACPP" = 0 ]; then
				l0=$(load)
				log "llama.cpp $model $type len $len (load $l0)"
				out=$(cd "$BENCHDIR" && node llamacpp-embed.mjs -m "$file" -l "$len" -c "$COUNT_LL" -t "$THREADS" -r "$REPS")
				echo "{\"who\": \"llama.cpp\", \"model\": \"$model\", \"load\": $l0, \"run\": $out}" >>"$RUNS"
				ll=$(echo "$out" | python3 -c 'import json,sys; print("%.2f" % json.load(sys.stdin)["emb_per_s"])')
			fi
			for batch in 1 64; do
				l0=$(load)
				count=$([ "$batch" = 1 ] && echo 16 || echo 64)
				log "llamagpu $model $type len $len batch $batch (load $l0)"
				out=$("$LG" embed -m "$file" -t "$THREADS" --bench-len "$len" --batch "$batch" \
					--bench-count "$count" -r "$REPS")
				echo "{\"who\": \"llamagpu\", \"model\": \"$model\", \"load\": $l0, \"run\": $out}" >>"$RUNS"
				ours=$(echo "$out" | python3 -c 'import json,sys; print("%.2f" % json.load(sys.stdin)["emb_per_s"])')
				ratio=$([ "$ll" = null ] && echo "–" || python3 -c "print('%.1f×' % ($ours / $ll))")
				printf '| %s | %s | %s | %s | %s | %s | %s | %s |\n' "$model" "$type" "$len" "$batch" "$ours" \
					"$([ "$ll" = null ] && echo – || echo "$ll")" "$ratio" "$l0"
			done
		done
	done
done
[ -z "$JSON_OUT" ] || cp "$RUNS" "$JSON_OUT"
log "per-run records in $RUNS"
