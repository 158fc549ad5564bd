#!/usr/bin/env python3
"""jsonschemabench.py — JSON Schema coverage on JSONSchemaBench.

For every <fixtures>/<Dataset>---*.json (schema plus test instances marked
valid or not), compile the schema with llamagpu's compiler and check the
grammar against the instances through `llamagpu grammar schema-batch` (one
process per job, thousands of schemas each, JSON lines):

  * each valid instance, written as json.dumps writes it (keys reordered
    into the schema's property order; default, compact and indent=2 forms),
    is fed token by token with a real 32k vocabulary: every token must be in
    the mask and EOS allowed at the end (no over-constraining);
  * each invalid instance must be refused: some byte not accepted, or not
    complete at the end (no under-constraining).

A schema is covered when it compiles and all its tests pass.  The labels
are checked with Python's jsonschema (with its format checks, as the labels
were made); an instance whose label jsonschema disagrees with is left out
and counted.

  scripts/jsonschemabench.py [--limit N] [--datasets A,B] [--out FILE.md]
                             [--check-targets] [--generate N]

--generate N: also sample N outputs per compiled schema from
stories260K.gguf with random seeds (constrained by the grammar) and
validate each with jsonschema (with format checks): invalid outputs are
counted (target 0).
"""
import argparse
import collections
import glob
import json
import os
import re
import subprocess
import sys
import threading
import time

try:
    import jsonschema
except ImportError:
    # a Python without Debian's modules (pyenv, a venv): run again under the system one, where
    # scripts/lib.sh installs python3-jsonschema
    if os.path.exists("/usr/bin/python3") and not os.environ.get("LLAMAGPU_REEXEC"):
        os.environ["LLAMAGPU_REEXEC"] = "1"
        os.execv("/usr/bin/python3", ["/usr/bin/python3"] + sys.argv)
    raise
from jsonschema import validators

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.environ.get("LLAMAGPU_SHARED", os.path.join(ROOT, "..", "shared"))
DATASETS = ["Glaiveai2K", "Github_trivial", "Github_easy", "Github_medium"]
TARGETS = {"Glaiveai2K": 99.0, "Github_easy": 95.0, "Github_medium": 85.0}


# ---- property order, as the compiler writes it --------------------------

