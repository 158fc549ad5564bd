#!/usr/bin/env python3
"""render_reference.py — our chat-template renderer against jinja2, byte for byte.

Every template in ../shared/fixtures/chat-templates/*.jinja is rendered for a
fixed set of conversations twice: by python3-jinja2 set up exactly as
transformers' apply_chat_template sets it up (ImmutableSandboxedEnvironment,
trim_blocks, lstrip_blocks, loopcontrols, tojson = json.dumps(ensure_ascii=
False), raise_exception, strftime_now on a fixed clock, tools=None and
documents=None when absent), and by `llamagpu chat-template render`.  A case
matches when both give the same bytes, or both raise (a template that says
"roles must alternate" must say it here too).

    tests/chat/render_reference.py [--bin bin/llamagpu] [--templates DIR] [-v]

Prints one line per template: matched/total; exits 1 on any mismatch, 77
when python3-jinja2 or the fixtures are missing (the skip code of automake).
"""
import argparse
import glob
import json
import os
import subprocess
import sys
import tempfile
from datetime import datetime, timezone

NOW = 1721995200  # 2024-07-26 12:00:00 UTC
BOS = "<s>"
EOS = "</s>"

TOOLS = [
    {"type": "function", "function": {
        "name": "get_weather",
        "description": "Get the current weather in a city",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string", "description": "The city, e.g. Paris"},
                "days": {"type": "integer", "description": "How many days"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"], "description": "Unit"},
                "tags": {"type": "array", "items": {"type": "string"}, "description": "Tags"},
            },
            "required": ["city"],
        },
    }},
    {"type": "function", "function": {
        "name": "search",
        "description": "Search the web for \"anything\" & more",
        "parameters": {
            "type": "object",
            "properties": {"query": {"type": "string", "description": "What to look for"},
                           "limit": {"type": "number", "description": "At most this many"}},
            "required": ["query", "limit"],
        },
    }},
]


def tool_call(args_as_string, name="get_weather", args=None, cid="call12345"):
    args = args if args is not None else {"city": "Paris", "days": 2}
    return {"id": cid, "type": "function",
            "function": {"name": name,
                         "arguments": json.dumps(args) if args_as_string else args}}


def tool_turns(args_as_string, content=None):
    return [
        {"role": "user", "content": "What is the weather in Paris?"},
        {"role": "assistant", "content": content, "tool_calls": [tool_call(args_as_string)]},
        {"role": "tool", "tool_call_id": "call12345", "name": "get_weather",
         "content": "{\"temperature\": 21.5, \"sky\": \"clear\"}"},
        {"role": "assistant", "content": "It is 21.5 °C and clear."},
        {"role": "user", "content": "Thanks!"},
    ]


# (name, messages, tools or None)
CONVERSATIONS = [
    ("user", [{"role": "user", "content": "Hello"}], None),
    ("system+user", [{"role": "system", "content": "You are terse."},
                     {"role": "user", "content": "Hello"}], None),
    ("multi-turn", [{"role": "user", "content": "Hi"},
                    {"role": "assistant", "content": "Hello! How can I help?"},
                    {"role": "user", "content": "Tell me a joke."}], None),
    ("system+multi-turn", [{"role": "system", "content": "  Be kind.  "},
                           {"role": "user", "content": "Hi"},
                           {"role": "assistant", "content": " Hello. "},
                           {"role": "user", "content": "Bye"}], None),
    ("unicode", [{"role": "user", "content": "Ünïcödé ✓ 日本語 🙂 \"quotes\" 'single' \\back\\slash\n\ttab <b>&amp;</b>"},
                 {"role": "assistant", "content": "Ça va — très bien 👍\nline two"},
                 {"role": "user", "content": "¿Qué? \u00a0nbsp\u3000ideographic space "}], None),
    ("tools-plain", [{"role": "system", "content": "Use tools when needed."},
                     {"role": "user", "content": "Weather in Paris?"}], TOOLS),
    ("tool-calls-object", tool_turns(False), TOOLS),
    ("tool-calls-string", tool_turns(True), TOOLS),
    ("tool-calls-no-tools", tool_turns(True), None),
    ("tool-calls-null-content", tool_turns(True, content=None), TOOLS),
    ("tool-calls-with-content", tool_turns(False, content="Let me check."), TOOLS),
    ("parallel-tool-calls", [
        {"role": "user", "content": "Weather in Paris and Rome?"},
        {"role": "assistant", "content": None, "tool_calls": [
            tool_call(True), tool_call(True, args={"city": "Rome"}, cid="call67890")]},
        {"role": "tool", "tool_call_id": "call12345", "content": "sunny"},
        {"role": "tool", "tool_call_id": "call67890", "content": "rainy"},
    ], TOOLS),
    ("tool-result-object", [
        {"role": "user", "content": "Weather?"},
        {"role": "assistant", "content": None, "tool_calls": [tool_call(False)]},
        {"role": "tool", "tool_call_id": "call12345", "content": {"temperature": 21, "ok": True}},
    ], TOOLS),
    ("think", [{"role": "user", "content": "2+2?"},
               {"role": "assistant", "content": "<think>easy</think>4"},
               {"role": "user", "content": "3+3?"}], None),
    ("multi-turn+tools", [{"role": "system", "content": "Use tools."},
                          {"role": "user", "content": "Hi"},
                          {"role": "assistant", "content": "Hello! How can I help?"},
                          {"role": "user", "content": "Weather in Paris?"}], TOOLS),
    ("unicode+tools", [{"role": "user", "content": "Météo à Paris ? 🌦 \"vite\" <now> & \\"}], TOOLS),
    ("system-only", [{"role": "system", "content": "Only a system prompt."}], None),
    ("assistant-last", [{"role": "user", "content": "Finish this: once upon"},
                        {"role": "assistant", "content": "a time"}], None),
    ("roles-not-alternating", [{"role": "user", "content": "one"},
                               {"role": "user", "content": "two"}], None),
    ("empty", [], None),
]


