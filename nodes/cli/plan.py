"""The outpaint command's plan: every option checked for every file before a credential is looked up or a
byte is sent, then one typed plan per vendor (params, options, config, credentials) that runs a file.

Defaults live in the core's dataclasses: a plan passes on only what was given on the command line.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
from typing import TYPE_CHECKING

from ..core import backends, geometry, widgets
from ..core.errors import ConfigError, InputError
from .exits import PROG, NoCredentials, UsageError, need_torch

if TYPE_CHECKING:
    import torch

    from ..core.credentials import DashScopeCredentials, VolcCredentials
    from ..core.dashscope import DashScopeConfig, DashScopeParams
    from ..core.dashscope_run import DashScopeOptions
    from ..core.runner import RunHooks
    from ..core.volc import VolcConfig, VolcParams
    from ..core.volc_expansion import VolcExpansion
    from ..core.volc_run import VolcOptions
    from .inputs import Source

VOLC_ONLY = ("prompt", "seed", "steps", "scale", "strength", "top", "bottom", "left", "right", "max_width",
             "max_height", "variants", "mask", "pad_pixels", "feathering", "fill", "overlap", "return_url",
             "watermark", "watermark_language", "expand_mode", "pixels_left", "pixels_top", "pixels_right",
             "pixels_bottom", "aspect_ratio", "target_width", "target_height", "anchor")
DASHSCOPE_ONLY = ("mode", "angle", "output_ratio", "offsets", "best_quality", "no_limit_image_size", "no_watermark",
                  "resume_task_id")  # --x-scale/--y-scale serve both vendors
# the ratio-mode expansion flags of --vendor volc (volc_expansion.WIDGETS without expand_mode, plus the sides)
VOLC_EXPANSION = ("top", "bottom", "left", "right", "pixels_left", "pixels_top", "pixels_right", "pixels_bottom",
                  "x_scale", "y_scale", "aspect_ratio", "target_width", "target_height", "anchor")


@dataclasses.dataclass(frozen=True)
class PadCanvas:
    """--pad-pixels: each input padded the way MaskCanvasBuilder does in pixels mode (its widget defaults)."""

    pad: tuple[int, int, int, int]  # left, top, right, bottom
    feathering: int = widgets.CANVAS["feathering"].default
    overlap: int = widgets.CANVAS["overlap"].default
    fill: str = widgets.CANVAS["fill"].default

    def build(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, dict]:
        """The canvas, its mask and what the sidecar says about them."""
        from ..core import canvas

        settings = {"expand_mode": "pixels", **dict(zip(("left", "top", "right", "bottom"), self.pad, strict=True)),
                    "feathering": self.feathering, "overlap": self.overlap, "fill": self.fill}
        built = canvas.build(image, settings)
        about = {"pad_pixels": list(self.pad), "feathering": self.feathering, "overlap": self.overlap,
                 "fill": self.fill, "placement": built.placement.as_dict()}
        return built.image, built.mask, about


@dataclasses.dataclass
class VolcPlan:
    """Volcengine: ratio mode, or canvas mode with --mask (the inputs are canvases) or --pad-pixels."""

    vendor = "volc"
    backend: str
    params: VolcParams
    options: VolcOptions
    config: VolcConfig
    credentials: VolcCredentials
    file_workers: int  # files in flight; each runs up to options.concurrency variants at once
    mask: torch.Tensor | None = None  # --mask: MASK [1,H,W]
    mask_path: str | None = None
    pad: PadCanvas | None = None
    expansion: VolcExpansion | None = None  # ratio mode: how the side fractions are given

    @property
    def mode(self) -> str:
        return "ratio" if self.mask is None and self.pad is None else "canvas"

    def options_for(self, index: int) -> VolcOptions:
        return self.options

    def params_for(self, width: int, height: int) -> VolcParams:
        """What a width x height input is sent: in ratio mode the expansion's own side fractions."""
        if self.mode == "canvas" or self.expansion is None:
            return self.params
        from ..core import volc_expansion

        return volc_expansion.ratio_params(self.params, self.expansion, width, height)

    def run(self, image: torch.Tensor, index: int, hooks: RunHooks) -> tuple[tuple, dict | None]:
        """One file's core run, and what its sidecar says about the canvas (None in ratio mode)."""
        from ..core import volc_run

        mask, about = self.mask, None
        if self.pad is not None:
            image, mask, about = self.pad.build(image)
        elif mask is not None:
            about = {"mask": self.mask_path}
        params = self.params_for(image.shape[2], image.shape[1])
        return volc_run.run(image, mask, params, self.credentials, self.options, self.config, hooks), about

    def cost_guard(self, image: torch.Tensor, index: int):
        """What the file's run would pay, without sending anything (--dry-run, the daily limit)."""
        from ..core import volc_run

        mask = self.mask
        if self.pad is not None:
            image, mask, _ = self.pad.build(image)
        params = self.params_for(image.shape[2], image.shape[1])  # the keys of what run() sends
        items = volc_run.prepare_items(image, mask, params, self.config, self.options.image_format)
        return volc_run.cost_guard(items, params, self.credentials, self.options, self.config)


