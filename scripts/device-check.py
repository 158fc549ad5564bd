#!/usr/bin/env python3
"""device-check.py — the arithmetic of scripts/device-check.sh (standard library only).

  device-check.py logits CPU.json GPU.json BOUND
      `llamagpu eval --json` outputs of the same ids on two devices (every
      logit: --top n_vocab): max over positions of max|gpu - cpu| / max|cpu|;
      prints "err=... bound=..." and exits 1 above the bound.
  device-check.py ids CPU.json GPU.json
      `llamagpu generate --json` outputs: the generated ids must be equal.
  device-check.py embed CPU.json GPU.json BOUND
      `llamagpu embed --json` outputs of the same texts on two devices: max
      over vectors of max|gpu - cpu| / max|cpu| and the least cosine; prints
      "err=... cos=... bound=..." and exits 1 above the bound or below
      cosine 0.9999.
  device-check.py field FILE KEY
      one top-level field of a JSON object (bench --json).
  device-check.py perf TYPE D2D_GBPS GEMM_TFLOPS DIR
      the timing rows of the summary for one weight type of the synthetic
      1.1B model, from DIR/bench-TYPE-{tg1,tg8,tg32,tg128,pp512}.json; one
      "step|result|numbers" line each.
"""
import json
import math
import sys

# The synthetic "1.1B" model: TinyLlama's shape.
N_EMBD, N_LAYER, N_HEAD, N_HEAD_KV, N_FF, N_VOCAB = 2048, 22, 32, 4, 5632, 32000
HEAD_DIM = N_EMBD // N_HEAD
# bytes per weight value of each type (block bytes / block values)
BYTES_PER_VALUE = {"f16": 2.0, "bf16": 2.0, "q8_0": 34 / 32, "q4_0": 18 / 32, "q4_k": 144 / 256, "q6_k": 210 / 256}
# the targets: single-sequence decode against the bandwidth limit
TG_TARGET = {"f16": 0.70, "q8_0": 0.70, "q4_0": 0.50}
BATCH_TARGET = 20.0             # tg at 128 sequences over tg at 1
PP_TARGET = 0.50                # pp FLOP/s over the measured F16 GEMM rate (F16 model)


def load(path):
    with open(path) as f:
        return json.load(f)


def logits_err(cpu_path, gpu_path):
    cpu, gpu = load(cpu_path), load(gpu_path)
    if len(cpu) != len(gpu):
        return math.inf, "positions differ: %d vs %d" % (len(cpu), len(gpu))
    worst, where = 0.0, ""
    for pos, (c, g) in enumerate(zip(cpu, gpu)):
        cd = {e["id"]: e["logit"] for e in c}
        gd = {e["id"]: e["logit"] for e in g}
        if set(cd) != set(gd):
            return math.inf, "position %d: the listed ids differ (is --top the vocabulary size?)" % pos
        scale = max(abs(v) for v in cd.values()) or 1.0
        err = max(abs(gd[i] - cd[i]) for i in cd) / scale
        if not err <= worst:         # NaN propagates
            worst, where = err, "position %d" % pos
    return worst, where


def embed_vectors(path):
    """The vectors of `embed --json` (pooling none: each text's token vectors, in order)."""
    out = []
    for e in load(path)["embeddings"]:
        out.extend(e if e and isinstance(e[0], list) else [e])
    return out


def embed_err(cpu_path, gpu_path):
    cpu, gpu = embed_vectors(cpu_path), embed_vectors(gpu_path)
    if len(cpu) != len(gpu) or not cpu:
        return math.inf, 0.0, "vectors differ: %d vs %d" % (len(cpu), len(gpu))
    worst, cos_min = 0.0, 1.0
    for a, b in zip(cpu, gpu):
        if len(a) != len(b):
            return math.inf, 0.0, "lengths differ: %d vs %d" % (len(a), len(b))
        err = max(abs(x - y) for x, y in zip(a, b)) / (max(abs(x) for x in a) or 1.0)
        na, nb = math.sqrt(sum(x * x for x in a)), math.sqrt(sum(y * y for y in b))
        cos = sum(x * y for x, y in zip(a, b)) / (na * nb) if na and nb else 0.0
        if not err <= worst:         # NaN propagates
            worst = err
        if not cos >= cos_min:
            cos_min = cos
    return worst, cos_min, "%d vectors" % len(cpu)


