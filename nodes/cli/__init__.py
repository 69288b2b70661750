"""The pack's command line (`python cli.py ...` from the pack folder): outpaint, demo, check, sandbox.

Built on the same ComfyUI-free core as the nodes (nodes/core): the same runs, the same
credentials, the same sandbox. Nothing here imports comfy_api or ComfyUI. torch is imported only by
the commands that process images, so `--help`, usage errors and missing credentials are fast.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import pathlib
import re
import shutil
import signal
import sys
import threading
import time
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from datetime import datetime, timezone

from ..core import backends, credential_store, geometry
from ..core.errors import ConfigError, InputError, ItemError, VendorError

PROG = "python cli.py"
PACK_ROOT = pathlib.Path(__file__).resolve().parents[2]
SAMPLE = PACK_ROOT / "example_workflows" / "sample_input.png"
IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".webp")

EXIT_OK, EXIT_SOME_FAILED, EXIT_USAGE, EXIT_NO_CREDENTIALS, EXIT_INTERRUPTED, EXIT_VENDOR = 0, 1, 2, 3, 4, 5
EXIT_CODES = """exit codes:
  0  everything done
  1  some files failed (the others were written), or a connection test failed
  2  bad usage or input: nothing was sent to any vendor
  3  no credentials for the vendor (try --sandbox to run offline)
  4  interrupted (Ctrl-C): vendor tasks still in flight were cancelled where the vendor allows
  5  the vendor failed on every file: nothing was written"""

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


class Interrupted(KeyboardInterrupt):
    """Raised from the runs' poll hook once Ctrl-C was pressed: the run cancels its vendor work."""


class UsageError(Exception):
    """Bad usage or input found before anything was sent (exit 2)."""


def _need_torch():
    try:
        import torch  # noqa: F401
    except ImportError:
        raise UsageError("torch is not installed in this Python. Run the CLI with ComfyUI's Python, or install "
                         "the torch build for your machine yourself (the CPU build where there is no GPU), then "
                         "pip install -r requirements.txt") from None


# ---- small parsing helpers ------------------------------------------------------------------------

def _four_ints(text: str) -> tuple[int, int, int, int]:
    parts = [p.strip() for p in text.split(",")]
    try:
        values = tuple(int(p) for p in parts)
    except ValueError:
        values = ()
    if len(values) != 4 or min(values) < 0:
        raise argparse.ArgumentTypeError(f"{text!r}: give four whole numbers >= 0 as LEFT,TOP,RIGHT,BOTTOM")
    return values


def _number(low: float, high: float, above: bool, what: str):
    """An argparse type: a float in [low, high] (above=True: strictly above `low`)."""
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if (value <= low if above else value < low) or value > high:
            raise argparse.ArgumentTypeError(f"{value} is outside {what}")
        return value
    return parse


_fraction = _number(0.0, 1.0, False, "0..1 (Volcengine's range for a side)")
_positive = _number(0.0, float("inf"), True, "the allowed range: it must be above 0")


def _store_path(args) -> pathlib.Path:
    """--store, else $CLOUD_OUTPAINT_STORE, else ComfyUI's store when the pack is in custom_nodes and it
    exists, else ~/.config/cloud-outpaint/credentials.json."""
    if getattr(args, "store", None):
        return pathlib.Path(args.store).expanduser()
    if not os.environ.get(credential_store.ENV_VAR) and PACK_ROOT.parent.name == "custom_nodes":
        comfy = credential_store.path_in_user_dir(PACK_ROOT.parent.parent / "user")
        if comfy.is_file():
            return comfy
    return credential_store.default_path(os.environ)


# ---- progress -------------------------------------------------------------------------------------

class Progress:
    """A one-line text bar on stderr (only on a terminal, and not with --quiet), plus messages."""

    def __init__(self, total: int, quiet: bool, stream=None):
        self.stream = stream or sys.stderr
        self.total, self.done, self.failed, self.quiet = total, 0, 0, quiet
        self.started = time.monotonic()
        self.enabled = not quiet and total > 1 and hasattr(self.stream, "isatty") and self.stream.isatty()
        self._lock = threading.Lock()
        self._shown = False

    def _line(self) -> str:
        width = 30
        filled = int(width * self.done / self.total) if self.total else width
        failed = f", {self.failed} failed" if self.failed else ""
        return (f"[{'#' * filled}{'.' * (width - filled)}] {self.done}/{self.total} files{failed}, "
                f"{time.monotonic() - self.started:.0f} s")

    def draw(self) -> None:
        if not self.enabled:
            return
        with self._lock:
            columns = shutil.get_terminal_size((80, 20)).columns
            self.stream.write("\r" + self._line()[:columns - 1].ljust(columns - 1))
            self.stream.flush()
            self._shown = True

    def _clear(self) -> None:
        if self._shown:
            columns = shutil.get_terminal_size((80, 20)).columns
            self.stream.write("\r" + " " * (columns - 1) + "\r")
            self._shown = False

    def message(self, text: str, stream=None, always: bool = False) -> None:
        if self.quiet and not always:
            return
        with self._lock:
            self._clear()
            target = stream or self.stream
            target.write(text + "\n")
            target.flush()
        self.draw()

    def close(self) -> None:
        with self._lock:
            self._clear()
            self.stream.flush()


