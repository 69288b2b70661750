"""The outpaint command: files run concurrently, each written with its JSON sidecar; Ctrl-C cancels."""

from __future__ import annotations

import dataclasses
import os
import pathlib
import signal
import sys
import threading
import time
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from datetime import datetime, timezone
from typing import TYPE_CHECKING

from ..core.errors import InputError, ItemError, VendorError
from . import cost_commands
from .exits import (
    EXIT_INTERRUPTED,
    EXIT_NO_CREDENTIALS,
    EXIT_OK,
    EXIT_SOME_FAILED,
    EXIT_VENDOR,
    PROG,
    Interrupted,
    NoCredentials,
    UsageError,
)
from .inputs import Source, collect_inputs, read_header
from .output import jsonable, run_output, write_atomic, write_json
from .plan import make_plan
from .progress import Progress
from .store import store_path

if TYPE_CHECKING:
    from ..core.runner import RunHooks
    from .plan import DashScopePlan, VolcPlan


def _describe(source: Source, size: list[int], plan: VolcPlan | DashScopePlan, index: int) -> dict:
    """The head of a sidecar: what was run, where, with which parameters and options."""
    record = {"input": str(source.path), "input_size": size, "vendor": plan.vendor, "backend": plan.backend,
              "base_url": plan.credentials.base_url, "mode": plan.mode, "parameters": jsonable(plan.params),
              "options": jsonable(plan.options_for(index))}
    expansion = getattr(plan, "expansion", None)  # Volcengine ratio mode: its type decides the fractions sent
    if expansion is not None:
        record["expansion"] = jsonable(expansion)
        try:
            record["parameters"] = jsonable(plan.params_for(*size))
        except InputError:  # this file's own error, which its record carries: the plan's values stay
            pass
    return record


def _ids(info: dict) -> dict:
    results = info.get("results", [])
    out = {"request_ids": [r["request_id"] for r in results if r.get("request_id")]}
    tasks = [r["task_id"] for r in results if r.get("task_id")]
    if tasks:
        out["task_ids"] = tasks
    return out


def process_file(source: Source, index: int, plan: VolcPlan | DashScopePlan, out_dir: pathlib.Path,
                 hooks: RunHooks) -> dict:
    """Runs one file; returns its sidecar record (status ok). Raises on failure."""
    from ..core import imagecodec

    started, t0 = datetime.now(timezone.utc), time.monotonic()
    image = imagecodec.decode_image(source.path.read_bytes(), exif_transpose=True)
    record = _describe(source, [image.shape[2], image.shape[1]], plan, index)
    result, canvas = plan.run(image, index, hooks)
    if canvas is not None:
        record["canvas"] = canvas
    images, info = run_output(result)
    outputs = []
    for v in range(images.shape[0]):
        name = f"{source.key}_outpaint" + (f"_v{v + 1}" if images.shape[0] > 1 else "") + ".png"
        write_atomic(out_dir / name, imagecodec.image_to_bytes(images, v, "png"))
        outputs.append({"file": name, "width": int(images.shape[2]), "height": int(images.shape[1])})
    record.update(status="ok", outputs=outputs, **_ids(info), started=started.isoformat(timespec="seconds"),
                  seconds=round(time.monotonic() - t0, 2), info=info)
    return record


def _cause(error: BaseException) -> BaseException:
    return error.cause if isinstance(error, ItemError) else error


def _error_record(source: Source, index: int, plan: VolcPlan | DashScopePlan, error: BaseException) -> dict:
    cause = _cause(error)
    entry = {"message": str(cause), "type": cause.__class__.__name__}
    if isinstance(cause, VendorError):
        entry.update(code=str(cause.code), meaning=cause.meaning, vendor_message=cause.message,
                     http_status=cause.http_status, request_id=cause.request_id, task_id=cause.task_id,
                     billed=cause.billed)
    spent = getattr(error, "spent", None)  # runner.BatchError: paid work of this file that is not returned
    if spent:
        entry["spent"] = [dataclasses.asdict(s) for s in spent]
    return {**_describe(source, [source.width, source.height], plan, index), "status": "failed", "error": entry}


