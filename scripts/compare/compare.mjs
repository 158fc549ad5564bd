// compare.mjs — check llamagpu against an unmodified llama.cpp (node-llama-cpp's
// prebuilt CPU binary) on GGUF files: tokenization, greedy continuation and
// teacher-forced next-token distributions.  Driven by scripts/compare-llamacpp.sh.
//
// usage: node compare.mjs --bin bin/llamagpu [--n 24] [--threads 2]
//                         [--json-out FILE] LABEL:FAMILY:FILE...
//   FAMILY selects the tolerance (see BOUNDS below): f32 | f16 | q8 | quant
//
// Per model and prompt:
//  (a) tokenization: ours `tokenize --bos --special --jsonl` vs llama.cpp's
//      common_tokenize(text, add_special=false, parse_special=true) with BOS/EOS
//      added as the vocabulary says (what llama-tokenize / llama_tokenize with
//      add_special=true produce).
//  (b) greedy: ours `generate -p TEXT -n N --temp 0 --kv f32 --json` vs
//      llama.cpp decoding the same prompt ids then N single-token steps with
//      the greedy sampler.  Both stop at an end-of-generation token.
//  (c) distributions: llama.cpp's probabilities (node-llama-cpp computes
//      softmax over the full vocabulary of the raw logits when the greedy
//      sampler is used; log p = logit - logsumexp, so raw logits are recovered
//      up to a per-position constant) at every position of the path
//      prompt + llama.cpp's greedy ids, vs ours `eval --ids PATH --top K --kv f32`
//      on the same path.  Metrics, per position, with r = ours' argmax:
//        dlogit = max over ours' top-K ids i of |(o_i - o_r) - (q_i - q_r)|
//                 (o: our raw logits, q: llama.cpp's log-probabilities)
//        rel    = dlogit / (max q - min q)  (llama.cpp's logit range there)
//      and, when K = n_vocab: max |Δp| and KL(p_llama.cpp || p_ours).
//  Both sides use an F32 KV cache (node-llama-cpp experimentalKvCacheKeyType/
//  ValueType "F32"; flash attention off).
import { execFileSync } from "node:child_process";
import { readFileSync, writeFileSync, writeSync } from "node:fs";
import { fileURLToPath, pathToFileURL } from "node:url";
import path from "node:path";

// node-llama-cpp lives in scripts/bench/node_modules (installed from its lock file).
const pkgDir = process.env.NODE_LLAMA_CPP_DIR ??
    path.join(path.dirname(fileURLToPath(import.meta.url)), "..", "bench", "node_modules", "node-llama-cpp");
const { getLlama, LlamaLogLevel } = await import(pathToFileURL(path.join(pkgDir, "dist", "index.js")).href);

// Tolerances on `rel` (max over all positions/prompts of a model), set at
// about 3x the largest value observed on 2026-11-27 (docs/engine.md,
// "Checked against llama.cpp"):
//  f32:   observed 3e-7 (stories260K 9e-7): summation order only.
//  f16, q8, quant: both sides convert activations (to f16, or q8_0/q8_1/q8_K
//         blocks); a last-bit summation-order difference occasionally flips one
//         rounding: one f16 ulp stays local (~1e-4), one int8 step moves the
//         logits by ~1e-2 of their range and persists through K/V.  Our own
//         SIMD levels (LLAMAGPU_CPU_SIMD=scalar|avx2|avx512) differ from each
//         other by the same amounts.  Observed max: f16 2.8e-4, quantized 1.0e-2.
const BOUNDS = { f32: 1e-5, f16: 1e-3, q8: 3e-2, quant: 3e-2 };

const MAX_LONG = 220;
const PROMPTS = [
    { name: "ascii", text: "Once upon a time, there was a little girl named Lily." },
    { name: "digits+punct", text: "In 2024, 3.14159 * 42 = 131.95; (x+y)^2 != x^2 + y^2 -- right? [yes]! #1 @home 100%" },
    { name: "non-ascii", text: "Grüße aus Köln! Ça va? Привет, мир. こんにちは世界 🦙🚀 naïve café ½ €5" },
    { name: "spaces/newlines", text: "  leading spaces\n\ttab and\n\nnewlines   trailing  " },
    { name: "long", text: (
        "The little dog ran across the green field to find his friend, the old brown cat, who was sleeping " +
        "under the big apple tree. When he arrived, the cat opened one eye and said: \"Why are you running so " +
        "fast on such a warm day?\" The dog wagged his tail and answered that he had found a shiny red ball " +
        "near the river, and that he wanted to share it. They played together until the sun went down, " +
        "and then they walked home slowly, talking about the birds, the fish in the river and the clouds " +
        "that looked like sheep. The next morning, the girl who lived in the house gave them both a bowl " +
        "of milk and a piece of bread. \"You are my best friends,\" she said, and she smiled. In 1999 the " +
        "tree was 12 metres tall; today it is taller than the roof, and every autumn it gives more than " +
        "300 apples. The cat still sleeps under it, and the dog still runs across the field every day.") },
];

