"""Running a batch of vendor jobs for one node run: bounded concurrency, a status line, progress,
interrupt polling, and errors that name the batch item. Shared by both vendors, with the options
every run has and the typed result a run returns."""

from __future__ import annotations

import dataclasses
import json
import math
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any, ClassVar, NamedTuple

from . import transport
from .errors import Cancelled, InputError, ItemError, VendorError
from .widgets import Widget


@dataclass(kw_only=True)
class CommonOptions:
    """Options both vendors' runs share. Each vendor's subclass gives their defaults (its widget
    table's) and adds its own; `widgets` (that table) holds their ranges and choices."""

    widgets: ClassVar[Mapping[str, Widget]]
    vendor: ClassVar[str]
    keep_original: bool
    timeout_s: float
    concurrency: int  # requests or tasks in flight: 1 to widgets.MAX_CONCURRENCY
    image_format: str  # upload format of the image
    use_cache: bool = True  # False: a fresh paid result, whatever the result cache holds (paid_guard.py)
    output_resolution: str = "original"  # "vendor": the result at the size it came back (output_scale.py)

    def validate(self) -> None:
        """Checked before anything is encoded or sent."""
        for name in ("keep_original", "concurrency", "image_format", "use_cache", "output_resolution"):
            self.widgets[name].check(getattr(self, name), self.vendor)
        t = self.timeout_s  # any positive time here: the widgets' 10 s minimum is the nodes' own
        if isinstance(t, bool) or not isinstance(t, (int, float)) or not (math.isfinite(t) and t > 0):
            raise InputError(f"timeout_s is {t!r}; it must be a positive number of seconds")


class RunInfo:
    """Base of a run's typed report (dataclasses): the node's `info` JSON is made from it at the edge.
    Fields that are None are left out; `vendor` comes first, as the node's info JSON always had it;
    `cost` (paid_guard: cached, paid, cost_cny), set after the run, comes last."""

    cost: dict | None = None

    def to_dict(self) -> dict:
        plain = _plain(self)
        if self.cost is not None:
            plain["cost"] = self.cost
        return {"vendor": plain.pop("vendor"), **plain} if "vendor" in plain else plain

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False, indent=1)


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)
                if getattr(value, f.name) is not None}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def implausibly_small(size: tuple[int, int], expected: tuple[int, int]) -> bool:
    """A result under 1/8 of the expected size on a side (e.g. 1x1) is a vendor fault, not an image to
    paste the original into; other sizes are used and noted."""
    return any(got * 8 < want for got, want in zip(size, expected))


class RunResult(NamedTuple):
    images: Any  # IMAGE [B,H,W,3]
    masks: Any  # MASK [B,H,W], 1 = generated
    info: RunInfo


@dataclass
class RunHooks:
    """How a front end (ComfyUI node, CLI) watches a run; every hook is optional."""

    poll: Callable[[], None] = lambda: None  # may raise to interrupt (ComfyUI's interrupt)
    status: Callable[[str], None] = lambda text: None
    progress: Callable[[int, int], None] = lambda done, total: None


@dataclass
class Spend:
    """Paid work of one job, recorded as it happens: an id the vendor may bill."""

    label: str  # the job's label ("image 2 variant 1")
    kind: str  # "request id" | "task id"
    id: str
    state: str = ""  # what became of it, in words ("not cancelled: ..."); "" = in flight
    billed: bool | None = None  # False once it is known not to be billed (a cancelled task)


class Stopped(Exception):
    """A job gave up because another job of the batch failed (it recorded its paid work first)."""


def shrunk_note(array, encoded, fmt: str, max_bytes: int, setting: str | None) -> str:
    """The info note of an upload resized to fit the input cap (imagecodec.encode_within)."""
    h, w = array.shape[:2]
    sh, sw = encoded.array.shape[:2]
    cap = f"{max_bytes / 2**20:g} MiB input cap" + (f" ({setting})" if setting else "")
    return (f"shrunk from {w}x{h} to {sw}x{sh} (x{sw / w:.2f}) so the {fmt.upper()} stays under the {cap}: "
            f"{encoded.encodes} encodes")


