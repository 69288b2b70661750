"""The durable result cache: a paid result, served again for the very same request without a call.

The key (request_key) is a SHA-256 over everything the vendor sees: vendor, endpoint, every
parameter as sent (the request JSON minus its image payloads), the SHA-256 of every payload byte
(for DashScope the image as uploaded, not its temporary oss:// name) and a hash of the account
(key id / API key with the base URL: never the secret itself). It is computed before anything is
sent, so a hit sends nothing.

An entry is two owner-only files under <dir>/<key[:2]>/: `<key>.bin` (the result image's bytes as
received) and `<key>.json` (what paid for it: vendor, request or task id, when, the bytes' hash).
The .json is written last, so a half-written entry is no entry; an entry whose bytes do not match
its hash (truncated, corrupted) is removed and missed. The .json's modification time is its last
use: past the size cap the least recently used entries go. `lock(key)` holds one key across threads
and processes (a lock file), so two identical runs at the same moment pay once.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import pathlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone

from . import private_file

MAX_RESULT_BYTES = 96 * 2**20
MAX_META_BYTES = 64 * 1024


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def account_id(*parts: str) -> str:
    """A hash of who pays (key id or API key, base URL, workspace): the key never holds a secret."""
    return digest("\0".join(parts).encode("utf-8"))


def request_key(vendor: str, endpoint: str, parameters: dict, payloads: list[bytes], account: str,
                occurrence: int = 0) -> str:
    """`occurrence` tells apart identical requests of one run (two seed -1 variants, one image twice)."""
    text = json.dumps({"vendor": vendor, "endpoint": endpoint, "parameters": parameters,
                       "payloads": [digest(p) for p in payloads], "account": account, "occurrence": occurrence},
                      sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return digest(text.encode("utf-8"))


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


@dataclass
class Entry:
    image: bytes
    vendor: str
    kind: str  # "request id" | "task id"
    id: str
    paid_at: str  # ISO UTC
    extra: dict = field(default_factory=dict)  # e.g. the create call's request id, the vendor's time

    def describe(self) -> str:
        return f"from cache: {self.kind} {self.id or '(none)'}, paid {self.paid_at}"


class ResultCache:
    def __init__(self, directory: pathlib.Path, cap_bytes: int):
        self.dir, self.cap = pathlib.Path(directory), cap_bytes

    def _paths(self, key: str) -> tuple[pathlib.Path, pathlib.Path]:
        folder = self.dir / key[:2]
        return folder / f"{key}.bin", folder / f"{key}.json"

    def get(self, key: str) -> Entry | None:
        data_path, meta_path = self._paths(key)
        try:
            meta = json.loads(private_file.read_private(meta_path, MAX_META_BYTES) or b"null")
            if not isinstance(meta, dict):
                return None if meta is None else self._drop(key)
            data = private_file.read_private(data_path, MAX_RESULT_BYTES)
            if data is None or len(data) != meta.get("bytes") or digest(data) != meta.get("sha256"):
                return self._drop(key)
            entry = Entry(data, str(meta["vendor"]), str(meta["kind"]), str(meta["id"]), str(meta["paid_at"]),
                          meta.get("extra") if isinstance(meta.get("extra"), dict) else {})
            os.utime(meta_path)  # most recently used
            return entry
        except (OSError, ValueError, KeyError, TypeError, private_file.UnsafeFile):
            return self._drop(key)

    def _drop(self, key: str) -> None:
        for path in self._paths(key):
            with contextlib.suppress(OSError):
                path.unlink()

    def put(self, key: str, entry: Entry) -> None:
        if self.cap <= 0 or len(entry.image) > min(self.cap, MAX_RESULT_BYTES):
            return
        data_path, meta_path = self._paths(key)
        private_file.make_private_dirs(data_path.parent, (data_path.parent.name,))  # the key's prefix folder
        private_file.write_private(data_path, entry.image)
        meta = {"v": 1, "vendor": entry.vendor, "kind": entry.kind, "id": entry.id, "paid_at": entry.paid_at,
                "bytes": len(entry.image), "sha256": digest(entry.image), "extra": entry.extra}
        private_file.write_private(meta_path, json.dumps(meta).encode("utf-8"))
        self.evict()

    def _entries(self) -> list[tuple[float, int, str]]:
        """(last use, bytes, key) of every complete entry."""
        out = []
        for meta_path in self.dir.glob("??/*.json"):
            key = meta_path.stem
            try:
                used = meta_path.stat().st_mtime
                size = (meta_path.parent / f"{key}.bin").stat().st_size
            except OSError:
                continue
            out.append((used, size, key))
        return out

    def evict(self) -> None:
        entries = sorted(self._entries())
        total = sum(size for _, size, _ in entries)
        for _, size, key in entries:
            if total <= self.cap:
                break
            self._drop(key)
            total -= size

    def stats(self) -> dict:
        entries = self._entries()
        return {"entries": len(entries), "bytes": sum(size for _, size, _ in entries)}

    def clear(self) -> int:
        cleared = 0
        for path in list(self.dir.glob("??/*")):
            if path.suffix == ".json":
                cleared += 1
            with contextlib.suppress(OSError):
                path.unlink()
        return cleared

    def lock(self, key: str, wait: Callable[[float], None] = time.sleep):
        """Holds `key` across threads and processes; `wait(seconds)` sleeps between tries (and may raise:
        a run's deadline or interrupt ends the wait)."""
        return private_file.exclusive(self.dir / "locks" / f"{key}.lock", wait, ("locks",))
