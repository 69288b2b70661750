"""One DashScopeOutpaint run, ComfyUI-free: validate and fit each image into DashScope's limits ->
upload (oss://) -> create task -> poll -> download -> map back to the input's own pixel scale ->
optional paste-back -> RunResult: IMAGE batch, MASK of the generated area, typed info
(DashScopeRunInfo; the node turns it into its info JSON)."""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass, field, replace
from typing import ClassVar, NamedTuple

import torch

from . import (
    canvas,
    composite,
    geometry,
    imagecodec,
    output_scale,
    paid_guard,
    transport,
    widgets,
)
from .credentials import DashScopeCredentials
from .dashscope import (
    DashScopeClient,
    DashScopeConfig,
    DashScopeParams,
    TaskResult,
    upload_name,
)
from .dashscope_answers import SUCCEEDED, TERMINAL, VENDOR, task_error
from .errors import Cancelled, InputError, VendorError
from .runner import (
    CommonOptions,
    JobReport,
    RunHooks,
    RunInfo,
    RunResult,
    Spend,
    Stopped,
    implausibly_small,
    reduced_upload_note,
    run_batch,
    shrunk_note,
    with_status_note,
)

# DashScope's task ids are UUIDs (spec B.4 examples); a resumed id is pasted into /tasks/{id}[/cancel]
TASK_ID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
OFFSETS = ("left_offset", "right_offset", "top_offset", "bottom_offset")
WATERMARK_ZONE = (0.3, 0.1)  # bottom-left width, height fractions left to the vendor when it adds its mark


_W = widgets.DASHSCOPE
log = logging.getLogger(__name__)


@dataclass(kw_only=True)
class DashScopeOptions(CommonOptions):
    widgets: ClassVar = _W
    vendor: ClassVar = VENDOR
    keep_original: bool = _W["keep_original"].default
    timeout_s: float = _W["timeout_s"].default
    concurrency: int = _W["concurrency"].default  # the vendor's concurrent-task limit has been 1 and 5
    image_format: str = _W["image_format"].default
    output_resolution: str = _W["output_resolution"].default
    resume_task_ids: list[str] = field(default_factory=list)  # fetch these tasks instead of creating new ones

    def validate(self) -> None:
        super().validate()
        if not isinstance(self.resume_task_ids, list) or \
                not all(isinstance(t, str) and t for t in self.resume_task_ids):
            raise InputError("resume_task_ids must be a list of task ids (text)")
        for task_id in self.resume_task_ids:  # each goes into a URL path: nothing but an id may pass
            if not TASK_ID.fullmatch(task_id):
                raise InputError(f"resume_task_ids: {task_id[:50]!r} is not a DashScope task id (a UUID such as "
                                 "d76ec1e8-ea27-4038-8913-235c88ef0f70, from the info output of an earlier run)")


@dataclass
class DashScopeItemInfo:
    """One task's line in the run's info."""

    image: int
    task_id: str
    request_id: str
    polls: int
    seconds_after_submit: float
    mode: str
    sent: str
    vendor_output: str
    output: str
    parameters_sent: dict
    note: str | None = None  # the output size differs from the documented rules
    input_notes: list[str] | None = None  # what was done to fit the vendor's limits; what its docs advise against
    resized_to: str | None = None  # the output was resized to the batch's size
    from_cache: str | None = None  # served by the result cache: its original task id, when it was paid
    resolution_note: str | None = None  # why output_resolution = original was not applied


@dataclass
class DashScopeRunInfo(RunInfo):
    mode: str
    angle: int
    watermark: bool
    keep_original: bool
    results: list[DashScopeItemInfo]
    vendor: str = VENDOR
    output_resolution: str = output_scale.ORIGINAL


@dataclass
class _Item:
    payload: bytes
    sent_size: tuple[int, int]
    params: DashScopeParams  # offsets in sent pixels
    plan: geometry.Placement  # expected output geometry, sent pixels
    notes: list[str]
    at_input_scale: geometry.Placement | None = None  # output_resolution = original: the plan in input pixels
    resolution_note: str | None = None


def parse_task_ids(text: str) -> list[str]:
    return [t.strip() for t in (text or "").replace("\n", ",").split(",") if t.strip()]


