#!/bin/sh
# fuzz.sh — build and run the libFuzzer targets tests/fuzz/fuzz_*.c.
#
#   scripts/fuzz.sh replay          build every target with ASan+UBSan and run
#                                   its corpus tests/fuzz/corpus/<name>/ once
#   scripts/fuzz.sh run [SECONDS]   fuzz every target for a share of SECONDS
#                                   (default 60 in all), then replay
#
# <name> is the file name without "fuzz_" and ".c".  Exits non-zero on any
# crash, leak, sanitizer report or build failure of a target.  New inputs a
# run finds go to build/fuzz/work/<name>/ (not the committed corpus); crash
# inputs go to build/fuzz/artifacts/<name>/ — add them to the corpus as
# regression seeds once fixed.
#
# The engine is compiled here with clang and the sanitizers (not the gcc
# library from make), from every src/engine/*.c except the *_avx2.c and
# *_avx512.c kernels.  A source file that does not compile is reported and
# left out; a target fails only if it needs it.
#
# A target that needs sources outside src/engine (the engine server's
# parsers in src/cli) names them in a comment line of its own:
#   fuzz-sources: src/cli/serve_frame.c src/cli/serve_provider_answer.c
#   fuzz-libs: -lcurl
# and they are compiled into that target only.
#
# Environment: FUZZ_CC (default clang-14), FUZZ_ARGS (extra libFuzzer
# options for run mode, e.g. "-max_len=65536").

set -eu

cd "$(dirname "$0")/.."

CC=${FUZZ_CC:-clang-14}
MODE=${1:-replay}
BUILD=build/fuzz
SAN="-fsanitize=address,undefined -fno-sanitize-recover=all"
CFLAGS="-std=c11 -g -O1 -fno-omit-frame-pointer -D_GNU_SOURCE -DLG_NO_X86_SIMD -Isrc/engine"
PCRE_CFLAGS=$(pcre2-config --cflags 2>/dev/null || true)
PCRE_LIBS=$(pcre2-config --libs8 2>/dev/null || echo -lpcre2-8)

usage() {
	echo "usage: $0 replay | run [SECONDS]" >&2
	exit 2
}

case "$MODE" in
	replay) ;;
	run)
		TOTAL=${2:-60}
		case "$TOTAL" in
			''|*[!0-9]*) usage ;;
		esac
		;;
	*) usage ;;
esac

command -v "$CC" >/dev/null 2>&1 || { echo "fuzz.sh: $CC not found" >&2; exit 1; }

mkdir -p "$BUILD/obj"

# Compile the engine sources that changed (or whose headers did).
newest_header=$(ls -t src/engine/*.h 2>/dev/null | head -n 1)
objs=""
for src in src/engine/*.c; do
	case "$src" in
		*_avx2.c|*_avx512.c) continue ;;
	esac
	obj="$BUILD/obj/$(basename "$src" .c).o"
	if [ ! -f "$obj" ] || [ "$src" -nt "$obj" ] || { [ -n "$newest_header" ] && [ "$newest_header" -nt "$obj" ]; }; then
		if ! $CC $CFLAGS $PCRE_CFLAGS $SAN -fsanitize=fuzzer-no-link -c -o "$obj" "$src" 2>"$obj.log"; then
			echo "fuzz.sh: warning: $src does not compile, left out (see $obj.log)" >&2
			rm -f "$obj"
			continue
		fi
	fi
	objs="$objs $obj"
done
rm -f "$BUILD/libengine.a"
# shellcheck disable=SC2086
ar rcs "$BUILD/libengine.a" $objs

targets=""
for t in tests/fuzz/fuzz_*.c; do
	[ -f "$t" ] || continue
	targets="$targets $t"
done
if [ -z "$targets" ]; then
	echo "fuzz.sh: no tests/fuzz/fuzz_*.c targets" >&2
	exit 0
fi

status=0
built=""
for t in $targets; do
	name=$(basename "$t" .c)
	name=${name#fuzz_}
	bin="$BUILD/fuzz_$name"
	mkdir -p "tests/fuzz/corpus/$name"
	extra_src=$(sed -n 's/^.*fuzz-sources:\(.*\)$/\1/p' "$t" | head -n 1)
	extra_libs=$(sed -n 's/^.*fuzz-libs:\(.*\)$/\1/p' "$t" | head -n 1)
	# shellcheck disable=SC2086
	if ! $CC $CFLAGS -Isrc/cli $PCRE_CFLAGS $SAN -fsanitize=fuzzer -o "$bin" "$t" $extra_src \
		"$BUILD/libengine.a" $PCRE_LIBS $extra_libs -lm -pthread; then
		echo "fuzz.sh: FAIL: cannot build $t" >&2
		status=1
		continue
	fi
	built="$built $name"
done

set -- $built
n_targets=$#

if [ "$MODE" = run ] && [ "$n_targets" -gt 0 ]; then
	per=$((TOTAL / n_targets))
	[ "$per" -ge 1 ] || per=1
	for name in $built; do
		mkdir -p "$BUILD/work/$name" "$BUILD/artifacts/$name"
		echo "== fuzzing $name for ${per}s"
		# shellcheck disable=SC2086
		if ! "$BUILD/fuzz_$name" -max_total_time="$per" -timeout=20 -print_final_stats=1 \
			-artifact_prefix="$BUILD/artifacts/$name/" ${FUZZ_ARGS:-} \
			"$BUILD/work/$name" "tests/fuzz/corpus/$name"; then
			echo "fuzz.sh: FAIL: $name found a problem; input in $BUILD/artifacts/$name/" >&2
			status=1
		fi
	done
fi

for name in $built; do
	dirs="tests/fuzz/corpus/$name"
	if [ "$MODE" = run ] && [ -d "$BUILD/work/$name" ]; then
		dirs="$dirs $BUILD/work/$name"
	fi
	echo "== replaying $dirs"
	# shellcheck disable=SC2086
	mkdir -p "$BUILD/artifacts/$name"
	if ! "$BUILD/fuzz_$name" -runs=0 -timeout=20 -artifact_prefix="$BUILD/artifacts/$name/" \
		$dirs >"$BUILD/replay_$name.log" 2>&1; then
		tail -n 40 "$BUILD/replay_$name.log" >&2
		echo "fuzz.sh: FAIL: replaying $name (log: $BUILD/replay_$name.log)" >&2
		status=1
	else
		grep -E "INITED|DONE" "$BUILD/replay_$name.log" | tail -n 1 || true
	fi
done

if [ "$status" -eq 0 ]; then
	echo "fuzz.sh: ok ($n_targets target(s))"
fi
exit "$status"
