"""The sandbox command: the offline emulator of both vendors in the foreground until Ctrl-C."""

from __future__ import annotations


def cmd_sandbox(args) -> int:
    from ..sandbox import serve_forever_cli

    print("Offline sandbox of both vendors' APIs (127.0.0.1 only; accepts only its demo credentials, which are "
          "worthless elsewhere).\nPoint ComfyUI's nodes (backend = cloud) or `python cli.py outpaint` (without "
          "--sandbox) at it by setting, in their environment, the variables printed below:\n"
          "  VOLC_BASE_URL, VOLC_ACCESSKEY, VOLC_SECRETKEY, DASHSCOPE_HTTP_BASE_URL, DASHSCOPE_API_KEY",
          flush=True)
    argv = ["--port", str(args.port), "--latency", str(args.latency)] + (["--quiet"] if args.quiet else [])
    for item in args.set or []:
        argv += ["--set", item]
    return serve_forever_cli(argv)
