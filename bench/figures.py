"""The two goal figures of bench/run.py: a VolcOutpaint round trip's extra peak memory, and the node's
client overhead against the floor of the same request. Both talk to bench/replay.py in another
process (the sandbox answers the first request; the rest are replayed with no work).

Memory: each measurement is a FRESH child process. It builds the 4x2048² input, resets its
high-water mark (/proc/self/clear_refs = 5: VmHWM := VmRSS), then runs; extra = VmHWM after − VmRSS
before, so building the input cannot hide the run. `probe` runs a deliberate extra copy of the
input in the same window instead of the run: the method must see it as ~1.0x.

Overhead: round-robin rounds of (node run, floor) on the same image and the same recorded answer;
the floor is tensor → uint8 → encode (the node's upload format) → base64, then base64 → decode →
float tensor, written here with torch/Pillow/binascii only (no pack code). Ratios per round, in a
fresh child process per allocator regime (REGIMES: why), each regime's page faults printed beside.
"""

from __future__ import annotations

import base64
import binascii
import gc
import io
import json
import os
import pathlib
import statistics
import subprocess
import sys
import time
import warnings

import numpy as np
import torch
from PIL import Image

BENCH = pathlib.Path(__file__).resolve().parent
MEMORY_GOAL, OVERHEAD_GOAL = 3.0, 1.3
SIDES = 0.1  # a real outpaint: 10 % per side (2048² -> 2458²)
SIZE, BATCH = 2048, 4

MEMORY_CHILD = """
import json, sys
sys.path.insert(0, {bench!r})
from run import module, photo_like
volc, volc_run, creds = module("nodes.core.volc"), module("nodes.core.volc_run"), module("nodes.core.credentials")
import torch

def status():
    fields = dict(line.split(":", 1) for line in open("/proc/self/status"))
    return {{k: int(fields[k].split()[0]) for k in ("VmRSS", "VmHWM")}}  # kB

image = torch.empty(({batch}, {size}, {size}, 3))
for b in range({batch}):
    image[b] = photo_like({size})[0]
c = creds.VolcCredentials("aksk", "sandbox", {url!r}, {ak!r}, {sk!r})
params = volc.VolcParams(left={sides}, top={sides}, right={sides}, bottom={sides}, max_width=4096, max_height=4096)
options = volc_run.VolcOptions(concurrency={batch}, timeout_s=600, use_cache=False)
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")
before = status()
if before["VmHWM"] > before["VmRSS"] * 1.02 + 1024:
    raise SystemExit("the high-water mark could not be reset: no honest figure on this kernel")
if {mode!r} == "probe":
    kept = image.clone()  # the deliberate extra copy
    out_shape = tuple(kept.shape)
else:
    out, mask, info = volc_run.run(image, None, params, c, options)
    out_shape = tuple(out.shape)
after = status()
print(json.dumps({{"input_mib": image.numel() * 4 / 2**20, "extra_mib": (after["VmHWM"] - before["VmRSS"]) / 1024,
                  "output": out_shape}}))
"""


class Replay:
    """bench/replay.py in a child process, for as long as the `with` lasts."""

    def __enter__(self):
        self.proc = subprocess.Popen([sys.executable, str(BENCH / "replay.py")], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)
        self.info = json.loads(self.proc.stdout.readline())
        self.url = self.info["url"]
        return self

    def __exit__(self, *exc):
        self.proc.stdin.close()
        self.proc.wait(timeout=30)


def verdict(value: float, goal: float) -> str:
    return "PASS" if value <= goal else "MISS"


def _memory_child(replay: Replay, mode: str) -> dict:
    code = MEMORY_CHILD.format(bench=str(BENCH), url=replay.url, ak=replay.info["ak"], sk=replay.info["sk"],
                               sides=SIDES, size=SIZE, batch=BATCH, mode=mode)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=900)
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-2000:])
    return json.loads(done.stdout.strip().splitlines()[-1])