function parseArgs(argv) {
    const o = { bin: "bin/llamagpu", n: 24, threads: 2, jsonOut: null, models: [], topBig: 64 };
    for (let i = 0; i < argv.length; i++) {
        const a = argv[i], v = argv[i + 1];
        if (a === "--bin") { o.bin = v; i++; }
        else if (a === "--n") { o.n = Number(v); i++; }
        else if (a === "--threads") { o.threads = Number(v); i++; }
        else if (a === "--json-out") { o.jsonOut = v; i++; }
        else if (a === "--top-big") { o.topBig = Number(v); i++; }
        else if (a.startsWith("--")) throw new Error(`unknown option ${a}`);
        else {
            const [label, family, ...rest] = a.split(":");
            if (!BOUNDS[family] || rest.length === 0) throw new Error(`bad model spec ${a} (LABEL:FAMILY:FILE)`);
            o.models.push({ label, family, file: rest.join(":") });
        }
    }
    return o;
}

const opt = parseArgs(process.argv.slice(2));

function ours(args, input) {
    return execFileSync(opt.bin, args, { input, encoding: "utf8", maxBuffer: 1 << 30, stdio: ["pipe", "pipe", "pipe"] });
}
function oursTokenize(file, texts) {
    const out = ours(["tokenize", "-m", file, "--bos", "--special", "--jsonl"],
        texts.map((t) => JSON.stringify(t)).join("\n") + "\n");
    return out.trim().split("\n").map((l) => JSON.parse(l));
}
function oursGenerate(file, text, n) {
    return JSON.parse(ours(["generate", "-m", file, "-p", text, "-n", String(n), "--temp", "0",
        "--kv", "f32", "-t", String(opt.threads), "--json"]));
}
// cmd_generate.c sizes its prompt-id buffer as strlen(prompt)+16 and does not
// retry when lg_tokenize says it needs more (cmd_tokenize.c does): prompts
// whose byte-fallback tokens outnumber their bytes fail with "cannot tokenize
// the prompt".  Then greedy ids come from repeated `eval --top 1` (same
// forward pass, whole sequence re-evaluated each step) and are marked "via eval".
function oursGreedy(file, text, promptIds, n, isEog) {
    try { return { ...oursGenerate(file, text, n), via: "generate" }; }
    catch (e) {
        if (!String(e.stderr).includes("cannot tokenize the prompt")) throw e;
    }
    const ids = [];
    while (ids.length < n) {
        const r = oursEval(file, [...promptIds, ...ids], 1);
        const t = r[r.length - 1][0].id;
        if (isEog(t)) break;
        ids.push(t);
    }
    return { prompt_ids: promptIds, ids, via: "eval" };
}
function oursEval(file, ids, top) {
    return JSON.parse(ours(["eval", "-m", file, "--ids", ids.join(","), "--top", String(top), "--kv", "f32", "--json"]));
}

const llama = await getLlama({
    gpu: false, build: "never", usePrebuiltBinaries: true, maxThreads: opt.threads,
    logLevel: LlamaLogLevel.error, progressLogs: false,
});
let commit = null, nlcVersion = null;
try {
    nlcVersion = JSON.parse(readFileSync(path.join(pkgDir, "package.json"), "utf8")).version;
    const head = readFileSync(path.join(pkgDir, "llama", "gitRelease.bundle")).subarray(0, 4096).toString("latin1");
    const m = head.match(/([0-9a-f]{40}) HEAD/);
    if (m) commit = m[1];
} catch { /* best effort */ }
const version = `llama.cpp ${llama.llamaCppRelease.release}${commit ? " (" + commit.slice(0, 10) + ")" : ""} via node-llama-cpp ${nlcVersion}`;

// llama.cpp: probabilities Map -> Float64Array of log-probabilities by id.
function logProbs(map, nVocab) {
    const lp = new Float64Array(nVocab).fill(-Infinity);
    let sum = 0;
    for (const [id, p] of map) { lp[id] = p > 0 ? Math.log(p) : -Infinity; sum += p; }
    const ls = Math.log(sum);          // renormalise in double (float32 sum != 1)
    for (let i = 0; i < nVocab; i++) lp[i] -= ls;
    return lp;
}

