"""The DashScope task journal: a created task's id, written durably (fsync) under its request's key
before polling starts, so that a run after a crash, an interrupt or a timeout resumes that task
(poll, download) instead of paying for a new one. An entry lives while its task may still be
fetched: until its result is in the cache, the task ended without a result, or 24 h (the vendor
keeps task ids that long). One small owner-only file per key; a damaged one is ignored and removed.
"""

from __future__ import annotations

import contextlib
import json
import pathlib
import time

from . import private_file

TASK_LIFE_S = 24 * 3600


class TaskJournal:
    def __init__(self, directory: pathlib.Path):
        self.dir = pathlib.Path(directory)

    def _path(self, key: str) -> pathlib.Path:
        return self.dir / f"{key}.json"

    def record(self, key: str, task_id: str, request_id: str) -> None:
        private_file.make_private_dirs(self.dir, ("journal",))
        entry = {"task_id": task_id, "request_id": request_id, "created": time.time()}
        private_file.write_private(self._path(key), json.dumps(entry).encode("utf-8"))  # fsync'd, atomic

    def pending(self, key: str) -> tuple[str, str] | None:
        """(task id, create request id) of the key's task, if it is younger than 24 h."""
        try:
            entry = json.loads(private_file.read_private(self._path(key), 4096) or b"null")
            if entry is None:
                return None
            task_id, created = entry["task_id"], float(entry["created"])
            if not isinstance(task_id, str) or not task_id or time.time() - created > TASK_LIFE_S - 60:
                raise ValueError("stale")
            return task_id, str(entry.get("request_id") or "")
        except (OSError, ValueError, KeyError, TypeError, private_file.UnsafeFile):
            self.forget(key)
            return None

    def forget(self, key: str) -> None:
        with contextlib.suppress(OSError):
            self._path(key).unlink()

    def forget_task(self, task_id: str) -> None:
        """Drops the entry naming `task_id` (a task cancelled before it ran)."""
        for path in self.dir.glob("*.json"):
            with contextlib.suppress(OSError, ValueError, private_file.UnsafeFile):
                if json.loads(private_file.read_private(path, 4096) or b"{}").get("task_id") == task_id:
                    path.unlink()
