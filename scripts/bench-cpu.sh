#!/usr/bin/env bash
# scripts/bench-cpu.sh — issue 3's CPU benchmark: llamagpu vs unmodified llama.cpp
# on the same GGUF files (a random-weight model with TinyLlama-1.1B's shape).
#
#   1. synthesizes the model in each type with `bin/llamagpu synth` (cached in
#      the work dir, reused when present);
#   2. measures memory bandwidth with a STREAM-style triad (scripts/bench/triad.c);
#   3. for each round and type runs `bin/llamagpu bench -p 128 -n 32 -t 2 -r 3 --json`
#      and llama.cpp (node-llama-cpp 3.21.1's prebuilt CPU binary, driven by
#      scripts/bench/llamacpp-bench.mjs) on the same file, alternating them (the
#      order flips every round), each under /usr/bin/time -v for peak RSS;
#   4. prints medians over the rounds, ratios (ours/llama.cpp), peak RSS against
#      the file size, and generation's achieved bandwidth (tg t/s x bytes of
#      weights read per token) against the triad.
#
# usage: scripts/bench-cpu.sh [--types f16,q8_0,q4_0,q4_k_m] [--rounds N] [--reps N]
#          [--threads N] [--quick] [--json OUT] [--ctx-sweep] [--sweep-type T]
#          [--work-dir DIR] [--no-llamacpp] [--llamagpu BIN] [--from-runs RUNS.jsonl]
#   --quick       generation (tg32) only, one round unless --rounds is given
#   --json OUT    also write the raw results (every run) and the summary to OUT
#   --ctx-sweep   also run `llamagpu bench -p 128 -n 32 -d N` for N in 128 1024
#                 4096 on --sweep-type (default q4_0): prompt processing and
#                 generation after N tokens already in the cache (llama-bench's
#                 -d), i.e. attention over a long context
#   --llamagpu    the llamagpu binary to measure (default bin/llamagpu, built
#                 with `make engine` when missing); it is copied into the work
#                 dir first, so a rebuild during the run cannot mix builds
#   --from-runs   measure nothing: summarize the per-run records (runs.jsonl in
#                 the work dir) that an earlier, possibly interrupted, run left
#   --work-dir    where models, triad and logs go (default build/bench, or
#                 $LLAMAGPU_BENCH_DIR)
# A script, not a test: numbers depend on the machine and on whatever else runs.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
LLAMAGPU_SHARED=${LLAMAGPU_SHARED:-$ROOT/../shared}
WORK=${LLAMAGPU_BENCH_DIR:-$ROOT/build/bench}
BENCHDIR=$ROOT/scripts/bench
LG=$ROOT/bin/llamagpu
TYPES=f16,q8_0,q4_0,q4_k_m
ROUNDS=3
REPS=3
THREADS=2
NPROMPT=128
NGEN=32
QUICK=0
JSON_OUT=
CTX_SWEEP=0
SWEEP_TYPE=q4_0
SWEEP_REPS=1
NO_LLAMACPP=0

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; }

while [ $# -gt 0 ]; do
	case "$1" in
	--types) TYPES=$2; shift 2 ;;
	--rounds) ROUNDS=$2; ROUNDS_SET=1; shift 2 ;;
	--reps) REPS=$2; shift 2 ;;
	--threads) THREADS=$2; shift 2 ;;
	--quick) QUICK=1; shift ;;
	--json) JSON_OUT=$2; shift 2 ;;
	--ctx-sweep) CTX_SWEEP=1; shift ;;
	--sweep-type) SWEEP_TYPE=$2; shift 2 ;;
	--work-dir) WORK=$2; shift 2 ;;
	--no-llamacpp) NO_LLAMACPP=1; shift ;;
	--llamagpu) LG=$(realpath "$2"); shift 2 ;;
	--from-runs) FROM_RUNS=$(realpath "$2"); shift 2 ;;
	-h | --help) usage; exit 0 ;;
	*) echo "bench-cpu.sh: unknown option $1 (try --help)" >&2; exit 2 ;;
	esac
done
if [ "$QUICK" = 1 ]; then
	[ "${ROUNDS_SET:-0}" = 1 ] || ROUNDS=1
	NPROMPT=0
