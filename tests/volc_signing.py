"""What the Volcengine signer tests share: the spec's vectors, the gateway's texts, X-Date helpers and
an independent reference implementation of the V4 authorization."""

import datetime as dt
import hashlib
import hmac
import json
import pathlib

from pack import module

vs = module("nodes.core.volc_signer")

TESTS = pathlib.Path(__file__).resolve().parent
VECTORS_FILE = TESTS / "data" / "volc_sigv4_vectors.json"  # copy of shared/spec/volc-sigv4-vectors.json
SHARED_VECTORS = TESTS.parents[1] / "shared" / "spec" / "volc-sigv4-vectors.json"
VECTORS = json.loads(VECTORS_FILE.read_text(encoding="utf-8"))["vectors"]

UTC = dt.timezone.utc
GATEWAY_MISMATCH = ("The request signature we calculated does not match the signature you provided. "
                    "Check your Secret Access Key and signing method.")
EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
CV_QUERY = {"Action": "CVProcess", "Version": "2022-08-31"}
HOST = "visual.volcengineapi.com"


def x_date(moment: dt.datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def parse_x_date(text: str) -> dt.datetime:
    return dt.datetime.strptime(text, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)


def reference_authorization(method, path, query_string, signed, body, ak, sk, date, region, service):
    """Spec A.2 written out independently of the module: sign exactly the headers in `signed`
    (lowercase name -> value), so tests can make validly signed requests of any shape."""
    body_hash = hashlib.sha256(body).hexdigest()
    names = sorted(signed)
    canonical = "\n".join([method, path, query_string, "".join(f"{n}:{signed[n]}\n" for n in names),
                           ";".join(names), body_hash])
    canonical_hash = hashlib.sha256(canonical.encode()).hexdigest()
    scope = f"{date[:8]}/{region}/{service}/request"
    key = sk.encode()
    for part in (date[:8], region, service, "request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    signature = hmac.new(key, "\n".join(["HMAC-SHA256", date, scope, canonical_hash]).encode(),
                         hashlib.sha256).hexdigest()
    return (f"HMAC-SHA256 Credential={ak}/{scope}, SignedHeaders={';'.join(names)}, Signature={signature}",
            canonical_hash)
