#!/usr/bin/python3
"""Check llm_metrics() output with Prometheus' own parser (prometheus_client).

usage: check_metrics.py FIRST.prom SECOND.prom EXPECTED.json

FIRST and SECOND are two scrapes, in that order, with generations in
between; EXPECTED holds the llm_stat_models and llm_stat_engine rows read
right after SECOND (nothing ran in between).  Checks: both parse; every
family has HELP and the type llama.cpp/vLLM give it; histogram buckets are
cumulative and +Inf equals _count; no counter went down; the numbers agree
with the views.  Prints TAP-style lines ("ok"/"not ok") and exits 1 on a
failure.  Needs Debian's /usr/bin/python3 (python3-prometheus-client).
"""
import json
import math
import sys

from prometheus_client.parser import text_string_to_metric_families

FAILED = []


def check(cond, what):
    print(("ok - " if cond else "not ok - ") + what)
    if not cond:
        FAILED.append(what)


# family (as the parser names it: a counter loses _total) -> type
TYPES = {
    "llamacpp:prompt_tokens": "counter",
    "llamacpp:tokens_predicted": "counter",
    "llamacpp:n_decode": "counter",
    "llamacpp:kv_cache_usage_ratio": "gauge",
    "llamacpp:kv_cache_tokens": "gauge",
    "llamacpp:requests_processing": "gauge",
    "llamacpp:requests_deferred": "gauge",
    "vllm:num_requests_running": "gauge",
    "vllm:num_requests_waiting": "gauge",
    "vllm:kv_cache_usage_perc": "gauge",
    "vllm:prefix_cache_queries": "counter",
    "vllm:prefix_cache_hits": "counter",
    "vllm:num_preemptions": "counter",
    "vllm:prompt_tokens": "counter",
    "vllm:generation_tokens": "counter",
    "vllm:request_success": "counter",
    "vllm:time_to_first_token_seconds": "histogram",
    "vllm:inter_token_latency_seconds": "histogram",
    "vllm:time_per_output_token_seconds": "histogram",
    "vllm:e2e_request_latency_seconds": "histogram",
    "llamagpu_up": "gauge",
    "llamagpu_engine_restarts": "counter",
    "llamagpu_engine_uptime_seconds": "gauge",
    "llamagpu_device_memory_used_bytes": "gauge",
    "llamagpu_device_memory_total_bytes": "gauge",
    "llamagpu_model_loaded": "gauge",
    "llamagpu_model_weights_bytes": "gauge",
    "llamagpu_model_kv_cache_bytes": "gauge",
    "llamagpu_requests": "counter",
    "llamagpu_request_errors": "counter",
    "llamagpu_requests_rejected": "counter",
    "llamagpu_batch_tokens": "counter",
    "llamagpu_kv_cache_blocks_used": "gauge",
    "llamagpu_kv_cache_blocks_cached": "gauge",
    "llamagpu_kv_cache_blocks_total": "gauge",
    "llamagpu_embedding_requests": "counter",
    "llamagpu_embedding_inputs": "counter",
    "llamagpu_embedding_prompt_tokens": "counter",
}


def parse(path):
    """{family: (type, help, [(sample name, labels, value)])}"""
    with open(path) as f:
        text = f.read()
    out = {}
    for fam in text_string_to_metric_families(text):
        check(fam.name not in out, "family %s appears once" % fam.name)
        out[fam.name] = (fam.type, fam.documentation,
                         [(s.name, dict(s.labels), s.value) for s in fam.samples])
    return out


def value(fams, family, sample, **labels):
    """The value of one sample, or None."""
    for name, lab, v in fams.get(family, (None, None, []))[2]:
        if name == sample and all(lab.get(k) == str(x) for k, x in labels.items()):
            return v
    return None


