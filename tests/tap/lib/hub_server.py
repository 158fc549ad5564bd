#!/usr/bin/python3
"""hub_server.py — a small model hub on loopback for the download tests.

Serves the files of --root the way huggingface.co does, plus paths that
misbehave on purpose:

  /<org>/<repo>/resolve/<rev>/<file>  302 to http://localhost:PORT/cdn/<file>
        (another host, so a client must drop the token), with X-Linked-Etag
        (the sha256), X-Linked-Size and X-Repo-Commit; 404 EntryNotFound.
        org "private" needs "Authorization: Bearer <--token>" (401 without);
        repo "badsha" publishes a wrong sha256.
  /cdn/<file>            the file, with Range, If-Range and an ETag
  /drop/<file>           the first request of each file stops after half
                         the body (the connection is closed); later ones
                         are served like /cdn/
  /slow/<file>           4 KiB every 100 ms
  /redirect/<n>/<file>   n redirects, then /cdn/<file>
  /api/models/<org>/<repo>/tree/<rev>   the tree listing, two entries a
                         page, with a Link: rel="next" header

Every request is logged to --log as one JSON line (method, path, host,
range, if_range, authorization).  The port is written to --port-file.
"""
import argparse
import hashlib
import http.server
import json
import os
import re
import threading
import time
import urllib.parse

ARGS = None
LOCK = threading.Lock()
DROPPED = set()


def sha256_of(path):
    h = hashlib.sha256()
    with open(path, 'rb') as f:
        for chunk in iter(lambda: f.read(1 << 20), b''):
            h.update(chunk)
    return h.hexdigest()


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = 'HTTP/1.1'

    def log_message(self, fmt, *args):
        pass

    def log_request_json(self):
        entry = {
            'method': self.command,
            'path': self.path,
            'host': self.headers.get('Host', ''),
            'range': self.headers.get('Range'),
            'if_range': self.headers.get('If-Range'),
            'authorization': self.headers.get('Authorization'),
        }
        with LOCK, open(ARGS.log, 'a') as f:
            f.write(json.dumps(entry) + '\n')

    def send_plain(self, code, body=b'', headers=None):
        self.send_response(code)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        if self.command != 'HEAD':
            self.wfile.write(body)

    def file_path(self, name):
        name = urllib.parse.unquote(name)
        if '/' in name or name.startswith('.'):
            return None
        p = os.path.join(ARGS.root, name)
        return p if os.path.isfile(p) else None

    def do_HEAD(self):
        self.do_GET()

    def do_GET(self):
        self.log_request_json()
        url = urllib.parse.urlsplit(self.path)
        path = url.path
        m = re.fullmatch(r'/([^/]+)/([^/]+)/resolve/([^/]+)/(.+)', path)
        if m and not path.startswith('/api/'):
            return self.resolve(*m.groups())
        m = re.fullmatch(r'/api/models/([^/]+)/([^/]+)/tree/([^/]+)', path)
        if m:
            return self.tree(m.group(1), m.group(2), urllib.parse.parse_qs(url.query))
        m = re.fullmatch(r'/redirect/(\d+)/(.+)', path)
        if m:
            n = int(m.group(1))
            target = '/cdn/' + m.group(2) if n <= 1 else '/redirect/%d/%s' % (n - 1, m.group(2))
            return self.send_plain(302, b'', {'Location': target})
        m = re.fullmatch(r'/(cdn|drop|slow)/(.+)', path)
        if m:
            return self.serve(m.group(1), m.group(2))
        self.send_plain(404, b'not found\n')

    def resolve(self, org, repo, rev, name):
        if org == 'private' and self.headers.get('Authorization') != 'Bearer ' + ARGS.token:
            return self.send_plain(401, b'unauthorized\n', {'X-Error-Code': 'RepoNotFound'})
        p = self.file_path(name)
        if p is None:
            return self.send_plain(404, b'entry not found\n', {'X-Error-Code': 'EntryNotFound'})
        sha = sha256_of(p)
        if repo == 'badsha':
            sha = hashlib.sha256(b'something else').hexdigest()
        port = self.server.server_address[1]
        self.send_plain(302, b'', {
            'Location': 'http://localhost:%d/cdn/%s' % (port, urllib.parse.quote(name)),
            'X-Linked-Etag': '"%s"' % sha,
            'X-Linked-Size': str(os.path.getsize(p)),
            'X-Repo-Commit': '0' * 40,
            'ETag': '"%s"' % sha,
        })

    def tree(self, org, repo, query):
        entries = [{'type': 'directory', 'oid': '0' * 40, 'size': 0, 'path': 'docs'},
                   {'type': 'file', 'oid': '1' * 40, 'size': 12, 'path': 'README.md'}]
        for name in sorted(os.listdir(ARGS.root)):
            p = os.path.join(ARGS.root, name)
            size = os.path.getsize(p)
            entries.append({'type': 'file', 'oid': '2' * 40, 'size': size, 'path': 'gguf/' + name,
                            'lfs': {'oid': sha256_of(p), 'size': size, 'pointerSize': 134}})
        start = int(query.get('cursor', ['0'])[0])
        page = entries[start:start + 2]
        headers = {'Content-Type': 'application/json'}
        if start + 2 < len(entries):
            port = self.server.server_address[1]
            headers['Link'] = ('<http://127.0.0.1:%d/api/models/%s/%s/tree/main?recursive=true&cursor=%d>; '
                               'rel="next"' % (port, org, repo, start + 2))
        self.send_plain(200, json.dumps(page).encode(), headers)

    def serve(self, mode, name):
        p = self.file_path(name)
        if p is None:
            return self.send_plain(404, b'not found\n')
        with open(p, 'rb') as f:
            data = f.read()
        etag = '"%s"' % hashlib.sha256(data).hexdigest()
        start, code = 0, 200
        rng = self.headers.get('Range')
        if_range = self.headers.get('If-Range')
        if rng and (if_range is None or if_range == etag):
            m = re.fullmatch(r'bytes=(\d+)-', rng)
            if m:
                start = int(m.group(1))
                if start >= len(data):
                    return self.send_plain(416, b'', {'Content-Range': 'bytes */%d' % len(data)})
                code = 206
        body = data[start:]
        self.send_response(code)
        self.send_header('Content-Length', str(len(body)))
        self.send_header('ETag', etag)
        self.send_header('Accept-Ranges', 'bytes')
        if code == 206:
            self.send_header('Content-Range', 'bytes %d-%d/%d' % (start, len(data) - 1, len(data)))
        self.end_headers()
        if self.command == 'HEAD':
            return
        try:
            if mode == 'drop':
                with LOCK:
                    first = name not in DROPPED
                    DROPPED.add(name)
                if first:
                    self.wfile.write(body[:len(body) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    return
            if mode == 'slow':
                for i in range(0, len(body), 4096):
                    self.wfile.write(body[i:i + 4096])
                    self.wfile.flush()
                    time.sleep(0.1)
                return
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True


def main():
    global ARGS
    ap = argparse.ArgumentParser()
    ap.add_argument('--root', required=True)
    ap.add_argument('--port-file', required=True)
    ap.add_argument('--log', required=True)
    ap.add_argument('--token', default='sekret')
    ARGS = ap.parse_args()
    server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), Handler)
    server.daemon_threads = True
    tmp = ARGS.port_file + '.tmp'
    with open(tmp, 'w') as f:
        f.write(str(server.server_address[1]))
    os.rename(tmp, ARGS.port_file)
    server.serve_forever()


if __name__ == '__main__':
    main()
