"""The demo command: the canvas and both vendor runs on the sample image against the built-in sandbox,
written with a side-by-side contact sheet and summary.json."""

from __future__ import annotations

import dataclasses
import pathlib
import time

from ..core import backends, geometry
from .exits import EXIT_OK, need_torch
from .output import run_output, write_atomic, write_json

SAMPLE = pathlib.Path(__file__).resolve().parents[2] / "example_workflows" / "cloud_outpaint_sample.png"


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
    need_torch()
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

    def save(name: str, data: bytes, step: dict) -> None:
        write_atomic(out_dir / name, data)
        files.append(out_dir / name)
        step.setdefault("files", []).append(name)

    # MaskCanvasBuilder, pixels mode: edge fill, feathered mask
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

    def node_step(name: str, file: str, label: str, params, run):
        """One vendor node's run: its result saved, its parameters, size, time and info in the summary."""
        t = time.monotonic()
        images, info = run_output(run())
        step = {"step": name, "parameters": dataclasses.asdict(params),
                "output_size": [images.shape[2], images.shape[1]], "seconds": round(time.monotonic() - t, 2),
                "info": info}
        save(file, imagecodec.image_to_bytes(images), step)
        summary["steps"].append(step)
        say(f"  {label}: -> {images.shape[2]}x{images.shape[1]}")
        return images

    hooks = RunHooks()
    volc_creds = backends.volc_credentials("sandbox")
    volc_options = volc_run.VolcOptions(timeout_s=60)
    ratio = volc.VolcParams(prompt="a wider view", seed=42, top=0.25, bottom=0.25, left=0.25, right=0.25)
    ratio_img = node_step("VolcOutpaint ratio", "02_volc_ratio.png", "VolcOutpaint ratio 0.25", ratio,
                          lambda: volc_run.run(image, None, ratio, volc_creds, volc_options, hooks=hooks))
    on_canvas = volc.VolcParams(prompt="a wider view", seed=42)
    canvas_img = node_step("VolcOutpaint canvas", "03_volc_canvas.png",
                           "VolcOutpaint canvas (MaskCanvasBuilder's canvas + mask)", on_canvas,
                           lambda: volc_run.run(padded, mask, on_canvas, volc_creds, volc_options, hooks=hooks))
    scaled = dashscope.DashScopeParams(mode="scale", x_scale=1.5, y_scale=1.5)
    ds_img = node_step("DashScopeOutpaint scale", "04_dashscope_scale.png", "DashScopeOutpaint scale 1.5x1.5",
                       scaled, lambda: dashscope_run.run(image, scaled, backends.dashscope_credentials("sandbox"),
                                                         dashscope_run.DashScopeOptions(timeout_s=60), hooks=hooks))

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
    write_json(out_dir / "summary.json", summary)
    files.append(out_dir / "summary.json")
    print(f"demo done in {time.monotonic() - t0:.1f} s; files in {out_dir.resolve()}:")
    for f in files:
        print(f"  {f.name}")
    print(f"open {sheet_path.resolve()} to compare them side by side")
    return EXIT_OK
