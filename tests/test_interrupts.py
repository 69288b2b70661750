"""An interrupt ends a run within a second in every kind of wait, and cancels the vendor task
where one exists. The interrupt comes from the run's poll hook, as ComfyUI's does."""

import time

import pytest
import torch
from pack import FAST_DASHSCOPE, module

Sandbox = module("nodes.sandbox").Sandbox
volc, volc_run = module("nodes.core.volc"), module("nodes.core.volc_run")
ds, ds_run = module("nodes.core.dashscope"), module("nodes.core.dashscope_run")
runner = module("nodes.core.runner")
creds = module("nodes.core.credentials")
FAST = FAST_DASHSCOPE


class Stop(BaseException):
    """Stands for ComfyUI's InterruptProcessingException (also a BaseException)."""


def stop_after(seconds: float):
    at = time.monotonic() + seconds

    def poll():
        if time.monotonic() > at:
            raise Stop()
    return poll


def run_volc(sb, hooks):
    c = sb.volc_credentials()
    volc_run.run(torch.rand((1, 48, 64, 3)), None, volc.VolcParams(return_url=True), c,
                 volc_run.VolcOptions(timeout_s=60), hooks=hooks)


def run_ds(sb, hooks):
    c = sb.dashscope_credentials()
    ds_run.run(torch.rand((1, 512, 512, 3)), ds.DashScopeParams(), c, ds_run.DashScopeOptions(timeout_s=60), FAST,
               hooks)


@pytest.mark.parametrize("vendor,fault,params,wait", [
    ("volc", "slow", {"seconds": 3}, "request in flight"),
    ("volc", "throttle", {"retry_after": "30"}, "backoff sleep"),
    ("dashscope", "slow", {"seconds": 3}, "create in flight"),
    ("dashscope", "throttle", {"retry_after": "30"}, "create backoff"),
    ("dashscope", "stuck", {}, "poll interval"),
    ("dashscope", "poll_error", {"status": 503, "retry_after": "30"}, "poll retry backoff"),
])
def test_interrupt_ends_every_wait_within_a_second(vendor, fault, params, wait):
    with Sandbox(dashscope_pending_s=0.1, dashscope_running_s=0.2) as sb:
        sb.inject(vendor, fault, **params)
        hooks = runner.RunHooks(poll=stop_after(0.8))
        started = time.monotonic()
        with pytest.raises(Stop):
            (run_volc if vendor == "volc" else run_ds)(sb, hooks)
        took = time.monotonic() - started - 0.8
        assert took < 1.0, f"{wait}: the run ended {took:.2f} s after the interrupt"
        creates = sb.requests("dashscope", action="create")
        if vendor == "dashscope" and any(e.billable for e in creates):  # a task exists: it gets cancelled
            # (once its id is known: a create answered slowly is cancelled when the answer arrives)
            deadline = time.monotonic() + 5 + params.get("seconds", 0)
            while not sb.requests("dashscope", action="cancel"):
                assert time.monotonic() < deadline, "the vendor task was not cancelled"
                time.sleep(0.05)
