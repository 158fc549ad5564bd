#!/usr/bin/env python3
"""End-to-end tests of the `llamagpu` command-line tool.

Runs bin/llamagpu (or $LLAMAGPU_BIN) on the real stories260K model and the
tokenizer vocabularies from $LLAMAGPU_SHARED (default ../shared), and on
synthetic models it makes with `llamagpu synth`.  Fixture-based tests skip
with a visible message when the fixtures are absent.
"""
import json
import math
import os
import select
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import time
import unittest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.environ.get("LLAMAGPU_BIN", os.path.join(ROOT, "bin", "llamagpu"))
SHARED = os.environ.get("LLAMAGPU_SHARED", os.path.join(ROOT, "..", "shared"))
STORIES = os.path.join(SHARED, "fixtures", "models", "stories260K.gguf")
STORIES_REF = os.path.join(SHARED, "fixtures", "refs", "stories260K.greedy.json")
VOCAB_DIR = os.path.join(SHARED, "fixtures", "tokenizer")


def run(*args, stdin=None, check=True):
    p = subprocess.run([BIN, *map(str, args)], input=stdin, capture_output=True, timeout=600)
    if check and p.returncode != 0:
        raise AssertionError("llamagpu %s failed (%d): %s" % (" ".join(map(str, args)), p.returncode,
                                                           p.stderr.decode(errors="replace")))
    return p


def need(path):
    if not os.path.exists(path):
        raise unittest.SkipTest("SKIP: fixture %s not found (set LLAMAGPU_SHARED)" % path)


class Stories260K(unittest.TestCase):
    """The real model must reproduce llama.cpp's recorded greedy runs."""

    @classmethod
    def setUpClass(cls):
        need(STORIES)
        need(STORIES_REF)
        with open(STORIES_REF) as f:
            cls.ref = json.load(f)

    def test_greedy_continuations(self):
        for case in self.ref["prompts"]:
            for kv in ("f32", "f16"):
                if kv == "f16" and not case.get("same_ids_with_kv_f16"):
                    continue
                with self.subTest(prompt=case["prompt"], kv=kv):
                    out = json.loads(run("generate", "-m", STORIES, "-p", case["prompt"], "-n",
                                         case["n_predict"] if "n_predict" in case else self.ref["n_predict"],
                                         "--temp", 0, "--kv", kv, "--json").stdout)
                    self.assertEqual(out["prompt_ids"], case["prompt_token_ids"])
                    self.assertEqual(out["ids"], case["generated_token_ids"])
                    self.assertEqual(out["text"], case["generated_text"])

    def test_teacher_forced_logits(self):
        for case in self.ref["prompts"]:
            ids = case["prompt_token_ids"] + case["generated_token_ids"][:-1]
            out = json.loads(run("eval", "-m", STORIES, "--ids", ",".join(map(str, ids)), "--top", 5,
                                 "--kv", "f32", "--json").stdout)
            self.assertEqual(len(out), len(ids))
            n_prompt = len(case["prompt_token_ids"])
            worst = 0.0
            for i, step in enumerate(case["steps"]):
                got = out[n_prompt - 1 + i]
                self.assertEqual([g["id"] for g in got], [s["id"] for s in step["top5"]],
                                 "step %d of %r" % (i, case["prompt"]))
                for g, s in zip(got, step["top5"]):
                    worst = max(worst, abs(g["logit"] - s["logit"]))
            self.assertLess(worst, 1e-3, "max logit difference for %r" % case["prompt"])

    def test_info(self):
        info = json.loads(run("info", "-m", STORIES, "--json").stdout)
        self.assertEqual(info["architecture"], "llama")
        self.assertEqual((info["n_embd"], info["n_layer"], info["n_head"], info["n_head_kv"], info["n_vocab"]),
                         (64, 5, 8, 4, 512))
        self.assertEqual(info["tokenizer"][:3], "spm")
        text = run("info", "-m", STORIES).stdout.decode()
        self.assertIn("architecture:   llama", text)

    def test_seeded_sampling_is_reproducible(self):
        args = ("generate", "-m", STORIES, "-p", "Once upon a time", "-n", 40, "--temp", 1.0, "--json")
        a = json.loads(run(*args, "--seed", 7).stdout)
        b = json.loads(run(*args, "--seed", 7).stdout)
        c = json.loads(run(*args, "--seed", 8).stdout)
        self.assertEqual(a["ids"], b["ids"])
        self.assertNotEqual(a["ids"], c["ids"])

    def test_stop_string(self):
        out = json.loads(run("generate", "-m", STORIES, "-p", "Once upon a time", "-n", 64, "--temp", 0,
                             "--stop", "Lily", "--json").stdout)
        self.assertEqual(out["text"], ", there was a little girl named ")
        self.assertEqual(out["finish_reason"], "stop")


