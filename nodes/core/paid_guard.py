"""Never pay twice, and know what is paid: one run's cache look-ups, task journal, spend ledger and
daily limit, wired into volc_run / dashscope_run with a few calls.

Before anything is sent: every job's cache key is computed (result_cache.request_key), the jobs the
cache or the journal answer are set aside, and the rest is priced against the daily limit
(check_budget raises InputError naming the limit, today's spend and the estimate). While the run
goes: each job holds its key's lock (an identical run elsewhere waits, then finds the result in
the cache), a DashScope task is journaled right after create, every billable call is appended to
the ledger and every result kept in the cache. After: the info and the status say what came from
the cache (its original id, when it was paid) and what this run cost.

Runs against the built-in sandbox (credentials.source == "sandbox") are free and left alone.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import replace

from . import cost_state, private_file
from .errors import InputError, VendorError
from .result_cache import Entry, ResultCache, account_id, request_key, utc_now
from .spend_holds import SpendHolds
from .spend_ledger import SpendLedger
from .task_journal import TaskJournal

log = logging.getLogger(__name__)
NAMES = {"volc": "Volcengine", "dashscope": "DashScope"}


class RunGuard:
    def __init__(self, vendor: str, keys: list[str | None], *, use_cache: bool = True, control=None,
                 env: Mapping[str, str] = os.environ, active: bool = True, resuming: bool = False):
        self.vendor, self.keys, self.control, self.active = vendor, keys, control, active
        self.resuming = resuming  # resume_task_ids: tasks created earlier, billed when they succeed
        self.kind = "task id" if vendor == "dashscope" else "request id"
        self.hits: dict[int, Entry] = {}
        self.paid_count = 0
        self._hold: str | None = None
        self._flying, self._over = 0, False  # jobs started and not ended; the run has returned
        self._flight = threading.Lock()
        if not active:
            self.settings, self.price, self.reading, self.cache = None, 0.0, False, None
            return
        directory = cost_state.state_dir(env)
        self.settings = cost_state.load(env, directory)
        self.price = self.settings.prices[vendor]
        enabled = cost_state.cache_enabled(env)
        self.reading = enabled and use_cache
        self.cache = ResultCache(directory / "cache", cost_state.cache_cap_bytes(env)) if enabled else None
        self.journal = TaskJournal(directory / "journal") if enabled else None
        self.ledger = SpendLedger(directory)
        self.holds = SpendHolds(directory)
        self._dir = directory

    # ---- before anything is sent ----------------------------------------------------------------

    def _cached_now(self, index: int) -> Entry | None:
        key = self.keys[index]
        return self.cache.get(key) if self.reading and key and self.cache else None

    def _journaled_now(self, index: int):
        key = self.keys[index]
        return self.journal.pending(key) if self.reading and key and self.journal else None

    def plan(self) -> dict:
        """What the run would do: jobs answered by the cache, tasks to resume, new paid calls, the estimate."""
        n = len(self.keys)
        if not self.active:
            return {"jobs": n, "cached": 0, "resumed": 0, "paid": 0, "price_cny": 0.0, "estimate_cny": 0.0,
                    "free": "the sandbox"}
        hits = [self._cached_now(k) for k in range(n)]  # each look-up reads and hashes an entry: once
        cached = sum(1 for hit in hits if hit)
        resumed = n if self.resuming else sum(1 for k in range(n) if not hits[k] and self._journaled_now(k))
        paid = n - cached - resumed
        estimate = None if self.price is None else round(paid * self.price, 4)
        return {"jobs": n, "cached": cached, "resumed": resumed, "paid": paid, "price_cny": self.price,
                "estimate_cny": 0.0 if paid == 0 else estimate}

    def check_budget(self, plan: dict | None = None) -> dict:
        """Refuses (InputError) a run that would take today's spend, with what runs still going hold,
        past the daily limit; returns plan(). The run's own plan is then held until release()
        (spend_holds); a given plan (the CLI's whole batch of files) is only checked."""
        hold, plan = plan is None, plan or self.plan()
        limit = None if not self.active else self.settings.daily_limit_cny
        if not self.active or plan["paid"] == 0 or (limit is None and self.price is None):
            return plan
        if self.price is None:
            raise InputError(f"refused: a daily limit of CNY {limit:g} is set ({cost_state.LIMIT_VAR} or the keys "
                             f"dialog) but no {NAMES[self.vendor]} price, so this run cannot be estimated. Set the "
                             f"price per request ({cost_state.PRICE_VARS[self.vendor]} or the keys dialog); nothing "
                             "was sent")
        with self.holds.locked() as holds:  # the check and the hold in one step
            today, held = self.ledger.summary()["today_cny"], self.holds.total(holds)
            if limit is not None and today + held + plan["estimate_cny"] > limit + 1e-9:
                running = f", CNY {held:.2f} is held by runs still going" if held else ""
                raise InputError(f"refused by the daily limit of CNY {limit:.2f}: today's spend is CNY {today:.2f}"
                                 f"{running} and this run's estimate is CNY {plan['estimate_cny']:.2f} "
                                 f"({plan['paid']} x CNY {self.price:g}, {plan['cached']} from cache); nothing was "
                                 f"sent. Raise the limit ({cost_state.LIMIT_VAR} or the keys dialog) or wait "
                                 + ("for them to end" if held else "until tomorrow"))
            if hold:  # resumed tasks are billed when they succeed, in this run: held too
                self._hold = self.holds.place(holds, (plan["paid"] + plan["resumed"]) * self.price)
        return plan

    def release(self) -> None:
        """The run has returned: what it did not pay is no longer held, except the price of jobs still
        going (an interrupted billable call ends by its own timeouts); the last of them lets it go."""
        with self._flight:
            self._over, flying = True, self._flying
        self._drop_hold(flying)

    def _drop_hold(self, flying: int = 0) -> None:
        if self._hold is None:
            return
        try:
            if flying:
                self.holds.keep_at_most(self._hold, flying * (self.price or 0.0))
            else:
                self.holds.release(self._hold)
                self._hold = None
        except (OSError, private_file.UnsafeFile) as exc:  # it expires with this process
            log.warning("cloud_outpaint: a spend hold could not be updated: %s", exc.__class__.__name__)

    def _took_off(self) -> None:
        with self._flight:
            self._flying += 1

    def _landed(self) -> None:
        with self._flight:
            self._flying -= 1
            last = self._over and self._flying == 0
        if last:
            self._drop_hold()

    def __enter__(self) -> RunGuard:
        self.check_budget()
        return self

    def __exit__(self, *exc) -> None:
        self.release()

    # ---- while the run goes ---------------------------------------------------------------------

    def _wait(self, seconds: float) -> None:
        if self.control is not None:
            self.control.sleep(seconds, "waiting for an identical run to finish")
        else:
            time.sleep(seconds)

    def wrap(self, index: int, job: Callable, from_entry: Callable[[Entry], object]) -> Callable:
        """The job, holding its key's lock: a result found in the cache is returned by from_entry
        without a call; a billed failure is recorded in the ledger."""
        key = self.keys[index] if self.active else None

        def run(report):
            try:
                return job(report)
            except VendorError as exc:
                paid_id = exc.task_id if self.vendor == "dashscope" else exc.request_id
                if exc.billed:  # with no id too: it was paid for all the same
                    try:
                        self._record(paid_id or "")
                    except (OSError, private_file.UnsafeFile):
                        log.warning("cloud_outpaint: %s %s could not be kept in the ledger", self.kind, paid_id)
                raise

        def go(report):
            if key is None or self.cache is None:
                return run(report)
            with self.cache.lock(key, self._wait):
                entry = self.cache.get(key) if self.reading else None
                if entry is not None:
                    self.hits[index] = entry
                    report(entry.describe())
                    return from_entry(entry)
                return run(report)

        def flying(report):
            self._took_off()
            try:
                return go(report)
            finally:
                self._landed()
        return flying if self.active else go

    def journaled(self, index: int) -> tuple[str, str] | None:
        """(task id, request id) of this job's task created by an earlier run that did not get its result."""
        return self._journaled_now(index) if self.active else None

    def created(self, index: int, task_id: str, request_id: str) -> None:
        if self.active and self.keys[index] and self.journal:
            self.journal.record(self.keys[index], task_id, request_id)

    def ended(self, index: int) -> None:
        """The task ended without a result: nothing left to resume."""
        if self.active and self.keys[index] and self.journal:
            self.journal.forget(self.keys[index])

    def watch_cancel(self, cancel: Callable[[str], str]) -> Callable[[str], str]:
        """client.cancel, forgetting a task the vendor cancelled (it will never finish)."""
        def cancelled(task_id: str) -> str:
            outcome = cancel(task_id)
            if outcome == "cancelled" and self.active and self.journal:
                self.journal.forget_task(task_id)
            return outcome
        return cancelled

    def _record(self, paid_id: str) -> None:
        if self.active and self.ledger.append(self.vendor, self.kind, paid_id, 1, self.price):
            self.paid_count += 1
            if self._hold is not None and self.price:
                self.holds.spend(self._hold, self.price)  # now in the ledger: no longer held

    def paid(self, index: int, paid_id: str, image: bytes, **extra) -> None:
        """A result arrived: it is billed (ledger) and kept (cache); its journal entry is done."""
        if not self.active:
            return
        key = self.keys[index]
        try:  # a full or read-only disk must not lose a paid result: it is still returned
            self._record(paid_id)
            if key and self.cache is not None:
                self.cache.put(key, Entry(image, self.vendor, self.kind, paid_id, utc_now(),
                                          {k: v for k, v in extra.items() if v}))
            if key and self.journal:
                self.journal.forget(key)
        except (OSError, private_file.UnsafeFile) as exc:
            log.warning("cloud_outpaint: %s %s could not be kept in the cache or ledger: %s", self.kind, paid_id,
                        exc.__class__.__name__)

    # ---- after ---------------------------------------------------------------------------------

    def cost(self) -> dict:
        price = self.price if self.active else 0.0
        cost = 0.0 if self.paid_count == 0 else (None if price is None else round(self.paid_count * price, 4))
        return {"cached": len(self.hits), "paid": self.paid_count, "cost_cny": cost}

    def finish(self, result, hooks):
        """The run's info and status: which results came from the cache, and what the run cost."""
        for index, entry in self.hits.items():
            if index < len(result.info.results):
                result.info.results[index].from_cache = entry.describe()
        cost = self.cost()
        if self.active:  # a sandbox run is free and counted nowhere: its info stays as it was
            result.info.cost = cost
            price = "price not set" if cost["cost_cny"] is None else f"CNY {cost['cost_cny']:.2f}"
            text = f"{NAMES[self.vendor]}: {len(self.keys)} done: {cost['paid']} paid ({price})"
            if self.hits:
                first = next(iter(self.hits.values()))
                text += f", {len(self.hits)} {first.describe()}" if len(self.hits) == 1 else \
                    f", {len(self.hits)} from cache (e.g. {first.kind} {first.id}, paid {first.paid_at})"
            hooks.status(text)
        return result


def _keyed(vendor: str, endpoint: str, account: str, requests: list[tuple[dict, list[bytes]]]) -> list[str]:
    """One key per job; identical requests of one run get their own occurrence number."""
    seen: dict[str, int] = {}
    keys = []
    for parameters, payloads in requests:
        base = request_key(vendor, endpoint, parameters, payloads, account)
        keys.append(request_key(vendor, endpoint, parameters, payloads, account, seen.get(base, 0)))
        seen[base] = seen.get(base, 0) + 1
    return keys


def for_volc(credentials, requests: list[tuple[list[bytes], int]], params, config, use_cache: bool = True,
             control=None, env: Mapping[str, str] = os.environ) -> RunGuard:
    """`requests`: (payloads, seed) of each job, in job order."""
    from .volc import ACTION, VERSION, build_body

    if credentials.source == "sandbox":
        return RunGuard("volc", [None] * len(requests), active=False)
    account = account_id("volc", credentials.kind, credentials.access_key or credentials.api_key,
                         credentials.base_url)
    bodies = []
    for payloads, seed in requests:
        # one placeholder per image, so the body takes its ratio- or canvas-mode shape (sides as sent)
        body = build_body(replace(params, seed=seed), [""] * len(payloads), config)
        body.pop("binary_data_base64")
        bodies.append((body, payloads))
    keys = _keyed("volc", f"{credentials.base_url}?Action={ACTION}&Version={VERSION}", account, bodies)
    return RunGuard("volc", keys, use_cache=use_cache, control=control, env=env)


def for_dashscope(credentials, requests: list[tuple[bytes, dict]], resume: bool, use_cache: bool = True,
                  control=None, env: Mapping[str, str] = os.environ) -> RunGuard:
    """`requests`: (image bytes as uploaded, parameters as sent) per image. Explicitly resumed tasks
    (resume_task_ids) are not keyed: they were created by another request."""
    from .dashscope import CREATE_PATH, MODEL

    if credentials.source == "sandbox":
        return RunGuard("dashscope", [None] * len(requests), active=False)
    account = account_id("dashscope", credentials.api_key, credentials.base_url, credentials.workspace)
    keys = [None] * len(requests) if resume else _keyed(
        "dashscope", credentials.base_url.rstrip("/") + CREATE_PATH, account,
        [({"model": MODEL, "parameters": parameters}, [payload]) for payload, parameters in requests])
    return RunGuard("dashscope", keys, use_cache=use_cache, control=control, env=env, resuming=resume)
