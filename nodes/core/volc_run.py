"""One VolcOutpaint run, ComfyUI-free: validate -> encode payloads -> concurrent vendor calls ->
decode -> optional paste-back -> RunResult: IMAGE batch (item-major), MASK of the generated area,
typed info (VolcRunInfo; the node turns it into its info JSON).
"""

from __future__ import annotations

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
    volc_layout,
    widgets,
)
from .credentials import VolcCredentials
from .errors import InputError, VendorError
from .runner import (
    CommonOptions,
    JobReport,
    RunHooks,
    RunInfo,
    RunResult,
    implausibly_small,
    reduced_upload_note,
    run_batch,
    shrunk_note,
    with_status_note,
)
from .volc import VENDOR, VolcClient, VolcConfig, VolcParams, VolcResult

_W = widgets.VOLC


@dataclass(kw_only=True)
class VolcOptions(CommonOptions):
    widgets: ClassVar = _W
    vendor: ClassVar = VENDOR
    variants: int = _W["variants"].default
    keep_original: bool = _W["keep_original"].default
    timeout_s: float = _W["timeout_s"].default
    concurrency: int = _W["concurrency"].default
    image_format: str = _W["image_format"].default  # of the image/canvas; masks are always PNG
    output_resolution: str = _W["output_resolution"].default

    def validate(self) -> None:
        super().validate()
        _W["variants"].check(self.variants, VENDOR)


@dataclass
class VolcItemInfo:
    """One request's line in the run's info."""

    image: int
    variant: int
    seed: int
    request_id: str
    sent: str
    output: str
    seconds: float
    vendor_time: str
    note: str | None = None  # the output size differs from the documented rule
    input_notes: list[str] | None = None  # what was done to the input to fit the vendor's limits
    resized_to: str | None = None  # the output was resized to the batch's size
    from_cache: str | None = None  # served by the result cache: its original request id, when it was paid
    vendor_output: str | None = None  # the vendor's own size, when output_resolution = original changed it
    resolution_note: str | None = None  # why output_resolution = original was not applied


@dataclass
class VolcRunInfo(RunInfo):
    mode: str  # "ratio" | "canvas"
    keep_original: bool
    results: list[VolcItemInfo]
    vendor: str = VENDOR
    output_resolution: str = output_scale.ORIGINAL


@dataclass
class _Item:
    payload: list[bytes]
    sent_size: tuple[int, int]
    expected: tuple[int, int]  # the output size by the documented rule
    original: torch.Tensor  # [1,H,W,3], a view of the input (no copy)
    placement: geometry.Placement | None  # ratio mode: where the original lands on the vendor's canvas
    mask: torch.Tensor | None  # canvas mode: [1,H,W], 1 = generate
    notes: list[str] = field(default_factory=list)
    # output_resolution = original: the input's box on the output canvas at its own scale (ratio mode),
    # or the canvas itself (canvas mode); None = the vendor's size
    at_input_scale: geometry.Placement | None = None
    resolution_note: str | None = None


class _Done(NamedTuple):
    """One job's result: the vendor's answer (its image bytes dropped once read) and its pixels, decoded
    in the worker; assemble() writes them into the output batch."""

    result: VolcResult
    pixels: object  # imagecodec.decode_pixels: [H,W,3] uint8 (a quarter of a float image)


def _fit_input(arr, config: VolcConfig) -> tuple[object, list[str]]:
    h, w = arr.shape[:2]
    tw, th = geometry.fit_within(w, h, config.max_input_side, config.max_input_side)
    if (tw, th) == (w, h):
        return arr, []
    return imagecodec.resize_u8(arr, tw, th), [f"input {w}x{h} scaled to {tw}x{th} (limit {config.max_input_side} px)"]


def _encode(arr, fmt: str, config: VolcConfig, notes: list[str]):
    encoded = imagecodec.encode_within(arr, fmt, config.max_input_bytes)
    if encoded.array.shape != arr.shape:
        notes.append(shrunk_note(arr, encoded, fmt, config.max_input_bytes, "VOLC_MAX_INPUT_MB"))
    return encoded.data, encoded.array


def _check_size(width: int, height: int, config: VolcConfig, canvas_mode: bool) -> None:
    """Before any conversion: a tiny input is not worth paying for, a huge canvas not worth allocating."""
    if min(width, height) < config.min_input_side:
        raise InputError(f"the image is {width}x{height} px; Volcengine is sent images of at least "
                         f"{config.min_input_side} px a side (VOLC_MIN_INPUT_SIDE): there is nothing to extend")
    if canvas_mode and max(width, height) > geometry.MAX_SIDE:
        raise InputError(f"the canvas (the image, in canvas mode) is {width}x{height} px; at most {geometry.MAX_SIDE} "
                         "px per side is allowed. Use less expansion or downscale the image first.")


