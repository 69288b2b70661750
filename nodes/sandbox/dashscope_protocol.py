"""DashScope wire formats: error table, task bodies, OSS errors.

Sources: https://help.aliyun.com/zh/model-studio/image-scaling-api (bodies, model errors) and
https://www.alibabacloud.com/help/en/model-studio/error-code (platform errors).

Everything here is plain data -> SandboxResponse; the emulator (dashscope.py) decides what to say.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import quote
from xml.sax.saxutils import escape

from .wire import SandboxResponse, json_response

MODEL = "image-out-painting"
API_PREFIX = "/api/v1"
CREATE_PATH = f"{API_PREFIX}/services/aigc/image2image/out-painting"
TASKS_PREFIX = f"{API_PREFIX}/tasks/"
UPLOADS_PATH = f"{API_PREFIX}/uploads"
OSS_PATH = "/oss"  # the sandbox's stand-in for the temporary-storage bucket host (upload_host)
OSS_BUCKET = "dashscope-file-sandbox"
OSS_HOST_ID = f"{OSS_BUCKET}.oss-cn-beijing.aliyuncs.com"

BEIJING = timezone(timedelta(hours=8))


def retry_after_header(value: Any) -> dict[str, str] | None:
    return {"Retry-After": str(value)} if value is not None else None


def masked_key(key: str) -> str:
    """A key as the request log shows it."""
    return f"{key[:5]}…{key[-4:]}" if len(key) > 12 else "…"


# Code -> (HTTP status, default message). Model-specific rows: the API reference; platform rows:
# the public error-code page. "Model not exist." (400 InvalidParameter for
# an unknown model name) and "Field required: input.x" are OBSERVED answers of the live service
# (third-party probe notes), not documented.
ERRORS: dict[str, tuple[int, str]] = {
    "InvalidParameter": (400, "Required parameter(s) missing or invalid, please check the request parameters."),
    "InvalidParameter.JsonPhrase": (400, "input json error"),
    "InvalidParameter.FileDownload": (400, "oss download error"),
    "InvalidParameter.ImageFormat": (400, "read image error"),
    "InvalidParameter.ImageContent": (400, "The image content does not comply with green network verification"),
    "InvalidParameter.DataInspection": (400, "The image size is not supported for the data inspection."),
    "DataInspectionFailed": (400, "Input or output data may contain inappropriate content."),
    "BadRequest.EmptyInput": (400, "Required input parameter missing from request."),
    "BadRequest.EmptyParameters": (400, 'Required parameter "parameters" missing from request.'),
    "BadRequest.EmptyModel": (400, 'Required parameter "model" missing from request.'),
    "BadRequest.IllegalInput": (400, "The input parameter requires json format."),
    "InvalidURL": (400, "Invalid URL provided in your request."),
    "Arrearage": (400, "Access denied, please make sure your account is in good standing."),
    "UnsupportedOperation": (400, "The operation is unsupported on the referee object."),
    "InvalidApiKey": (401, "Invalid API-key provided."),
    "AccessDenied": (403, "Access denied."),
    "AccessDenied.Unpurchased": (403, "Access to model denied. Please make sure you are eligible for using the "
                                      "model."),
    "Workspace.AccessDenied": (403, "Workspace access denied."),
    "Model.AccessDenied": (403, "Model access denied."),
    "ModelNotFound": (404, "Model can not be found."),
    "WorkSpaceNotFound": (404, "WorkSpace can not be found."),
    "RequestTimeOut": (408, "Request timed out, please try again later."),
    "BadRequest.TooLarge": (413, "Payload Too Large."),
    "Throttling": (429, "Requests throttling triggered."),
    "Throttling.RateQuota": (429, "Requests rate limit exceeded, please try again later."),
    "Throttling.AllocationQuota": (429, "Free allocated quota exceeded."),
    "PrepaidBillOverdue": (429, "The prepaid bill is overdue."),
    "PostpaidBillOverdue": (429, "The postpaid bill is overdue."),
    "CommodityNotPurchased": (429, "Commodity has not purchased yet."),
    "InternalError": (500, "An internal error has occured, please try again later or contact service support."),
    "InternalError.Algo": (500, "algorithm process error"),
    "InternalError.FileUpload": (500, "oss upload error"),
    "InternalError.Timeout": (500, "An internal timeout error has occured during execution, please try again "
                                   "later or contact service support."),
    "SystemError": (500, "An system error has occured, please try again later."),
    "ModelUnavailable": (503, "Model is unavailable, please try again later."),
}
THROTTLE_CODES = ("Throttling.RateQuota", "Throttling.AllocationQuota")
# Poll-time fault defaults by HTTP status.
STATUS_CODES = {400: "InvalidParameter", 401: "InvalidApiKey", 403: "AccessDenied", 404: "ModelNotFound",
                408: "RequestTimeOut", 429: "Throttling.RateQuota", 500: "InternalError", 503: "ModelUnavailable",
                504: "RequestTimeOut"}

NO_KEY_MESSAGE = "No API-key provided."
SYNC_CALL_MESSAGE = "current user api does not support synchronous calls"
INVALID_URL_MESSAGE = "The provided URL does not appear to be valid. Ensure it is correctly formatted."
MODEL_NOT_EXIST = "Model not exist."
SPEC_PREFIX = "the parameters must conform to the specification: "
CANCEL_REFUSED = "Failed to cancel the task, please confirm if the task is in PENDING status."
DOWNLOAD_FAILED = "download for input_image error"  # the API reference's FAILED example (http(s) inputs)

# OSS PostObject errors: code -> (HTTP status, default message) (OSS API reference wording).
OSS_ERRORS: dict[str, tuple[int, str]] = {
    "AccessDenied": (403, "Invalid according to Policy: Policy expired."),
    "SignatureDoesNotMatch": (403, "The request signature we calculated does not match the signature you "
                                   "provided. Check your key and signing method."),
    "InvalidAccessKeyId": (403, "The OSS Access Key Id you provided does not exist in our records."),
    "InvalidArgument": (400, "Invalid argument."),
    "MalformedPOSTRequest": (400, "The body of your POST request is not well-formed multipart/form-data."),
    "EntityTooLarge": (400, "Your proposed upload exceeds the maximum allowed size."),
    "FileAlreadyExists": (409, "The object you specified already exists and can not be overwritten."),
}


class DashScopeError(Exception):
    """An error to answer with. `deferrable`: a parameter check the service may run inside the
    task instead of on the create call (setting dashscope_sync_validation)."""

    def __init__(self, code: str, message: str | None = None, status: int | None = None,
                 deferrable: bool = False):
        self.code = code
        self.message = message if message is not None else ERRORS.get(code, (500, code))[1]
        self.status = status if status is not None else ERRORS.get(code, (500, ""))[0]
        self.deferrable = deferrable
        super().__init__(f"{self.code}: {self.message}")


def invalid_parameter(detail: str) -> DashScopeError:
    return DashScopeError("InvalidParameter", SPEC_PREFIX + detail, deferrable=True)


def new_request_id() -> str:
    return str(uuid.uuid4())


def beijing(moment: datetime) -> str:
    """'2024-05-16 13:50:01.247': Beijing local time with milliseconds, as in task bodies."""
    local = moment.astimezone(BEIJING)
    return local.strftime("%Y-%m-%d %H:%M:%S.") + f"{local.microsecond // 1000:03d}"


def error_response(request_id: str, code: str, message: str | None = None, status: int | None = None,
                   headers: dict[str, str] | None = None) -> SandboxResponse:
    """{"code","message","request_id"} with the code's HTTP status (the documented failure shape)."""
    error = DashScopeError(code, message, status)
    return json_response(error.status, {"code": error.code, "message": error.message, "request_id": request_id},
                         headers)


