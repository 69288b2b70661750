"""Running a batch of vendor jobs for one node run: bounded concurrency, a status line, progress,
interrupt polling, and errors that name the batch item. Shared by both vendors."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from . import imagecodec, transport
from .errors import ItemError, VendorError


@dataclass
class RunHooks:
    """How a front end (ComfyUI node, CLI) watches a run; every hook is optional."""

    poll: Callable[[], None] = lambda: None  # may raise to interrupt (ComfyUI's interrupt)
    status: Callable[[str], None] = lambda text: None
    progress: Callable[[int, int], None] = lambda done, total: None


Job = Callable[[Callable[[str], None]], object]  # a job gets a `report(state_text)` callback


def run_batch(jobs: list[Job], labels: list[str], *, control: transport.RunControl, concurrency: int,
              hooks: RunHooks) -> list:
    """Results in job order; a failed job raises ItemError naming its label."""
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
    except (VendorError, imagecodec.DecodeError) as exc:
        raise ItemError(labels[getattr(exc, "job_index", 0)], exc) from exc
    hooks.status(f"{control.vendor}: {len(jobs)}/{len(jobs)} done in {control.elapsed():.1f} s")
    return results