def prepare_items(image: torch.Tensor, mask: torch.Tensor | None, params: VolcParams, config: VolcConfig,
                  image_format: str) -> list[_Item]:
    """Encode every batch item before the first paid call, so bad input costs nothing."""
    image, input_note = canvas.rgb_image(image)
    batch, height, width, _ = image.shape
    items = []
    if mask is None:  # ratio mode: the vendor pads; we know where the original lands
        placement = geometry.pad_fractions(width, height, params.left, params.top, params.right, params.bottom)
        _check_size(width, height, config, False)
        for b in range(batch):
            arr, notes = _fit_input(imagecodec.image_to_uint8(image[b:b + 1])[0], config)
            data, sent = _encode(arr, image_format, config, notes)
            sent_size = (sent.shape[1], sent.shape[0])
            _, expected = geometry.volc_ratio_output(*sent_size, params.left, params.top, params.right,
                                                     params.bottom, params.max_width, params.max_height)
            items.append(_Item([data], sent_size, expected, image[b:b + 1], placement, None,
                               [input_note] * bool(input_note) + notes))
        return items
    _check_size(width, height, config, True)
    masks, _ = canvas.check_mask(mask, batch, {"the image (the padded canvas)": (height, width)})
    invert = config.mask_white_means == "keep"
    for b in range(batch):
        m = masks[b if masks.shape[0] > 1 else 0][None].to(image.device, torch.float32).clamp(0, 1)
        if float(m.max()) < 0.5:
            raise InputError(f"mask {b + 1} marks nothing to generate (all below 0.5); canvas mode needs the "
                             "new area white (1.0), e.g. the mask output of MaskCanvasBuilder")
        arr, notes = _fit_input(imagecodec.image_to_uint8(image[b:b + 1])[0], config)
        data, sent = _encode(arr, image_format, config, notes)
        sent_size = (sent.shape[1], sent.shape[0])
        mask_u8 = imagecodec.resize_u8(imagecodec.mask_to_uint8(m)[0], *sent_size)
        mask_png = imagecodec.encode_png(255 - mask_u8 if invert else mask_u8)
        expected = geometry.fit_within(*sent_size, params.max_width, params.max_height)  # the canvas sent, fitted
        items.append(_Item([data, mask_png], sent_size, expected, image[b:b + 1], None, m,
                           [input_note] * bool(input_note) + notes))
    return items


def plan_output_scale(items: list[_Item], output_resolution: str) -> None:
    """Before paying: the original-scale canvas of each item, unless it is over output_scale's limit."""
    if output_resolution != output_scale.ORIGINAL:
        return
    for item in items:
        _, height, width, _ = item.original.shape
        planned = item.placement or geometry.Placement(width, height, 0, 0, width, height)
        item.resolution_note = output_scale.over_limit(planned.canvas_width, planned.canvas_height)
        item.at_input_scale = None if item.resolution_note else planned


def _output_box(item: _Item, size: tuple[int, int], params: VolcParams):
    """-> (where the original/canvas lands on the output, the original-scale placement or None, layout note,
    resolution note). Ratio mode: the placement mapped onto the vendor's size; canvas mode: volc_layout's box."""
    if item.placement is not None:
        planned, shape_note = output_scale.target(item.at_input_scale, size)
        return geometry.scale_placement(item.placement, *size), planned, None, item.resolution_note or shape_note
    box, layout_note = volc_layout.locate(item.sent_size, item.expected, size, params.max_width, params.max_height)
    if box is None or item.at_input_scale is None:
        return box, None, layout_note, item.resolution_note
    planned = output_scale.at_input_scale(box, item.at_input_scale.width, item.at_input_scale.height)
    scale_note = output_scale.over_limit(planned.canvas_width, planned.canvas_height)
    return box, None if scale_note else planned, layout_note, scale_note


def _seed(seed: int, variant: int) -> int:
    return seed if seed == -1 else (seed + variant) % 2**31


def _decoded(result: VolcResult, item: _Item) -> _Done:
    """The result's pixels, or the billed VendorError that says why it is not usable."""
    try:
        pixels = imagecodec.decode_pixels(result.image)
    except imagecodec.DecodeError as exc:
        raise VendorError(VENDOR, "BadResult", "the returned image could not be read", message=str(exc),
                          request_id=result.request_id or None, billed=True) from exc
    height, width = pixels.shape[:2]
    if implausibly_small((width, height), item.expected):
        raise VendorError(VENDOR, "BadResult", f"the vendor's image is {width}x{height}, far from the "
                          f"{item.expected[0]}x{item.expected[1]} expected: not a usable result",
                          request_id=result.request_id or None, billed=True)
    return _Done(replace(result, image=b""), pixels)


def cost_guard(items: list[_Item], params: VolcParams, credentials: VolcCredentials, options: VolcOptions,
               config: VolcConfig, control: transport.RunControl | None = None) -> paid_guard.RunGuard:
    """The run's cache keys, journal and ledger (item-major jobs, as run() sends them); also the CLI's --dry-run."""
    return paid_guard.for_volc(credentials, [(item.payload, _seed(params.seed, v)) for item in items
                                             for v in range(options.variants)], params, config, options.use_cache,
                               control)


