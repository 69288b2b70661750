"""DashScope tasks: the task model, its lifecycle on the sandbox clock, and the per-key rate windows.

A task is PENDING for `pending_s`, RUNNING for `running_s`, then finished (its work decides
SUCCEEDED or FAILED); cancelled tasks read CANCELED and, after the task TTL, every task reads
UNKNOWN, as on the real service. Times are the sandbox clock (clock_offset moves them); rate
windows are monotonic time (clock_offset does not move them).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from .dashscope_protocol import DashScopeError, beijing
from .dashscope_request import OutpaintJob
from .faults import Fault
from .requestlog import LogEntry

IN_FLIGHT = ("PENDING", "RUNNING")


class RateWindow:
    """At most `limit` admissions per `seconds` per name."""

    def __init__(self, seconds: float = 1.0):
        self.seconds = seconds
        self._lock = threading.Lock()
        self._times: dict[Any, deque[float]] = {}

    def admit(self, name: Any, limit: float) -> bool:
        if not limit or limit <= 0:
            return True
        now = time.monotonic()
        with self._lock:
            times = self._times.setdefault(name, deque())
            while times and now - times[0] >= self.seconds:
                times.popleft()
            if len(times) >= limit:
                return False
            times.append(now)
            return True

    def clear(self) -> None:
        with self._lock:
            self._times.clear()


@dataclass
class Task:
    task_id: str
    key: str
    submitted: datetime            # sandbox clock
    pending_s: float
    running_s: float
    job: OutpaintJob | None        # None when its parameters were refused (deferred validation)
    deferred: DashScopeError | None
    entry: LogEntry                # the create call's log entry (gets the outcome)
    fault: Fault | None
    canceled_at: datetime | None = None
    outcome: dict[str, Any] | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def scheduled(self) -> datetime:
        return self.submitted + timedelta(seconds=self.pending_s)

    @property
    def ended(self) -> datetime:
        return self.scheduled + timedelta(seconds=self.running_s)

    def phase(self, now: datetime, ttl: timedelta) -> str:
        """PENDING, RUNNING, CANCELED, UNKNOWN, or DONE (finished: outcome decides)."""
        kind = self.fault.kind if self.fault is not None else None
        if kind == "unknown" or now - self.submitted >= ttl:
            return "UNKNOWN"
        if self.canceled_at is not None:
            return "CANCELED"
        stuck = self.fault.params["state"] if kind == "stuck" else None
        if stuck == "PENDING" or now < self.scheduled:
            return "PENDING"
        if stuck == "RUNNING" or now < self.ended:
            return "RUNNING"
        return "DONE"

    def status(self, now: datetime, ttl: timedelta, work: Callable[[Task], dict[str, Any]]) -> str:
        """The status a query shows now. A finished task's `work` (-> outcome) runs here, once,
        whichever query sees it finished first."""
        phase = self.phase(now, ttl)
        if phase != "DONE":
            return phase
        with self.lock:
            if self.outcome is None:
                self.outcome = work(self)
        return self.outcome["status"]

    def output(self, status: str) -> dict[str, Any]:
        """The `output` object of a query answer in `status` (UNKNOWN has only id and status)."""
        output: dict[str, Any] = {"task_id": self.task_id, "task_status": status}
        if status == "UNKNOWN":
            return output
        output["submit_time"] = beijing(self.submitted)
        if status == "PENDING":
            return output
        if status == "CANCELED":
            output["end_time"] = beijing(self.canceled_at)
            return output
        output["scheduled_time"] = beijing(self.scheduled)
        if status == "RUNNING":
            output["task_metrics"] = {"TOTAL": 1, "SUCCEEDED": 0, "FAILED": 0}
            return output
        output["end_time"] = beijing(self.ended)
        if status == "FAILED":
            output.update(code=self.outcome["code"], message=self.outcome["message"])
        else:
            output["output_image_url"] = self.outcome["url"]
        return output


class TaskBoard:
    """One emulator's tasks, behind their own lock. Callers pass the sandbox clock's `now`."""

    def __init__(self):
        self._lock = threading.Lock()
        self._tasks: dict[str, Task] = {}

    def submit(self, key: str, limit: int, now: datetime, ttl: timedelta,
               make: Callable[[], Task]) -> Task | None:
        """Add `make()`'s task, or None when `key` already has `limit` tasks in flight (0 = no
        limit). Check and add are one step, so concurrent creates cannot both take the last slot."""
        with self._lock:
            in_flight = sum(1 for t in self._tasks.values() if t.key == key and t.phase(now, ttl) in IN_FLIGHT)
            if limit and in_flight >= limit:
                return None
            task = make()
            self._tasks[task.task_id] = task
            return task

    def get(self, task_id: str) -> Task | None:
        with self._lock:
            return self._tasks.get(task_id)

    def visible(self, task_id: str, key: str, now: datetime, ttl: timedelta) -> Task | None:
        """The task if it exists for this key (another account's task is invisible: UNKNOWN).
        Expired tasks are forgotten here."""
        with self._lock:
            for tid in [tid for tid, t in self._tasks.items() if now - t.submitted >= ttl]:
                del self._tasks[tid]
            task = self._tasks.get(task_id)
        return task if task is not None and task.key == key else None

    def cancel(self, task: Task, now: datetime, ttl: timedelta) -> bool:
        """Cancel `task` if it is PENDING (the only state the service cancels)."""
        with self._lock:
            if task.phase(now, ttl) != "PENDING":
                return False
            task.canceled_at = now
            return True

    def all(self) -> list[Task]:
        with self._lock:
            return list(self._tasks.values())

    def clear(self) -> None:
        with self._lock:
            self._tasks.clear()
