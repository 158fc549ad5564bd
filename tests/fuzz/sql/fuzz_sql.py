#!/usr/bin/env python3
"""fuzz_sql.py — random and mutated strings for the extension's SQL-side parsers.

Writes a psql script (stdout) that calls each parser with N inputs inside a
plpgsql block that catches every error and records its SQLSTATE and message,
then prints what came back and fails (psql exits non-zero) on a crash (the
connection is lost), an internal error (XX000) or an error without a message.
Not part of CI; run with:

    python3 tests/fuzz/sql/fuzz_sql.py 300 > /tmp/fz.sql
    /work/wt/pgtest.sh sql:/tmp/fz.sql

Parsers covered: hf:// and http(s) sources (llm_pull_model,
llm_list_remote_files: src/pg/hub.c), request.headers and API keys
(llm_pre_request, llm_api_key_authenticate), llm_register_remote_model's
base URL, remote model and options, llm_install_plugin's names, kinds,
sources, checksums and options, llm_plugin_inspect's path and checksum, and
llm_pull_model's options.  The hub is pointed at a closed local port, so a
source that parses fails fast at the connection.
"""
import json
import random
import sys

N = int(sys.argv[1]) if len(sys.argv) > 1 else 200
rng = random.Random(int(sys.argv[2]) if len(sys.argv) > 2 else 1)

ALPHABET = ("abcXYZ019._-+/@:%?#&=~ \t\n\r\\'\"`${}[]<>|^*!,;"
            "\u00e9\u2028\ufeff\U0001F600\x01\x7f")


def rand_str(maxlen=40):
    n = rng.choice([0, 1, 2, 5, 10, maxlen, rng.randrange(maxlen + 1)])
    return "".join(rng.choice(ALPHABET) for _ in range(n))


def mutate(s):
    s = list(s)
    for _ in range(rng.randrange(1, 5)):
        op = rng.randrange(6)
        pos = rng.randrange(len(s) + 1)
        if op == 0 and s:
            del s[min(pos, len(s) - 1)]
        elif op == 1:
            s.insert(pos, rng.choice(ALPHABET))
        elif op == 2 and s:
            s[min(pos, len(s) - 1)] = rng.choice(ALPHABET)
        elif op == 3:
            s.insert(pos, rng.choice(["/", "..", "@", "%", "%2F", "%00", "//", "://", "@@", "hf://",
                                      "?x=1", "#f", "\\", "'", "lgk_", "Bearer "]))
        elif op == 4:
            s = s[:pos] + s[pos:] * rng.randrange(2, 40)
        else:
            s = s[:pos]
    return "".join(s)


def pick(valid, maxlen=40):
    r = rng.random()
    if r < 0.15:
        return rng.choice(valid)
    if r < 0.75:
        return mutate(rng.choice(valid))
    return rand_str(maxlen)


def lit(s):
    """A SQL literal: E'' with every character escaped that needs it; NUL dropped (text cannot hold it)."""
    if s is None:
        return "NULL"
    out = []
    for ch in s.replace("\x00", ""):
        if ch == "'":
            out.append("''")
        elif ch == "\\":
            out.append("\\\\")
        elif ord(ch) < 32 or ord(ch) == 127:
            out.append("\\x%02x" % ord(ch))
        else:
            out.append(ch)
    return "E'" + "".join(out) + "'"


def rand_json(depth=0):
    r = rng.randrange(8 if depth < 2 else 5)
    if r == 0:
        return None
    if r == 1:
        return rng.choice([True, False])
    if r == 2:
        return rng.choice([0, -1, 1, 3, 10, 11, 2**31, -2**31, 2**63, 1.5, 1e300, -0.0, 600001])
    if r in (3, 4):
        return rand_str(20)
    if r == 5:
        return [rand_json(depth + 1) for _ in range(rng.randrange(3))]
    return {pick(KEYS, 20): rand_json(depth + 1) for _ in range(rng.randrange(4))}


KEYS = ["wait", "sha256", "token_secret", "file_name", "retries", "stall_timeout", "context_size",
        "description", "connect_timeout_ms", "timeout_ms", "max_retries", "retry_base_ms",
        "retry_max_ms", "stream", "sampling_extensions", "prompt_api", "authorization", "x-api-key",
        "symbol", "options", "base_url"]


def json_text():
    r = rng.random()
    if r < 0.7:
        v = rand_json()
        if rng.random() < 0.7 and not isinstance(v, dict):
            v = {pick(KEYS, 20): v}
        return json.dumps(v)
    return pick(['{}', '{"a":1}', '[1,2]', '"x"', 'null', '{"authorization":"Bearer lgk_x"}'], 30)


SOURCES = ["hf://ggml-org/models/tinyllamas/stories260K.gguf@main",
           "hf://TheBloke/Llama-2-7B-GGUF/llama-2-7b.Q4_K_M.gguf",
           "hf://org/repo/dir/sub/file-Q8_0.gguf@refs/pr/1",
           "https://127.0.0.1:9/models/x.gguf?download=true",
           "http://localhost:9/a%2Fb.gguf", "hf://a/b/c.gguf@v1.0"]
