"""Soak: 50 runs of both vendors, 8 at a time, against one sandbox with a seeded mix of faults.

Every run must end in an image or a clear VendorError with a code (wrapped in ItemError), within a
global time bound, and results must never cross between runs:
- each run sends a distinct solid colour and asks for keep_original=False, so the centre of the
  output is what the sandbox generated from *that run's* upload, not a paste-back of our own input;
- each run carries a distinct marker the sandbox logs (Volcengine: the seed; DashScope: the
  left_offset), so the ids in the info JSON (or on the error) can be traced through the sandbox
  log back to the run that made them.
"""

from __future__ import annotations

import random
import time
from concurrent.futures import ThreadPoolExecutor, wait

import pytest
import torch
from pack import FAST_DASHSCOPE, module

Sandbox = module("nodes.sandbox").Sandbox
volc = module("nodes.core.volc")
volc_run = module("nodes.core.volc_run")
ds = module("nodes.core.dashscope")
ds_run = module("nodes.core.dashscope_run")
errors = module("nodes.core.errors")
credentials = module("nodes.core.credentials")

RUNS, PARALLEL, SEED = 50, 8, 20261122
RUN_TIMEOUT_S = 5.0
GLOBAL_BOUND_S = 30.0
FAST = FAST_DASHSCOPE
VOLC_CONFIG = volc.VolcConfig(read_timeout=0.8)

VOLC_FAULTS = [("throttle", {"retry_after": "0.1"}), ("throttle", {"code": 50430, "retry_after": "0.05"}),
               ("slow", {"seconds": 1.5}), ("error", {"code": 50411}), ("url_404", {}),
               ("http_5xx_plain", {"status": 503}), ("drop_after", {}), ("bad_base64", {})]
DS_FAULTS = [("throttle", {"retry_after": "0.1"}), ("task_failed", {"code": "InvalidParameter.ImageContent"}),
             ("url_404", {}), ("poll_error", {"status": 500}), ("slow", {"seconds": 1.5}), ("unknown", {}),
             ("http_5xx_plain", {"status": 503}), ("error", {"code": "InternalError"})]


def colour(k: int) -> tuple[float, float, float]:
    return (((k * 37) % 211 + 20) / 255, ((k * 91) % 199 + 30) / 255, ((k * 53) % 193 + 40) / 255)


def solid(k: int, h: int, w: int) -> torch.Tensor:
    return torch.tensor(colour(k)).expand(1, h, w, 3).contiguous()


def run_volc(sb, k):
    params = volc.VolcParams(top=0.25, bottom=0.25, left=0.25, right=0.25, seed=1000 + k, return_url=k % 2 == 0)
    creds = sb.volc_credentials()
    return volc_run.run(solid(k, 48, 64), None, params, creds,
                        volc_run.VolcOptions(timeout_s=RUN_TIMEOUT_S, keep_original=False, image_format="png"),
                        VOLC_CONFIG)


def run_ds(sb, k):
    params = ds.DashScopeParams(mode="offsets", left_offset=8 * (k + 1), right_offset=0)
    creds = sb.dashscope_credentials()
    return ds_run.run(solid(k, 512, 512), params, creds,
                      ds_run.DashScopeOptions(timeout_s=RUN_TIMEOUT_S, keep_original=False), FAST)