class Ordering:
    """Reorders an instance's keys into the order the compiled grammar writes them."""

    def __init__(self, root):
        self.root = root
        cls = validators.validator_for(root, default=jsonschema.Draft7Validator)
        try:
            # with format checks, as the dataset's labels were made
            self.validator = cls(root, format_checker=cls.FORMAT_CHECKER)
        except Exception:
            self.validator = None

    def resolve(self, ref):
        """The node a local $ref names (None when remote or missing)."""
        if not isinstance(ref, str):
            return None
        base, _, frag = ref.partition("#")
        if base:
            rid = self.root.get("$id") or self.root.get("id")
            if not isinstance(rid, str) or rid.rstrip("#") != base:
                return None
        from urllib.parse import unquote
        frag = unquote(frag)
        node = self.root
        if frag and not frag.startswith("/"):
            return self.find_anchor(self.root, frag)
        for seg in frag.split("/")[1:]:
            seg = seg.replace("~1", "/").replace("~0", "~")
            if isinstance(node, dict) and seg in node:
                node = node[seg]
            elif isinstance(node, list) and seg.isdigit() and int(seg) < len(node):
                node = node[int(seg)]
            else:
                return None
        return node

    def find_anchor(self, node, name):
        if isinstance(node, dict):
            if node.get("$anchor") == name or node.get("$id") == "#" + name or node.get("id") == "#" + name:
                return node
            for k, v in node.items():
                if k in ("enum", "const"):
                    continue
                f = self.find_anchor(v, name)
                if f is not None:
                    return f
        elif isinstance(node, list):
            for v in node:
                f = self.find_anchor(v, name)
                if f is not None:
                    return f
        return None

    def valid(self, v, schema):
        if self.validator is None:
            return False
        try:
            return self.validator.evolve(schema=schema).is_valid(v)
        except Exception:
            return False

    def collect(self, s, v, main, alts, depth=0):
        """Flatten s as the compiler merges it: $ref, allOf, itself; anyOf/oneOf after."""
        if depth > 40 or not isinstance(s, dict):
            return
        if "$ref" in s:
            t = self.resolve(s["$ref"])
            self.collect(t, v, main, alts, depth + 1)
        for b in s.get("allOf", []) if isinstance(s.get("allOf"), list) else []:
            self.collect(b, v, main, alts, depth + 1)
        main.append(s)
        for kw in ("anyOf", "oneOf"):
            if isinstance(s.get(kw), list):
                alts.append(s[kw])

    def flat(self, s, v):
        main, alts = [], []
        self.collect(s, v, main, alts)
        seen = 0
        while alts and seen < 40:
            seen += 1
            branches = alts.pop(0)
            chosen = None
            for b in branches:
                if self.valid(v, b):
                    chosen = b
                    break
            if chosen is None and branches:
                chosen = branches[0]
            m2, a2 = [], []
            self.collect(chosen, v, m2, a2)
            main.extend(m2)
            alts = a2 + alts
        return main

    def reorder(self, v, s, depth=0):
        if depth > 60:
            return v
        if isinstance(v, dict):
            schemas = self.flat(s, v)
            order, props = [], collections.OrderedDict()
            for fs in schemas:
                p = fs.get("properties")
                if isinstance(p, dict):
                    for k, ps in p.items():
                        if k not in props:
                            props[k] = []
                            order.append(k)
                        props[k].append(ps)
            for fs in schemas:
                r = fs.get("required")
                if isinstance(r, list):
                    for k in r:
                        if isinstance(k, str) and k not in props:
                            props[k] = []
                            order.append(k)
            for fs in schemas:
                d = fs.get("dependencies")
                if isinstance(d, dict):
                    for k, dv in d.items():
                        if k not in props:
                            props[k] = []
                            order.append(k)
                        if isinstance(dv, list):
                            for k2 in dv:
                                if isinstance(k2, str) and k2 not in props:
                                    props[k2] = []
                                    order.append(k2)
            out = {}
            for k in order:
                if k in v:
                    sub = self.value_schema(k, props.get(k, []), schemas)
                    out[k] = self.reorder(v[k], sub, depth + 1)
            for k in v:
                if k not in out:
                    out[k] = self.reorder(v[k], self.value_schema(k, [], schemas), depth + 1)
            return out
        if isinstance(v, list):
            schemas = self.flat(s, v)
            res = []
            for i, x in enumerate(v):
                subs = []
                for fs in schemas:
                    pi = fs.get("prefixItems")
                    it = fs.get("items")
                    if isinstance(pi, list):
                        subs.append(pi[i] if i < len(pi) else it)
                    elif isinstance(it, list):
                        subs.append(it[i] if i < len(it) else fs.get("additionalItems"))
                    elif it is not None:
                        subs.append(it)
                subs = [x2 for x2 in subs if isinstance(x2, dict)]
                res.append(self.reorder(x, {"allOf": subs} if subs else True, depth + 1))
            return res
        return v

    def value_schema(self, k, direct, schemas):
        subs = [x for x in direct if isinstance(x, dict)]
        for fs in schemas:
            pp = fs.get("patternProperties")
            if isinstance(pp, dict):
                for pat, ps in pp.items():
                    try:
                        if re.search(pat, k) and isinstance(ps, dict):
                            subs.append(ps)
                    except re.error:
                        pass
            if not direct:
                ap = fs.get("additionalProperties")
                if isinstance(ap, dict):
                    subs.append(ap)
        return {"allOf": subs} if subs else True


