"""Alibaba DashScope `image-out-painting` emulator: its routes, settings and fault kinds.

API reference: https://help.aliyun.com/zh/model-studio/image-scaling-api (temporary upload:
https://help.aliyun.com/zh/model-studio/get-temporary-file-url). The client's base URL is
`{sb.url}/api/v1`, like https://dashscope.aliyuncs.com/api/v1:
- `GET  /api/v1/uploads?action=getPolicy&model=M`  temporary-upload policy (Bearer key)
- `POST /oss`                                       the temporary bucket: OSS PostObject form upload
- `POST /api/v1/services/aigc/image2image/out-painting`   create a task (Bearer, X-DashScope-Async)
- `GET  /api/v1/tasks/{task_id}`                    query a task
- `POST /api/v1/tasks/{task_id}/cancel`             cancel a PENDING task
Results are served by the sandbox under /sandbox/results/…?Expires=…&OSSAccessKeyId=…&Signature=…

A create call goes: front faults (server) -> key (401) -> X-DashScope-Async (403) -> [error /
throttle fault] -> QPS per key (429) -> body (400) -> parameter values (400, or FAILED in the task
with sync_validation off) -> concurrent tasks per key (429) -> [task fault] -> task accepted
(billable from here) -> latency -> answer -> [slow / drop_after / malformed fault] (server).
A task's work (dashscope_render) runs when a query first sees it finished; the create call's log
entry then gets `task_status`. The fault kinds are dashscope_faults.FAULT_KINDS.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from ..core import geometry
from . import dashscope_render, hostile
from .dashscope_faults import CREATE_FAULTS, FAULT_KINDS, TASK_FAULTS, check_fault
from .dashscope_oss import OssError, TempStorage, parse_form
from .dashscope_protocol import (
    CANCEL_REFUSED,
    CREATE_PATH,
    ERRORS,
    NO_KEY_MESSAGE,
    OSS_BUCKET,
    OSS_PATH,
    SPEC_PREFIX,
    STATUS_CODES,
    SYNC_CALL_MESSAGE,
    TASKS_PREFIX,
    UPLOADS_PATH,
    DashScopeError,
    created,
    error_response,
    from_error,
    masked_key,
    new_request_id,
    oss_error,
    oss_request_id,
    oss_signed_query,
    policy_response,
    retry_after_header,
    task_response,
)
from .dashscope_request import TASK_ID, parse_body, parse_job
from .dashscope_tasks import RateWindow, Task, TaskBoard
from .wire import SandboxRequest, SandboxResponse, as_timedelta, json_response

if TYPE_CHECKING:
    from .server import SandboxServer

VENDOR = "dashscope"
REGION = "cn-beijing"          # the only region that serves image-out-painting
INTL_REGION = "ap-southeast-1"


def _demo_key(tag: str) -> str:
    return "sk-" + tag.ljust(32, "0")  # shaped like a real key: sk- and 32 characters


# Demo keys the sandbox knows: the Beijing one is accepted; the Singapore one belongs to another
# region, so this (Beijing) endpoint answers it 401 InvalidApiKey, as the real one does.
DEMO_API_KEY = _demo_key("sandboxdemodashscope")
DEMO_INTL_API_KEY = _demo_key("sandboxdemointlsingapore")


@dataclass
class DashScopeSettings:
    """The emulator's settings (on a Sandbox: `dashscope_<name>`; change them any time)."""

    api_key: str = DEMO_API_KEY                # the demo key (Beijing, always accepted); add_key() adds more
    intl_api_key: str = DEMO_INTL_API_KEY      # a demo key of another region (Singapore): 401 InvalidApiKey
    region: str = REGION                       # the region this endpoint serves; keys of others get 401
    pending_s: float = 0.2                     # task timings, sandbox clock
    running_s: float = 0.5
    best_quality_slowdown: float = 2.0         # running time × this with best_quality=true
    qps: float = 2                             # task submissions per second per key (0 = no limit) -> 429
    max_concurrent: int = 5                    # PENDING+RUNNING tasks per key (0 = no limit) -> 429
    policy_qps: float = 100                    # getPolicy calls per second per key and model
    sync_validation: bool = True               # parameter values refused on create (400); False: in the task
    refuse_quarter_turns: bool = True          # angle 90/180/270 refused without an expansion (rotate-only)
    refuse_no_op: bool = True                  # a body that neither expands nor rotates -> 400 InvalidParameter
    uuid_task_ids: bool = True                 # /tasks/{id} with an id that is not a UUID -> 400 InvalidParameter
    accept_base64: bool = True                 # input.image_url may be a data:…;base64 URI (wire format unconfirmed)
    output_format: str = "png"                 # or "jpeg"
    min_side: int = geometry.DASHSCOPE_MIN_SIDE  # input limits
    max_side: int = geometry.DASHSCOPE_MAX_SIDE
    max_image_bytes: int = 10 * 1024 * 1024
    limited_output_bytes: int = 5 * 1024 * 1024  # limit_image_size=true keeps the output under this
    max_output_bytes: int = 10 * 1024 * 1024   # limit_image_size=false: a larger output FAILS
    max_output_pixels: int = 8192 * 8192       # the sandbox's own guard against huge canvases (InternalError.Algo)
    policy_expire_s: int = 300                 # temporary storage
    upload_max_mb: int = 100
    upload_ttl: timedelta = timedelta(hours=48)
    task_ttl: timedelta = timedelta(hours=24)  # task ids answer UNKNOWN after this


