#!/usr/bin/env python3
"""test_backend_emu.py — the whole GPU backend on the emulator, end to end.

build/gpu_emu/llamagpu is the engine with backend_gpu.c linked to every
kernels/*.cu, runtime.cu, graph.cu and blas.cu built for the host
(tests/gpu_emu/emu.mk).  Here its `--device cuda:0` runs are compared with
`--device cpu` of the same binary:

  * stories260K (F32; $LLAMAGPU_SHARED/fixtures/models, skipped visibly if
    absent): eval logits over the whole vocabulary, normalised max error
    <= 1e-4; greedy generate text identical (decode steps run as captured
    graphs, prompt steps eagerly); a batched bench run; one generation
    through `llamagpu serve --device cuda:0` equal to the CLI's text, and a
    seeded sampled one (the device sampler) equal to `serve --device cpu`'s;
  * a synthetic model per weight type (llamagpu synth): eval logits within
    a bound per type (tests/gpu/check_kernels.c's, times a few layers);
  * synthetic encoders (bert, nomic-bert; F32 and F16 weights): `embed`
    vectors on cuda:0 against cpu — one text at a time and a padded batch
    of texts of different lengths, mean pooling (every row), cls (the
    pruned last layer) and none (per-token vectors), normalised or not —
    and one EMBED through `llamagpu serve --device cuda:0`.

usage: test_backend_emu.py [quick]      exit status 0 = all passed
"""
import base64
import json
import math
import os
import struct
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BIN = os.path.join(ROOT, "build", "gpu_emu", "llamagpu")
SHARED = os.environ.get("LLAMAGPU_SHARED", os.path.join(ROOT, "..", "shared"))
STORIES = os.path.join(SHARED, "fixtures", "models", "stories260K.gguf")
IDS = "1,403,407,114,260,261,375,259,400,300,310,320"
SYNTH_IDS = "1,72,101,108,111,32,119,200,258,65,66,10"    # --vocab-bytes: 259 tokens

# normalised max error bounds of the eval logits, per weight type: the
# kernel checker's matmul bounds (F16 1e-3, BF16 4e-3, quantized 3e-2: the
# CPU rounds activations to the weight's type or to Q8) through 2 layers
SYNTH = [("f16", 3e-3), ("bf16", 1.2e-2), ("q8_0", 6e-2), ("q4_0", 6e-2), ("q4_K", 6e-2), ("q6_K", 6e-2),
         ("f32", 1e-4)]

failures = []


def run(*args, timeout=300, env=None):
    """Run the emulated-build CLI; raises on a non-zero exit with its stderr."""
    p = subprocess.run([BIN, *map(str, args)], capture_output=True, text=True, timeout=timeout, env=env)
    if p.returncode != 0:
        raise RuntimeError("llamagpu %s: exit %d: %s" % (" ".join(map(str, args)), p.returncode, p.stderr.strip()))
    return p.stdout


def check(ok, what):
    print("%s %s" % ("ok  " if ok else "FAIL", what), flush=True)
    if not ok:
        failures.append(what)


def eval_logits(model, device, top, ids):
    rows = json.loads(run("eval", "-m", model, "--ids", ids, "--top", top, "--json", "--device", device))
    return [{e["id"]: e["logit"] for e in row} for row in rows]


