"""Geometry preview for the frontend: where the image lands for a node's current widget values.

Computed with geometry.py (the same calls the nodes make), from string values as they arrive in a
query string. Defaults are the nodes' widget defaults, read from widgets.py.
Bad values give {"error": <the InputError text>} with the numbers null, never an exception.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from . import geometry, output_scale, volc, volc_expansion, widgets
from .dashscope import DashScopeParams
from .errors import InputError

KEYS = ("canvas_width", "canvas_height", "x", "y", "width", "height", "output_width", "output_height")
MAX_INPUT_SIDE = 1 << 16

_TYPES = {"INT": int, "FLOAT": float, "BOOLEAN": bool, "STRING": str, "COMBO": str}


def _spec(table: Mapping[str, widgets.Widget], names) -> dict[str, tuple[type, object]]:
    return {name: (_TYPES[table[name].kind], table[name].default) for name in names}


# widget -> (type, default), per node: the geometry inputs, from the one widget declaration
WIDGETS: dict[str, dict[str, tuple[type, object]]] = {
    "MaskCanvasBuilder": _spec(widgets.CANVAS, widgets.EXPANSION),
    "VolcOutpaint": {**_spec(widgets.VOLC, ("top", "bottom", "left", "right", "max_width", "max_height",
                                            *volc_expansion.WIDGETS, "output_resolution")),
                     "canvas_mode": (bool, False)},  # not a widget: whether a mask is connected
    "DashScopeOutpaint": _spec(widgets.DASHSCOPE, ("mode", "angle", "output_ratio", "x_scale", "y_scale",
                                                   "left_offset", "right_offset", "top_offset", "bottom_offset",
                                                   "output_resolution")),
}


def _parse(name: str, kind: type, text: str):
    text = text.strip()
    if kind is str:
        return text
    if kind is bool:
        if text.lower() in ("1", "true", "yes", "on"):
            return True
        if text.lower() in ("0", "false", "no", "off", ""):
            return False
        raise InputError(f"{name} is {text[:40]!r}: use 1 or 0")
    try:
        value = float(text)
    except ValueError:
        raise InputError(f"{name} is {text[:40]!r}, not a number") from None
    if not math.isfinite(value):
        raise InputError(f"{name} is {text[:40]!r}, not a finite number")
    if kind is int:
        if value != int(value):
            raise InputError(f"{name} is {text[:40]}; it must be a whole number")
        return int(value)
    return value


def _values(node: str, query: Mapping[str, str]) -> tuple[int, int, dict]:
    sizes = []
    for name in ("width", "height"):
        if name not in query:
            raise InputError(f"the image {name} is not known yet")
        value = _parse(name, int, query[name])
        if not 1 <= value <= MAX_INPUT_SIDE:
            raise InputError(f"image {name} {value} must be 1 to {MAX_INPUT_SIDE} px")
        sizes.append(value)
    values = {name: _parse(name, kind, query[name]) if name in query else default
              for name, (kind, default) in WIDGETS[node].items()}
    return sizes[0], sizes[1], values


def compute(node: str, query: Mapping[str, str]) -> dict:
    """The preview of `node` for an input image of query width x height and the widget values in query."""
    try:
        if node not in WIDGETS:
            raise InputError(f"no geometry preview for node {node!r}; known: {', '.join(WIDGETS)}")
        width, height, v = _values(node, query)
        resolution = v.pop("output_resolution", None)
        if resolution is not None:
            widgets.VOLC["output_resolution"].check(resolution)
        if node == "MaskCanvasBuilder":
            p = widgets.plan_expansion(width, height, v)
            output = (p.canvas_width, p.canvas_height)
        elif node == "VolcOutpaint":
            canvas_mode = v.pop("canvas_mode")
            expansion = volc_expansion.VolcExpansion(**{name: v.pop(name) for name in volc_expansion.WIDGETS})
            params = volc.VolcParams(**v)
            if not canvas_mode:  # the node's own translation: the expansion type -> the side fractions sent
                params = volc_expansion.ratio_params(params, expansion, width, height)
            params.validate(canvas_mode)  # the node's own range checks
            if canvas_mode:  # the input is already the canvas; the vendor fits it into max_w x max_h
                placement = geometry.Placement(width, height, 0, 0, width, height)
                output = geometry.fit_within(width, height, v["max_width"], v["max_height"])
            else:
                placement, output = geometry.volc_ratio_output(width, height, params.left, params.top, params.right,
                                                               params.bottom, params.max_width, params.max_height)
            p = geometry.scale_placement(placement, *output)
        else:
            s = geometry.dashscope_input_scale(width, height)  # refuses images that cannot be sent at all
            params = DashScopeParams(**v)
            params.validate()
            placement = params.plan(width, height)  # the user's values, in the user's pixels
            # the vendor answers in the upload's pixels (512-4096 px a side): about the plan times that scale
            output = (round(placement.canvas_width * s), round(placement.canvas_height * s))
            p = geometry.scale_placement(placement, *output)
        note = None
        if resolution == output_scale.ORIGINAL:  # what the run returns: the canvas at the input's scale
            note = output_scale.over_limit(placement.canvas_width, placement.canvas_height)
            if note is None:
                p, output = placement, (placement.canvas_width, placement.canvas_height)
    except InputError as exc:
        return {**dict.fromkeys(KEYS), "error": str(exc)}
    answer = {**p.as_dict(), "output_width": output[0], "output_height": output[1], "error": None}
    return {**answer, "note": note} if note else answer
