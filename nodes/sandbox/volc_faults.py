"""The Volcengine emulator's fault kinds: what each does, its parameters, and their checks.

sb.inject("volc", kind, times=1, **params) queues one (faults.py has the queueing rules).
"""

from __future__ import annotations

from typing import Any

from ..core.volc_signer import GATEWAY_ERRORS
from . import hostile
from .faults import REQUIRED, Fault
from .volc_protocol import BUSINESS_ERRORS, POST_PROCESSING_CODES

# sb.inject("volc", kind, times=1, **params): kind -> parameter defaults. "Billable": counted by
# billable_count (a real account would pay).
FAULT_KINDS: dict[str, dict[str, Any]] = {
    # a business error body. billable=None: True only for the output-moderation codes (50511/50512/
    # 50519, applied after processing); any other code is applied before validation, not billable
    # (pass billable=True for e.g. a 50500 after processing)
    "error": {"code": 50500, "http_status": None, "message": None, "billable": None, "data": None,
              "retry_after": None},
    # ResponseMetadata error before authentication; not billable
    "gateway_error": {"code": "AccessDenied", "code_n": None, "http_status": None, "message": None},
    # HTTP 429 business error (50429 or 50430) after authentication; not billable
    "throttle": {"code": 50429, "retry_after": None},
    # success-shaped answers after processing (billable): an undecodable image / a URL answering
    # 404 / a URL serving `size` bytes
    "bad_base64": {"value": None},
    "url_404": {},
    "oversized_url": {"size": REQUIRED, "declare_length": True},
    # hostile results after processing (billable): result_url, redirect_url, bomb, other_format,
    # trickle_url, endless_url (hostile.py); bomb and other_format come inline unless return_url
    **hostile.RESULT_KINDS,
}
# The generic kinds (faults.GENERIC_KINDS): drop_before and http_5xx_plain are not billable;
# slow, drop_after, malformed, endless and trickle come after processing (billable).
RESULT_KINDS = frozenset({"error", "bad_base64", "url_404", "oversized_url", *hostile.RESULT_KINDS})


def check_fault(kind: str, params: dict[str, Any]) -> None:
    """Refuse impossible fault parameters when they are injected, not when a request meets them."""
    hostile.check(kind, params)
    if kind in ("error", "throttle") and not isinstance(params["code"], int):
        raise TypeError(f"{kind} code must be an int business code, got {params['code']!r}")
    if kind == "throttle" and params["code"] not in (50429, 50430):
        raise ValueError(f"throttle code must be 50429 or 50430, got {params['code']}")
    if kind == "error" and params["http_status"] is None and params["code"] not in BUSINESS_ERRORS:
        raise ValueError(f"error code {params['code']} is not in the table: give http_status too")
    if kind == "gateway_error" and params["code"] not in GATEWAY_ERRORS and (
            params["code_n"] is None or params["http_status"] is None):
        raise ValueError(f"gateway code {params['code']!r} is not in the table: give code_n and http_status")
    if kind == "oversized_url" and not (isinstance(params["size"], int) and params["size"] >= 0):
        raise ValueError(f"oversized_url needs size: an int >= 0, got {params['size']!r}")


def error_billable(fault: Fault) -> bool:
    billable = fault.params["billable"]
    return fault.params["code"] in POST_PROCESSING_CODES if billable is None else bool(billable)
