"""Fault injection: make the next request(s) to a vendor fail in a chosen, documented way.

Rules (simple on purpose, so a test can predict exactly what each request gets):
- Faults are kept per vendor in injection order; only the **head** of a vendor's queue is ever
  considered, so faults apply strictly in the order they were injected.
- A fault is taken by the next request that reaches the *stage* where its kind applies (see the
  kinds tables: connection, gateway, admission, result). A request that fails earlier (bad
  signature, invalid body) leaves the fault in place for the next request.
- `times=N` applies the fault to N consecutive such requests; each request takes at most one fault.

The kinds in GENERIC_KINDS are applied by the server for every vendor; vendor modules register
their own kinds (error bodies in their own shapes) next to them.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any


class _Required:
    def __repr__(self):
        return "<required>"


REQUIRED = _Required()  # a parameter default meaning "inject() must be given this parameter"

_PROXY_HTML = ("<html>\r\n<head><title>503 Service Temporarily Unavailable</title></head>\r\n<body>\r\n"
               "<center><h1>503 Service Temporarily Unavailable</h1></center>\r\n"
               "<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n")

# kind -> parameter defaults. Stages: drop_before = connection (before the request is read);
# http_5xx_plain = in front of the vendor (a proxy answers, nothing processed);
# slow / drop_after / malformed / endless / trickle = after the vendor processed the request
# (billable if it was).
GENERIC_KINDS: dict[str, dict[str, Any]] = {
    "drop_before": {},
    "http_5xx_plain": {"status": 503, "body": _PROXY_HTML, "content_type": "text/html",
                       "retry_after": None},
    "slow": {"seconds": REQUIRED},
    "drop_after": {},
    "malformed": {"body": None, "status": 200, "content_type": "application/json; charset=utf-8"},
    # the real answer, sent without end (white space inside it until max_mb) or byte by byte (hostile.py)
    "endless": {"mb_per_s": 50.0, "max_mb": 256},
    "trickle": {"interval": 0.5, "seconds": 30.0},
}
CONNECTION_KINDS = frozenset({"drop_before"})
FRONT_KINDS = frozenset({"http_5xx_plain"})
AFTER_KINDS = frozenset({"slow", "drop_after", "malformed", "endless", "trickle"})


def _check_generic(kind: str, params: dict[str, Any]) -> None:
    if kind == "slow" and not (isinstance(params["seconds"], (int, float)) and params["seconds"] >= 0):
        raise ValueError(f"slow needs seconds >= 0, got {params['seconds']!r}")
    for name in {"endless": ("mb_per_s", "max_mb"), "trickle": ("interval", "seconds")}.get(kind, ()):
        if isinstance(params[name], bool) or not isinstance(params[name], (int, float)) or params[name] <= 0:
            raise ValueError(f"{kind} needs {name} > 0, got {params[name]!r}")
    if kind in ("http_5xx_plain", "malformed") and not (isinstance(params["status"], int)
                                                        and 100 <= params["status"] <= 599):
        raise ValueError(f"{kind} needs an HTTP status, got {params['status']!r}")


@dataclass
class Fault:
    vendor: str
    kind: str
    params: dict[str, Any]
    remaining: int


class FaultQueue:
    def __init__(self):
        self._lock = threading.Lock()
        self._kinds: dict[str, dict[str, dict[str, Any]]] = {}
        self._checks: dict[str, Callable[[str, dict[str, Any]], None] | None] = {}
        self._queues: dict[str, deque[Fault]] = {}

    def register(self, vendor: str, kinds: Mapping[str, Mapping[str, Any]],
                 check: Callable[[str, dict[str, Any]], None] | None = None) -> None:
        """Declare a vendor and the fault kinds it understands (generic kinds are added).
        `check(kind, params)` may raise ValueError/TypeError to refuse bad values at inject time."""
        with self._lock:
            self._kinds[vendor] = {**{k: dict(v) for k, v in GENERIC_KINDS.items()},
                                   **{k: dict(v) for k, v in kinds.items()}}
            self._checks[vendor] = check
            self._queues.setdefault(vendor, deque())

    def add(self, vendor: str, kind: str, times: int = 1, **params: Any) -> Fault:
        with self._lock:
            if vendor not in self._kinds:
                raise ValueError(f"unknown vendor {vendor!r}; known: {', '.join(sorted(self._kinds))}")
            spec = self._kinds[vendor].get(kind)
            if spec is None:
                raise ValueError(f"unknown fault kind {kind!r} for {vendor}; "
                                 f"known: {', '.join(sorted(self._kinds[vendor]))}")
            unknown = set(params) - set(spec)
            if unknown:
                raise TypeError(f"fault {kind!r} takes no parameter(s) {', '.join(sorted(unknown))}; "
                                f"it takes: {', '.join(sorted(spec)) or 'none'}")
            merged = {**spec, **params}
            missing = [name for name, value in merged.items() if value is REQUIRED]
            if missing:
                raise TypeError(f"fault {kind!r} needs parameter(s) {', '.join(missing)}")
            if not isinstance(times, int) or isinstance(times, bool) or times < 1:
                raise ValueError(f"times must be an integer >= 1, got {times!r}")
            _check_generic(kind, merged)
            if self._checks[vendor] is not None:
                self._checks[vendor](kind, merged)
            fault = Fault(vendor, kind, merged, times)
            self._queues[vendor].append(fault)
            return Fault(vendor, kind, dict(merged), times)

    def take(self, vendor: str | None, kinds: Iterable[str],
             accept: Callable[[Fault], bool] | None = None) -> Fault | None:
        """If the head of `vendor`'s queue is one of `kinds` (and `accept`s), use it once."""
        kinds = frozenset(kinds)
        with self._lock:
            queue = self._queues.get(vendor)
            if not queue:
                return None
            head = queue[0]
            if head.kind not in kinds or (accept is not None and not accept(head)):
                return None
            head.remaining -= 1
            if head.remaining == 0:
                queue.popleft()
            return Fault(head.vendor, head.kind, dict(head.params), head.remaining)

    def pending(self, vendor: str | None = None) -> list[Fault]:
        with self._lock:
            return [Fault(f.vendor, f.kind, dict(f.params), f.remaining)
                    for v, queue in self._queues.items() if vendor in (None, v) for f in queue]

    def clear(self, vendor: str | None = None) -> None:
        with self._lock:
            for v, queue in self._queues.items():
                if vendor in (None, v):
                    queue.clear()
