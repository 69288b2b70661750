"""Error types shared by every part of the pack (no ComfyUI imports)."""

from __future__ import annotations

from .redaction import cap_text


class InputError(ValueError):
    """Bad input found before any work or money was spent.

    The message is written for the person who set the widgets: it names the input and says
    what would be accepted.
    """


class ConfigError(RuntimeError):
    """Missing or contradictory configuration (credentials, base URLs); nothing was sent."""


class Cancelled(Exception):
    """The run was interrupted by the user; raised inside worker threads, never shown as an error."""


class VendorError(RuntimeError):
    """A vendor call failed: the vendor's code, what it means in plain words, and the ids to quote.

    `billed` says whether the vendor may have processed (and charged for) the request:
    True / False when known, None when it cannot be known (e.g. a read timeout after sending).
    `message` is the vendor's own text; `hint` is ours: what to do next (e.g. how to resume a task).
    """

    def __init__(self, vendor: str, code: str | int, meaning: str, *, message: str = "",
                 http_status: int | None = None, request_id: str | None = None,
                 task_id: str | None = None, retryable: bool = False, billed: bool | None = None,
                 retry_after: float | None = None, hint: str = ""):
        self.vendor, self.code, self.meaning, self.message = vendor, code, meaning, message
        self.http_status, self.request_id, self.task_id = http_status, request_id, task_id
        self.retryable, self.billed, self.retry_after, self.hint = retryable, billed, retry_after, hint
        super().__init__(code, meaning)

    def __str__(self) -> str:  # built on demand: ids may be filled in after the error was raised
        return self.describe()

    def describe(self) -> str:
        parts = [f"{self.vendor} error {self.code}: {self.meaning}"]
        if self.message and self.message not in self.meaning:
            parts.append(f"(vendor says: {cap_text(self.message)})")
        ids = [f"{name} {value}" for name, value in (("HTTP", self.http_status), ("request id", self.request_id),
                                                     ("task id", self.task_id)) if value]
        if ids:
            parts.append("[" + ", ".join(ids) + "]")
        return " ".join(parts) + (f"; {self.hint}" if self.hint else "")


class ItemError(RuntimeError):
    """One job of a batch (an image, a variant) failed; names it and keeps the cause."""

    def __init__(self, label: str, cause: BaseException):
        self.label, self.cause = label, cause
        ours = isinstance(cause, (VendorError, InputError, ConfigError))
        super().__init__(f"{label}: {cause}" if ours else f"{label}: {type(cause).__name__}: {cause}")
