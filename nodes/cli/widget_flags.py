"""Command-line flags made from the node widgets' one declaration (core/widgets.py): the same
type, range, choices and default as the widget, checked by the widget's own rule."""

from __future__ import annotations

import argparse

from ..core.errors import InputError
from ..core.widgets import Widget


def _parser(w: Widget):
    def parse(text: str):
        try:
            value = float(text) if w.kind == "FLOAT" else int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a {'number' if w.kind == 'FLOAT' else 'whole number'}")
        try:
            return w.check(value)
        except InputError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    parse.__name__ = w.kind.lower()  # argparse names the type in its messages
    return parse


def _help(w: Widget, prefix: str) -> str:
    limits = f"{w.min:g}-{w.max:g}; " if w.kind in ("INT", "FLOAT") else ""
    default = w.default if w.default != "" else "empty"
    return f"{prefix}{w.tooltip} ({limits}default {default})"


def add(group, w: Widget, *, flag: str | None = None, metavar: str | None = None, prefix: str = "",
        default=None) -> None:
    """Adds --<name> for widget `w`; the value stays None unless given (the core's defaults apply)."""
    options = {"default": default, "help": _help(w, prefix)}
    if w.kind == "COMBO":
        options["choices"] = list(w.options)
    elif w.kind in ("INT", "FLOAT"):
        options.update(type=_parser(w), metavar=metavar or ("N" if w.kind == "INT" else "X"))
    else:
        options["metavar"] = metavar or "TEXT"
    group.add_argument(flag or "--" + w.name.replace("_", "-"), **options)
