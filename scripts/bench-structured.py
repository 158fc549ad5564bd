#!/usr/bin/env python3
"""scripts/bench-structured.py — the cost of structured output (issue 6).

Run through scripts/bench-structured.sh.  Measures, on the real 32k-token
Llama 2 vocabulary (../shared/fixtures/tokenizer/ggml-vocab-llama-spm.gguf):

  1. compile time per schema: JSONSchemaBench schemas from ../shared (a
     sample of --schemas per dataset, or all), schema to GBNF and GBNF to a
     grammar, in-process times from `llamagpu generate --print-grammar
     --json`; p50/p99, and how many compiled;
  2. mask time per token: `llamagpu grammar bench` walking a valid instance
     of each of --mask-schemas schemas (and llama.cpp's json.gbnf over a
     long JSON text) token by token; p50/p99 over all steps, cold (caches
     filling) and warm;
  3. generation tokens/s through `llamagpu serve` on a random-weight model
     with that vocabulary (synth --vocab-from, cached in the work dir):
     unconstrained against a JSON schema whose output runs to max_tokens
     (a free-text string field), one request alone and --batch at once;
     end-of-generation banned so every request generates max_tokens.

usage: scripts/bench-structured.py [--dim 512] [--layers 4] [--type q8_0]
         [--threads 2] [--max-tokens 128] [--batch 8] [--schemas 100]
         [--all] [--mask-schemas 40] [--work-dir build/bench-structured]
"""
import argparse
import glob
import json
import os
import random
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "cli"))
import test_cli  # noqa: E402  (EngineServer, the framed client, BIN, SHARED)

VOCAB = os.path.join(test_cli.SHARED, "fixtures", "tokenizer", "ggml-vocab-llama-spm.gguf")
BENCH = os.path.join(test_cli.SHARED, "fixtures", "jsonschemabench")
JSON_GBNF = os.path.join(test_cli.SHARED, "fixtures", "gbnf", "json.gbnf")
# a schema whose output is as long as max_tokens lets it be: one free string
LONG_SCHEMA = {"type": "object", "properties": {"title": {"type": "string"}, "body": {"type": "string"}},
               "required": ["title", "body"], "additionalProperties": False}


def pct(xs, p):
    """The p-th percentile (nearest rank) of xs."""
    xs = sorted(xs)
    if not xs:
        return float("nan")
    k = max(0, min(len(xs) - 1, int(round(p / 100.0 * len(xs) + 0.5)) - 1))
    return xs[k]


def llamagpu(*args, check=True):
    return subprocess.run([test_cli.BIN, *map(str, args)], capture_output=True, text=True, check=check)


def schemas_sample(per_dataset, everything, seed=1):
    """Fixture files, grouped by dataset: all, or a seeded sample of per_dataset each."""
    by = {}
    for path in sorted(glob.glob(os.path.join(BENCH, "*.json"))):
        by.setdefault(os.path.basename(path).split("---")[0], []).append(path)
    rnd = random.Random(seed)
    return {d: (paths if everything else rnd.sample(paths, min(per_dataset, len(paths))))
            for d, paths in sorted(by.items())}


def compile_times(groups, work):
    """Per dataset: compiled, total; and every compile's (schema->GBNF, GBNF->grammar) time in us."""
    rows = {}
    times = []
    grammars = []   # (gbnf path, valid instance path) for the mask benchmark
    for dataset, paths in groups.items():
        ok = 0
        for path in paths:
            with open(path) as f:
                doc = json.load(f)
            sfile = os.path.join(work, "schema.json")
            with open(sfile, "w") as f:
                json.dump(doc["schema"], f)
            p = llamagpu("generate", "--json-schema", sfile, "--print-grammar", "--json", check=False)
            if p.returncode != 0:
                continue
            ok += 1
            out = json.loads(p.stdout)
            times.append((out["compile_us"], out["parse_us"]))
            valid = [t["data"] for t in doc.get("tests", []) if t.get("valid")]
            if valid:
                grammars.append((dataset, os.path.basename(path), out["gbnf"], valid[0]))
        rows[dataset] = (ok, len(paths))
    return rows, times, grammars


def mask_times(grammars, n, work):
    """grammar bench over n (grammar, instance) pairs and json.gbnf: every step's p50/p99, cold and warm."""
    rnd = random.Random(2)
    picked = rnd.sample(grammars, min(n, len(grammars)))
    runs = []
    jobs = [(os.path.basename(JSON_GBNF), open(JSON_GBNF).read(),
             json.dumps({"items": [{"id": i, "name": "item %d" % i, "tags": ["a", "b"], "price": i * 1.5}
                                   for i in range(20)]}))]
    jobs += [(name, gbnf, json.dumps(inst)) for _, name, gbnf, inst in picked]
    for name, gbnf, text in jobs:
        g = os.path.join(work, "g.gbnf")
        t = os.path.join(work, "t.txt")
        with open(g, "w") as f:
            f.write(gbnf)
        with open(t, "w") as f:
            f.write(text)
        p = llamagpu("grammar", "bench", "--gbnf", g, "-m", VOCAB, "--text", t, "--json", check=False)
        if p.returncode != 0:
            continue   # the instance needs whitespace or a key order the grammar does not produce
        runs.append((name, json.loads(p.stdout)))
    return runs


