"""Process-wide pacing of DashScope calls, shared by every run in this ComfyUI process: task
submissions per second per key, tasks in flight per key (for the concurrent-task limit), and what
tasks have taken (to time the polls)."""

from __future__ import annotations

import threading
import time

from . import transport


class TaskDurations:
    """What this process has seen tasks take (create -> SUCCEEDED), to time the polls."""

    _lock = threading.Lock()
    _estimate: float | None = None

    @classmethod
    def expected(cls, prior: float) -> float:
        with cls._lock:
            return cls._estimate if cls._estimate is not None else prior

    @classmethod
    def observe(cls, seconds: float) -> None:
        with cls._lock:
            cls._estimate = seconds if cls._estimate is None else 0.7 * cls._estimate + 0.3 * seconds


class CreateLimiter:
    """At most `rate` task creations per second per API key, across every run in this process."""

    _lock = threading.Lock()
    _next: dict[str, float] = {}

    @classmethod
    def wait_turn(cls, key: str, rate: float, control: transport.RunControl) -> None:
        with cls._lock:
            now = time.monotonic()
            slot = max(now, cls._next.get(key, 0.0))
            cls._next[key] = slot + 1.0 / rate
        if slot > now:
            control.sleep(slot - now, f"waiting for a task-submission slot ({rate:g} per second)")


class TasksInFlight:
    """Tasks this process created and has not seen end, per API key (the account). A 429 on create
    while one of them runs means the account's concurrent-task limit (1 to 5 over the years) is
    reached: the create waits for one of them to end instead of spending its retries on a backoff."""

    _cond = threading.Condition()
    _running: dict[str, int] = {}
    _ended: dict[str, int] = {}  # how many have ended so far: a waiter sees any end, even a quick one

    @classmethod
    def started(cls, key: str) -> None:
        with cls._cond:
            cls._running[key] = cls._running.get(key, 0) + 1

    @classmethod
    def ended(cls, key: str) -> None:
        with cls._cond:
            cls._running[key] = max(0, cls._running.get(key, 0) - 1)
            cls._ended[key] = cls._ended.get(key, 0) + 1
            cls._cond.notify_all()

    @classmethod
    def state(cls, key: str) -> tuple[int, int]:
        """(running, ended so far)."""
        with cls._cond:
            return cls._running.get(key, 0), cls._ended.get(key, 0)

    @classmethod
    def wait_for_end(cls, key: str, ended_before: int, control: transport.RunControl, cap: float) -> None:
        """Until a task of `key` ends after the count `ended_before` (or none runs, or `cap` s passed)."""
        until = time.monotonic() + cap
        with cls._cond:
            while cls._ended.get(key, 0) == ended_before and cls._running.get(key, 0) and time.monotonic() < until:
                cls._cond.wait(max(0.0, min(0.25, until - time.monotonic(), control.remaining())))
                control.check("waiting for a task of this account to end (its concurrent-task limit)")
