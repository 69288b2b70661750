"""The spend ledger: one JSON line per billable call (time, vendor, request or task id, images,
estimated cost in CNY or null when no price is set), appended to an owner-only file and fsync'd.
A line that cannot be read (a torn write, a damaged file) is skipped; what private_file does not
trust at the path (a symbolic link, a FIFO, another user's file, over 64 MiB) counts as a damaged
file. An id is recorded once, so a task fetched again (a resume) is not counted twice. summary() is
what GET /cloud_outpaint/spend and `python cli.py spend` show.
"""

from __future__ import annotations

import json
import pathlib
import threading
from datetime import datetime, timezone

from . import private_file

FILE_NAME = "spend.jsonl"
VENDORS = ("volc", "dashscope")
MAX_FILE_BYTES = 64 * 2**20  # ~400,000 calls; a bigger file counts as damaged
_lock = threading.Lock()


class SpendLedger:
    def __init__(self, directory: pathlib.Path):
        self.dir = pathlib.Path(directory)
        self.path = self.dir / FILE_NAME

    def _text(self) -> str:
        """The ledger's text; "" when there is none, or it is unreadable or untrusted (counted as damaged)."""
        try:
            data = private_file.read_private(self.path, MAX_FILE_BYTES)
        except (OSError, private_file.UnsafeFile):
            return ""
        return (data or b"").decode("utf-8", "replace")

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
            text = self._text()
            if id_ and json.dumps(id_) in text:
                return False
            private_file.make_private_dirs(self.dir, private_file.OWN_DIR_NAMES)
            prefix = "\n" if text and not text.endswith("\n") else ""  # after a torn line
            private_file.append_private(self.path, (prefix + json.dumps(line, ensure_ascii=False) + "\n").encode())
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
