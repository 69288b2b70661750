""""Test connection": the cheapest authenticated call per vendor, free of charge, answered in plain words.

- Volcengine: a correctly signed CVProcess POST with `req_key=i2i_outpainting` and no image. The
  gateway checks the signature, the access key, the clock and whether the service is enabled before
  the service looks at the body, so a gateway/auth error (SignatureDoesNotMatch, InvalidAccessKey,
  InvalidTimestamp, 50400 not enabled, ...) means the credentials do not work; any answer of the
  service itself (an integer business code: 50206 no image, 50207, 50215, ...) means they do
  (nothing was processed, nothing billed).
- DashScope: GET {base}/tasks/<random uuid>. 200 (task_status UNKNOWN) means the key works; 401 means
  it does not (wrong key, or a key of another region).

Every answer is {"ok", "message", "code", "request_id", "source"}; no secret ever goes into it.
"""

from __future__ import annotations

import os
import pathlib
import uuid
from collections.abc import Mapping

from . import backends, dashscope, transport, volc, volc_answers
from .credentials import DashScopeCredentials, VolcCredentials
from .errors import ConfigError, InputError, VendorError
from .redaction import cap_text, redact_text

TIMEOUT_S = 15.0
BACKOFF = transport.Backoff(base=0.5, cap=2.0, max_attempts=3)
# Business codes that are refusals of the account (50400 access denied / not enabled) or of the route
# (50402 no such API); any other business code is the service answering: the credentials work.
VOLC_REFUSED_CODES = {50400, 50402}
VENDORS = ("volc", "dashscope")


def _answer(ok: bool, message: str, source: str | None, code=None, request_id=None,
            secrets: list[str] = ()) -> dict:
    return {"ok": ok, "message": redact_text(message, secrets, pieces=False), "code": None if code is None else str(code),
            "request_id": request_id or None, "source": source}


def _failure(error: VendorError, source: str, secrets: list[str]) -> dict:
    message = error.meaning
    if error.message and error.message not in error.meaning:
        message += f" ({error.vendor} says: {cap_text(redact_text(error.message, secrets))})"
    if error.code in ("ConnectionFailed", "ConnectionLost", "ReadTimeout", "Timeout", "NetworkError"):
        message += "; check the network, proxy settings (HTTPS_PROXY) and the base URL"
    return _answer(False, message, source, error.code, error.request_id, secrets)


def check_volc(creds: VolcCredentials, timeout_s: float = TIMEOUT_S) -> dict:
    """One signed (or Bearer) CVProcess call without an image; see the module docstring."""
    secrets = [creds.secret_key, creds.session_token, creds.api_key]
    control = transport.RunControl(timeout_s, volc.VENDOR)
    try:
        with transport.new_session() as session:
            client = volc.VolcClient(creds, session, control)
            answer = client.call({"req_key": volc.REQ_KEY}, billable=False, connect_timeout=min(5.0, timeout_s),
                                 read_timeout=timeout_s, backoff=BACKOFF)
            return _answer(True, "Volcengine accepted the credentials.", creds.source, volc_answers.SUCCESS,
                           answer.request_id, secrets)
    except VendorError as error:
        if type(error.code) is int and error.code not in VOLC_REFUSED_CODES:
            said = "" if error.code == 50206 else f"; it said {error.code}: {error.meaning}" + (
                f" ({cap_text(redact_text(error.message, secrets))})" if error.message else "")
            return _answer(True, "Volcengine accepted the credentials and the outpainting service answered "
                           f"(the test sends no image: nothing was processed or billed){said}.", creds.source,
                           error.code, error.request_id, secrets)
        return _failure(error, creds.source, secrets)
    except InputError as error:
        return _answer(False, str(error), creds.source, "BadBaseURL", secrets=secrets)


def check_dashscope(creds: DashScopeCredentials, timeout_s: float = TIMEOUT_S) -> dict:
    """GET /tasks/<random id>: free, authenticated, and it creates nothing."""
    secrets = [creds.api_key]
    control = transport.RunControl(timeout_s, dashscope.VENDOR)
    config = dashscope.DashScopeConfig(connect_timeout=min(5.0, timeout_s), read_timeout=timeout_s)
    try:
        with transport.new_session() as session:
            client = dashscope.DashScopeClient(creds, session, control, config)
            answer = client.status(str(uuid.uuid4()))  # a plain UUID, the shape of every real task id
    except VendorError as error:
        return _failure(error, creds.source, secrets)
    except InputError as error:
        return _answer(False, str(error), creds.source, "BadBaseURL", secrets=secrets)
    message = "DashScope accepted the API key" + (f" (workspace {creds.workspace})" if creds.workspace else "") + \
        "; the test only looks up a task that does not exist: nothing is created or billed."
    return _answer(True, message, creds.source, None, answer.request_id, secrets)


def run(vendor: str, backend: str = "cloud", env: Mapping[str, str] = os.environ,
        store_path: pathlib.Path | None = None, timeout_s: float = TIMEOUT_S) -> dict:
    """Resolve the credentials the nodes would use for `backend` and test them (blocking)."""
    if vendor not in VENDORS:
        raise InputError(f"vendor {vendor!r}: use one of {', '.join(VENDORS)}")
    if backend not in backends.BACKENDS:
        raise InputError(f"backend {backend!r}: use one of {', '.join(backends.BACKENDS)}")
    try:
        if vendor == "volc":
            return check_volc(backends.volc_credentials(backend, env, store_path), timeout_s)
        return check_dashscope(backends.dashscope_credentials(backend, env, store_path), timeout_s)
    except ConfigError as error:
        return _answer(False, str(error), None, "NotConfigured")