def test_soak_parallel_runs_with_random_faults():
    rng = random.Random(SEED)
    assert len({colour(k) for k in range(RUNS)}) == RUNS
    vendors = ["volc" if rng.random() < 0.5 else "dashscope" for _ in range(RUNS)]
    outcomes: dict[int, tuple] = {}
    with Sandbox(dashscope_pending_s=0.05, dashscope_running_s=0.1, dashscope_qps=0,
                 dashscope_max_concurrent=0) as sb:
        for vendor, pool, n in (("volc", VOLC_FAULTS, vendors.count("volc")),
                                ("dashscope", DS_FAULTS, vendors.count("dashscope"))):
            for _ in range(n // 2):  # about one run in two meets a fault
                kind, params = rng.choice(pool)
                sb.inject(vendor, kind, **params)

        def one(k):
            started = time.monotonic()
            try:
                result = (run_volc if vendors[k] == "volc" else run_ds)(sb, k)
                outcomes[k] = ("image", result, time.monotonic() - started)
            except BaseException as exc:  # noqa: BLE001 - every outcome is checked below
                outcomes[k] = ("error", exc, time.monotonic() - started)

        started = time.monotonic()
        pool = ThreadPoolExecutor(max_workers=PARALLEL, thread_name_prefix="soak")
        futures = [pool.submit(one, k) for k in range(RUNS)]
        done, not_done = wait(futures, timeout=GLOBAL_BOUND_S)
        pool.shutdown(wait=False, cancel_futures=True)
        elapsed = time.monotonic() - started
        assert not not_done, f"{len(not_done)} runs still going after {GLOBAL_BOUND_S} s (hang)"
        log = sb.requests()
        assert sb.errors == []
        leftover = sb.faults.pending()

    images = errs = 0
    codes: dict[str, int] = {}
    for k in range(RUNS):
        kind, value, seconds = outcomes[k]
        vendor = vendors[k]
        assert seconds < RUN_TIMEOUT_S + 1, f"run {k} ({vendor}) took {seconds:.1f} s"
        if kind == "error":
            errs += 1
            assert isinstance(value, errors.ItemError), f"run {k}: {type(value).__name__}: {value}"
            cause = value.cause
            assert isinstance(cause, errors.VendorError) and cause.code not in (None, ""), repr(cause)
            codes[f"{vendor}:{cause.code}"] = codes.get(f"{vendor}:{cause.code}", 0) + 1
            if vendor == "dashscope" and cause.task_id:  # the task was created by this run
                [create] = [e for e in log if e.detail.get("task_id") == cause.task_id and e.action == "create"]
                assert create.detail["parameters"]["left_offset"] == 8 * (k + 1)
            continue
        images += 1
        out, _, run_info = value
        info = run_info.to_dict()["results"][0]
        h, w = out.shape[1:3]
        centre = out[0, h // 2, w // 2].tolist()
        assert centre == pytest.approx(list(colour(k)), abs=3 / 255), f"run {k} ({vendor}) got another run's image"
        if vendor == "volc":
            assert info["seed"] == 1000 + k and info["request_id"]
            mine = [e for e in log if e.vendor == "volc" and e.billable and e.detail.get("seed") == 1000 + k]
            assert len(mine) == 1, f"run {k}: {len(mine)} billable requests with its seed"
        else:
            [create] = [e for e in log if e.action == "create" and e.detail.get("task_id") == info["task_id"]]
            assert create.billable and create.detail["parameters"]["left_offset"] == 8 * (k + 1)
            assert (w, h) == (512 + 8 * (k + 1), 512)

    ids = [v[1][2].to_dict()["results"][0].get("request_id") or v[1][2].to_dict()["results"][0]["task_id"]
           for v in outcomes.values() if v[0] == "image"]
    assert len(ids) == len(set(ids)), "two runs reported the same id"
    # never a duplicate charge: at most one billable request per run marker
    volc_seeds = [e.detail.get("seed") for e in log if e.vendor == "volc" and e.billable]
    assert len(volc_seeds) == len(set(volc_seeds))
    ds_offsets = [e.detail["parameters"]["left_offset"] for e in log if e.action == "create" and e.billable]
    assert len(ds_offsets) == len(set(ds_offsets))
    assert elapsed < GLOBAL_BOUND_S
    print(f"\nsoak: {RUNS} runs ({vendors.count('volc')} volc, {vendors.count('dashscope')} dashscope), "
          f"{images} images, {errs} errors {dict(sorted(codes.items()))}, {len(leftover)} faults unused, "
          f"{elapsed:.1f} s")