class Tokenizers(unittest.TestCase):
    """The CLI's JSON-lines tokenizer must give llama.cpp's ids for every fixture string."""

    def test_fixture_vocabularies(self):
        need(VOCAB_DIR)
        vocabs = sorted(f for f in os.listdir(VOCAB_DIR) if f.endswith(".gguf"))
        self.assertTrue(vocabs)
        for v in vocabs:
            with self.subTest(vocab=v):
                path = os.path.join(VOCAB_DIR, v)
                with open(path + ".inp", encoding="utf-8") as f:
                    inputs = f.read().split("\n__ggml_vocab_test__\n")
                with open(path + ".out") as f:
                    expected = [list(map(int, line.split())) for line in f.read().split("\n")]
                if inputs and inputs[-1] == "":
                    inputs.pop()
                lines = "".join(json.dumps(s) + "\n" for s in inputs).encode()
                got = [json.loads(l) for l in run("tokenize", "-m", path, "--jsonl", stdin=lines).stdout.splitlines()]
                self.assertEqual(len(got), len(inputs))
                for i, (g, e) in enumerate(zip(got, expected)):
                    self.assertEqual(g, e, "string %d %r" % (i, inputs[i]))

    def test_bos_and_round_trip(self):
        need(STORIES)
        plain = json.loads(run("tokenize", "-m", STORIES, "--jsonl", stdin=b'"Once upon a time"\n').stdout)
        bos = json.loads(run("tokenize", "-m", STORIES, "--bos", "--jsonl", stdin=b'"Once upon a time"\n').stdout)
        self.assertEqual(bos, [1] + plain)
        text = json.loads(run("detokenize", "-m", STORIES, "--jsonl",
                              stdin=(json.dumps(plain) + "\n").encode()).stdout)
        self.assertEqual(text, "Once upon a time")


