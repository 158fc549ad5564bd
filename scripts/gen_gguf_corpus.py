#!/usr/bin/env python3
"""gen_gguf_corpus.py — write the seed corpus of tests/fuzz/fuzz_gguf.c.

Small GGUF files (a few KB at most) built byte by byte: valid ones that
cover every value type, string arrays, versions 2 and 3, several alignments
and a tensor of every block type (filled with random bytes, so the
quantized data includes NaN and inf scales), and near-misses of each
validation rule, so the fuzzer starts next to every branch of the reader.

    scripts/gen_gguf_corpus.py [OUTDIR]   (default tests/fuzz/corpus/gguf)

Deterministic: the same files on every run.
"""

import os
import random
import struct
import sys

# GGUF value types
U8, I8, U16, I16, U32, I32, F32, BOOL, STR, ARR, U64, I64, F64 = range(13)

# tensor types: number -> (block size, bytes per block)
TYPES = {
    0: (1, 4), 1: (1, 2), 2: (32, 18), 3: (32, 20), 6: (32, 22), 7: (32, 24),
    8: (32, 34), 9: (32, 36), 10: (256, 84), 11: (256, 110), 12: (256, 144),
    13: (256, 176), 14: (256, 210), 15: (256, 292), 24: (1, 1), 25: (1, 2),
    26: (1, 4), 27: (1, 8), 28: (1, 8), 30: (1, 2),
}

SCALAR_FMT = {U8: "<B", I8: "<b", U16: "<H", I16: "<h", U32: "<I", I32: "<i",
              F32: "<f", BOOL: "<B", U64: "<Q", I64: "<q", F64: "<d"}


def s(text):
    """A GGUF string."""
    b = text.encode() if isinstance(text, str) else text
    return struct.pack("<Q", len(b)) + b


def kv(key, vtype, value):
    """A key/value pair; value is a Python scalar, str, or (elem_type, list) for arrays."""
    out = s(key) + struct.pack("<I", vtype)
    if vtype == STR:
        return out + s(value)
    if vtype == ARR:
        etype, items = value
        out += struct.pack("<IQ", etype, len(items))
        for it in items:
            out += s(it) if etype == STR else struct.pack(SCALAR_FMT[etype], it)
        return out
    return out + struct.pack(SCALAR_FMT[vtype], value)


def tensor_info(name, ne, ttype, offset):
    return s(name) + struct.pack("<I", len(ne)) + b"".join(struct.pack("<q", n) for n in ne) + \
        struct.pack("<IQ", ttype, offset)


def nbytes(ne, ttype):
    bs, ts = TYPES[ttype]
    n = 1
    for d in ne:
        n *= d
    return n // bs * ts


def gguf(kvs, tensors, version=3, alignment=32, rng=None, fill=None):
    """A file: kvs as built by kv(); tensors as (name, ne, type); data random or fill."""
    head = b"GGUF" + struct.pack("<IQQ", version, len(tensors), len(kvs)) + b"".join(kvs)
    infos = b""
    data = b""
    offset = 0
    for name, ne, ttype in tensors:
        infos += tensor_info(name, ne, ttype, offset)
        size = nbytes(ne, ttype)
        blob = bytes(rng.getrandbits(8) for _ in range(size)) if fill is None else fill * size
        pad = (alignment - size % alignment) % alignment
        data += blob + b"\0" * pad
        offset += size + pad
    out = head + infos
    if tensors:
        out += b"\0" * ((alignment - len(out) % alignment) % alignment)
    return out + data