@dataclasses.dataclass
class DashScopePlan:
    """DashScope: one task per file; options.resume_task_ids holds one id per input file, or none."""

    vendor = "dashscope"
    backend: str
    params: DashScopeParams
    options: DashScopeOptions
    config: DashScopeConfig
    credentials: DashScopeCredentials
    file_workers: int  # files (= tasks) in flight

    @property
    def mode(self) -> str:
        return self.params.mode

    def options_for(self, index: int) -> DashScopeOptions:
        """The options of file `index`: its own resume task id, if any."""
        return dataclasses.replace(self.options, resume_task_ids=self.options.resume_task_ids[index:index + 1])

    def run(self, image: torch.Tensor, index: int, hooks: RunHooks) -> tuple[tuple, None]:
        from ..core import dashscope_run

        return dashscope_run.run(image, self.params, self.credentials, self.options_for(index), self.config,
                                 hooks), None

    def cost_guard(self, image: torch.Tensor, index: int):
        from ..core import dashscope_run

        items = dashscope_run.prepare_items(image, self.params, self.config, self.options.image_format)
        return dashscope_run.cost_guard(items, self.credentials, self.options_for(index))


def _given(args, names) -> dict:
    """The options among `names` that were given on the command line."""
    return {n: getattr(args, n) for n in names if getattr(args, n, None) is not None}


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _flags(args, names) -> list[str]:
    return [_flag(n) for n in _given(args, names)]


def _options(args, options_type, **fixed):
    """The run options: the options type's defaults, overridden by what was given."""
    given = {"keep_original": not args.no_keep_original, "use_cache": not getattr(args, "no_cache", False), **fixed}
    if args.timeout is not None:
        given["timeout_s"] = args.timeout
    if args.image_format is not None:
        given["image_format"] = args.image_format
    if getattr(args, "output_resolution", None) is not None:
        given["output_resolution"] = args.output_resolution
    return options_type(**given)


def _credentials(lookup, args, store: pathlib.Path):
    try:
        return lookup(_backend(args), os.environ, store)
    except ConfigError as exc:
        raise NoCredentials(str(exc)) from None


def _backend(args) -> str:
    return "sandbox" if args.sandbox else "cloud"


def make_plan(args, sources: list[Source], store: pathlib.Path) -> VolcPlan | DashScopePlan:
    """Everything validated before any credential is looked up or any byte is sent."""
    vendor = args.vendor
    other = _flags(args, DASHSCOPE_ONLY if vendor == "volc" else VOLC_ONLY)
    if other:
        owner = "DashScope" if vendor == "volc" else "Volcengine"
        raise UsageError(f"{', '.join(other)}: {owner} option{'s' if len(other) > 1 else ''}, not for --vendor "
                         f"{vendor} (see {PROG} outpaint --help)")
    if vendor == "volc":
        need_torch()  # the Volcengine client's module needs it; DashScope's checks do not
        return _volc_plan(args, sources, store)
    return _dashscope_plan(args, sources, store)