def quantile(buckets, count, q):
    """histogram_quantile over [(le, cumulative)] (le sorted, last +Inf)."""
    rank = q * count
    prev_le, prev_c = 0.0, 0.0
    for le, c in buckets:
        if c >= rank:
            if math.isinf(le):
                return prev_le
            if c == prev_c:
                return le
            return prev_le + (le - prev_le) * (rank - prev_c) / (c - prev_c)
        prev_le, prev_c = le, c
    return prev_le


def histograms(fams, family):
    """{model: ([(le, cumulative)], sum, count)}"""
    out = {}
    for name, lab, v in fams[family][2]:
        h = out.setdefault(lab["model_name"], [[], None, None])
        if name.endswith("_bucket"):
            h[0].append((float(lab["le"]), v))
        elif name.endswith("_sum"):
            h[1] = v
        elif name.endswith("_count"):
            h[2] = v
    return out


def close(a, b):
    return a is not None and b is not None and abs(a - b) <= 1e-6 * max(1.0, abs(a), abs(b))


def main():
    first, second = parse(sys.argv[1]), parse(sys.argv[2])
    with open(sys.argv[3]) as f:
        expected = json.load(f)

    for fam, typ in TYPES.items():
        check(fam in second, "%s is exposed" % fam)
        if fam in second:
            check(second[fam][0] == typ, "%s is a %s (got %s)" % (fam, typ, second[fam][0]))
            check(bool(second[fam][1]), "%s has HELP text" % fam)

    # histograms: cumulative buckets, +Inf = _count
    for fam, (typ, _, _) in second.items():
        if typ != "histogram":
            continue
        for model, (buckets, total, count) in histograms(second, fam).items():
            les = [le for le, _ in buckets]
            cums = [c for _, c in buckets]
            check(les == sorted(les) and math.isinf(les[-1]), "%s{%s}: le ascending, ending at +Inf" % (fam, model))
            check(all(a <= b for a, b in zip(cums, cums[1:])), "%s{%s}: buckets are cumulative" % (fam, model))
            check(cums[-1] == count, "%s{%s}: +Inf bucket (%s) = _count (%s)" % (fam, model, cums[-1], count))
            check(total is not None and total >= 0, "%s{%s}: _sum present and >= 0" % (fam, model))

    # counters only grow between the two scrapes
    grew = True
    for fam, (typ, _, samples) in first.items():
        if typ not in ("counter", "histogram"):
            continue
        for name, lab, v in samples:
            if name.endswith("_created"):
                continue
            later = value(second, fam, name, **lab)
            if later is None or later < v:
                grew = False
                print("# %s %s went from %s to %s" % (name, lab, v, later))
    check(grew, "no counter (nor histogram bucket) went down between scrapes")

    # the numbers agree with llm_stat_models and llm_stat_engine
    for m in expected["models"]:
        name = m["model"]
        if m["requests"] == 0:
            continue
        for fam, col in (("vllm:prompt_tokens", "prompt_tokens"), ("llamacpp:prompt_tokens", "prompt_tokens"),
                         ("vllm:generation_tokens", "generated_tokens"),
                         ("llamacpp:tokens_predicted", "generated_tokens"),
                         ("llamagpu_request_errors", "errors"),
                         ("llamagpu_embedding_requests", "embedding_requests"),
                         ("llamagpu_embedding_inputs", "embedding_inputs"),
                         ("llamagpu_embedding_prompt_tokens", "embedding_prompt_tokens")):
            got = value(second, fam, fam + "_total", model_name=name)
            check(got == m[col], "%s{%s} = %s (llm_stat_models.%s %s)" % (fam, name, got, col, m[col]))
        by_outcome = {lab["outcome"]: v for _, lab, v in second["llamagpu_requests"][2] if lab["model_name"] == name}
        check(by_outcome == {k: float(v) for k, v in m["outcomes"].items()},
              "llamagpu_requests_total{%s} by outcome = llm_stat_models.outcomes" % name)
        check(sum(by_outcome.values()) == m["requests"], "requests by outcome sum to llm_stat_models.requests")
        success = sum(v for _, lab, v in second["vllm:request_success"][2] if lab["model_name"] == name)
        check(success <= m["requests"], "vllm:request_success_total <= requests")
        e2e = histograms(second, "vllm:e2e_request_latency_seconds")[name]
        ttft = histograms(second, "vllm:time_to_first_token_seconds")[name]
        itl = histograms(second, "vllm:inter_token_latency_seconds")[name]
        tpot = histograms(second, "vllm:time_per_output_token_seconds")[name]
        check(e2e[2] == m["requests"], "e2e _count = requests")
        check(ttft[2] + itl[2] == m["generated_tokens"], "TTFT count + ITL count = generated tokens")
        check(tpot == itl, "time_per_output_token is the inter-token latency histogram")
        for kind, h in (("ttft", ttft), ("itl", itl), ("e2e", e2e)):
            for q in (50, 95, 99):
                col = "%s_p%d_ms" % (kind, q)
                if h[2] == 0:
                    check(m[col] is None, "%s is NULL for an empty histogram" % col)
                else:
                    got = quantile(h[0], h[2], q / 100.0) * 1000
                    check(close(got, m[col]), "%s{%s} = %s, histogram_quantile gives %s" % (col, name, m[col], got))
        check(value(second, "llamagpu_model_loaded", "llamagpu_model_loaded", model_name=name) == (1 if m["loaded"] else 0),
              "llamagpu_model_loaded agrees with llm_stat_models.loaded")
        if m["loaded"]:
            check(value(second, "llamagpu_model_weights_bytes", "llamagpu_model_weights_bytes", model_name=name)
                  == m["weights_bytes"], "weights bytes agree")
            check(value(second, "llamagpu_model_kv_cache_bytes", "llamagpu_model_kv_cache_bytes", model_name=name)
                  == m["kv_cache_bytes"], "KV pool bytes agree")
    for e in expected["engine"]:
        check(value(second, "llamagpu_up", "llamagpu_up") == 1, "llamagpu_up is 1")
        check(value(second, "llamagpu_engine_restarts", "llamagpu_engine_restarts_total") == e["restarts"],
              "restarts agree with llm_stat_engine")
        check(value(second, "llamagpu_device_memory_total_bytes", "llamagpu_device_memory_total_bytes",
                    device=e["device"]) == e["device_memory_total"], "device memory total agrees")
        if e["model"] is None:
            continue
        name = e["model"]
        for fam, sample, col in (("vllm:num_requests_running", None, "running"),
                                 ("vllm:num_requests_waiting", None, "queued"),
                                 ("llamacpp:requests_processing", None, "running"),
                                 ("llamacpp:requests_deferred", None, "queued"),
                                 ("vllm:prefix_cache_queries", "vllm:prefix_cache_queries_total", "prefix_lookup_tokens"),
                                 ("vllm:prefix_cache_hits", "vllm:prefix_cache_hits_total", "prefix_hit_tokens"),
                                 ("vllm:num_preemptions", "vllm:num_preemptions_total", "preemptions"),
                                 ("llamacpp:n_decode", "llamacpp:n_decode_total", "steps"),
                                 ("llamagpu_kv_cache_blocks_total", None, "kv_blocks_total"),
                                 ("llamagpu_kv_cache_blocks_used", None, "kv_blocks_used")):
            got = value(second, fam, sample or fam, model_name=name)
            check(got == e[col], "%s{%s} = %s (llm_stat_engine.%s %s)" % (fam, name, got, col, e[col]))
        ratio = e["kv_blocks_used"] / e["kv_blocks_total"]
        check(close(value(second, "vllm:kv_cache_usage_perc", "vllm:kv_cache_usage_perc", model_name=name), ratio),
              "kv_cache_usage_perc = kv_blocks_used / kv_blocks_total")
    return 1 if FAILED else 0


if __name__ == "__main__":
    sys.exit(main())
