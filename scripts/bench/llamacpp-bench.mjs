// llamacpp-bench.mjs — time unmodified llama.cpp (node-llama-cpp's prebuilt
// CPU binary, @node-llama-cpp/linux-x64) on a GGUF file the way llama-bench's
// pp/tg tests do, for scripts/bench-cpu.sh.
//
// usage: node llamacpp-bench.mjs -m FILE [-p 128] [-n 32] [-t 2] [-r 3] [--fa auto|on|off]
// prints one line of JSON: {"pp_tps":…, "tg_tps":…, "version":…, …}
//
// What is timed (wall clock, process.hrtime):
//   pp: one llama_decode of P random tokens as a single batch (batchSize >= P)
//       on an empty sequence, logits computed for the last token only (as
//       llama_batch_get_one does in llama-bench), no sampling.
//   tg: N successive llama_decode calls of one random token each, starting
//       from an empty sequence, logits computed for that token, no sampling.
// Each timed region is the await of the sequence's evaluation, i.e.
// node-llama-cpp's batch queue (one event-loop turn per decode), the native
// llama_decode and the logits copy; clearing the sequence (llama_memory_seq_rm)
// happens before the clock starts.  One warm-up pp and tg run, then R
// repetitions; the reported t/s is the mean of per-run tokens/s (llama-bench's
// avg_ts).  Evaluation goes through LlamaContextSequence.evaluateWithMetadata
// with the package's internal `_noSampling` flag: the same decode path as
// evaluate(), but the sampler is skipped after the logits are produced.
import { getLlama, LlamaLogLevel } from "node-llama-cpp";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import path from "node:path";

function parseArgs(argv) {
    const o = { model: null, p: 128, n: 32, t: 2, r: 3, fa: "auto" };
    for (let i = 0; i < argv.length; i++) {
        const a = argv[i], v = argv[i + 1];
        if (a === "-m") { o.model = v; i++; }
        else if (a === "-p") { o.p = Number(v); i++; }
        else if (a === "-n") { o.n = Number(v); i++; }
        else if (a === "-t") { o.t = Number(v); i++; }
        else if (a === "-r") { o.r = Number(v); i++; }
        else if (a === "--fa") { o.fa = v === "on" ? true : v === "off" ? false : "auto"; i++; }
        else { throw new Error(`unknown argument ${a}`); }
    }
    if (!o.model) throw new Error("usage: llamacpp-bench.mjs -m FILE [-p 128] [-n 32] [-t 2] [-r 3] [--fa auto|on|off]");
    return o;
}

// Deterministic token stream (same LCG as llamagpu bench), skipping nothing:
// random ids in [0, nVocab).
function tokenStream(nVocab, count, seed = 1n) {
    const out = [];
    let s = seed;
    const M = (1n << 64n) - 1n;
    for (let i = 0; i < count; i++) {
        s = (s * 6364136223846793005n + 1442695040888963407n) & M;
        out.push(Number((s >> 33n) % BigInt(nVocab)));
    }
    return out;
}

// Decode `tokens` into the sequence (logits for the last one), no sampling.
async function decode(seq, tokens) {
    const it = seq.evaluateWithMetadata(tokens, {}, { _noSampling: true });
    for await (const _ of it)
        throw new Error("unexpected sampled token: _noSampling not honoured");
}

function nowS() { return Number(process.hrtime.bigint()) / 1e9; }

async function runPP(seq, toks) {
    await seq.clearHistory();
    const t0 = nowS();
    await decode(seq, toks);
    return nowS() - t0;
}

async function runTG(seq, toks) {
    await seq.clearHistory();
    const t0 = nowS();
    for (const tok of toks)
        await decode(seq, [tok]);
    return nowS() - t0;
}

const mean = (a) => a.reduce((x, y) => x + y, 0) / a.length;
const sd = (a) => {
    if (a.length < 2) return 0;
    const m = mean(a);
    return Math.sqrt(a.reduce((x, y) => x + (y - m) * (y - m), 0) / (a.length - 1));
};

const o = parseArgs(process.argv.slice(2));
const llama = await getLlama({
    gpu: false,          // CPU backend only
    build: "never",      // use the prebuilt binary; never download or compile llama.cpp
    usePrebuiltBinaries: true,
    maxThreads: o.t,
    logLevel: LlamaLogLevel.error,
    progressLogs: false,
});
const model = await llama.loadModel({ modelPath: o.model, gpuLayers: 0, useMmap: true });
const nCtx = Math.max(o.p, o.n) + 16;   // llama-bench: n_prompt + n_gen
const ctx = await model.createContext({
    contextSize: nCtx,
    batchSize: Math.max(o.p, 1),
    threads: { ideal: o.t, min: o.t },
    flashAttention: o.fa,
    sequences: 1,
});
const seq = ctx.getSequence();
const vocab = model.fileInfo.metadata?.tokenizer?.ggml?.tokens?.length
    ?? model.fileInfo.metadata?.llama?.vocab_size ?? 32000;
const toks = tokenStream(vocab, o.p + o.n);
const ppToks = toks.slice(0, o.p), tgToks = toks.slice(o.p);

const ppS = [], tgS = [];
for (let r = -1; r < o.r; r++) {            // r = -1: warm-up
    if (o.p > 0) { const t = await runPP(seq, ppToks); if (r >= 0) ppS.push(o.p / t); }
    if (o.n > 0) { const t = await runTG(seq, tgToks); if (r >= 0) tgS.push(o.n / t); }
}

// Version: node-llama-cpp reports the llama.cpp release tag it bundles; the
// commit comes from the package's llama.cpp git bundle (HEAD line), if readable.
let commit = null, nlcVersion = null;
try {
    const pkgDir = path.join(path.dirname(fileURLToPath(import.meta.url)), "node_modules", "node-llama-cpp");
    nlcVersion = JSON.parse(readFileSync(path.join(pkgDir, "package.json"), "utf8")).version;
    const head = readFileSync(path.join(pkgDir, "llama", "gitRelease.bundle")).subarray(0, 4096).toString("latin1");
    const m = head.match(/([0-9a-f]{40}) HEAD/);
    if (m) commit = m[1];
} catch { /* best effort */ }
const rel = llama.llamaCppRelease;
const out = {
    pp_tps: o.p > 0 ? mean(ppS) : null, pp_stddev: o.p > 0 ? sd(ppS) : null,
    tg_tps: o.n > 0 ? mean(tgS) : null, tg_stddev: o.n > 0 ? sd(tgS) : null,
    version: `llama.cpp ${rel.release}${commit ? " (" + commit.slice(0, 10) + ")" : ""} via node-llama-cpp ${nlcVersion}`,
    llama_cpp_repo: rel.repo, llama_cpp_release: rel.release, llama_cpp_commit: commit,
    build_type: llama.buildType, n_prompt: o.p, n_gen: o.n, threads: ctx.currentThreads,
    repetitions: o.r, context_size: ctx.contextSize, flash_attention: ctx.flashAttention,
    system_info: llama.systemInfo,
};
console.log(JSON.stringify(out));
await ctx.dispose();
await model.dispose();
await llama.dispose();