async function llamaRun(seq, promptIds, n, isEog) {
    await seq.clearHistory();
    const probsAt = (i, last) => [promptIds[i], { generateNext: last ? { token: true, probabilities: true } : { probabilities: true } }];
    const res = await seq.controlledEvaluate(promptIds.map((_, i) => probsAt(i, i === promptIds.length - 1)));
    const dists = res.map((r) => r.next.probabilities);
    const gen = [];
    let tok = res[res.length - 1].next.token;
    while (gen.length < n && tok != null && !isEog(tok)) {
        gen.push(tok);
        if (gen.length === n) break;
        const r = await seq.controlledEvaluate([[tok, { generateNext: { token: true, probabilities: true } }]]);
        dists.push(r[0].next.probabilities);
        tok = r[0].next.token;
    }
    return { gen, dists };
}

function out(str) { writeSync(1, str); }
function arrEq(a, b) { return a.length === b.length && a.every((x, i) => x === b[i]); }
function firstDiff(a, b) {
    const m = Math.min(a.length, b.length);
    for (let i = 0; i < m; i++) if (a[i] !== b[i]) return i;
    return a.length === b.length ? -1 : m;
}

const results = [];
let failed = false;
for (const m of opt.models) {
    const t0 = Date.now();
    const model = await llama.loadModel({ modelPath: m.file, gpuLayers: 0, useMmap: true });
    const nVocab = model.fileInfo.metadata?.tokenizer?.ggml?.tokens?.length;
    const ctx = await model.createContext({
        contextSize: 2048, batchSize: 1024, sequences: 1, flashAttention: false,
        threads: { ideal: opt.threads, min: 1 },
        experimentalKvCacheKeyType: "F32", experimentalKvCacheValueType: "F32",
    });
    const seq = ctx.getSequence();
    const addBos = model.tokens.shouldPrependBosToken, addEos = model.tokens.shouldAppendEosToken;
    const top = nVocab <= 4096 ? nVocab : opt.topBig;
    const full = top === nVocab;
    // The long prompt is cut at a word boundary to at most MAX_LONG tokens
    // (byte-fallback vocabularies spend up to 3 tokens per character).
    const prompts = PROMPTS.map((p) => {
        if (p.name !== "long") return p;
        const words = p.text.split(" ");
        let k = words.length;
        while (k > 1 && model.tokenize(words.slice(0, k).join(" "), true).length > MAX_LONG) k--;
        return { name: p.name, text: words.slice(0, k).join(" ") };
    });
    const oursToks = oursTokenize(m.file, prompts.map((p) => p.text));
    const row = { label: m.label, family: m.family, file: m.file, n_vocab: nVocab, top, prompts: [] };
    for (let pi = 0; pi < PROMPTS.length; pi++) {
        const P = prompts[pi];
        const lt = model.tokenize(P.text, true);
        const ltoks = [...(addBos ? [model.tokens.bos] : []), ...lt, ...(addEos ? [model.tokens.eos] : [])];
        const tokEq = arrEq(ltoks, oursToks[pi]);
        const pr = { prompt: P.name, n_tokens: ltoks.length, tok_equal: tokEq };
        if (!tokEq) { pr.tok_first_diff = firstDiff(ltoks, oursToks[pi]); pr.tok_llama = ltoks; pr.tok_ours = oursToks[pi]; }
        // (b) greedy + llama.cpp distributions along its own path
        const { gen, dists } = await llamaRun(seq, ltoks, opt.n, (t) => model.isEogToken(t));
        const og = oursGreedy(m.file, P.text, oursToks[pi], opt.n, (t) => model.isEogToken(t));
        pr.greedy_llama = gen; pr.greedy_ours = og.ids; pr.greedy_ours_via = og.via;
        pr.prompt_ids_equal = arrEq(og.prompt_ids, ltoks);
        const gd = firstDiff(gen, og.ids);
        pr.greedy_first_diff = gd;
        // (c) ours on llama.cpp's path
        const pathIds = [...ltoks, ...gen];
        const oe = oursEval(m.file, pathIds, top);
        const byPos = []; let maxAbs = 0, maxRel = 0, maxDp = 0, maxKl = 0, top1Diff = 0, margins = [];
        for (let pos = 0; pos < dists.length; pos++) {
            const lp = logProbs(dists[pos], nVocab);
            const o = oe[pos];
            const r = o[0].id;          // ours' argmax (list is sorted)
            let qmax = -Infinity, qmin = Infinity, qarg = -1;
            for (let i = 0; i < nVocab; i++) {
                if (lp[i] > qmax) { qmax = lp[i]; qarg = i; }
                if (Number.isFinite(lp[i]) && lp[i] < qmin) qmin = lp[i];
            }
            let d = 0;
            for (const e of o) {
                if (!Number.isFinite(lp[e.id])) continue;
                d = Math.max(d, Math.abs((e.logit - o[0].logit) - (lp[e.id] - lp[r])));
            }
            maxAbs = Math.max(maxAbs, d);
            byPos.push(Number(d.toPrecision(3)));
            maxRel = Math.max(maxRel, d / (qmax - qmin));
            if (qarg !== r) top1Diff++;
            margins.push(o.length > 1 ? o[0].logit - o[1].logit : Infinity);
            if (full) {
                let lse = -Infinity;
                for (const e of o) lse = Math.max(lse, e.logit);
                let s = 0; for (const e of o) s += Math.exp(e.logit - lse);
                lse += Math.log(s);
                let kl = 0;
                for (const e of o) {
                    const lpo = e.logit - lse, pq = Math.exp(lp[e.id]);
                    maxDp = Math.max(maxDp, Math.abs(Math.exp(lpo) - pq));
                    if (pq > 0) kl += pq * (lp[e.id] - lpo);
                }
                maxKl = Math.max(maxKl, kl);
            }
        }
        Object.assign(pr, { positions: dists.length, max_dlogit: maxAbs, max_rel: maxRel, top1_diff_positions: top1Diff, dlogit_by_pos: byPos });
        if (full) Object.assign(pr, { max_dp: maxDp, max_kl: maxKl });
        if (gd >= 0) {
            const pos = ltoks.length - 1 + gd;
            pr.margin_at_diff = margins[pos] ?? null;
        }
        row.prompts.push(pr);
    }
    // summary
    const tokOk = row.prompts.every((p) => p.tok_equal && p.prompt_ids_equal);
    row.max_rel = Math.max(...row.prompts.map((p) => p.max_rel));
    row.max_dlogit = Math.max(...row.prompts.map((p) => p.max_dlogit));
    if (full) { row.max_dp = Math.max(...row.prompts.map((p) => p.max_dp)); row.max_kl = Math.max(...row.prompts.map((p) => p.max_kl)); }
    // A greedy divergence is a near-tie when ours' top-2 margin at that step is
    // below twice the largest |Δlogit| measured on this model.
    const noise = 2 * row.max_dlogit;
    row.greedy = row.prompts.map((p) => p.greedy_first_diff < 0 ? "=" :
        `@${p.greedy_first_diff}(m=${p.margin_at_diff?.toFixed(4)}${p.margin_at_diff < noise ? ",tie" : ",REAL"})`).join(" ");
    const realDiv = row.prompts.some((p) => p.greedy_first_diff >= 0 && !(p.margin_at_diff < noise));
    row.greedy_via_eval = row.prompts.filter((p) => p.greedy_ours_via === "eval").map((p) => p.prompt);
    row.tok_ok = tokOk; row.bound = BOUNDS[m.family];
    row.pass = tokOk && row.max_rel <= row.bound && !realDiv;
    if (!row.pass) failed = true;
    results.push(row);
    await ctx.dispose();
    await model.dispose();
    row.seconds = (Date.now() - t0) / 1000;
    const f = (x, d = 1) => x === undefined ? "-" : x.toExponential(d);
    if (results.length === 1) {
        out(`${version}\n\n`);
        out("| model | tok equal | greedy ids (per prompt) | max rel Δlogit | max Δlogit | max Δp | max KL | bound | result |\n");
        out("|---|---|---|---|---|---|---|---|---|\n");
    }
    out(`| ${m.label} | ${tokOk ? "yes" : "**NO**"} | ${row.greedy}${row.greedy_via_eval.length ? " †" : ""} | ${f(row.max_rel)} | ` +
        `${f(row.max_dlogit)} | ${f(row.max_dp)} | ${f(row.max_kl)} | ${f(row.bound, 0)} | ${row.pass ? "ok" : "**FAIL**"} |\n`);
}
out(`\nprompts: ${PROMPTS.map((p) => p.name).join(", ")}; greedy: '=' equal for all ${opt.n} steps, @k first ` +
    `diverging step, m = our top-2 logit margin there, tie = m < 2 x the model's max Δlogit; ` +
    `† ours via repeated eval (generate cannot tokenize the prompt)\n`);
if (opt.jsonOut) writeFileSync(opt.jsonOut, JSON.stringify({ version, date: new Date().toISOString(), bounds: BOUNDS, results }, null, 1));
await llama.dispose();
process.exit(failed ? 1 : 0);