# ---- outpaint: inputs -----------------------------------------------------------------------------

@dataclasses.dataclass
class Source:
    path: pathlib.Path
    key: str            # output stem, unique in the run (may include sub-folders with --recursive)
    width: int = 0      # after EXIF orientation
    height: int = 0


def _is_output(path: pathlib.Path, out_dir: pathlib.Path) -> bool:
    """A result of an earlier run (so re-running on a folder that holds --out does not outpaint results)."""
    return out_dir in path.resolve().parents and re.search(r"_outpaint(_v\d+)?$", path.stem) is not None


def collect_inputs(inputs: list[str], recursive: bool, out_dir: pathlib.Path) -> list[Source]:
    sources, seen, used = [], set(), {}
    out_dir = out_dir.resolve()
    for text in inputs:
        path = pathlib.Path(text).expanduser()
        if path.is_dir():
            walker = path.rglob("*") if recursive else path.iterdir()
            found = sorted(p for p in walker if p.is_file() and p.suffix.lower() in IMAGE_EXTS
                           and not _is_output(p, out_dir))
            if not found:
                raise UsageError(f"{path}: no PNG/JPEG/WEBP files in this folder"
                                 + ("" if recursive else " (add --recursive to look in sub-folders)"))
            pairs = [(p, str(p.relative_to(path).with_suffix(""))) for p in found]
        elif path.is_file():
            pairs = [(path, path.stem)]
        else:
            raise UsageError(f"{path}: no such file or folder")
        for p, key in pairs:
            real = p.resolve()
            if real in seen:
                continue
            seen.add(real)
            base, n = key, used.get(key, 0)
            if n:  # same name from another folder or with another extension: keep both
                key = f"{base}_{n + 1}"
                while key in used:
                    n += 1
                    key = f"{base}_{n + 1}"
            used[base] = n + 1
            used.setdefault(key, 1)
            sources.append(Source(p, key))
    return sources