def bench_memory(children: int = 2) -> None:
    print(f"\n== extra peak memory of a {BATCH}x{SIZE}² VolcOutpaint round trip, sides {SIDES} (fresh child "
          "process each; replay server in another process) ==")
    with Replay() as replay:
        _memory_child(replay, "run")  # records the sandbox's answer (not measured: the sandbox worked)
        probe = _memory_child(replay, "probe")
        seen = probe["extra_mib"] / probe["input_mib"]
        print(f"method check: one deliberate copy of the input reads {probe['extra_mib']:.0f} MiB = {seen:.2f}x the "
              f"input (must be ~1.00x)" + ("" if 0.95 <= seen <= 1.10 else ": FAILED, the figure below means nothing"))
        runs = [_memory_child(replay, "run") for _ in range(children)]
    ratios = sorted(r["extra_mib"] / r["input_mib"] for r in runs)
    print(f"input {runs[0]['input_mib']:.0f} MiB, output {'x'.join(map(str, runs[0]['output']))}; extra peak over {children} children: "
          f"min {min(r['extra_mib'] for r in runs):.0f} MiB = {ratios[0]:.2f}x, median "
          f"{statistics.median(r['extra_mib'] for r in runs):.0f} MiB = {statistics.median(ratios):.2f}x the input "
          f"(goal <= {MEMORY_GOAL:g}x: {verdict(statistics.median(ratios), MEMORY_GOAL)})")


def _encoded(image: torch.Tensor, fmt: str) -> bytes:
    u8 = image[0].mul(255).add_(0.5).clamp_(0, 255).to(torch.uint8).numpy()
    buf = io.BytesIO()
    if fmt == "jpeg":
        Image.fromarray(u8).save(buf, format="JPEG", quality=95, subsampling=0)
    else:
        Image.fromarray(u8).save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def _transfer(url: str, body: bytes) -> bytes:
    """One POST of `body` to the replay server and its recorded answer, read at once."""
    import http.client
    from urllib.parse import urlsplit
    conn = http.client.HTTPConnection(urlsplit(url).hostname, urlsplit(url).port, timeout=60)
    try:
        conn.request("POST", "/?Action=CVProcess&Version=2022-08-31", body=body)
        return conn.getresponse().read()
    finally:
        conn.close()


def floor_trip(image: torch.Tensor, fmt: str, answer_b64: str) -> torch.Tensor:
    """The floor of the node's request: its upload's encode and its result's decode, nothing else."""
    base64.b64encode(_encoded(image, fmt))
    decoded = Image.open(io.BytesIO(binascii.a2b_base64(answer_b64)))
    decoded.load()
    with warnings.catch_warnings():  # a read-only array: only read here
        warnings.simplefilter("ignore", UserWarning)
        return torch.from_numpy(np.asarray(decoded)).to(torch.float32).div_(255)


# glibc's allocator decides whether a big buffer is fresh pages from the kernel (every 4 KiB page
# faulted in on first touch: ~1 µs each on a VM, tens of ms per run) or memory a freed buffer left; by
# default that depends on the heap's history (±20 % between processes). Two pinned regimes take that
# lottery out: every buffer fresh (each side pays for every page it touches) and every buffer reused
# (the CPU work alone); glibc reads these variables at process start. The verdict is the worst of all.
REGIMES = {
    "every buffer fresh": {"MALLOC_MMAP_THRESHOLD_": str(128 * 1024)},
    "every buffer reused": {"MALLOC_MMAP_THRESHOLD_": str(2**30), "MALLOC_TRIM_THRESHOLD_": str(2**32)},
    "allocator as is": {},
}

OVERHEAD_CHILD = """
import sys
sys.path.insert(0, {bench!r})
import figures
figures.overhead_child({url!r}, {ak!r}, {sk!r}, {rounds}, {fmt!r})
"""


