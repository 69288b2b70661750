"""ComfyUI inputs made from the pack's one widget declaration (core/widgets.py)."""

from __future__ import annotations

from collections.abc import Mapping

from comfy_api.latest import io

from .core.widgets import Widget

_TYPES = {"INT": io.Int, "FLOAT": io.Float, "BOOLEAN": io.Boolean, "STRING": io.String, "COMBO": io.Combo}


def widget_input(w: Widget):
    options = {"default": w.default, "tooltip": w.tooltip or None}
    if w.kind in ("INT", "FLOAT"):
        options.update(min=w.min, max=w.max, step=w.step)
    if w.kind == "COMBO":
        options["options"] = list(w.options)
    if w.multiline:
        options["multiline"] = True
    if w.control_after_generate is not None:
        options["control_after_generate"] = w.control_after_generate
    if w.optional:
        options["optional"] = True
    return _TYPES[w.kind].Input(w.name, **{k: v for k, v in options.items() if v is not None})


def widget_inputs(widgets: Mapping[str, Widget]) -> list:
    return [widget_input(w) for w in widgets.values()]