def _volc_plan(args, sources: list[Source], store: pathlib.Path) -> VolcPlan:
    from ..core import imagecodec, volc, volc_expansion, volc_run

    canvas_mode = args.mask is not None or args.pad_pixels is not None
    if args.mask is not None and args.pad_pixels is not None:
        raise UsageError("--mask and --pad-pixels are two ways to give canvas mode: use one")
    sides = _flags(args, ("expand_mode", *VOLC_EXPANSION))
    if canvas_mode and sides:
        raise UsageError(f"{', '.join(sides)}: ratio-mode expansion does not apply in canvas mode "
                         "(--mask / --pad-pixels)")
    expand_mode = args.expand_mode or widgets.VOLC["expand_mode"].default
    wrong = _flags(args, [n for n in VOLC_EXPANSION if n not in volc_expansion.READS[expand_mode]])
    if wrong:
        raise UsageError(f"{', '.join(wrong)}: not read by --expand-mode {expand_mode} (it reads "
                         f"{', '.join(_flag(n) for n in volc_expansion.READS[expand_mode])})")
    expansion = volc_expansion.VolcExpansion(**_given(args, volc_expansion.WIDGETS))
    canvas_only = _flags(args, ("feathering", "fill", "overlap"))
    if canvas_only and args.pad_pixels is None:
        raise UsageError(f"{', '.join(canvas_only)} only apply with --pad-pixels (the CLI builds the canvas)")
    position = widgets.WATERMARKS.get(args.watermark)
    mark = None if position is None else volc.Watermark(position, int(args.watermark_language == "en"))
    sent = [f.name for f in dataclasses.fields(volc.VolcParams) if f.name != "watermark"]
    pad = mask = None
    try:
        params = volc.VolcParams(**_given(args, sent), watermark=mark)
        params.validate(canvas_mode)
        options = _options(args, volc_run.VolcOptions, **_given(args, ("variants",)))
        config = volc.VolcConfig.from_env()
        if args.pad_pixels is not None:
            pad = PadCanvas(args.pad_pixels, **_given(args, ("feathering", "overlap", "fill")))
            if not any(pad.pad):
                raise InputError("--pad-pixels 0,0,0,0 pads nothing: nothing to outpaint")
        if args.mask is not None:
            try:
                mask = imagecodec.decode_mask(pathlib.Path(args.mask).read_bytes())
            except (OSError, imagecodec.DecodeError) as exc:
                raise InputError(f"--mask {args.mask}: {exc}") from None
            if float(mask.max()) < 0.5:
                raise InputError(f"--mask {args.mask} marks nothing to generate: white (255) = generate")
        for s in sources:
            if mask is not None and (s.width, s.height) != (mask.shape[2], mask.shape[1]):
                raise InputError(f"{s.path} is {s.width}x{s.height} but --mask is {mask.shape[2]}x"
                                 f"{mask.shape[1]}: with --mask every input is a padded canvas of the "
                                 "mask's size (or use --pad-pixels to pad the originals)")
            if pad is not None:
                geometry.pad_pixels(s.width, s.height, *pad.pad)
            elif not canvas_mode:
                try:
                    sent = volc_expansion.ratio_params(params, expansion, s.width, s.height)
                    geometry.pad_fractions(s.width, s.height, sent.left, sent.top, sent.right, sent.bottom)
                except InputError as exc:
                    raise InputError(f"{s.path} ({s.width}x{s.height}): {exc}") from None
    except (InputError, ValueError) as exc:  # ValueError: a malformed VOLC_* setting in the environment
        raise UsageError(str(exc)) from None
    # variants of one file run concurrently too; files x variants in flight never exceed --concurrency
    per_run = min(options.variants, args.concurrency)
    return VolcPlan(_backend(args), params, dataclasses.replace(options, concurrency=per_run), config,
                    _credentials(backends.volc_credentials, args, store), max(1, args.concurrency // per_run),
                    mask=mask, mask_path=args.mask, pad=pad, expansion=None if canvas_mode else expansion)


def _dashscope_given(args) -> dict:
    """DashScopeParams fields given on the command line (the --no-* flags turn vendor defaults off)."""
    given = _given(args, ("mode", "angle", "output_ratio", "x_scale", "y_scale", "best_quality"))
    if args.offsets is not None:
        given.update(zip(("left_offset", "top_offset", "right_offset", "bottom_offset"), args.offsets, strict=True))
    if args.no_limit_image_size:
        given["limit_image_size"] = False
    if args.no_watermark:
        given["add_watermark"] = False
    return given


def _dashscope_plan(args, sources: list[Source], store: pathlib.Path) -> DashScopePlan:
    from ..core import dashscope  # no torch: usage and credential errors stay fast

    params = dashscope.DashScopeParams(**_dashscope_given(args))
    try:
        params.validate()
    except InputError as exc:
        raise UsageError(str(exc)) from None
    wrong = {"output_ratio": ("output_ratio",), "scale": ("x_scale", "y_scale"), "offsets": ("offsets",)}
    for m, names in wrong.items():
        given = _flags(args, names)
        if given and m != params.mode:
            raise UsageError(f"{', '.join(given)} only apply with --mode {m} (DashScope takes exactly one "
                             f"expansion; this run uses --mode {params.mode})")
    resume = list(args.resume_task_id or [])
    if resume and len(resume) != len(sources):
        raise UsageError(f"{len(resume)} --resume-task-id for {len(sources)} input file(s): give one per file, "
                         "in the order the files are listed (folders sorted by name)")
    try:
        for s in sources:
            try:
                params.plan(s.width, s.height)
            except InputError as exc:
                raise InputError(f"{s.path} ({s.width}x{s.height}): {exc}") from None
        config = dashscope.DashScopeConfig.from_env()
    except (InputError, ValueError) as exc:
        raise UsageError(str(exc)) from None
    credentials = _credentials(backends.dashscope_credentials, args, store)
    need_torch()
    from ..core import dashscope_run  # imports torch: only once the run goes ahead

    options = _options(args, dashscope_run.DashScopeOptions, concurrency=1, resume_task_ids=resume)
    return DashScopePlan(_backend(args), params, options, config, credentials, args.concurrency)
