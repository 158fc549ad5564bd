// llamacpp-embed.mjs — time unmodified llama.cpp's embeddings (node-llama-cpp's
// prebuilt CPU binary and its embedding API) on a GGUF file, for
// scripts/bench-embed.sh.
//
// usage: node llamacpp-embed.mjs -m FILE -l LEN [-c COUNT] [-t 2] [-r 3]
// prints one line of JSON: {"emb_per_s":…, "version":…, …}
//
// What is timed (wall clock): COUNT calls of LlamaEmbeddingContext
// .getEmbeddingFor(tokens), each on LEN tokens ([CLS] first and [SEP] last
// for a bert vocabulary, random ids between: the same construction as
// `llamagpu embed --bench-len`).  node-llama-cpp's embedding API evaluates one
// input per llama_decode (it has no batch of several texts), so COUNT calls
// are what a batch of COUNT texts costs there.  One warm-up call, then R
// repetitions; the reported embeddings/s is the mean over repetitions.
import { getLlama, LlamaLogLevel } from "node-llama-cpp";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import path from "node:path";

function parseArgs(argv) {
    const o = { model: null, len: 32, count: 64, t: 2, r: 3 };
    for (let i = 0; i < argv.length; i++) {
        const a = argv[i], v = argv[i + 1];
        if (a === "-m") { o.model = v; i++; }
        else if (a === "-l") { o.len = Number(v); i++; }
        else if (a === "-c") { o.count = Number(v); i++; }
        else if (a === "-t") { o.t = Number(v); i++; }
        else if (a === "-r") { o.r = Number(v); i++; }
        else throw new Error(`unknown argument ${a}`);
    }
    if (!o.model) throw new Error("usage: llamacpp-embed.mjs -m FILE -l LEN [-c COUNT] [-t 2] [-r 3]");
    return o;
}

// The same LCG and id range as llamagpu's --bench-len.
function sequences(nVocab, len, count, first, last) {
    const out = [];
    let s = 1n;
    const M = (1n << 64n) - 1n;
    for (let i = 0; i < count; i++) {
        const seq = [];
        for (let j = 0; j < len; j++) {
            s = (s * 6364136223846793005n + 1442695040888963407n) & M;
            const r = s >> 33n;
            seq.push(nVocab > 2000 ? 1000 + Number(r % BigInt(nVocab - 1000)) : 5 + Number(r % BigInt(nVocab - 5)));
        }
        if (first != null) seq[0] = first;
        if (last != null && len > 1) seq[len - 1] = last;
        out.push(seq);
    }
    return out;
}

const nowS = () => Number(process.hrtime.bigint()) / 1e9;
const mean = (a) => a.reduce((x, y) => x + y, 0) / a.length;

const o = parseArgs(process.argv.slice(2));
const llama = await getLlama({
    gpu: false, build: "never", usePrebuiltBinaries: true, maxThreads: o.t,
    logLevel: LlamaLogLevel.error, progressLogs: false,
});
const model = await llama.loadModel({ modelPath: o.model, gpuLayers: 0, useMmap: true });
const ctx = await model.createEmbeddingContext({
    contextSize: Math.max(o.len + 8, 64), batchSize: Math.max(o.len + 8, 64), threads: o.t,
});
const meta = model.fileInfo.metadata;
const tok = meta?.tokenizer?.ggml ?? {};
const nVocab = tok.tokens?.length ?? 32000;
const isBert = tok.model === "bert";
const first = isBert ? (tok.cls_token_id ?? tok.bos_token_id) : (tok.bos_token_id ?? null);
const last = isBert ? (tok.seperator_token_id ?? tok.eos_token_id) : null;
const seqs = sequences(nVocab, o.len, o.count, first, last);

let nEmbd = 0;
const rates = [];
for (let r = -1; r < o.r; r++) {
    const t0 = nowS();
    for (const s of (r < 0 ? seqs.slice(0, 1) : seqs)) {
        const e = await ctx.getEmbeddingFor(s);
        nEmbd = e.vector.length;
    }
    if (r >= 0) rates.push(o.count / (nowS() - t0));
}

let nlcVersion = null;
try {
    const pkgDir = path.join(path.dirname(fileURLToPath(import.meta.url)), "node_modules", "node-llama-cpp");
    nlcVersion = JSON.parse(readFileSync(path.join(pkgDir, "package.json"), "utf8")).version;
} catch { /* best effort */ }
console.log(JSON.stringify({
    emb_per_s: mean(rates), best_emb_per_s: Math.max(...rates), n_embd: nEmbd, seq_len: o.len,
    count: o.count, reps: o.r, threads: o.t,
    version: `llama.cpp ${llama.llamaCppRelease.release} via node-llama-cpp ${nlcVersion}`,
}));
await ctx.dispose();
await model.dispose();
await llama.dispose();
