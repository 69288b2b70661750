"""Running a batch of vendor jobs for one node run: bounded concurrency, a status line, progress,
interrupt polling, and errors that name the batch item. Shared by both vendors, with the options
every run has and the typed result a run returns."""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, NamedTuple

from . import imagecodec, transport
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

    def validate(self) -> None:
        """Checked before anything is encoded or sent."""
        for name in ("keep_original", "concurrency", "image_format"):
            self.widgets[name].check(getattr(self, name), self.vendor)
        t = self.timeout_s  # any positive time here: the widgets' 10 s minimum is the nodes' own
        if isinstance(t, bool) or not isinstance(t, (int, float)) or not (math.isfinite(t) and t > 0):
            raise InputError(f"timeout_s is {t!r}; it must be a positive number of seconds")


class RunInfo:
    """Base of a run's typed report (dataclasses): the node's `info` JSON is made from it at the edge.
    Fields that are None are left out; `vendor` comes first, as the node's info JSON always had it."""

    def to_dict(self) -> dict:
        plain = _plain(self)
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


Job = Callable[[Callable[[str], None]], object]  # a job gets a `report(state_text)` callback


def run_batch(jobs: list[Job], labels: list[str], *, control: transport.RunControl, concurrency: int,
              hooks: RunHooks) -> list:
    """Results in job order; a failed job raises ItemError naming its label (its error is the cause).

    Cancelled, and what the front end's own hooks raise (ComfyUI's interrupt), pass unchanged."""
    states: dict[int, str] = {}
    finished = 0

    def wrap(index: int):
        def go():
            states[index] = "sending"
            result = jobs[index](lambda text: states.__setitem__(index, text))
            states[index] = "done"
            return result
        return go

    def poll():
        hooks.poll()
        snapshot = dict(states)  # workers update states while we read
        running = {k: s for k, s in snapshot.items() if s != "done"}
        lines = [f"{control.vendor}: {len(snapshot) - len(running)}/{len(jobs)} done, {len(running)} running, "
                 f"{control.elapsed():.0f} s"]
        lines += [f"{labels[k]}: {s}" for k, s in sorted(running.items()) if s != "sending"]
        hooks.status("\n".join(lines))

    def on_done(index, _result):
        nonlocal finished
        finished += 1
        hooks.progress(finished, len(jobs))

    hooks.progress(0, len(jobs))
    try:
        results = transport.run_jobs([wrap(k) for k in range(len(jobs))], control=control, max_workers=concurrency,
                                poll=poll, on_done=on_done)
    except Cancelled:
        raise
    except (VendorError, imagecodec.DecodeError) as exc:  # a job's, or the run's deadline backstop
        raise ItemError(labels[getattr(exc, "job_index", 0)], exc) from exc
    except Exception as exc:
        if not hasattr(exc, "job_index"):  # raised by a hook, not by a job
            raise
        raise ItemError(labels[exc.job_index], exc) from exc
    hooks.status(f"{control.vendor}: {len(jobs)}/{len(jobs)} done in {control.elapsed():.1f} s")
    return results