class Synthetic(unittest.TestCase):
    """Models of every weight type, made by synth, against the F32 path."""

    # normalised error bound of the logits, RMS(type - f32) / RMS(f32)
    BOUNDS = {"f16": 0.01, "bf16": 0.05, "q8_0": 0.05, "q6_k": 0.08, "q5_0": 0.15, "q5_1": 0.15,
              "q5_k": 0.15, "q4_0": 0.3, "q4_1": 0.3, "q4_k": 0.3, "q4_k_m": 0.3, "q3_k": 0.5, "q2_k": 0.9}
    SHAPE = ("--arch", "llama", "--dim", 256, "--layers", 2, "--heads", 4, "--kv-heads", 2, "--ffn", 512,
             "--vocab-bytes", "--vocab-size", 512, "--seed", 11)

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="llamagpu-test-")
        cls.ids = "1,70,108,108,111,35,119,111,114,108,100,33,35,104,105"

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def model(self, typ, arch="llama"):
        path = os.path.join(self.tmp, "%s-%s.gguf" % (arch, typ))
        if not os.path.exists(path):
            shape = list(self.SHAPE)
            shape[1] = arch
            run("synth", *shape, "--type", typ, "-o", path)
        return path

    def logits(self, path, *extra):
        out = json.loads(run("eval", "-m", path, "--ids", self.ids, "--top", 512, "--kv", "f32", *extra,
                             "--json").stdout)
        rows = []
        for pos in out:
            row = [0.0] * 512
            for e in pos:
                row[e["id"]] = e["logit"]
            rows.append(row)
        return rows

    @staticmethod
    def rel_rms(a, b):
        num = sum((x - y) ** 2 for ra, rb in zip(a, b) for x, y in zip(ra, rb))
        den = sum(y ** 2 for rb in b for y in rb)
        return math.sqrt(num / den)

    def test_every_type_agrees_with_f32(self):
        for arch in ("llama", "qwen2"):
            ref = self.logits(self.model("f32", arch))
            for typ, bound in self.BOUNDS.items():
                with self.subTest(arch=arch, type=typ):
                    path = self.model(typ, arch)
                    got = self.logits(path)
                    err = self.rel_rms(got, ref)
                    self.assertLess(err, bound, "%s %s: relative RMS error %.4f" % (arch, typ, err))
                    # The fast kernels agree with the scalar reference ones far more tightly
                    # (test_backend_cpu: ~1e-6 per product); over a whole model, summation-order
                    # differences can flip the rounding of an 8-bit activation here and there,
                    # which moves a logit by up to ~1%.
                    scalar = self.logits(path, "--reference")
                    self.assertLess(self.rel_rms(got, scalar), 0.02, "%s %s fast vs reference" % (arch, typ))
                    gen = json.loads(run("generate", "-m", path, "-p", "hello", "-n", 8, "--temp", 0,
                                         "--json").stdout)
                    self.assertEqual(len(gen["ids"]) if gen["finish_reason"] == "length" else 8, 8)

    def test_long_prompt(self):
        # a byte vocabulary needs more tokens than the prompt has bytes (3 per space)
        prompt = "a b c d e f g h i j k l m n o p q r s t u v w x y z " * 4
        out = json.loads(run("generate", "-m", self.model("q8_0"), "-p", prompt, "-n", 4, "--temp", 0,
                             "--json").stdout)
        self.assertGreater(len(out["prompt_ids"]), len(prompt.encode()))
        self.assertEqual(len(out["ids"]), 4)

    def test_wide_attention_long_prompt(self):
        # TinyLlama's attention layout (32 heads of 64, 4 KV heads) over a 96-token batch: the
        # attention workspace and the thread split are sized from these, and the sanitized run
        # of this file (scripts/test.sh) catches any overrun
        path = os.path.join(self.tmp, "wide.gguf")
        run("synth", "--arch", "llama", "--dim", 2048, "--layers", 1, "--heads", 32, "--kv-heads", 4,
            "--ffn", 256, "--vocab-bytes", "--vocab-size", 512, "--type", "q4_0", "--seed", 3, "-o", path)
        ids = ",".join(str(3 + (i * 37) % 256) for i in range(96))
        fast = json.loads(run("eval", "-m", path, "--ids", ids, "--top", 3, "-t", 2, "--json").stdout)
        ref = json.loads(run("eval", "-m", path, "--ids", ids, "--top", 3, "-t", 1, "--reference",
                             "--json").stdout)
        self.assertEqual(len(fast), 96)
        worst = max(abs(a["logit"] - b["logit"]) for fa, fb in zip(fast, ref) for a, b in zip(fa, fb))
        self.assertLess(worst, 0.05)

    def test_synth_is_deterministic(self):
        a = self.model("q4_0")
        b = os.path.join(self.tmp, "again.gguf")
        run("synth", *self.SHAPE, "--type", "q4_0", "-o", b)
        with open(a, "rb") as fa, open(b, "rb") as fb:
            self.assertEqual(fa.read(), fb.read())

    def test_bench_json(self):
        out = json.loads(run("bench", "-m", self.model("q8_0"), "-p", 16, "-n", 4, "-r", 1, "--json").stdout)
        self.assertGreater(out["pp_tps"], 0)
        self.assertGreater(out["tg_tps"], 0)


