"""Alibaba DashScope `image-out-painting` client: temporary upload (oss://), async task create,
adaptive polling, cancel, result download; every answer becomes a result or a VendorError.

Spec: shared/spec/vendor-apis.md Part B. The model applies only its highest-priority expansion
mode; this client takes one explicit mode and sends only that mode's parameters.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import requests

from . import geometry, transport
from .credentials import DashScopeCredentials
from .errors import InputError, VendorError
from .widgets import DASHSCOPE as _W

VENDOR = "DashScope"
MODEL = "image-out-painting"
CREATE_PATH = "/services/aigc/image2image/out-painting"
TERMINAL = ("SUCCEEDED", "FAILED", "CANCELED", "UNKNOWN")

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


@dataclass(frozen=True)
class DashScopeConfig:
    """Polling and limits; the documented rate limits are settings because they have changed.

    Polling is sparse while the task cannot be done yet and dense around when it usually is:
    fast first (bad inputs fail within a second), backing off to `poll_cap`, every `poll_near`
    seconds from 0.8x to 1.5x the expected duration, then backing off again. The expected
    duration starts at the vendor's documented example (26 s) and follows what this process
    has observed (TaskDurations)."""

    poll_first: float = 0.5
    poll_growth: float = 1.5
    poll_cap: float = 5.0
    poll_near: float = 1.5  # the delay between SUCCEEDED and seeing it is at most this near the expected time
    expected_s: float = 25.0
    creates_per_second: float = 2.0  # documented QPS of task submission (account-wide)
    connect_timeout: float = 10.0
    read_timeout: float = 60.0
    max_input_bytes: int = 10 * 2**20
    max_download_bytes: int = 64 * 2**20

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> "DashScopeConfig":
        return cls(poll_cap=float(env.get("DASHSCOPE_POLL_CAP", cls.poll_cap)),
                   creates_per_second=float(env.get("DASHSCOPE_CREATES_PER_SECOND", cls.creates_per_second)))

    def next_poll(self, elapsed: float, backoff: float, expected: float) -> float:
        """Seconds to wait before the next poll, `elapsed` seconds after the task was created."""
        near_from, near_to = 0.8 * expected, 1.5 * expected
        if near_from <= elapsed < near_to:
            return self.poll_near
        if elapsed < near_from:
            return max(0.05, min(backoff, near_from - elapsed))  # land exactly on the dense window
        return backoff


class TaskDurations:
    """What this process has seen tasks take (create -> SUCCEEDED), to time the polls."""

    _lock = threading.Lock()
    _estimate: float | None = None

    @classmethod
    def expected(cls, prior: float) -> float:
        with cls._lock:
            return cls._estimate if cls._estimate is not None else prior

    @classmethod
    def observe(cls, seconds: float) -> None:
        with cls._lock:
            cls._estimate = seconds if cls._estimate is None else 0.7 * cls._estimate + 0.3 * seconds


@dataclass(frozen=True)
class DashScopeParams:
    """One explicit expansion mode; offsets are in the pixels of the image as sent."""

    mode: str = _W["mode"].default
    angle: int = _W["angle"].default
    output_ratio: str = _W["output_ratio"].default
    x_scale: float = _W["x_scale"].default
    y_scale: float = _W["y_scale"].default
    left_offset: int = _W["left_offset"].default
    right_offset: int = _W["right_offset"].default
    top_offset: int = _W["top_offset"].default
    bottom_offset: int = _W["bottom_offset"].default
    best_quality: bool = _W["best_quality"].default
    limit_image_size: bool = _W["limit_image_size"].default
    add_watermark: bool = _W["add_watermark"].default  # the vendor's default: a visible "Generated by AI" mark

    def validate(self) -> None:
        """The widgets' own types and ranges, for the user's values (offsets in the user's pixels)."""
        for name in ("mode", "angle", "output_ratio", "x_scale", "y_scale", "left_offset", "right_offset",
                     "top_offset", "bottom_offset", "best_quality", "limit_image_size", "add_watermark"):
            _W[name].check(getattr(self, name), VENDOR)

    def plan(self, width: int, height: int) -> geometry.Placement:
        """Validates the mode's parameters and says where the image will land."""
        return geometry.dashscope_plan(width, height, self.mode, angle=self.angle, output_ratio=self.output_ratio,
                                       x_scale=self.x_scale, y_scale=self.y_scale, left=self.left_offset,
                                       top=self.top_offset, right=self.right_offset, bottom=self.bottom_offset)

    def parameters(self) -> dict:
        params = {"angle": self.angle, "best_quality": self.best_quality,
                  "limit_image_size": self.limit_image_size, "add_watermark": self.add_watermark}
        if self.mode == "output_ratio":
            params["output_ratio"] = self.output_ratio
        elif self.mode == "scale":
            params.update(x_scale=self.x_scale, y_scale=self.y_scale)
        elif self.mode == "offsets":
            params.update(left_offset=self.left_offset, right_offset=self.right_offset,
                          top_offset=self.top_offset, bottom_offset=self.bottom_offset)
        return params


@dataclass
class TaskResult:
    task_id: str
    image: bytes
    request_id: str = ""
    polls: int = 0
    submitted_s: float = 0.0  # from create to SUCCEEDED seen
    output: dict = field(default_factory=dict)


class CreateLimiter:
    """At most `rate` task creations per second per API key, across every run in this process."""

    _lock = threading.Lock()
    _next: dict[str, float] = {}

    @classmethod
    def wait_turn(cls, key: str, rate: float, control: transport.RunControl) -> None:
        with cls._lock:
            now = time.monotonic()
            slot = max(now, cls._next.get(key, 0.0))
            cls._next[key] = slot + 1.0 / rate
        if slot > now:
            control.sleep(slot - now, "waiting for a task-submission slot (2 per second)")


def classify(response: requests.Response) -> VendorError | None:
    """None for HTTP 200 with JSON; otherwise the VendorError the answer means."""
    data = transport.json_object(response)
    status = response.status_code
    retry_after = transport.parse_retry_after(response.headers.get("Retry-After"))
    if status == 200 and data is not None:
        return None
    if data is None:
        return transport.not_json_error(VENDOR, response)
    code = str(data.get("code") or f"HTTP{status}")
    meaning, retryable = ERROR_CODES.get(code, ERROR_CODES.get(code.split(".")[0], ("DashScope returned an error",
                                                                                    False)))
    if status == 401:
        meaning = REGION_HINT
    return VendorError(VENDOR, code, meaning, message=str(data.get("message", "")), http_status=status,
                       request_id=data.get("request_id"), retryable=retryable,
                       # a 4xx answer means DashScope refused the request: nothing was created or billed
                       billed=False if retryable or status < 500 else None, retry_after=retry_after)


def _oss_error(response: requests.Response) -> VendorError | None:
    if response.status_code in (200, 204):
        return None
    return VendorError(VENDOR, f"OSS{response.status_code}", "the temporary upload was refused (an expired or "
                       "invalid upload policy)" if response.status_code == 403 else "the temporary upload failed",
                       message=response.text[:300], http_status=response.status_code, billed=False)


class DashScopeClient:
    def __init__(self, credentials: DashScopeCredentials, session: requests.Session, control: transport.RunControl,
                 config: DashScopeConfig = DashScopeConfig()):
        self.credentials, self.session, self.control, self.config = credentials, session, control, config
        self.base = credentials.base_url.rstrip("/")
        if not self.base.startswith(("http://", "https://")):
            raise InputError(f"DashScope base URL {credentials.base_url!r} is not an http(s) URL")

    def _headers(self, **extra: str) -> dict:
        headers = {"Authorization": f"Bearer {self.credentials.api_key}", **extra}
        if self.credentials.workspace:
            headers["X-DashScope-WorkSpace"] = self.credentials.workspace
        return headers

    def _send(self, method: str, url: str, *, billable: bool, on_wait=None, **kw) -> requests.Response:
        return transport.send(self.session, method, url, control=self.control, billable=billable, classify=classify,
                         connect_timeout=self.config.connect_timeout, read_timeout=self.config.read_timeout,
                         on_wait=on_wait, secrets=(self.credentials.api_key,), **kw)

    def upload(self, data: bytes, filename: str, on_wait=None) -> str:
        """Temporary upload (free, retried freely): getPolicy, OSS form POST with `file` last -> oss:// URL.

        A 403 from OSS means the policy expired (it lives a few minutes): one fresh policy is tried."""
        for attempt in (1, 2):
            policy = self._upload_policy(on_wait)
            if len(data) > float(policy.get("max_file_size_mb") or 100) * 2**20:
                raise InputError(f"the encoded image ({len(data) / 2**20:.1f} MiB) is over the upload limit of "
                                 f"{policy.get('max_file_size_mb')} MiB")
            key = f"{policy['upload_dir']}/{filename}"
            form = {"OSSAccessKeyId": policy["oss_access_key_id"], "Signature": policy["signature"],
                    "policy": policy["policy"], "key": key,
                    "x-oss-object-acl": policy.get("x_oss_object_acl", "private"),
                    "x-oss-forbid-overwrite": policy.get("x_oss_forbid_overwrite", "true"),
                    "success_action_status": "200"}
            mime = "image/png" if filename.endswith(".png") else "image/jpeg"
            try:
                # requests writes `data` fields before `files`: `file` is the last field, as OSS requires
                transport.send(self.session, "POST", policy["upload_host"], control=self.control, billable=False,
                          classify=_oss_error, on_wait=on_wait, data=form, files={"file": (filename, data, mime)},
                          read_timeout=max(60.0, self.config.read_timeout), secrets=(self.credentials.api_key,))
            except VendorError as exc:
                if exc.http_status == 403 and attempt == 1:
                    continue
                raise
            return f"oss://{key}"
        raise AssertionError("unreachable")

    def _upload_policy(self, on_wait) -> dict:
        response = self._send("GET", f"{self.base}/uploads?action=getPolicy&model={MODEL}", billable=False,
                              headers=self._headers(), on_wait=on_wait)
        answer = transport.json_object(response) or {}
        policy = answer.get("data") or {}
        missing = [k for k in ("upload_host", "upload_dir", "policy", "signature", "oss_access_key_id")
                   if not policy.get(k)]
        if missing:
            raise VendorError(VENDOR, "BadUploadPolicy", f"the upload policy lacks {', '.join(missing)}",
                              request_id=answer.get("request_id"), billed=False)
        return policy

    def create(self, image_url: str, params: DashScopeParams, on_wait=None) -> tuple[str, str]:
        """Submit the (billable) task; returns (task_id, request_id). Never resent once it may have arrived."""
        CreateLimiter.wait_turn(self.credentials.api_key, self.config.creates_per_second, self.control)
        extra = {"X-DashScope-Async": "enable", "Content-Type": "application/json"}
        if image_url.startswith("oss://"):
            extra["X-DashScope-OssResourceResolve"] = "enable"
        body = {"model": MODEL, "input": {"image_url": image_url}, "parameters": params.parameters()}
        response = self._send("POST", f"{self.base}{CREATE_PATH}", billable=True, headers=self._headers(**extra),
                              json_body=body, on_wait=on_wait)
        data = transport.json_object(response) or {}
        task_id = (data.get("output") or {}).get("task_id")
        if not task_id:
            raise VendorError(VENDOR, "NoTaskId", "the vendor accepted the request but returned no task id",
                              request_id=data.get("request_id"), billed=None)
        return task_id, data.get("request_id", "")

    def status(self, task_id: str, on_wait=None) -> dict:
        """One GET /tasks/{id} (idempotent: retried on network errors, 429 and 5xx)."""
        response = self._send("GET", f"{self.base}/tasks/{task_id}", billable=False, headers=self._headers(),
                              on_wait=on_wait)
        return transport.json_object(response) or {}

    def wait(self, task_id: str, on_state: Callable[[str], None] = lambda s: None, on_wait=None,
             created: float | None = None) -> tuple[dict, int]:
        """Poll until a terminal state (see DashScopeConfig for the schedule); returns (answer, polls)."""
        created = time.monotonic() if created is None else created
        expected = TaskDurations.expected(self.config.expected_s)
        polls, backoff = 0, self.config.poll_first
        while True:
            self.control.sleep(self.config.next_poll(time.monotonic() - created, backoff, expected),
                               f"waiting for task {task_id}")
            backoff = min(self.config.poll_cap, backoff * self.config.poll_growth)
            answer = self.status(task_id, on_wait)
            polls += 1
            state = (answer.get("output") or {}).get("task_status", "")
            on_state(state)
            if state == "SUCCEEDED":
                TaskDurations.observe(time.monotonic() - created)
            if state in TERMINAL:
                return answer, polls

    def cancel(self, task_id: str) -> str:
        """Best effort: the vendor cancels only PENDING tasks. Returns what happened, in words."""
        try:
            response = self.session.post(f"{self.base}/tasks/{task_id}/cancel", headers=self._headers(),
                                         timeout=(self.config.connect_timeout, 10))
        except requests.RequestException as exc:
            return f"cancel request failed ({exc.__class__.__name__})"
        if response.status_code == 200:
            return "cancelled"
        data = transport.json_object(response) or {}
        return f"not cancelled ({data.get('code') or response.status_code}: {data.get('message', '')})"

    def download(self, url: str, on_wait=None) -> bytes:
        return transport.download(self.session, url, control=self.control, base_url=self.base,
                             max_bytes=self.config.max_download_bytes, on_wait=on_wait)


def task_error(answer: dict, task_id: str) -> VendorError:
    """The error a terminal, unsuccessful task answer means."""
    output = answer.get("output") or {}
    state = output.get("task_status", "")
    if state == "UNKNOWN":
        return VendorError(VENDOR, "UNKNOWN", "the vendor does not know this task: it expired (task ids live 24 h), "
                           "or belongs to another API key or workspace", task_id=task_id,
                           request_id=answer.get("request_id"), billed=None)
    if state == "CANCELED":
        return VendorError(VENDOR, "CANCELED", "the task was cancelled", task_id=task_id,
                           request_id=answer.get("request_id"), billed=False)
    code = str(output.get("code") or "FAILED")
    meaning, _ = ERROR_CODES.get(code, ERROR_CODES.get(code.split(".")[0], ("the task failed", False)))
    return VendorError(VENDOR, code, meaning, message=str(output.get("message", "")), task_id=task_id,
                       request_id=answer.get("request_id"), billed=False)


def upload_name(index: int, fmt: str) -> str:
    """A unique-enough object name; OSS policies forbid overwriting an existing key."""
    return f"comfyui_outpaint_{int(time.time() * 1000)}_{index}.{'jpg' if fmt == 'jpeg' else 'png'}"
