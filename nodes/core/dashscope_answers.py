"""DashScope answers (spec vendor-apis.md B.4, B.5, B.7), read in this one place into typed objects,
and what each error means in plain words.

Shapes: getPolicy {"request_id", "data": {upload fields}}; create {"request_id", "output": {"task_id",
"task_status"}}; task {"request_id", "output": {"task_id", "task_status", "output_image_url" |
"code", "message"}, "usage": {"image_count"}}; errors (HTTP 4xx/5xx) {"code", "message", "request_id"}.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import requests

from . import transport
from .answers import Fields, Shape, malformed, object_body
from .errors import VendorError

VENDOR = "DashScope"
SUCCEEDED, FAILED, CANCELED, UNKNOWN = "SUCCEEDED", "FAILED", "CANCELED", "UNKNOWN"
TERMINAL = (SUCCEEDED, FAILED, CANCELED, UNKNOWN)

REGION_HINT = ("the API key was refused: it is wrong, or it belongs to another region. image-out-painting "
               "runs only in China (Beijing) and needs a key of that region; international (Singapore) keys "
               "and hosts do not work")
# code -> (plain-language meaning, retryable). Spec B.5 and DashScope's common error codes.
ERROR_CODES = {
    "InvalidApiKey": (REGION_HINT, False),
    "Throttling": ("too many requests: the account's rate limit was hit", True),
    "Throttling.RateQuota": ("too many requests per second or tasks at once for this account", True),
    "Throttling.AllocationQuota": ("the account's quota (free images or allocation) is used up", False),
    "Throttling.BurstRate": ("too many requests in a burst", True),
    "Arrearage": ("the Alibaba Cloud account is in arrears (overdue payment): top it up in the console", False),
    "AccessDenied": ("this key may not use image-out-painting (model not activated, or workspace lacks it)", False),
    "AccessDenied.Unpurchased": ("the model service is not activated for this account", False),
    "Model.AccessDenied": ("this workspace may not use image-out-painting", False),
    "DataInspectionFailed": ("the image failed the vendor's content moderation", False),
    "InvalidParameter.ImageContent": ("the image failed the vendor's content moderation", False),
    "InvalidParameter.JsonPhrase": ("the request JSON was not accepted", False),
    "InvalidParameter.FileDownload": ("the vendor could not download the input image", False),
    "InvalidParameter.ImageFormat": ("the vendor could not read the image format", False),
    "InvalidParameter.DataInspection": ("the image size or URL is not supported (too large an output, or an "
                                        "oss:// URL without the resolve header)", False),
    "InvalidParameter": ("a parameter is outside what the model accepts", False),
    "UnsupportedOperation": ("the vendor refused the operation (a task can only be cancelled while pending)",
                             False),
    "InternalError": ("the vendor had an internal error", False),
    "InternalError.Algo": ("the model failed internally", False),
    "RequestTimeOut": ("the vendor timed out", False),
}

T = TypeVar("T")


def meaning(code: str, default: str) -> tuple[str, bool]:
    """(meaning, retryable) of a code, falling back to its family ("Throttling.X" -> "Throttling")."""
    return ERROR_CODES.get(code, ERROR_CODES.get(code.split(".")[0], (default, False)))


@dataclass(frozen=True)
class ErrorAnswer:
    """An HTTP 4xx/5xx answer in DashScope's JSON; code is "" when it carries none."""

    code: str
    message: str
    request_id: str

    @classmethod
    def parse(cls, answer: Fields) -> ErrorAnswer:
        return cls(answer.text("code"), answer.message("message"), answer.text("request_id"))

    def error(self, http_status: int, retry_after: float | None) -> VendorError:
        code = self.code or f"HTTP{http_status}"
        text, retryable = meaning(code, "DashScope returned an error")
        return VendorError(VENDOR, code, REGION_HINT if http_status == 401 else text, message=self.message,
                           http_status=http_status, request_id=self.request_id or None, retryable=retryable,
                           # a 4xx answer means DashScope refused the request: nothing was created or billed
                           billed=False if retryable or http_status < 500 else None, retry_after=retry_after)


@dataclass(frozen=True)
class UploadPolicy:
    """getPolicy: a short-lived OSS PostObject policy for the temporary bucket (free)."""

    request_id: str
    upload_host: str
    upload_dir: str
    policy: str
    signature: str
    oss_access_key_id: str
    max_file_size_mb: float = 100.0
    x_oss_object_acl: str = "private"
    x_oss_forbid_overwrite: str = "true"

    @classmethod
    def parse(cls, answer: Fields) -> UploadPolicy:
        request_id, data = answer.text("request_id"), answer.object("data", required=True)
        required = [data.text(name, required=True) for name in
                    ("upload_host", "upload_dir", "policy", "signature", "oss_access_key_id")]
        limit = data.number("max_file_size_mb")
        if limit is not None and limit <= 0:
            raise Shape("data.max_file_size_mb is not a positive number")
        return cls(request_id, *required, max_file_size_mb=100.0 if limit is None else limit,
                   x_oss_object_acl=data.text("x_oss_object_acl") or "private",
                   x_oss_forbid_overwrite=data.text("x_oss_forbid_overwrite") or "true")


