#!/usr/bin/python3
"""openai_adapter.py: an OpenAI-compatible HTTP endpoint for the provider tests.

It answers /v1/completions, /v1/chat/completions and /v1/embeddings (SSE
streaming or one JSON body) with llamagpu's own engine: it starts a private
`llamagpu serve` and sends each request to it over the engine protocol
(docs/protocol.md), so a remote model's output can be compared with the same
model run locally.  Other remote model names script the faults a real
provider has (see MODELS below).  Every request is recorded in a JSON stats
file the test reads (calls, pieces sent, aborted streams, last body and
Authorization header per model).

usage: openai_adapter.py --model PATH --port-file FILE --stats FILE [--key KEY] [--llamagpu BIN]
"""
import argparse
import base64
import email.utils
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

# the remote model ids the adapter knows
#   stories         the engine, with the model given by --model
#   flaky           HTTP 429 (Retry-After: 1) twice, then the engine
#   down            HTTP 503 every time
#   ratelimited     HTTP 429 with Retry-After: 120 every time
#   flakydate       HTTP 429 with Retry-After as an HTTP date 2 s ahead once, then the engine
#   slow            waits 3 s before answering (timeouts)
#   drip            streams "tick " every 100 ms, 200 times (cancellation)
#   malformed       one good event, then data that is not JSON
#   midfail         one good event, then an error event
#   tools           a scripted tool call, streamed in pieces
#   badstatus       HTTP 400 with an error object
SCRIPTED = {"flaky", "flakydate", "down", "ratelimited", "slow", "drip", "malformed", "midfail", "tools", "badstatus"}

CHAT_TEMPLATE = ("{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
                 "{% if add_generation_prompt %}assistant:{% endif %}")


class Engine:
    """A private `llamagpu serve` and a client of its protocol."""

    def __init__(self, binary, model):
        self.model = model
        self.dir = tempfile.mkdtemp(prefix="lg-adapter-")
        self.proc = subprocess.Popen([binary, "serve", "--socket-dir", self.dir, "--threads", "1",
                                      "--log-level", "warning"])
        self.sock_path = os.path.join(self.dir, "engine.sock")
        deadline = time.time() + 20
        while not os.path.exists(self.sock_path):
            if time.time() > deadline or self.proc.poll() is not None:
                raise RuntimeError("llamagpu serve did not start")
            time.sleep(0.02)

    def close(self):
        self.proc.terminate()
        self.proc.wait(10)
        shutil.rmtree(self.dir, ignore_errors=True)

    @staticmethod
    def _send(s, ftype, rid, fields):
        payload = b"".join(k.encode() + b"\0" + v.encode() + b"\0" for k, v in fields)
        s.sendall(struct.pack(">IcI", len(payload), ftype.encode(), rid) + payload)

    @staticmethod
    def _recv(s):
        def exact(n):
            buf = b""
            while len(buf) < n:
                part = s.recv(n - len(buf))
                if not part:
                    raise ConnectionError("engine closed the connection")
                buf += part
            return buf
        n, ftype, rid = struct.unpack(">IcI", exact(9))
        return ftype.decode(), exact(n)

    @staticmethod
    def _fields(payload):
        parts = payload.split(b"\0")
        return {parts[i].decode(): parts[i + 1].decode("utf-8", "replace")
                for i in range(0, len(parts) - 1, 2)}

    def embed(self, inputs):
        """The engine's unit-length embeddings of inputs (lists of floats) and the token count."""
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(self.sock_path)
        try:
            self._send(s, "H", 0, [("protocol", "1"), ("client", "openai_adapter")])
            self._recv(s)
            self._send(s, "B", 1, [("model", "stories"), ("path", self.model)] +
                       [("input", t) for t in inputs])
            ftype, payload = self._recv(s)
        finally:
            s.close()
        parts = payload.split(b"\0")
        fields = [(parts[i].decode(), parts[i + 1].decode()) for i in range(0, len(parts) - 1, 2)]
        d = dict(fields)
        if ftype != "R":
            raise RuntimeError(d.get("message", "engine error"))
        n = int(d["n_embd"])
        vecs = [list(struct.unpack("<%df" % n, base64.b64decode(v))) for k, v in fields if k == "embedding"]
        return vecs, int(d.get("n_prompt", "0"))

    def generate(self, fields):
        """Yield ('P', text), then ('E', fields) or ('X', fields)."""
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(self.sock_path)
        try:
            self._send(s, "H", 0, [("protocol", "1"), ("client", "openai_adapter")])
            self._recv(s)
            self._send(s, "G", 1, [("model", "stories"), ("path", self.model)] + fields)
            while True:
                ftype, payload = self._recv(s)
                if ftype == "P":
                    yield "P", payload.decode("utf-8", "replace")
                else:
                    yield ftype, self._fields(payload)
                    return
        finally:
            s.close()


