"""A stand-in for a host that must never see a key (an attacker's server, a gateway that echoes
what it gets): a real HTTP server on 127.0.0.1 that records every request."""

from __future__ import annotations

import http.server
import json
import threading


class FakePeer:
    """`reply(method, path, headers) -> (status, content_type, body bytes)`; default: 200 with a
    DashScope-like task answer. `requests` holds (method, path, headers) of every request."""

    def __init__(self, reply=None):
        self.requests: list[tuple[str, str, dict]] = []
        self._reply = reply or (lambda method, path, headers: (
            200, "application/json", json.dumps({"request_id": "peer", "output": {"task_status": "UNKNOWN"},
                                                 "code": 50206}).encode()))
        peer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _answer(self):
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                peer.requests.append((self.command, self.path, dict(self.headers)))
                status, content_type, body = peer._reply(self.command, self.path, dict(self.headers))
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = _answer

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> FakePeer:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()