fi
case "$ROUNDS$REPS$THREADS" in *[!0-9]*) echo "bench-cpu.sh: --rounds/--reps/--threads take numbers" >&2; exit 2 ;; esac
[ -n "$JSON_OUT" ] && JSON_OUT=$(realpath -m "$JSON_OUT")
mkdir -p "$WORK"
WORK=$(cd "$WORK" && pwd)
RUNS=$WORK/runs.jsonl
FROM_RUNS=${FROM_RUNS:-}
if [ -n "$FROM_RUNS" ]; then
	# summarize only: no building, no synth, no runs, no triad re-measure
	# unless none was saved
	[ "$FROM_RUNS" = "$RUNS" ] || cp "$FROM_RUNS" "$RUNS"
	ROUNDS=0
	CTX_SWEEP=0
	NO_LLAMACPP=1
fi
[ -n "$FROM_RUNS" ] || : >"$RUNS"

log() { echo "== $*" >&2; }

as_root() {
	if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

# --- prerequisites --------------------------------------------------------
if [ ! -x "$LG" ]; then
	log "building bin/llamagpu (make engine)"
	make -C "$ROOT" -s -j"$(nproc)" engine
fi
if [ ! -x /usr/bin/time ]; then
	log "installing GNU time"
	as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q
	as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends time
fi
for tool in python3 cc; do
	command -v "$tool" >/dev/null || { echo "bench-cpu.sh: $tool is required" >&2; exit 1; }
done
if [ "$NO_LLAMACPP" = 0 ]; then
	command -v node >/dev/null && command -v npm >/dev/null ||
		{ echo "bench-cpu.sh: node and npm are required for llama.cpp (or pass --no-llamacpp)" >&2; exit 1; }
	# npm ci from the lock file; only the prebuilt CPU binary package
	# (@node-llama-cpp/linux-x64, a direct dependency) is installed: the
	# optional GPU/other-platform binaries are omitted and the postinstall
	# script, which could download or build llama.cpp, is not run.
	if [ ! -f "$BENCHDIR/node_modules/node-llama-cpp/package.json" ] ||
		[ ! -f "$BENCHDIR/node_modules/@node-llama-cpp/linux-x64/package.json" ] ||
		[ "$BENCHDIR/package-lock.json" -nt "$BENCHDIR/node_modules/.package-lock.json" ]; then
		log "npm ci in scripts/bench (node-llama-cpp, prebuilt CPU binary)"
		(cd "$BENCHDIR" && NODE_LLAMA_CPP_SKIP_DOWNLOAD=true npm ci --omit=optional --ignore-scripts \
			--no-audit --no-fund --loglevel=error >&2)
	fi
fi

# Measure a private copy of the binary (others may rebuild bin/llamagpu meanwhile).
if [ -n "$FROM_RUNS" ]; then
	LG_ID=$(cat "$WORK/llamagpu.id" 2>/dev/null || echo unknown)
else
	cp "$LG" "$WORK/llamagpu.bin.tmp"
	mv -f "$WORK/llamagpu.bin.tmp" "$WORK/llamagpu.bin"
	LG_ID="$(sha256sum "$WORK/llamagpu.bin" | cut -c1-12), built $(date -u -r "$LG" '+%Y-%m-%d %H:%M UTC')"
	echo "$LG_ID" >"$WORK/llamagpu.id"
fi
LG=$WORK/llamagpu.bin
log "llamagpu binary: $LG_ID"

# --- memory bandwidth -----------------------------------------------------
if [ ! -x "$WORK/triad" ] || [ "$BENCHDIR/triad.c" -nt "$WORK/triad" ]; then
	cc -O2 -march=native -pthread "$BENCHDIR/triad.c" -o "$WORK/triad"
fi
if [ -n "$FROM_RUNS" ] && [ -s "$WORK/triad.json" ]; then
	TRIAD=$(cat "$WORK/triad.json")
else
	log "triad ($THREADS threads)"
	TRIAD=$("$WORK/triad" "$THREADS" 256 12)
	echo "$TRIAD" >"$WORK/triad.json"
fi
echo "$TRIAD" >&2

# --- models ---------------------------------------------------------------
VOCAB=$LLAMAGPU_SHARED/fixtures/tokenizer/ggml-vocab-llama-spm.gguf
if [ -f "$VOCAB" ]; then
	VOCAB_ARGS=(--vocab-from "$VOCAB")
else
	VOCAB_ARGS=(--vocab-bytes --vocab-size 32000)
fi
model_file() { echo "$WORK/tinyllama-1.1b-$1.gguf"; }
IFS=, read -r -a TYPE_LIST <<<"$TYPES"
SYNTH_TYPES=("${TYPE_LIST[@]}")
[ "$CTX_SWEEP" = 1 ] && SYNTH_TYPES+=("$SWEEP_TYPE")
for t in "${SYNTH_TYPES[@]}"; do
	f=$(model_file "$t")
	[ -s "$f" ] || [ -n "$FROM_RUNS" ] && continue
	log "synth $t -> $f"
	"$LG" synth --arch llama --dim 2048 --layers 22 --heads 32 --kv-heads 4 --ffn 5632 \
		"${VOCAB_ARGS[@]}" --type "$t" --seed 1 -t "$THREADS" -o "$f.tmp"
	mv "$f.tmp" "$f"
done

# --- runs -----------------------------------------------------------------
# run_one IMPL TYPE ROUND: append one JSON record to $RUNS.
run_one() {
	local impl=$1 t=$2 round=$3 f out tm load rss
	f=$(model_file "$t")
	out=$WORK/run-$round-$t-$impl.json
	tm=$WORK/run-$round-$t-$impl.time
	load=$(cut -d' ' -f1-3 /proc/loadavg)
	if [ "$impl" = llamagpu ]; then
		/usr/bin/time -v -o "$tm" "$LG" bench -m "$f" -p "$NPROMPT" -n "$NGEN" -t "$THREADS" -r "$REPS" --json >"$out" || true
	else
		(cd "$BENCHDIR" && /usr/bin/time -v -o "$tm" node llamacpp-bench.mjs -m "$f" -p "$NPROMPT" -n "$NGEN" \
			-t "$THREADS" -r "$REPS") >"$out" || true
	fi
	if ! grep -q tg_tps "$out"; then
		echo "   $impl $t round $round FAILED: $(grep -m1 'terminated by signal\|exit status' "$tm" || true); skipped" >&2
		return 0
	fi
	rss=$(sed -n 's/.*Maximum resident set size (kbytes): *//p' "$tm")
	python3 - "$impl" "$t" "$round" "$f" "$rss" "$load" "$out" >>"$RUNS" <<'EOF'
import json, os, sys
impl, t, rnd, f, rss, load, out = sys.argv[1:]
with open(out) as fh:
    r = json.loads(fh.read().strip().splitlines()[-1])
print(json.dumps({"impl": impl, "type": t, "round": int(rnd), "file": f,
                  "file_size": os.path.getsize(f), "max_rss_kb": int(rss),
                  "loadavg_before": load, "pp_tps": r.get("pp_tps"), "tg_tps": r.get("tg_tps"),
                  "raw": r}))
EOF
	python3 -c 'import json,sys; r=json.loads(sys.stdin.readlines()[-1]); print("   %-8s %-7s round %d: pp %s  tg %s  rss %.0f MiB  (load %s)" % (r["impl"], r["type"], r["round"], "%.2f" % r["pp_tps"] if r["pp_tps"] else "-", "%.2f" % r["tg_tps"] if r["tg_tps"] else "-", r["max_rss_kb"]/1024, r["loadavg_before"]))' <"$RUNS" >&2
}

for ((round = 1; round <= ROUNDS; round++)); do
	for t in "${TYPE_LIST[@]}"; do
		if [ "$NO_LLAMACPP" = 1 ]; then
			order=(llamagpu)
		elif [ $((round % 2)) = 1 ]; then
			order=(llamagpu llamacpp)
		else
			order=(llamacpp llamagpu)
		fi
		for impl in "${order[@]}"; do
			log "round $round/$ROUNDS $t $impl"
			run_one "$impl" "$t" "$round"
		done
	done
done

SWEEP=$WORK/sweep.jsonl
: >"$SWEEP"
if [ "$CTX_SWEEP" = 1 ]; then
	for n in 128 1024 4096; do
		log "ctx sweep: llamagpu bench $SWEEP_TYPE -p $NPROMPT -n $NGEN -d $n -r $SWEEP_REPS"
		load=$(cut -d' ' -f1-3 /proc/loadavg)
		r=$("$LG" bench -m "$(model_file "$SWEEP_TYPE")" -p "$NPROMPT" -n "$NGEN" -d "$n" -c $((n + NPROMPT + NGEN + 16)) \
			-t "$THREADS" -r "$SWEEP_REPS" --json | tail -1) || true
		case "$r" in *tg_tps*) ;; *) echo "   -d $n FAILED; skipped" >&2; continue ;; esac
		echo "{\"depth\":$n,\"loadavg_before\":\"$load\",\"raw\":$r}" >>"$SWEEP"
		echo "   $r" >&2
	done
