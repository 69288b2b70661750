"""Money promised to runs still going. A run that passes the daily-limit check holds its estimate
until it ends, so a run checked meanwhile (another cloud node of the same graph, which ComfyUI runs
side by side, or another process) counts it as spent: two runs that each fit under the limit but
not together cannot both pay. The check and the hold are one step under one lock (a lock file
beside the ledger). Each paid call moves its price from the hold to the ledger; a hold whose
process is gone, or older than MAX_AGE_S, counts no more.
"""

from __future__ import annotations

import contextlib
import json
import os
import pathlib
import time
import uuid
from collections.abc import Iterator

from . import private_file

FILE_NAME, LOCK_NAME = "holds.json", "holds.lock"
MAX_AGE_S = 6 * 3600  # longer than any run's timeout
MAX_FILE_BYTES = 256 * 1024


class SpendHolds:
    def __init__(self, directory: pathlib.Path):
        self.dir = pathlib.Path(directory)
        self.path = self.dir / FILE_NAME

    @contextlib.contextmanager
    def locked(self) -> Iterator[dict[str, dict]]:
        """The live holds (id -> {"pid", "cny", "since"}), for reading and changing; written back after."""
        with private_file.exclusive(self.dir / LOCK_NAME, own_names=private_file.OWN_DIR_NAMES):
            holds = self._read()
            before = json.dumps(holds, sort_keys=True)
            yield holds
            if json.dumps(holds, sort_keys=True) != before:
                private_file.write_private(self.path, json.dumps(holds).encode("utf-8"))

    def _read(self) -> dict[str, dict]:
        try:
            data = json.loads(private_file.read_private(self.path, MAX_FILE_BYTES) or b"{}")
        except (ValueError, OSError, private_file.UnsafeFile):
            return {}  # damaged or unreadable: no hold survives it (the ledger still counts what was paid)
        now = time.time()  # where a process cannot be asked (pid_alive None), the age alone decides
        return {k: v for k, v in data.items() if isinstance(v, dict) and isinstance(v.get("cny"), (int, float))
                and isinstance(v.get("since"), (int, float)) and now - v["since"] < MAX_AGE_S
                and isinstance(v.get("pid"), int) and private_file.pid_alive(v["pid"]) is not False} \
            if isinstance(data, dict) else {}

    @staticmethod
    def total(holds: dict[str, dict]) -> float:
        return round(sum(max(0.0, h["cny"]) for h in holds.values()), 4)

    @staticmethod
    def place(holds: dict[str, dict], cny: float) -> str:
        hold_id = uuid.uuid4().hex
        holds[hold_id] = {"pid": os.getpid(), "cny": round(cny, 4), "since": time.time()}
        return hold_id

    def spend(self, hold_id: str, cny: float) -> None:
        """`cny` of the hold was paid (and is in the ledger now)."""
        with self.locked() as holds:
            if hold_id in holds:
                holds[hold_id]["cny"] = round(max(0.0, holds[hold_id]["cny"] - cny), 4)

    def keep_at_most(self, hold_id: str, cny: float) -> None:
        with self.locked() as holds:
            if hold_id in holds:
                holds[hold_id]["cny"] = round(min(holds[hold_id]["cny"], cny), 4)

    def release(self, hold_id: str) -> None:
        with self.locked() as holds:
            holds.pop(hold_id, None)
