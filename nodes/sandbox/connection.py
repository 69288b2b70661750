"""One client connection of the sandbox: the HTTP/1.1 handler thread, request bodies in (with
Content-Length or chunked), responses out. What a request means is the server's business
(server.SandboxServer): the handler hands every request to it.
"""

from __future__ import annotations

import socket
import socketserver
import struct
import sys
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING

from .wire import SandboxResponse

if TYPE_CHECKING:
    from .server import SandboxServer

IDLE_TIMEOUT = 60.0  # seconds an idle keep-alive connection is kept open


class BodyError(Exception):
    def __init__(self, status: int | None, message: str = ""):
        super().__init__(message)
        self.status = status  # None: the client went away, nothing to answer


def read_body(handler: BaseHTTPRequestHandler, limit: int) -> bytes:
    if "chunked" in handler.headers.get("Transfer-Encoding", "").lower():
        return _read_chunked(handler.rfile, limit)
    declared = handler.headers.get("Content-Length")
    if declared is None:
        return b""
    if not declared.strip().isdigit():
        raise BodyError(400, f"bad Content-Length {declared!r}")
    length = int(declared)
    if length > limit:
        raise BodyError(413, f"request body of {length} bytes is over the sandbox limit of {limit}")
    body = handler.rfile.read(length)
    if len(body) < length:
        raise BodyError(None)
    return body


def _read_chunked(rfile, limit: int) -> bytes:
    body = bytearray()
    while True:
        line = rfile.readline(1024)
        if not line:
            raise BodyError(None)
        try:
            size = int(line.split(b";")[0].strip(), 16)
        except ValueError:
            raise BodyError(400, "bad chunk size in chunked body") from None
        if size == 0:
            while rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                pass  # trailers
            return bytes(body)
        if len(body) + size > limit:
            raise BodyError(413, f"request body is over the sandbox limit of {limit} bytes")
        chunk = rfile.read(size)
        if len(chunk) < size:
            raise BodyError(None)
        body += chunk
        rfile.readline(1024)  # the CRLF after each chunk


def hang_up(handler: BaseHTTPRequestHandler) -> None:
    """Close without a response (FIN): the client sees "remote end closed connection"."""
    handler.close_connection = True
    try:
        handler.connection.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


def send(handler: BaseHTTPRequestHandler, response: SandboxResponse) -> bool:
    """Write `response`; False when the client went away first (e.g. its read timeout ran out
    during a slow answer)."""
    try:
        handler.send_response(response.status)
        handler.send_header("Content-Type", response.content_type)
        for name, value in response.headers.items():
            handler.send_header(name, value)
        if response.length is not None:
            handler.send_header("Content-Length", str(response.length))
        else:  # no length: the end of the body is the end of the connection
            handler.send_header("Connection", "close")
        handler.end_headers()
        if handler.command != "HEAD":
            chunks = [response.body] if isinstance(response.body, (bytes, bytearray)) else response.body
            for chunk in chunks:
                handler.wfile.write(chunk)
        handler.wfile.flush()
        return True
    except OSError:
        handler.close_connection = True
        return False


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, like the vendors (faults must work on reused connections)
    timeout = IDLE_TIMEOUT
    # Headers and body go out in separate writes; with Nagle on, the body waits for the client's
    # delayed ACK (~40 ms per response on loopback).
    disable_nagle_algorithm = True
    server: HTTPServer

    def setup(self):
        super().setup()
        self.server.sandbox._track(self.connection, add=True)

    def finish(self):
        try:
            super().finish()
        finally:
            self.server.sandbox._track(self.connection, add=False)

    def version_string(self) -> str:
        return "cloud-outpaint-sandbox"

    def log_message(self, format, *args):  # noqa: A002 - the structured request log replaces this
        pass

    def handle_one_request(self):
        # Look at the request line without consuming it, so that a drop_before fault closes the
        # connection before the request has been read (provably not processed).
        try:
            head = self.rfile.peek(1)
        except OSError:
            head = b""
        if not head:
            self.close_connection = True
            return
        if self.server.sandbox._drop_before(head):
            self.close_connection = True
            # Linger 0: the close sends a reset, as an overloaded front end does.
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
            return
        super().handle_one_request()

    def _dispatch(self):
        self.server.sandbox._serve(self)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _dispatch


class HTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address, sandbox: SandboxServer):
        self.sandbox = sandbox
        super().__init__(address, Handler)

    def server_bind(self):
        # HTTPServer.server_bind would call socket.getfqdn(): a DNS lookup, slow when offline.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]

    def handle_error(self, request, client_address):
        if isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            return  # the client reset or stalled its connection: its business, not a sandbox bug
        self.sandbox._record_error(traceback.format_exc())