def compare_eval(model, name, top, bound, ids=IDS):
    """Normalised max |gpu - cpu| / max |cpu| over every row and token."""
    cpu = eval_logits(model, "cpu", top, ids)
    gpu = eval_logits(model, "cuda:0", top, ids)
    amax = max(abs(v) for row in cpu for v in row.values())
    err = 0.0
    for rc, rg in zip(cpu, gpu):
        for t in set(rc) & set(rg):
            err = max(err, abs(rc[t] - rg[t]))
    check(len(cpu) == len(gpu) and all(len(set(a) & set(b)) >= min(len(a), top) * 9 // 10 for a, b in zip(cpu, gpu))
          and err <= bound * amax,
          "%s eval logits: err %.2e of max %.3g (bound %.1e)" % (name, err / amax if amax else err, amax, bound))


def stories():
    with open(STORIES, "rb"):
        pass
    vocab = json.loads(run("info", "-m", STORIES, "--json"))["n_vocab"]
    compare_eval(STORIES, "stories260K", vocab, 1e-4)
    args = ("generate", "-m", STORIES, "-p", "Once upon a time", "-n", 32, "--temp", 0)
    cpu = run(*args, "--device", "cpu")
    gpu = run(*args, "--device", "cuda:0")
    check(cpu == gpu and len(cpu) > 20, "stories260K greedy generate -n 32: cpu %r, gpu %r" % (cpu[:60], gpu[:60]))
    eager = run(*args, "--device", "cuda:0", env=dict(os.environ, LLAMAGPU_CUDA_GRAPHS="0"))
    check(eager == cpu, "stories260K greedy generate without CUDA graphs")
    bench = json.loads(run("bench", "-m", STORIES, "-p", 0, "-n", 8, "-s", 4, "--device", "cuda:0", "-r", 1, "--json"))
    check(bench.get("device", "").startswith("cuda"), "stories260K bench -p 0 -n 8 -s 4 on %s" % bench.get("device"))
    serve(cpu)


def serve_gen(device, rid, **fields):
    """One generation over the engine protocol on a `llamagpu serve --device DEVICE`."""
    import test_cli
    srv = test_cli.EngineServer("--device", device)
    try:
        c = srv.connect()
        c.send("G", rid, model="stories", path=STORIES, **fields)
        text, typ, _ = c.collect([rid], timeout=240)[rid]
        c.close()
        return text, typ
    finally:
        srv.stop()


def serve(want):
    """Generations through `llamagpu serve` (the scheduler; the device sampler on cuda:0)."""
    sys.path.insert(0, os.path.join(ROOT, "tests", "cli"))
    os.environ["LLAMAGPU_BIN"] = BIN
    import test_cli
    test_cli.BIN = BIN
    text, typ = serve_gen("cuda:0", 1, prompt="Once upon a time", max_tokens=32, temperature=0)
    check(typ == "E" and text == want.rstrip("\n"), "serve --device cuda:0 greedy: %s %r (cli %r)" % (typ, text, want))
    # seeded sampling: the device sampler draws with the engine RNG's u, the CPU sampler with the same
    f = dict(prompt="The little dog", max_tokens=24, temperature=0.8, seed=7)
    cpu, tc = serve_gen("cpu", 2, **f)
    gpu, tg = serve_gen("cuda:0", 2, **f)
    check(tc == "E" and tg == "E" and gpu == cpu and len(gpu) > 0,
          "serve sampled (temperature 0.8, seed 7): cuda:0 %r, cpu %r" % (gpu, cpu))


def synth(tmp, quick):
    for typ, bound in SYNTH[:6] if quick else SYNTH:
        path = os.path.join(tmp, "synth-%s.gguf" % typ)
        dim = 256 if typ.endswith("_K") else 64
        run("synth", "--arch", "llama", "--dim", dim, "--layers", 2, "--heads", 4, "--kv-heads", 2,
            "--ffn", 2 * dim if not typ.endswith("_K") else 512, "--vocab-bytes", "--type", typ, "--seed", 11,
            "-o", path)
        compare_eval(path, "synth %s dim %d" % (typ, dim), 259, bound, SYNTH_IDS)


# Encoders: texts of 3 to 16 tokens ([CLS] ... [SEP]), so a batch pads them.
ENC_TEXTS = ["hello world", "a", "the quick brown fox jumps over the lazy dog, twice!",
             "embeddings: 42 + 7 = 49", "x y z"]
# Bounds on the GPU vectors against the CPU's, per weight type, on unit
# vectors (relative to the largest value for --no-normalize).  F32 weights
# run the same float math up to summation order (seen: <= 3.5e-7, 15x
# below the bound; a causal mask or a lost LayerNorm bias is 1e-2 or
# more).  F16 weights: the CPU rounds the activations to f16 for its dot
# products (ggml's vec_dot_type) where the GPU's small-batch kernels keep
# them in float, an f16 ulp (2^-11) of noise per product that the
# LayerNorms keep from growing (seen: <= 1.6e-4).  And cosine >= 0.9999.
ENC_BOUND = {"f32": 5e-6, "f16": 5e-4}


def embed_json(model, device, *opts):
    """The vectors of `embed --json` (pooling none: every text's token vectors, in order)."""
    out = []
    for e in json.loads(run("embed", "-m", model, "--json", "--device", device, *opts, *ENC_TEXTS))["embeddings"]:
        out.extend(e if e and isinstance(e[0], list) else [e])
    return out


def compare_vectors(cpu, gpu, bound, what):
    """Max |gpu - cpu| over max |cpu| per vector, and the cosine."""
    worst, cos_min = 0.0, 1.0
    ok = len(cpu) == len(gpu) and len(cpu) > 0
    for a, b in zip(cpu, gpu):
        ok = ok and len(a) == len(b)
        amax = max(abs(v) for v in a) or 1.0
        worst = max(worst, max(abs(x - y) for x, y in zip(a, b)) / amax)
        na, nb = math.sqrt(sum(x * x for x in a)), math.sqrt(sum(y * y for y in b))
        cos_min = min(cos_min, sum(x * y for x, y in zip(a, b)) / (na * nb) if na and nb else 0.0)
    check(ok and worst <= bound and cos_min >= 0.9999,
          "%s: %d vectors, max err %.2e (bound %.0e), min cosine %.9f" % (what, len(cpu), worst, bound, cos_min))


def encoders(tmp, quick):
    shapes = {
        "bert": ["--arch", "bert", "--dim", 64, "--layers", 2, "--heads", 4, "--ffn", 128, "--ctx", 64],
        "nomic-bert": ["--arch", "nomic-bert", "--dim", 64, "--layers", 2, "--heads", 4, "--ffn", 96,
                       "--ctx", 128],
    }
    for arch, args in shapes.items():
        for typ in ("f32",) if quick else ("f32", "f16"):
            path = os.path.join(tmp, "%s-%s.gguf" % (arch, typ))
            run("synth", *args, "--vocab-wpm", "--pooling", "mean", "--type", typ, "--seed", 7, "-o", path)
            for opts in (["--batch", 1], ["--batch", 64], ["--pooling", "cls", "--batch", 1],
                         ["--pooling", "cls", "--batch", 64], ["--pooling", "none", "--batch", 64],
                         ["--no-normalize", "--batch", 64]):
                compare_vectors(embed_json(path, "cpu", *opts), embed_json(path, "cuda:0", *opts),
                                ENC_BOUND[typ], "%s %s embed %s" % (arch, typ, " ".join(map(str, opts))))
            if arch == "bert" and typ == "f32":
                serve_embed(path)


def serve_embed(path):
    """The EMBED request (lg_context_embed through the scheduler) on serve --device cuda:0 and cpu."""
    sys.path.insert(0, os.path.join(ROOT, "tests", "cli"))
    os.environ["LLAMAGPU_BIN"] = BIN
    import test_cli
    test_cli.BIN = BIN
    got = {}
    for device in ("cpu", "cuda:0"):
        srv = test_cli.EngineServer("--device", device)
        try:
            c = srv.connect()
            c.send("B", 5, [("model", "enc"), ("path", path), ("pooling", "cls")] + [("input", t) for t in ENC_TEXTS])
            _, typ, body = c.collect([5], timeout=240)[5]
            c.close()
        finally:
            srv.stop()
        vecs = []
        for e in test_cli.as_list(body.get("embedding")) if typ == "R" else []:
            raw = base64.b64decode(e)
            vecs.append(list(struct.unpack("<%df" % (len(raw) // 4), raw)))
        got[device] = (typ, vecs, body)
    check(got["cpu"][0] == "R" and got["cuda:0"][0] == "R",
          "serve EMBED: cpu %s, cuda:0 %s" % (got["cpu"][0], got["cuda:0"][2] if got["cuda:0"][0] != "R" else "R"))
    compare_vectors(got["cpu"][1], got["cuda:0"][1], ENC_BOUND["f32"], "serve --device cuda:0 EMBED (cls)")


def main():
    quick = len(sys.argv) > 1 and sys.argv[1] == "quick"
    if not os.path.exists(BIN):
        print("FAIL %s is not built" % BIN)
        return 1
    if os.path.exists(STORIES):
        try:
            stories()
        except Exception as e:
            check(False, "stories260K: %s" % e)
    else:
        print("SKIP stories260K: %s not found (set LLAMAGPU_SHARED)" % STORIES)
    tmp = tempfile.mkdtemp(prefix="lg-gpu-emu-")
    try:
        synth(tmp, quick)
    except Exception as e:
        check(False, "synth: %s" % e)
    try:
        encoders(tmp, quick)
    except Exception as e:
        check(False, "encoders: %s" % e)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print("%d failure(s)" % len(failures) if failures else "all passed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
