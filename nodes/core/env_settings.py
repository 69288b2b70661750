"""Tuning numbers read from environment variables (VOLC_*, DASHSCOPE_*), each checked against its
range: a bad setting is an InputError naming the variable, raised before anything is sent."""

from __future__ import annotations

import math
from collections.abc import Mapping

from .errors import InputError


def number(env: Mapping[str, str], name: str, default: float, low: float, high: float, *,
           unit: str = "", whole: bool = False) -> float:
    """`env[name]` as a number in low..high (a whole number if `whole`); `default` when unset or empty."""
    text = env.get(name)
    if text is None or not text.strip():
        return default
    what = "a whole number" if whole else "a number"
    bounds = f"{low:g} to {high:g}{' ' + unit if unit else ''}"
    try:
        value = float(text)
    except ValueError:
        raise InputError(f"{name}={text[:40]!r} is not {what}; use {bounds}") from None
    if not math.isfinite(value) or not low <= value <= high or (whole and value != int(value)):
        raise InputError(f"{name}={text[:40]!r}: use {what} from {bounds}")
    return int(value) if whole else value


def choice(env: Mapping[str, str], name: str, default: str, options: tuple[str, ...]) -> str:
    value = env.get(name) or default
    if value not in options:
        raise InputError(f"{name}={value[:40]!r}: use {', '.join(options)}")
    return value
