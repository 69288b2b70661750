"""A loopback HTTP proxy in front of the sandbox that rewrites chosen DashScope answers.

The sandbox's `malformed(body=...)` fault only reaches DashScope's create call (its polls, getPolicy
and the upload take no generic faults). To put a malformed answer on a getPolicy or a task poll,
the client talks to this proxy: every request is forwarded to the sandbox unchanged (so the sandbox
still does, logs and bills what it would), and the sandbox's answer to a matching request is
replaced by `rewrite(status, answer_json)` -> (status, content_type, body bytes). It can also serve
files of its own (`serve`), e.g. a result image the rewritten answer links to, and answer a stage with
a body that never ends (`trickle`).
"""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Callable

import requests

HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "host", "content-length", "accept-encoding"}
Rewrite = Callable[[int, object], tuple[int, str, bytes]]


def stage(method: str, path: str) -> str:
    """Which DashScope call a request is: policy, create, poll, cancel or other."""
    if path.startswith("/api/v1/uploads"):
        return "policy"
    if path.endswith("/out-painting"):
        return "create"
    if path.startswith("/api/v1/tasks/"):
        return "cancel" if path.endswith("/cancel") else "poll" if method == "GET" else "other"
    return "other"


def body(value: object, status: int = 200, content_type: str = "application/json") -> Rewrite:
    """A fixed answer: JSON for anything but bytes/str, which are sent as they are."""
    data = value if isinstance(value, bytes) else value.encode() if isinstance(value, str) else \
        json.dumps(value).encode()
    return lambda _status, _answer: (status, content_type, data)


def edit(change: Callable[[dict], object]) -> Rewrite:
    """The sandbox's own JSON answer, changed by `change(answer)` (which returns the new JSON)."""
    return lambda status, answer: (status, "application/json", json.dumps(change(answer)).encode())


class AnswerProxy:
    def __init__(self, upstream: str):
        self.upstream = upstream.rstrip("/")
        self.rules: dict[str, Rewrite] = {}
        self.files: dict[str, tuple[str, bytes]] = {}
        self.rewritten: list[str] = []  # the paths whose answers were replaced
        self.trickled: set[str] = set()  # stages answered by a body that never ends (trickle())
        self.stopping = threading.Event()
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _forward(self):
                length = int(self.headers.get("Content-Length") or 0)
                sent = self.rfile.read(length) if length else b""
                if self.path in proxy.files:
                    return self._answer(200, *proxy.files[self.path])
                if stage(self.command, self.path) in proxy.trickled:
                    return self._trickle()
                headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
                got = requests.request(self.command, proxy.upstream + self.path, headers=headers, data=sent,
                                       timeout=30, allow_redirects=False)
                # links in the answers (upload_host, result URLs) lead back through the proxy, as behind a gateway
                data = got.content.replace(proxy.upstream.encode(), proxy.url.encode())
                status, content_type = got.status_code, got.headers.get("Content-Type", "")
                rule = proxy.rules.get(stage(self.command, self.path))
                if rule is not None:
                    try:
                        answer = json.loads(data)
                    except ValueError:
                        answer = None
                    status, content_type, data = rule(status, answer)
                    proxy.rewritten.append(self.path)
                self._answer(status, content_type, data)

            def _trickle(self):  # a space every 0.3 s of a 1 MB body, until the proxy closes
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(10**6))
                self.end_headers()
                while not proxy.stopping.wait(0.3):
                    self.wfile.write(b" ")
                    self.wfile.flush()
                self.close_connection = True

            def _answer(self, status, content_type, data):
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = _forward

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def rewrite(self, which: str, rule: Rewrite) -> None:
        """Replace every answer to `which` (policy, create, poll, cancel) from now on."""
        self.rules[which] = rule

    def serve(self, path: str, content_type: str, data: bytes) -> str:
        """Answer GET `path` with `data` (not forwarded); returns its URL."""
        self.files[path] = (content_type, data)
        return self.url + path

    def trickle(self, which: str) -> None:
        """Answer `which` (e.g. poll) from now on with a body that never ends: no per-read timeout ends
        such a read, only a run's deadline (not forwarded)."""
        self.trickled.add(which)

    def close(self) -> None:
        self.stopping.set()
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> AnswerProxy:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