def forms(v):
    """The texts an instance is checked in: default, compact, indent=2."""
    return [json.dumps(v, ensure_ascii=False),
            json.dumps(v, ensure_ascii=False, separators=(",", ":")),
            json.dumps(v, ensure_ascii=False, indent=2)]


# ---- running the C tool -------------------------------------------------

def run_batch(binary, vocab, requests, jobs):
    """Send requests (dicts) to `jobs` schema-batch processes; replies by id."""
    replies = {}
    chunks = [requests[i::jobs] for i in range(jobs)]

    def worker(chunk):
        cmd = [binary, "grammar", "schema-batch"] + (["-m", vocab] if vocab else [])
        p = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             text=True, encoding="utf-8", bufsize=1)

        def feed():
            for r in chunk:
                p.stdin.write(json.dumps(r, ensure_ascii=False) + "\n")
            p.stdin.close()
        t = threading.Thread(target=feed)
        t.start()
        for line in p.stdout:
            try:
                rep = json.loads(line)
            except json.JSONDecodeError:
                continue
            replies[rep.get("id")] = rep
        t.join()
        p.wait()

    threads = [threading.Thread(target=worker, args=(c,)) for c in chunks if c]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return replies


def reason_of(msg):
    """A short, path-free category for an error message."""
    m = re.search(r'unsupported keyword "([^"]+)"(?: at \S+)?(?:: (.*))?', msg)
    if m:
        detail = m.group(2) or ""
        detail = re.sub(r"#\S*", "", detail)
        detail = re.sub(r'"[^"]*"', '"…"', detail)
        return m.group(1) + (": " + detail[:60] if detail else "")
    m = re.search(r'unsupported format "([^"]+)"', msg)
    if m:
        return "format " + m.group(1)
    msg = re.sub(r"#\S*", "#…", msg)
    return re.sub(r'"[^"]*"', '"…"', msg)[:80]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--fixtures", default=os.path.join(SHARED, "fixtures", "jsonschemabench"))
    ap.add_argument("--vocab", default=os.path.join(SHARED, "fixtures", "tokenizer", "ggml-vocab-llama-spm.gguf"))
    ap.add_argument("--model", default=os.path.join(SHARED, "fixtures", "models", "stories260K.gguf"))
    ap.add_argument("--bin", default=os.path.join(ROOT, "bin", "llamagpu"))
    ap.add_argument("--datasets", default=",".join(DATASETS))
    ap.add_argument("--limit", type=int, default=0, help="schemas per dataset (0: all)")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--no-masks", action="store_true", help="valid instances by bytes, not token masks")
    ap.add_argument("--out", help="write the markdown report here")
    ap.add_argument("--failures", type=int, default=0, help="print this many failures per kind")
    ap.add_argument("--check-targets", action="store_true", help="exit 1 when coverage is below the targets or any over-constraining")
    ap.add_argument("--generate", type=int, default=0, help="samples per schema from the model")
    ap.add_argument("--max-tokens", type=int, default=384, help="generation limit per sample")
    ap.add_argument("--json", action="store_true", help="print the summary as JSON")
    args = ap.parse_args()

    if not os.path.isdir(args.fixtures):
        print("SKIP: %s not found" % args.fixtures)
        return 0
    datasets = [d for d in args.datasets.split(",") if d]
    requests, meta = [], {}
    label_disagree = collections.Counter()
    for ds in datasets:
        files = sorted(glob.glob(os.path.join(args.fixtures, ds + "---*.json")))
        if args.limit:
            files = files[:args.limit]
        for f in files:
            with open(f, encoding="utf-8") as fh:
                doc = json.load(fh)
            schema = doc.get("schema")
            tests = doc.get("tests", [])
            order = Ordering(schema) if isinstance(schema, dict) else None
            insts, modes, kinds = [], [], []
            for t in tests:
                data = t.get("data")
                label = bool(t.get("valid"))
                py = order.valid(data, schema) if order else label
                if py != label:
                    label_disagree[ds] += 1
                    continue
                try:
                    v = order.reorder(data, schema) if order else data
                except Exception:
                    v = data
                if label:
                    for text in forms(v):
                        insts.append(text)
                        modes.append("bytes" if args.no_masks else "mask")
                        kinds.append(True)
                else:
                    insts.append(forms(v)[0])
                    modes.append("bytes")
                    kinds.append(False)
            rid = len(requests)
            requests.append({"id": rid, "schema": schema, "instances": insts, "modes": modes})
            meta[rid] = (ds, os.path.basename(f), kinds, insts, schema)
    t0 = time.time()
    replies = run_batch(args.bin, None if args.no_masks else args.vocab, requests, args.jobs)
    elapsed = time.time() - t0

    stats = {ds: collections.Counter() for ds in datasets}
    reasons = {ds: collections.Counter() for ds in datasets}
    fails = collections.defaultdict(list)
    compile_us = []
    for rid, (ds, name, kinds, insts, schema) in meta.items():
        rep = replies.get(rid, {"status": "crash", "error": "no reply"})
        st = stats[ds]
        st["total"] += 1
        if rep["status"] != "ok":
            st["not_compiled"] += 1
            if rep["status"] == "unsupported":
                st["unsupported"] += 1
                reasons[ds][reason_of(rep.get("error", ""))] += 1
            else:
                st["error_" + rep["status"]] += 1
                reasons[ds]["[%s] %s" % (rep["status"], reason_of(rep.get("error", "")))] += 1
                fails["error"].append((name, rep.get("error", "")))
            continue
        st["compiled"] += 1
        compile_us.append(rep.get("compile_us", 0) + rep.get("parse_us", 0))
        over = under = False
        for ok_expected, res, text in zip(kinds, rep.get("results", []), insts):
            if res is None:
                continue
            if ok_expected and not res["ok"]:
                over = True
                fails["over"].append((name, text, res))
            if not ok_expected and res["ok"]:
                under = True
                fails["under"].append((name, text, res))
        st["over"] += over
        st["under"] += under
        if not over and not under:
            st["covered"] += 1

    gen = {}
    if args.generate:
        gen = generate(args, meta, replies)

    lines = ["| dataset | schemas | compiled | unsupported | other errors | over-constrained | under-constrained | covered | coverage |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    summary = {}
    for ds in datasets:
        st = stats[ds]
        cov = 100.0 * st["covered"] / st["total"] if st["total"] else 0.0
        summary[ds] = dict(st, coverage=cov)
        other = st["not_compiled"] - st["unsupported"]
        lines.append("| %s | %d | %d | %d | %d | %d | %d | %d | %.1f%% |" % (
            ds, st["total"], st["compiled"], st["unsupported"], other, st["over"], st["under"], st["covered"], cov))
    cu = sorted(compile_us)
    p50 = cu[len(cu) // 2] if cu else 0
    p99 = cu[min(len(cu) - 1, int(len(cu) * 0.99))] if cu else 0
    lines.append("")
    lines.append("Compile time per schema (schema → GBNF → parsed grammar): p50 %.0f µs, p99 %.0f µs; %d schemas checked in %.1f s (%d jobs)." % (
        p50, p99, len(meta), elapsed, args.jobs))
    lines.append("Instances left out because Python's jsonschema disagrees with their label: %s." % (
        ", ".join("%s %d" % (d, label_disagree[d]) for d in datasets)))
    lines.append("")
    lines.append("Top reasons a schema is refused:")
    lines.append("")
    for ds in datasets:
        top = reasons[ds].most_common(8)
        if top:
            lines.append("- %s: %s" % (ds, "; ".join("%s (%d)" % (r, n) for r, n in top)))
    if gen:
        lines.append("")
        lines.append("Generation (stories260K, %d seeds per compiled schema, temperature 1, at most %d tokens): %d outputs, %d finished (end of generation), %d invalid (jsonschema with format checks), %d errors." % (
            args.generate, args.max_tokens, gen["outputs"], gen["finished"], gen["invalid"], gen["errors"]))
    report = "\n".join(lines)
    print(report)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as fh:
            fh.write(report + "\n")
    if args.json:
        print(json.dumps({"summary": summary, "compile_us_p50": p50, "compile_us_p99": p99, "generate": gen}))
    for kind in ("over", "under", "error"):
        for item in fails[kind][:args.failures]:
            print("%s: %s" % (kind.upper(), json.dumps(item, ensure_ascii=False)[:600]))
    if args.check_targets:
        bad = []
        for ds in datasets:
            if stats[ds]["over"]:
                bad.append("%s: %d over-constrained" % (ds, stats[ds]["over"]))
            if ds in TARGETS and summary[ds]["coverage"] < TARGETS[ds]:
                bad.append("%s: coverage %.1f%% < %.1f%%" % (ds, summary[ds]["coverage"], TARGETS[ds]))
        if gen and (gen["invalid"] or gen["errors"]):
            bad.append("%d invalid generated outputs, %d errors" % (gen["invalid"], gen["errors"]))
        if bad:
            print("FAIL: " + "; ".join(bad))
            return 1
        print("targets met")
    return 0


def generate(args, meta, replies):
    """Sample outputs with the model (`llamagpu generate --json-schema`) and validate them."""
    import concurrent.futures
    import tempfile
    jobs = []
    for rid, (ds, name, kinds, insts, schema) in sorted(meta.items()):
        if replies.get(rid, {}).get("status") == "ok":
            for k in range(args.generate):
                jobs.append((rid, k))
    tmp = tempfile.mkdtemp(prefix="jsb-gen-")
    paths = {}
    for rid, _ in jobs:
        if rid not in paths:
            paths[rid] = os.path.join(tmp, "%d.json" % rid)
            with open(paths[rid], "w", encoding="utf-8") as fh:
                json.dump(meta[rid][4], fh, ensure_ascii=False)

    def one(job):
        rid, k = job
        cmd = [args.bin, "generate", "-m", args.model, "-p", "", "--json-schema", paths[rid],
               "--seed", str(1000 * rid + k + 1), "-n", str(args.max_tokens), "--temp", "1", "--top-k", "0", "--top-p", "1",
               "--min-p", "0", "-t", "1", "--json"]
        p = subprocess.run(cmd, capture_output=True, timeout=120 + args.max_tokens // 10)
        try:
            return rid, json.loads(p.stdout.decode("utf-8", "replace"))
        except json.JSONDecodeError:
            return rid, {"error": p.stderr.decode("utf-8", "replace")[:300]}

    res = collections.Counter()
    bad = []
    with concurrent.futures.ThreadPoolExecutor(args.jobs) as ex:
        for rid, out in ex.map(one, jobs):
            res["outputs"] += 1
            if "error" in out:
                res["errors"] += 1
                bad.append((meta[rid][1], "error: " + out["error"]))
                continue
            if out.get("finish_reason") not in ("stop", "eog"):
                continue
            res["finished"] += 1
            schema = meta[rid][4]
            cls = validators.validator_for(schema, default=jsonschema.Draft7Validator)
            try:
                v = json.loads(out["text"])
                ok = cls(schema, format_checker=cls.FORMAT_CHECKER).is_valid(v)
            except Exception:
                ok = False
            if not ok:
                res["invalid"] += 1
                bad.append((meta[rid][1], out["text"][:300]))
    for b in bad[:max(args.failures, 5)]:
        print("INVALID OUTPUT: %s" % json.dumps(b, ensure_ascii=False))
    return {"outputs": res["outputs"], "finished": res["finished"], "invalid": res["invalid"], "errors": res["errors"]}


if __name__ == "__main__":
    sys.exit(main())
