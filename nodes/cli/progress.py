"""The outpaint command's terminal progress line, and messages that do not tear it."""

from __future__ import annotations

import shutil
import sys
import threading
import time


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
