"""Files the sandbox serves at /sandbox/results/<id>.<ext>: vendor result URLs, test inputs.

Links expire like the vendors' signed URLs (24 h by default). Expiry is judged on the sandbox's
clock, which includes `clock_offset`, so a test can "wait a day" by moving the clock.
"""

from __future__ import annotations

import secrets
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

PREFIX = "/sandbox/results/"
CONTENT_TYPES = {"png": "image/png", "jpg": "image/jpeg", "jpeg": "image/jpeg", "webp": "image/webp",
                 "bin": "application/octet-stream"}
_CHUNK = 64 * 1024


@dataclass(frozen=True)
class StoredFile:
    content_type: str
    expires: datetime
    data: bytes | None = None      # real content, or None for a synthetic body of `size` bytes
    size: int = 0
    declare_length: bool = True    # send Content-Length (False: stream until the connection closes)
    location: str | None = None    # a redirect: answered with `status` and this Location
    status: int = 302              # of a redirect
    stream: Callable[[], Iterable[bytes]] | None = None  # a body made while it is sent (no length)

    def length(self) -> int:
        return len(self.data) if self.data is not None else self.size

    def chunks(self) -> Iterable[bytes]:
        if self.stream is not None:
            return self.stream()
        return self._chunks()

    def _chunks(self) -> Iterator[bytes]:
        if self.data is not None:
            yield self.data
            return
        # A PNG signature, then zeros: looks like an image to a client that sniffs the start.
        head = b"\x89PNG\r\n\x1a\n"[: self.size]
        yield head
        left = self.size - len(head)
        zeros = bytes(_CHUNK)
        while left > 0:
            yield zeros[: min(left, _CHUNK)]
            left -= _CHUNK


class ResultStore:
    """Thread-safe. Keeps at most `max_files` files and `max_bytes` of stored content, dropping
    the oldest first, so a long demo session stays small (a dropped link answers 404, like an
    expired one)."""

    def __init__(self, clock: Callable[[], datetime], max_files: int = 256, max_bytes: int = 256 * 1024 * 1024):
        self._clock = clock
        self._lock = threading.Lock()
        self._files: OrderedDict[str, StoredFile] = OrderedDict()
        self._bytes = 0
        self.max_files = max_files
        self.max_bytes = max_bytes

    def _put(self, ext: str, file: StoredFile) -> str:
        key = f"{secrets.token_hex(16)}.{ext}"
        with self._lock:
            self._files[key] = file
            self._bytes += len(file.data or b"")
            while len(self._files) > 1 and (len(self._files) > self.max_files or self._bytes > self.max_bytes):
                _, dropped = self._files.popitem(last=False)
                self._bytes -= len(dropped.data or b"")
        return key

    def put(self, data: bytes, ext: str, ttl: timedelta, content_type: str | None = None) -> str:
        """Store bytes; returns the key (file name) to append to PREFIX."""
        ext = ext.lower().lstrip(".")
        return self._put(ext, StoredFile(content_type or CONTENT_TYPES.get(ext, "application/octet-stream"),
                                         self._clock() + ttl, data=bytes(data)))

    def put_file(self, ext: str, file: StoredFile) -> str:
        """Store a file of any kind (a redirect, a streamed body); returns its key."""
        return self._put(ext.lower().lstrip("."), file)

    def put_synthetic(self, size: int, ext: str, ttl: timedelta, declare_length: bool = True) -> str:
        """A body of `size` bytes generated while it is sent (nothing that big is kept in memory)."""
        if size < 0:
            raise ValueError(f"size must be >= 0, got {size}")
        ext = ext.lower().lstrip(".")
        return self._put(ext, StoredFile(CONTENT_TYPES.get(ext, "application/octet-stream"),
                                         self._clock() + ttl, size=size, declare_length=declare_length))

    def get(self, key: str) -> StoredFile | None:
        """The file, or None when unknown or expired (an expired one is forgotten)."""
        with self._lock:
            file = self._files.get(key)
            if file is not None and self._clock() >= file.expires:
                del self._files[key]
                self._bytes -= len(file.data or b"")
                return None
            return file

    def clear(self) -> None:
        with self._lock:
            self._files.clear()
            self._bytes = 0
