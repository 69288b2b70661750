"""The sandbox's vendor-neutral core: a loopback HTTP server that vendor emulators plug into.

`SandboxServer` owns the socket, the threads and the shared state every vendor needs: routes,
the request log (who asked what, what was billable), the fault queue, the simulated latency and
clock skew, and the results store behind /sandbox/results/. Vendor emulators are mixins
(volc.VolcEmulator, ...) that add routes, fault kinds and settings in `_install_vendors`;
`sandbox.Sandbox` is the class that combines them.

It only ever listens on 127.0.0.1: it accepts demo keys and would fetch URLs for anyone.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import secrets
import selectors
import socket
import socketserver
import struct
import sys
import threading
import traceback
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TextIO
from urllib.parse import urlsplit

from .faults import AFTER_KINDS, CONNECTION_KINDS, FRONT_KINDS, Fault, FaultQueue
from .requestlog import LogEntry, RequestLog
from .results import PREFIX as RESULTS_PREFIX
from .results import ResultStore
from .wire import SandboxRequest, SandboxResponse, json_response, text_response

MAX_BODY_BYTES = 64 * 1024 * 1024  # hard cap on what the server reads; vendors may set lower limits
IDLE_TIMEOUT = 60.0                # seconds an idle keep-alive connection is kept open
SANDBOX_VENDOR = "sandbox"         # vendor name of the sandbox's own routes (results downloads)

Handler = Callable[[SandboxRequest], SandboxResponse]


@dataclass(frozen=True)
class Route:
    methods: frozenset[str]
    path: str
    prefix: bool
    vendor: str
    handler: Handler
    generic_faults: bool = True  # takes the generic fault kinds (drop_before, http_5xx_plain, slow, ...)
    action: str | None = None    # logged as the entry's action before the handler runs (handlers may refine)

    def matches(self, path: str) -> bool:
        return path.startswith(self.path) if self.prefix else path == self.path


def _as_timedelta(value: timedelta | float) -> timedelta:
    return value if isinstance(value, timedelta) else timedelta(seconds=float(value))


def _loopback(host: str) -> str:
    host = "127.0.0.1" if host == "localhost" else host
    try:
        ok = ipaddress.ip_address(host).version == 4 and ipaddress.ip_address(host).is_loopback
    except ValueError:
        ok = False
    if not ok:
        raise ValueError(f"the sandbox only listens on an IPv4 loopback address (127.x.x.x), not {host!r}")
    return host


class _BodyError(Exception):
    def __init__(self, status: int | None, message: str = ""):
        super().__init__(message)
        self.status = status  # None: the client went away, nothing to answer


def _read_body(handler: BaseHTTPRequestHandler, limit: int) -> bytes:
    if "chunked" in handler.headers.get("Transfer-Encoding", "").lower():
        return _read_chunked(handler.rfile, limit)
    declared = handler.headers.get("Content-Length")
    if declared is None:
        return b""
    if not declared.strip().isdigit():
        raise _BodyError(400, f"bad Content-Length {declared!r}")
    length = int(declared)
    if length > limit:
        raise _BodyError(413, f"request body of {length} bytes is over the sandbox limit of {limit}")
    body = handler.rfile.read(length)
    if len(body) < length:
        raise _BodyError(None)
    return body


def _read_chunked(rfile, limit: int) -> bytes:
    body = bytearray()
    while True:
        line = rfile.readline(1024)
        if not line:
            raise _BodyError(None)
        try:
            size = int(line.split(b";")[0].strip(), 16)
        except ValueError:
            raise _BodyError(400, "bad chunk size in chunked body") from None
        if size == 0:
            while rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                pass  # trailers
            return bytes(body)
        if len(body) + size > limit:
            raise _BodyError(413, f"request body is over the sandbox limit of {limit} bytes")
        chunk = rfile.read(size)
        if len(chunk) < size:
            raise _BodyError(None)
        body += chunk
        rfile.readline(1024)  # the CRLF after each chunk


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, like the vendors (faults must work on reused connections)
    timeout = IDLE_TIMEOUT
    # Headers and body go out in separate writes; with Nagle on, the body waits for the client's
    # delayed ACK (~40 ms per response on loopback).
    disable_nagle_algorithm = True

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


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address, sandbox: SandboxServer):
        self.sandbox = sandbox
        super().__init__(address, _Handler)

    def server_bind(self):
        # HTTPServer.server_bind would call socket.getfqdn(): a DNS lookup, slow when offline.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]

    def handle_error(self, request, client_address):
        if isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            return  # the client reset or stalled its connection: its business, not a sandbox bug
        self.sandbox._record_error(traceback.format_exc())


class SandboxServer:
    """Loopback HTTP server with a request log, fault injection, latency, clock skew and results.

    Use as `with Sandbox() as sb: ... sb.url ...` or `sb.start()` / `sb.stop()` (restartable).
    Keyword arguments not listed below set vendor settings (e.g. volc_mask_white_means="keep");
    an unknown name is an error.

    Settings (attributes, change any time): latency, clock_offset, result_ttl, max_body_bytes, echo.
    Faults:   inject(vendor, kind, times=1, **params), pending_faults(), clear_faults().
    Log:      requests(vendor, action) -> [LogEntry], request_count(), billable_count(), reset().
    Files:    publish(data, ext) -> URL, publish_synthetic(size), missing_result_url().
    Errors:   `errors` holds tracebacks of sandbox bugs (a handler that raised answers 500).
    """

    def __init__(self, port: int = 0, *, host: str = "127.0.0.1", latency: float = 0.0,
                 clock_offset: timedelta | float = timedelta(0),
                 result_ttl: timedelta | float = timedelta(hours=24),
                 max_body_bytes: int = MAX_BODY_BYTES, echo: TextIO | None = None, **settings: Any):
        self.host = _loopback(host)
        self.requested_port = port
        self.latency = latency                # seconds of simulated processing per billable request
        self.clock_offset = clock_offset      # added to the sandbox's "now" (emulates client clock skew)
        self.result_ttl = result_ttl          # how long result links stay valid
        self.max_body_bytes = max_body_bytes
        self.echo = echo                      # a stream that gets one line per request (CLI)
        self.errors: list[str] = []           # tracebacks of sandbox bugs (tests assert it stays empty)
        self.log = RequestLog()
        self.faults = FaultQueue()
        self.results = ResultStore(self.now)
        self._routes: list[Route] = []
        self._lock = threading.Lock()
        self._connections: set[socket.socket] = set()
        self._stopping = threading.Event()
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._wake: tuple[socket.socket, socket.socket] | None = None

        self.register_vendor(SANDBOX_VENDOR, {})
        self.add_route("GET", RESULTS_PREFIX, self._serve_result, vendor=SANDBOX_VENDOR, prefix=True)
        self._install_vendors()
        for name, value in settings.items():
            if not self._is_setting(name):
                raise TypeError(f"unknown sandbox setting {name!r}")
            setattr(self, name, value)

    @classmethod
    def _is_setting(cls, name: str) -> bool:
        """Vendor settings are plain data attributes declared on a class (volc_mask_white_means…)."""
        if name.startswith("_"):
            return False
        value = next((vars(k)[name] for k in cls.__mro__ if name in vars(k)), None)
        return value is not None and not callable(value) and not isinstance(value, (property, classmethod,
                                                                                    staticmethod))

    # ---- extension points for vendor mixins ----------------------------------------------------

    def _install_vendors(self) -> None:
        """Vendor mixins override this (calling super()) to add routes, faults and settings."""

    def describe(self) -> list[str]:
        """Lines telling a person how to point a client here (vendor mixins add theirs)."""
        return [f"sandbox: {self.url}  (results under {self.url}{RESULTS_PREFIX})"]

    def register_vendor(self, vendor: str, fault_kinds: Mapping[str, Mapping[str, Any]],
                        check: Callable[[str, dict[str, Any]], None] | None = None) -> None:
        """Declare a vendor name (for routes and the log) and its own fault kinds."""
        self.faults.register(vendor, fault_kinds, check)

    def add_route(self, methods: str | Iterable[str], path: str, handler: Handler, *, vendor: str,
                  prefix: bool = False, generic_faults: bool = True, action: str | None = None) -> None:
        """Send `methods` on `path` (exact, or every path under it with prefix=True) to `handler`.
        Exact routes win over prefixes, longer prefixes over shorter ones. With generic_faults=False
        the route never takes the generic fault kinds (faults.GENERIC_KINDS): they stay queued for
        the vendor's next request on a route that does (e.g. a task's create call, not its polls).
        `action` names the operation in the request log even when a fault answers before the handler."""
        methods = frozenset([methods] if isinstance(methods, str) else methods)
        with self._lock:
            self._routes.append(Route(frozenset(m.upper() for m in methods), path, prefix, vendor, handler,
                                      generic_faults, action))
            self._routes.sort(key=lambda r: (r.prefix, -len(r.path)))

    # ---- lifecycle -----------------------------------------------------------------------------

    def start(self) -> SandboxServer:
        if self._httpd is not None:
            raise RuntimeError("the sandbox is already running")
        self._stopping.clear()
        self._httpd = _HTTPServer((self.host, self.requested_port), self)
        self._wake = socket.socketpair()
        self._thread = threading.Thread(target=self._accept_loop, args=(self._httpd, self._wake[0]),
                                        name=f"sandbox-{self.port}", daemon=True)
        self._thread.start()
        return self

    def _accept_loop(self, httpd: _HTTPServer, wake: socket.socket) -> None:
        # Not serve_forever(): its shutdown() waits for a polling interval, 50 ms per stop; here
        # stop() wakes the select at once and nothing polls while idle.
        with selectors.DefaultSelector() as selector:
            selector.register(httpd, selectors.EVENT_READ)
            selector.register(wake, selectors.EVENT_READ)
            while not self._stopping.is_set():
                ready = selector.select()
                if not self._stopping.is_set() and any(key.fileobj is httpd for key, _ in ready):
                    httpd.handle_request()  # accepts one connection, served on its own thread

    def stop(self) -> None:
        httpd, thread = self._httpd, self._thread
        if httpd is None:
            return
        self._stopping.set()  # ends the accept loop; cuts simulated latency / slow faults short
        self._wake[1].send(b"x")
        thread.join(5)
        httpd.server_close()
        for end in self._wake:
            end.close()
        with self._lock:
            connections = list(self._connections)
        for connection in connections:  # wake handler threads waiting on idle keep-alive connections
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._httpd = self._thread = self._wake = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    @property
    def running(self) -> bool:
        return self._httpd is not None

    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError("the sandbox is not running: call start() or use it in a with block")
        return self._httpd.server_address[1]

    @property
    def url(self) -> str:
        """http://127.0.0.1:PORT (no trailing slash)."""
        return f"http://{self.host}:{self.port}"

    def serve_forever(self, stop: threading.Event | None = None) -> None:
        """Run until `stop` is set or Ctrl-C (for standalone use)."""
        started = not self.running
        if started:
            self.start()
        try:
            (stop or threading.Event()).wait()
        except KeyboardInterrupt:
            pass
        finally:
            if started:
                self.stop()

    # ---- shared state --------------------------------------------------------------------------

    def now(self) -> datetime:
        """The sandbox's clock: real UTC plus `clock_offset`."""
        return datetime.now(timezone.utc) + _as_timedelta(self.clock_offset)

    def sleep(self, seconds: float) -> None:
        """Wait, but stop waiting when the sandbox stops."""
        if seconds > 0:
            self._stopping.wait(seconds)

    def inject(self, vendor: str, kind: str, times: int = 1, **params: Any) -> Fault:
        """Queue a fault for the next `times` request(s) to `vendor` that reach its stage
        (see faults.py and each vendor's fault table)."""
        return self.faults.add(vendor, kind, times, **params)

    def pending_faults(self, vendor: str | None = None) -> list[Fault]:
        return self.faults.pending(vendor)

    def clear_faults(self, vendor: str | None = None) -> None:
        self.faults.clear(vendor)

    def requests(self, vendor: str | None = None, action: str | None = None) -> list[LogEntry]:
        """Copies of the log entries, oldest first."""
        return self.log.entries(vendor, action)

    def request_count(self, vendor: str | None = None, action: str | None = None) -> int:
        return self.log.count(vendor, action=action)

    def billable_count(self, vendor: str | None = None, action: str | None = None) -> int:
        return self.log.count(vendor, billable=True, action=action)

    def reset(self) -> None:
        """Forget requests, faults, results and errors (settings are kept)."""
        self.log.clear()
        self.faults.clear()
        self.results.clear()
        self.errors.clear()

    def publish(self, data: bytes, ext: str = "png", ttl: timedelta | float | None = None,
                content_type: str | None = None) -> str:
        """Serve `data` at a results URL that expires after `ttl` (default result_ttl)."""
        key = self.results.put(data, ext, _as_timedelta(self.result_ttl if ttl is None else ttl), content_type)
        return f"{self.url}{RESULTS_PREFIX}{key}"

    def publish_synthetic(self, size: int, ext: str = "png", declare_length: bool = True) -> str:
        """A results URL whose body is `size` generated bytes (for oversized-download tests)."""
        key = self.results.put_synthetic(size, ext, _as_timedelta(self.result_ttl), declare_length)
        return f"{self.url}{RESULTS_PREFIX}{key}"

    def missing_result_url(self, ext: str = "png") -> str:
        """A results URL that answers 404."""
        return f"{self.url}{RESULTS_PREFIX}{secrets.token_hex(16)}.{ext}"

    # ---- request handling (called on handler threads) ------------------------------------------

    def _track(self, connection: socket.socket, add: bool) -> None:
        with self._lock:
            (self._connections.add if add else self._connections.discard)(connection)

    def _record_error(self, text: str) -> None:
        with self._lock:
            self.errors.append(text)

    def _match(self, method: str, path: str) -> tuple[Route | None, bool]:
        """-> (route, path_known): the route for method+path, and whether any route has the path."""
        with self._lock:
            routes = list(self._routes)
        known = False
        for route in routes:
            if route.matches(path):
                known = True
                if method.upper() in route.methods:
                    return route, True
        return None, known

    def _drop_before(self, head: bytes) -> bool:
        """Apply a drop_before fault to the request whose first bytes are `head`, if one is due."""
        line, newline, _ = head.partition(b"\r\n")
        parts = line.split(b" ")
        if not newline or len(parts) != 3:
            return False  # request line not complete in the first packet: no connection fault
        method, target = parts[0].decode("latin-1"), urlsplit(parts[1].decode("latin-1"))
        route, _ = self._match(method, target.path or "/")
        if route is None or not route.generic_faults:
            return False
        if self.faults.take(route.vendor, CONNECTION_KINDS) is None:
            return False
        entry = self.log.open(method, target.path or "/", target.query, route.vendor, action=route.action,
                              fault="drop_before")
        self._echo(entry)
        return True

    def _serve(self, handler: _Handler) -> None:
        target = urlsplit(handler.path)
        path, query = target.path or "/", target.query
        route, known = self._match(handler.command, path)
        entry = self.log.open(handler.command, path, query, route.vendor if route else None,
                              action=route.action if route else None)
        try:
            body = _read_body(handler, self.max_body_bytes)
        except _BodyError as exc:
            handler.close_connection = True  # the rest of the body is still on the wire
            if exc.status is not None:
                self._write(handler, entry, text_response(exc.status, str(exc)))
            else:
                self._echo(entry)
            return
        if route is None:
            status = 405 if known else 404
            response = json_response(status, {"error": "method not allowed" if known else "no such sandbox route",
                                               "method": handler.command, "path": path})
        else:
            request = SandboxRequest(handler.command, path, query, handler.headers, body, entry, self.log)
            response = self._run(route, request)
        self._write(handler, entry, response)

    def _run(self, route: Route, request: SandboxRequest) -> SandboxResponse:
        fault = self.faults.take(route.vendor, FRONT_KINDS) if route.generic_faults else None
        if fault is not None:  # a proxy in front of the vendor answers; nothing reaches the vendor
            request.note(fault=fault.kind)
            p = fault.params
            headers = {"Retry-After": str(p["retry_after"])} if p["retry_after"] is not None else {}
            return text_response(p["status"], p["body"], p["content_type"], headers)
        try:
            response = route.handler(request)
        except Exception:  # a sandbox bug: answer 500 and keep it for the tests to see
            self._record_error(traceback.format_exc())
            return json_response(500, {"error": "sandbox internal error (see Sandbox.errors)"})
        if route.generic_faults and request.entry.processed and request.entry.fault is None:
            fault = self.faults.take(route.vendor, AFTER_KINDS)
            if fault is not None:
                request.note(fault=fault.kind)
                response = self._after_fault(fault, response)
        return response

    def _after_fault(self, fault: Fault, response: SandboxResponse) -> SandboxResponse:
        if fault.kind == "slow":
            self.sleep(float(fault.params["seconds"]))
            return response
        if fault.kind == "drop_after":
            return SandboxResponse(0, drop=True)
        # malformed: the real body cut in half (a truncated JSON document) unless a body is given
        body = fault.params["body"]
        if body is None:
            whole = response.body if isinstance(response.body, (bytes, bytearray)) else b"{}"
            body = bytes(whole[: max(1, len(whole) // 2)])
        elif isinstance(body, str):
            body = body.encode("utf-8")
        return SandboxResponse(fault.params["status"], body, fault.params["content_type"])

    def _serve_result(self, request: SandboxRequest) -> SandboxResponse:
        request.note(action="result")
        request.mark_processed(billable=False)
        file = self.results.get(request.path[len(RESULTS_PREFIX):])
        if file is None:
            return text_response(404, "404 Not Found: no such result, or its link has expired\n")
        return SandboxResponse(200, file.chunks(), file.content_type,
                               length=file.length() if file.declare_length else None)

    def _write(self, handler: _Handler, entry: LogEntry, response: SandboxResponse) -> None:
        # The log entry is final (and echoed) before any byte goes out: whoever reads the response
        # can rely on the log.
        if response.drop:
            self._echo(entry)
            handler.close_connection = True
            try:
                handler.connection.shutdown(socket.SHUT_RDWR)  # FIN, no response: "remote disconnected"
            except OSError:
                pass
            return
        self.log.update(entry, status=response.status)
        self._echo(entry)
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
            self.log.update(entry, delivered=True)
        except OSError:  # the client went away (e.g. its read timeout ran out during a slow answer)
            handler.close_connection = True

    def _echo(self, entry: LogEntry) -> None:
        stream = self.echo
        if stream is None:
            return
        e = entry  # its fields are final by now
        status = e.status if e.status is not None else "dropped"
        flags = " ".join(f for f in ("billable" if e.billable else "", f"fault={e.fault}" if e.fault else "") if f)
        try:
            stream.write(f"{e.time:%H:%M:%S} {e.method} {e.path}{'?' + e.query if e.query else ''} "
                         f"-> {status} [{e.vendor or '-'}{'/' + e.action if e.action else ''}] {flags}\n")
            stream.flush()
        except (OSError, ValueError):
            pass


def _setting_value(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def serve_forever_cli(argv: list[str] | None = None, *, stop: threading.Event | None = None,
                      out: TextIO | None = None, factory: Callable[..., SandboxServer] | None = None) -> int:
    """`sandbox [--port N] [--latency S] [--set NAME=VALUE ...]`: run the sandbox until Ctrl-C.

    For the pack's CLI. Prints the URL and the demo credentials, then one line per request.
    """
    out = out or sys.stdout
    parser = argparse.ArgumentParser(prog="sandbox", description="Offline emulator of the outpainting "
                                     "vendors' HTTP APIs, on 127.0.0.1.")
    parser.add_argument("--port", type=int, default=0, help="port to listen on (default: a free one)")
    parser.add_argument("--latency", type=float, default=0.0, help="simulated processing seconds")
    parser.add_argument("--clock-offset", type=float, default=0.0,
                        help="seconds added to the sandbox clock (emulates client clock skew)")
    parser.add_argument("--result-ttl", type=float, default=24 * 3600.0, help="result link lifetime, seconds")
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                        help="a vendor setting, e.g. volc_mask_white_means=keep (VALUE as JSON if it parses)")
    parser.add_argument("--quiet", action="store_true", help="do not print a line per request")
    args = parser.parse_args(argv)
    settings = {}
    for item in args.set:
        name, eq, value = item.partition("=")
        if not eq:
            parser.error(f"--set needs NAME=VALUE, got {item!r}")
        settings[name.strip()] = _setting_value(value)
    if factory is None:
        from . import Sandbox as factory  # the class with every vendor installed
    try:
        sandbox = factory(args.port, latency=args.latency, clock_offset=args.clock_offset,
                          result_ttl=args.result_ttl, echo=None if args.quiet else out, **settings)
    except (TypeError, ValueError) as exc:
        parser.error(str(exc))
    with sandbox:
        for line in sandbox.describe():
            out.write(line + "\n")
        out.write("Ctrl-C to stop.\n")
        out.flush()
        sandbox.serve_forever(stop)
    return 0