class DashScopeEmulator:
    """The DashScope routes on a SandboxServer. Its state (keys, tasks, uploads, rate windows)
    is its own, each piece behind its own lock."""

    def __init__(self, server: SandboxServer, settings: DashScopeSettings | None = None):
        self.server = server
        self.settings = settings or DashScopeSettings()
        self._lock = threading.Lock()  # guards _keys
        self._keys: dict[str, str] = {}
        self.tasks = TaskBoard()
        self.storage = TempStorage(server.now)
        self._rate = RateWindow()
        self._policy_rate = RateWindow()
        server.register_vendor(VENDOR, FAULT_KINDS, check_fault)
        server.add_route("POST", CREATE_PATH, self._create, vendor=VENDOR, action="create")
        server.add_route(("GET", "POST"), TASKS_PREFIX, self._task_route, vendor=VENDOR, prefix=True,
                         generic_faults=False)
        server.add_route("GET", UPLOADS_PATH, self._get_policy, vendor=VENDOR, generic_faults=False)
        server.add_route("POST", OSS_PATH, self._upload, vendor=VENDOR, generic_faults=False)

    def add_key(self, key: str, region: str = REGION) -> None:
        """Know another API key. A key of a region other than settings.region is answered
        401 InvalidApiKey here (the region-locked-key case)."""
        with self._lock:
            self._keys[key] = region

    def describe(self) -> list[str]:
        return [f"dashscope:      DASHSCOPE_HTTP_BASE_URL={self.server.url}/api/v1  "
                f"DASHSCOPE_API_KEY={self.settings.api_key}"]

    def reset(self) -> None:
        self.tasks.clear()
        self.storage.clear()
        self._rate.clear()
        self._policy_rate.clear()

    # ---- inspection (tests, demos) -------------------------------------------------------------

    def task(self, task_id: str) -> dict[str, Any] | None:
        """What the sandbox knows of a task (finishing its work if it is due), or None."""
        task = self.tasks.get(task_id)
        if task is None:
            return None
        status = self._status(task)
        return {"task_id": task.task_id, "status": status, "mode": task.job.mode if task.job else None,
                "submitted": task.submitted, "fault": task.fault.kind if task.fault else None,
                "outcome": dict(task.outcome) if task.outcome else None}

    def charged_images(self) -> int:
        """Images a real account would pay for: tasks that SUCCEEDED (finishing due work first)."""
        return sum(1 for task in self.tasks.all() if self._status(task) == "SUCCEEDED")

    # ---- shared steps --------------------------------------------------------------------------

    def _ttl(self) -> timedelta:
        return as_timedelta(self.settings.task_ttl)

    def _key_region(self, key: str) -> str | None:
        if key == self.settings.api_key:
            return REGION
        if key == self.settings.intl_api_key:
            return INTL_REGION
        with self._lock:
            return self._keys.get(key)

    def _begin(self, request: SandboxRequest, action: str) -> tuple[str, str | None, SandboxResponse | None]:
        """Every call but the upload starts so: -> (request id, the caller's key, None) or, for a
        missing or unknown key, (request id, None, the 401 answer)."""
        request.note(action=action)
        rid = new_request_id()
        scheme, _, key = (request.header("Authorization") or "").strip().partition(" ")
        key = key.strip()
        if scheme.lower() != "bearer" or not key:
            return rid, None, error_response(rid, "InvalidApiKey", NO_KEY_MESSAGE)
        region = self._key_region(key)
        request.annotate(key=masked_key(key), key_region=region)
        if region is None or region != self.settings.region:
            return rid, None, error_response(rid, "InvalidApiKey")
        return rid, key, None

    def _status(self, task: Task) -> str:
        return task.status(self.server.now(), self._ttl(), self._finish)

    def _finish(self, task: Task) -> dict[str, Any]:
        """A finished task's work, recorded on its create call's log entry."""
        outcome = self._work(task)
        detail = {k: v for k, v in outcome.items() if k not in ("status", "code", "message", "url")}
        self.server.log.annotate(task.entry, task_status=outcome["status"], **detail)
        if outcome["status"] == "FAILED":
            self.server.log.annotate(task.entry, task_error=(outcome["code"], outcome["message"]))
        return outcome

    def _work(self, task: Task) -> dict[str, Any]:
        """-> {"status": "SUCCEEDED", "url", …facts} or {"status": "FAILED", "code", "message", …}."""
        if task.deferred is not None:
            return {"status": "FAILED", "code": task.deferred.code, "message": task.deferred.message}
        kind = task.fault.kind if task.fault is not None else None
        if kind == "task_failed":
            code = task.fault.params["code"]
            message = task.fault.params["message"] or ERRORS.get(code, (500, code))[1]
            return {"status": "FAILED", "code": code, "message": message}
        facts: dict[str, Any] = {}
        try:
            data = dashscope_render.read_input(task.job, self.storage, task.key,
                                               int(self.settings.max_image_bytes), facts)
            encoded, ext = dashscope_render.render(task.job, data, self.settings, facts)
        except DashScopeError as exc:
            return {"status": "FAILED", "code": exc.code, "message": exc.message, **facts}
        server = self.server
        result_ttl = as_timedelta(server.result_ttl)
        left = max(timedelta(0), result_ttl - (server.now() - task.ended))
        if kind == "url_404":
            url = server.missing_result_url(ext)
        elif kind == "oversized_url":
            url = server.publish_synthetic(task.fault.params["size"], ext, bool(task.fault.params["declare_length"]))
        elif kind in hostile.RESULT_KINDS:
            url = hostile.result(server, task.fault, encoded, ext, by_url=True, ttl=left)[1]
            if kind == "result_url":
                return {"status": "SUCCEEDED", "url": url, **facts}
        else:
            url = server.publish(encoded, ext, left)
        url += "?" + oss_signed_query(urlsplit(url).path, task.ended + result_ttl, self.storage.access_key_id,
                                      self.storage.secret)
        return {"status": "SUCCEEDED", "url": url, **facts}

    # ---- create --------------------------------------------------------------------------------

    def _create(self, request: SandboxRequest) -> SandboxResponse:
        rid, key, refused = self._begin(request, "create")
        if refused is not None:
            return refused
        s, server = self.settings, self.server
        resolve = (request.header("X-DashScope-OssResourceResolve") or "").strip().lower() == "enable"
        async_header = request.header("X-DashScope-Async")
        request.annotate(resolve_header=resolve, workspace=request.header("X-DashScope-WorkSpace"),
                         async_header=async_header)
        if (async_header or "").strip().lower() != "enable":
            # The real status/code of this refusal is undocumented: 403 AccessDenied, as for the
            # mirror-image error.
            return error_response(rid, "AccessDenied", SYNC_CALL_MESSAGE, 403)
        fault = server.faults.take(VENDOR, CREATE_FAULTS)
        if fault is not None:
            request.note(fault=fault.kind)
            p = fault.params
            return error_response(rid, p["code"], p["message"], p.get("http_status"), retry_after_header(p["retry_after"]))
        if not self._rate.admit(key, s.qps):
            request.annotate(throttled="qps")
            return error_response(rid, "Throttling.RateQuota")
        try:
            envelope = parse_body(request.body, resolve, s.accept_base64)
        except DashScopeError as exc:
            return from_error(rid, exc)
        request.annotate(parameters=envelope.parameters, input_source=envelope.source)
        job, deferred = None, None
        try:
            job = parse_job(envelope, s.refuse_quarter_turns, s.refuse_no_op)
        except DashScopeError as exc:
            if s.sync_validation or not exc.deferrable:
                return from_error(rid, exc)
            deferred = exc
        if job is not None:
            request.annotate(mode=job.mode, angle=job.angle, best_quality=job.best_quality,
                             limit_image_size=job.limit_image_size, add_watermark=job.add_watermark)
        running = s.running_s * (s.best_quality_slowdown if job is not None and job.best_quality else 1.0)

        def new_task() -> Task:  # called under the board's lock, once a slot is free
            return Task(new_request_id(), key, server.now(), float(s.pending_s), float(running), job, deferred,
                        request.entry, server.faults.take(VENDOR, TASK_FAULTS))

        task = self.tasks.submit(key, s.max_concurrent, server.now(), self._ttl(), new_task)
        if task is None:
            request.annotate(throttled="concurrency")
            return error_response(rid, "Throttling.RateQuota")
        if task.fault is not None:
            request.note(fault=task.fault.kind)
        request.annotate(task_id=task.task_id, task_status=None,
                         deferred_error=deferred.message if deferred else None)
        request.mark_processed(billable=True)  # a task exists: a real account may be charged for it
        server.sleep(server.latency)
        return created(rid, task.task_id)

    # ---- tasks ---------------------------------------------------------------------------------

    def _task_route(self, request: SandboxRequest) -> SandboxResponse:
        task_id, _, tail = request.path[len(TASKS_PREFIX):].partition("/")
        if request.method == "GET" and task_id and not tail:
            return self._task_call(request, task_id, "poll", self._poll)
        if request.method == "POST" and task_id and tail == "cancel":
            return self._task_call(request, task_id, "cancel", self._cancel)
        return json_response(404, {"error": "no such sandbox route", "method": request.method, "path": request.path})

    def _task_call(self, request: SandboxRequest, task_id: str, action: str,
                   answer: Callable[[SandboxRequest, str, str, str], SandboxResponse]) -> SandboxResponse:
        """What a query and a cancel share: the key check, then `answer(request, rid, task_id, key)`."""
        rid, key, refused = self._begin(request, action)
        if refused is not None:
            return refused
        request.annotate(task_id=task_id)
        if self.settings.uuid_task_ids and not TASK_ID.fullmatch(task_id):  # as a stricter service may answer
            return error_response(rid, "InvalidParameter", SPEC_PREFIX + "task_id must be a UUID")
        request.mark_processed(billable=False)
        return answer(request, rid, task_id, key)

    def _poll(self, request: SandboxRequest, rid: str, task_id: str, key: str) -> SandboxResponse:
        fault = self.server.faults.take(VENDOR, {"poll_error", *hostile.POLL_KINDS})
        if fault is not None:
            request.note(fault=fault.kind)
            p = fault.params
            if fault.kind == "poll_error":
                code = p["code"] or STATUS_CODES[p["status"]]
                return error_response(rid, code, p["message"], p["status"], retry_after_header(p["retry_after"]))
        task = self.tasks.visible(task_id, key, self.server.now(), self._ttl())
        status = self._status(task) if task is not None else "UNKNOWN"
        request.annotate(task_status=status)
        if task is None:
            answer = task_response(rid, {"task_id": task_id, "task_status": "UNKNOWN"})
        else:
            answer = task_response(rid, task.output(status), {"image_count": 1} if status == "SUCCEEDED" else None)
        return hostile.stream_answer(self.server, fault, answer) if fault is not None else answer

    def _cancel(self, request: SandboxRequest, rid: str, task_id: str, key: str) -> SandboxResponse:
        now = self.server.now()
        task = self.tasks.visible(task_id, key, now, self._ttl())
        canceled = task is not None and self.tasks.cancel(task, now, self._ttl())
        request.annotate(canceled=canceled)
        if not canceled:
            # The same refusal for an unknown id (the live answer for ids that do not exist is
            # not documented).
            return error_response(rid, "UnsupportedOperation", CANCEL_REFUSED)
        self.server.log.annotate(task.entry, task_status="CANCELED")
        return json_response(200, {"request_id": rid})

    # ---- temporary upload ----------------------------------------------------------------------

    def _get_policy(self, request: SandboxRequest) -> SandboxResponse:
        rid, key, refused = self._begin(request, "getPolicy")
        if refused is not None:
            return refused
        fault = self.server.faults.take(VENDOR, {"policy_error", "policy_upload_host"})
        if fault is not None:
            request.note(fault=fault.kind)
            p = fault.params
            if fault.kind == "policy_error":
                return error_response(rid, p["code"], p["message"], p["http_status"])
        upload_host = fault.params["url"] if fault is not None else f"{self.server.url}{OSS_PATH}"
        query = request.query()
        model = query.get("model", "")
        request.annotate(model=model)
        if query.get("action") != "getPolicy":
            return error_response(rid, "InvalidParameter", SPEC_PREFIX + "action must be getPolicy")
        if not model:
            return error_response(rid, "BadRequest.EmptyModel")
        if not self._policy_rate.admit((key, model), self.settings.policy_qps):
            return error_response(rid, "Throttling.RateQuota")
        request.mark_processed(billable=False)
        expire_s, max_mb = int(self.settings.policy_expire_s), int(self.settings.upload_max_mb)
        policy = self.storage.issue(model, key, expire_s, max_mb)
        request.annotate(upload_dir=policy.upload_dir)
        return policy_response(rid, {
            "policy": policy.policy, "signature": policy.signature, "upload_dir": policy.upload_dir,
            "upload_host": upload_host, "expire_in_seconds": expire_s,
            "max_file_size_mb": max_mb, "capacity_limit_mb": 999999999,
            "oss_access_key_id": policy.access_key_id, "x_oss_object_acl": "private",
            "x_oss_forbid_overwrite": "true",
        })

    def _upload(self, request: SandboxRequest) -> SandboxResponse:
        request.note(action="upload")
        fault = self.server.faults.take(VENDOR, {"upload_denied", "upload_drop_after"})
        if fault is not None:
            request.note(fault=fault.kind)
        if fault is not None and fault.kind == "upload_denied":
            p = fault.params
            return oss_error(p["code"], p["message"], p["status"])
        try:
            parts = parse_form(request.header("Content-Type"), request.body)
            request.annotate(form_fields=[part.name for part in parts], x_oss_content_type=next(
                (p.value.decode("latin-1") for p in parts if p.name == "x-oss-content-type"), None))
            key, stored = self.storage.upload(parts, as_timedelta(self.settings.upload_ttl))
        except OssError as exc:
            request.annotate(oss_error=exc.code)
            return oss_error(exc.code, exc.message)
        request.mark_processed(billable=False)
        request.annotate(object_key=key, size=len(stored.data), model=stored.model)
        if fault is not None:  # upload_drop_after: stored, then the connection breaks before the answer
            return SandboxResponse(0, drop=True)
        status_field = next((p.value.decode("latin-1") for p in parts if p.name == "success_action_status"), "")
        rid = oss_request_id()
        etag = '"' + hashlib.md5(stored.data).hexdigest().upper() + '"'
        headers = {"x-oss-request-id": rid, "ETag": etag, "Server": "AliyunOSS"}
        if status_field == "200":
            return SandboxResponse(200, b"", "text/plain", headers)
        if status_field == "201":
            xml = (f'<?xml version="1.0" encoding="UTF-8"?>\n<PostResponse>\n  <Bucket>{OSS_BUCKET}</Bucket>\n'
                   f"  <Location>{self.server.url}{OSS_PATH}/{key}</Location>\n  <Key>{key}</Key>\n"
                   f"  <ETag>{etag}</ETag>\n</PostResponse>\n")
            return SandboxResponse(201, xml.encode(), "application/xml", headers)
        return SandboxResponse(204, b"", "text/plain", headers)  # OSS's default