def run(image: torch.Tensor, mask: torch.Tensor | None, params: VolcParams, credentials: VolcCredentials,
        options: VolcOptions = VolcOptions(), config: VolcConfig = VolcConfig(),
        hooks: RunHooks = RunHooks()) -> RunResult:
    canvas_mode = mask is not None
    params.validate(canvas_mode)
    options.validate()
    items = prepare_items(image, mask, params, config, options.image_format)
    plan_output_scale(items, options.output_resolution)
    hooks = with_status_note(hooks, reduced_upload_note([((item.original.shape[2], item.original.shape[1]),
                                                          item.sent_size) for item in items]))
    jobs = [(i, v) for i in range(len(items)) for v in range(options.variants)]
    control = transport.RunControl(options.timeout_s, VENDOR)
    with cost_guard(items, params, credentials, options, config, control) as guard:  # checked and held
        session = transport.new_session()
        client = VolcClient(credentials, session, control, config)

        def job(index: int, report: JobReport) -> _Done:
            i, v = jobs[index]
            result = client.outpaint(items[i].payload, replace(params, seed=_seed(params.seed, v)), on_wait=report)
            if result.request_id:
                report.spend("request id", result.request_id)
            done = _decoded(result, items[i])
            guard.paid(index, result.request_id, result.image, time_elapsed=result.time_elapsed)
            return done

        def cached(index: int, entry) -> _Done:
            result = VolcResult(entry.image, entry.id, 0.0, entry.extra.get("time_elapsed", ""))
            return _decoded(result, items[jobs[index][0]])

        def label(index: int) -> str:
            i, v = jobs[index]
            return f"image {i + 1}" + (f" variant {v + 1}" if options.variants > 1 else "")

        try:
            done = run_batch([guard.wrap(k, lambda report, k=k: job(k, report), lambda entry, k=k: cached(k, entry))
                              for k in range(len(jobs))],
                             [label(k) for k in range(len(jobs))], control=control,
                             concurrency=options.concurrency, hooks=hooks)
        finally:
            session.close()
        return guard.finish(assemble(items, jobs, done, params, options, canvas_mode), hooks)


def assemble(items: list[_Item], jobs: list[tuple[int, int]], done: list[_Done], params: VolcParams,
             options: VolcOptions, canvas_mode: bool) -> RunResult:
    """Paste-back and the report; nothing here depends on the input's shape (it was made RGB before paying)."""
    batch, report = composite.BatchOutput(len(jobs)), []
    for index, ((i, v), (result, pixels)) in enumerate(zip(jobs, done)):
        height, width = pixels.shape[:2]
        item = items[i]
        box, planned, layout_note, scale_note = _output_box(item, (width, height), params)
        box = planned or box  # output_resolution = original: the input's own scale, the original 1:1 on it
        size = (planned.canvas_width, planned.canvas_height) if planned else (width, height)
        generated = batch.decoded(index, pixels, *size)
        done[index] = pixels = None  # its pixels are in the batch now: let them go before the next item
        out_h, out_w = generated.shape[1:3]
        if item.placement is not None:  # ratio mode: the original's box on the output
            seam = max(2, round(0.02 * min(box.width, box.height))) if options.keep_original else 0
            out_mask, _ = canvas.build_mask(box, 1, seam, dtype=generated.dtype, device=generated.device,
                                            out=batch.mask_slot(index, out_h, out_w))
            out = composite.paste_original(generated, item.original, box, out_mask) if options.keep_original \
                else generated
        else:  # canvas mode: where the canvas landed (the rule, the SDK's 0.1 sides, or unknown)
            out, out_mask = volc_layout.canvas_result(generated, item.original, item.mask, box,
                                                      options.keep_original)
        entry = VolcItemInfo(i + 1, v + 1, _seed(params.seed, v), result.request_id,
                             f"{item.sent_size[0]}x{item.sent_size[1]}", f"{out_w}x{out_h}",
                             round(result.elapsed_s, 2), result.time_elapsed, input_notes=item.notes or None,
                             vendor_output=f"{width}x{height}" if (out_w, out_h) != (width, height) else None,
                             resolution_note=scale_note)
        if item.expected != (width, height):
            entry.note = f"expected {item.expected[0]}x{item.expected[1]} " + (
                "(the canvas sent, fitted into max_width x max_height)" if canvas_mode else "by the documented rule")
            entry.note += f"; {layout_note}" if layout_note else ""
        entry.resized_to = batch.put(index, out, out_mask)
        report.append(entry)
    info = VolcRunInfo("canvas" if canvas_mode else "ratio", options.keep_original, report,
                       output_resolution=options.output_resolution)
    return RunResult(batch.images, batch.masks, info)