def reduced_upload_note(sizes: list[tuple[tuple[int, int], tuple[int, int]]]) -> str:
    """One status line when an upload is smaller than its input ((input, sent) sizes per image), else ""."""
    reduced = [(k, given, sent) for k, (given, sent) in enumerate(sizes) if sent[0] * sent[1] < given[0] * given[1]]
    if not reduced:
        return ""
    k, given, sent = reduced[0]
    which = f"image {k + 1}" if len(sizes) == 1 else f"{len(reduced)} of {len(sizes)} images (image {k + 1}"
    return (f"upload reduced: {which} sent at {sent[0]}x{sent[1]} of {given[0]}x{given[1]}" +
            ("" if len(sizes) == 1 else ")") + "; the result has fewer of your pixels (see info)")


def with_status_note(hooks: RunHooks, note: str) -> RunHooks:
    """`hooks` whose every status text carries `note` as its last line (so the final line keeps it too)."""
    if not note:
        return hooks
    status = hooks.status
    return replace(hooks, status=lambda text: status(f"{text}\n{note}"))


class JobReport:
    """What a job is given: call it with a state text for the status line; `spend` records paid work
    (named in the error if the batch fails); `stopping` turns true once another job has failed, and
    the job should then start nothing new that costs money."""

    def __init__(self, batch: _Batch, index: int):
        self._batch, self._index = batch, index

    def __call__(self, text: str) -> None:
        self._batch.states[self._index] = text

    @property
    def stopping(self) -> bool:
        return self._batch.failure is not None

    def spend(self, kind: str, id_: str, state: str = "", billed: bool | None = None) -> None:
        self._batch.spend(Spend(self._batch.labels[self._index], kind, id_, state, billed))


Job = Callable[[JobReport], object]


class BatchError(ItemError):
    """One item failed. Besides the cause, it names the paid work of the batch that is not returned
    (`spent`: results already billed, tasks still running) so that nothing is paid twice unawares;
    `results` keeps what the finished jobs returned, by label."""

    def __init__(self, label: str, cause: BaseException, spent: list[Spend], results: dict, advice: str = ""):
        super().__init__(label, cause)
        self.spent, self.results = spent, results
        if spent:
            self.args = (f"{self.args[0]}. Paid work of this run that is not returned: "
                         + "; ".join(f"{s.label}: {s.kind} {s.id}" + (f" ({s.state})" if s.state else "")
                                     for s in spent) + (f"; {advice}" if advice else ""),)


class _Batch:
    """The shared state of one run_batch: job states, the first failure, the paid work so far."""

    def __init__(self, labels: list[str]):
        self.labels = labels
        self.states: dict[int, str] = {}
        self.results: dict[int, object] = {}
        self.failure: tuple[int, Exception] | None = None
        self.other_failures: list[tuple[int, Exception]] = []
        self.spends: list[Spend] = []
        self._lock = threading.Lock()

    def spend(self, entry: Spend) -> None:
        with self._lock:
            self.spends = [s for s in self.spends if s.id != entry.id] + [entry]

    def fail(self, index: int, exc: Exception) -> None:
        with self._lock:
            if self.failure is None:
                self.failure = (index, exc)
            else:
                self.other_failures.append((index, exc))

    def unreturned(self, label: str, cause: BaseException) -> list[Spend]:
        """Every id of the batch that may be billed, except those the cause names itself."""
        own = {getattr(cause, "request_id", None), getattr(cause, "task_id", None)} - {None, ""}
        found = {s.id: s for s in self.spends if not (s.label == label and s.id in own)}
        failed = {self.labels[index]: exc for index, exc in self.other_failures}
        for other, exc in failed.items():  # ids only the error knows
            for kind in ("request id", "task id"):
                value = getattr(exc, kind.replace(" ", "_"), None)
                if value and value not in found:
                    found[value] = Spend(other, kind, value)
        finished = {self.labels[index] for index in self.results}
        for s in found.values():
            if s.state:
                continue
            if s.label in finished:
                s.state, s.billed = "finished and billed; not returned because the run failed", True
            elif s.label in failed:
                s.state, s.billed = f"failed too ({getattr(failed[s.label], 'code', 'error')})", \
                    getattr(failed[s.label], "billed", None)
            else:
                s.state = "still in flight when the run stopped: it may be billed"
        return [s for s in found.values() if s.billed is not False]


