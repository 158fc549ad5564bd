#!/usr/bin/env bash
# scripts/test.sh — install what is needed, build, and run every test:
#   1. make check-engine         the engine's C tests (cmocka)
#   1a. make GPU=cuda|hip        the GPU kernels compile (CUDA sm_80+sm_90, HIP), where
#                                the toolkits are installed; a missing one is a SKIP
#   1a'. tests/gpu_emu/run.sh    the GPU kernels and backend on the host emulator (no GPU)
#   1b. tests/cli/test_cli.py    the llamagpu tool end to end (and 1c: again under ASan+UBSan)
#   1b'. tests/cli/test_embed.py embeddings against a numpy reference forward pass
#   1b''. tests/cli/test_serve_embed.py  EMBED requests of llamagpu serve
#   1b'''. tests/cli/test_serve_provider.py  remote models against a loopback endpoint (also in 1c)
#   2. scripts/fuzz.sh run 45    a bounded fuzz run, then the corpora replayed (ASan+UBSan)
#   3. pg_regress                SQL behaviour (sql/, expected/)
#   4. pgTAP                     schema, roles, privileges (tests/pgtap/)
#   5. prove                     cluster-level tests (tests/tap/)
# against a throwaway cluster in a temporary directory.  Ends with a line
# "N passed, N failed"; exits non-zero if anything failed.
#
# Environment: LLAMAGPU_SHARED (default ../shared) holds the test model;
# PG_CONFIG (default pg_config); LLAMAGPU_SKIP_INSTALL=1 skips apt-get.
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
. scripts/lib.sh

passed=0
failed=0
failures=()
pass() { passed=$((passed + 1)); echo "PASS: $1"; }
fail() { failed=$((failed + 1)); failures+=("$1"); echo "FAIL: $1"; }

lg_install_deps
lg_build || { echo "build failed"; echo "0 passed, 1 failed"; exit 1; }

# 1. engine tests: one result per test binary
echo "== make check-engine"
# a hung test must not hang CI: the whole step gets 10 minutes
timeout 600 make -s check-engine 2>&1 | tee "$ROOT/build/check-engine.log"; rc=${PIPESTATUS[0]}
out=$(cat "$ROOT/build/check-engine.log")
n_bins=$(grep -c '^== ' <<<"$out" || true)
n_fail_bins=$(awk '/^== /{name=$2} /FAILED|Segmentation|Aborted|core dumped/{if (name && !seen[name]++) n++} END{print n+0}' <<<"$out")
if [ "$n_bins" -gt 0 ]; then
	passed=$((passed + n_bins - n_fail_bins))
	failed=$((failed + n_fail_bins))
	[ "$n_fail_bins" -gt 0 ] && failures+=("check-engine ($n_fail_bins binaries)")
fi
if [ $rc -ne 0 ] && [ "$n_fail_bins" -eq 0 ]; then fail "make check-engine"; fi
[ $rc -eq 0 ] && [ "$n_bins" -eq 0 ] && pass "make check-engine"

# 1a. the GPU kernels, the engine files that use them and the kernel checker compile for CUDA
#     (sm_80 and sm_90) and for HIP; nothing runs them here (no GPU), scripts/device-check.sh
#     does on a GPU machine.  Two jobs, as everywhere in CI.
echo "== GPU builds compile"
gpu_compile() {
	local name=$1 log=$ROOT/build/gpu-$1.log
	shift
	if timeout 600 make -s -j2 -f mk/standalone.mk "$@" gpu-objs >"$log" 2>&1; then
		grep -i 'warning' "$log" | head -20
		pass "GPU build compiles: $name"
	else
		grep -E 'error|Error' "$log" | head -40
		tail -20 "$log"
		fail "GPU build compiles: $name"
	fi
}
nvcc_bin=$(command -v nvcc || { [ -x /usr/local/cuda/bin/nvcc ] && echo /usr/local/cuda/bin/nvcc; })
if [ -n "$nvcc_bin" ]; then
	gpu_compile "CUDA sm_80+sm_90" GPU=cuda NVCC="$nvcc_bin" CUDA_ARCHS="80 90"
else
	echo "SKIP: GPU build compiles: CUDA: no nvcc on PATH or in /usr/local/cuda/bin"