def prepare_items(image: torch.Tensor, params: DashScopeParams, config: DashScopeConfig,
                  image_format: str) -> list[_Item]:
    """Fit every image into 512..4096 px and 10 MB and check the plan, before any paid call.
    Any IMAGE is taken; what is sent is its RGB (canvas.rgb_image), and the notes say what changed."""
    image, input_note = canvas.rgb_image(image)
    _, height, width, _ = image.shape
    params.validate()
    params.plan(width, height)  # the user's values, in the user's pixels, must be valid as given
    warnings = params.warnings()
    for warning in warnings:
        log.warning("DashScope: %s", warning)
    items = []
    for b in range(image.shape[0]):
        arr, notes = imagecodec.image_to_uint8(image[b:b + 1])[0], [input_note] * bool(input_note) + warnings
        s = geometry.dashscope_input_scale(width, height)
        if s != 1.0:
            arr = imagecodec.resize_u8(arr, round(width * s), round(height * s))
            notes.append(f"input {width}x{height} scaled x{s:.3f} to {arr.shape[1]}x{arr.shape[0]} to meet "
                         f"DashScope's {geometry.DASHSCOPE_MIN_SIDE}-{geometry.DASHSCOPE_MAX_SIDE} px per side; "
                         "offsets were scaled with it")
        data, sent, _ = encoded = imagecodec.encode_within(arr, image_format, config.max_input_bytes,
                                                           min_side=geometry.DASHSCOPE_MIN_SIDE)
        if sent.shape != arr.shape:
            notes.append(shrunk_note(arr, encoded, image_format, config.max_input_bytes,
                                            "DASHSCOPE_MAX_INPUT_MB"))
        sw, sh = sent.shape[1], sent.shape[0]
        scale = sw / width
        sent_params = replace(params, **{name: _scaled_offset(getattr(params, name), scale) for name in OFFSETS})
        items.append(_Item(data, (sw, sh), sent_params, sent_params.plan(sw, sh), notes))
    return items


def plan_output_scale(items: list[_Item], params: DashScopeParams, width: int, height: int,
                      output_resolution: str) -> None:
    """Before paying: each item's output planned in the input's own pixels, unless over output_scale's limit."""
    if output_resolution != output_scale.ORIGINAL:
        return
    planned = params.plan(width, height)
    note = output_scale.over_limit(planned.canvas_width, planned.canvas_height)
    for item in items:
        item.at_input_scale, item.resolution_note = (None, note) if note else (planned, None)


def _scaled_offset(offset: int, scale: float) -> int:
    """An offset in sent pixels; one the user gave stays at least 1 px (0 would make it a no-op)."""
    return max(1, round(offset * scale)) if offset else 0


def resume_hint(task_id: str, outcome: str) -> str:
    """What to do about a task the run gave up on (the node's resume_task_ids takes the id as is)."""
    return f"task {outcome}; if it still finishes, put {task_id} in resume_task_ids to fetch it without paying again"


def resume_advice(spent: list[Spend]) -> str:
    """For a failed batch: how to fetch the other images' tasks without paying for them again."""
    tasks = [s for s in spent if s.kind == "task id"]
    if not tasks:
        return ""
    return (f"to fetch {'that task' if len(tasks) == 1 else 'those tasks'} later without paying again, run "
            f"{', '.join(s.label for s in tasks)} as a batch of {'its' if len(tasks) == 1 else 'their'} own with "
            f"resume_task_ids = {','.join(s.id for s in tasks)}")


class _Done(NamedTuple):
    """One job's result: the finished task (its image bytes dropped once read) and its pixels, decoded in
    the worker; assemble() writes them into the output batch."""

    result: TaskResult
    pixels: object  # imagecodec.decode_pixels: [H,W,3] uint8, as the vendor returned it


