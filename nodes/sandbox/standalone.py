"""Running the sandbox as a foreground program (the pack CLI's `sandbox` command): settings
given as NAME=VALUE text, and serving until Ctrl-C."""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Iterable
from typing import Any, TextIO

from .server import SandboxServer


def _value(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def parse_settings(pairs: Iterable[str]) -> dict[str, Any]:
    """["NAME=VALUE", ...] -> keyword arguments for Sandbox(). VALUE is read as JSON when it
    parses (5, true, "jpeg"), else taken as text. ValueError for an item without "=" or a NAME
    that is not a setting (Sandbox.setting_names())."""
    from . import Sandbox  # the class that knows every emulator's settings

    known = Sandbox.setting_names()
    settings: dict[str, Any] = {}
    for item in pairs:
        name, eq, value = item.partition("=")
        name = name.strip()
        if not eq:
            raise ValueError(f"a setting needs NAME=VALUE, got {item!r}")
        if name not in known:
            raise ValueError(f"unknown sandbox setting {name!r}; known: {', '.join(known)}")
        settings[name] = _value(value)
    return settings


def serve_forever(sandbox: SandboxServer, *, stop: threading.Event | None = None,
                  out: TextIO | None = None) -> None:
    """Start `sandbox` (unless it is running), print its describe() lines (the URL and the
    environment variables that point a client at it) and "Ctrl-C to stop." to `out` (stdout),
    then serve until `stop` is set or Ctrl-C. A sandbox started here is stopped on return."""
    out = out or sys.stdout
    started = not sandbox.running
    if started:
        sandbox.start()
    try:
        for line in sandbox.describe():
            out.write(line + "\n")
        out.write("Ctrl-C to stop.\n")
        out.flush()
        (stop or threading.Event()).wait()
    except KeyboardInterrupt:
        pass
    finally:
        if started:
            sandbox.stop()