class BadInput(unittest.TestCase):
    """Bad arguments and bad files: one line on stderr, non-zero exit."""

    def assertFails(self, *args, stdin=None, code=None):
        p = run(*args, stdin=stdin, check=False)
        self.assertNotEqual(p.returncode, 0, args)
        if code is not None:
            self.assertEqual(p.returncode, code, args)
        err = p.stderr.decode().strip()
        self.assertTrue(err.startswith("llamagpu"), err)
        self.assertEqual(len(err.splitlines()), 1, err)

    def test_arguments(self):
        self.assertFails("nosuchcommand", code=2)
        self.assertFails("generate", "-p", "x", code=2)
        self.assertFails("generate", "-m", "x.gguf", code=2)
        self.assertFails("generate", "-m", "x.gguf", "-p", "x", "--temp", "nan", code=2)
        self.assertFails("generate", "-m", "x.gguf", "-p", "x", "--top-p", "1.5", code=2)
        self.assertFails("generate", "-m", "x.gguf", "-p", "x", "-n", "-1", code=2)
        self.assertFails("eval", "-m", "x.gguf", "--ids", "1,,2", code=2)
        self.assertFails("eval", "-m", "x.gguf", code=2)
        self.assertFails("synth", "--arch", "gpt9", code=2)
        self.assertFails("bench", "-m", "x.gguf", "-r", "0", code=2)
        self.assertFails("info", "-m", code=2)

    def test_bad_files(self):
        with tempfile.TemporaryDirectory() as d:
            empty = os.path.join(d, "empty.gguf")
            open(empty, "wb").close()
            junk = os.path.join(d, "junk.gguf")
            with open(junk, "wb") as f:
                f.write(b"GGUF\x03\x00\x00\x00" + b"\xff" * 64)
            for path in (os.path.join(d, "missing.gguf"), empty, junk, d):
                self.assertFails("info", "-m", path, code=1)
                self.assertFails("generate", "-m", path, "-p", "x", code=1)

    def test_bad_token_ids(self):
        need(STORIES)
        self.assertFails("eval", "-m", STORIES, "--ids", "1,99999", "--json", code=1)
        self.assertFails("detokenize", "-m", STORIES, "--jsonl", stdin=b"[1, 99999]\n", code=1)
        self.assertFails("tokenize", "-m", STORIES, "--jsonl", stdin=b'"unterminated\n', code=1)


class EngineServer:
    """A `llamagpu serve` process on a private socket directory, and a framed client (docs/protocol.md)."""

    def __init__(self, *options):
        self.dir = tempfile.mkdtemp(prefix="llamagpu-serve-")
        self.sock_path = os.path.join(self.dir, "sock", "engine.sock")
        # $LLAMAGPU_TEST_SERVE_LOG: append the server's stderr there (sanitizer reports)
        log = os.environ.get("LLAMAGPU_TEST_SERVE_LOG")
        self.proc = subprocess.Popen([BIN, "serve", "--socket-dir", os.path.dirname(self.sock_path),
                                      "--threads", "1", "--log-level", "warning", *map(str, options)],
                                     stderr=open(log, "ab") if log else subprocess.PIPE)
        for _ in range(500):
            if os.path.exists(self.sock_path):
                break
            if self.proc.poll() is not None:
                raise AssertionError("serve exited: %s" % (self.proc.stderr.read().decode(errors="replace")
                                                           if self.proc.stderr else "see the log"))
            time.sleep(0.01)
        else:
            self.stop()
            raise AssertionError("serve never listened")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stderr:
            self.proc.stderr.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def connect(self):
        # the socket file appears at bind(), a moment before listen()
        for attempt in range(100):
            try:
                c = EngineConn(self.sock_path)
                break
            except ConnectionRefusedError:
                if attempt == 99:
                    raise
                time.sleep(0.01)
        c.send("H", 0, protocol="1", client="test_cli")
        reply = c.read()
        assert reply[0] == "H", reply
        return c