REPOS = ["ggml-org/models", "TheBloke/Llama-2-7B-GGUF", "hf://org/repo", "org/repo/sub"]
URLS = ["https://api.openai.com/v1", "http://127.0.0.1:9/v1", "http://[::1]:8000", "https://h/"]
KEYS_API = ["lgk_ABCDEFGH_" + "a" * 43, "lgk_", "Bearer lgk_ABCDEFGH_xyz", "sk-1234"]
CHECKSUMS = ["0" * 64, "A" * 64, "abc", ""]
PLUGIN_NAMES = ["ban_words", "p-1", "x" * 63, "a b"]

cases = []
for _ in range(N):
    s = pick(SOURCES, 120)
    cases.append(("llm_pull_model.source",
                  "SELECT llamagpu.llm_pull_model(%s, NULL, '{\"retries\":0}')" % lit(s), s))
    o = json_text()
    cases.append(("llm_pull_model.options",
                  "SELECT llamagpu.llm_pull_model('hf://a/b/c.gguf', NULL, %s::jsonb)" % lit(o), o))
    r, v = pick(REPOS, 60), pick(["main", "v1.0", "refs/pr/1", "..", "a" * 300], 40)
    cases.append(("llm_list_remote_files",
                  "SELECT * FROM llamagpu.llm_list_remote_files(%s, %s)" % (lit(r), lit(v)), r + " @ " + v))
    h = json_text() if rng.random() < 0.6 else json.dumps(
        {rng.choice(["authorization", "x-api-key"]): pick(KEYS_API, 80)})
    cases.append(("llm_pre_request.headers",
                  "SELECT set_config('request.headers', %s, true), llamagpu.llm_pre_request()" % lit(h), h))
    k = pick(KEYS_API, 80)
    cases.append(("llm_api_key_authenticate",
                  "SELECT llamagpu.llm_api_key_authenticate(%s)" % lit(k), k))
    u, m, o = pick(URLS, 80), pick(["gpt-4o-mini", "meta/llama"], 30), json_text()
    if rng.random() < 0.5:
        # a valid endpoint, so that the options are what is checked
        u, m = rng.choice(URLS), "gpt-4o-mini"
        o = json.dumps({rng.choice(KEYS[8:16]): rand_json(1) for _ in range(rng.randrange(1, 4))})
    cases.append(("llm_register_remote_model",
                  "SELECT llamagpu.llm_register_remote_model(%s, %s, %s, NULL, %s::jsonb)" %
                  (lit("fz.remote" if rng.random() < 0.5 else pick(["fz.remote", "a:b"], 70)), lit(u), lit(m), lit(o)),
                  "%s | %s | %s" % (u, m, o)))
    n, kind, src, ck = (pick(PLUGIN_NAMES, 70), pick(["engine", "provider", "sql"], 10),
                        pick(["/nonexistent/p.so", "llamagpu.fz", "public.f(text)"], 60), pick(CHECKSUMS, 70))
    cases.append(("llm_install_plugin",
                  "SELECT llamagpu.llm_install_plugin(%s, %s, %s, %s, %s::jsonb)" %
                  (lit(n), lit(kind), lit(src), lit(ck), lit(json_text())), "%s | %s | %s | %s" % (n, kind, src, ck)))
    p = pick(["/nonexistent/p.so", "/dev/null", "/etc/passwd", "relative.so", "/tmp/../tmp/x.so"], 60)
    cases.append(("llm_plugin_inspect",
                  "SELECT * FROM llamagpu.llm_plugin_inspect(%s, %s)" % (lit(p), lit(pick(CHECKSUMS, 70))), p))

print(r"""\set ON_ERROR_STOP 1
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS llamagpu CASCADE;
SET llamagpu.hub_endpoint = 'http://127.0.0.1:9';
CREATE TEMP TABLE fz (fn text, arg text, state text, msg text);
CREATE FUNCTION pg_temp.fz(fn text, q text, arg text) RETURNS void LANGUAGE plpgsql AS $f$
DECLARE st text; m text;
BEGIN
	BEGIN
		EXECUTE q;
		st := 'ok'; m := '';
		-- a call that succeeded leaves nothing behind (a model, a plugin, a role switch)
		RAISE EXCEPTION USING ERRCODE = 'P0001', MESSAGE = 'rollback';
	EXCEPTION WHEN OTHERS THEN
		IF st IS NULL THEN
			GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, m = MESSAGE_TEXT;
		END IF;
	END;
	INSERT INTO fz VALUES (fn, arg, st, m);
END $f$;
\o /dev/null""")
for fn, q, arg in cases:
    print("SELECT pg_temp.fz(%s, %s, %s);" % (lit(fn), lit(q), lit(arg)))
print(r"""\o
\pset pager off
SELECT fn, state, count(*) AS n, min(msg) AS example FROM fz GROUP BY 1, 2 ORDER BY 1, 2;
SELECT fn, arg, state, msg FROM fz WHERE state = 'XX000' OR msg = '' AND state <> 'ok' OR msg ~* 'internal|unexpected|cache lookup';
DO $$ BEGIN
	IF EXISTS (SELECT FROM fz WHERE state = 'XX000' OR (msg = '' AND state <> 'ok')) THEN
		RAISE EXCEPTION 'fuzz_sql: internal or empty errors (above)';
	END IF;
END $$;""")
