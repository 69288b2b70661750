"""A replay server for the bench, meant to run in its own process: `python bench/replay.py`.

It starts the sandbox beside it and forwards the first request of each path there, recording the
answer (status, headers, body); every later request of that path gets the recorded answer at once,
with no sandbox work, so a client timed against it pays only its own costs. It prints one JSON line
(its URL and the sandbox's demo keys), then serves until its stdin closes. GET /__recorded
returns the body recorded last (the bench's floor decodes the same answer).
"""

from __future__ import annotations

import http.client
import json
import pathlib
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

HOP_HEADERS = {"connection", "keep-alive", "transfer-encoding", "content-length"}


def replay_server(upstream: str) -> ThreadingHTTPServer:
    target = urlsplit(upstream)
    recorded: dict[str, tuple[int, list[tuple[str, str]], bytes]] = {}
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):  # quiet
            pass

        def _answer(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
            self.send_response(status)
            for name, value in headers:
                if name.lower() not in HOP_HEADERS:
                    self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _handle(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if self.path.startswith("/__recorded"):  # the bench's own look at the answer
                with lock:
                    kept = next(reversed(recorded.values()), None)
                return self._answer(200, [], kept[2]) if kept else self._answer(404, [], b"")
            with lock:
                answer = recorded.get(self.path)
            if answer is None:  # the first one: the sandbox does the work, once (headers as sent: signed)
                conn = http.client.HTTPConnection(target.hostname, target.port, timeout=600)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_HEADERS}
                conn.request(self.command, self.path, body=body, headers=headers)
                reply = conn.getresponse()
                answer = (reply.status, reply.getheaders(), reply.read())
                conn.close()
                with lock:
                    recorded.setdefault(self.path, answer)
            self._answer(*answer)

        do_POST = do_GET = _handle

    return ThreadingHTTPServer(("127.0.0.1", 0), Handler)


def main() -> None:
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
    from run import module  # loads the pack under the bench's private name
    sandbox = module("nodes.sandbox").Sandbox().start()
    server = replay_server(sandbox.url)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    print(json.dumps({"url": f"http://127.0.0.1:{server.server_address[1]}", "ak": sandbox.volc_access_key,
                      "sk": sandbox.volc_secret_key}), flush=True)
    sys.stdin.read()  # until the parent closes it
    server.shutdown()
    sandbox.stop()


if __name__ == "__main__":
    main()