class EngineConn:
    """One connection: send frames, read frames (type, id, fields or raw text)."""

    def __init__(self, path):
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.s.connect(path)
        self.buf = b""
        self.texts = {}   # streamed text per request id, until collected

    def close(self):
        self.s.close()

    def send(self, typ, rid, fields=(), **kw):
        payload = b"".join(k.encode() + b"\0" + str(v).encode() + b"\0"
                           for k, v in list(fields) + list(kw.items()))
        self.s.sendall(struct.pack(">IBI", len(payload), ord(typ), rid) + payload)

    def read(self, timeout=60):
        deadline = time.time() + timeout
        while True:
            if len(self.buf) >= 9:
                n, typ, rid = struct.unpack(">IBI", self.buf[:9])
                if len(self.buf) >= 9 + n:
                    payload, self.buf = self.buf[9:9 + n], self.buf[9 + n:]
                    typ = chr(typ)
                    if typ == "P":
                        return typ, rid, payload.decode(errors="surrogateescape")
                    parts = payload.split(b"\0")[:-1]
                    fields = {}
                    for k, v in zip(parts[0::2], parts[1::2]):
                        fields.setdefault(k.decode(), []).append(v.decode())
                    return typ, rid, {k: v[0] if len(v) == 1 else v for k, v in fields.items()}
            left = deadline - time.time()
            if left <= 0 or not select.select([self.s], [], [], left)[0]:
                raise AssertionError("no reply within %d s" % timeout)
            chunk = self.s.recv(65536)
            if not chunk:
                raise AssertionError("the server closed the connection")
            self.buf += chunk

    def collect(self, ids, timeout=120):
        """Read until every id in ids has ended: {id: (text, final frame type, final fields)}."""
        done = {}
        while len(done) < len(ids):
            typ, rid, body = self.read(timeout)
            if typ == "P":
                self.texts[rid] = self.texts.get(rid, "") + body
            elif rid in ids and rid not in done:
                done[rid] = (typ, body)
        return {i: (self.texts.pop(i, ""), done[i][0], done[i][1]) for i in ids}

    def status(self, rid=9999):
        self.send("S", rid)
        while True:
            typ, got, body = self.read()
            if got == rid:
                assert typ == "R", body
                return body


def as_list(v):
    return v if isinstance(v, list) else ([] if v is None else [v])