def cmd_outpaint(args) -> int:
    out_dir = pathlib.Path(args.out).expanduser()
    sources = collect_inputs(args.inputs, args.recursive, out_dir)
    for s in sources:
        read_header(s)
    try:
        plan = make_plan(args, sources, store_path(args.store))
    except NoCredentials as exc:
        sys.stderr.write(f"{PROG} outpaint: no credentials: {exc}\n"
                         f"Run `{PROG} check` to see what is found, or add --sandbox to try the whole path "
                         "offline for free.\n")
        return EXIT_NO_CREDENTIALS
    limit = cost_commands.settings().daily_limit_cny  # a malformed cost setting: exit 2, nothing read or sent
    if args.dry_run:
        return cost_commands.dry_run(plan, sources)
    if limit is not None:  # the whole batch, before the first file is sent
        cost_commands.check_limit(cost_commands.preview(plan, sources)[1])
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"--out {out_dir}: {exc}") from None
    return run_files(plan, sources, out_dir, args.quiet)


def run_files(plan: VolcPlan | DashScopePlan, sources: list[Source], out_dir: pathlib.Path, quiet: bool) -> int:
    from ..core.runner import RunHooks

    stop = threading.Event()
    progress = Progress(len(sources), quiet)
    where = "the sandbox (offline, free)" if plan.backend == "sandbox" else f"{plan.credentials.base_url} (billed)"
    progress.message(f"{plan.vendor} {plan.mode}: {len(sources)} file(s) -> {out_dir}/ via {where}")

    def poll():
        if stop.is_set():
            raise Interrupted()

    hooks = RunHooks(poll=poll)
    written, failed, vendor_failed, interrupted = 0, 0, 0, False

    def task(index: int, source: Source):
        if stop.is_set():
            raise Interrupted()
        return process_file(source, index, plan, out_dir, hooks)

    def on_sigint(signum, frame):
        # Only flags the stop (the bookkeeping below is never cut in half); the runs see it at their
        # next poll, cancel their vendor work and end. A second Ctrl-C quits at once.
        if stop.is_set():
            os._exit(EXIT_INTERRUPTED)
        stop.set()

    try:
        previous = signal.signal(signal.SIGINT, on_sigint)
    except ValueError:  # not the main thread (embedded use): KeyboardInterrupt handling below still works
        previous = None
    pool = ThreadPoolExecutor(max_workers=plan.file_workers, thread_name_prefix="cli-file")
    started = time.monotonic()
    futures = {pool.submit(task, i, s): (i, s) for i, s in enumerate(sources)}
    pending = set(futures)
    progress.draw()
    try:
        while pending:
            try:
                done, pending = wait(pending, timeout=0.25, return_when=FIRST_COMPLETED)
            except KeyboardInterrupt:
                stop.set()
                done = set()
            if stop.is_set() and not interrupted:
                interrupted = True
                progress.message("interrupted: cancelling the vendor work in flight (Ctrl-C again to quit "
                                 "at once)", always=True)
            for future in done:
                index, source = futures[future]
                error = future.exception()
                if isinstance(error, KeyboardInterrupt):
                    continue
                if error is None:
                    record = future.result()
                    written += 1
                    for o in record["outputs"]:
                        progress.message(str(out_dir / o["file"]), stream=sys.stdout)
                else:
                    failed += 1
                    progress.failed += 1
                    vendor_failed += isinstance(_cause(error), VendorError)
                    record = _error_record(source, index, plan, error)
                    progress.message(f"FAILED {source.path}: {record['error']['message']}", always=True)
                progress.done += 1
                write_json(out_dir / f"{source.key}_outpaint.json", record)
            progress.draw()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        if previous is not None:
            signal.signal(signal.SIGINT, previous)
        progress.close()
    seconds = time.monotonic() - started
    skipped = len(sources) - written - failed
    summary = f"{written} written, {failed} failed" + (f", {skipped} not done" if skipped else "") + \
        f" in {seconds:.1f} s -> {out_dir}/"
    if interrupted:
        sys.stderr.write(f"interrupted: {summary}\n")
        return EXIT_INTERRUPTED
    if not quiet or failed:
        sys.stderr.write(summary + "\n")
    if failed == 0:
        return EXIT_OK
    if written == 0 and vendor_failed:
        return EXIT_VENDOR
    return EXIT_SOME_FAILED
