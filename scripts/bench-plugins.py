#!/usr/bin/env python3
"""The cost of an engine plugin's logits hook (docs/plugins.md, docs/benchmarks.md).

Runs `llamagpu serve` with the example plugin (build/plugins/banwords.so) and
times greedy generations of stories260K (the smallest model, so the hook's
share of a token is as large as it gets) three ways: no processor, a
logit_bias, and banwords, the last two adding 0 to 40 tokens' logits so the
output (and so the work) is the same all three ways.  The ways take turns,
so drift on a shared machine hits each alike.  Prints tokens/s (median of
REPS runs of N tokens each).

    python3 scripts/bench-plugins.py [REPS] [N]
"""
import json
import os
import statistics
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "cli"))
import test_cli  # noqa: E402  (EngineServer, plugin_check)

reps = int(sys.argv[1]) if len(sys.argv) > 1 else 9
n = int(sys.argv[2]) if len(sys.argv) > 2 else 256
so = os.path.join(test_cli.PLUGIN_DIR, "banwords.so")
sha = test_cli.plugin_check(so)[1]["sha256"]
touched = list(range(300, 340))       # 40 tokens, each biased by 0
srv = test_cli.EngineServer("--plugin", "banwords:%s:%s" % (sha, so))
try:
    conn = srv.connect()
    base = {"model": "stories", "path": test_cli.STORIES, "prompt": "Once upon a time", "max_tokens": n,
            "temperature": 0, "stop": "\x01"}
    ways = {
        "none": [],
        "logit_bias": [("logit_bias", "%d:0" % t) for t in touched],
        "banwords": [("logits_processor", "banwords"),
                     ("plugin_options", json.dumps({"bias": {str(t): 0 for t in touched}}))],
    }
    rid = 0
    rates = {name: [] for name in ways}
    texts = {}
    for _ in range(reps):
        for name, extra in ways.items():
            rid += 1
            conn.send("G", rid, fields=list(base.items()) + extra)
            text, typ, end = conn.collect([rid])[rid]
            assert typ == "E", end
            texts.setdefault(text, name)
            rates[name].append(int(end["n_gen"]) / (float(end["t_gen_ms"]) / 1000.0))
    assert len(texts) == 1, "the three ways must generate the same text"
    print("%d tokens per run, %d runs per way" % (int(end["n_gen"]), reps))
    out = {name: statistics.median(r) for name, r in rates.items()}
    for name, r in out.items():
        print("%-11s %9.0f tokens/s  (%.3f of none)" % (name, r, r / out["none"]))
finally:
    srv.stop()
