"""Volcengine visual API wire format: ids, codes and the three body shapes (service success,
service (business) error, gateway error) plus the bearer proxy's. The gateway error table is
volc_signer.GATEWAY_ERRORS (the client's signer raises the same errors).

Sources: https://www.volcengine.com/docs/6791/1279296 and the common codes page
https://www.volcengine.com/docs/6444/69728. Where they leave something open (UNCONFIRMED) the
choice made here is stated next to it.
"""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta, timezone
from typing import Any

from ..core.volc_signer import GATEWAY_ERRORS
from .wire import SandboxResponse, go_duration, json_response

ACTIONS = ("CVProcess", "Img2ImgOutpainting")
VERSION = "2022-08-31"
SERVICE = "cv"
REGION = "cn-north-1"
REQ_KEY = "i2i_outpainting"
SUCCESS = 10000

_BEIJING = timezone(timedelta(hours=8))

# Business codes -> (HTTP status, message). Codes and messages of the moderation/limit/internal
# rows are CONFIRMED (the common codes table). The 502xx messages are the error names from the generic
# table (exact wording UNCONFIRMED); their HTTP status 400 is CONFIRMED for 50200-50206 and assumed
# for 50207/50213/50215. HTTP status of 50400 is UNCONFIRMED: 401 chosen.
BUSINESS_ERRORS: dict[int, tuple[int, str]] = {
    50200: (400, "Request Invalid Args"),
    50201: (400, "Request Missing Args"),
    50204: (400, "Parse Args Error"),
    50205: (400, "Image Size Limited"),
    50206: (400, "Image Empty"),
    50207: (400, "Image Decode Error"),
    50213: (400, "Request Body Size Limited"),
    50215: (400, "Input invalid for this service."),
    50400: (401, "Access Denied: Internal Error"),
    50411: (400, "Pre Img Risk Not Pass"),
    50412: (400, "Text Risk Not Pass"),
    50413: (400, "Post Text Risk Not Pass"),
    50511: (400, "Post Img Risk Not Pass"),
    50512: (400, "Post Text Risk Not Pass"),
    50518: (400, "Pre Img Risk Not Pass: Copyright"),
    50519: (400, "Post Img Risk Not Pass: Copyright"),
    50520: (400, "Risk Internal Error"),
    50521: (400, "Antidirt Internal Error"),
    50522: (400, "Image Copyright Internal Error"),
    50429: (429, "Request Has Reached API Limit, Please Try Later"),
    50430: (429, "Request Has Reached API Concurrent Limit, Please Try Later"),
    50500: (500, "Internal Error"),
    50501: (500, "Internal RPC Error"),
}
# Errors about the *output* (moderation of the generated image/text): the work was done, so a
# real account is charged. An injected "error" fault with one of these codes is billable.
POST_PROCESSING_CODES = frozenset({50511, 50512, 50519})

class VolcError(Exception):
    """A business error to answer with (code, message detail)."""

    def __init__(self, code: int, detail: str = ""):
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail

    @property
    def message(self) -> str:
        base = BUSINESS_ERRORS.get(self.code, (400, "Error"))[1]
        # 50400's text is what users report seeing verbatim: no detail appended.
        return f"{base}: {self.detail}" if self.detail and self.code != 50400 else base


def service_request_id(now: datetime) -> str:
    """Top-level request_id: YYYYMMDDhhmmss (Beijing time, as in observed ids) + 20 uppercase hex."""
    return now.astimezone(_BEIJING).strftime("%Y%m%d%H%M%S") + secrets.token_hex(10).upper()


def algorithm_request_id() -> str:
    """data.request_id: 64 lowercase hex."""
    return secrets.token_hex(32)


def _headers(request_id: str, extra: dict[str, str] | None = None) -> dict[str, str]:
    # X-Tt-Logid: the ByteDance gateway's log id header (the SDK reads it on uploads).
    return {"X-Tt-Logid": request_id, **(extra or {})}


def success(request_id: str, elapsed: float, images_b64: list[str] | None,
            image_urls: list[str] | None) -> SandboxResponse:
    """HTTP 200, the documented success body. The field that is not used is null, as observed in
    Volcengine CV responses ("binary_data_base64":null with URLs, "image_urls":null without)."""
    body = {
        "code": SUCCESS,
        "data": {
            "algorithm_base_resp": {"status_code": 0, "status_message": "Success"},
            "binary_data_base64": images_b64,
            "image_urls": image_urls,
            "request_id": algorithm_request_id(),
        },
        "message": "Success",
        "request_id": request_id,
        "status": SUCCESS,
        "time_elapsed": go_duration(elapsed),
    }
    return json_response(200, body, _headers(request_id))


def business_error(request_id: str, elapsed: float, code: int, message: str,
                   http_status: int | None = None, data: Any = None,
                   headers: dict[str, str] | None = None) -> SandboxResponse:
    """Non-200 service error: {"code","data":null,"message","request_id","status","time_elapsed"}."""
    status = http_status if http_status is not None else BUSINESS_ERRORS.get(code, (500, ""))[0]
    body = {"code": code, "data": data, "message": message, "request_id": request_id, "status": code,
            "time_elapsed": go_duration(elapsed)}
    return json_response(status, body, _headers(request_id, headers))


def from_volc_error(request_id: str, elapsed: float, error: VolcError) -> SandboxResponse:
    return business_error(request_id, elapsed, error.code, error.message)


def gateway_error(request_id: str, action: str, version: str, code: str, code_n: int | None = None,
                  http_status: int | None = None, message: str | None = None) -> SandboxResponse:
    """ResponseMetadata error of the OpenAPI gateway (signature, auth, routing)."""
    known = GATEWAY_ERRORS.get(code)
    if known is None and (code_n is None or http_status is None):
        raise ValueError(f"gateway code {code!r} is not in the table: give code_n and http_status")
    code_n = known[0] if code_n is None else code_n
    http_status = known[1] if http_status is None else http_status
    message = known[2] if message is None else message
    body = {"ResponseMetadata": {"RequestId": request_id, "Action": action, "Version": version,
                                 "Service": SERVICE, "Region": REGION,
                                 "Error": {"CodeN": code_n, "Code": code, "Message": message}}}
    return json_response(http_status, body, _headers(request_id))


def proxy_auth_error(request_id: str, message: str) -> SandboxResponse:
    """The bearer gateway's own refusal. That gateway is a third-party proxy (e.g.
    https://docs.yutoai.net/api/api-289473244.html), not Volcengine; it is assumed to be a
    new-api/one-api deployment, as most such resellers are, so it answers in their shape: HTTP 401
    {"error":{"code":"","message":"… (request id: …)","type":"new_api_error"}}. Everything past its
    key check is Volcengine's, passed through."""
    return json_response(401, {"error": {"code": "", "message": f"{message} (request id: {request_id})",
                                         "type": "new_api_error"}})
