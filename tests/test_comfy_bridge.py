"""The cloud nodes on ComfyUI's event loop: their work runs on a worker thread, so independent cloud
nodes run side by side; an interrupt reaches every one of them, a cancelled node's worker stops, and
the progress bar is updated on the loop. ComfyUI's services are stood in for by small fakes that
behave as ComfyUI 0.3.64 / 0.20.1 do (comfy.model_management, comfy.utils.ProgressBar)."""

import asyncio
import threading
import time

import comfy_driver as drv
import pytest
import torch
from pack import module

bridge = module("nodes.comfy_bridge")
VolcOutpaint = module("nodes.volc_node").VolcOutpaint
DashScopeOutpaint = module("nodes.dashscope_node").DashScopeOutpaint
Sandbox = module("nodes.sandbox").Sandbox
SOCKETS = {"IMAGE", "MASK"}
NODES = {"volc": VolcOutpaint, "dashscope": DashScopeOutpaint}


class ModelManagement:
    """comfy.model_management's interrupt flag; its own throw_... clears the flag for the first reader."""

    class InterruptProcessingException(Exception):
        pass

    def __init__(self):
        self.flag = False

    def interrupt_current_processing(self, value=True):
        self.flag = value

    def processing_interrupted(self):
        return self.flag

    def throw_exception_if_processing_interrupted(self):
        if self.flag:
            self.flag = False
            raise self.InterruptProcessingException()


@pytest.fixture
def comfy_mm(monkeypatch):
    mm = ModelManagement()
    monkeypatch.setattr(bridge, "_model_management", mm)
    return mm


SANDBOX_SETTINGS = {"dashscope_pending_s": 0.05, "dashscope_running_s": 0.1}  # read by conftest's sb


@pytest.fixture
def sandbox(sb, cloud_env):
    """'cloud' pointed at this test's sandbox through the environment variables users set."""
    return sb


def run(vendor: str, node_id: str, **overrides):
    """A coroutine running one node on backend cloud, as ComfyUI's executor creates it."""
    node = NODES[vendor]
    info = drv.node_info(node)
    inputs = {name: opts.get("default") for name, (t, opts) in info["input"]["required"].items() if t not in SOCKETS}
    size = (1, 48, 64, 3) if vendor == "volc" else (1, 512, 512, 3)
    inputs.update({"timeout_s": 10, **overrides}, image=torch.rand(size), backend="cloud")  # a bug fails, not hangs
    return drv.execute_async(node, hidden={"unique_id": node_id}, linked={"image"}, **inputs)


async def _gather(*runs):
    return await asyncio.gather(*runs, return_exceptions=True)


@pytest.mark.parametrize("pair", [("volc", "volc"), ("volc", "dashscope")], ids="+".join)
def test_independent_cloud_nodes_run_side_by_side(sandbox, pair):
    sandbox.latency = 0.6  # per billable request: the Volcengine call, the DashScope create

    def timed(*vendors):
        started = time.monotonic()
        results = asyncio.run(_gather(*(run(vendor, str(k)) for k, vendor in enumerate(vendors))))
        assert all(isinstance(r, tuple) and r[0].shape[0] == 1 for r in results), results
        return time.monotonic() - started

    alone = [timed(vendor) for vendor in pair]
    together = timed(*pair)
    # one after the other would take sum(alone); side by side saves about the shorter one (>= 0.6 s)
    assert together < sum(alone) - 0.35, (alone, together)


def test_an_interrupt_reaches_every_node_running_side_by_side(sandbox, comfy_mm):
    sandbox.inject("volc", "slow", times=2, seconds=5)

    async def scenario():
        runs = asyncio.gather(run("volc", "1"), run("volc", "2"), return_exceptions=True)
        while len(sandbox.requests("volc")) < 2:
            await asyncio.sleep(0.05)
        comfy_mm.interrupt_current_processing()
        return time.monotonic(), await runs

    interrupted_at, results = asyncio.run(scenario())
    assert time.monotonic() - interrupted_at < 1.0  # asyncio.run also waited for both worker threads
    assert [type(r) for r in results] == [ModelManagement.InterruptProcessingException] * 2
    assert comfy_mm.flag  # left for ComfyUI, which clears it when the next prompt starts


@pytest.mark.parametrize("vendor,fault", [("volc", {"kind": "slow", "seconds": 5}),
                                          ("dashscope", {"kind": "stuck"})])
def test_a_cancelled_node_stops_its_worker_and_the_vendor_task(sandbox, comfy_mm, vendor, fault):
    # ComfyUI cancels the node tasks still pending when a prompt ends early (asyncio.run's clean-up)
    sandbox.inject(vendor, **fault)
    billable = {"volc": "CVProcess", "dashscope": "create"}[vendor]

    async def scenario():
        task = asyncio.create_task(run(vendor, "5"))
        while not sandbox.requests(vendor, action=billable):
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.3)  # the run is waiting on the vendor now
        cancelled_at = time.monotonic()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return cancelled_at

    cancelled_at = asyncio.run(scenario())
    assert time.monotonic() - cancelled_at < 1.0, "the worker thread kept running after the cancel"
    while vendor == "dashscope" and not sandbox.requests("dashscope", action="cancel"):
        assert time.monotonic() - cancelled_at < 3, "the vendor task was not cancelled"
        time.sleep(0.05)
    assert not comfy_mm.flag


class ProgressBar:
    """comfy.utils.ProgressBar with ComfyUI's hook: the hook checks (and clears) the interrupt flag."""

    updates: list = []
    mm: ModelManagement = None

    def __init__(self, total, node_id=None):
        self.node_id = node_id

    def update_absolute(self, value, total=None, preview=None):
        self.mm.throw_exception_if_processing_interrupted()
        self.updates.append((value, total, self.node_id, threading.current_thread()))


@pytest.fixture
def progress_bar(monkeypatch, comfy_mm):
    bar = type("Bar", (ProgressBar,), {"updates": [], "mm": comfy_mm})
    monkeypatch.setattr(bridge, "_comfy_utils", type("ComfyUtils", (), {"ProgressBar": bar}))
    return bar


def test_progress_is_updated_on_the_event_loop_thread(sandbox, progress_bar):
    loop_thread = threading.current_thread()  # asyncio.run runs the loop here
    asyncio.run(run("volc", "3", variants=2))
    assert [(v, t, n) for v, t, n, _ in progress_bar.updates] == [(0, 2, "3"), (1, 2, "3"), (2, 2, "3")]
    assert {thread for *_, thread in progress_bar.updates} == {loop_thread}


def test_the_progress_hook_does_not_swallow_an_interrupt(progress_bar, comfy_mm):
    async def update_while_interrupted():
        feedback = bridge.NodeFeedback("4", asyncio.get_running_loop())
        comfy_mm.interrupt_current_processing()
        await asyncio.to_thread(feedback.progress, 1, 2)
        await asyncio.sleep(0)  # the update runs on the loop

    asyncio.run(update_while_interrupted())
    assert comfy_mm.flag, "the waiting runs must still see the interrupt"
    with pytest.raises(ModelManagement.InterruptProcessingException):
        bridge.check_interrupt()
