"""The sandbox's vendor-neutral core: a loopback HTTP server that vendor emulators plug into.

`SandboxServer` owns the socket, the threads and the shared state every vendor needs: routes,
the request log (who asked what, what was billable), the fault queue and its generic stages, the
simulated latency and clock skew, and the results store behind /sandbox/results/. A vendor
emulator (volc_emulator, dashscope_emulator) adds its routes and fault kinds with
`register_vendor` / `add_route`; `sandbox.Sandbox` mounts both. connection.py reads and writes
the bytes of each request.

It only ever listens on 127.0.0.1: it accepts demo keys and would fetch URLs for anyone.
"""

from __future__ import annotations

import ipaddress
import secrets
import selectors
import socket
import threading
import traceback
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, TextIO
from urllib.parse import urlsplit

from . import hostile
from .connection import BodyError, Handler, HTTPServer, hang_up, read_body, send
from .faults import AFTER_KINDS, CONNECTION_KINDS, FRONT_KINDS, Fault, FaultQueue
from .requestlog import LogEntry, RequestLog
from .results import PREFIX as RESULTS_PREFIX
from .results import ResultStore, StoredFile
from .wire import (
    SandboxRequest,
    SandboxResponse,
    as_timedelta,
    json_response,
    text_response,
)

MAX_BODY_BYTES = 64 * 1024 * 1024  # hard cap on what the server reads; vendors may set lower limits
SANDBOX_VENDOR = "sandbox"         # vendor name of the sandbox's own routes (results downloads)

RouteHandler = Callable[[SandboxRequest], SandboxResponse]


@dataclass(frozen=True)
class Route:
    methods: frozenset[str]
    path: str
    prefix: bool
    vendor: str
    handler: RouteHandler
    generic_faults: bool = True  # takes the generic fault kinds (drop_before, http_5xx_plain, slow, ...)
    action: str | None = None    # logged as the entry's action before the handler runs (handlers may refine)

    def matches(self, path: str) -> bool:
        return path.startswith(self.path) if self.prefix else path == self.path


def _loopback(host: str) -> str:
    host = "127.0.0.1" if host == "localhost" else host
    try:
        ok = ipaddress.ip_address(host).version == 4 and ipaddress.ip_address(host).is_loopback
    except ValueError:
        ok = False
    if not ok:
        raise ValueError(f"the sandbox only listens on an IPv4 loopback address (127.x.x.x), not {host!r}")
    return host