@dataclass(frozen=True)
class CreateAnswer:
    """The task was accepted: from here it may be billed."""

    task_id: str
    task_status: str
    request_id: str

    @classmethod
    def parse(cls, answer: Fields) -> CreateAnswer:
        request_id, output = answer.text("request_id"), answer.object("output", required=True)
        return cls(output.text("task_id", required=True), output.text("task_status"), request_id)


@dataclass(frozen=True)
class TaskAnswer:
    """One GET /tasks/{id}: the task's state, and its result link or error once it is finished."""

    task_id: str
    task_status: str  # PENDING, RUNNING, SUCCEEDED, FAILED, CANCELED, UNKNOWN (SUSPENDED is known too)
    request_id: str = ""
    output_image_url: str = ""
    code: str = ""
    message: str = ""
    image_count: int | None = None  # usage.image_count: the images billed (success only)

    @classmethod
    def parse(cls, answer: Fields, task_id: str) -> TaskAnswer:
        request_id, output = answer.text("request_id"), answer.object("output", required=True)
        status = output.text("task_status", required=True)
        usage = answer.object("usage")
        parsed = cls(output.text("task_id") or task_id, status, request_id, output.text("output_image_url"),
                     output.text("code"), output.message("message"),
                     usage.integer("image_count") if usage is not None else None)
        if status == SUCCEEDED and not parsed.output_image_url:
            raise Shape("output.output_image_url is missing from a SUCCEEDED task")
        return parsed


def error_answer(response: requests.Response) -> VendorError:
    """The VendorError a non-200 answer means."""
    data = transport.json_object(response)
    if data is None:  # not DashScope's JSON: a proxy's or gateway's error page
        return transport.not_json_error(VENDOR, response)
    status = response.status_code
    try:
        answer = ErrorAnswer.parse(Fields(data, ""))
    except Shape as problem:
        return malformed(VENDOR, problem, http_status=status, request_id=_quotable(data, "request_id"),
                         billed=False if status < 500 else None,
                         note=f"; HTTP 401 means {REGION_HINT}" if status == 401 else "")
    return answer.error(status, transport.parse_retry_after(response.headers.get("Retry-After")))


def _quotable(data: dict, name: str, inside: str = "") -> str:
    """An id to quote in a malformed-answer error, if it is readable."""
    holder = data.get(inside) if inside else data
    value = holder.get(name) if isinstance(holder, dict) else None
    return value if isinstance(value, str) else ""


def _read(response: requests.Response, parse: Callable[[Fields], T],
          on_shape: Callable[[dict, Shape], VendorError]) -> T | VendorError:
    """A typed answer from an HTTP 200 answer; `on_shape(data, problem)` makes its malformed-answer error."""
    if response.status_code != 200:
        return error_answer(response)
    data: dict = {}
    try:
        data = object_body(response)
        return parse(Fields(data, ""))
    except Shape as problem:
        return on_shape(data, problem)


def read_policy(response: requests.Response) -> UploadPolicy | VendorError:
    return _read(response, UploadPolicy.parse, lambda data, problem: malformed(
        VENDOR, problem, request_id=_quotable(data, "request_id"), billed=False))


def read_create(response: requests.Response) -> CreateAnswer | VendorError:
    def on_shape(data: dict, problem: Shape) -> VendorError:
        task_id = _quotable(data, "task_id", "output")
        if not task_id:
            return malformed(VENDOR, problem, request_id=_quotable(data, "request_id"),
                             note="; a task may have been created and billed, but its id could not be read")
        return malformed(VENDOR, problem, request_id=_quotable(data, "request_id"), task_id=task_id,
                         note=f"; task {task_id} was created and may be billed")
    return _read(response, CreateAnswer.parse, on_shape)


def read_task(response: requests.Response, task_id: str) -> TaskAnswer | VendorError:
    def on_shape(data: dict, problem: Shape) -> VendorError:
        status = _quotable(data, "task_status", "output")
        billed = True if status == SUCCEEDED else False if status in (FAILED, CANCELED) else None
        return malformed(VENDOR, problem, request_id=_quotable(data, "request_id"), task_id=task_id, billed=billed)
    return _read(response, lambda answer: TaskAnswer.parse(answer, task_id), on_shape)


def task_error(answer: TaskAnswer, task_id: str) -> VendorError:
    """The error a terminal, unsuccessful task answer means."""
    request_id = answer.request_id or None
    if answer.task_status == UNKNOWN:
        return VendorError(VENDOR, UNKNOWN, "the vendor does not know this task: it expired (task ids live 24 h), "
                           "or belongs to another API key or workspace", task_id=task_id,
                           request_id=request_id, billed=None)
    if answer.task_status == CANCELED:
        return VendorError(VENDOR, CANCELED, "the task was cancelled", task_id=task_id, request_id=request_id,
                           billed=False)
    code = answer.code or FAILED
    text, _ = meaning(code, "the task failed")
    return VendorError(VENDOR, code, text, message=answer.message, task_id=task_id, request_id=request_id,
                       billed=False)
