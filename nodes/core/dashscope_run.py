"""One DashScopeOutpaint run, ComfyUI-free: validate and fit each image into DashScope's limits ->
upload (oss://) -> create task -> poll -> download -> map back to the input's own pixel scale ->
optional paste-back -> IMAGE batch, MASK of the generated area, info JSON."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field, replace

import torch

from . import canvas, composite, geometry, imagecodec, transport
from .credentials import DashScopeCredentials
from .dashscope import (
    VENDOR,
    DashScopeClient,
    DashScopeConfig,
    DashScopeParams,
    TaskResult,
    task_error,
    upload_name,
)
from .errors import Cancelled, InputError, ItemError, VendorError
from .runner import RunHooks, run_batch

WATERMARK_ZONE = (0.3, 0.1)  # bottom-left width, height fractions left to the vendor when it adds its mark


@dataclass
class DashScopeOptions:
    keep_original: bool = True
    timeout_s: float = 300.0
    concurrency: int = 2  # the vendor's concurrent-task limit has been 1 and 5 in its docs
    image_format: str = "png"
    resume_task_ids: list[str] = field(default_factory=list)  # fetch these tasks instead of creating new ones


@dataclass
class _Item:
    payload: bytes
    scale: float  # sent size / input size
    sent_size: tuple[int, int]
    params: DashScopeParams  # offsets in sent pixels
    plan: geometry.Placement  # expected output geometry, sent pixels
    notes: list[str]


def parse_task_ids(text: str) -> list[str]:
    return [t.strip() for t in (text or "").replace("\n", ",").split(",") if t.strip()]


def prepare_items(image: torch.Tensor, params: DashScopeParams, config: DashScopeConfig,
                  image_format: str) -> list[_Item]:
    """Fit every image into 512..4096 px and 10 MB and check the plan, before any paid call."""
    image = canvas.check_image(image)
    if image_format not in ("png", "jpeg"):
        raise InputError(f"image_format {image_format!r}: use png or jpeg")
    _, height, width, _ = image.shape
    params.validate()
    params.plan(width, height)  # the user's values, in the user's pixels, must be valid as given
    items = []
    for b in range(image.shape[0]):
        arr, notes = imagecodec.image_to_uint8(image[b:b + 1])[0], []
        s = geometry.dashscope_input_scale(width, height)
        if s != 1.0:
            arr = imagecodec.resize_u8(arr, round(width * s), round(height * s))
            notes.append(f"input {width}x{height} scaled x{s:.3f} to {arr.shape[1]}x{arr.shape[0]} to meet "
                         f"DashScope's {geometry.DASHSCOPE_MIN_SIDE}-{geometry.DASHSCOPE_MAX_SIDE} px per side; "
                         "the result is scaled back")
        data, sent = imagecodec.encode_within(arr, image_format, config.max_input_bytes,
                                              min_side=geometry.DASHSCOPE_MIN_SIDE)
        if sent.shape != arr.shape:
            notes.append(f"shrunk to {sent.shape[1]}x{sent.shape[0]} to stay under "
                         f"{config.max_input_bytes / 2**20:.0f} MB")
        sw, sh = sent.shape[1], sent.shape[0]
        scale = sw / width
        sent_params = replace(params, left_offset=round(params.left_offset * scale),
                              right_offset=round(params.right_offset * scale),
                              top_offset=round(params.top_offset * scale),
                              bottom_offset=round(params.bottom_offset * scale))
        items.append(_Item(data, scale, (sw, sh), sent_params, sent_params.plan(sw, sh), notes))
    return items


def _job(client: DashScopeClient, item: _Item, index: int, fmt: str, resume_id: str | None, report) -> TaskResult:
    if resume_id:
        task_id, request_id = resume_id, ""
    else:
        report("uploading")
        url = client.upload(item.payload, upload_name(index, fmt), on_wait=report)
        report("submitting")
        task_id, request_id = client.create(url, item.params, on_wait=report)
    created = time.monotonic()  # for a resumed task: when we started watching it

    def on_state(state: str) -> None:
        report(f"task {task_id}: {state} {time.monotonic() - created:.0f} s")

    try:
        answer, polls = client.wait(task_id, on_state, on_wait=report, created=created)
    except (Cancelled, VendorError) as exc:
        outcome = client.cancel(task_id)  # interrupted or timed out: stop paying for it if we can
        if isinstance(exc, VendorError):
            exc.task_id = task_id
            exc.message = (f"{exc.message} " if exc.message else "") + \
                f"task {outcome}; if it still finishes, put {task_id} in resume_task_ids to fetch it unpaid"
        raise
    if answer["output"]["task_status"] != "SUCCEEDED":
        raise task_error(answer, task_id)
    url = answer["output"].get("output_image_url")
    if not url:
        raise VendorError(VENDOR, "NoResult", "the task succeeded but returned no image link", task_id=task_id,
                          billed=True)
    try:
        image = client.download(url, on_wait=report)
    except VendorError as exc:
        exc.task_id, exc.billed = task_id, True
        raise
    return TaskResult(task_id, image, request_id, polls, time.monotonic() - created, answer["output"])


def run(image: torch.Tensor, params: DashScopeParams, credentials: DashScopeCredentials,
        options: DashScopeOptions = DashScopeOptions(), config: DashScopeConfig = DashScopeConfig(),
        hooks: RunHooks = RunHooks()) -> tuple[torch.Tensor, torch.Tensor, str]:
    if not 1 <= options.concurrency <= 16:
        raise InputError(f"concurrency is {options.concurrency}; use 1 to 16")
    if options.timeout_s <= 0:
        raise InputError("timeout_s must be positive")
    items = prepare_items(image, params, config, options.image_format)
    resume = options.resume_task_ids
    if resume and len(resume) != len(items):
        raise InputError(f"{len(resume)} task id(s) given in resume_task_ids for a batch of {len(items)} "
                         "image(s): give one per image, in batch order")
    control = transport.RunControl(options.timeout_s, VENDOR)
    session = transport.new_session()
    client = DashScopeClient(credentials, session, control, config)
    jobs = [lambda report, i=i: _job(client, items[i], i, options.image_format, resume[i] if resume else None,
                                     report) for i in range(len(items))]
    try:
        results = run_batch(jobs, [f"image {i + 1}" for i in range(len(items))], control=control,
                            concurrency=options.concurrency, hooks=hooks)
    finally:
        session.close()
    return assemble(image, items, results, params, options)


def assemble(image: torch.Tensor, items: list[_Item], results: list[TaskResult], params: DashScopeParams,
             options: DashScopeOptions) -> tuple[torch.Tensor, torch.Tensor, str]:
    batch, report = composite.BatchOutput(len(items)), []
    _, height, width, _ = image.shape
    seam = max(2, round(0.02 * min(width, height))) if options.keep_original else 0
    for i, (item, result) in enumerate(zip(items, results)):
        try:
            generated = imagecodec.decode_image(result.image)
        except imagecodec.DecodeError as exc:
            raise ItemError(f"image {i + 1}", VendorError(VENDOR, "BadResult", "the result image could not be read",
                                                          message=str(exc), task_id=result.task_id, billed=True))
        out_h, out_w = generated.shape[1:3]
        # back to the input's own pixel scale, so the expansion is what was asked in the user's pixels
        tw, th = round(out_w / item.scale), round(out_h / item.scale)
        generated = composite.resize_image(generated, tw, th)
        placement = geometry.scale_placement(item.plan, tw, th)
        if params.angle:  # the original is the rotated image; the corners around it are generated
            original, hole = composite.rotated_source(image[i:i + 1], params.angle, placement.width,
                                                      placement.height, seam)
            mask = torch.ones((1, th, tw), dtype=generated.dtype, device=generated.device)
            mask[:, placement.y:placement.y + placement.height, placement.x:placement.x + placement.width] = hole
        else:
            original = image[i:i + 1]
            mask, _ = canvas.build_mask(placement, 1, seam, dtype=generated.dtype, device=generated.device)
        if options.keep_original and params.add_watermark:
            # the vendor's "Generated by AI" mark sits bottom-left, often over the original: pasting the
            # original back must not cut it (its exact size is unpublished, so the zone is generous)
            zone_h, zone_w = round(th * WATERMARK_ZONE[1]), round(tw * WATERMARK_ZONE[0])
            mask[:, th - zone_h:, :zone_w] = 1
        out = composite.paste_original(generated, original, placement, mask) if options.keep_original else generated
        entry = {"image": i + 1, "task_id": result.task_id, "request_id": result.request_id, "polls": result.polls,
                 "seconds_after_submit": round(result.submitted_s, 2), "mode": params.mode,
                 "sent": f"{item.sent_size[0]}x{item.sent_size[1]}", "vendor_output": f"{out_w}x{out_h}",
                 "output": f"{tw}x{th}", "parameters_sent": item.params.parameters()}
        if (item.plan.canvas_width, item.plan.canvas_height) != (out_w, out_h):
            entry["note"] = (f"expected {item.plan.canvas_width}x{item.plan.canvas_height} from the documented "
                             "rules; the mask was scaled onto the real size")
        if item.notes:
            entry["input_notes"] = item.notes
        batch.put(i, out, mask, entry)
        report.append(entry)
    info = {"vendor": VENDOR, "mode": params.mode, "angle": params.angle, "watermark": params.add_watermark,
            "keep_original": options.keep_original, "results": report}
    return batch.images, batch.masks, json.dumps(info, ensure_ascii=False, indent=1)
