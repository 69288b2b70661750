"""Volcengine CVProcess answers (spec vendor-apis.md A.6), read in this one place into typed objects,
and what each error means in plain words.

Shapes: success {"code": 10000, "request_id", "time_elapsed", "data": {"binary_data_base64": [..],
"image_urls": [..]}}; business error {"code": <int>, "message", "request_id"}; gateway error
{"ResponseMetadata": {"RequestId", "Error": {"Code", "CodeN", "Message"}}} (wins when its Error is set).
"""

from __future__ import annotations

from dataclasses import dataclass

import requests

from . import transport
from .answers import Fields, Shape, malformed, object_body
from .errors import VendorError

VENDOR = "Volcengine"
SUCCESS = 10000

# code -> (plain-language meaning, retryable). Business codes: spec A.6 tables.
BUSINESS_CODES = {
    50411: ("the input image failed the vendor's content moderation", False),
    50511: ("the generated image failed content moderation; a different seed or prompt may pass", False),
    50412: ("the prompt failed the vendor's text moderation", False),
    50512: ("generated text failed moderation", False),
    50413: ("the prompt contains sensitive or copyrighted words", False),
    50518: ("the input image was flagged as copyrighted", False),
    50519: ("the generated image was flagged as copyrighted; try another seed", False),
    50520: ("the vendor's moderation service had an internal error", False),
    50521: ("the vendor's moderation service had an internal error", False),
    50522: ("the vendor's copyright check had an internal error", False),
    50429: ("too many requests per second for this account (QPS limit)", True),
    50430: ("too many requests at once for this account (concurrency limit)", True),
    50500: ("the vendor had an internal error (not retried automatically: it may be billed)", False),
    50501: ("the vendor's algorithm service had an internal error (not retried automatically)", False),
    50200: ("the vendor rejected a parameter", False),
    50201: ("a required parameter is missing", False),
    50204: ("a parameter has the wrong type or is missing", False),
    50205: ("the image is larger than the vendor accepts", False),
    50206: ("the request carried no image", False),
    50207: ("the vendor could not decode the image", False),
    50213: ("the request body is too large; use a smaller image", False),
    50215: ("the input does not meet this service's requirements", False),
    50400: (("access denied: the outpainting service (i2i_outpainting) is not enabled for this account, or "
             "the account lacks permission; enable it in the Volcengine console"), False),
    50402: ("this API does not exist (wrong Action/Version for this endpoint)", False),
}
GATEWAY_CODES = {
    "MissingParameter": "the request lacks Action/Version or another required query parameter",
    "MissingAuthenticationToken": "no credentials were sent",
    "MissingRequestInfo": "the signature's scope (access key, region, service) is malformed",
    "MissingSignature": "the request was not signed",
    "InvalidTimestamp": "the signature has expired: check this computer's clock (time zone and NTP)",
    "ServiceNotFound": "wrong service name in the signature",
    "InvalidActionOrVersion": "unknown Action/Version for this endpoint",
    "InvalidAccessKey": "the access key (VOLC_ACCESSKEY) is not known to Volcengine",
    "SignatureDoesNotMatch": "the secret key (VOLC_SECRETKEY) does not match the access key",
    "LackPolicy": "this sub-account has no policy allowing the visual service",
    "AccessDenied": "this account is not allowed to call the visual service",
    "InvalidSecretToken": "the STS session token (VOLC_SESSION_TOKEN) is invalid or expired",
    "FlowLimitExceeded": "the gateway is throttling this account",
}
GATEWAY_RETRYABLE = {"FlowLimitExceeded"}


@dataclass(frozen=True)
class VolcSuccess:
    """code 10000 at HTTP 200: the request was processed (and billed)."""

    request_id: str
    images_b64: tuple[str | memoryview, ...]  # data.binary_data_base64 (long ones: views of the body)
    image_urls: tuple[str, ...]  # data.image_urls (return_url=true)
    time_elapsed: str = ""  # the vendor's own figure, a Go duration ("2.17s")
    message: str = ""


@dataclass(frozen=True)
class BusinessError:
    """The service's own error: an int code (None when a non-200 answer carries none)."""

    code: int | None
    message: str
    request_id: str

    def error(self, http_status: int, retry_after: float | None) -> VendorError:
        meaning, retryable = BUSINESS_CODES.get(self.code, ("the vendor returned an error", False))
        return VendorError(VENDOR, self.code if self.code is not None else f"HTTP{http_status}", meaning,
                           message=self.message, http_status=http_status, request_id=self.request_id or None,
                           retryable=retryable, billed=False if retryable else None, retry_after=retry_after)


@dataclass(frozen=True)
class GatewayError:
    """The API gateway refused the request before the service saw it (signature, key, throttling)."""

    code: str
    message: str
    request_id: str

    def error(self, http_status: int, retry_after: float | None) -> VendorError:
        meaning = GATEWAY_CODES.get(self.code, "the Volcengine gateway refused the request")
        return VendorError(VENDOR, self.code, meaning, message=self.message, http_status=http_status,
                           request_id=self.request_id or None, retryable=self.code in GATEWAY_RETRYABLE,
                           billed=False, retry_after=retry_after)


def parse(data: dict, http_status: int) -> VolcSuccess | BusinessError | GatewayError:
    """One JSON object answer; raises Shape when a field has the wrong type or a required one is missing."""
    answer = Fields(data, "")
    meta = answer.object("ResponseMetadata")
    if meta is not None and meta.filled("Error"):
        gateway = meta.object("Error")
        code = gateway.text("Code")
        if not code:
            number = gateway.integer("CodeN")
            if number is None:
                raise Shape("ResponseMetadata.Error.Code is missing")
            code = str(number)
        return GatewayError(code, gateway.message("Message"), meta.text("RequestId"))
    request_id, code, message = answer.text("request_id"), answer.integer("code"), answer.message("message")
    if code is None and http_status == 200:
        raise Shape("code is missing")
    if code != SUCCESS or http_status != 200:
        return BusinessError(code, message, request_id)
    result = answer.object("data", required=True)
    return VolcSuccess(request_id, result.texts("binary_data_base64", views=True), result.texts("image_urls"),
                       answer.text("time_elapsed"), message)


def _quotable_request_id(data: dict) -> str:
    """The request id to quote in a malformed-answer error, wherever one is readable."""
    meta = data.get("ResponseMetadata")
    for value in (data.get("request_id"), meta.get("RequestId") if isinstance(meta, dict) else None):
        if isinstance(value, str):
            return value
    return ""


def read(response: requests.Response) -> VolcSuccess | VendorError:
    """The typed success answer, or the VendorError this answer means (error or malformed)."""
    status = response.status_code
    data: dict | None = None
    try:
        data = object_body(response, views=True)
        answer = parse(data, status)
    except Shape as problem:
        if data is None and status != 200:  # not the vendor's JSON: a proxy's or gateway's error page
            return transport.not_json_error(VENDOR, response)
        data = data or {}
        code = data.get("code")
        said_success = status == 200 and type(code) is int and code == SUCCESS
        return malformed(VENDOR, problem, http_status=status, request_id=_quotable_request_id(data),
                         billed=True if said_success else None)
    if isinstance(answer, VolcSuccess):
        return answer
    return answer.error(status, transport.parse_retry_after(response.headers.get("Retry-After")))