_SKIPPED = object()  # a job that did not run, or stopped, because another one failed


def run_batch(jobs: list[Job], labels: list[str], *, control: transport.RunControl, concurrency: int,
              hooks: RunHooks, advice: Callable[[list[Spend]], str] = lambda spent: "") -> list:
    """Results in job order. When a job fails, jobs not started yet are dropped, the running ones
    finish (or stop, where `stopping` lets them) and the first failure raises BatchError naming its
    label and every id of the batch that may be billed; `advice(spent)` adds what to do about them.

    Cancelled, and what the front end's own hooks raise (ComfyUI's interrupt), pass unchanged: an
    interrupt ends the run at once."""
    batch = _Batch(labels)
    finished = 0

    def wrap(index: int):
        def go():
            if batch.failure is not None:
                return _SKIPPED
            batch.states[index] = "sending"
            try:
                result = jobs[index](JobReport(batch, index))
            except Stopped:
                return _SKIPPED
            except Cancelled:
                raise
            except Exception as exc:  # noqa: BLE001 - any failure of a job fails the batch, named
                batch.fail(index, exc)
                return _SKIPPED
            finally:
                batch.states[index] = "done"
            batch.results[index] = result
            return result
        return go

    def poll():
        hooks.poll()
        snapshot = dict(batch.states)  # workers update states while we read
        running = {k: s for k, s in snapshot.items() if s != "done"}
        lines = [f"{control.vendor}: {len(snapshot) - len(running)}/{len(jobs)} done, {len(running)} running, "
                 f"{control.elapsed():.0f} s"]
        if batch.failure is not None:
            lines[0] += f"; {labels[batch.failure[0]]} failed: finishing the others"
        lines += [f"{labels[k]}: {s}" for k, s in sorted(running.items()) if s != "sending"]
        hooks.status("\n".join(lines))

    def on_done(index, result):
        nonlocal finished
        if result is not _SKIPPED:
            finished += 1
            hooks.progress(finished, len(jobs))

    hooks.progress(0, len(jobs))
    try:
        results = transport.run_jobs([wrap(k) for k in range(len(jobs))], control=control, max_workers=concurrency,
                                     poll=poll, on_done=on_done)
    except Cancelled:
        raise
    except VendorError as exc:  # the run's deadline backstop: a job was stuck past every timeout (now aborted)
        if batch.failure is None:  # it is the first job that neither returned nor failed
            batch.fail(next((k for k in sorted(batch.states) if k not in batch.results), 0), exc)
    if batch.failure is not None:
        index, exc = batch.failure
        raise _batch_error(batch, index, exc, advice) from exc
    hooks.status(f"{control.vendor}: {len(jobs)}/{len(jobs)} done in {control.elapsed():.1f} s")
    return results


def _batch_error(batch: _Batch, index: int, cause: Exception, advice) -> BatchError:
    label = batch.labels[index]
    if isinstance(cause, VendorError) and not (cause.request_id or cause.task_id):
        own = [s for s in batch.spends if s.label == label]  # the backstop's Timeout: name the stuck job's id
        if own:
            setattr(cause, "task_id" if own[-1].kind == "task id" else "request_id", own[-1].id)
    spent = batch.unreturned(label, cause)
    results = {batch.labels[k]: r for k, r in batch.results.items()}
    return BatchError(label, cause, spent, results, advice(spent) if spent else "")
