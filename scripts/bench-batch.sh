#!/usr/bin/env bash
# scripts/bench-batch.sh — issue 5's benchmark: generation from SQL, one
# request at a time against the ways of sending many at once.
#
#   1. takes a model (default: a random-weight model with TinyLlama-1.1B's
#      shape in Q4_0, synthesized as scripts/bench-cpu.sh does, cached in the
#      work dir) and starts a throwaway cluster with the extension (built and
#      installed first, scripts/lib.sh);
#   2. makes a table of N prompts of about 60 tokens each; every request is
#      greedy, max_tokens new tokens, end-of-sequence banned (logit_bias), so
#      every request generates exactly max_tokens tokens;
#   3. times (a) sequential `SELECT llm_generate(p) FROM t`, (b) one
#      llm_generate_batch(array_agg(p)), (c) a table job, (d) CLIENTS
#      concurrent pgbench clients, one prompt per transaction;
#   4. then the same prompts behind one shared ~200-token instruction, as
#      (b), with the engine's prefix cache and without (--no-prefix-cache in
#      llamagpu.engine_options);
#   5. prints generated tokens/s, the ratio to (a), the prefix-cache hit rate
#      from llm_stat_engine, and for (d) the time to first token: p50/p95 of
#      statement start to the first piece of llm_generate_stream, as each
#      client saw it (queueing included), with pgbench's mean latency.
#
# usage: scripts/bench-batch.sh [--model FILE] [--n N] [--max-tokens N] [--clients N]
#          [--threads N] [--batch-size N] [--quick] [--work-dir DIR] [--keep]
#   --model       a GGUF file to use instead of the synthesized one
#   --n           prompts (default 256)
#   --max-tokens  new tokens per prompt (default 32)
#   --clients     pgbench clients for (d) (default 16)
#   --threads     llamagpu.threads (default: the number of CPUs)
#   --batch-size  the table job's batch size (default 64)
#   --quick       a smoke test: stories260K from ../shared, N 32, 16 tokens, 4 clients
#   --keep        keep the cluster's directory (its server.log) afterwards
# A script, not a test: numbers depend on the machine and on whatever else runs.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
. scripts/lib.sh
WORK=${LLAMAGPU_BENCH_DIR:-$ROOT/build/bench}
MODEL=
N=256
MAX_TOKENS=32
CLIENTS=16
THREADS=$(nproc)
BATCH_SIZE=64
QUICK=0

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; }
log() { echo "bench-batch: $*" >&2; }

while [ $# -gt 0 ]; do
	case "$1" in
	--model) MODEL=$(realpath "$2"); shift 2 ;;
	--n) N=$2; N_SET=1; shift 2 ;;
	--max-tokens) MAX_TOKENS=$2; MT_SET=1; shift 2 ;;
	--clients) CLIENTS=$2; CL_SET=1; shift 2 ;;
	--threads) THREADS=$2; shift 2 ;;
	--batch-size) BATCH_SIZE=$2; shift 2 ;;
	--work-dir) WORK=$2; shift 2 ;;
	--quick) QUICK=1; shift ;;
	--keep) export LLAMAGPU_KEEP_TMP=1; shift ;;
	-h | --help) usage; exit 0 ;;
	*) echo "bench-batch.sh: unknown option $1 (try --help)" >&2; exit 2 ;;
	esac
done
if [ "$QUICK" = 1 ]; then
	[ -n "$MODEL" ] || MODEL=$LLAMAGPU_SHARED/fixtures/models/stories260K.gguf
	[ "${N_SET:-0}" = 1 ] || N=32
	[ "${MT_SET:-0}" = 1 ] || MAX_TOKENS=16
	[ "${CL_SET:-0}" = 1 ] || CLIENTS=4
fi
case "$N$MAX_TOKENS$CLIENTS$THREADS$BATCH_SIZE" in
*[!0-9]*) echo "bench-batch.sh: --n/--max-tokens/--clients/--threads/--batch-size take numbers" >&2; exit 2 ;;
esac
[ "$N" -ge "$CLIENTS" ] || { echo "bench-batch.sh: --n must be at least --clients" >&2; exit 2; }
mkdir -p "$WORK"
WORK=$(cd "$WORK" && pwd)

# --- build, model, cluster -------------------------------------------------
lg_build >&2
lg_install >&2
LG=$ROOT/bin/llamagpu
if [ -z "$MODEL" ]; then
	MODEL=$WORK/tinyllama-1.1b-q4_0.gguf
	if [ ! -s "$MODEL" ]; then
		VOCAB=$LLAMAGPU_SHARED/fixtures/tokenizer/ggml-vocab-llama-spm.gguf
		if [ -f "$VOCAB" ]; then VOCAB_ARGS=(--vocab-from "$VOCAB"); else VOCAB_ARGS=(--vocab-bytes --vocab-size 32000); fi
		log "synth q4_0 -> $MODEL"
		"$LG" synth --arch llama --dim 2048 --layers 22 --heads 32 --kv-heads 4 --ffn 5632 \
			"${VOCAB_ARGS[@]}" --type q4_0 --seed 1 -t "$THREADS" -o "$MODEL.tmp"
		mv "$MODEL.tmp" "$MODEL"
	fi
