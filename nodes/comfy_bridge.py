"""The few ComfyUI services a node needs: interrupt checks, status text under the node, a progress
bar, and the UI payload of the geometry preview. Each degrades to a no-op outside ComfyUI (tests,
command line)."""

from __future__ import annotations

import time

try:  # inside ComfyUI
    import comfy.model_management as _model_management
    import comfy.utils as _comfy_utils
except ImportError:
    _model_management = _comfy_utils = None
try:
    from server import PromptServer as _PromptServer
except ImportError:
    _PromptServer = None


def check_interrupt() -> None:
    """Raises ComfyUI's own InterruptProcessingException, so the run shows as interrupted."""
    if _model_management is not None:
        _model_management.throw_exception_if_processing_interrupted()


class NodeFeedback:
    """Status text (at most once a second unless it changes meaning) and a progress bar for one node."""

    def __init__(self, node_id: str | None):
        self.node_id = node_id
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
        if self._bar is None:
            self._bar = _comfy_utils.ProgressBar(total, node_id=self.node_id)
        self._bar.update_absolute(done, total)


def input_size_ui(width: int, height: int) -> dict:
    """UI payload for the frontend's geometry preview (web/js): the real input size of the last run."""
    return {"cloud_outpaint_input": [{"width": int(width), "height": int(height)}]}