def main(argv):
    cmd = argv[1] if len(argv) > 1 else ""
    if cmd == "logits" and len(argv) == 5:
        err, where = logits_err(argv[2], argv[3])
        bound = float(argv[4])
        print("err=%.3e bound=%.1e%s" % (err, bound, " (worst at %s)" % where if where else ""))
        return 0 if err <= bound else 1
    if cmd == "ids" and len(argv) == 4:
        a, b = load(argv[2]), load(argv[3])
        if a.get("ids") == b.get("ids"):
            print("identical (%d tokens)" % len(a.get("ids", [])))
            return 0
        n = next((i for i, (x, y) in enumerate(zip(a["ids"], b["ids"])) if x != y), min(len(a["ids"]), len(b["ids"])))
        print("differ at token %d: cpu %r... gpu %r..." % (n, a.get("text", "")[:60], b.get("text", "")[:60]))
        return 1
    if cmd == "embed" and len(argv) == 5:
        err, cos, what = embed_err(argv[2], argv[3])
        bound = float(argv[4])
        print("err=%.3e cos=%.9f bound=%.1e (%s)" % (err, cos, bound, what))
        return 0 if err <= bound and cos >= 0.9999 else 1
    if cmd == "field" and len(argv) == 4:
        print(load(argv[2])[argv[3]])
        return 0
    if cmd == "perf" and len(argv) == 6:
        return perf(argv[2], float(argv[3]), float(argv[4]), argv[5])
    print(__doc__, file=sys.stderr)
    return 2


def bench_value(path, key):
    try:
        return float(load(path)[key])
    except (OSError, ValueError, KeyError):
        return None


def perf(typ, d2d_gbps, gemm_tflops, d):
    bpv = BYTES_PER_VALUE[typ]
    layer = 2 * N_EMBD * N_EMBD + 2 * N_EMBD * (N_HEAD_KV * HEAD_DIM) + 3 * N_EMBD * N_FF
    matmul_params = N_LAYER * layer + N_EMBD * N_VOCAB          # output included, embedding not
    # per decoded token: every matmul weight once, one embedding row, the norms (f32),
    # and the KV cache (F16) of the ~n_gen/2 positions seen on average in a 64-token run
    kv_bytes = N_LAYER * 2 * (N_HEAD_KV * HEAD_DIM) * 2 * 32
    bytes_per_tok = matmul_params * bpv + N_EMBD * bpv + (2 * N_LAYER + 1) * N_EMBD * 4 + kv_bytes
    limit_tps = d2d_gbps * 1e9 / bytes_per_tok if d2d_gbps > 0 else 0.0
    rows = []
    tg1 = bench_value("%s/bench-%s-tg1.json" % (d, typ), "tg_tps")
    if tg1 is None:
        rows.append(("tg %s single" % typ, "FAIL", "no result (see bench-%s-tg1.log)" % typ))
    else:
        ratio = tg1 / limit_tps if limit_tps > 0 else 0.0
        target = TG_TARGET.get(typ)
        res = "INFO" if target is None else ("PASS" if ratio >= target else "FAIL")
        rows.append(("tg %s single" % typ, res,
                     "%.1f t/s; limit %.1f t/s (%.0f MB/token at %.0f GB/s) = %.0f%%%s" %
                     (tg1, limit_tps, bytes_per_tok / 1e6, d2d_gbps, 100 * ratio,
                      "" if target is None else ", target %.0f%%" % (100 * target))))
    for s in (8, 32, 128):
        v = bench_value("%s/bench-%s-tg%d.json" % (d, typ, s), "tg_tps")
        if v is None:
            rows.append(("tg %s x%d" % (typ, s), "FAIL", "no result (see bench-%s-tg%d.log)" % (typ, s)))
            continue
        x = v / tg1 if tg1 else 0.0
        res = "INFO"
        note = ""
        if s == 128:
            res = "PASS" if x >= BATCH_TARGET else "FAIL"
            note = ", target %.0fx" % BATCH_TARGET
        rows.append(("tg %s x%d" % (typ, s), res, "%.1f t/s = %.1fx single%s" % (v, x, note)))
    pp = bench_value("%s/bench-%s-pp512.json" % (d, typ), "pp_tps")
    if pp is None:
        rows.append(("pp512 %s" % typ, "FAIL", "no result (see bench-%s-pp512.log)" % typ))
    else:
        # FLOPs per prompt token: the layers' matmuls (2 per weight; the output matrix only
        # runs for the last token) and the causal attention (QK and PV over 256 positions on average)
        flops = 2 * N_LAYER * layer + N_LAYER * 4 * 256 * N_HEAD * HEAD_DIM
        tflops = pp * flops / 1e12
        ratio = tflops / gemm_tflops if gemm_tflops > 0 else 0.0
        res = ("PASS" if ratio >= PP_TARGET else "FAIL") if typ == "f16" else "INFO"
        rows.append(("pp512 %s" % typ, res, "%.0f t/s = %.1f TFLOP/s = %.0f%% of F16 GEMM %.1f TFLOP/s%s" %
                     (pp, tflops, 100 * ratio, gemm_tflops, ", target 50%" if typ == "f16" else "")))
    for r in rows:
        print("|".join(r))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
