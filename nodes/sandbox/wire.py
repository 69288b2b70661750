"""One request in, one response out: the HTTP primitives every vendor emulator works with.

The HTTP server (server.py) turns bytes into a `SandboxRequest`, a route handler turns that into a
`SandboxResponse`, and the server writes it back. Handlers never touch sockets, so a vendor module
is plain request-to-response logic.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs

from .requestlog import LogEntry, RequestLog


@dataclass
class SandboxRequest:
    """A request as received: `path` is still percent-encoded and `raw_query` is the exact query
    string (signature checks need both unchanged), `body` the exact bytes."""

    method: str
    path: str
    raw_query: str
    headers: Mapping[str, str]  # case-insensitive (http.client.HTTPMessage)
    body: bytes
    entry: LogEntry
    log: RequestLog
    started: float = field(default_factory=time.perf_counter)

    def query(self) -> dict[str, str]:
        """First value of each query parameter (blank values kept)."""
        return {key: values[0] for key, values in parse_qs(self.raw_query, keep_blank_values=True).items()}

    def header(self, name: str, default: str | None = None) -> str | None:
        return self.headers.get(name, default)

    def header_dict(self) -> dict[str, str]:
        return {name: value for name, value in self.headers.items()}

    def note(self, **fields: Any) -> None:
        """Set log fields (action, ...) of this request."""
        self.log.update(self.entry, **fields)

    def annotate(self, **detail: Any) -> None:
        """Add vendor-specific facts to the log entry's `detail` (prompt field, seed, ...)."""
        self.log.annotate(self.entry, **detail)

    def mark_processed(self, billable: bool) -> None:
        """The request reached the vendor's real work; `billable`: a real vendor would charge it."""
        self.log.update(self.entry, processed=True, billable=billable)

    def elapsed(self) -> float:
        return time.perf_counter() - self.started


@dataclass
class SandboxResponse:
    """What to send back. `body` may be an iterable of chunks (streamed) with `length` declared
    or not; `drop` closes the connection without any response (the request was still read)."""

    status: int
    body: bytes | Iterable[bytes] = b""
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    length: int | None = None
    drop: bool = False

    def __post_init__(self):
        if isinstance(self.body, (bytes, bytearray)) and self.length is None:
            self.length = len(self.body)


def compact_json(obj: Any) -> bytes:
    """JSON the way the vendors' servers write it: no spaces, non-ASCII as \\uXXXX escapes
    (a Volcengine body shows "time_elapsed":"84.448\\u00b5s")."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=True).encode("ascii")


def json_response(status: int, obj: Any, headers: dict[str, str] | None = None) -> SandboxResponse:
    return SandboxResponse(status, compact_json(obj), "application/json; charset=utf-8", dict(headers or {}))


def text_response(status: int, text: str, content_type: str = "text/plain; charset=utf-8",
                  headers: dict[str, str] | None = None) -> SandboxResponse:
    return SandboxResponse(status, text.encode("utf-8"), content_type, dict(headers or {}))


def _fraction(value: int, unit: int) -> str:
    whole, rest = divmod(value, unit)
    digits = str(rest).rjust(len(str(unit)) - 1, "0").rstrip("0")
    return f"{whole}.{digits}" if digits else str(whole)


def go_duration(seconds: float) -> str:
    """Go's time.Duration.String(): "84.448µs", "104.852309ms", "2.173378731s", "1m3.5s"."""
    ns = max(0, round(seconds * 1e9))
    if ns == 0:
        return "0s"
    if ns < 1_000:
        return f"{ns}ns"
    if ns < 1_000_000:
        return _fraction(ns, 1_000) + "µs"
    if ns < 1_000_000_000:
        return _fraction(ns, 1_000_000) + "ms"
    hours, rest = divmod(ns, 3_600 * 10**9)
    minutes, rest = divmod(rest, 60 * 10**9)
    text = _fraction(rest, 10**9) + "s"
    if hours:
        return f"{hours}h{minutes}m{text}"
    return f"{minutes}m{text}" if minutes else text


def as_timedelta(value: timedelta | float) -> timedelta:
    """Durations in settings may be a timedelta or seconds."""
    return value if isinstance(value, timedelta) else timedelta(seconds=float(value))