class ServeBatching(unittest.TestCase):
    """`llamagpu serve` runs concurrent generations of a model in shared batches."""

    PROMPTS = ["Once upon a time", "The little dog", "Lily and Ben went to the park. They", "One day, a big",
               "Tom had a red ball", "There was a girl named", "The sun was", "Mom said"]

    @classmethod
    def setUpClass(cls):
        need(STORIES)

    def gen_fields(self, prompt, **extra):
        f = {"model": "stories", "path": STORIES, "prompt": prompt, "max_tokens": 48, "temperature": 0}
        f.update(extra)
        return f

    def one_by_one(self, conn, reqs):
        out = {}
        for rid, f in reqs.items():
            conn.send("G", rid, **f)
            out.update(conn.collect([rid]))
        return out

    def test_concurrent_equals_single(self):
        srv = EngineServer()
        try:
            conn = srv.connect()
            greedy = {i + 1: self.gen_fields(p, max_tokens=30 + 5 * i) for i, p in enumerate(self.PROMPTS)}
            seeded = {i + 101: self.gen_fields(p, temperature=1.0, seed=40 + i) for i, p in enumerate(self.PROMPTS)}
            for reqs in (greedy, seeded):
                alone = self.one_by_one(conn, reqs)
                for rid, f in reqs.items():
                    conn.send("G", rid, **f)
                together = conn.collect(list(reqs))
                for rid in reqs:
                    with self.subTest(request=rid):
                        self.assertEqual(alone[rid][1], "E", alone[rid][2])
                        self.assertEqual(together[rid][1], "E", together[rid][2])
                        self.assertEqual(together[rid][0], alone[rid][0])
                        self.assertEqual(together[rid][2]["n_gen"], alone[rid][2]["n_gen"])
                        for key in ("n_cached", "n_preempted", "t_queue_ms", "t_first_ms"):
                            self.assertIn(key, together[rid][2])
            # the server's greedy text is the CLI's (lg_generate)
            cli = json.loads(run("generate", "-m", STORIES, "-p", self.PROMPTS[0], "-n", 30, "--temp", 0,
                                 "--json").stdout)
            self.assertEqual(alone[101][1], "E")
            self.assertEqual(self.one_by_one(conn, {1: greedy[1]})[1][0], cli["text"])
            st = conn.status()
            sched = as_list(st.get("sched"))
            self.assertEqual(len(sched), 1)
            cols = sched[0].split("\t")
            self.assertEqual(len(cols), 18)
            self.assertEqual(cols[0], "stories")
            nums = list(map(int, cols[1:]))
            queued, running, submitted, finished, rejected, steps, batch_tokens, prompt_tokens, gen_tokens = nums[:9]
            self.assertEqual((queued, running, rejected), (0, 0, 0))
            self.assertEqual(submitted, finished)
            self.assertEqual(submitted, 8 + 8 + 8 + 8 + 1)
            self.assertGreater(steps, 0)
            self.assertGreaterEqual(batch_tokens, prompt_tokens)
            self.assertGreater(gen_tokens, 0)
            self.assertEqual(nums[10], 512)   # max_batch_tokens
            self.assertEqual(nums[11], 32)    # kv block size
            self.assertEqual(nums[13], 0)     # blocks in use: none, all requests ended
            conn.close()
        finally:
            srv.stop()

    def test_prefix_cache_hits(self):
        srv = EngineServer("--kv-block-size", 16)
        try:
            conn = srv.connect()
            prefix = ("Once upon a time, there was a little girl named Lily. She loved to play outside in the sun. "
                      "One day, she saw a big red ball in the park. ")
            first = self.one_by_one(conn, {1: self.gen_fields(prefix + "She")})[1]
            second = self.one_by_one(conn, {2: self.gen_fields(prefix + "She")})[2]
            self.assertEqual(first[2]["n_cached"], "0")
            self.assertGreaterEqual(int(second[2]["n_cached"]), 32)
            self.assertEqual(first[0], second[0])
            cols = as_list(conn.status().get("sched"))[0].split("\t")
            self.assertEqual(int(cols[17]), int(second[2]["n_cached"]))   # prefix_hit_tokens
            conn.close()
        finally:
            srv.stop()

    def test_busy_cancel_timeout_unload(self):
        srv = EngineServer("--max-queued", 1, "--max-seqs", 1, "--debug-token-delay-ms", 40)
        try:
            conn = srv.connect()
            conn.send("G", 1, **self.gen_fields("Once upon a time", max_tokens=200))
            typ, rid, body = conn.read()      # the first piece: request 1 holds the only slot
            self.assertEqual((typ, rid), ("P", 1))
            conn.texts[1] = body
            conn.send("G", 2, **self.gen_fields("The little dog"))
            time.sleep(0.2)
            conn.send("G", 3, **self.gen_fields("The sun was"))
            got = conn.collect([3], timeout=10)[3]
            self.assertEqual(got[1], "X")
            self.assertEqual(got[2]["status"], "busy")
            st = conn.status()
            states = sorted(r.split("\t")[4] for r in as_list(st.get("request")))
            self.assertEqual(states, ["generating", "queued"])
            cols = as_list(st.get("sched"))[0].split("\t")
            self.assertEqual(cols[1:6], ["1", "1", "2", "0", "1"])   # queued running submitted finished rejected
            # cancel the queued one, then the running one
            conn.send("C", 2)
            got = conn.collect([2], timeout=10)[2]
            self.assertEqual((got[1], got[2]["status"]), ("X", "cancelled"))
            conn.send("C", 1)
            got = conn.collect([1], timeout=10)[1]
            self.assertEqual((got[1], got[2]["status"]), ("X", "cancelled"))
            self.assertLess(len(got[0]), 200 * 8)
            # a timeout while waiting in the queue
            conn.send("G", 4, **self.gen_fields("Once upon a time", max_tokens=200))
            self.assertEqual(conn.read()[:2], ("P", 4))
            conn.send("G", 5, **self.gen_fields("The little dog", timeout_ms=300))
            got = conn.collect([5], timeout=10)[5]
            self.assertEqual((got[1], got[2]["status"], got[0]), ("X", "timeout", ""))
            # unloading the model ends its running request
            conn.send("U", 6, model="stories")
            res = conn.collect([4, 6], timeout=10)
            self.assertEqual(res[6][2]["unloaded"], "1")
            self.assertEqual((res[4][1], res[4][2]["status"]), ("X", "cancelled"))
            self.assertIn("unloaded", res[4][2]["message"])
            # it loads again on the next request
            conn.send("G", 7, **self.gen_fields("The sun was", max_tokens=3))
            self.assertEqual(conn.collect([7], timeout=30)[7][1], "E")
            # a closed connection cancels its requests; the server goes on
            conn.send("G", 8, **self.gen_fields("Once upon a time", max_tokens=200))
            conn.read()
            conn.close()
            conn = srv.connect()
            for _ in range(100):
                cols = as_list(conn.status().get("sched"))[0].split("\t")
                if cols[2] == "0":
                    break
                time.sleep(0.05)
            self.assertEqual(cols[1:3], ["0", "0"])
            conn.close()
        finally:
            srv.stop()

    def test_priority(self):
        srv = EngineServer("--max-seqs", 1, "--debug-token-delay-ms", 10)
        try:
            conn = srv.connect()
            # 60 tokens of at least 10 ms: request 1 holds the only slot while 2 and 3 arrive
            conn.send("G", 1, **self.gen_fields("Once upon a time", max_tokens=60))
            self.assertEqual(conn.read()[:2], ("P", 1))
            conn.send("G", 2, **self.gen_fields("The little dog", max_tokens=5))
            time.sleep(0.1)
            conn.send("G", 3, **self.gen_fields("The sun was", max_tokens=5, priority=5))
            time.sleep(0.1)
            order = []
            while len(order) < 3:
                typ, rid, body = conn.read()
                if typ != "P":
                    self.assertEqual(typ, "E", body)
                    order.append(rid)
            self.assertEqual(order, [1, 3, 2])
            conn.send("G", 4, **self.gen_fields("x", priority="high"))
            got = conn.collect([4])[4]
            self.assertEqual((got[1], got[2]["status"]), ("X", "arg"))
            conn.close()
        finally:
            srv.stop()

    def test_client_not_reading(self):
        """A connection that does not read its replies must not stall the others; its replies wait."""
        srv = EngineServer()
        try:
            slow = srv.connect()
            n, max_tokens = 16, 1500
            f = self.gen_fields("Once upon a time", max_tokens=max_tokens, logit_bias="2:-inf")
            for rid in range(1, n + 1):
                slow.send("G", rid, **f)
            time.sleep(0.5)
            fast = srv.connect()
            t0 = time.time()
            fast.send("G", 1, **self.gen_fields("The little dog", max_tokens=20))
            got = fast.collect([1], timeout=60)[1]
            self.assertEqual(got[1], "E", got[2])
            self.assertLess(time.time() - t0, 8.0)
            # everything the slow one was sent is still there, in order
            res = slow.collect(list(range(1, n + 1)), timeout=300)
            for rid in range(1, n + 1):
                self.assertEqual(res[rid][1], "E", res[rid][2])
                self.assertEqual(res[rid][2]["n_gen"], str(max_tokens))
                self.assertEqual(res[rid][0], res[1][0])
            self.assertGreater(len(res[1][0]), max_tokens)
            slow.close()
            fast.close()
        finally:
            srv.stop()

    def test_bad_options(self):
        for opt in ("--max-batch-tokens", "--max-queued", "--max-seqs", "--kv-block-size"):
            with self.subTest(option=opt):
                p = run("serve", "--socket-dir", "/nonexistent/x", opt, 0, check=False)
                self.assertEqual(p.returncode, 2)
                self.assertIn(opt[2:], p.stderr.decode())


