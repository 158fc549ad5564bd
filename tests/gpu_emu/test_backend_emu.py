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
    a bound per type (tests/gpu/check_kernels.c's, times a few layers).

usage: test_backend_emu.py [quick]      exit status 0 = all passed
"""
import json
import os
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
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print("%d failure(s)" % len(failures) if failures else "all passed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
