"""Every node widget, declared once: name, type, default, range, choices and tooltip.

The node schemas (nodes/*_node.py through nodes/widget_inputs.py), the command line's flags
(nodes/cli), the geometry preview (preview.py) and the engine's own checks (Widget.check, used by
the params dataclasses of volc.py / dashscope.py and by the runs) all read these tables, so a
default or a limit cannot disagree between them. Torch-free: the CLI reads it before torch loads.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from . import geometry, output_scale
from .errors import InputError
from .geometry import ANCHORS, DASHSCOPE_MODES, DASHSCOPE_RATIOS, EXPAND_MODES, MAX_SIDE

BACKENDS = ("cloud", "sandbox")
FILL_MODES = ("grey", "color", "edge", "reflect", "blur")
FEATHER_CURVES = ("quadratic", "linear", "smoothstep")
# watermark widget choice -> Volcengine logo_info position (None = no label)
WATERMARKS = {"off": None, "bottom-right": 0, "bottom-left": 1, "top-left": 2, "top-right": 3}
MAX_CONCURRENCY = 8  # requests or tasks in flight for one run; vendors allow 1 to 5 per account


@dataclass(frozen=True)
class Widget:
    name: str
    kind: str  # ComfyUI's type name: INT, FLOAT, BOOLEAN, STRING or COMBO
    default: Any
    tooltip: str = ""
    min: float | None = None
    max: float | None = None
    step: float | None = None
    options: tuple[str, ...] = ()
    multiline: bool = False
    control_after_generate: bool | None = None  # None = the frontend's own rule
    # values of the node's mode widget (mode_widget()) under which this widget applies; () = always.
    # The page hides a widget whose mode is not chosen (its saved value stays).
    modes: tuple[str, ...] = ()
    # added after 0.1.0: an API prompt saved before lacks it, so ComfyUI is told it is optional and the
    # node's execute() falls back to this default (widgets_values order is unchanged: these come last)
    optional: bool = False

    def check(self, value: Any, owner: str = "") -> Any:
        """The value if it is of this widget's type and inside its range, else InputError naming it."""
        where = f"{owner} {self.name}".strip()
        if self.kind == "BOOLEAN":
            if not isinstance(value, bool):
                raise InputError(f"{where} is {value!r}: use true or false")
            return value
        if self.kind in ("STRING", "COMBO"):
            if not isinstance(value, str):
                raise InputError(f"{where} is {type(value).__name__}, not text")
            _check_encodable(value, where)
            if self.options and value not in self.options:
                raise InputError(f"{where} {value[:40]!r} is not one of {', '.join(self.options)}")
            return value
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise InputError(f"{where} is {value!r}, not a number")
        if not math.isfinite(value):
            raise InputError(f"{where} is {value}, not a finite number")
        if self.kind == "INT" and value != int(value):
            raise InputError(f"{where} is {value}; it must be a whole number")
        if not self.min <= value <= self.max:
            accepts = f"{owner} accepts" if owner else "use"
            low, high = (float(self.min), float(self.max)) if self.kind == "FLOAT" else (int(self.min), int(self.max))
            raise InputError(f"{self.name} is {value}; {accepts} {low} to {high}")
        return int(value) if self.kind == "INT" else float(value)