def from_error(request_id: str, error: DashScopeError) -> SandboxResponse:
    return error_response(request_id, error.code, error.message, error.status)


def created(request_id: str, task_id: str) -> SandboxResponse:
    return json_response(200, {"output": {"task_status": "PENDING", "task_id": task_id}, "request_id": request_id})


def task_response(request_id: str, output: dict[str, Any], usage: dict[str, Any] | None = None) -> SandboxResponse:
    body: dict[str, Any] = {"request_id": request_id, "output": output}
    if usage is not None:
        body["usage"] = usage
    return json_response(200, body)


def policy_response(request_id: str, data: dict[str, Any]) -> SandboxResponse:
    return json_response(200, {"request_id": request_id, "data": data})


def oss_request_id() -> str:
    return secrets.token_hex(12).upper()


def oss_error(code: str, message: str | None = None, status: int | None = None,
              request_id: str | None = None) -> SandboxResponse:
    """OSS's XML error document (Content-Type application/xml, x-oss-request-id header)."""
    default_status, default_message = OSS_ERRORS.get(code, (400, code))
    rid = request_id or oss_request_id()
    xml = ('<?xml version="1.0" encoding="UTF-8"?>\n<Error>\n'
           f"  <Code>{escape(code)}</Code>\n"
           f"  <Message>{escape(message if message is not None else default_message)}</Message>\n"
           f"  <RequestId>{rid}</RequestId>\n"
           f"  <HostId>{OSS_HOST_ID}</HostId>\n</Error>\n")
    return SandboxResponse(status if status is not None else default_status, xml.encode("utf-8"),
                           "application/xml", {"x-oss-request-id": rid, "Server": "AliyunOSS"})


def oss_signed_query(path: str, expires: datetime, access_key_id: str, secret: bytes) -> str:
    """`Expires=…&OSSAccessKeyId=…&Signature=…`, the query of an OSS V1 signed GET URL."""
    stamp = int(expires.timestamp())
    digest = hmac.new(secret, f"GET\n\n\n{stamp}\n{path}".encode(), hashlib.sha1).digest()
    signature = quote(base64.b64encode(digest).decode("ascii"), safe="")
    return f"Expires={stamp}&OSSAccessKeyId={access_key_id}&Signature={signature}"