fi

# --- summary --------------------------------------------------------------
LLAMACPP_VERSION=$(python3 -c 'import json,sys
for l in open(sys.argv[1]):
    r=json.loads(l)
    if r["impl"]=="llamacpp": print(r["raw"].get("version","")); break' "$RUNS")
[ "$NO_LLAMACPP" = 0 ] && LLAMACPP_VERSION=$(python3 -c 'import json,sys
for l in open(sys.argv[1]):
    r=json.loads(l)
    if r["impl"]=="llamacpp": print(r["raw"].get("version","")); break' "$RUNS")
python3 - "$RUNS" "$SWEEP" "$TRIAD" "$JSON_OUT" "$LLAMACPP_VERSION" "$NPROMPT" "$NGEN" "$THREADS" "$LG_ID" <<'EOF'
import json, statistics, struct, sys

runs_path, sweep_path, triad_s, json_out, lc_version, npp, ntg, threads, lg_id = sys.argv[1:]
runs = [json.loads(l) for l in open(runs_path)]
sweep = [json.loads(l) for l in open(sweep_path)]
triad = json.loads(triad_s)
npp, ntg = int(npp), int(ntg)

def weight_bytes_per_token(path):
    """Bytes of weights read to generate one token: every tensor in the file
    except token_embd.weight (one row of it is gathered per token).  Tensor
    sizes come from the gaps between data offsets."""
    with open(path, "rb") as f:
        def rd(fmt):
            n = struct.calcsize(fmt)
            return struct.unpack("<" + fmt, f.read(n))
        def rstr():
            (n,) = rd("Q")
            return f.read(n).decode("utf-8", "replace")
        def skip_val(vt):
            sizes = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}
            if vt == 8:
                rstr()
            elif vt == 9:
                (et,) = rd("I"); (n,) = rd("Q")
                if et == 8:
                    for _ in range(n):
                        rstr()
                elif et == 9:
                    for _ in range(n):
                        skip_val(9)
                else:
                    f.seek(sizes[et] * n, 1)
            else:
                f.seek(sizes[vt], 1)
        magic, ver = f.read(4), rd("I")[0]
        assert magic == b"GGUF" and ver >= 2, path
        n_t, n_kv = rd("QQ")
        align = 32
        for _ in range(n_kv):
            k = rstr(); (vt,) = rd("I")
            if k == "general.alignment" and vt == 4:
                (align,) = rd("I")
            else:
                skip_val(vt)
        tensors = []
        for _ in range(n_t):
            name = rstr(); (nd,) = rd("I"); rd("Q" * nd); (ty,) = rd("I"); (off,) = rd("Q")
            tensors.append((off, name))
        data_start = (f.tell() + align - 1) // align * align
        f.seek(0, 2)
        end = f.tell() - data_start
    tensors.sort()
    total = 0
    for i, (off, name) in enumerate(tensors):
        nxt = tensors[i + 1][0] if i + 1 < len(tensors) else end
        if name != "token_embd.weight":
            total += nxt - off
    return total

med = lambda xs: statistics.median(xs) if xs else None
types = list(dict.fromkeys(r["type"] for r in runs))
summary = []
for t in types:
    rs = [r for r in runs if r["type"] == t]
    row = {"type": t, "file": rs[0]["file"], "file_size": rs[0]["file_size"],
           "weight_bytes_per_token": weight_bytes_per_token(rs[0]["file"]),
           "rounds": len({r["round"] for r in rs}),
           "loadavg": [r["loadavg_before"] for r in rs]}
    for impl in ("llamagpu", "llamacpp"):
        ri = [r for r in rs if r["impl"] == impl]
        row[impl] = {
            "pp_tps": med([r["pp_tps"] for r in ri if r["pp_tps"]]),
            "tg_tps": med([r["tg_tps"] for r in ri if r["tg_tps"]]),
            "max_rss_kb": max([r["max_rss_kb"] for r in ri], default=None),
        } if ri else None
    summary.append(row)

def f2(x):
    return "-" if x is None else ("%.2f" % x)
def ratio(a, b):
    return "-" if not a or not b else "%.2f×" % (a / b)

print()
print(f"triad: best {triad['best_gbs']:.1f} GB/s, median {triad['median_gbs']:.1f} GB/s ({triad['threads']} threads)")
if summary:
    print(f"\n## llamagpu vs llama.cpp, TinyLlama-1.1B shape, {threads} threads, medians of {max(r['rounds'] for r in summary)} rounds")
    print(f"llamagpu: binary {lg_id}")
    if lc_version:
        print(f"llama.cpp: {lc_version}")
    print()
    print(f"| type | file | ours pp{npp} | llama.cpp pp{npp} | ratio | ours tg{ntg} | llama.cpp tg{ntg} | ratio |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in summary:
        o, l = r["llamagpu"] or {}, r["llamacpp"] or {}
        print(f"| {r['type']} | {r['file_size']/2**20:.0f} MiB | {f2(o.get('pp_tps'))} | {f2(l.get('pp_tps'))} | "
              f"{ratio(o.get('pp_tps'), l.get('pp_tps'))} | {f2(o.get('tg_tps'))} | {f2(l.get('tg_tps'))} | "
              f"{ratio(o.get('tg_tps'), l.get('tg_tps'))} |")
    print()
    print("| type | file | ours peak RSS | RSS / file | llama.cpp peak RSS (node) | weights/token | ours tg GB/s | % triad | llama.cpp tg GB/s | % triad |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in summary:
        o, l = r["llamagpu"] or {}, r["llamacpp"] or {}
        wb = r["weight_bytes_per_token"]
        def bw(x):
            if not x:
                return "-", "-"
            g = x * wb / 1e9
            return f"{g:.1f}", f"{100 * g / triad['best_gbs']:.0f}%"
        ob, lb = bw(o.get("tg_tps")), bw(l.get("tg_tps"))
        orss = o.get("max_rss_kb"); lrss = l.get("max_rss_kb")
        print(f"| {r['type']} | {r['file_size']/2**20:.0f} MiB | {orss/1024:.0f} MiB | {orss*1024/r['file_size']:.2f} | "
              f"{'-' if not lrss else '%.0f MiB' % (lrss/1024)} | {wb/2**20:.0f} MiB | {ob[0]} | {ob[1]} | {lb[0]} | {lb[1]} |"
              if orss else f"| {r['type']} | - |")
loads = [r["loadavg_before"] for r in runs]
if loads:
    l1 = [float(x.split()[0]) for x in loads]
    print(f"\nload average (1 min) before each run: min {min(l1):.2f}, median {statistics.median(l1):.2f}, max {max(l1):.2f}")
if sweep:
    print(f"\n| llamagpu, " + sweep[0]["raw"]["file_type"] + f" | pp{npp} t/s at depth | tg{ntg} t/s at depth | load |")
    print("|---|---:|---:|---|")
    for s in sweep:
        print(f"| -d {s['depth']} | {s['raw']['pp_tps']:.2f} | {s['raw']['tg_tps']:.2f} | {s['loadavg_before']} |")
if json_out:
    with open(json_out, "w") as fh:
        json.dump({"triad": triad, "llama_cpp_version": lc_version, "llamagpu_binary": lg_id, "n_prompt": npp, "n_gen": ntg,
                   "threads": int(threads), "summary": summary, "runs": runs, "ctx_sweep": sweep}, fh, indent=1)
    print(f"\nraw results: {json_out}")
EOF
