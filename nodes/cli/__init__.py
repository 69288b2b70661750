"""The pack's command line (`python cli.py ...` from the pack folder): outpaint, demo, check, sandbox,
spend, cache.

Built on the same ComfyUI-free core as the nodes (nodes/core): the same runs, the same
credentials, the same sandbox. Nothing here imports comfy_api or ComfyUI. torch is imported only by
the commands that process images, so `--help`, usage errors and missing credentials are fast.
This module holds the parser and main(); each command lives in its own module.
"""

from __future__ import annotations

import argparse
import math
import shutil
import sys

from ..core import cost_state, widgets
from ..core.errors import ConfigError, InputError
from . import widget_flags
from .check import cmd_check
from .cost_commands import cmd_cache, cmd_spend
from .demo import cmd_demo
from .exits import (
    EXIT_CODES,
    EXIT_INTERRUPTED,
    EXIT_NO_CREDENTIALS,
    EXIT_USAGE,
    PROG,
    UsageError,
)
from .outpaint import cmd_outpaint
from .sandbox_command import cmd_sandbox

TORCH_NOTE = """requirements: torch, numpy, pillow, requests. Inside ComfyUI's Python they are all there;
in a fresh virtual environment install torch yourself first (the build for your machine; the CPU build
is enough, demo.sh shows how on this project's machines) and then `pip install -r requirements.txt`.
The pack never installs torch."""

BILLING = """billing: cloud calls are billed by the vendor. Volcengine bills every request (every variant of
every image); DashScope bills every successful image. A request that may have reached the vendor is
never resent automatically. --sandbox runs the whole path offline against the pack's built-in
emulator on 127.0.0.1 (free, no account; the new area is a simple blurred fill, not a model)."""

CREDENTIALS = """credentials (never on the command line): Volcengine VOLC_ACCESSKEY + VOLC_SECRETKEY
(+ VOLC_SESSION_TOKEN), or VOLC_API_KEY + VOLC_BASE_URL for a Bearer gateway, or ~/.volc/credentials;
DashScope DASHSCOPE_API_KEY (Beijing region) or ~/.dashscope/api_key, base URL DASHSCOPE_HTTP_BASE_URL.
Also read: the pack's credential store (the ComfyUI settings panel writes it): --store, else
$CLOUD_OUTPAINT_STORE, else ComfyUI's user/cloud_outpaint/credentials.json when the pack sits in
ComfyUI/custom_nodes, else ~/.config/cloud-outpaint/credentials.json. `check` shows what is found."""


# ---- argument types -------------------------------------------------------------------------------

def _four_ints(text: str) -> tuple[int, int, int, int]:
    parts = [p.strip() for p in text.split(",")]
    try:
        values = tuple(int(p) for p in parts)
    except ValueError:
        values = ()
    if len(values) != 4 or min(values) < 0:
        raise argparse.ArgumentTypeError(f"{text!r}: give four whole numbers >= 0 as LEFT,TOP,RIGHT,BOTTOM")
    return values