def _faults() -> int:
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def overhead_child(url: str, ak: str, sk: str, rounds: int, fmt: str) -> None:
    """One regime's rounds, in this (fresh) process: prints one JSON line of times and page faults."""
    from run import module, photo_like
    volc, volc_run, creds = module("nodes.core.volc"), module("nodes.core.volc_run"), module("nodes.core.credentials")
    image = photo_like(SIZE)
    params = volc.VolcParams(left=SIDES, top=SIDES, right=SIDES, bottom=SIDES, max_width=4096, max_height=4096)
    options = volc_run.VolcOptions(image_format=fmt, timeout_s=600, use_cache=False)
    c = creds.VolcCredentials("aksk", "sandbox", url, ak, sk)
    out, _, info = volc_run.run(image, None, params, c, options)  # warm-up (and, the first time, the recording)
    answer_b64 = json.loads(_get(f"{url}/__recorded"))["data"]["binary_data_base64"][0]
    upload = b"x" * (len(base64.b64encode(_encoded(image, fmt))) + 300)  # the body's size, about
    sides = {"node": lambda: volc_run.run(image, None, params, c, options),
             "floor": lambda: floor_trip(image, fmt, answer_b64), "transfer": lambda: _transfer(url, upload)}
    times, faults = {k: [] for k in sides}, {k: [] for k in sides}
    gc.disable()
    try:
        for r in range(rounds):
            # node and floor take turns going first: in one heap, the side after reuses what the other freed
            for name in ("transfer", "node", "floor") if r % 2 == 0 else ("transfer", "floor", "node"):
                f0, t0 = _faults(), time.perf_counter()
                sides[name]()
                times[name].append(time.perf_counter() - t0)
                faults[name].append(_faults() - f0)
                gc.collect()
    finally:
        gc.enable()
    print(json.dumps({"times": times, "faults": faults, "sent": info.to_dict()["results"][0]["sent"],
                      "result": f"{out.shape[2]}x{out.shape[1]}", "answer_mb": len(answer_b64) / 1e6}))


def _get(url: str) -> bytes:
    import urllib.request
    with urllib.request.urlopen(url, timeout=30) as reply:
        return reply.read()


def bench_overhead(rounds: int = 7, fmt: str = "jpeg") -> None:
    print(f"\n== VolcOutpaint client overhead, {SIZE}², sides {SIDES}, {fmt} upload, against a replay server "
          f"(recorded answer, no vendor work), {rounds} round-robin rounds per allocator regime, each in a fresh "
          "process ==")
    ms = lambda xs: f"{statistics.median(xs) * 1000:.0f} ms (min {min(xs) * 1000:.0f})"  # noqa: E731
    medians, faults_of = [], {}
    with Replay() as replay:
        for regime, env in REGIMES.items():
            code = OVERHEAD_CHILD.format(bench=str(BENCH), url=replay.url, ak=replay.info["ak"],
                                         sk=replay.info["sk"], rounds=rounds, fmt=fmt)
            done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=900,
                                  env={**os.environ, **env})
            if done.returncode != 0:
                raise RuntimeError(done.stderr[-2000:])
            got = json.loads(done.stdout.strip().splitlines()[-1])
            t, f = got["times"], got["faults"]
            ratios = [n / fl for n, fl in zip(t["node"], t["floor"])]
            medians.append(statistics.median(ratios))
            faults_of[regime] = statistics.median(f["floor"])
            print(f"{regime}: node {ms(t['node'])}, floor {ms(t['floor'])}; page faults per run node "
                  f"{statistics.median(f['node']):.0f}, floor {faults_of[regime]:.0f}; node/floor per round "
                  f"median {medians[-1]:.2f}x (min {min(ratios):.2f}x, max {max(ratios):.2f}x)")
        print(f"sent {got['sent']}, result {got['result']} ({got['answer_mb']:.1f} MB base64); not in the floor: "
              f"the loopback transfer of the same bytes with one http.client read, {ms(t['transfer'])} "
              f"({regime})")
    if faults_of["every buffer reused"] * 10 > faults_of["every buffer fresh"]:
        print("method check FAILED: the reused regime still faults (not glibc?): its figure is not what it says")
    else:
        print(f"method check: the floor faults {faults_of['every buffer fresh']:.0f} pages per run with every "
              f"buffer fresh, {faults_of['every buffer reused']:.0f} with every buffer reused")
    worst = max(medians)
    print(f"node / floor, the worst regime's median: {worst:.2f}x (goal <= {OVERHEAD_GOAL:g}x: "
          f"{verdict(worst, OVERHEAD_GOAL)})")