def _check_encodable(text: str, where: str) -> None:
    """A workflow's JSON can carry a lone surrogate (e.g. "\\ud800"): not text, and no request body can hold it."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InputError(f"{where} has a broken character (a lone surrogate, U+{ord(text[exc.start]):04X}, at "
                         f"character {exc.start + 1}); retype the text around it") from None


def _int(name, default, low, high, tooltip="", step=None, **kw) -> Widget:
    return Widget(name, "INT", default, tooltip, low, high, step, **kw)


def _float(name, default, low, high, step, tooltip="", **kw) -> Widget:
    return Widget(name, "FLOAT", default, tooltip, low, high, step, **kw)


def _bool(name, default, tooltip="", **kw) -> Widget:
    return Widget(name, "BOOLEAN", default, tooltip, **kw)


def _text(name, default, tooltip="", multiline=False, **kw) -> Widget:
    return Widget(name, "STRING", default, tooltip, multiline=multiline, **kw)


def _combo(name, options, default, tooltip="", **kw) -> Widget:
    return Widget(name, "COMBO", default, tooltip, options=tuple(options), **kw)


def added(*widgets: Widget) -> list[Widget]:
    """Widgets added after 0.1.0 (Widget.optional)."""
    return [replace(w, optional=True) for w in widgets]


def table(*widgets: Widget) -> dict[str, Widget]:
    return {w.name: w for w in widgets}


def defaults(widgets: Mapping[str, Widget], *names: str) -> dict[str, Any]:
    return {name: widgets[name].default for name in (names or widgets)}


_KEEP = _bool("keep_original", True, "paste the original pixels back over the result with a soft seam")
_USE_CACHE = _bool("use_cache", True, "serve a request answered before (same image, same settings, same account) "
                                      "from the pack's result cache for free; off = pay for a fresh result",
                   optional=True)
# default original: extending a photo should not shrink it; its own pixels are what a photographer paid for
_OUTPUT_RESOLUTION = _combo("output_resolution", output_scale.OPTIONS, output_scale.ORIGINAL,
                            "original = the whole output at your image's own scale: the vendor's result upscaled "
                            "(bicubic) around your original, whose pixels stay 1:1 inside the soft seam (with "
                            "keep_original); vendor = the size the vendor returned (smaller for large photos). "
                            "Over 8192x8192 px the vendor's size is returned, said in info", optional=True)

_VOLC_SIDE = ("fraction of the image {} added on the {} side (ratio mode; Volcengine allows 0 to 1, "
              "1 = double that side); ignored when a mask is connected")
VOLC = table(
    _text("prompt", "", "what should appear in the new area (optional; ~100 words or Chinese characters "
                        "are read, and the text is moderated)", multiline=True),
    *[_float(side, 0.1, 0.0, 1.0, 0.01, _VOLC_SIDE.format(dim, side), modes=("fraction",))
      for side, dim in (("top", "height"), ("bottom", "height"), ("left", "width"), ("right", "width"))],
    _int("seed", -1, -1, 2**31 - 1, "-1 = the vendor picks; variants use seed, seed+1, ...",
         control_after_generate=True),
    _int("steps", 30, 1, 100, "sampling steps (vendor default 30); more is slower"),
    _float("scale", 7.0, 1.0, 20.0, 0.1, "how strongly the prompt is followed (vendor default 7)"),
    _float("strength", 0.8, 0.1, 1.0, 0.01, "lower stays closer to the original (vendor default 0.8)"),
    _int("max_width", 1920, 64, 8192, "the vendor resizes its result to fit max_width x max_height", step=8),
    _int("max_height", 1920, 64, 8192, "the vendor resizes its result to fit max_width x max_height", step=8),
    _int("variants", 1, 1, 4, "results per image (each is a billed request); the vendor recommends "
                              "offering 3-4 to choose from"),
    _KEEP,
    _int("timeout_s", 180, 10, 3600, "wall-clock limit for the whole run, retries included"),
    _combo("backend", BACKENDS, "cloud", "cloud = Volcengine (billed); sandbox = the pack's offline emulator "
                                         "(free, simple fill: for trying graphs without an account)"),
    _combo("image_format", ("jpeg", "png"), "jpeg", "upload format of the image: jpeg (q95, ~5x smaller, "
                                                     "faster) or png (lossless); masks are always PNG"),
    _int("concurrency", 2, 1, MAX_CONCURRENCY, "requests in flight at once (batch items x variants); raise it "
                                               "only if your account's concurrency quota allows"),
    _bool("return_url", False, "ask for a download link instead of inline image data"),
    _combo("watermark", WATERMARKS, "off", "visible 'AI generated' label added by the vendor (logo_info)"),
    _combo("watermark_language", ("zh", "en"), "zh", "label text: zh = AI生成, en = Generated by AI"),
    _float("watermark_opacity", 1.0, 0.0, 1.0, 0.05),
    _text("watermark_text", "", "custom label text (empty = default)"),
    # seed 000's expansion types for ratio mode, after the older widgets so saved workflows keep their values
    # (and optional: older API prompts lack them); each becomes Volcengine's side fractions by the shared geometry
    *added(
        _combo("expand_mode", EXPAND_MODES, "fraction",
               "ratio mode: how the expansion is given: fraction per side (四边扩展, top/bottom/left/right), pixels "
               "per side, x/y scale (等比扩展), a target aspect ratio (画幅扩展) or a target width x height; all "
               "become Volcengine's side fractions (each 0 to 1); ignored when a mask is connected"),
        *[_int(f"pixels_{side}", 0, 0, MAX_SIDE, f"pixels added on the {side} side (expand_mode = pixels)", step=1,
               modes=("pixels",)) for side in ("left", "top", "right", "bottom")],
        _float("x_scale", 1.5, 1.0, 3.0, 0.05, "canvas width = image width x this (expand_mode = scale)",
               modes=("scale",)),
        _float("y_scale", 1.5, 1.0, 3.0, 0.05, "canvas height = image height x this (expand_mode = scale)",
               modes=("scale",)),
        _text("aspect_ratio", "16:9", "target canvas shape W:H, e.g. 16:9, 3:4, 1.5 (expand_mode = "
                                      "aspect_ratio); only one side grows", modes=("aspect_ratio",)),
        _int("target_width", 1024, 1, MAX_SIDE, "canvas width (expand_mode = target_size); from the image width "
                                                "up to 3x it centred, 2x from an edge anchor (each side grows by "
                                                "at most 1x the image)", step=1, modes=("target_size",)),
        _int("target_height", 1024, 1, MAX_SIDE, "canvas height (expand_mode = target_size); from the image "
                                                 "height up to 3x it centred, 2x from an edge anchor", step=1,
             modes=("target_size",)),
        _combo("anchor", ANCHORS, "center", "where the original sits when the canvas is given as a whole "
                                            "(scale, aspect_ratio, target_size)",
               modes=("scale", "aspect_ratio", "target_size")),
    ),
    _USE_CACHE,
    _OUTPUT_RESOLUTION,
)

_DS_OFFSET = "pixels added on the {} (mode = offsets), in this image's own pixels"
DASHSCOPE = table(
    _combo("mode", DASHSCOPE_MODES, "scale", "scale: x/y scale, image centred; output_ratio: grow to an aspect "
                                             "ratio; offsets: pixels per side; rotate_only: only rotate "
                                             "(corners filled)"),
    _int("angle", 0, 0, 359, "rotate counter-clockwise first, then expand; the corners are filled. Any angle "
                             "with an expansion mode (90/180/270 too); rotate_only needs 1 to 359, and quarter "
                             "turns there are warned about (the docs advise against them)"),
    _combo("output_ratio", DASHSCOPE_RATIOS, "16:9", "target aspect ratio (mode = output_ratio)",
           modes=("output_ratio",)),
    _float("x_scale", 1.5, 1.0, 3.0, 0.05, "width x this, centred (mode = scale)", modes=("scale",)),
    _float("y_scale", 1.5, 1.0, 3.0, 0.05, "height x this, centred (mode = scale)", modes=("scale",)),
    # defaults that expand (left and right 256 px): a body with every offset 0 is refused before paying
    *[_int(f"{side}_offset", 256 if side in ("left", "right") else 0, 0, 12288, _DS_OFFSET.format(side),
           modes=("offsets",)) for side in ("left", "right", "top", "bottom")],
    _bool("best_quality", False, "more detail, several times slower (vendor default off)"),
    _bool("limit_image_size", True, "keep the result under 5 MB and within 1:4 to 4:1 (vendor default on; larger "
                                    "results can fail); a planned output beyond 4:1 is refused before paying"),
    _bool("add_watermark", True, "the vendor's 'Generated by AI' mark, bottom-left; the vendor adds it unless "
                                 "this is off"),
    _KEEP,
    _int("timeout_s", 300, 10, 3600, "wall-clock limit; on timeout the task is cancelled if still pending, and "
                                     "its id is reported so it can be fetched later without paying again"),
    _combo("backend", BACKENDS, "cloud", "cloud = DashScope (billed); sandbox = the pack's offline emulator "
                                         "(free)"),
    _int("concurrency", 2, 1, MAX_CONCURRENCY, "tasks in flight at once; the vendor's limit per account was 1 "
                                               "to 5; creations are also held to 2 per second (setting: "
                                               "DASHSCOPE_CREATES_PER_SECOND)"),
    _combo("image_format", ("png", "jpeg"), "png", "upload format (the vendor takes up to 10 MB)"),
    _text("resume_task_ids", "", "task ids (comma separated, one per image) of earlier runs: fetch those "
                                 "results instead of creating new, billed tasks"),
    _USE_CACHE,
    _OUTPUT_RESOLUTION,
)

_CANVAS_SIDE = "pixels added on the {} side (expand_mode = pixels)"
_CANVAS_FRACTION = ("fraction of the image {} added on the {} side (expand_mode = fraction; Volcengine's ratio "
                    "semantics, 0.1 = 10 %)")
CANVAS = table(
    _combo("expand_mode", EXPAND_MODES, "pixels", "how the expansion is given: pixels per side, fraction per "
                                                  "side, x/y scale, target aspect ratio, or target width x height"),
    *[_int(side, 0, 0, MAX_SIDE, _CANVAS_SIDE.format(side), step=1, modes=("pixels",))
      for side in ("left", "top", "right", "bottom")],
    _int("feathering", 40, 0, MAX_SIDE, "width in px of the soft ramp ((f-d)/f)^2 that lets the mask reach into "
                                        "the original from each padded side; shrunk to fit small images", step=1),
    *[_float(f"fraction_{side}", 0.1, 0.0, 4.0, 0.01, _CANVAS_FRACTION.format(dim, side), modes=("fraction",))
      for side, dim in (("left", "width"), ("top", "height"), ("right", "width"), ("bottom", "height"))],
    _float("x_scale", 1.5, 1.0, 8.0, 0.05, "canvas width = image width x this (expand_mode = scale; "
                                           "DashScope's x_scale)", modes=("scale",)),
    _float("y_scale", 1.5, 1.0, 8.0, 0.05, "canvas height = image height x this (expand_mode = scale; "
                                           "DashScope's y_scale)", modes=("scale",)),
    _text("aspect_ratio", "16:9", "target canvas shape W:H, e.g. 16:9, 3:4, 1:1 (expand_mode = aspect_ratio); "
                                  "only one side grows", modes=("aspect_ratio",)),
    _int("target_width", 1024, 1, MAX_SIDE, "canvas width (expand_mode = target_size); must be >= the image "
                                            "width", step=1, modes=("target_size",)),
    _int("target_height", 1024, 1, MAX_SIDE, "canvas height (expand_mode = target_size); must be >= the image "
                                             "height", step=1, modes=("target_size",)),
    _combo("anchor", ANCHORS, "center", "where the original sits when the canvas size is given as a whole "
                                        "(scale, aspect_ratio, target_size) and where rounding adds pixels"),
    _int("multiple_of", 1, 1, 1024, "round the canvas up to a multiple of this (8, 16, 64 for diffusion "
                                    "models); the extra goes to the padded sides", step=1),
    _combo("fill", FILL_MODES, "grey", "what the new area shows: grey 0.5 (as Pad Image for Outpainting), a "
                                       "solid colour, the edge pixels stretched, a mirror of the image, or a "
                                       "blurred stretched copy"),
    _text("fill_color", "#808080", "colour for fill = color: #RRGGBB or r,g,b (0-255)"),
    _float("noise", 0.0, 0.0, 1.0, 0.01, "strength of gaussian noise added to the new area only (0 = off)"),
    # control_after_generate=False: the frontend would otherwise add a "randomize" control to any INT
    # named seed, changing the canvas (and the paid calls after it) on each run
    _int("seed", 0, 0, 0xFFFFFFFFFFFFFFFF, "seed of the noise, so a canvas can be rebuilt exactly",
         control_after_generate=False),
    _combo("feather_curve", FEATHER_CURVES, "quadratic", "shape of the feather ramp; quadratic matches Pad "
                                                         "Image for Outpainting"),
    _int("overlap", 0, 0, MAX_SIDE, "px of the original next to each padded side that are fully masked (1.0) so "
                                    "the model repaints the seam; the feather starts after it", step=1),
)

# each node's table, by node id
BY_NODE = {"VolcOutpaint": VOLC, "DashScopeOutpaint": DASHSCOPE, "MaskCanvasBuilder": CANVAS}


def mode_widget(widgets: Mapping[str, Widget]) -> str | None:
    """The widget whose value decides which others apply (expand_mode or mode), if the table has one."""
    return next((name for name in ("expand_mode", "mode") if name in widgets), None)


def modes_by_widget(widgets: Mapping[str, Widget]) -> dict[str, list[str]]:
    """{widget: [mode values under which it applies]} for the widgets that depend on the mode."""
    return {w.name: list(w.modes) for w in widgets.values() if w.modes}


# the geometry inputs of plan_expansion, in the canvas table
EXPANSION = ("expand_mode", "left", "top", "right", "bottom", "fraction_left", "fraction_top", "fraction_right",
             "fraction_bottom", "x_scale", "y_scale", "aspect_ratio", "target_width", "target_height", "anchor",
             "multiple_of")


def plan_expansion(width: int, height: int, values: Mapping[str, Any]) -> geometry.Placement:
    """geometry.plan_expansion for MaskCanvasBuilder's widget values (only the EXPANSION ones are read)."""
    return geometry.plan_expansion(width, height, values["expand_mode"], **{name: values[name] for name in EXPANSION[1:]})