fi
hipcc_bin=$(command -v hipcc || { [ -x /opt/rocm/bin/hipcc ] && echo /opt/rocm/bin/hipcc; })
if [ -n "$hipcc_bin" ]; then
	gpu_compile "HIP" GPU=hip HIPCC="$hipcc_bin"
else
	echo "SKIP: GPU build compiles: HIP: no hipcc on PATH or in /opt/rocm/bin"
fi

# 1a'. every kernels/*.cu, runtime.cu, graph.cu and blas.cu built as host C++ against the
#      emulator (tests/gpu_emu: fibers, the runtime API, graphs, cuBLAS); the kernel tests,
#      tests/gpu/check_kernels and `llamagpu --device cuda:0` against the CPU backend
echo "== GPU kernels and backend on the emulator"
if LLAMAGPU_SHARED="${LLAMAGPU_SHARED:-$ROOT/../shared}" timeout 600 sh tests/gpu_emu/run.sh quick >"$ROOT/build/gpu-emu.log" 2>&1; then
	pass "GPU kernels and backend on the emulator"
else
	tail -30 "$ROOT/build/gpu-emu.log"
	fail "GPU kernels and backend on the emulator"
fi

# 1b. the command-line tool end to end (stories260K against llama.cpp's records, synthetic
#     models of every type, bad input); one result per test method
echo "== tests/cli/test_cli.py"
timeout 900 python3 tests/cli/test_cli.py -v 2>&1 | tee "$ROOT/build/test-cli.log"; rc=${PIPESTATUS[0]}
while read -r t; do pass "cli $t"; done < <(sed -n 's/^\(test_[a-z0-9_]*\) .* \.\.\. ok$/\1/p' "$ROOT/build/test-cli.log")
while read -r t; do echo "SKIP: cli $t"; done < <(sed -n 's/^\(test_[a-z0-9_]*\) .* \.\.\. skipped.*/\1/p' "$ROOT/build/test-cli.log")
while read -r t; do fail "cli $t"; done < <(sed -n 's/^\(FAIL\|ERROR\): \(test_[a-z0-9_]*\) .*/\2/p' "$ROOT/build/test-cli.log" | sort -u)
if [ $rc -ne 0 ] && ! grep -q '^\(FAIL\|ERROR\):' "$ROOT/build/test-cli.log"; then fail "tests/cli/test_cli.py"; fi

# 1b'. embeddings (bert, nomic-bert, llama; F32 and F16) against an independent numpy forward
#     pass; needs Debian's numpy, so /usr/bin/python3
echo "== tests/cli/test_embed.py"
timeout 300 /usr/bin/python3 -W ignore tests/cli/test_embed.py -v 2>&1 | tee "$ROOT/build/test-embed.log"; rc=${PIPESTATUS[0]}
while read -r t; do pass "embed $t"; done < <(sed -n 's/^\(test_[a-z0-9_]*\) .* \.\.\. ok$/\1/p' "$ROOT/build/test-embed.log")
while read -r t; do echo "SKIP: embed $t"; done < <(sed -n 's/^\(test_[a-z0-9_]*\) .* \.\.\. skipped.*/\1/p' "$ROOT/build/test-embed.log")
while read -r t; do fail "embed $t"; done < <(sed -n 's/^\(FAIL\|ERROR\): \(test_[a-z0-9_]*\) .*/\2/p' "$ROOT/build/test-embed.log" | sort -u)
if [ $rc -ne 0 ] && ! grep -q '^\(FAIL\|ERROR\):' "$ROOT/build/test-embed.log"; then fail "tests/cli/test_embed.py"; fi

# 1b''. EMBED requests of llamagpu serve: errors, vectors, batch == single, busy, cancel, and a
#      generation not starved behind a big embedding job
echo "== tests/cli/test_serve_embed.py"
timeout 300 python3 tests/cli/test_serve_embed.py -v 2>&1 | tee "$ROOT/build/test-serve-embed.log"; rc=${PIPESTATUS[0]}
while read -r t; do pass "serve-embed $t"; done < <(sed -n 's/^\(test_[a-z0-9_]*\) .* \.\.\. ok$/\1/p' "$ROOT/build/test-serve-embed.log")
while read -r t; do fail "serve-embed $t"; done < <(sed -n 's/^\(FAIL\|ERROR\): \(test_[a-z0-9_]*\) .*/\2/p' "$ROOT/build/test-serve-embed.log" | sort -u)
if [ $rc -ne 0 ] && ! grep -q '^\(FAIL\|ERROR\):' "$ROOT/build/test-serve-embed.log"; then fail "tests/cli/test_serve_embed.py"; fi