def reference_env():
    import jinja2
    import jinja2.ext
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    class TemplateError(Exception):
        pass

    def raise_exception(message):
        raise TemplateError(message)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators,
                          sort_keys=sort_keys)

    def strftime_now(fmt):
        return datetime.fromtimestamp(NOW, timezone.utc).strftime(fmt)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                        extensions=[jinja2.ext.loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    return env


def render_reference(env, source, messages, tools, gen):
    try:
        t = env.from_string(source)
        return True, t.render(messages=messages, tools=tools, documents=None,
                              add_generation_prompt=gen, bos_token=BOS, eos_token=EOS)
    except Exception as e:  # any exception: the case must fail on our side too
        if type(e).__name__ == "TemplateError":
            return False, "raise_exception: %s" % e
        return False, "%s: %s" % (type(e).__name__, e)


def render_ours(binary, path, messages, tools, gen, tmp):
    mpath = os.path.join(tmp, "messages.json")
    with open(mpath, "w", encoding="utf-8") as f:
        json.dump(messages, f, ensure_ascii=False)
    cmd = [binary, "chat-template", "render", "--template", path, "--messages", "@" + mpath,
           "--bos", BOS, "--eos", EOS, "--now", str(NOW)]
    if tools is not None:
        tpath = os.path.join(tmp, "tools.json")
        with open(tpath, "w", encoding="utf-8") as f:
            json.dump(tools, f, ensure_ascii=False)
        cmd += ["--tools", "@" + tpath]
    if not gen:
        cmd.append("--no-generation-prompt")
    p = subprocess.run(cmd, capture_output=True, timeout=60, env=dict(os.environ, TZ="UTC"))
    if p.returncode == 0:
        return True, p.stdout.decode("utf-8")
    if p.returncode != 1 or b"chat-template:" not in p.stderr:
        raise RuntimeError("llamagpu failed unexpectedly (rc %d): %s" % (p.returncode, p.stderr.decode()))
    return False, p.stderr.decode("utf-8", "replace").strip()


def first_diff(a, b):
    n = min(len(a), len(b))
    for i in range(n):
        if a[i] != b[i]:
            return i
    return n


def main():
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bin", default=os.path.join(root, "bin", "llamagpu"))
    ap.add_argument("--templates", default=os.path.join(
        os.environ.get("LLAMAGPU_SHARED", os.path.join(root, "..", "shared")), "fixtures", "chat-templates"))
    ap.add_argument("-v", "--verbose", action="store_true", help="show every mismatch in full")
    ap.add_argument("--json", action="store_true", help="print the table as JSON")
    args = ap.parse_args()

    try:
        env = reference_env()
    except ImportError:
        print("SKIP: python3-jinja2 is not installed (apt-get install python3-jinja2)")
        return 77
    paths = sorted(glob.glob(os.path.join(args.templates, "*.jinja")))
    if not paths:
        print("SKIP: no templates in %s (set LLAMAGPU_SHARED)" % args.templates)
        return 77
    if not os.access(args.bin, os.X_OK):
        print("error: %s not built" % args.bin)
        return 2

    table = []
    failed = False
    with tempfile.TemporaryDirectory() as tmp:
        for path in paths:
            with open(path, encoding="utf-8") as f:
                source = f.read()
            name = os.path.basename(path)[:-len(".jinja")]
            ok_n = total = raised = 0
            for cname, messages, tools in CONVERSATIONS:
                for gen in (True, False):
                    total += 1
                    ref_ok, ref = render_reference(env, source, messages, tools, gen)
                    our_ok, ours = render_ours(args.bin, path, messages, tools, gen, tmp)
                    # raise_exception must give its own text as an invalid-argument error
                    same_raise = (ref_ok or not ref.startswith("raise_exception: ") or
                                  ours.endswith("invalid argument: " + ref[len("raise_exception: "):]))
                    if ref_ok == our_ok and (ref == ours if ref_ok else same_raise):
                        ok_n += 1
                        raised += not ref_ok
                        continue
                    failed = True
                    label = "%s / %s%s" % (name, cname, "" if gen else " (no generation prompt)")
                    if ref_ok and our_ok:
                        i = first_diff(ref, ours)
                        print("MISMATCH %s at char %d:\n  jinja2: %r\n  ours:   %r" % (
                            label, i, ref[max(0, i - 40):i + 60] if not args.verbose else ref,
                            ours[max(0, i - 40):i + 60] if not args.verbose else ours))
                    else:
                        print("MISMATCH %s:\n  jinja2: %s\n  ours:   %s" % (
                            label, ("ok: %r" % ref[:200]) if ref_ok else ref,
                            ("ok: %r" % ours[:200]) if our_ok else ours))
            table.append({"template": name, "matched": ok_n, "total": total, "both_raised": raised})
    if args.json:
        print(json.dumps(table, indent=1))
    else:
        print("%-50s %9s %s" % ("template", "matched", "(of which both raised)"))
        for r in table:
            print("%-50s %4d/%-4d (%d)" % (r["template"], r["matched"], r["total"], r["both_raised"]))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