def serve_rate(conn, model, reqs):
    """Send reqs at once; generated tokens per second of wall time, and the replies."""
    t0 = time.time()
    for rid, f in reqs.items():
        conn.send("G", rid, **f)
    out = conn.collect(list(reqs), timeout=3600)
    wall = time.time() - t0
    n = 0
    for rid, (text, typ, fields) in out.items():
        if typ != "E":
            raise SystemExit("request %d failed: %s" % (rid, fields))
        n += int(fields["n_gen"])
    return n / wall, out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--type", default="q8_0")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--max-tokens", type=int, default=128)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--schemas", type=int, default=100, help="schemas per dataset for compile times")
    ap.add_argument("--all", action="store_true", help="every JSONSchemaBench schema")
    ap.add_argument("--mask-schemas", type=int, default=40)
    ap.add_argument("--work-dir", default=os.path.join(ROOT, "build", "bench-structured"))
    a = ap.parse_args()
    for path in (VOCAB, BENCH, JSON_GBNF):
        if not os.path.exists(path):
            raise SystemExit("missing fixture %s (set LLAMAGPU_SHARED)" % path)
    os.makedirs(a.work_dir, exist_ok=True)

    # 1. compile times
    groups = schemas_sample(a.schemas, a.all)
    rows, times, grammars = compile_times(groups, a.work_dir)
    print("== schema compile time (%s JSONSchemaBench schemas)" % ("all" if a.all else "%d per dataset" % a.schemas))
    print("%-16s %9s %7s" % ("dataset", "compiled", "total"))
    for d, (ok, total) in rows.items():
        print("%-16s %9d %7d" % (d, ok, total))
    tot = [c + p for c, p in times]
    print("schema->grammar  p50 %8.1f us  p99 %8.1f us  (to GBNF p50 %.1f us, GBNF parse p50 %.1f us)" % (
        pct(tot, 50), pct(tot, 99), pct([c for c, _ in times], 50), pct([p for _, p in times], 50)))

    # 2. mask times
    runs = mask_times(grammars, a.mask_schemas, a.work_dir)
    print("\n== token mask time, 32000-token vocabulary (%d grammars walked over valid instances)" % len(runs))
    for phase in ("cold", "warm"):
        p50s = [r[phase]["p50_us"] for _, r in runs]
        p99s = [r[phase]["p99_us"] for _, r in runs]
        steps = sum(r[phase]["steps"] for _, r in runs)
        print("%-5s %6d steps  p50 (median over grammars) %7.2f us  p99 (median) %7.2f us  p99 (worst) %8.2f us" % (
            phase, steps, statistics.median(p50s), statistics.median(p99s), max(p99s)))
    jg = [r for n, r in runs if n == os.path.basename(JSON_GBNF)]
    if jg:
        print("json.gbnf over a %d-step JSON text: cold p50 %.2f us p99 %.2f us, warm p50 %.2f us p99 %.2f us" % (
            jg[0]["warm"]["steps"], jg[0]["cold"]["p50_us"], jg[0]["cold"]["p99_us"],
            jg[0]["warm"]["p50_us"], jg[0]["warm"]["p99_us"]))

    # 3. generation
    model = os.path.join(a.work_dir, "llama-spm32k-d%d-l%d-%s.gguf" % (a.dim, a.layers, a.type))
    if not os.path.exists(model):
        heads = max(1, a.dim // 64)
        llamagpu("synth", "--arch", "llama", "--dim", a.dim, "--layers", a.layers, "--heads", heads,
                 "--ffn", a.dim * 8 // 3 // 32 * 32, "--vocab-from", VOCAB, "--ctx", 2048, "--type", a.type,
                 "--seed", 5, "-o", model)
    srv = test_cli.EngineServer("--threads", a.threads, "--max-seqs", max(a.batch, 1))
    try:
        conn = srv.connect()
        base = {"model": "bench", "path": model, "max_tokens": a.max_tokens, "temperature": 0.8,
                "logit_bias": "2:-inf"}
        schema = json.dumps(LONG_SCHEMA)
        prompts = ["Write a JSON object about item %d:" % i for i in range(a.batch)]
        serve_rate(conn, model, {1: dict(base, prompt="warm up", max_tokens=8)})
        results = {}
        for label, extra in (("unconstrained", {}), ("json_schema", {"json_schema": schema})):
            single, _ = serve_rate(conn, model, {10: dict(base, prompt=prompts[0], seed=1, **extra)})
            batched, out = serve_rate(conn, model, {100 + i: dict(base, prompt=prompts[i], seed=i, **extra)
                                                    for i in range(a.batch)})
            results[label] = (single, batched)
            if extra:
                for rid, (text, typ, fields) in out.items():
                    if not text.startswith("{") or '"title"' not in text:
                        raise SystemExit("request %d: output is not the schema's JSON: %r" % (rid, text[:80]))
        conn.close()
    finally:
        srv.stop()
    print("\n== generation, %s (dim %d, %d layers, 32000 tokens), %d threads, %d new tokens per request" % (
        a.type, a.dim, a.layers, a.threads, a.max_tokens))
    print("%-14s %14s %22s" % ("", "single tok/s", "batched x%d tok/s" % a.batch))
    for label, (single, batched) in results.items():
        print("%-14s %14.1f %22.1f" % (label, single, batched))
    u, s = results["unconstrained"], results["json_schema"]
    print("%-14s %13.0f%% %21.0f%%" % ("ratio", 100 * s[0] / u[0], 100 * s[1] / u[1]))


if __name__ == "__main__":
    main()