def _positive(text: str) -> float:
    """An argparse type: a finite number of seconds above 0 (NaN would disable every deadline)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"{value} is not a finite number of seconds above 0")
    return value


# ---- argument parser ------------------------------------------------------------------------------

class _Formatter(argparse.RawDescriptionHelpFormatter):
    """Wraps one-paragraph descriptions; keeps multi-line texts (exit codes, examples) as written."""

    def __init__(self, prog):
        super().__init__(prog, max_help_position=34, width=min(110, shutil.get_terminal_size((100, 20)).columns))

    def _fill_text(self, text, width, indent):
        if "\n" in text:
            return super()._fill_text(text, width, indent)
        return argparse.HelpFormatter._fill_text(self, text, width, indent)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG, formatter_class=_Formatter,
        description="Cloud Outpaint on the command line: extend images with Volcengine i2i_outpainting or "
                    "Alibaba DashScope image-out-painting, using the same code as the ComfyUI nodes.",
        epilog=f"examples:\n  {PROG} demo\n  {PROG} check --test\n  {PROG} outpaint photos/ --vendor volc "
               f"--sandbox\n  {PROG} outpaint a.jpg --vendor volc --expand-mode aspect_ratio --aspect-ratio 16:9\n  "
               f"{PROG} outpaint a.jpg --vendor dashscope --mode offsets --offsets 256,0,256,0\n\n"
               f"{EXIT_CODES}\n\n{BILLING}\n\n{TORCH_NOTE}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    # outpaint
    p = sub.add_parser("outpaint", formatter_class=_Formatter, help="outpaint image files or folders",
                       description="Outpaint every input image with one vendor and write "
                                   "<stem>_outpaint.png (<stem>_outpaint_vN.png with --variants) plus a JSON "
                                   "sidecar <stem>_outpaint.json (vendor, parameters, request/task ids, sizes, "
                                   "timings, the run's info; on failure the error and any task id to resume). "
                                   "Files run concurrently within the vendor's limits; every option is checked "
                                   "for every file before anything is sent.",
                       epilog=f"{EXIT_CODES}\n\n{BILLING}\n\n{CREDENTIALS}\n\n{TORCH_NOTE}")
    p.add_argument("inputs", nargs="+", metavar="INPUT",
                   help="image files (PNG/JPEG/WEBP; EXIF rotation applied) or folders of them")
    p.add_argument("--vendor", choices=["volc", "dashscope"], required=True,
                   help="volc = Volcengine visual i2i_outpainting; dashscope = Alibaba DashScope "
                        "image-out-painting (China (Beijing) region)")
    p.add_argument("--sandbox", action="store_true",
                   help="run the whole path offline against the built-in sandbox (free, no credentials)")
    p.add_argument("--out", default="outpainted", metavar="DIR",
                   help="output folder (default ./outpainted; existing outputs of the same name are replaced)")
    p.add_argument("--recursive", action="store_true", help="also look in sub-folders of INPUT folders "
                   "(the output keeps the sub-folder names; DIR itself is skipped)")
    p.add_argument("--timeout", type=_positive, metavar="S",
                   help="wall-clock limit per file, retries included (default 180 for volc, 300 for dashscope)")
    widget_flags.add(p, widgets.VOLC["concurrency"], default=widgets.VOLC["concurrency"].default)
    for name in ("x_scale", "y_scale"):  # one flag for both vendors' scale (same range and default)
        widget_flags.add(p, widgets.VOLC[name], prefix="volc --expand-mode scale or dashscope --mode scale: ")
    p.add_argument("--image-format", choices=["jpeg", "png"],
                   help="upload format: volc default jpeg (q95, ~5x smaller; masks always PNG), dashscope "
                        "default png (up to 10 MB)")
    p.add_argument("--no-keep-original", action="store_true",
                   help="keep the vendor's pixels everywhere (default: paste the original back with a soft seam)")
    widget_flags.add(p, widgets.VOLC["output_resolution"])  # both vendors: the same choices and default
    p.add_argument("--store", metavar="FILE", help="the pack's credential store file (see credentials below)")
    p.add_argument("--quiet", action="store_true", help="no progress bar, no output paths, no summary; errors only")
    p.add_argument("--dry-run", action="store_true",
                   help="print the plan (calls per file, answered by the result cache, to pay) and the estimated "
                        "cost against today's spend and the daily limit; nothing is sent")
    p.add_argument("--no-cache", action="store_true",
                   help="pay for fresh results even where the result cache holds this very request's answer")

    v = p.add_argument_group(
        "Volcengine (--vendor volc)",
        "Ratio mode (default): the vendor pads by fractions of the image; --expand-mode gives them as fractions "
        "(--top/--bottom/--left/--right, 四边扩展), pixels per side, --x-scale/--y-scale (等比扩展), --aspect-ratio "
        "(画幅扩展) or --target-width/--target-height, placed by --anchor; each side 0-1x the image. Canvas mode: --mask FILE (the inputs "
        "are padded canvases, white = generate) or --pad-pixels (the CLI pads each input like MaskCanvasBuilder "
        "and sends canvas + mask). Input up to 4096 px a side and 5 MiB (shrunk automatically, noted in the "
        "sidecar). Every request is billed.")
    for name in ("top", "bottom", "left", "right", "prompt", "seed", "steps", "scale", "strength"):
        widget_flags.add(v, widgets.VOLC[name])
    widget_flags.add(v, widgets.VOLC["max_width"], metavar="PX")
    widget_flags.add(v, widgets.VOLC["max_height"], metavar="PX")
    widget_flags.add(v, widgets.VOLC["variants"])
    v.add_argument("--return-url", action="store_true", default=None,
                   help="ask the vendor for a download link instead of inline image data")
    widget_flags.add(v, widgets.VOLC["watermark"])
    widget_flags.add(v, widgets.VOLC["watermark_language"])
    widget_flags.add(v, widgets.VOLC["expand_mode"])
    for name in ("pixels_left", "pixels_top", "pixels_right", "pixels_bottom", "target_width", "target_height"):
        widget_flags.add(v, widgets.VOLC[name], metavar="PX")
    widget_flags.add(v, widgets.VOLC["aspect_ratio"], metavar="W:H")
    widget_flags.add(v, widgets.VOLC["anchor"])
    v.add_argument("--mask", metavar="FILE", help="canvas mode: mask PNG of the inputs' size, white = generate "
                   "(e.g. MaskCanvasBuilder's mask); the inputs are the padded canvases")
    v.add_argument("--pad-pixels", type=_four_ints, metavar="L,T,R,B",
                   help="canvas mode: pad each input by these pixels (MaskCanvasBuilder, pixels mode) and send "
                        "the canvas with its mask")
    for name in ("feathering", "overlap", "fill"):
        widget_flags.add(v, widgets.CANVAS[name], metavar="PX", prefix="with --pad-pixels: ")

    d = p.add_argument_group(
        "DashScope (--vendor dashscope)",
        "Exactly one expansion mode is sent. Images outside 512-4096 px a side are scaled in, offsets with "
        "them, so offsets stay in your own pixels (and with --output-resolution original the result comes "
        "back at your scale). Each successful image is billed; on timeout or Ctrl-C a pending task is "
        "cancelled and its id kept in the sidecar.")
    widget_flags.add(d, widgets.DASHSCOPE["mode"])
    widget_flags.add(d, widgets.DASHSCOPE["angle"], metavar="DEG")
    widget_flags.add(d, widgets.DASHSCOPE["output_ratio"])
    d.add_argument("--offsets", type=_four_ints, metavar="L,T,R,B", help="--mode offsets: pixels added per side, "
                   "in the input's own pixels")
    d.add_argument("--best-quality", action="store_true", default=None,
                   help="more detail, several times slower (vendor default off)")
    d.add_argument("--no-limit-image-size", action="store_true", default=None,
                   help="let results exceed 5 MB (the vendor limits them by default; large ones can fail)")
    d.add_argument("--no-watermark", action="store_true", default=None,
                   help="no 'Generated by AI' mark (the vendor adds it by default)")
    d.add_argument("--resume-task-id", action="append", metavar="ID",
                   help="fetch an earlier task's result instead of creating a new, billed task; repeat once per "
                        "input file, in order (the ids are in failed runs' sidecars)")
    p.set_defaults(func=cmd_outpaint)

    # demo
    p = sub.add_parser("demo", formatter_class=_Formatter, help="try everything offline on the sample image",
                       description="Runs MaskCanvasBuilder-style padding, VolcOutpaint (ratio and canvas mode) and "
                                   "DashScopeOutpaint on the pack's cloud_outpaint_sample.png against the built-in "
                                   "sandbox (no credentials, no network beyond 127.0.0.1, nothing billed), writes "
                                   "the results, a side-by-side contact sheet (contact_sheet.png) and summary.json.",
                       epilog=f"{EXIT_CODES}\n\n{TORCH_NOTE}")
    p.add_argument("--out", default="demo_output", metavar="DIR", help="output folder (default ./demo_output)")
    p.add_argument("--quiet", action="store_true", help="print only where the files are")
    p.set_defaults(func=cmd_demo)

    # check
    p = sub.add_parser("check", formatter_class=_Formatter, help="show (and test) the credentials found",
                       description="Shows, for each vendor, whether credentials are found and where from (env, "
                                   "store, sdk-file) with the last characters of the key; never a secret. "
                                   "--test makes one free authenticated call per configured vendor (Volcengine: "
                                   "a signed call without an image; DashScope: a lookup of a task that does not "
                                   "exist). Exit 0 if every configured vendor passed (or, without --test, if any "
                                   "is configured), 3 if none is configured, 1 if a test failed.",
                       epilog=f"{CREDENTIALS}")
    p.add_argument("--test", action="store_true", help="test the configured credentials (free, nothing billed)")
    p.add_argument("--sandbox", action="store_true", help="test the whole path against the built-in sandbox instead")
    p.add_argument("--vendor", choices=["all", "volc", "dashscope"], default="all", help="which vendor (default all)")
    p.add_argument("--store", metavar="FILE", help="the pack's credential store file")
    p.set_defaults(func=cmd_check)

    # spend
    p = sub.add_parser("spend", formatter_class=_Formatter, help="what the cloud calls have cost",
                       description="Today's and this month's estimated spend, the daily limit, the prices and the "
                                   "latest billable calls from the spend ledger (the same data as ComfyUI's "
                                   "GET /cloud_outpaint/spend). Prices: DashScope CNY 0.18 per image "
                                   f"({cost_state.PRICE_VARS['dashscope']}); Volcengine "
                                   f"{cost_state.PRICE_VARS['volc']} (not set until given); limit "
                                   f"{cost_state.LIMIT_VAR}. The ledger, cache and journal live in "
                                   f"${cost_state.DIR_VAR}, else $XDG_CACHE_HOME/cloud-outpaint or "
                                   "~/.cache/cloud-outpaint.")
    p.add_argument("--json", action="store_true", help="print the JSON of GET /cloud_outpaint/spend")
    p.add_argument("--last", type=int, default=10, metavar="N", help="recent entries shown (default 10)")
    p.set_defaults(func=cmd_spend)

    # cache
    p = sub.add_parser("cache", formatter_class=_Formatter, help="the result cache's size, or --clear it",
                       description="The durable result cache answers a request made before (same image, same "
                                   "parameters, same account) without a call. Shows its size; --clear empties it. "
                                   f"{cost_state.CACHE_VAR}=off turns it off, {cost_state.CACHE_MB_VAR} caps it "
                                   f"(default {cost_state.DEFAULT_CACHE_MB} MB, least recently used first out).")
    p.add_argument("--clear", action="store_true", help="remove every cached result")
    p.set_defaults(func=cmd_cache)

    # sandbox
    p = sub.add_parser("sandbox", formatter_class=_Formatter, help="run the offline sandbox server",
                       description="Runs the pack's offline emulator of both vendors' HTTP APIs on 127.0.0.1 in "
                                   "the foreground until Ctrl-C, printing its URL, its demo credentials and the "
                                   "environment variables (VOLC_BASE_URL, VOLC_ACCESSKEY, VOLC_SECRETKEY, "
                                   "DASHSCOPE_HTTP_BASE_URL, DASHSCOPE_API_KEY) that point the nodes or this CLI "
                                   "at it, then one line per request.")
    p.add_argument("--port", type=int, default=0, help="port (default: a free one)")
    p.add_argument("--latency", type=float, default=0.0, metavar="S", help="simulated processing seconds")
    p.add_argument("--set", action="append", metavar="NAME=VALUE",
                   help="a sandbox setting, e.g. volc_mask_white_means=keep or dashscope_running_s=5")
    p.add_argument("--quiet", action="store_true", help="no line per request")
    p.set_defaults(func=cmd_sandbox)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help (0) and usage errors (2)
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    try:
        return args.func(args)
    except (UsageError, InputError) as exc:  # InputError: bad input or a bad setting, found before anything was sent
        sys.stderr.write(f"{PROG} {args.command}: error: {exc}\n")
        return EXIT_USAGE
    except ConfigError as exc:
        sys.stderr.write(f"{PROG} {args.command}: {exc}\n")
        return EXIT_NO_CREDENTIALS
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        return EXIT_INTERRUPTED
