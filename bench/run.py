"""Benchmarks that print figures (not tests). Run: python bench/run.py [--quick] [--only memory|overhead|comfyui]

Sections: MaskCanvasBuilder vs a straight re-implementation of ImagePadForOutpaint's per-pixel
loop (same mask?), the image codec at 2048² / 4096² against its floor, VolcOutpaint client overhead against
the floor of the same request and its extra peak memory (figures.py: each against its goal), batch
concurrency, DashScope polling, and (with COMFYUI_DIR set) two cloud nodes side
by side in one real ComfyUI graph.

The pack is loaded by itself, through the root cli.py's loader (by file location, under a private
name, its ComfyUI registration not run); nothing from tests/ is imported.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import pathlib
import platform
import statistics
import time
import zlib

import torch

BENCH = pathlib.Path(__file__).resolve().parent
ROOT = BENCH.parent
PACK = "cloud_outpaint_bench"


def _load_pack() -> None:
    spec = importlib.util.spec_from_file_location("cloud_outpaint_launcher", ROOT / "cli.py")
    launcher = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(launcher)
    launcher.load_pack(PACK)


def module(dotted: str):
    return importlib.import_module(f"{PACK}.{dotted}")


_load_pack()
canvas, geometry, imagecodec = module("nodes.core.canvas"), module("nodes.core.geometry"), module("nodes.core.imagecodec")
import figures  # noqa: E402  (bench/, beside this file)
from reference_pad import image_pad_for_outpaint  # noqa: E402


def timed(fn, repeat: int) -> tuple[float, object]:
    """Median wall time in seconds over `repeat` runs, and the last result."""
    times, result = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), result


def photo_like(size: int, seed: int = 0) -> torch.Tensor:
    """Smooth shapes + texture + grain: compresses like a photograph, unlike noise or flat colour."""
    g = torch.Generator().manual_seed(seed)
    f = torch.nn.functional
    base = f.interpolate(torch.rand(1, 3, 16, 16, generator=g), size=(size, size), mode="bicubic",
                         align_corners=False)
    texture = f.interpolate(torch.rand(1, 3, size // 4, size // 4, generator=g), size=(size, size),
                            mode="bilinear", align_corners=False)
    grain = torch.rand(1, 3, size, size, generator=g)
    return (0.7 * base + 0.25 * texture + 0.05 * grain).clamp(0, 1).movedim(1, -1).contiguous()


def bench_canvas(size: int, quick: bool) -> None:
    print(f"\n== MaskCanvasBuilder vs ImagePadForOutpaint's per-pixel loop, {size}x{size}, feathering 40 ==")
    print("(reference = canvas + looped feather mask; ours timed as the feathered mask alone and as "
          "mask + canvas;\n the canvas is bounded below by writing fresh memory: see 'floor')")
    image = photo_like(size)
    repeat = 3 if quick else 9
    floor_t, _ = timed(lambda: image.clone(), repeat)
    print(f"{'padding (l,t,r,b)':<22}{'reference':>11}{'ours: mask':>12}{'speed-up':>10}"
          f"{'mask+canvas':>13}{'speed-up':>10}   same result")
    for pads in ((256, 256, 0, 0), (256, 256, 256, 256)):
        ref_t, (ref_img, ref_mask) = timed(lambda: image_pad_for_outpaint(image, *pads, 40), 1)
        p = geometry.pad_pixels(size, size, *pads)
        mask_t, (mask, _) = timed(lambda: canvas.build_mask(p, 1, 40), repeat)
        full_t, out = timed(lambda: (canvas.build_canvas(image, p), canvas.build_mask(p, 1, 40)), repeat)
        same_image = torch.equal(out[0], ref_img)
        diff = (mask - ref_mask).abs()
        if pads[2] or pads[3]:
            verdict = f"mask: bottom/right off-by-one fixed ({int((diff > 0).sum())} px differ)"
        else:
            verdict = "mask identical" if float(diff.max()) == 0 else f"mask max diff {float(diff.max()):.2g}"
        print(f"{str(pads):<22}{ref_t * 1000:>9.0f}ms{mask_t * 1000:>10.1f}ms{ref_t / mask_t:>9.0f}x"
              f"{full_t * 1000:>11.1f}ms{ref_t / full_t:>9.0f}x   {verdict}; "
              f"canvas {'identical' if same_image else 'DIFFERS'}")
    print(f"floor: copying the {size}x{size} input tensor once takes {floor_t * 1000:.1f} ms here")


def bench_codec(size: int, quick: bool) -> None:
    image = photo_like(size)
    repeat = 2 if quick else 5
    print(f"\n== codec round trip (tensor -> bytes -> base64 -> bytes -> tensor), {size}x{size} ==")
    to_u8_t, arr = timed(lambda: imagecodec.image_to_uint8(image)[0], repeat)
    print(f"{'encoding':<26}{'encode':>10}{'b64+decode':>12}{'total':>10}{'base64 MB':>11}")
    rows = [("png (ours, Up, z1 Z_RLE)", lambda a: imagecodec.encode_png(a)),
            ("png (Up, z1 default)", lambda a: imagecodec.encode_png(a, strategy=zlib.Z_DEFAULT_STRATEGY)),
            ("png (Pillow, level 1)", lambda a: _pillow_png(a, 1)),
            ("png (Pillow, level 6)", lambda a: _pillow_png(a, 6)),
            ("jpeg q95 4:4:4", lambda a: imagecodec.encode_jpeg(a, 95))]
    for name, encode in rows:
        enc_t, data = timed(lambda: encode(arr), repeat)
        text = imagecodec.to_base64(data)
        dec_t, _ = timed(lambda: imagecodec.decode_image(imagecodec.from_base64(text)), repeat)
        print(f"{name:<26}{(to_u8_t + enc_t) * 1000:>8.0f}ms{dec_t * 1000:>10.0f}ms"
              f"{(to_u8_t + enc_t + dec_t) * 1000:>8.0f}ms{len(text) / 1e6:>10.1f}")
    print(f"(tensor -> uint8 alone: {to_u8_t * 1000:.0f} ms)")


def bench_volc(quick: bool) -> None:
    sandbox_mod, volc, volc_run = module("nodes.sandbox"), module("nodes.core.volc"), module("nodes.core.volc_run")
    with sandbox_mod.Sandbox() as sb:
        creds = sb.volc_credentials()
        print("\n== VolcOutpaint batch concurrency: 8 requests, 1 s simulated latency ==")
        sb.latency = 1.0
        small = photo_like(256)
        batch = small.expand(8, -1, -1, -1).contiguous()
        for workers in (1, 4, 8):
            t0 = time.perf_counter()
            volc_run.run(batch, None, volc.VolcParams(), creds, volc_run.VolcOptions(concurrency=workers, timeout_s=60))
            wall = time.perf_counter() - t0
            ideal = 8 / workers * 1.0
            print(f"concurrency {workers}: {wall:5.2f} s (ideal {ideal:.2f} s, overhead {wall - ideal:+.2f} s)")


def bench_dashscope(quick: bool) -> None:
    from datetime import datetime, timedelta, timezone
    sandbox_mod, ds, ds_run = module("nodes.sandbox"), module("nodes.core.dashscope"), module("nodes.core.dashscope_run")
    config = ds.DashScopeConfig()
    pending, running = 2.0, 28.0
    print(f"\n== DashScopeOutpaint polling: a simulated 30 s task ({pending:g} s pending + {running:g} s running) ==")
    with sandbox_mod.Sandbox(dashscope_pending_s=pending, dashscope_running_s=running) as sb:
        creds = sb.dashscope_credentials()
        ds_run.run(photo_like(512), ds.DashScopeParams(), creds, ds_run.DashScopeOptions(timeout_s=120), config)
        returned = datetime.now(timezone.utc)
        log = sb.requests("dashscope")
    create = next(e for e in log if e.method == "POST" and e.path.endswith("/out-painting"))
    polls = sum(1 for e in log if e.method == "GET" and "/tasks/" in e.path)
    succeeded = create.time + timedelta(seconds=pending + running)
    print(f"polls: {polls} (goal <= 15); SUCCEEDED -> node returned: {(returned - succeeded).total_seconds():.2f} s "
          "(goal <= 1.5 s; includes the download and paste-back)")
    print(f"schedule arithmetic for other task lengths (first poll {config.poll_first} s, backing off x"
          f"{config.poll_growth} to {config.poll_cap} s, every {config.poll_near} s from 0.8x to 1.5x the expected "
          f"{config.expected_s:g} s; the expectation then follows observed tasks):")
    for length in (5, 10, 20, 26, 30, 37, 45, 60, 120):
        t, n, backoff = 0.0, 0, config.poll_first
        while t < length:
            t += config.next_poll(t, backoff, config.expected_s)
            backoff = min(config.poll_cap, backoff * config.poll_growth)
            n += 1
        print(f"  {length:>4} s task: {n:>3} polls, seen {t - length:.2f} s after it finished")


def bench_batch_plot(quick: bool) -> None:
    """Wall time vs batch size at 1 s simulated latency, concurrency 4, drawn to bench/out/batch_scaling.png."""
    from PIL import Image, ImageDraw
    sandbox_mod, volc, volc_run = module("nodes.sandbox"), module("nodes.core.volc"), module("nodes.core.volc_run")
    sizes = (1, 2, 4, 8) if quick else (1, 2, 3, 4, 6, 8, 12)
    print("\n== VolcOutpaint wall time vs batch size (1 s latency, concurrency 4) ==")
    points = []
    with sandbox_mod.Sandbox(latency=1.0) as sb:
        creds = sb.volc_credentials()
        small = photo_like(256)
        for n in sizes:
            t0 = time.perf_counter()
            volc_run.run(small.expand(n, -1, -1, -1).contiguous(), None, volc.VolcParams(), creds,
                         volc_run.VolcOptions(concurrency=4, timeout_s=120))
            points.append((n, time.perf_counter() - t0))
            print(f"batch {n:>2}: {points[-1][1]:5.2f} s (ideal {-(-n // 4) * 1.0:.0f} s)")
    w, h, pad = 480, 300, 40
    img = Image.new("RGB", (w, h), "white")
    d = ImageDraw.Draw(img)
    top = max(t for _, t in points) * 1.1
    xy = lambda n, t: (pad + (w - 2 * pad) * n / max(sizes), h - pad - (h - 2 * pad) * t / top)  # noqa: E731
    d.line([xy(0, 0), xy(max(sizes), 0)], fill="black")
    d.line([xy(0, 0), xy(0, top)], fill="black")
    d.line([xy(n, -(-n // 4) * 1.0) for n in range(1, max(sizes) + 1)], fill=(160, 160, 160), width=2)
    d.line([xy(n, t) for n, t in points], fill=(30, 90, 200), width=3)
    for n, t in points:
        x, y = xy(n, t)
        d.ellipse([x - 3, y - 3, x + 3, y + 3], fill=(30, 90, 200))
    d.text((pad, 8), "VolcOutpaint wall time (s) vs batch size; grey = ideal, concurrency 4, 1 s latency",
           fill="black")
    for n in sizes:
        d.text((xy(n, 0)[0] - 4, h - pad + 6), str(n), fill="black")
    out = ROOT / "bench" / "out"
    out.mkdir(exist_ok=True)
    img.save(out / "batch_scaling.png")
    print(f"plot: {out / 'batch_scaling.png'}")


def bench_comfyui_side_by_side() -> None:
    """Two VolcOutpaint nodes in one real ComfyUI graph, each waiting 1 s on the vendor."""
    import tempfile

    import comfy_server
    print("\n== two cloud nodes side by side in one real ComfyUI graph (1 s simulated latency each) ==")
    if comfy_server.comfyui_dir() is None:
        print("skipped: COMFYUI_DIR not set")
        return
    latency, goal = 1.0, 1.2
    with module("nodes.sandbox").Sandbox() as sb, tempfile.TemporaryDirectory() as workdir:
        env = {"VOLC_BASE_URL": sb.url, "VOLC_ACCESSKEY": sb.volc_access_key, "VOLC_SECRETKEY": sb.volc_secret_key}
        server = comfy_server.ComfyServer(pathlib.Path(workdir), env=env).start()
        try:
            version = server.get("/system_stats")["system"].get("comfyui_version", "?")
            object_info = server.get("/object_info")
            walls = {}
            for nodes in (["VolcOutpaint"], ["VolcOutpaint", "VolcOutpaint"]):
                sb.latency = 0  # a first run warms ComfyUI up (imports, model-free graph caches)
                server.run_prompt(comfy_server.side_by_side_prompt(object_info, nodes, time.monotonic_ns() % 2**30))
                sb.latency = latency
                entry = server.run_prompt(comfy_server.side_by_side_prompt(object_info, nodes,
                                                                           time.monotonic_ns() % 2**30))
                if entry["status"]["status_str"] != "success":
                    print("failed:", str(entry["status"])[:2000])
                    return
                walls[len(nodes)] = comfy_server.wall_seconds(entry)
        finally:
            server.stop()
    print(f"ComfyUI {version}: one node {walls[1]:.2f} s; two nodes {walls[2]:.2f} s "
          f"(goal <= {goal:g} s; one after the other would be >= {2 * latency:g} s)")


def _pillow_png(arr, level: int) -> bytes:
    import io

    from PIL import Image
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG", compress_level=level)
    return buf.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer repeats, skip 4096²")
    parser.add_argument("--only", choices=["comfyui", "memory", "overhead"], help="run just this section")
    parser.add_argument("--rounds", type=int, default=7, help="round-robin rounds of the overhead figure")
    parser.add_argument("--children", type=int, default=3, help="fresh processes measured for the memory figure")
    args = parser.parse_args()
    if args.only == "comfyui":
        bench_comfyui_side_by_side()
        return
    if args.only == "memory":
        figures.bench_memory(args.children)
        return
    if args.only == "overhead":
        figures.bench_overhead(args.rounds)
        return
    print(f"machine: {platform.machine()}, {torch.get_num_threads()} torch threads, "
          f"python {platform.python_version()}, torch {torch.__version__}")
    bench_canvas(2048, args.quick)
    for size in (2048,) if args.quick else (2048, 4096):
        bench_codec(size, args.quick)
    figures.bench_overhead(3 if args.quick else args.rounds)
    bench_volc(args.quick)
    bench_batch_plot(args.quick)
    figures.bench_memory(1 if args.quick else args.children)
    bench_dashscope(args.quick)
    bench_comfyui_side_by_side()


if __name__ == "__main__":
    main()