def _job(client: DashScopeClient, item: _Item, index: int, fmt: str, resume_id: str | None,
         report: JobReport, guard: paid_guard.RunGuard) -> _Done:
    def unless_stopping(text: str) -> None:  # before the task exists, a retry wait is a safe place to stop
        if report.stopping:
            raise Stopped()
        report(text)

    journaled = None if resume_id else guard.journaled(index)  # created by a run that did not get its result
    if resume_id or journaled:
        task_id, request_id = journaled or (resume_id, "")
    else:
        report("; ".join(item.params.warnings()) + ": uploading" if item.params.warnings() else "uploading")
        url = client.upload(item.payload, upload_name(index, fmt), on_wait=unless_stopping)
        unless_stopping("submitting")
        try:
            task_id, request_id = client.create(url, item.params, on_wait=unless_stopping)
        except VendorError as exc:
            if exc.task_id:  # a malformed answer that still names its task: it may run, and be billed
                raise _naming_task(exc, exc.task_id, resume_hint(exc.task_id, client.cancel(exc.task_id)))
            raise
        guard.created(index, task_id, request_id)  # durable before polling: a crash now costs no new task
    report.spend("task id", task_id)
    created = time.monotonic()  # for a resumed task: when we started watching it

    def on_state(state: str) -> None:
        report(f"task {task_id}: {state} {time.monotonic() - created:.0f} s")
        if report.stopping and state not in TERMINAL:
            raise Stopped()

    try:
        answer, polls = client.wait(task_id, on_state, on_wait=report, created=created)
    except Stopped:  # another image failed: stop paying for this one if the vendor still allows it
        outcome = client.cancel(task_id)
        report.spend("task id", task_id, f"task {outcome}" + ("" if outcome == "cancelled" else
                                                             ": it may still finish and be billed"),
                     billed=False if outcome == "cancelled" else None)
        raise
    except BaseException as exc:  # noqa: BLE001 - interrupted, timed out, malformed, a bug: stop paying if we can
        hint = resume_hint(task_id, client.cancel(task_id))
        if isinstance(exc, Cancelled) or not isinstance(exc, Exception):  # an interrupt shows no error: log it
            log.warning("DashScope: run interrupted while waiting for task %s: %s", task_id, hint)
        raise _naming_task(exc, task_id, hint)
    if answer.task_status != SUCCEEDED:
        guard.ended(index)
        raise task_error(answer, task_id)  # finished: nothing to cancel
    try:
        image = client.download(answer.output_image_url, on_wait=report,
                                expected=(item.plan.canvas_width, item.plan.canvas_height))
    except Exception as exc:  # noqa: BLE001 - the task is done and billed; its result can be fetched again
        raise _naming_task(exc, task_id, f"the task succeeded: put {task_id} in resume_task_ids to fetch its "
                           "result again without paying", billed=True)
    result = TaskResult(task_id, image, answer, request_id, polls, time.monotonic() - created)
    done = _decoded(result, item)
    guard.paid(index, task_id, image, request_id=request_id)
    return done


def _cached(entry, item: _Item) -> _Done:
    result = TaskResult(entry.id, entry.image, None, entry.extra.get("request_id", ""))
    return _decoded(result, item)


def _decoded(result: TaskResult, item: _Item) -> _Done:
    """The result's pixels, or the VendorError that says why it is not usable."""
    try:
        pixels = imagecodec.decode_pixels(result.image)
    except imagecodec.DecodeError as exc:
        raise VendorError(VENDOR, "BadResult", "the result image could not be read", message=str(exc),
                          task_id=result.task_id, billed=True) from exc
    out_h, out_w = pixels.shape[:2]
    expected = (item.plan.canvas_width, item.plan.canvas_height)
    if implausibly_small((out_w, out_h), expected):
        raise VendorError(VENDOR, "BadResult", f"the vendor's image is {out_w}x{out_h}, far from the {expected[0]}x"
                          f"{expected[1]} expected: not a usable result", task_id=result.task_id, billed=True)
    return _Done(replace(result, image=b""), pixels)


def _naming_task(exc: BaseException, task_id: str, hint: str, billed: bool | None = None) -> BaseException:
    """`exc`, naming the task and what to do about it; an unexpected exception becomes a VendorError.
    Cancelled and the front end's own interrupts pass as they are."""
    if isinstance(exc, VendorError):
        exc.task_id, exc.hint = task_id, hint
        exc.billed = exc.billed if billed is None else billed
        return exc
    if not isinstance(exc, Exception) or isinstance(exc, Cancelled):
        return exc
    error = VendorError(VENDOR, "ClientError", f"the run failed on this task ({type(exc).__name__}: {exc})",
                        hint=hint, task_id=task_id, billed=billed)
    error.__cause__ = exc
    return error


def cost_guard(items: list[_Item], credentials: DashScopeCredentials, options: DashScopeOptions,
               control: transport.RunControl | None = None) -> paid_guard.RunGuard:
    """The run's cache keys, journal and ledger; also the CLI's --dry-run."""
    return paid_guard.for_dashscope(credentials, [(item.payload, item.params.parameters()) for item in items],
                                    bool(options.resume_task_ids), options.use_cache, control)


