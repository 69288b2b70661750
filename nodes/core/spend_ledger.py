"""The spend ledger: one JSON line per billable call (time, vendor, request or task id, images,
estimated cost in CNY or null when no price is set), appended to an owner-only file and fsync'd.
A line that cannot be read (a torn write, a damaged file) is skipped. An id is recorded once, so a
task fetched again (a resume) is not counted twice. summary() is what GET /cloud_outpaint/spend
and `python cli.py spend` show.
"""

from __future__ import annotations

import json
import os
import pathlib
import threading
from datetime import datetime, timezone

from . import private_file

FILE_NAME = "spend.jsonl"
VENDORS = ("volc", "dashscope")
_lock = threading.Lock()
_O_FLAGS = os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)


class SpendLedger:
    def __init__(self, directory: pathlib.Path):
        self.dir = pathlib.Path(directory)
        self.path = self.dir / FILE_NAME

    def _text(self) -> str:
        try:
            fd = os.open(self.path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        except OSError:
            return ""
        with os.fdopen(fd, "rb") as handle:
            return handle.read().decode("utf-8", "replace")

    def entries(self) -> list[dict]:
        out = []
        for line in self._text().splitlines():
            try:
                entry = json.loads(line)
                if isinstance(entry, dict) and entry.get("vendor") in VENDORS and isinstance(entry.get("time"), str):
                    datetime.fromisoformat(entry["time"])
                    out.append(entry)
            except ValueError:
                continue
        return out

    def append(self, vendor: str, kind: str, id_: str, images: int, cost_cny: float | None) -> bool:
        """Records one billable call; False when its id is recorded already."""
        line = {"time": datetime.now(timezone.utc).astimezone().isoformat(timespec="seconds"), "vendor": vendor,
                "kind": kind, "id": id_, "images": images,
                "cost_cny": None if cost_cny is None else round(cost_cny, 4)}
        with _lock:
            if id_ and json.dumps(id_) in self._text():
                return False
            private_file.make_private_dirs(self.dir, ("cloud_outpaint", "cloud-outpaint"))
            fd = os.open(self.path, _O_FLAGS, 0o600)
            try:
                text = self._text()
                prefix = "\n" if text and not text.endswith("\n") else ""  # after a torn line
                os.write(fd, (prefix + json.dumps(line, ensure_ascii=False) + "\n").encode("utf-8"))
                os.fsync(fd)
            finally:
                os.close(fd)
        return True

    def summary(self, now: datetime | None = None) -> dict:
        """Today's and this month's estimated spend (local time), requests today per vendor, the last 50."""
        now = (now or datetime.now(timezone.utc)).astimezone()
        entries = self.entries()
        today = [e for e in entries if datetime.fromisoformat(e["time"]).astimezone().date() == now.date()]
        month = [e for e in entries if datetime.fromisoformat(e["time"]).astimezone().strftime("%Y-%m")
                 == now.strftime("%Y-%m")]

        def total(rows):
            return round(sum(e["cost_cny"] for e in rows if isinstance(e.get("cost_cny"), (int, float))), 4)

        return {"today_cny": total(today), "month_cny": total(month),
                "requests_today": {v: sum(1 for e in today if e["vendor"] == v) for v in VENDORS},
                "entries": list(reversed(entries[-50:]))}
