#!/usr/bin/env python3
"""scripts/bench-batching.py — continuous batching through `llamagpu serve`.

Makes (once, cached in the work dir) a random-weight llama model with
`llamagpu synth`, starts `llamagpu serve` on it, and measures:

  1. N greedy requests one after another, then the same N sent at once on
     one connection: generated tokens per second of wall time, and whether
     every output is the same both ways;
  2. M requests sharing a long prefix (a system prompt) with different
     endings, one after another: prompt tokens taken from the prefix cache
     and the prompt time of the first request against the others.

usage: scripts/bench-batching.py [--dim 512] [--layers 8] [--type q8_0] [--n 16]
         [--max-tokens 64] [--threads 2] [--prefix-reps 12] [--m 8]
         [--work-dir build/bench-batching] [--serve-option OPT ...]
"""
import argparse
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "cli"))
import test_cli  # noqa: E402  (EngineServer, the framed client)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--layers", type=int, default=8)
    ap.add_argument("--type", default="q8_0")
    ap.add_argument("--n", type=int, default=16)
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--prefix-reps", type=int, default=12)
    ap.add_argument("--m", type=int, default=8)
    ap.add_argument("--work-dir", default=os.path.join(ROOT, "build", "bench-batching"))
    ap.add_argument("--serve-option", action="append", default=[])
    a = ap.parse_args()

    os.makedirs(a.work_dir, exist_ok=True)
    model = os.path.join(a.work_dir, "llama-d%d-l%d-%s.gguf" % (a.dim, a.layers, a.type))
    if not os.path.exists(model):
        heads = max(1, a.dim // 64)
        subprocess.run([test_cli.BIN, "synth", "--arch", "llama", "--dim", str(a.dim), "--layers", str(a.layers),
                        "--heads", str(heads), "--kv-heads", str(heads), "--ffn", str(a.dim * 8 // 3 // 32 * 32),
                        "--vocab-bytes", "--vocab-size", "512", "--ctx", "2048", "--type", a.type,
                        "--seed", "5", "-o", model], check=True)

    srv = test_cli.EngineServer("--threads", a.threads, *a.serve_option)
    try:
        conn = srv.connect()

        def fields(prompt, **kw):
            f = {"model": "bench", "path": model, "prompt": prompt, "max_tokens": a.max_tokens,
                 "temperature": 0}
            f.update(kw)
            return f

        prompts = ["Request %d: tell me a story about the number %d." % (i, i * 7) for i in range(a.n)]
        conn.send("G", 999, **fields("warm up", max_tokens=4))
        conn.collect([999])

        t0 = time.time()
        alone = {}
        for i, p in enumerate(prompts):
            conn.send("G", i + 1, **fields(p))
            alone.update(conn.collect([i + 1], timeout=600))
        t_seq = time.time() - t0

        t0 = time.time()
        for i, p in enumerate(prompts):
            conn.send("G", i + 1, **fields(p))
        together = conn.collect([i + 1 for i in range(a.n)], timeout=600)
        t_conc = time.time() - t0

        n_seq = sum(int(v[2]["n_gen"]) for v in alone.values())
        n_conc = sum(int(v[2]["n_gen"]) for v in together.values())
        same = all(alone[k][0] == together[k][0] for k in alone)
        print("model: %s (dim %d, %d layers, %s), serve --threads %d %s"
              % (os.path.basename(model), a.dim, a.layers, a.type, a.threads, " ".join(a.serve_option)))
        print("sequential: %d requests, %d tokens in %.2f s = %.1f tokens/s"
              % (a.n, n_seq, t_seq, n_seq / t_seq))
        print("concurrent: %d requests, %d tokens in %.2f s = %.1f tokens/s (x%.2f); outputs identical: %s"
              % (a.n, n_conc, t_conc, n_conc / t_conc, (n_conc / t_conc) / (n_seq / t_seq), same))
        first = [float(v[2]["t_first_ms"]) for v in together.values()]
        print("concurrent: time to first token %.0f ms median, %.0f ms max"
              % (sorted(first)[len(first) // 2], max(first)))

        prefix = "You are a helpful assistant that answers in one short paragraph. " * a.prefix_reps
        rows = []
        for i in range(a.m):
            conn.send("G", 500 + i, **fields(prefix + "Question %d: why is the sky blue?" % i, max_tokens=8))
            rows.append(conn.collect([500 + i], timeout=600)[500 + i][2])
        n_prompt = sum(int(r["n_prompt"]) for r in rows)
        n_cached = sum(int(r["n_cached"]) for r in rows)
        print("prefix cache: %d requests of about %d prompt tokens, all but the last few shared: "
              "%d of %d prompt tokens from the cache (%.0f%%)"
              % (a.m, int(rows[0]["n_prompt"]), n_cached, n_prompt, 100.0 * n_cached / n_prompt))
        print("prefix cache: prompt time %.1f ms for the first, %.1f ms mean for the others"
              % (float(rows[0]["t_prompt_ms"]), sum(float(r["t_prompt_ms"]) for r in rows[1:]) / max(1, a.m - 1)))
        st = conn.status()
        for line in test_cli.as_list(st.get("sched")):
            print("STATUS sched:", line.replace("\t", " "))
        conn.close()
    finally:
        srv.stop()


if __name__ == "__main__":
    main()