def engine_fields(body, chat):
    """The GENERATE fields for an OpenAI request body."""
    f = []
    for k in ("max_tokens", "temperature", "top_p", "top_k", "seed", "presence_penalty",
              "frequency_penalty", "min_p", "typical_p", "repeat_penalty"):
        if body.get(k) is not None:
            f.append((k, str(body[k])))
    stop = body.get("stop")
    for s in ([stop] if isinstance(stop, str) else stop or []):
        f.append(("stop", s))
    rf = body.get("response_format")
    if chat:
        f.append(("messages", json.dumps(body["messages"])))
        f.append(("chat_template", CHAT_TEMPLATE))
        if body.get("tools"):
            f.append(("tools", json.dumps(body["tools"])))
            tc = body.get("tool_choice", "auto")
            f.append(("tool_choice", tc if isinstance(tc, str) else json.dumps(tc)))
        if rf:
            f.append(("response_format", json.dumps(rf)))
    else:
        f.append(("prompt", body["prompt"]))
        if rf and rf.get("type") == "json_schema":
            f.append(("json_schema", json.dumps(rf["json_schema"]["schema"])))
            if rf["json_schema"].get("strict"):
                f.append(("json_strict", "1"))
    return f


class Handler(BaseHTTPRequestHandler):
    # JSON answers keep the connection open (Content-Length); a stream ends with it
    protocol_version = "HTTP/1.1"
    # headers and body are separate writes: without this each answer waits for a delayed ACK
    disable_nagle_algorithm = True

    def log_message(self, fmt, *args):
        pass

    # ---- bookkeeping ----

    def stat(self, model, **add):
        srv = self.server
        with srv.lock:
            m = srv.stats.setdefault(model, {"calls": 0, "pieces": 0, "aborted": 0})
            for k, v in add.items():
                if k in ("calls", "pieces", "aborted"):
                    m[k] += v
                else:
                    m[k] = v
            tmp = srv.stats_path + ".tmp"
            with open(tmp, "w") as fh:
                json.dump(srv.stats, fh)
            os.replace(tmp, srv.stats_path)

    # ---- replies ----

    def send_json(self, status, obj, headers=()):
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def error(self, status, message, headers=()):
        self.send_json(status, {"error": {"message": message, "type": "test", "code": status}}, headers)

    def start_stream(self):
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Connection", "close")
        self.close_connection = True
        self.end_headers()

    def event(self, model, obj, raw=None):
        self.wfile.write(("data: %s\n\n" % (raw if raw is not None else json.dumps(obj))).encode())
        self.wfile.flush()
        self.stat(model, pieces=1)

    def chunk(self, chat, text=None, finish=None, delta=None):
        if chat:
            d = delta if delta is not None else ({"content": text} if text is not None else {})
            return {"object": "chat.completion.chunk",
                    "choices": [{"index": 0, "delta": d, "finish_reason": finish}]}
        return {"object": "text_completion",
                "choices": [{"index": 0, "text": text or "", "finish_reason": finish}]}

    # ---- requests ----

    def do_POST(self):
        n = int(self.headers.get("Content-Length", "0"))
        try:
            body = json.loads(self.rfile.read(n))
        except ValueError:
            return self.error(400, "the body is not JSON")
        model = body.get("model", "")
        auth = self.headers.get("Authorization", "")
        with self.server.lock:
            calls = self.server.stats.get(model, {}).get("calls", 0) + 1
        self.stat(model, calls=1, last_body=body, last_auth=auth, last_path=self.path,
                  last_port=self.client_address[1])
        key = self.server.key
        if key and auth != "Bearer " + key:
            # like a real provider, the message names the key it got (the client must hide it)
            got = auth[7:] if auth.startswith("Bearer ") else auth
            return self.error(401, "Incorrect API key provided: %s." % got)
        if self.path == "/v1/embeddings":
            return self.embeddings(model, body)
        chat = self.path == "/v1/chat/completions"
        if self.path not in ("/v1/completions", "/v1/chat/completions"):
            return self.error(404, "no route %s" % self.path)
        try:
            self.answer(model, body, chat, calls)
        except (BrokenPipeError, ConnectionResetError):
            self.stat(model, aborted=1)

    def embeddings(self, model, body):
        inputs = body.get("input")
        inputs = [inputs] if isinstance(inputs, str) else inputs
        if model == "down":
            return self.error(503, "upstream overloaded")
        if model == "malformed":
            return self.send_json(200, {"data": [{"index": 0, "embedding": "oops"}]})
        vecs, n_prompt = self.server.engine.embed(inputs)
        # in reverse order: the client must place them by index
        data = [{"object": "embedding", "index": i, "embedding": v} for i, v in enumerate(vecs)][::-1]
        return self.send_json(200, {"object": "list", "data": data, "model": model,
                                    "usage": {"prompt_tokens": n_prompt, "total_tokens": n_prompt}})

    def answer(self, model, body, chat, calls):
        stream = bool(body.get("stream"))
        if model == "flaky" and calls <= 2:
            return self.error(429, "slow down", [("Retry-After", "1")] if calls == 1 else [])
        if model == "down":
            return self.error(503, "upstream overloaded")
        if model == "flakydate" and calls == 1:
            return self.error(429, "slow down", [("Retry-After", email.utils.formatdate(time.time() + 2, usegmt=True))])
        if model == "ratelimited":
            return self.error(429, "quota exhausted for this minute", [("Retry-After", "120")])
        if model == "badstatus":
            return self.error(400, "max_tokens is too large for this model")
        if model == "slow":
            time.sleep(3)
            return self.error(500, "too late")
        if model == "drip":
            self.start_stream()
            for _ in range(200):
                self.event(model, self.chunk(chat, "tick "))
                time.sleep(0.1)
            self.event(model, self.chunk(chat, None, "length"))
            return self.event(model, None, "[DONE]")
        if model == "malformed":
            self.start_stream()
            self.event(model, self.chunk(chat, "ok"))
            return self.event(model, None, '{"choices": [{"text": "broken')
        if model == "midfail":
            self.start_stream()
            self.event(model, self.chunk(chat, "partial"))
            return self.event(model, {"error": {"message": "the model crashed"}})
        if model == "tools":
            self.start_stream()
            call = {"index": 0, "id": "call_abc", "type": "function",
                    "function": {"name": "get_weather", "arguments": ""}}
            self.event(model, self.chunk(True, delta={"role": "assistant", "tool_calls": [call]}))
            for part in ('{"city":', ' "Paris"}'):
                self.event(model, self.chunk(True, delta={"tool_calls": [
                    {"index": 0, "function": {"arguments": part}}]}))
            self.event(model, self.chunk(True, None, "tool_calls"))
            self.event(model, {"choices": [], "usage": {"prompt_tokens": 7, "completion_tokens": 5}})
            return self.event(model, None, "[DONE]")
        return self.from_engine(model, body, chat, stream)

    def from_engine(self, model, body, chat, stream):
        started = False
        text = []
        tools = chat and bool(body.get("tools"))
        for kind, v in self.server.engine.generate(engine_fields(body, chat)):
            if kind == "P":
                text.append(v)
                if stream and not tools:
                    if not started:
                        self.start_stream()
                        started = True
                    self.event(model, self.chunk(chat, v))
                continue
            if kind == "X":
                if started:
                    return self.event(model, {"error": {"message": v.get("message", "")}})
                bad = v.get("status") in ("arg", "range", "grammar", "template", "context")
                return self.error(400 if bad else 500, v.get("message", "engine error"))
            usage = {"prompt_tokens": int(v["n_prompt"]), "completion_tokens": int(v["n_gen"]),
                     "total_tokens": int(v["n_prompt"]) + int(v["n_gen"])}
            finish = v.get("finish", "stop")
            message = json.loads(v["message"]) if chat and v.get("message") else \
                {"role": "assistant", "content": "".join(text)}
            if not stream:
                choice = {"index": 0, "finish_reason": finish}
                if chat:
                    choice["message"] = message
                else:
                    choice["text"] = "".join(text)
                return self.send_json(200, {"object": "chat.completion" if chat else "text_completion",
                                            "model": model, "choices": [choice], "usage": usage})
            if not started:
                self.start_stream()
            if tools:
                delta = {"role": "assistant", "content": message.get("content")}
                if message.get("tool_calls"):
                    delta["tool_calls"] = [dict(c, index=i) for i, c in enumerate(message["tool_calls"])]
                self.event(model, self.chunk(True, delta=delta))
            self.event(model, self.chunk(chat, None, finish))
            if (body.get("stream_options") or {}).get("include_usage"):
                self.event(model, {"choices": [], "usage": usage})
            return self.event(model, None, "[DONE]")


class Server(ThreadingHTTPServer):
    """Python's default listen backlog (5) would drop the connections of a batch."""
    request_queue_size = 256
    daemon_threads = True


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--port-file", required=True)
    ap.add_argument("--stats", required=True)
    ap.add_argument("--key", default="")
    ap.add_argument("--llamagpu", default=shutil.which("llamagpu") or "llamagpu")
    a = ap.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    srv = Server(("127.0.0.1", 0), Handler)
    srv.engine = Engine(a.llamagpu, a.model)
    srv.lock = threading.Lock()
    srv.stats = {}
    srv.stats_path = a.stats
    srv.key = a.key
    with open(a.stats, "w") as fh:
        fh.write("{}")
    with open(a.port_file + ".tmp", "w") as fh:
        fh.write(str(srv.server_address[1]))
    os.replace(a.port_file + ".tmp", a.port_file)
    try:
        srv.serve_forever()
    finally:
        srv.engine.close()


if __name__ == "__main__":
    sys.exit(main())
