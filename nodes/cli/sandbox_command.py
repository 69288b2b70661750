"""The sandbox command: the offline emulator of both vendors in the foreground until Ctrl-C."""

from __future__ import annotations

import signal
import sys
import threading

from .exits import EXIT_OK, UsageError


def cmd_sandbox(args) -> int:
    from ..sandbox import Sandbox, parse_settings, serve_forever

    print("Offline sandbox of both vendors' APIs (127.0.0.1 only; accepts only its demo credentials, which are "
          "worthless elsewhere).\nPoint ComfyUI's nodes (backend = cloud) or `python cli.py outpaint` (without "
          "--sandbox) at it by setting, in their environment, the variables printed below:\n"
          "  VOLC_BASE_URL, VOLC_ACCESSKEY, VOLC_SECRETKEY, DASHSCOPE_HTTP_BASE_URL, DASHSCOPE_API_KEY",
          flush=True)
    try:
        settings = {"latency": args.latency, **parse_settings(args.set or [])}
        sandbox = Sandbox(args.port, echo=None if args.quiet else sys.stdout, **settings)
    except (TypeError, ValueError) as exc:
        raise UsageError(str(exc)) from None
    stop = threading.Event()  # Ctrl-C ends it too (KeyboardInterrupt inside serve_forever)
    signal.signal(signal.SIGTERM, lambda *_: stop.set())  # as a service manager or `kill` stops it
    serve_forever(sandbox, stop=stop)
    return EXIT_OK
