"""The few ComfyUI services a cloud node needs: running its blocking work off ComfyUI's event loop,
interrupt checks, status text under the node, a progress bar, and the UI payload of the geometry
preview. Each degrades to a no-op outside ComfyUI (tests, command line)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from typing import TypeVar

from .core.errors import Cancelled
from .core.runner import RunHooks

try:  # inside ComfyUI
    import comfy.model_management as _model_management
    import comfy.utils as _comfy_utils
except ImportError:
    _model_management = _comfy_utils = None
try:
    from server import PromptServer as _PromptServer
except ImportError:
    _PromptServer = None

T = TypeVar("T")


def check_interrupt() -> None:
    """Raises ComfyUI's own InterruptProcessingException, so the run shows as interrupted.

    The flag is read, not cleared (ComfyUI's throw_exception_if_processing_interrupted clears it
    for its first reader): every cloud node running side by side must see the same interrupt.
    ComfyUI clears the flag itself when the next prompt starts."""
    if _model_management is not None and _model_management.processing_interrupted():
        raise _model_management.InterruptProcessingException()


async def run_in_worker(node_id: str | None, work: Callable[[RunHooks], T]) -> T:
    """Runs `work(hooks)` on a worker thread, so other nodes of the graph (other cloud nodes
    included) run meanwhile; returns its result.

    asyncio.to_thread copies the context, so ComfyUI's current-node context follows the work. The
    work ends within one poll slice when ComfyUI interrupts the prompt or cancels this node's task
    (ComfyUI cancels the tasks still pending when a prompt ends early)."""
    cancelled = threading.Event()

    def poll() -> None:
        if cancelled.is_set():
            raise Cancelled()
        check_interrupt()

    feedback = NodeFeedback(node_id, asyncio.get_running_loop())
    hooks = RunHooks(poll=poll, status=feedback.status, progress=feedback.progress)
    try:
        return await asyncio.to_thread(work, hooks)
    except asyncio.CancelledError:
        cancelled.set()
        raise


class NodeFeedback:
    """Status text (at most once a second unless it changes meaning) and a progress bar for one node.

    Called from the worker thread. The status text goes through PromptServer.send_sync, which is
    thread-safe. The progress bar is updated on the event loop (`loop`), where ComfyUI updates
    every other node's progress: its progress registry is a plain dict shared by all nodes."""

    def __init__(self, node_id: str | None, loop: asyncio.AbstractEventLoop):
        self.node_id, self.loop = node_id, loop
        self._bar = None
        self._last_text, self._last_sent = None, 0.0

    def status(self, text: str) -> None:
        server = getattr(_PromptServer, "instance", None) if _PromptServer else None
        if server is None or not self.node_id:
            return
        now = time.monotonic()
        head = text.split(",")[0]
        if text == self._last_text or (now - self._last_sent < 1.0 and self._last_text
                                       and self._last_text.split(",")[0] == head):
            return
        self._last_text, self._last_sent = text, now
        server.send_progress_text(text, self.node_id, getattr(server, "client_id", None))

    def progress(self, done: int, total: int) -> None:
        if _comfy_utils is None:
            return
        try:
            self.loop.call_soon_threadsafe(self._update_bar, done, total)
        except RuntimeError:  # the loop has closed: the prompt is over
            pass

    def _update_bar(self, done: int, total: int) -> None:
        if self._bar is None:
            self._bar = _comfy_utils.ProgressBar(total, node_id=self.node_id)
        try:
            self._bar.update_absolute(done, total)
        except _model_management.InterruptProcessingException:
            # ComfyUI's progress hook checks the interrupt flag and clears it; put it back for the
            # waiting runs (this node's and its neighbours'), which end on it within a poll slice
            _model_management.interrupt_current_processing(True)


def input_size_ui(width: int, height: int, info=None, batch: int | None = None) -> dict:
    """UI payload for the frontend (web/js): the real input size (and batch) of the last run (geometry preview,
    cost badge) and, given the run's info, what it cost (results from the cache, paid calls, CNY or null)."""
    size = {"width": int(width), "height": int(height)}
    ui = {"cloud_outpaint_input": [size if batch is None else {**size, "batch": int(batch)}]}
    if info is not None:  # a sandbox run has no info.cost: it is free
        ui["cloud_outpaint_cost"] = [dict(info.cost or {"cached": 0, "paid": 0, "cost_cny": 0.0})]
    return ui