class SandboxServer:
    """Loopback HTTP server with a request log, fault injection, latency, clock skew and results.

    Use as `with Sandbox() as sb: ... sb.url ...` or `sb.start()` / `sb.stop()` (restartable).

    Settings (attributes, change any time): latency, clock_offset, result_ttl, max_body_bytes, result_host,
              echo.
    Faults:   inject(vendor, kind, times=1, **params), pending_faults(), clear_faults().
    Log:      requests(vendor, action) -> [LogEntry], request_count(), billable_count(), reset().
    Files:    publish(data, ext) -> URL, publish_synthetic(size), missing_result_url().
    Errors:   `errors` holds tracebacks of sandbox bugs (a handler that raised answers 500).
    """

    def __init__(self, port: int = 0, *, host: str = "127.0.0.1", latency: float = 0.0,
                 clock_offset: timedelta | float = timedelta(0),
                 result_ttl: timedelta | float = timedelta(hours=24),
                 max_body_bytes: int = MAX_BODY_BYTES, echo: TextIO | None = None, result_host: str | None = None):
        self.host = _loopback(host)
        self.requested_port = port
        self.latency = latency                # seconds of simulated processing per billable request
        self.clock_offset = clock_offset      # added to the sandbox's "now" (emulates client clock skew)
        self.result_ttl = result_ttl          # how long result links stay valid
        self.max_body_bytes = max_body_bytes
        # the host name in result links, e.g. "localhost": a second name for this server, plain http,
        # as a vendor's result host differs from its API host (None: the listening address)
        self.result_host = result_host
        self.echo = echo                      # a stream that gets one line per request (CLI)
        self.errors: list[str] = []           # tracebacks of sandbox bugs (tests assert it stays empty)
        self.log = RequestLog()
        self.faults = FaultQueue()
        self.results = ResultStore(self.now)
        self._routes: list[Route] = []
        self._lock = threading.Lock()
        self._connections: set[socket.socket] = set()
        self._stopping = threading.Event()
        self._httpd: HTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._wake: tuple[socket.socket, socket.socket] | None = None

        self.register_vendor(SANDBOX_VENDOR, {})
        self.add_route("GET", RESULTS_PREFIX, self._serve_result, vendor=SANDBOX_VENDOR, prefix=True)

    # ---- what vendor emulators use to plug in --------------------------------------------------

    def describe(self) -> list[str]:
        """Lines telling a person how to point a client here (Sandbox adds each emulator's)."""
        return [f"sandbox: {self.url}  (results under {self.url}{RESULTS_PREFIX})"]

    def register_vendor(self, vendor: str, fault_kinds: Mapping[str, Mapping[str, Any]],
                        check: Callable[[str, dict[str, Any]], None] | None = None) -> None:
        """Declare a vendor name (for routes and the log) and its own fault kinds."""
        self.faults.register(vendor, fault_kinds, check)

    def add_route(self, methods: str | Iterable[str], path: str, handler: RouteHandler, *, vendor: str,
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
        self._httpd = HTTPServer((self.host, self.requested_port), self)
        self._wake = socket.socketpair()
        self._thread = threading.Thread(target=self._accept_loop, args=(self._httpd, self._wake[0]),
                                        name=f"sandbox-{self.port}", daemon=True)
        self._thread.start()
        return self

    def _accept_loop(self, httpd: HTTPServer, wake: socket.socket) -> None:
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

    # ---- shared state --------------------------------------------------------------------------

    def now(self) -> datetime:
        """The sandbox's clock: real UTC plus `clock_offset`."""
        return datetime.now(timezone.utc) + as_timedelta(self.clock_offset)

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

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

    @property
    def results_url(self) -> str:
        """Where result links point: this server, under `result_host` when one is set."""
        return f"http://{self.result_host or self.host}:{self.port}{RESULTS_PREFIX}"

    def publish(self, data: bytes, ext: str = "png", ttl: timedelta | float | None = None,
                content_type: str | None = None) -> str:
        """Serve `data` at a results URL that expires after `ttl` (default result_ttl)."""
        key = self.results.put(data, ext, as_timedelta(self.result_ttl if ttl is None else ttl), content_type)
        return self.results_url + key

    def publish_synthetic(self, size: int, ext: str = "png", declare_length: bool = True) -> str:
        """A results URL whose body is `size` generated bytes (for oversized-download tests)."""
        key = self.results.put_synthetic(size, ext, as_timedelta(self.result_ttl), declare_length)
        return self.results_url + key

    def publish_file(self, file: StoredFile, ext: str = "png") -> str:
        """A results URL serving `file` (a redirect, a streamed body: see hostile.py)."""
        return self.results_url + self.results.put_file(ext, file)

    def missing_result_url(self, ext: str = "png") -> str:
        """A results URL that answers 404."""
        return f"{self.results_url}{secrets.token_hex(16)}.{ext}"

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

    def _serve(self, handler: Handler) -> None:
        target = urlsplit(handler.path)
        path, query = target.path or "/", target.query
        route, known = self._match(handler.command, path)
        entry = self.log.open(handler.command, path, query, route.vendor if route else None,
                              action=route.action if route else None)
        try:
            body = read_body(handler, self.max_body_bytes)
        except BodyError as exc:
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
        if fault.kind in ("endless", "trickle"):
            return hostile.stream_answer(self, fault, response)
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
        if file.location is not None:
            return text_response(file.status, f"moved to {file.location}\n", headers={"Location": file.location})
        return SandboxResponse(200, file.chunks(), file.content_type,
                               length=file.length() if file.declare_length and file.stream is None else None)

    def _write(self, handler: Handler, entry: LogEntry, response: SandboxResponse) -> None:
        # The log entry is final (and echoed) before any byte goes out: whoever reads the response
        # can rely on the log.
        if response.drop:
            self._echo(entry)
            hang_up(handler)
            return
        self.log.update(entry, status=response.status)
        self._echo(entry)
        if send(handler, response):
            self.log.update(entry, delivered=True)

    def _echo(self, entry: LogEntry) -> None:
        stream = self.echo
        if stream is None:
            return
        try:
            stream.write(entry.line() + "\n")  # its fields are final by now
            stream.flush()
        except (OSError, ValueError):
            pass