# 1b'''. remote models (OpenAI-compatible providers) against a loopback endpoint answering with the
#       engine: equal output, tool calls, retries, errors, cancellation, timeouts, embeddings
echo "== tests/cli/test_serve_provider.py"
timeout 300 python3 tests/cli/test_serve_provider.py -v 2>&1 | tee "$ROOT/build/test-serve-provider.log"; rc=${PIPESTATUS[0]}
while read -r t; do pass "serve-provider $t"; done < <(sed -n 's/^\(test_[a-z0-9_]*\) .* \.\.\. ok$/\1/p' "$ROOT/build/test-serve-provider.log")
while read -r t; do fail "serve-provider $t"; done < <(sed -n 's/^\(FAIL\|ERROR\): \(test_[a-z0-9_]*\) .*/\2/p' "$ROOT/build/test-serve-provider.log" | sort -u)
if [ $rc -ne 0 ] && ! grep -q '^\(FAIL\|ERROR\):' "$ROOT/build/test-serve-provider.log"; then fail "tests/cli/test_serve_provider.py"; fi

# 1c. the same tests against a build with AddressSanitizer and UndefinedBehaviorSanitizer, so a
#     memory error in a kernel or the tokenizer fails the run even where the output looks right
echo "== tests/cli/test_cli.py, sanitized build"
if make -s -j2 ENGINE_BUILD=build/asan CLI_BIN=build/asan/llamagpu \
		ENGINE_CC="gcc -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer" \
		build/asan/llamagpu >"$ROOT/build/asan-build.log" 2>&1; then
	if ASAN_OPTIONS=detect_leaks=1 LLAMAGPU_BIN="$ROOT/build/asan/llamagpu" timeout 900 \
			python3 tests/cli/test_cli.py >"$ROOT/build/test-cli-asan.log" 2>&1; then
		pass "cli under ASan+UBSan"
	else
		grep -E '^(FAIL|ERROR)|Sanitizer|runtime error' "$ROOT/build/test-cli-asan.log" | head -40
		fail "cli under ASan+UBSan"
	fi
	# the HTTP client of remote models (libcurl callbacks, SSE parsing) under the sanitizers
	rm -f "$ROOT/build/serve-provider-asan.log"
	if ASAN_OPTIONS=detect_leaks=1 LLAMAGPU_BIN="$ROOT/build/asan/llamagpu" \
			LLAMAGPU_TEST_SERVE_LOG="$ROOT/build/serve-provider-asan.log" timeout 300 \
			python3 tests/cli/test_serve_provider.py >"$ROOT/build/test-serve-provider-asan.log" 2>&1 &&
			! grep -qE 'Sanitizer|runtime error' "$ROOT/build/serve-provider-asan.log" 2>/dev/null; then
		pass "serve-provider under ASan+UBSan"
	else
		grep -E '^(FAIL|ERROR)|Sanitizer|runtime error' "$ROOT/build/test-serve-provider-asan.log" \
			"$ROOT/build/serve-provider-asan.log" 2>/dev/null | head -40
		fail "serve-provider under ASan+UBSan"
	fi
else
	tail -20 "$ROOT/build/asan-build.log"
	fail "sanitized build"
fi

# 2. fuzz targets: a short bounded fuzz run, then every corpus replayed under ASan+UBSan
if [ -f scripts/fuzz.sh ]; then
	echo "== scripts/fuzz.sh run ${LLAMAGPU_FUZZ_SECONDS:-45}"
	# libFuzzer prints a line per new input: keep that in a log, show its end on failure
	if timeout 900 bash scripts/fuzz.sh run "${LLAMAGPU_FUZZ_SECONDS:-45}" >"$ROOT/build/fuzz.log" 2>&1; then
		grep -E '^(==|replay|fuzz)' "$ROOT/build/fuzz.log" | tail -20
		pass "fuzz run and replay"
	else
		# the lines that say what failed first (a crash report is long, its cause near its start)
		echo "-- fuzz.log: failures, errors, sanitizer reports"
		grep -nE 'FAIL|ERROR|SUMMARY|runtime error|==[0-9]+==' "$ROOT/build/fuzz.log" | head -80
		echo "-- fuzz.log: last lines"
		tail -60 "$ROOT/build/fuzz.log"
		fail "fuzz run and replay"
	fi