def read_header(source: Source) -> None:
    """Width and height (after EXIF rotation) from the file header; refuses files Pillow cannot read."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(source.path) as img:
            width, height = img.size
            try:
                orientation = img.getexif().get(0x0112, 1)
            except Exception:  # noqa: BLE001 - a damaged EXIF block: the decoder ignores it too
                orientation = 1
    except (OSError, UnidentifiedImageError, ValueError) as exc:
        raise UsageError(f"{source.path}: not a readable image ({exc.__class__.__name__}: {exc})") from None
    source.width, source.height = (height, width) if orientation in (5, 6, 7, 8) else (width, height)


# ---- outpaint: the plan ---------------------------------------------------------------------------

VOLC_ONLY = ("prompt", "seed", "steps", "scale", "strength", "top", "bottom", "left", "right", "max_width",
             "max_height", "variants", "mask", "pad_pixels", "feathering", "fill", "overlap", "return_url",
             "watermark", "watermark_language")
DASHSCOPE_ONLY = ("mode", "angle", "output_ratio", "x_scale", "y_scale", "offsets", "best_quality",
                  "no_limit_image_size", "no_watermark", "resume_task_id")
DEFAULTS = {"volc": {"image_format": "jpeg", "timeout": 180.0}, "dashscope": {"image_format": "png", "timeout": 300.0}}
WATERMARKS = {"off": None, "bottom-right": 0, "bottom-left": 1, "top-left": 2, "top-right": 3}


def _flag(dest: str) -> str:
    return "--" + dest.replace("_", "-")


@dataclasses.dataclass
class Plan:
    vendor: str
    backend: str
    mode: str
    params: object              # VolcParams | DashScopeParams
    options: object             # RunOptions | DashScopeOptions
    config: object
    file_workers: int
    mask: object = None         # canvas mode with --mask: MASK [1,H,W]
    mask_path: str | None = None
    pad: tuple | None = None    # canvas mode with --pad-pixels: (l, t, r, b)
    canvas_settings: dict = dataclasses.field(default_factory=dict)


def _given(args, names) -> list[str]:
    return [_flag(n) for n in names if getattr(args, n, None) is not None]


def make_plan(args, sources: list[Source]) -> Plan:
    """Everything validated before any credential is looked up or any byte is sent."""
    vendor = args.vendor
    other = _given(args, DASHSCOPE_ONLY if vendor == "volc" else VOLC_ONLY)
    if other:
        owner = "DashScope" if vendor == "volc" else "Volcengine"
        raise UsageError(f"{', '.join(other)}: {owner} option{'s' if len(other) > 1 else ''}, not for --vendor "
                         f"{vendor} (see {PROG} outpaint --help)")
    image_format = args.image_format or DEFAULTS[vendor]["image_format"]
    timeout = args.timeout or DEFAULTS[vendor]["timeout"]
    concurrency = args.concurrency
    if not 1 <= concurrency <= 8:
        raise UsageError(f"--concurrency {concurrency}: use 1 to 8 (and no more than your account's quota)")
    keep = not args.no_keep_original
    backend = "sandbox" if args.sandbox else "cloud"
    if vendor == "volc":
        _need_torch()  # the Volcengine client's module needs it; DashScope's checks do not
        return _volc_plan(args, sources, backend, image_format, timeout, concurrency, keep)
    return _dashscope_plan(args, sources, backend, image_format, timeout, concurrency, keep)


def _volc_plan(args, sources, backend, image_format, timeout, concurrency, keep) -> Plan:
    from ..core import canvas, imagecodec, volc, volc_run

    if image_format not in ("jpeg", "png"):
        raise UsageError(f"--image-format {image_format}: Volcengine takes jpeg or png")
    canvas_mode = args.mask is not None or args.pad_pixels is not None
    if args.mask is not None and args.pad_pixels is not None:
        raise UsageError("--mask and --pad-pixels are two ways to give canvas mode: use one")
    sides = _given(args, ("top", "bottom", "left", "right"))
    if canvas_mode and sides:
        raise UsageError(f"{', '.join(sides)}: ratio-mode fractions do not apply in canvas mode "
                         "(--mask / --pad-pixels)")
    canvas_only = _given(args, ("feathering", "fill", "overlap"))
    if canvas_only and args.pad_pixels is None:
        raise UsageError(f"{', '.join(canvas_only)} only apply with --pad-pixels (the CLI builds the canvas)")
    position = WATERMARKS[args.watermark or "off"]
    mark = None if position is None else volc.Watermark(position, int((args.watermark_language or "zh") == "en"))
    def pick(name, default):
        return default if getattr(args, name) is None else getattr(args, name)

    try:
        params = volc.VolcParams(prompt=pick("prompt", ""), seed=pick("seed", -1), steps=pick("steps", 30),
                                 scale=pick("scale", 7.0), strength=pick("strength", 0.8), top=pick("top", 0.1),
                                 bottom=pick("bottom", 0.1), left=pick("left", 0.1), right=pick("right", 0.1),
                                 max_width=pick("max_width", 1920), max_height=pick("max_height", 1920),
                                 return_url=bool(args.return_url), watermark=mark)
        params.validate(canvas_mode)
        variants = pick("variants", 1)
        if not 1 <= variants <= 4:
            raise InputError(f"--variants {variants}: use 1 to 4 (each one is a billed request)")
        config = volc.VolcConfig.from_env()
        plan = Plan("volc", backend, "canvas" if canvas_mode else "ratio", params, None, config, 1)
        if args.pad_pixels is not None:
            plan.pad = args.pad_pixels
            fill = pick("fill", "grey")
            if fill not in canvas.FILL_MODES:
                raise InputError(f"--fill {fill}: use one of {', '.join(canvas.FILL_MODES)}")
            plan.canvas_settings = {"feathering": pick("feathering", 40), "overlap": pick("overlap", 0), "fill": fill}
            if not any(plan.pad):
                raise InputError("--pad-pixels 0,0,0,0 pads nothing: nothing to outpaint")
        if args.mask is not None:
            try:
                mask = imagecodec.decode_mask(pathlib.Path(args.mask).read_bytes())
            except (OSError, imagecodec.DecodeError) as exc:
                raise InputError(f"--mask {args.mask}: {exc}") from None
            if float(mask.max()) < 0.5:
                raise InputError(f"--mask {args.mask} marks nothing to generate: white (255) = generate")
            plan.mask, plan.mask_path = mask, str(args.mask)
        for s in sources:
            if plan.mask is not None and (s.width, s.height) != (plan.mask.shape[2], plan.mask.shape[1]):
                raise InputError(f"{s.path} is {s.width}x{s.height} but --mask is {plan.mask.shape[2]}x"
                                 f"{plan.mask.shape[1]}: with --mask every input is a padded canvas of the "
                                 "mask's size (or use --pad-pixels to pad the originals)")
            if plan.pad is not None:
                geometry.pad_pixels(s.width, s.height, *plan.pad)
            elif not canvas_mode:
                geometry.pad_fractions(s.width, s.height, params.left, params.top, params.right, params.bottom)
    except (InputError, ValueError) as exc:  # ValueError: a malformed VOLC_* setting in the environment
        raise UsageError(str(exc)) from None
    # variants of one file run concurrently too; files x variants in flight never exceed --concurrency
    per_run = min(variants, concurrency)
    plan.file_workers = max(1, concurrency // per_run)
    plan.options = volc_run.RunOptions(variants=variants, keep_original=keep, timeout_s=timeout,
                                       concurrency=per_run, image_format=image_format)
    return plan


def _dashscope_plan(args, sources, backend, image_format, timeout, concurrency, keep) -> Plan:
    from ..core import dashscope  # no torch: usage and credential errors stay fast

    if image_format not in ("jpeg", "png"):
        raise UsageError(f"--image-format {image_format}: DashScope takes png or jpeg here")
    mode = args.mode or "scale"
    wrong = {"output_ratio": ("output_ratio",), "scale": ("x_scale", "y_scale"), "offsets": ("offsets",)}
    for m, names in wrong.items():
        given = _given(args, names)
        if given and m != mode:
            raise UsageError(f"{', '.join(given)} only apply with --mode {m} (DashScope takes exactly one "
                             f"expansion; this run uses --mode {mode})")
    offsets = args.offsets or (0, 0, 0, 0)
    params = dashscope.DashScopeParams(
        mode=mode, angle=args.angle or 0, output_ratio=args.output_ratio or "16:9",
        x_scale=1.5 if args.x_scale is None else args.x_scale, y_scale=1.5 if args.y_scale is None else args.y_scale,
        left_offset=offsets[0], top_offset=offsets[1], right_offset=offsets[2], bottom_offset=offsets[3],
        best_quality=bool(args.best_quality), limit_image_size=not args.no_limit_image_size,
        add_watermark=not args.no_watermark)
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
    options = {"keep_original": keep, "timeout_s": timeout, "concurrency": 1, "image_format": image_format}
    plan = Plan("dashscope", backend, mode, params, options, config, concurrency)
    plan.canvas_settings = {"resume": resume}
    return plan


# ---- outpaint: one file ---------------------------------------------------------------------------

def _jsonable(value):
    if dataclasses.is_dataclass(value):
        return dataclasses.asdict(value)
    return value


def _ids(info: dict) -> dict:
    results = info.get("results", [])
    out = {"request_ids": [r["request_id"] for r in results if r.get("request_id")]}
    tasks = [r["task_id"] for r in results if r.get("task_id")]
    if tasks:
        out["task_ids"] = tasks
    return out


def _write_atomic(path: pathlib.Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def process_file(source: Source, index: int, plan: Plan, creds, out_dir: pathlib.Path, hooks) -> dict:
    """Runs one file; returns its sidecar record (status ok). Raises on failure."""
    from ..core import canvas, dashscope_run, imagecodec, volc_run

    started, t0 = datetime.now(timezone.utc), time.monotonic()
    image = imagecodec.decode_image(source.path.read_bytes(), exif_transpose=True)
    record = {"input": str(source.path), "input_size": [image.shape[2], image.shape[1]], "vendor": plan.vendor,
              "backend": plan.backend, "base_url": creds.base_url, "mode": plan.mode,
              "parameters": _jsonable(plan.params), "options": _jsonable(plan.options)}
    if plan.vendor == "volc":
        mask = plan.mask
        if plan.pad is not None:  # MaskCanvasBuilder, pixels mode
            s = plan.canvas_settings
            placement = geometry.pad_pixels(image.shape[2], image.shape[1], *plan.pad)
            mask, _ = canvas.build_mask(placement, 1, s["feathering"], s["overlap"])
            image = canvas.build_canvas(image, placement, s["fill"])
            record["canvas"] = {"pad_pixels": list(plan.pad), **s, "placement": placement.as_dict()}
        elif mask is not None:
            record["canvas"] = {"mask": plan.mask_path}
        images, _, info = volc_run.run(image, mask, plan.params, creds, plan.options, plan.config, hooks)
    else:
        resume = plan.canvas_settings["resume"]
        options = dataclasses.replace(plan.options, resume_task_ids=[resume[index]] if resume else [])
        record["options"] = _jsonable(options)
        images, _, info = dashscope_run.run(image, plan.params, creds, options, plan.config, hooks)
    info = json.loads(info)
    outputs = []
    for v in range(images.shape[0]):
        name = f"{source.key}_outpaint" + (f"_v{v + 1}" if images.shape[0] > 1 else "") + ".png"
        _write_atomic(out_dir / name, imagecodec.image_to_bytes(images, v, "png"))
        outputs.append({"file": name, "width": int(images.shape[2]), "height": int(images.shape[1])})
    record.update(status="ok", outputs=outputs, **_ids(info), started=started.isoformat(timespec="seconds"),
                  seconds=round(time.monotonic() - t0, 2), info=info)
    return record


def _error_record(source: Source, plan: Plan, creds, error: BaseException) -> dict:
    cause = error.cause if isinstance(error, ItemError) else error
    entry = {"message": str(cause), "type": cause.__class__.__name__}
    if isinstance(cause, VendorError):
        entry.update(code=str(cause.code), meaning=cause.meaning, vendor_message=cause.message,
                     http_status=cause.http_status, request_id=cause.request_id, task_id=cause.task_id,
                     billed=cause.billed)
    return {"input": str(source.path), "input_size": [source.width, source.height], "vendor": plan.vendor,
            "backend": plan.backend, "base_url": creds.base_url, "mode": plan.mode,
            "parameters": _jsonable(plan.params), "options": _jsonable(plan.options), "status": "failed",
            "error": entry}


def _is_vendor_failure(error: BaseException) -> bool:
    cause = error.cause if isinstance(error, ItemError) else error
    return isinstance(cause, VendorError)


# ---- outpaint: the command ------------------------------------------------------------------------

def cmd_outpaint(args) -> int:
    out_dir = pathlib.Path(args.out).expanduser()
    sources = collect_inputs(args.inputs, args.recursive, out_dir)
    for s in sources:
        read_header(s)
    plan = make_plan(args, sources)
    try:
        if plan.vendor == "volc":
            creds = backends.volc_credentials(plan.backend, os.environ, _store_path(args))
        else:
            creds = backends.dashscope_credentials(plan.backend, os.environ, _store_path(args))
    except ConfigError as exc:
        sys.stderr.write(f"{PROG} outpaint: no credentials: {exc}\n"
                         f"Run `{PROG} check` to see what is found, or add --sandbox to try the whole path "
                         "offline for free.\n")
        return EXIT_NO_CREDENTIALS
    _need_torch()
    if plan.vendor == "dashscope":
        from ..core import dashscope_run

        plan.options = dashscope_run.DashScopeOptions(**plan.options)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"--out {out_dir}: {exc}") from None
    return _run_files(args, plan, creds, sources, out_dir)


def _run_files(args, plan: Plan, creds, sources: list[Source], out_dir: pathlib.Path) -> int:
    from ..core.runner import RunHooks

    stop = threading.Event()
    progress = Progress(len(sources), args.quiet)
    where = "the sandbox (offline, free)" if plan.backend == "sandbox" else f"{creds.base_url} (billed)"
    progress.message(f"{plan.vendor} {plan.mode}: {len(sources)} file(s) -> {out_dir}/ via {where}")

    def poll():
        if stop.is_set():
            raise Interrupted()

    hooks = RunHooks(poll=poll)
    written, failed, vendor_failed, interrupted = 0, 0, 0, False

    def task(index: int, source: Source):
        if stop.is_set():
            raise Interrupted()
        return process_file(source, index, plan, creds, out_dir, hooks)

    def on_sigint(signum, frame):
        # Only flags the stop (the bookkeeping below is never cut in half); the runs see it at their
        # next poll, cancel their vendor work and end. A second Ctrl-C quits at once.
        if stop.is_set():
            os._exit(EXIT_INTERRUPTED)
        stop.set()

    try:
        previous = signal.signal(signal.SIGINT, on_sigint)
    except ValueError:  # not the main thread (embedded use): KeyboardInterrupt handling below still works
        previous = None
    pool = ThreadPoolExecutor(max_workers=plan.file_workers, thread_name_prefix="cli-file")
    started = time.monotonic()
    futures = {pool.submit(task, i, s): s for i, s in enumerate(sources)}
    pending = set(futures)
    progress.draw()
    try:
        while pending:
            try:
                done, pending = wait(pending, timeout=0.25, return_when=FIRST_COMPLETED)
            except KeyboardInterrupt:
                stop.set()
                done = set()
            if stop.is_set() and not interrupted:
                interrupted = True
                progress.message("interrupted: cancelling the vendor work in flight (Ctrl-C again to quit "
                                 "at once)", always=True)
            for future in done:
                source = futures[future]
                error = future.exception()
                if isinstance(error, KeyboardInterrupt):
                    continue
                if error is None:
                    record = future.result()
                    written += 1
                    for o in record["outputs"]:
                        progress.message(str(out_dir / o["file"]), stream=sys.stdout)
                else:
                    failed += 1
                    progress.failed += 1
                    vendor_failed += _is_vendor_failure(error)
                    record = _error_record(source, plan, creds, error)
                    progress.message(f"FAILED {source.path}: {record['error']['message']}", always=True)
                progress.done += 1
                _write_atomic(out_dir / f"{source.key}_outpaint.json",
                              json.dumps(record, ensure_ascii=False, indent=1).encode("utf-8"))
            progress.draw()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        if previous is not None:
            signal.signal(signal.SIGINT, previous)
        progress.close()
    seconds = time.monotonic() - started
    skipped = len(sources) - written - failed
    summary = f"{written} written, {failed} failed" + (f", {skipped} not done" if skipped else "") + \
        f" in {seconds:.1f} s -> {out_dir}/"
    if interrupted:
        sys.stderr.write(f"interrupted: {summary}\n")
        return EXIT_INTERRUPTED
    if not args.quiet or failed:
        sys.stderr.write(summary + "\n")
    if failed == 0:
        return EXIT_OK
    if written == 0 and vendor_failed:
        return EXIT_VENDOR
    return EXIT_SOME_FAILED


# ---- demo -----------------------------------------------------------------------------------------

def _label_tile(image, label: str, height: int):
    from PIL import Image, ImageDraw, ImageFont

    w = max(1, round(image.width * height / image.height))
    tile = image.convert("RGB").resize((w, height), Image.LANCZOS)
    strip = 22
    out = Image.new("RGB", (max(w, 8 * len(label) + 8), height + strip), (255, 255, 255))
    ImageDraw.Draw(out).text((4, 5), label, fill=(0, 0, 0), font=ImageFont.load_default())
    out.paste(tile, (0, strip))
    return out


def contact_sheet(entries: list[tuple[str, object]], height: int = 200, margin: int = 10):
    """PIL images side by side, each scaled to `height` with its label above."""
    from PIL import Image

    tiles = [_label_tile(img, label, height) for label, img in entries]
    width = sum(t.width for t in tiles) + margin * (len(tiles) + 1)
    sheet = Image.new("RGB", (width, max(t.height for t in tiles) + 2 * margin), (235, 235, 235))
    x = margin
    for t in tiles:
        sheet.paste(t, (x, margin))
        x += t.width + margin
    return sheet


def cmd_demo(args) -> int:
    _need_torch()
    from PIL import Image

    from ..core import canvas, dashscope, dashscope_run, imagecodec, volc, volc_run
    from ..core.runner import RunHooks

    out_dir = pathlib.Path(args.out).expanduser()
    out_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    say = (lambda text: None) if args.quiet else (lambda text: print(text, flush=True))
    say("demo: everything runs against the built-in sandbox on 127.0.0.1 (no account, nothing billed)")
    image = imagecodec.decode_image(SAMPLE.read_bytes())
    h, w = image.shape[1:3]
    files, summary = [], {"input": str(SAMPLE), "input_size": [w, h], "steps": []}

    def save(name: str, data: bytes, step: dict) -> pathlib.Path:
        path = out_dir / name
        _write_atomic(path, data)
        files.append(path)
        step.setdefault("files", []).append(name)
        return path

    # 1. MaskCanvasBuilder (pixels mode, edge fill, feathered mask)
    pad = (64, 32, 64, 32)
    placement = geometry.plan_expansion(w, h, "pixels", left=pad[0], top=pad[1], right=pad[2], bottom=pad[3])
    mask, band = canvas.build_mask(placement, 1, 24)
    padded = canvas.build_canvas(image, placement, "edge")
    step = {"step": "MaskCanvasBuilder", "expand_mode": "pixels", "pad_ltrb": list(pad), "fill": "edge",
            "feathering": band.feathering, "placement": placement.as_dict()}
    save("01_canvas.png", imagecodec.image_to_bytes(padded), step)
    save("01_mask.png", imagecodec.mask_to_png(mask), step)
    summary["steps"].append(step)
    say(f"  MaskCanvasBuilder: {w}x{h} -> canvas {placement.canvas_width}x{placement.canvas_height}")

    hooks = RunHooks()
    volc_creds = backends.volc_credentials("sandbox")
    # 2. VolcOutpaint, ratio mode
    params = volc.VolcParams(prompt="a wider view", seed=42, top=0.25, bottom=0.25, left=0.25, right=0.25)
    t = time.monotonic()
    ratio_img, _, info = volc_run.run(image, None, params, volc_creds, volc_run.RunOptions(timeout_s=60), hooks=hooks)
    step = {"step": "VolcOutpaint ratio", "parameters": dataclasses.asdict(params),
            "output_size": [ratio_img.shape[2], ratio_img.shape[1]], "seconds": round(time.monotonic() - t, 2),
            "info": json.loads(info)}
    save("02_volc_ratio.png", imagecodec.image_to_bytes(ratio_img), step)
    summary["steps"].append(step)
    say(f"  VolcOutpaint ratio 0.25: -> {ratio_img.shape[2]}x{ratio_img.shape[1]}")
    # 3. VolcOutpaint, canvas mode with the canvas and mask of step 1
    params = volc.VolcParams(prompt="a wider view", seed=42)
    t = time.monotonic()
    canvas_img, _, info = volc_run.run(padded, mask, params, volc_creds, volc_run.RunOptions(timeout_s=60),
                                       hooks=hooks)
    step = {"step": "VolcOutpaint canvas", "parameters": dataclasses.asdict(params),
            "output_size": [canvas_img.shape[2], canvas_img.shape[1]], "seconds": round(time.monotonic() - t, 2),
            "info": json.loads(info)}
    save("03_volc_canvas.png", imagecodec.image_to_bytes(canvas_img), step)
    summary["steps"].append(step)
    say(f"  VolcOutpaint canvas (MaskCanvasBuilder's canvas + mask): -> {canvas_img.shape[2]}x{canvas_img.shape[1]}")
    # 4. DashScopeOutpaint, scale mode
    ds_params = dashscope.DashScopeParams(mode="scale", x_scale=1.5, y_scale=1.5)
    t = time.monotonic()
    ds_img, _, info = dashscope_run.run(image, ds_params, backends.dashscope_credentials("sandbox"),
                                        dashscope_run.DashScopeOptions(timeout_s=60), hooks=hooks)
    step = {"step": "DashScopeOutpaint scale", "parameters": dataclasses.asdict(ds_params),
            "output_size": [ds_img.shape[2], ds_img.shape[1]], "seconds": round(time.monotonic() - t, 2),
            "info": json.loads(info)}
    save("04_dashscope_scale.png", imagecodec.image_to_bytes(ds_img), step)
    summary["steps"].append(step)
    say(f"  DashScopeOutpaint scale 1.5x1.5: -> {ds_img.shape[2]}x{ds_img.shape[1]}")

    def pil(tensor_or_mask, is_mask=False):
        arr = imagecodec.mask_to_uint8(tensor_or_mask)[0] if is_mask else imagecodec.image_to_uint8(tensor_or_mask)[0]
        return Image.fromarray(arr)

    sheet = contact_sheet([(f"input {w}x{h}", pil(image)),
                           (f"canvas {placement.canvas_width}x{placement.canvas_height}", pil(padded)),
                           ("mask", pil(mask, True)),
                           (f"Volc ratio {ratio_img.shape[2]}x{ratio_img.shape[1]}", pil(ratio_img)),
                           (f"Volc canvas {canvas_img.shape[2]}x{canvas_img.shape[1]}", pil(canvas_img)),
                           (f"DashScope {ds_img.shape[2]}x{ds_img.shape[1]}", pil(ds_img))])
    sheet_path = out_dir / "contact_sheet.png"
    sheet.save(sheet_path)
    files.append(sheet_path)
    summary.update(contact_sheet={"file": sheet_path.name, "width": sheet.width, "height": sheet.height},
                   seconds=round(time.monotonic() - t0, 2), sandbox=backends.shared_sandbox().url)
    _write_atomic(out_dir / "summary.json", json.dumps(summary, ensure_ascii=False, indent=1).encode("utf-8"))
    files.append(out_dir / "summary.json")
    print(f"demo done in {time.monotonic() - t0:.1f} s; files in {out_dir.resolve()}:")
    for f in files:
        print(f"  {f.name}")
    print(f"open {sheet_path.resolve()} to compare them side by side")
    return EXIT_OK


# ---- check ----------------------------------------------------------------------------------------

NAMES = {"volc": "Volcengine", "dashscope": "DashScope"}


def cmd_check(args) -> int:
    from ..core import connection_check

    store = _store_path(args)
    vendors = list(credential_store.VENDORS) if args.vendor == "all" else [args.vendor]
    print(f"credential store: {store} ({'present' if store.is_file() else 'absent'})")
    configured = []
    for vendor in vendors:
        status = credential_store.credential_status(vendor, os.environ, store)
        if status["configured"]:
            configured.append(vendor)
            extra = [f"kind {status['kind']}"] if status.get("kind") else []
            extra += [f"workspace {status['workspace']}"] if status.get("workspace") else []
            print(f"{NAMES[vendor]}: configured from {status['source']}, key {status['hint']}, "
                  f"base URL {status['base_url']}" + "".join(f", {e}" for e in extra))
        else:
            print(f"{NAMES[vendor]}: not configured: {status['problem']}")
    if args.sandbox:
        print("testing against the built-in sandbox (offline, free):")
        tested = [(v, connection_check.run(v, "sandbox")) for v in vendors]
    elif args.test:
        if not configured:
            print(f"nothing to test: no credentials found. `{PROG} check --sandbox` tests the whole path offline.")
            return EXIT_NO_CREDENTIALS
        print("testing (free calls: nothing is processed or billed):")
        tested = [(v, connection_check.run(v, "cloud", os.environ, store)) for v in configured]
    else:
        if not configured:
            print(f"no credentials found; set them (see `{PROG} check --help`) or use --sandbox.")
            return EXIT_NO_CREDENTIALS
        return EXIT_OK
    ok = True
    for vendor, answer in tested:
        ok &= bool(answer["ok"])
        ids = f" [code {answer['code']}]" if answer.get("code") and not answer["ok"] else ""
        print(f"  {NAMES[vendor]}: {'OK' if answer['ok'] else 'FAILED'}: {answer['message']}{ids}")
    return EXIT_OK if ok else EXIT_SOME_FAILED


# ---- sandbox --------------------------------------------------------------------------------------

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
               f"--sandbox\n  {PROG} outpaint a.jpg --vendor dashscope --mode offsets --offsets 256,0,256,0\n\n"
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
    p.add_argument("--concurrency", type=int, default=2, metavar="N",
                   help="requests/tasks in flight at once, 1-8 (default 2). Volcengine's quota is per account "
                        "(unpublished; 2 is safe); DashScope allows 1-5 concurrent tasks per account and 2 task "
                        "creations per second (kept automatically)")
    p.add_argument("--image-format", choices=["jpeg", "png"],
                   help="upload format: volc default jpeg (q95, ~5x smaller; masks always PNG), dashscope "
                        "default png (up to 10 MB)")
    p.add_argument("--no-keep-original", action="store_true",
                   help="keep the vendor's pixels everywhere (default: paste the original back with a soft seam)")
    p.add_argument("--store", metavar="FILE", help="the pack's credential store file (see credentials below)")
    p.add_argument("--quiet", action="store_true", help="no progress bar, no output paths, no summary; errors only")

    v = p.add_argument_group(
        "Volcengine (--vendor volc)",
        "Ratio mode (default): the vendor pads by fractions of the image. Canvas mode: --mask FILE (the inputs "
        "are padded canvases, white = generate) or --pad-pixels (the CLI pads each input like MaskCanvasBuilder "
        "and sends canvas + mask). Input up to 4096 px a side and 5 MiB (shrunk automatically, noted in the "
        "sidecar). Every request is billed.")
    for side, dim in (("top", "height"), ("bottom", "height"), ("left", "width"), ("right", "width")):
        v.add_argument(f"--{side}", type=_fraction, metavar="F",
                       help=f"ratio mode: fraction of the {dim} added on the {side}, 0-1 (default 0.1)")
    v.add_argument("--prompt", help="what should appear in the new area (optional; ~100 words are read, moderated)")
    v.add_argument("--seed", type=int, help="-1 = the vendor picks (default); variants use seed, seed+1, ...")
    v.add_argument("--steps", type=int, help="sampling steps 1-100 (default 30)")
    v.add_argument("--scale", type=float, help="prompt strength 1-20 (default 7)")
    v.add_argument("--strength", type=float, help="0.1-1, lower stays closer to the original (default 0.8)")
    v.add_argument("--max-width", type=int, metavar="PX", help="64-8192 (default 1920): the vendor resizes its "
                   "result to fit max-width x max-height")
    v.add_argument("--max-height", type=int, metavar="PX", help="64-8192 (default 1920)")
    v.add_argument("--variants", type=int, metavar="N", help="results per image, 1-4 (default 1; each is billed)")
    v.add_argument("--return-url", action="store_true", default=None,
                   help="ask the vendor for a download link instead of inline image data")
    v.add_argument("--watermark", choices=list(WATERMARKS), help="the vendor's visible AI label (default off)")
    v.add_argument("--watermark-language", choices=["zh", "en"], help="label text: zh AI生成 (default), en")
    v.add_argument("--mask", metavar="FILE", help="canvas mode: mask PNG of the inputs' size, white = generate "
                   "(e.g. MaskCanvasBuilder's mask); the inputs are the padded canvases")
    v.add_argument("--pad-pixels", type=_four_ints, metavar="L,T,R,B",
                   help="canvas mode: pad each input by these pixels (MaskCanvasBuilder, pixels mode) and send "
                        "the canvas with its mask")
    v.add_argument("--feathering", type=int, metavar="PX", help="with --pad-pixels: feather of the mask into the "
                   "original (default 40, shrunk to fit)")
    v.add_argument("--overlap", type=int, metavar="PX", help="with --pad-pixels: px of the original repainted "
                   "at the seam (default 0)")
    v.add_argument("--fill", help="with --pad-pixels: what the new area shows before generation: grey (default), "
                   "edge, reflect, blur")

    d = p.add_argument_group(
        "DashScope (--vendor dashscope)",
        "Exactly one expansion mode is sent. Images outside 512-4096 px a side are scaled in and the result "
        "scaled back, so offsets stay in your own pixels. Each successful image is billed; on timeout or "
        "Ctrl-C a pending task is cancelled and its id kept in the sidecar.")
    d.add_argument("--mode", choices=list(geometry.DASHSCOPE_MODES),
                   help="scale (default): x/y scale, centred; output_ratio: grow to an aspect ratio; offsets: "
                        "pixels per side; rotate_only: only rotate")
    d.add_argument("--angle", type=int, metavar="DEG", help="rotate counter-clockwise first, 0-359, not "
                   "90/180/270 (default 0); the corners are generated")
    d.add_argument("--output-ratio", choices=list(geometry.DASHSCOPE_RATIOS), help="--mode output_ratio: target "
                   "aspect ratio (default 16:9)")
    d.add_argument("--x-scale", type=float, metavar="X", help="--mode scale: width x this, 1-3 (default 1.5)")
    d.add_argument("--y-scale", type=float, metavar="Y", help="--mode scale: height x this, 1-3 (default 1.5)")
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
                                   "DashScopeOutpaint on example_workflows/sample_input.png against the built-in "
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
    except UsageError as exc:
        sys.stderr.write(f"{PROG} {args.command}: error: {exc}\n")
        return EXIT_USAGE
    except ConfigError as exc:
        sys.stderr.write(f"{PROG} {args.command}: {exc}\n")
        return EXIT_NO_CREDENTIALS
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        return EXIT_INTERRUPTED
