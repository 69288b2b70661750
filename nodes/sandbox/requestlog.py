"""What the sandbox received: one entry per request, so tests can assert exactly what was billed.

"Billable" means the request reached the vendor's real work (a real vendor would charge for it);
a request refused at the gateway, throttled, invalid, or dropped before it was read is not.
"""

from __future__ import annotations

import copy
import threading
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any


@dataclass
class LogEntry:
    seq: int
    time: datetime                 # real UTC wall clock (not shifted by clock_offset)
    method: str
    path: str
    query: str
    vendor: str | None             # None: no route matched
    action: str | None = None      # vendor's name for the operation (Volcengine: the Action)
    processed: bool = False        # the handler did its work (fault kinds slow/drop_after/... need it)
    billable: bool = False         # a real vendor would charge this request
    status: int | None = None      # HTTP status sent; None = no response (connection dropped)
    fault: str | None = None       # kind of the injected fault this request took
    delivered: bool = False        # the whole response was written (set last: may lag the client)
    detail: dict[str, Any] = field(default_factory=dict)

    def line(self) -> str:
        """One line for a person watching the sandbox (`echo`): what came in and what went out."""
        status = self.status if self.status is not None else "dropped"
        flags = " ".join(f for f in ("billable" if self.billable else "",
                                     f"fault={self.fault}" if self.fault else "") if f)
        return (f"{self.time:%H:%M:%S} {self.method} {self.path}{'?' + self.query if self.query else ''} "
                f"-> {status} [{self.vendor or '-'}{'/' + self.action if self.action else ''}] {flags}")


class RequestLog:
    """Thread-safe list of LogEntry; readers always get copies."""

    def __init__(self):
        self._lock = threading.Lock()
        self._entries: list[LogEntry] = []
        self._seq = 0

    def open(self, method: str, path: str, query: str, vendor: str | None, **fields: Any) -> LogEntry:
        with self._lock:
            self._seq += 1
            entry = LogEntry(self._seq, datetime.now(timezone.utc), method, path, query, vendor, **fields)
            self._entries.append(entry)
            return entry

    def update(self, entry: LogEntry, **fields: Any) -> None:
        with self._lock:
            for name, value in fields.items():
                if name not in LogEntry.__dataclass_fields__ or name in ("seq", "detail"):
                    raise AttributeError(f"LogEntry has no settable field {name!r}")
                setattr(entry, name, value)

    def annotate(self, entry: LogEntry, **detail: Any) -> None:
        with self._lock:
            entry.detail.update(detail)

    def entries(self, vendor: str | None = None, action: str | None = None) -> list[LogEntry]:
        with self._lock:
            return [copy.deepcopy(e) for e in self._entries
                    if (vendor is None or e.vendor == vendor) and (action is None or e.action == action)]

    def count(self, vendor: str | None = None, *, billable: bool | None = None,
              action: str | None = None) -> int:
        with self._lock:
            return sum(1 for e in self._entries
                       if (vendor is None or e.vendor == vendor) and (action is None or e.action == action)
                       and (billable is None or e.billable == billable))

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