fi

# 3-5 need the installed extension and a cluster
lg_install || { fail "make install"; echo "$passed passed, $failed failed"; exit 1; }
lg_cluster_start test || { fail "cluster start"; echo "$passed passed, $failed failed"; exit 1; }
trap lg_cluster_stop EXIT

# the tests below need the model; they say so and skip when it is absent
skip_no_model() {
	[ -n "$LG_MODEL" ] && return 1
	echo "SKIP: $1: $LG_MODEL_MISSING"
}

# 3. pg_regress
echo "== pg_regress"
if ! skip_no_model "pg_regress"; then
	rm -rf results regression.diffs regression.out
	timeout 600 make -s installcheck PG_CONFIG="$PG_CONFIG" PGHOST="$LG_PGHOST" PGPORT="$LG_PGPORT" PGUSER=postgres 2>&1 |
		tee "$ROOT/build/installcheck.log"
	out=$(cat "$ROOT/build/installcheck.log")
	while read -r t; do pass "regress $t"; done < <(sed -n 's/^[ ]*\(test \)\{0,1\}\([a-z0-9_]*\)[ ]*\.\.\. ok.*/\2/p' <<<"$out")
	while read -r t; do fail "regress $t"; done < <(sed -n 's/^[ ]*\(test \)\{0,1\}\([a-z0-9_]*\)[ ]*\.\.\. FAILED.*/\2/p' <<<"$out")
	if ! grep -q '\.\.\. ok\|\.\.\. FAILED' <<<"$out"; then fail "pg_regress did not run"; fi
	[ -f regression.diffs ] && cat regression.diffs
fi

# 4. pgTAP (needs no model)
echo "== pgTAP"
lg_psql postgres -c "DROP DATABASE IF EXISTS llamagpu_tap" -c "CREATE DATABASE llamagpu_tap" >/dev/null
lg_psql llamagpu_tap -c "CREATE EXTENSION pgtap" -c "CREATE EXTENSION llamagpu" >/dev/null
for f in tests/pgtap/*.sql; do
	if timeout 300 prove -v --exec "$LG_PSQL_CMD -d llamagpu_tap -v ON_ERROR_STOP=1 -X -q -t -A -f" "$f"; then
		pass "pgtap $(basename "$f")"
	else
		fail "pgtap $(basename "$f")"
	fi
done

# 5. cluster-level TAP tests, as the unprivileged user (they make their own clusters)
echo "== TAP"
if ! skip_no_model "TAP tests"; then
	# a 512 KiB file system for the download test's disk-full case (mounting needs root)
	smallfs=""
	if [ "$(id -u)" -eq 0 ] && mkdir -p "$LG_TMP/smallfs" &&
		mount -t tmpfs -o "size=512k,mode=0700,uid=$(id -u postgres),gid=$(id -g postgres)" tmpfs "$LG_TMP/smallfs"; then
		smallfs=$LG_TMP/smallfs
	fi
	for f in tests/tap/*.pl; do
		if LG_TIMEOUT=300 lg_run_as_pg "cd '$LG_TMP/tap' && PATH='$LG_BINDIR:$PATH' PERL5LIB='$LG_PERL5LIB' \
				PG_REGRESS='$LG_PG_REGRESS' TESTDIR='$LG_TMP/tap' LLAMAGPU_TEST_MODEL='$LG_MODEL' \
				LLAMAGPU_TEST_SMALLFS='$smallfs' \
				LLAMAGPU_ENGINE_PATH='${LLAMAGPU_ENGINE_PATH:-}' prove -v '$LG_TMP/tap/$(basename "$f")'"; then
			pass "tap $(basename "$f")"
		else
			fail "tap $(basename "$f")"
		fi
	done
	[ -n "$smallfs" ] && umount "$smallfs"
fi

echo
if [ "$failed" -gt 0 ]; then
	echo "failed: ${failures[*]}"
fi
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