fi
[ -r "$MODEL" ] || { echo "bench-batch.sh: cannot read model $MODEL" >&2; exit 1; }

lg_cluster_start bench >&2
trap lg_cluster_stop EXIT
# the model where the server's OS user can read it (a link when possible)
ln -f "$MODEL" "$LG_TMP/models/bench.gguf" 2>/dev/null || cp "$MODEL" "$LG_TMP/models/bench.gguf"
[ "$(id -u)" -eq 0 ] && chown postgres: "$LG_TMP/models/bench.gguf"
cat >>"$LG_TMP/data/postgresql.conf" <<CONF
llamagpu.threads = $THREADS
max_connections = $((CLIENTS + 20))
CONF
lg_run_as_pg "'$LG_BINDIR/pg_ctl' -D '$LG_TMP/data' -l '$LG_TMP/server.log' -w restart >/dev/null"

psql_q() { lg_psql postgres -qAt "$@"; }
now() { date +%s.%N; }
# seconds since $1
since() { echo "$(now) - $1" | bc -l; }

psql_q <<SQL
CREATE EXTENSION llamagpu;
ALTER DATABASE postgres SET search_path = public, llamagpu;
SELECT FROM llamagpu.llm_register_model('bench', '$LG_TMP/models/bench.gguf');
SQL

# --- prompts ----------------------------------------------------------------
# ~55 words (~60 tokens with a Llama vocabulary) from a fixed word list, different for every row
psql_q <<SQL
CREATE TABLE words (w text[]);
INSERT INTO words VALUES ('{the,small,river,green,house,because,every,morning,teacher,quickly,mountain,
	letter,under,bright,window,people,garden,slowly,question,between,yellow,animal,school,never,
	listen,story,winter,number,happy,across,together,market,little,answer,evening,always,city,
	kitchen,before,friend}');
CREATE TABLE prompts (id int PRIMARY KEY, p text, out text);
INSERT INTO prompts (id, p)
SELECT i, 'Item ' || i || ': ' || (SELECT string_agg(w[1 + (i * 7 + k * 13 + k * k) % 40], ' ' ORDER BY k)
								   FROM words, generate_series(1, 55) k)
FROM generate_series(1, $N) i;
CREATE TABLE prompts_shared (id int PRIMARY KEY, p text, out text);
INSERT INTO prompts_shared
SELECT id, 'You are a careful assistant. ' ||
		   repeat('Read the item below, keep its meaning, answer in plain words, and never add facts. ', 10) ||
		   E'\n' || p