def main():
    outdir = sys.argv[1] if len(sys.argv) > 1 else "tests/fuzz/corpus/gguf"
    os.makedirs(outdir, exist_ok=True)
    rng = random.Random(1234)
    files = {}

    every_kv = [
        kv("general.architecture", STR, "llama"),
        kv("v.u8", U8, 200), kv("v.i8", I8, -5), kv("v.u16", U16, 60000),
        kv("v.i16", I16, -300), kv("v.u32", U32, 4000000000), kv("v.i32", I32, -7),
        kv("v.f32", F32, 1e-5), kv("v.bool", BOOL, 1), kv("v.u64", U64, 2**63 + 5),
        kv("v.i64", I64, -2**40), kv("v.f64", F64, 2.5),
        kv("a.str", ARR, (STR, ["<s>", "", "\u2581the", "b\0c"])),
        kv("a.f32", ARR, (F32, [0.0, -1.5, 3.25])),
        kv("a.i32", ARR, (I32, [1, 2, 3])),
        kv("a.bool", ARR, (BOOL, [1, 0])),
        kv("a.empty", ARR, (U64, [])),
    ]
    files["kv_every_type"] = gguf(every_kv, [])
    files["kv_every_type_v2"] = gguf(every_kv, [], version=2)

    # one tensor of every type, two rows each (one block for K-quants)
    for t, (bs, _) in sorted(TYPES.items()):
        ne = [bs * (1 if bs == 256 else 2), 2]
        files["tensor_type_%d" % t] = gguf([kv("general.architecture", STR, "llama")],
                                           [("w.%d" % t, ne, t)], rng=rng)
    # f16 data with inf/NaN scales everywhere
    for t in (2, 8, 12, 14):
        bs = TYPES[t][0]
        files["tensor_nan_%d" % t] = gguf([], [("nan", [bs], t)], fill=b"\xff")

    # a small model-like file
    tok = kv("tokenizer.ggml.tokens", ARR, (STR, ["<unk>", "<s>", "</s>", "a", "b"]))
    model_kv = [kv("general.architecture", STR, "llama"),
                kv("llama.embedding_length", U32, 32),
                kv("llama.block_count", U32, 1),
                kv("llama.attention.layer_norm_rms_epsilon", F32, 1e-5), tok,
                kv("tokenizer.ggml.scores", ARR, (F32, [0.0] * 5))]
    model_t = [("token_embd.weight", [32, 5], 0), ("blk.0.attn_q.weight", [32, 32], 8),
               ("blk.0.ffn_down.weight", [256, 1], 12), ("output_norm.weight", [32], 0)]
    files["model_small"] = gguf(model_kv, model_t, rng=rng)
    # align_1 is also the regression seed for the first fuzz finding: f32 data at
    # an odd offset, once read through a misaligned float pointer, now refused
    for a in (1, 8, 64):
        files["align_%d" % a] = gguf(model_kv + [kv("general.alignment", U32, a)],
                                     model_t[:2], alignment=a, rng=rng)
    files["dims_4"] = gguf([], [("d4", [32, 1, 2, 1], 8), ("d0", [0, 3], 0)], rng=rng)

    # near-misses of each rule
    base = files["model_small"]
    files["bad_magic"] = b"GGUX" + base[4:]
    files["bad_version_1"] = base[:4] + struct.pack("<I", 1) + base[8:]
    files["bad_version_4"] = base[:4] + struct.pack("<I", 4) + base[8:]
    files["bad_big_endian"] = base[:4] + struct.pack(">I", 3) + base[8:]
    files["bad_truncated"] = base[: len(base) // 2]
    files["bad_n_kv"] = base[:16] + struct.pack("<Q", 2**62) + base[24:]
    files["bad_n_tensors"] = base[:8] + struct.pack("<Q", 2**40) + base[16:]
    files["bad_alignment_3"] = gguf([kv("general.alignment", U32, 3)], [])
    files["bad_alignment_type"] = gguf([kv("general.alignment", U64, 32)], [])
    files["bad_dup_key"] = gguf([kv("a", U8, 1), kv("a", U8, 2)], [])
    files["bad_nested_array"] = b"GGUF" + struct.pack("<IQQ", 3, 0, 1) + s("n") + \
        struct.pack("<IIQ", ARR, ARR, 1) + struct.pack("<IQ", U8, 1) + b"\0"
    files["bad_string_len"] = b"GGUF" + struct.pack("<IQQ", 3, 0, 1) + s("k") + \
        struct.pack("<IQ", STR, 2**63) + b"abc"
    files["bad_array_count"] = b"GGUF" + struct.pack("<IQQ", 3, 0, 1) + s("k") + \
        struct.pack("<IIQ", ARR, U32, 2**62) + b"\0" * 16

    def one_tensor(ne, ttype, offset, data_len):
        head = b"GGUF" + struct.pack("<IQQ", 3, 1, 0) + tensor_info("w", ne, ttype, offset)
        head += b"\0" * ((32 - len(head) % 32) % 32)
        return head + bytes(rng.getrandbits(8) for _ in range(data_len))

    files["bad_tensor_type"] = one_tensor([8], 4, 0, 32)
    files["bad_tensor_ndims_5"] = b"GGUF" + struct.pack("<IQQ", 3, 1, 0) + s("w") + \
        struct.pack("<I", 5) + struct.pack("<5q", 8, 1, 1, 1, 1) + struct.pack("<IQ", 0, 0) + b"\0" * 64
    files["bad_tensor_ndims_0"] = one_tensor([], 0, 0, 32)
    files["bad_tensor_block"] = one_tensor([33], 2, 0, 64)
    files["bad_tensor_negative"] = one_tensor([8, -1], 0, 0, 32)
    files["bad_tensor_overflow"] = one_tensor([2**32, 2**32, 2**20], 0, 0, 32)
    files["bad_tensor_misaligned"] = one_tensor([8], 0, 16, 64)
    files["bad_tensor_past_eof"] = one_tensor([8], 0, 32, 40)
    files["bad_dup_tensor"] = gguf([], [("w", [8], 0), ("w", [8], 0)], rng=rng)

    for name, blob in sorted(files.items()):
        assert len(blob) <= 8192, (name, len(blob))
        with open(os.path.join(outdir, name + ".gguf"), "wb") as f:
            f.write(blob)
    print("wrote %d files to %s" % (len(files), outdir))


if __name__ == "__main__":
    main()
