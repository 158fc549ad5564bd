#!/usr/bin/python3
"""Embeddings checked against an independent numpy forward pass.

`llamagpu synth` writes small random-weight bert, nomic-bert and llama
models (F32 and F16 weights); this file reads them back with its own GGUF
reader, runs the forward pass in numpy (float64, written from the model
descriptions, not from the C code), pools and normalises, and compares with
`llamagpu embed --json`: 1e-4 relative error per vector, for single texts
and for batches of texts of different lengths.  Also: batch == single,
normalisation, pooling choices, the WordPiece [CLS]/[SEP] framing and the
errors for empty and overlong input.

Needs numpy: run with /usr/bin/python3 (Debian's python3-numpy).
"""
import json
import os
import struct
import subprocess
import tempfile
import unittest

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.environ.get("LLAMAGPU_BIN", os.path.join(ROOT, "bin", "llamagpu"))
SHARED = os.environ.get("LLAMAGPU_SHARED", os.path.join(ROOT, "..", "shared"))
BGE_VOCAB = os.path.join(SHARED, "fixtures", "tokenizer", "ggml-vocab-bert-bge.gguf")

TEXTS = ["hello world", "a", "the quick brown fox jumps over the lazy dog, twice!",
         "embeddings: 42 + 7 = 49", "x y z"]
TOL = 1e-4


def run(*args, stdin=None, check=True):
    p = subprocess.run([BIN, *map(str, args)], input=stdin, capture_output=True, timeout=300)
    if check and p.returncode != 0:
        raise AssertionError("llamagpu %s failed (%d): %s" % (" ".join(map(str, args)), p.returncode,
                                                           p.stderr.decode(errors="replace")))
    return p


# ---- a GGUF reader of our own (the format: github.com/ggml-org/ggml docs/gguf.md) ----

GGUF_SCALARS = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}
GGML_F32, GGML_F16 = 0, 1


def read_gguf(path):
    """(metadata dict, {name: (type, ne, float64 array of shape ne[::-1])})."""
    data = open(path, "rb").read()
    off = 0

    def take(fmt):
        nonlocal off
        v = struct.unpack_from("<" + fmt, data, off)
        off += struct.calcsize("<" + fmt)
        return v[0]

    def string():
        nonlocal off
        n = take("Q")
        s = data[off:off + n].decode("utf-8", "replace")
        off += n
        return s

    def value(t):
        if t in GGUF_SCALARS:
            return take(GGUF_SCALARS[t])
        if t == 8:
            return string()
        if t == 9:
            et, n = take("I"), take("Q")
            return [value(et) for _ in range(n)]
        raise ValueError("GGUF value type %d" % t)

    assert data[:4] == b"GGUF", path
    off = 4
    take("I")
    n_tensors, n_kv = take("Q"), take("Q")
    meta = {}
    for _ in range(n_kv):
        k = string()
        meta[k] = value(take("I"))
    infos = []
    for _ in range(n_tensors):
        name = string()
        ne = [take("Q") for _ in range(take("I"))]
        infos.append((name, ne, take("I"), take("Q")))
    align = meta.get("general.alignment", 32)
    base = (off + align - 1) // align * align
    tensors = {}
    for name, ne, t, o in infos:
        count = int(np.prod(ne))
        if t == GGML_F32:
            a = np.frombuffer(data, np.float32, count, base + o)
        elif t == GGML_F16:
            a = np.frombuffer(data, np.float16, count, base + o)
        else:
            raise unittest.SkipTest("tensor type %d is not read by this test" % t)
        tensors[name] = (t, ne, a.astype(np.float64).reshape(ne[::-1]))
    return meta, tensors


# ---- the reference forward passes ----