FROM prompts;
CREATE TABLE ttft (ms float8);
SQL
EOS_BAN='{"logit_bias": {"2": -100}}'
GEN="'bench', max_tokens => $MAX_TOKENS, temperature => 0, options => '$EOS_BAN'"
TOK=$(psql_q -c "SELECT round(avg(llm_count_tokens(prompts.p, 'bench'))) || ' ' || round(avg(llm_count_tokens(s.p, 'bench')))
				 FROM prompts JOIN prompts_shared s USING (id)")
read -r PTOK STOK <<<"$TOK"
TOTAL=$((N * MAX_TOKENS))
log "model $MODEL, $N prompts of ~$PTOK tokens (~$STOK with the shared instruction), $MAX_TOKENS new tokens each, $THREADS threads"

# the engine's counters (empty without a scheduler)
engine_stat() { psql_q -c "SELECT coalesce(round(prefix_hit_rate::numeric, 3)::text, 'n/a') || ' ' ||
								 coalesce(round(avg_batch_fill::numeric, 3)::text, 'n/a')
							FROM llm_stat_engine WHERE model = 'bench'" || echo "n/a n/a"; }
# restart the engine with other options and wait for it
engine_options() {
	local old
	old=$(psql_q -c "SELECT coalesce(pid, 0) FROM llm_engine_status()")
	psql_q -c "ALTER SYSTEM SET llamagpu.engine_options = '$1'" -c "SELECT pg_reload_conf()" >/dev/null
	for _ in $(seq 1 200); do
		[ "$(psql_q -c "SELECT coalesce(pid, 0) <> $old AND state = 'running' FROM llm_engine_status()")" = t ] && break
		sleep 0.1
	done
	psql_q -c "SELECT llm_load_model('bench')" >/dev/null
}

# start a run from a freshly loaded model: an empty prefix cache (an earlier
# run's prompts must not make a later one look fast) and zeroed counters
cold() { psql_q -c "SELECT llm_unload_model('bench')" -c "SELECT llm_load_model('bench')" >/dev/null; }
# share of the shared instruction's prompt work the prefix cache skipped:
# prefix-hit tokens / (prompts x instruction tokens)
prefix_skipped() { psql_q -c "SELECT coalesce(round(prefix_hit_tokens::numeric / ($N * $((STOK - PTOK))), 3)::text, 'n/a')
							  FROM llm_stat_engine WHERE model = 'bench'" || echo n/a; }

RESULTS=()
# record NAME SECONDS [NOTE]
record() {
	local tps
	tps=$(echo "$TOTAL / $2" | bc -l)
	[ -z "${BASE_TPS:-}" ] && BASE_TPS=$tps
	RESULTS+=("$(printf '%-42s %9.2f s %10.1f tok/s  x%-6.2f %s' "$1" "$2" "$tps" \
		"$(echo "$tps / $BASE_TPS" | bc -l)" "${3:-}")")
	log "${RESULTS[-1]}"
}

psql_q -c "SELECT llm_load_model('bench')" >/dev/null
# warm-up: the model's pages in memory, the first request's costs out of the way
psql_q -c "SELECT llm_generate(p, $GEN) FROM prompts WHERE id = 1" >/dev/null

# (a) sequential
cold
t0=$(now)
psql_q -c "UPDATE prompts SET out = llm_generate(p, $GEN)"
record "(a) sequential llm_generate" "$(since "$t0")"

# (b) one batch
cold
t0=$(now)
psql_q -c "SELECT count(*) FROM llm_generate_batch((SELECT array_agg(p ORDER BY id) FROM prompts), $GEN)" >/dev/null
record "(b) llm_generate_batch" "$(since "$t0")" "engine: hit rate/batch fill $(engine_stat)"

# (c) a table job
psql_q -c "UPDATE prompts SET out = NULL" >/dev/null
cold
t0=$(now)
psql_q -c "SELECT llm_job_create('bench', 'prompts', 'id', 'p', 'prompts', 'out', 'bench',
		   '{\"max_tokens\": $MAX_TOKENS, \"temperature\": 0, \"batch_size\": $BATCH_SIZE, \"logit_bias\": {\"2\": -100}}')" >/dev/null
while [ "$(psql_q -c "SELECT state FROM llm_stat_jobs WHERE name = 'bench'")" = running ]; do sleep 0.2; done
record "(c) table job (batch_size $BATCH_SIZE)" "$(since "$t0")" \
	"$(psql_q -c "SELECT state || ', ' || rows_done || ' rows' FROM llm_stat_jobs WHERE name = 'bench'")"

# (d) concurrent clients, one prompt per transaction, time to first token recorded
cat >"$LG_TMP/client.sql" <<SQL
\set id random(1, $N)
INSERT INTO ttft SELECT extract(epoch FROM min(t) - statement_timestamp()) * 1000
FROM (SELECT llm_generate_stream(p, $GEN) AS piece, clock_timestamp() AS t FROM prompts WHERE id = :id) s;
SQL
[ "$(id -u)" -eq 0 ] && chown postgres: "$LG_TMP/client.sql"
cold
t0=$(now)
PGB=$("$LG_BINDIR/pgbench" -h "$LG_PGHOST" -p "$LG_PGPORT" -U postgres -n -c "$CLIENTS" -j "$CLIENTS" \
	-t $((N / CLIENTS)) -f "$LG_TMP/client.sql" postgres 2>&1) || { echo "$PGB" >&2; exit 1; }
secs=$(since "$t0")
TOTAL_D=$(( (N / CLIENTS) * CLIENTS * MAX_TOKENS ))
LAT=$(sed -n 's/^latency average = \(.*\) ms$/\1/p' <<<"$PGB")
TTFT=$(psql_q -c "SELECT round(percentile_cont(0.5) WITHIN GROUP (ORDER BY ms)::numeric, 1) || ' / ' ||
					   round(percentile_cont(0.95) WITHIN GROUP (ORDER BY ms)::numeric, 1) FROM ttft")
SAVE_TOTAL=$TOTAL
TOTAL=$TOTAL_D
record "(d) $CLIENTS pgbench clients" "$secs" "latency ${LAT} ms, TTFT p50/p95 $TTFT ms"
TOTAL=$SAVE_TOTAL

# (e) a shared ~200-token instruction, prefix cache on and off
cold
t0=$(now)
psql_q -c "SELECT count(*) FROM llm_generate_batch((SELECT array_agg(p ORDER BY id) FROM prompts_shared), $GEN)" >/dev/null
record "(e) batch, shared prefix, prefix cache" "$(since "$t0")" \
	"engine: hit rate/batch fill $(engine_stat); instruction work skipped $(prefix_skipped)"
if engine_options '--no-prefix-cache'; then
	t0=$(now)
	psql_q -c "SELECT count(*) FROM llm_generate_batch((SELECT array_agg(p ORDER BY id) FROM prompts_shared), $GEN)" >/dev/null
	record "(e) batch, shared prefix, no prefix cache" "$(since "$t0")" "engine: hit rate/batch fill $(engine_stat)"
else
	log "the engine did not restart with --no-prefix-cache"
fi

echo
echo "# bench-batch: $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) CPUs, $(uname -m), llamagpu.threads $THREADS"
echo "# model $(basename "$MODEL"), $N prompts (~$PTOK tokens; ~$STOK with the shared instruction), $MAX_TOKENS new tokens each, greedy"
echo "# tok/s = generated tokens / wall time; xN = against (a); TTFT = statement start to first piece (llm_generate_stream)"
printf '%s\n' "${RESULTS[@]}"
