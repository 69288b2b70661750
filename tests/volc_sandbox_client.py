"""Helpers for the tests of the sandbox's Volcengine emulator: images, request bodies, signed and
bearer calls, and checks of the service's answer shapes.
"""

import base64
import io
import json
import re

import numpy as np
from pack import module
from PIL import Image

Sandbox = module("nodes.sandbox").Sandbox

geometry = module("nodes.core.geometry")
vsig = module("nodes.core.volc_signer")

CV_QUERY = {"Action": "CVProcess", "Version": "2022-08-31"}
GO_DURATION = re.compile(r"(\d+h)?(\d+m)?\d+(\.\d+)?(ns|µs|ms|s)")
SERVICE_REQUEST_ID = re.compile(r"\d{14}[0-9A-F]{20}")
BUSINESS_KEYS = ["code", "data", "message", "request_id", "status", "time_elapsed"]
DROP = object()  # form() value meaning "leave this key out"


# ---- images ---------------------------------------------------------------------------------------

def make_image(width=64, height=48, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def png_bytes(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def decode(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


IMAGE = make_image()
IMAGE_PNG = png_bytes(IMAGE)
IMAGE_B64 = b64(IMAGE_PNG)


def form(**changes) -> dict:
    body = {"req_key": "i2i_outpainting", "binary_data_base64": [IMAGE_B64], "top": 0.5, "bottom": 0,
            "left": 0.25, "right": 0.25, "seed": 7}
    body.update(changes)
    return {k: v for k, v in body.items() if v is not DROP}


# ---- HTTP helpers ---------------------------------------------------------------------------------

def signed_post(http, sb, body, *, ak=None, sk=None, query=None, service="cv", now=None, timeout=10):
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    query = CV_QUERY if query is None else query
    headers = vsig.sign("POST", f"127.0.0.1:{sb.port}", "/", query, {"Content-Type": "application/json"}, raw,
                        ak or sb.volc_access_key, sk or sb.volc_secret_key, service=service, now=now)
    return http.post(f"{sb.url}/?{vsig.canonical_query(query)}", data=raw, headers=headers, timeout=timeout)


def bearer_post(http, sb, body, key=None, query=None):
    query = CV_QUERY if query is None else query
    headers = {"Content-Type": "application/json"}
    if key is not False:
        headers["Authorization"] = f"Bearer {key or sb.volc_api_key}"
    return http.post(f"{sb.url}/volcv/v1?{vsig.canonical_query(query)}", data=json.dumps(body).encode(),
                     headers=headers, timeout=10)


def assert_success(resp) -> dict:
    assert resp.status_code == 200, resp.text[:500]
    assert resp.headers["Content-Type"].startswith("application/json")
    assert b'": ' not in resp.content and b'", "' not in resp.content  # compact JSON, as the service
    body = resp.json()
    assert list(body) == BUSINESS_KEYS
    assert body["code"] == body["status"] == 10000 and body["message"] == "Success"
    assert SERVICE_REQUEST_ID.fullmatch(body["request_id"])
    assert GO_DURATION.fullmatch(body["time_elapsed"])
    data = body["data"]
    assert list(data) == ["algorithm_base_resp", "binary_data_base64", "image_urls", "request_id"]
    assert data["algorithm_base_resp"] == {"status_code": 0, "status_message": "Success"}
    assert re.fullmatch(r"[0-9a-f]{64}", data["request_id"])
    assert resp.headers["X-Tt-Logid"] == body["request_id"]
    return body


def result_png(body) -> bytes:
    assert body["data"]["image_urls"] is None
    (text,) = body["data"]["binary_data_base64"]
    return base64.b64decode(text, validate=True)


def assert_business_error(resp, code, status, *, in_message=None, data=None) -> dict:
    assert resp.status_code == status, resp.text[:500]
    body = resp.json()
    assert list(body) == BUSINESS_KEYS
    assert body["code"] == body["status"] == code and body["data"] == data
    assert SERVICE_REQUEST_ID.fullmatch(body["request_id"]) and GO_DURATION.fullmatch(body["time_elapsed"])
    if in_message is not None:
        assert in_message in body["message"], body["message"]
    return body


def assert_gateway_error(resp, code, code_n, status, action="CVProcess", version="2022-08-31") -> dict:
    assert resp.status_code == status, resp.text[:500]
    body = resp.json()
    assert list(body) == ["ResponseMetadata"]
    meta = body["ResponseMetadata"]
    assert list(meta) == ["RequestId", "Action", "Version", "Service", "Region", "Error"]
    assert SERVICE_REQUEST_ID.fullmatch(meta["RequestId"])
    assert (meta["Action"], meta["Version"], meta["Service"], meta["Region"]) == (action, version, "cv", "cn-north-1")
    assert list(meta["Error"]) == ["CodeN", "Code", "Message"]
    assert (meta["Error"]["Code"], meta["Error"]["CodeN"]) == (code, code_n)
    assert meta["Error"]["Message"]
    return meta
