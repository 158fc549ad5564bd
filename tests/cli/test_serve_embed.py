#!/usr/bin/env python3
"""EMBED requests of `llamagpu serve` (docs/protocol.md, docs/embeddings.md).

Runs on the real stories260K model (a decoder, last-token pooling): the
vectors' shape and norm, a batch equals its inputs one by one, errors, and
the scheduling with generation — a generation submitted behind a large
embedding job finishes long before it, so embeddings do not starve it.
"""
import base64
import math
import os
import struct
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_cli import STORIES, EngineServer, as_list, need  # noqa: E402

TEXTS = ["Once upon a time", "The little dog ran to the park.", "Lily and Ben", "x"]


def vectors(fields):
    """The reply's embeddings as lists of floats (base64 of little-endian float32)."""
    out = []
    for b in as_list(fields.get("embedding")):
        raw = base64.b64decode(b)
        out.append(list(struct.unpack("<%df" % (len(raw) // 4), raw)))
    return out


class ServeEmbed(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        need(STORIES)

    def embed_fields(self, inputs, **extra):
        f = [("model", "stories"), ("path", STORIES)] + [("input", t) for t in inputs]
        return f + list(extra.items())

    def embed(self, conn, rid, inputs, **extra):
        conn.send("B", rid, self.embed_fields(inputs, **extra))
        return conn.collect([rid])[rid]

    def supported(self, conn):
        _, typ, body = self.embed(conn, 1, ["probe"])
        if typ == "X" and body["status"] == "unsupported":
            raise unittest.SkipTest("SKIP: the engine cannot embed yet (%s)" % body["message"])
        self.assertEqual(typ, "R", body)

    def test_errors(self):
        srv = EngineServer("--ctx-size", 64)
        try:
            conn = srv.connect()
            cases = [
                ([], {}, "arg", "at least one input"),
                (["a", ""], {}, "arg", "input 2 is empty"),
                (["word " * 200], {}, "context", "input 1 has"),
                (["a"], {"pooling": "none"}, "arg", "one per input"),
                (["a"], {"pooling": "max"}, "arg", "unknown pooling"),
                (["a"], {"normalize": "yes"}, "arg", "normalize"),
                (["a"], {"truncate": "2"}, "arg", "truncate"),
                (["a"], {"priority": "high"}, "arg", "priority"),
                (["a"] * 170000, {}, "arg", "do not fit one reply"),
            ]
            for i, (inputs, extra, status, words) in enumerate(cases):
                with self.subTest(case=i):
                    _, typ, body = self.embed(conn, 10 + i, inputs, **extra)
                    self.assertEqual(typ, "X", body)
                    self.assertEqual(body["status"], status, body)
                    self.assertIn(words, body["message"])
            conn.send("B", 50, [("input", "a")])
            got = conn.collect([50])[50]
            self.assertEqual((got[1], got[2]["status"]), ("X", "protocol"))
            conn.close()
        finally:
            srv.stop()

    def test_vectors_batch_equals_single(self):
        srv = EngineServer("--ctx-size", 64)
        try:
            conn = srv.connect()
            self.supported(conn)
            _, typ, body = self.embed(conn, 2, TEXTS)
            self.assertEqual(typ, "R", body)
            n_embd = int(body["n_embd"])
            self.assertEqual(body["pooling"], "last")
            batch = vectors(body)
            self.assertEqual(len(batch), len(TEXTS))
            self.assertEqual(len(as_list(body["n_tokens"])), len(TEXTS))
            self.assertEqual(sum(map(int, as_list(body["n_tokens"]))), int(body["n_prompt"]))
            for v in batch:
                self.assertEqual(len(v), n_embd)
                self.assertAlmostEqual(math.sqrt(sum(x * x for x in v)), 1.0, places=5)
            self.assertNotEqual(batch[0], batch[1])
            for i, t in enumerate(TEXTS):
                _, typ, one = self.embed(conn, 100 + i, [t])
                self.assertEqual(typ, "R", one)
                # the same floats, bit for bit: the reply carries them exactly
                for a, b in zip(vectors(one)[0], batch[i]):
                    self.assertAlmostEqual(a, b, delta=1e-5 * max(1.0, abs(b)))
            # without normalisation the direction is the same
            _, typ, raw = self.embed(conn, 3, TEXTS[:1], normalize=0)
            self.assertEqual(typ, "R", raw)
            r = vectors(raw)[0]
            norm = math.sqrt(sum(x * x for x in r))
            self.assertNotAlmostEqual(norm, 1.0, places=3)
            for a, b in zip(r, batch[0]):
                self.assertAlmostEqual(a / norm, b, places=5)
            # truncation: an overlong input is cut to the context
            _, typ, tr = self.embed(conn, 4, ["word " * 200, "a"], truncate=1)
            self.assertEqual(typ, "R", tr)
            self.assertEqual(as_list(tr["n_tokens"])[0], "64")
            self.assertEqual(tr["n_truncated"], "1")
            st = as_list(conn.status().get("sched"))[0].split("\t")
            self.assertEqual(st[1:3], ["0", "0"])          # nothing queued or running
            self.assertEqual(st[3], st[4])                  # submitted == finished
            conn.close()
        finally:
            srv.stop()

    def test_generation_not_starved(self):
        """A generation submitted behind a big embedding job ends long before the job."""
        srv = EngineServer("--max-batch-tokens", 64, "--ctx-size", 128)
        try:
            conn = srv.connect()
            self.supported(conn)
            big = ["Once upon a time there was a little girl named Lily %d. " % i * 2 for i in range(600)]
            t0 = time.time()
            conn.send("B", 2, self.embed_fields(big))
            time.sleep(0.05)
            conn.send("G", 3, model="stories", path=STORIES, prompt="The little dog", max_tokens=20,
                      temperature=0)
            order = []
            times = {}
            while len(order) < 2:
                typ, rid, body = conn.read(timeout=300)
                if typ == "P":
                    continue
                order.append(rid)
                times[rid] = (time.time() - t0, typ, body)
            self.assertEqual(times[2][1], "R", times[2][2])
            self.assertEqual(times[3][1], "E", times[3][2])
            self.assertEqual(order, [3, 2], times)
            # 20 tokens took a small share of the embedding job's time
            self.assertLess(times[3][0], times[2][0] / 3, times)
            self.assertEqual(len(vectors(times[2][2])), len(big))
            conn.close()
        finally:
            srv.stop()

    def test_busy_and_cancel(self):
        srv = EngineServer("--max-queued", 1, "--max-batch-tokens", 16, "--debug-token-delay-ms", 100)
        try:
            conn = srv.connect()
            self.supported(conn)
            big = ["Once upon a time there was a girl"] * 200
            conn.send("B", 2, self.embed_fields(big))
            time.sleep(0.5)      # running: it no longer counts as queued
            # two more between two steps: the queue holds one
            conn.send("B", 3, self.embed_fields(big))
            conn.send("B", 4, self.embed_fields(big))
            typ, rid, body = conn.read(timeout=30)
            self.assertIn(rid, (3, 4))
            self.assertEqual((typ, body["status"]), ("X", "busy"))
            other = 7 - rid
            st = as_list(conn.status().get("sched"))[0].split("\t")
            self.assertEqual(st[5], "1")                      # rejected
            for rid in (other, 2):
                conn.send("C", rid)
            res = conn.collect([2, other], timeout=30)
            for rid in (2, other):
                self.assertEqual((res[rid][1], res[rid][2]["status"]), ("X", "cancelled"))
            st = as_list(conn.status().get("sched"))[0].split("\t")
            self.assertEqual(st[1:5], ["0", "0", "3", "3"])    # queued running submitted finished
            # a timeout while running; STATUS lists the request meanwhile
            conn.send("B", 5, self.embed_fields(big, timeout_ms=500))
            time.sleep(0.3)
            reqs = as_list(conn.status().get("request"))
            self.assertEqual(len(reqs), 1)
            self.assertEqual(reqs[0].split("\t")[4], "prompt")
            got = conn.collect([5], timeout=30)[5]
            self.assertEqual((got[1], got[2]["status"]), ("X", "timeout"))
            conn.close()
        finally:
            srv.stop()

if __name__ == "__main__":
    unittest.main()
