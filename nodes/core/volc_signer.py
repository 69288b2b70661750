"""Volcengine OpenAPI signature V4 (HMAC-SHA256): `sign` for the client, `verify` for the sandbox.

The algorithm is vendor-apis.md A.2, read from the official SDK (`volcengine==1.0.229`,
`auth/SignerV4.py` + `util/Util.py`); tests/test_volc_signer.py proves byte-for-byte equality
with that SDK. Both directions share one canonicalisation, so a request `sign` makes is exactly
what `verify` checks. Stdlib only, no ComfyUI.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timedelta, timezone
from urllib.parse import parse_qsl, quote, unquote

ALGORITHM = "HMAC-SHA256"
REGION = "cn-north-1"
SERVICE = "cv"
MAX_SKEW = timedelta(minutes=15)  # the gateway's real tolerance is unpublished (spec A.2)

_X_DATE_FORMAT = "%Y%m%dT%H%M%SZ"
_X_DATE_SHAPE = re.compile(r"\d{8}T\d{6}Z")  # strptime alone would accept unpadded fields
# Headers sign() sets itself: a caller's copy, in any letter case, is replaced.
_OWN_HEADERS = ("x-date", "x-content-sha256", "x-security-token", "authorization")

# The OpenAPI gateway's errors: code -> (CodeN, HTTP status, default message). verify() raises
# these; the sandbox's emulator answers with them (the one copy of this table).
GATEWAY_ERRORS: dict[str, tuple[int, int, str]] = {
    "MissingParameter": (100002, 400, "The request is missing a required parameter."),
    "MissingAuthenticationToken": (100003, 401, "The request has no authentication information."),
    "MissingRequestInfo": (100004, 400, "The request is missing AccessKey, Service or Region information."),
    "MissingSignature": (100005, 401, "The request has no signature."),
    "InvalidTimestamp": (100006, 400, "The signature of the request is expired."),
    "ServiceNotFound": (100007, 404, "The service in the credential scope was not found."),
    "InvalidActionOrVersion": (100008, 404, "The Action or Version of the request is invalid."),
    "InvalidAccessKey": (100009, 401, "The access key does not exist."),
    "SignatureDoesNotMatch": (100010, 401, "The request signature we calculated does not match the "
                                           "signature you provided."),
    "LackPolicy": (100012, 403, "The user lacks a policy for this action."),
    "AccessDenied": (100013, 403, "Access denied."),
    "InvalidSecretToken": (100026, 401, "The security token is invalid."),
}
MISMATCH_MESSAGE = ("The request signature we calculated does not match the signature you provided. "
                    "Check your Secret Access Key and signing method.")


class SignatureError(Exception):
    """A request the Volcengine gateway would refuse, with the gateway's error fields (spec A.6).

    `code`/`code_n` go to ResponseMetadata.Error.Code/CodeN, `http_status` is the response status.
    """

    def __init__(self, code: str, code_n: int, http_status: int, message: str):
        super().__init__(f"{code} ({code_n}, HTTP {http_status}): {message}")
        self.code = code
        self.code_n = code_n
        self.http_status = http_status
        self.message = message


def _fail(code: str, message: str) -> SignatureError:
    code_n, http_status, _ = GATEWAY_ERRORS[code]
    return SignatureError(code, code_n, http_status, message)


def _mismatch(detail: str | None = None) -> SignatureError:
    return _fail("SignatureDoesNotMatch", MISMATCH_MESSAGE + (f" ({detail})" if detail else ""))


# ---- canonicalisation, shared by sign and verify -------------------------------------------------

def _quote(text: str) -> str:
    if not isinstance(text, str):
        raise TypeError(f"query keys and values must be str, got {type(text).__name__} {text!r}")
    # The SDK then replaces '+' by '%20': a no-op, quote() has already made '+' into '%2B'.
    # ('~' is listed for clarity: quote() keeps it anyway since Python 3.7.)
    return quote(text, safe="-_.~")


def canonical_query(query: Mapping[str, str | list[str]] | Iterable[tuple[str, str]]) -> str:
    """The SDK's CanonicalQueryString: keys sorted, `quote(safe='-_.~')`, repeated keys in order.

    It is also a valid query string, so a client can put exactly this in its URL (no '+' vs '%20'
    ambiguity). Values must already be str (the SDK stringifies ints; str(True) is a trap).
    """
    pairs = query.items() if isinstance(query, Mapping) else query
    flat = []
    for key, value in pairs:
        for item in value if isinstance(value, (list, tuple)) else (value,):
            flat.append((key, item))
    flat.sort(key=lambda pair: pair[0])  # stable: a repeated key keeps its values' order, as the SDK
    return "&".join(f"{_quote(k)}={_quote(v)}" for k, v in flat)


def _canonical_uri(path: str) -> str:
    # SDK: quote(path) with '/' safe (its '%2F'->'/' and '+'->'%20' replaces are no-ops after that).
    return quote(path or "/")


def _canonical_host(value: str) -> str:
    # SDK: a port of exactly 80 or 443 is left out of the signed value (the header sent keeps it).
    # Same split as the SDK, so odd values (IPv6, several colons) come out as the SDK's do.
    parts = value.split(":")
    return parts[0] if len(parts) > 1 and parts[1] in ("80", "443") else value


def _is_signed(name: str) -> bool:
    # The SDK matches its own spelling ('Content-Type', 'Content-Md5', 'Host', 'X-...'); we match
    # any letter case, which only differs for odd spellings the SDK would silently leave unsigned.
    low = name.lower()
    return low in ("content-type", "content-md5", "host") or low.startswith("x-")


def _signature(secret_key: str, method: str, path: str, query_string: str,
               signed: list[tuple[str, str]], body_hash: str, x_date: str,
               scope: tuple[str, str, str]) -> str:
    """Hex signature over the canonical request; `signed` = (name, value) in SignedHeaders order,
    `scope` = (YYYYMMDD, region, service)."""
    canonical_headers = "".join(
        f"{name}:{_canonical_host(value) if name.lower() == 'host' else value}\n" for name, value in signed)
    canonical_request = "\n".join([method, _canonical_uri(path), query_string, canonical_headers,
                                   ";".join(name for name, _ in signed), body_hash])
    string_to_sign = "\n".join([ALGORITHM, x_date, "/".join(scope + ("request",)),
                                hashlib.sha256(canonical_request.encode("utf-8")).hexdigest()])
    key = secret_key.encode("utf-8")  # no "AWS4"-style prefix
    for part in scope + ("request",):
        key = hmac.new(key, part.encode("utf-8"), hashlib.sha256).digest()
    return hmac.new(key, string_to_sign.encode("utf-8"), hashlib.sha256).hexdigest()


def _utc(moment: datetime) -> datetime:
    # Naive datetimes are taken as UTC (as the SDK's sign_only does with utcfromtimestamp()).
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment.astimezone(timezone.utc)


# ---- client side ---------------------------------------------------------------------------------

def sign(method: str, host: str, path: str,
         query: Mapping[str, str | list[str]] | Iterable[tuple[str, str]],
         headers: Mapping[str, str], body: bytes, access_key: str, secret_key: str,
         session_token: str | None = None, region: str = REGION, service: str = SERVICE,
         now: datetime | None = None) -> dict[str, str]:
    """Return every header to send: `headers` + Host, X-Date, [X-Security-Token], X-Content-Sha256,
    Authorization — equal to what the SDK's SignerV4.sign puts on the same request.

    `host` is the Host header value (a :80/:443 port is kept in the header but not signed);
    `body` must be the exact bytes that will be sent; send the query as `canonical_query(query)`.
    Unlike SDK's sign(), no form-urlencoded Content-Type is invented for a body without one.
    """
    if not isinstance(body, (bytes, bytearray, memoryview)):
        raise TypeError("body must be the exact bytes to send (encode str bodies yourself)")
    if not host:
        raise ValueError("host is required: the Host header is always signed")
    x_date = _utc(now or datetime.now(timezone.utc)).strftime(_X_DATE_FORMAT)
    body_hash = hashlib.sha256(body).hexdigest()

    out = {"Host": host}
    seen = set()
    for name, value in headers.items():
        low = name.lower()
        if low in seen:
            raise ValueError(f"header {name!r} is given twice (header names ignore letter case)")
        seen.add(low)
        if low == "host":
            if value != host:
                raise ValueError(f"Host header {value!r} contradicts host={host!r}")
        elif low not in _OWN_HEADERS:
            out[name] = value
    out["X-Date"] = x_date
    if session_token:
        out["X-Security-Token"] = session_token  # STS: signed, like every X- header
    out["X-Content-Sha256"] = body_hash

    signed = sorted((name.lower(), value) for name, value in out.items() if _is_signed(name))
    scope = (x_date[:8], region, service)
    signature = _signature(secret_key, method.upper(), path, canonical_query(query), signed,
                           body_hash, x_date, scope)
    out["Authorization"] = (f"{ALGORITHM} Credential={access_key}/{'/'.join(scope)}/request, "
                            f"SignedHeaders={';'.join(name for name, _ in signed)}, Signature={signature}")
    return out


# ---- server side (the offline sandbox) -----------------------------------------------------------

def _parse_authorization(value: str) -> tuple[list[str], list[str], str]:
    """-> (credential parts [ak, date, region, service, 'request'], signed header names, signature)."""
    scheme, _, rest = value.strip().partition(" ")
    if scheme != ALGORITHM:
        raise _fail("MissingAuthenticationToken",
                    f"Authorization must use {ALGORITHM} (Volcengine signature V4), got {scheme!r}.")
    fields = {}
    for part in rest.split(","):
        key, eq, field = part.strip().partition("=")
        if eq:
            fields[key] = field
    if not fields.get("Signature"):
        raise _fail("MissingSignature", "The Authorization header has no Signature.")
    credential = fields.get("Credential", "").split("/")
    if len(credential) != 5 or credential[4] != "request" or not all(credential):
        raise _fail("MissingRequestInfo", "Credential must be AccessKey/YYYYMMDD/Region/Service/request.")
    if not fields.get("SignedHeaders"):
        raise _fail("MissingRequestInfo", "The Authorization header has no SignedHeaders.")
    return credential, fields["SignedHeaders"].split(";"), fields["Signature"]


def verify(method: str, path: str, raw_query: str, headers: Mapping[str, str], body: bytes,
           secret_for: Callable[[str], str | None], now: datetime, region: str = REGION,
           service: str = SERVICE, max_skew: timedelta = MAX_SKEW) -> str:
    """Check a received request's signature; return its access key or raise SignatureError.

    `path` is the percent-encoded request path (no query), `raw_query` the query string as received
    (no '?'; '+' means space, as the SDK's urlencode()d URLs need), `body` the exact bytes received.
    `secret_for(access_key)` gives the secret key, or None for an unknown key. The canonical request
    is rebuilt from the client-declared SignedHeaders, which must include host and x-date.
    STS tokens (X-Security-Token) are not checked.
    """
    received = {name.lower(): value for name, value in headers.items()}
    if not received.get("authorization", "").strip():
        raise _fail("MissingAuthenticationToken", "The request has no Authorization header.")
    (access_key, short_date, scope_region, scope_service, _), names, signature = \
        _parse_authorization(received["authorization"])
    if scope_service != service:
        raise _fail("ServiceNotFound", f"Service {scope_service!r} in the credential scope is not "
                                       f"served here (expected {service!r}).")
    if scope_region != region:
        # No gateway code is specific to a wrong region; MissingRequestInfo ("missing AK/Service/
        # Region info") is the closest one in spec A.6.
        raise _fail("MissingRequestInfo", f"Region {scope_region!r} in the credential scope is wrong "
                                          f"(expected {region!r}).")

    x_date = received.get("x-date", "")
    try:
        if not _X_DATE_SHAPE.fullmatch(x_date):
            raise ValueError(x_date)
        signed_at = datetime.strptime(x_date, _X_DATE_FORMAT).replace(tzinfo=timezone.utc)
    except ValueError:
        raise _fail("InvalidTimestamp", "X-Date is missing or not in the form YYYYMMDDTHHMMSSZ.") from None
    if short_date != x_date[:8]:
        # A malformed credential scope rather than a clock problem: same closest code as above.
        raise _fail("MissingRequestInfo", f"Credential scope date {short_date} is not the date of "
                                          f"X-Date {x_date}.")
    if abs(_utc(now) - signed_at) > max_skew:
        raise _fail("InvalidTimestamp", f"The signature of the request is expired: X-Date {x_date} is "
                                        f"more than {max_skew} away from the server clock.")

    secret_key = secret_for(access_key)
    if secret_key is None:
        raise _fail("InvalidAccessKey", f"The access key {access_key!r} does not exist.")

    lowered = [name.lower() for name in names]
    for required in ("host", "x-date"):
        if required not in lowered:
            raise _mismatch(f"SignedHeaders must include {required}")
    missing = [name for name in lowered if name not in received]
    if missing:
        raise _mismatch(f"signed header(s) {', '.join(missing)} not in the request")
    body_hash = hashlib.sha256(body).hexdigest()
    if "x-content-sha256" in lowered and received["x-content-sha256"].lower() != body_hash:
        raise _mismatch("X-Content-Sha256 is not the SHA-256 of the body received")

    query_string = canonical_query(parse_qsl(raw_query, keep_blank_values=True))
    expected = _signature(secret_key, method.upper(), unquote(path), query_string,
                          [(name, received[low]) for name, low in zip(names, lowered)],
                          body_hash, x_date, (short_date, scope_region, scope_service))
    # Bytes, not str: compare_digest refuses non-ASCII str, and a client can send anything.
    if not hmac.compare_digest(expected.encode("utf-8"), signature.encode("utf-8")):
        raise _mismatch()
    return access_key
