#!/usr/bin/env bash
# scripts/demo.sh — from a fresh Debian 12 machine to an answer from SQL:
# install what is needed, build, install, start a throwaway cluster with
# llamagpu preloaded, register a model (the tiny real stories260K when
# ../shared has it, else one made by `llamagpu synth`), and ask it.
#
#   LLAMAGPU_KEEP_TMP=1 scripts/demo.sh   keeps the cluster's directory
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
. scripts/lib.sh

lg_install_deps
lg_build
lg_install
lg_cluster_start demo
trap lg_cluster_stop EXIT

if [ -n "$LG_MODEL" ]; then
	model=$LG_MODEL
	echo "== model: stories260K ($model)"
else
	echo "== $LG_MODEL_MISSING; making a random-weight model with llamagpu synth"
	model=$LG_TMP/models/synth.gguf
	bin/llamagpu synth --arch llama --dim 64 --layers 2 --heads 4 --kv-heads 2 --ffn 128 \
		--vocab-bytes --type f32 --seed 1 -o "$model"
	[ "$(id -u)" -eq 0 ] && chown postgres: "$model"
fi

lg_psql postgres -q <<SQL
CREATE EXTENSION llamagpu;
SET search_path = public, llamagpu;
SELECT name, architecture, parameters, quantization, context_length
FROM llm_register_model('demo', '$model');
SET llamagpu.default_model = 'demo';
\echo
\echo 'SELECT llm_generate(''Once upon a time'', max_tokens => 64, temperature => 0);'
SELECT llm_generate('Once upon a time', max_tokens => 64, temperature => 0);
SQL