def run(image: torch.Tensor, params: DashScopeParams, credentials: DashScopeCredentials,
        options: DashScopeOptions = DashScopeOptions(), config: DashScopeConfig = DashScopeConfig(),
        hooks: RunHooks = RunHooks()) -> RunResult:
    options.validate()
    items = prepare_items(image, params, config, options.image_format)
    hooks = with_status_note(hooks, reduced_upload_note([(tuple(image.shape[2:0:-1]), item.sent_size)
                                                         for item in items]))
    image, _ = canvas.rgb_image(image)  # what was sent, and what the paste-back uses (a view)
    plan_output_scale(items, params, image.shape[2], image.shape[1], options.output_resolution)
    resume = options.resume_task_ids
    if resume and len(resume) != len(items):
        raise InputError(f"{len(resume)} task id(s) given in resume_task_ids for a batch of {len(items)} "
                         "image(s): give one per image, in batch order")
    control = transport.RunControl(options.timeout_s, VENDOR)
    with cost_guard(items, credentials, options, control) as guard:  # checked and held
        session = transport.new_session()
        client = DashScopeClient(credentials, session, control, config)
        client.cancel = guard.watch_cancel(client.cancel)
        jobs = [guard.wrap(i, lambda report, i=i: _job(client, items[i], i, options.image_format,
                                                       resume[i] if resume else None, report, guard),
                           lambda entry, i=i: _cached(entry, items[i])) for i in range(len(items))]
        try:
            done = run_batch(jobs, [f"image {i + 1}" for i in range(len(items))], control=control,
                             concurrency=options.concurrency, hooks=hooks, advice=resume_advice)
        finally:
            client.forget_running()
            session.close()
        return guard.finish(assemble(image, items, done, params, options), hooks)


def assemble(image: torch.Tensor, items: list[_Item], done: list[_Done], params: DashScopeParams,
             options: DashScopeOptions) -> RunResult:
    """At the input's own scale (output_resolution original) or as the vendor returned it, paste back, report;
    `image` is the RGB input (rgb_image), so nothing here depends on the input's shape."""
    batch, report = composite.BatchOutput(len(items)), []
    _, height, width, _ = image.shape
    seam = max(2, round(0.02 * min(width, height))) if options.keep_original else 0  # in the input's pixels
    input_plan = params.plan(width, height)
    for i, (item, (result, pixels)) in enumerate(zip(items, done)):
        out_h, out_w = pixels.shape[:2]
        expected = (item.plan.canvas_width, item.plan.canvas_height)
        planned, shape_note = output_scale.target(item.at_input_scale, (out_w, out_h))
        if planned is not None:  # output_resolution = original: the plan in the input's pixels, the original 1:1
            placement, tw, th = planned, planned.canvas_width, planned.canvas_height
        else:  # the vendor's size (the upload's pixels): the plan mapped onto it, the seam with it
            placement, tw, th = geometry.scale_placement(item.plan, out_w, out_h), out_w, out_h
        generated = batch.decoded(i, pixels, tw, th)
        done[i] = pixels = None  # decoded into the batch: let them go before the next item
        item_seam = max(2, round(seam * tw / input_plan.canvas_width)) if seam else 0
        if params.angle:  # the original is the rotated image; the corners around it are generated
            original, hole = composite.rotated_source(image[i:i + 1], params.angle, placement.width,
                                                      placement.height, item_seam)
            mask = torch.ones((1, th, tw), dtype=generated.dtype, device=generated.device)
            mask[:, placement.y:placement.y + placement.height, placement.x:placement.x + placement.width] = hole
        else:
            original = image[i:i + 1]
            mask, _ = canvas.build_mask(placement, 1, item_seam, dtype=generated.dtype, device=generated.device,
                                        out=batch.mask_slot(i, th, tw))
        if options.keep_original and params.add_watermark:
            # the vendor's "Generated by AI" mark sits bottom-left, often over the original: pasting the
            # original back must not cut it (its exact size is unpublished, so the zone is generous)
            zone_h, zone_w = round(th * WATERMARK_ZONE[1]), round(tw * WATERMARK_ZONE[0])
            mask[:, th - zone_h:, :zone_w] = 1
        out = composite.paste_original(generated, original, placement, mask) if options.keep_original else generated
        entry = DashScopeItemInfo(i + 1, result.task_id, result.request_id, result.polls,
                                  round(result.submitted_s, 2), params.mode,
                                  f"{item.sent_size[0]}x{item.sent_size[1]}", f"{out_w}x{out_h}", f"{tw}x{th}",
                                  item.params.parameters(), input_notes=item.notes or None,
                                  resolution_note=item.resolution_note or shape_note)
        if expected != (out_w, out_h):
            entry.note = (f"expected {expected[0]}x{expected[1]} from the documented rules; the mask was scaled "
                          "onto the real size")
        entry.resized_to = batch.put(i, out, mask)
        report.append(entry)
    info = DashScopeRunInfo(params.mode, params.angle, params.add_watermark, options.keep_original, report,
                            output_resolution=options.output_resolution)
    return RunResult(batch.images, batch.masks, info)
