# scripts/lib.sh — shared by scripts/demo.sh and scripts/test.sh: install
# dependencies, build, install, and run a throwaway cluster.  Sourced, not run.

PG_CONFIG=${PG_CONFIG:-pg_config}
LLAMAGPU_SHARED=${LLAMAGPU_SHARED:-$ROOT/../shared}
LG_DEPS="build-essential pkg-config libpcre2-dev libcmocka-dev postgresql-15 postgresql-server-dev-15 \
postgresql-15-pgtap libipc-run-perl clang-14 libclang-rt-14-dev python3 \
python3-jinja2 python3-jsonschema libcurl4-openssl-dev hipcc libamdhip64-dev rocm-device-libs llvm-15"

# Install the Debian packages we need (once; skipped when all are present).
lg_install_deps() {
	local missing=()
	[ "${LLAMAGPU_SKIP_INSTALL:-0}" = 1 ] && return 0
	for p in $LG_DEPS; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
	done
	[ ${#missing[@]} -eq 0 ] && return 0
	echo "== installing: ${missing[*]}"
	local sudo=""
	[ "$(id -u)" -ne 0 ] && sudo="sudo"
	$sudo env DEBIAN_FRONTEND=noninteractive apt-get update -q &&
		$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
}

lg_build() {
	echo "== make"
	export PATH="$($PG_CONFIG --bindir):$PATH"
	make -s -j"$(nproc)" PG_CONFIG="$PG_CONFIG"
}

lg_install() {
	echo "== make install"
	local sudo=""
	[ "$(id -u)" -ne 0 ] && [ ! -w "$($PG_CONFIG --pkglibdir)" ] && sudo="sudo"
	$sudo make -s install PG_CONFIG="$PG_CONFIG"
}

# The OS user that runs the cluster: postgres refuses to run as root.
lg_pg_user() {
	if [ "$(id -u)" -eq 0 ]; then echo postgres; else id -un; fi
}

# Run a shell command line as the cluster's OS user (within LG_TIMEOUT
# seconds, if set).
lg_run_as_pg() {
	local t=()
	[ -n "${LG_TIMEOUT:-}" ] && t=(timeout "$LG_TIMEOUT")
	if [ "$(id -u)" -eq 0 ]; then
		"${t[@]}" su postgres -s /bin/bash -c "$1"
	else
		"${t[@]}" bash -c "$1"
	fi
}

lg_psql() {
	local db=$1
	shift
	$LG_PSQL_CMD -X -v ON_ERROR_STOP=1 -d "$db" "$@"
}

# Start a cluster in a new temporary directory with llamagpu preloaded.
# Sets LG_TMP, LG_PGHOST, LG_PGPORT, LG_MODEL (empty if no model), LG_PSQL_CMD…
lg_cluster_start() {
	local name=$1 pguser
	pguser=$(lg_pg_user)
	if [ "$(id -u)" -eq 0 ] && ! id postgres >/dev/null 2>&1; then
		useradd --system --home-dir /var/lib/postgresql --shell /bin/bash postgres
	fi
	LG_BINDIR=$($PG_CONFIG --bindir)
	LG_PGXS_DIR=$(dirname "$(dirname "$(dirname "$($PG_CONFIG --pgxs)")")")
	LG_PERL5LIB=$(cd "$LG_PGXS_DIR/src/test/perl" && pwd)
	LG_PG_REGRESS=$(cd "$LG_PGXS_DIR/src/test/regress" && pwd)/pg_regress
	LG_TMP=$(mktemp -d "/tmp/llamagpu-$name.XXXXXX")
	LG_PGHOST=$LG_TMP
	LG_PGPORT=$((50000 + RANDOM % 10000))
	mkdir -p "$LG_TMP/models" "$LG_TMP/tap"

	# the model and its reference, readable by the server (a temporary copy,
	# never in the repository)
	LG_MODEL=""
	LG_MODEL_MISSING="model $LLAMAGPU_SHARED/fixtures/models/stories260K.gguf is absent"
	if [ -f "$LLAMAGPU_SHARED/fixtures/models/stories260K.gguf" ]; then
		cp "$LLAMAGPU_SHARED/fixtures/models/stories260K.gguf" "$LG_TMP/models/"
		cp "$LLAMAGPU_SHARED/fixtures/refs/stories260K.greedy.json" "$LG_TMP/refs.json" 2>/dev/null
		LG_MODEL=$LG_TMP/models/stories260K.gguf
	fi
	cp "$ROOT"/tests/tap/*.pl "$LG_TMP/tap/" 2>/dev/null
	cp -r "$ROOT"/tests/tap/lib "$LG_TMP/tap/" 2>/dev/null
	# engine plugins (make plugins), readable by the server: tests/tap/017_plugins.pl
	[ -d "$ROOT/build/plugins" ] && cp -r "$ROOT/build/plugins" "$LG_TMP/plugins"
	[ "$(id -u)" -eq 0 ] && chown -R postgres: "$LG_TMP"
	chmod 700 "$LG_TMP"

	lg_run_as_pg "'$LG_BINDIR/initdb' -D '$LG_TMP/data' -U postgres -A trust --no-sync >'$LG_TMP/initdb.log' 2>&1" || {
		cat "$LG_TMP/initdb.log"; return 1; }
	cat >>"$LG_TMP/data/postgresql.conf" <<CONF
port = $LG_PGPORT
listen_addresses = ''
unix_socket_directories = '$LG_TMP'
shared_preload_libraries = 'llamagpu'
llamagpu.model_dir = '$LG_TMP/models'
llamagpu.threads = 1
fsync = off
CONF
	# a development build of the engine may be tested without installing it
	if [ -n "${LLAMAGPU_ENGINE_PATH:-}" ]; then
		echo "llamagpu.engine_path = '$LLAMAGPU_ENGINE_PATH'" >>"$LG_TMP/data/postgresql.conf"
	fi
	lg_run_as_pg "'$LG_BINDIR/pg_ctl' -D '$LG_TMP/data' -l '$LG_TMP/server.log' -w start >/dev/null" || {
		cat "$LG_TMP/server.log"; return 1; }
	LG_PSQL_CMD="$LG_BINDIR/psql -h $LG_PGHOST -p $LG_PGPORT -U postgres"
	export LG_TMP LG_PGHOST LG_PGPORT LG_MODEL LG_PSQL_CMD
	export LLAMAGPU_TEST_MODEL=$LG_MODEL LLAMAGPU_TEST_REFS=$LG_TMP/refs.json
	echo "== cluster $LG_TMP/data on port $LG_PGPORT (log: $LG_TMP/server.log)"
}

lg_cluster_stop() {
	[ -n "${LG_TMP:-}" ] && [ -d "$LG_TMP/data" ] || return 0
	lg_run_as_pg "'$LG_BINDIR/pg_ctl' -D '$LG_TMP/data' -m fast -w stop >/dev/null 2>&1"
	if [ "${LLAMAGPU_KEEP_TMP:-0}" != 1 ]; then
		rm -rf "$LG_TMP"
	else
		echo "kept $LG_TMP"
	fi
}