class Ref:
    """One model's weights and its forward pass, sequence by sequence."""

    def __init__(self, path):
        self.meta, self.t = read_gguf(path)
        self.arch = self.meta["general.architecture"]
        a = self.arch
        self.d = self.meta[a + ".embedding_length"]
        self.n_layer = self.meta[a + ".block_count"]
        self.n_head = self.meta[a + ".attention.head_count"]
        self.n_head_kv = self.meta.get(a + ".attention.head_count_kv", self.n_head)
        self.hd = self.d // self.n_head
        self.eps = self.meta.get(a + ".attention.layer_norm_epsilon",
                                 self.meta.get(a + ".attention.layer_norm_rms_epsilon", 1e-5))
        self.base = self.meta.get(a + ".rope.freq_base", 10000.0)
        self.pooling = self.meta.get(a + ".pooling_type", 3)

    def w(self, name):
        return self.t[name][2]

    def mm(self, x, name):
        """x · Wᵀ; F16 weights take f16-rounded activations, as ggml's vec_dot_f16 does."""
        t, _, w = self.t[name]
        if t == GGML_F16:
            x = x.astype(np.float32).astype(np.float16).astype(np.float64)
        return x @ w.T

    @staticmethod
    def layernorm(x, w, b, eps):
        mu = x.mean(-1, keepdims=True)
        var = ((x - mu) ** 2).mean(-1, keepdims=True)
        return (x - mu) / np.sqrt(var + eps) * w + b

    @staticmethod
    def rmsnorm(x, w, eps):
        return x / np.sqrt((x * x).mean(-1, keepdims=True) + eps) * w

    @staticmethod
    def gelu(x):
        return 0.5 * x * (1.0 + np.tanh(np.sqrt(2.0 / np.pi) * (x + 0.044715 * x ** 3)))

    @staticmethod
    def silu(x):
        return x / (1.0 + np.exp(-x))

    def rope(self, x, neox):
        """x [n, heads, hd]; position p rotates pair i by p * base^(-2i/hd)."""
        n, _, hd = x.shape
        half = hd // 2
        theta = np.arange(n)[:, None] * self.base ** (-2.0 * np.arange(half) / hd)[None, :]
        cos, sin = np.cos(theta)[:, None, :], np.sin(theta)[:, None, :]
        y = x.copy()
        if neox:
            a, b = x[..., :half], x[..., half:]
            y[..., :half], y[..., half:] = a * cos - b * sin, a * sin + b * cos
        else:
            a, b = x[..., 0::2], x[..., 1::2]
            y[..., 0::2], y[..., 1::2] = a * cos - b * sin, a * sin + b * cos
        return y

    def attention(self, q, k, v, causal):
        n = q.shape[0]
        q = q.reshape(n, self.n_head, self.hd)
        k = np.repeat(k.reshape(n, self.n_head_kv, self.hd), self.n_head // self.n_head_kv, axis=1)
        v = np.repeat(v.reshape(n, self.n_head_kv, self.hd), self.n_head // self.n_head_kv, axis=1)
        s = np.einsum("ihd,jhd->hij", q, k) / np.sqrt(self.hd)
        if causal:
            s = s + np.triu(np.full((n, n), -np.inf), 1)[None]
        p = np.exp(s - s.max(-1, keepdims=True))
        p /= p.sum(-1, keepdims=True)
        return np.einsum("hij,jhd->ihd", p, v).reshape(n, self.d)

    def hidden(self, ids):
        """The last hidden states [n, d] of one sequence."""
        if self.arch in ("bert", "nomic-bert"):
            return self.hidden_encoder(ids)
        return self.hidden_llama(ids)

    def hidden_encoder(self, ids):
        bert = self.arch == "bert"
        n = len(ids)
        x = self.w("token_embd.weight")[ids] + self.w("token_types.weight")[0]
        if bert:
            x = x + self.w("position_embd.weight")[:n]
        x = self.layernorm(x, self.w("token_embd_norm.weight"), self.w("token_embd_norm.bias"), self.eps)
        for il in range(self.n_layer):
            p = "blk.%d." % il
            if bert:
                q = self.mm(x, p + "attn_q.weight") + self.w(p + "attn_q.bias")
                k = self.mm(x, p + "attn_k.weight") + self.w(p + "attn_k.bias")
                v = self.mm(x, p + "attn_v.weight") + self.w(p + "attn_v.bias")
            else:
                qkv = self.mm(x, p + "attn_qkv.weight")
                q, k, v = qkv[:, :self.d], qkv[:, self.d:2 * self.d], qkv[:, 2 * self.d:]
                q = self.rope(q.reshape(n, self.n_head, self.hd), True).reshape(n, self.d)
                k = self.rope(k.reshape(n, self.n_head, self.hd), True).reshape(n, self.d)
            a = self.mm(self.attention(q, k, v, False), p + "attn_output.weight")
            if bert:
                a = a + self.w(p + "attn_output.bias")
            x = self.layernorm(a + x, self.w(p + "attn_output_norm.weight"),
                               self.w(p + "attn_output_norm.bias"), self.eps)
            if bert:
                h = self.gelu(self.mm(x, p + "ffn_up.weight") + self.w(p + "ffn_up.bias"))
                f = self.mm(h, p + "ffn_down.weight") + self.w(p + "ffn_down.bias")
            else:
                h = self.silu(self.mm(x, p + "ffn_gate.weight")) * self.mm(x, p + "ffn_up.weight")
                f = self.mm(h, p + "ffn_down.weight")
            x = self.layernorm(f + x, self.w(p + "layer_output_norm.weight"),
                               self.w(p + "layer_output_norm.bias"), self.eps)
        return x

    def hidden_llama(self, ids):
        n = len(ids)
        kvd = self.n_head_kv * self.hd
        x = self.w("token_embd.weight")[ids]
        for il in range(self.n_layer):
            p = "blk.%d." % il
            h = self.rmsnorm(x, self.w(p + "attn_norm.weight"), self.eps)
            q = self.mm(h, p + "attn_q.weight").reshape(n, self.n_head, self.hd)
            k = self.mm(h, p + "attn_k.weight").reshape(n, self.n_head_kv, self.hd)
            v = self.mm(h, p + "attn_v.weight")
            q = self.rope(q, False).reshape(n, self.d)
            k = self.rope(k, False).reshape(n, kvd)
            x = x + self.mm(self.attention(q, k, v, True), p + "attn_output.weight")
            h = self.rmsnorm(x, self.w(p + "ffn_norm.weight"), self.eps)
            g = self.silu(self.mm(h, p + "ffn_gate.weight")) * self.mm(h, p + "ffn_up.weight")
            x = x + self.mm(g, p + "ffn_down.weight")
        return self.rmsnorm(x, self.w("output_norm.weight"), self.eps)

    def embed(self, ids, pooling, normalize=True):
        h = self.hidden(ids)
        v = {0: h, 1: h.mean(0, keepdims=True), 2: h[:1], 3: h[-1:]}[pooling]
        if normalize:
            v = v / np.linalg.norm(v, axis=-1, keepdims=True)
        return v


POOLS = {"none": 0, "mean": 1, "cls": 2, "last": 3}


class Embeddings(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.models = {}
        shapes = {
            "bert": ["--arch", "bert", "--dim", 64, "--layers", 2, "--heads", 4, "--ffn", 128,
                     "--ctx", 64, "--vocab-wpm", "--pooling", "mean"],
            "nomic-bert": ["--arch", "nomic-bert", "--dim", 64, "--layers", 2, "--heads", 4, "--ffn", 96,
                           "--ctx", 128, "--vocab-wpm", "--pooling", "mean"],
            "llama": ["--arch", "llama", "--dim", 64, "--layers", 2, "--heads", 4, "--kv-heads", 2,
                      "--ffn", 96, "--ctx", 128, "--vocab-bytes"],
        }
        for arch, args in shapes.items():
            for ty in ("f32", "f16"):
                path = os.path.join(cls.tmp.name, "%s-%s.gguf" % (arch, ty))
                run("synth", *args, "--type", ty, "--seed", 7, "-o", path)
                cls.models[arch, ty] = path

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def embed(self, path, texts, *opts):
        p = run("embed", "-m", path, "--json", *opts, *texts)
        out = json.loads(p.stdout)
        return out, [np.array(e, dtype=np.float64) for e in out["embeddings"]]

    def tokens(self, path, text):
        p = run("tokenize", "-m", path, "--bos", "--jsonl", stdin=(json.dumps(text) + "\n").encode())
        return json.loads(p.stdout)

    def check(self, got, want, what):
        got, want = np.atleast_2d(got), np.atleast_2d(want)
        self.assertEqual(got.shape, want.shape, what)
        for r in range(want.shape[0]):
            err = np.abs(got[r] - want[r]).max() / np.abs(want[r]).max()
            self.assertLess(err, TOL, "%s, row %d: relative error %.3g" % (what, r, err))

    def test_against_reference(self):
        # Every model, both weight types, its own pooling: batched and one text at a time.
        for (arch, ty), path in sorted(self.models.items()):
            ref = Ref(path)
            pool = "last" if arch == "llama" else "mean"
            want = [ref.embed(self.tokens(path, t), POOLS[pool])[0] for t in TEXTS]
            for batch in ("1", "64"):
                out, got = self.embed(path, TEXTS, "--batch", batch)
                self.assertEqual(out["pooling"], pool)
                self.assertEqual(out["n_embd"], 64)
                for i, t in enumerate(TEXTS):
                    self.check(got[i], want[i], "%s %s batch %s text %r" % (arch, ty, batch, t))

    def test_poolings(self):
        # cls, last, mean and none (per token), normalised or not, on each architecture.
        for arch in ("bert", "nomic-bert", "llama"):
            path = self.models[arch, "f32"]
            ref = Ref(path)
            ids = [self.tokens(path, t) for t in TEXTS[:3]]
            for pool in ("mean", "cls", "last", "none"):
                if arch == "llama" and pool == "cls":
                    continue
                for norm in (True, False):
                    opts = ["--pooling", pool] + ([] if norm else ["--no-normalize"])
                    _, got = self.embed(path, TEXTS[:3], *opts)
                    for i in range(3):
                        want = ref.embed(ids[i], POOLS[pool], norm)
                        self.check(got[i], want, "%s %s normalize=%s text %d" % (arch, pool, norm, i))

    def test_batch_equals_single(self):
        # A text's vector does not depend on what it is batched with (packed, not padded).
        for arch in ("bert", "nomic-bert", "llama"):
            path = self.models[arch, "f16"]
            _, single = self.embed(path, TEXTS, "--batch", "1")
            _, batched = self.embed(path, TEXTS, "--batch", "5")
            _, reordered = self.embed(path, TEXTS[::-1], "--batch", "5")
            for i in range(len(TEXTS)):
                np.testing.assert_allclose(batched[i], single[i], rtol=0, atol=1e-6, err_msg=arch)
                np.testing.assert_allclose(reordered[len(TEXTS) - 1 - i], single[i], rtol=0, atol=1e-6,
                                           err_msg=arch)

    def test_normalisation(self):
        for arch in ("bert", "llama"):
            path = self.models[arch, "f32"]
            _, unit = self.embed(path, TEXTS)
            _, raw = self.embed(path, TEXTS, "--no-normalize")
            for u, r in zip(unit, raw):
                self.assertAlmostEqual(float(np.linalg.norm(u)), 1.0, places=5)
                self.assertGreater(abs(float(np.linalg.norm(r)) - 1.0), 1e-3)
                np.testing.assert_allclose(u, r / np.linalg.norm(r), rtol=0, atol=1e-6)

    def test_stdin_and_plain_output(self):
        path = self.models["bert", "f32"]
        p = run("embed", "-m", path, stdin=("\n".join(TEXTS[:2]) + "\n").encode())
        rows = [np.array(line.split(), dtype=np.float64) for line in p.stdout.decode().splitlines()]
        _, want = self.embed(path, TEXTS[:2])
        self.assertEqual(len(rows), 2)
        for r, w in zip(rows, want):
            np.testing.assert_allclose(r, w, rtol=0, atol=1e-8)

    def test_errors(self):
        path = self.models["bert", "f32"]
        p = run("embed", "-m", path, "hello", "", check=False)
        self.assertEqual(p.returncode, 1)
        self.assertIn(b"text 2 is empty", p.stderr)
        # 64 positions: [CLS] + 70 characters + [SEP] do not fit
        p = run("embed", "-m", path, "x" * 70, check=False)
        self.assertEqual(p.returncode, 1)
        self.assertIn(b"more than the context's 64", p.stderr)
        p = run("embed", "-m", path, "--pooling", "max", "hi", check=False)
        self.assertEqual(p.returncode, 2)
        self.assertIn(b"unknown pooling", p.stderr)
        p = run("embed", "-m", path, check=False, stdin=b"")
        self.assertEqual(p.returncode, 2)
        p = run("eval", "-m", path, "--ids", "2,5,3", "--json", check=False)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn(b"encoder", p.stderr)

    def test_bge_vocabulary_framing(self):
        # A bert model on bge's real WordPiece vocabulary: [CLS] ... [SEP], lower-cased, accents gone.
        if not os.path.exists(BGE_VOCAB):
            raise unittest.SkipTest("SKIP: fixture %s not found (set LLAMAGPU_SHARED)" % BGE_VOCAB)
        path = os.path.join(self.tmp.name, "bge.gguf")
        run("synth", "--arch", "bert", "--dim", 32, "--layers", 1, "--heads", 2, "--ffn", 64,
            "--vocab-from", BGE_VOCAB, "--type", "f16", "--seed", 3, "-o", path)
        ids = self.tokens(path, "Hello Wörld")
        self.assertEqual(ids[0], 101)
        self.assertEqual(ids[-1], 102)
        self.assertEqual(ids, self.tokens(path, "hello world"))
        ref = Ref(path)
        _, got = self.embed(path, ["Hello Wörld", "semantic search"])
        self.check(got[0], ref.embed(ids, 1)[0], "bge vocabulary")


if __name__ == "__main__":
    unittest.main()