def gguf_chat_template(path):
    """The tokenizer.chat_template string of a GGUF file (a minimal reader)."""
    with open(path, "rb") as f:
        data = f.read()
    key = b"tokenizer.chat_template"
    i = data.find(struct.pack("<Q", len(key)) + key)
    if i < 0:
        return None
    i += 8 + len(key)
    vtype, n = struct.unpack_from("<IQ", data, i)
    if vtype != 8:  # GGUF string
        return None
    return data[i + 12:i + 12 + n].decode("utf-8")


class ChatTemplates(unittest.TestCase):
    """`llamagpu chat-template render` against jinja2 as transformers uses it."""

    def test_reference_rendering(self):
        # every fixture template x every conversation, byte for byte (tests/chat/render_reference.py)
        script = os.path.join(ROOT, "tests", "chat", "render_reference.py")
        p = subprocess.run([sys.executable, script, "--bin", BIN], capture_output=True, timeout=1200)
        out = p.stdout.decode(errors="replace")
        if p.returncode == 77:
            self.skipTest(out.strip())
        self.assertEqual(p.returncode, 0, out + p.stderr.decode(errors="replace"))
        self.assertIn("Qwen-Qwen2.5-7B-Instruct", out)

    def test_model_template_and_tokens(self):
        # -m takes the template and the BOS/EOS texts from the GGUF (vocabulary-only files too)
        vocab = os.path.join(VOCAB_DIR, "ggml-vocab-phi-3.gguf")
        need(vocab)
        try:
            import jinja2.sandbox
        except ImportError:
            self.skipTest("SKIP: python3-jinja2 is not installed")
        source = gguf_chat_template(vocab)
        self.assertIsNotNone(source)
        msgs = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},
                {"role": "assistant", "content": "Hello"}, {"role": "user", "content": "Bye"}]
        env = jinja2.sandbox.ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
        want = env.from_string(source).render(messages=msgs, add_generation_prompt=True, bos_token="<s>",
                                              eos_token="<|endoftext|>", tools=None)
        got = run("chat-template", "render", "-m", vocab, "--messages", json.dumps(msgs)).stdout.decode()
        self.assertEqual(got, want)
        # --bos/--eos override the model's
        got = run("chat-template", "render", "-m", vocab, "--messages", json.dumps(msgs), "--bos", "[B]").stdout
        self.assertTrue(got.startswith(b"[B]<|user|>"), got)

    def test_errors(self):
        with tempfile.TemporaryDirectory() as tmp:
            tpl = os.path.join(tmp, "t.jinja")
            with open(tpl, "w") as f:
                f.write("{% if messages %}\n{{ raise_exception('no: ' ~ messages[0].role) }}\n{% endif %}")
            p = run("chat-template", "render", "--template", tpl, "--messages", '[{"role":"user"}]', check=False)
            self.assertEqual(p.returncode, 1)
            self.assertIn(b"chat-template: invalid argument: no: user", p.stderr)
            with open(tpl, "w") as f:
                f.write("ok\n{% for x in y %}")
            p = run("chat-template", "render", "--template", tpl, "--messages", "[]", check=False)
            self.assertEqual(p.returncode, 1)
            self.assertIn(b"line 2", p.stderr)
            self.assertIn(b"endfor", p.stderr)
            p = run("chat-template", "render", "--template", tpl, "--messages", "[oops", check=False)
            self.assertEqual(p.returncode, 1)
            for args in (["render"], ["render", "--messages", "[]"],
                         ["render", "--template", tpl, "-m", tpl, "--messages", "[]"],
                         ["render", "--template", tpl, "--messages", "[]", "--now", "x"],
                         ["frob"], ["render", "--bogus"]):
                p = run("chat-template", *args, check=False)
                self.assertEqual(p.returncode, 2, args)
            p = run("chat-template", "render", "-m", STORIES, "--messages", "[]", check=False)
            if os.path.exists(STORIES):
                self.assertEqual(p.returncode, 1)
                self.assertIn(b"no tokenizer.chat_template", p.stderr)
            # @FILE arguments and the generation prompt switch
            with open(tpl, "w") as f:
                f.write("{{ messages|length }}{{ tools|length }}{% if add_generation_prompt %}+{% endif %}")
            mfile = os.path.join(tmp, "m.json")
            with open(mfile, "w") as f:
                f.write('[{"role": "user", "content": "x"}]')
            out = run("chat-template", "render", "--template", tpl, "--messages", "@" + mfile,
                      "--tools", '[{"type": "function"}]').stdout
            self.assertEqual(out, b"11+")
            out = run("chat-template", "render", "--template", tpl, "--messages", "@" + mfile,
                      "--tools", "[]", "--no-generation-prompt").stdout
            self.assertEqual(out, b"10")


if __name__ == "__main__":
    unittest.main(verbosity=2)
