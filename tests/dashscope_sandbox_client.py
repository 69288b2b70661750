"""Helpers for the tests of the sandbox's DashScope emulator: images, the task clock, the upload,
create / poll / cancel calls, and checks of the service's answer shapes.
"""

import io
import json
import re
from datetime import datetime, timedelta, timezone

import numpy as np
from pack import module
from PIL import Image

Sandbox = module("nodes.sandbox").Sandbox

ds_sandbox = module("nodes.sandbox.dashscope_emulator")
geometry = module("nodes.core.geometry")

MODEL = "image-out-painting"
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")
BEIJING_TIME = re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\.\d{3}")
ERROR_KEYS = ["code", "message", "request_id"]
PENDING_S, RUNNING_S = 10.0, 10.0
# the task timing these tests step through with advance(); read by conftest's sb fixture
SANDBOX_SETTINGS = {"dashscope_pending_s": PENDING_S, "dashscope_running_s": RUNNING_S}
SYNC_MESSAGE = "current user api does not support synchronous calls"
URL_MESSAGE = "The provided URL does not appear to be valid. Ensure it is correctly formatted."
CANCEL_REFUSED = "Failed to cancel the task, please confirm if the task is in PENDING status."


# ---- images ---------------------------------------------------------------------------------------

def make_image(width=512, height=512, seed=0) -> np.ndarray:
    """Blocky random colours: distinct everywhere, yet small as a PNG."""
    small = np.random.default_rng(seed).integers(0, 256, (max(1, height // 16), max(1, width // 16), 3),
                                                 dtype=np.uint8)
    return np.asarray(Image.fromarray(small).resize((width, height), Image.Resampling.NEAREST))


def encode(array: np.ndarray, fmt="PNG") -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format=fmt)
    return buf.getvalue()


def decode(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


IMAGE = make_image()
IMAGE_PNG = encode(IMAGE)


# ---- HTTP helpers ---------------------------------------------------------------------------------

def advance(sb, seconds: float) -> None:
    """Move the sandbox clock forward (the task state machine runs on it)."""
    sb.clock_offset = sb.clock_offset + timedelta(seconds=seconds)


def finish(sb) -> None:
    advance(sb, PENDING_S + 2 * RUNNING_S + 1)


def auth(sb, key=None) -> dict:
    if key is False:
        return {}
    return {"Authorization": f"Bearer {key or sb.dashscope_api_key}"}


def get_policy(http, sb, model=MODEL, key=None, **query):
    params = {"action": "getPolicy", "model": model, **query}
    return http.get(f"{sb.url}/api/v1/uploads", params=params, headers=auth(sb, key), timeout=10)


def policy_data(http, sb, model=MODEL, key=None) -> dict:
    resp = get_policy(http, sb, model, key)
    assert resp.status_code == 200, resp.text
    return resp.json()["data"]


def upload_form(policy: dict, name="in.png") -> dict:
    """The documented form fields (spec B.7), file excluded."""
    return {"OSSAccessKeyId": policy["oss_access_key_id"], "Signature": policy["signature"],
            "policy": policy["policy"], "key": f"{policy['upload_dir']}/{name}",
            "x-oss-object-acl": policy["x_oss_object_acl"],
            "x-oss-forbid-overwrite": policy["x_oss_forbid_overwrite"], "success_action_status": "200"}


def oss_post(http, grant, data, name="in.png", /, **changes):
    """POST the documented form for `grant` (a getPolicy `data`); a change of None drops a field."""
    fields = {k: v for k, v in {**upload_form(grant, name), **changes}.items() if v is not None}
    return http.post(grant["upload_host"], data=fields, files={"file": (name, data, "image/png")}, timeout=10)


def upload(http, sb, data=IMAGE_PNG, name="in.png", model=MODEL, key=None) -> str:
    policy = policy_data(http, sb, model, key)
    resp = oss_post(http, policy, data, name)
    assert resp.status_code == 200 and resp.content == b"", resp.text
    return f"oss://{policy['upload_dir']}/{name}"


EXPANSION = ("angle", "output_ratio", "x_scale", "y_scale", "top_offset", "bottom_offset", "left_offset",
             "right_offset")
EXPANSION_GIVEN = frozenset(EXPANSION)
SOME_EXPANSION = {"x_scale": 2.0}  # what create() sends when a test names no expansion (an empty one is refused)


def create(http, sb, image_url, *, key=None, resolve=True, async_header="enable", workspace=None, body=None,
           **parameters):
    if not EXPANSION_GIVEN.intersection(parameters):
        parameters = {**SOME_EXPANSION, **parameters}
    headers = {"Content-Type": "application/json", **auth(sb, key)}
    if async_header is not None:
        headers["X-DashScope-Async"] = async_header
    if resolve:
        headers["X-DashScope-OssResourceResolve"] = "enable"
    if workspace:
        headers["X-DashScope-WorkSpace"] = workspace
    if body is None:
        body = json.dumps({"model": MODEL, "input": {"image_url": image_url}, "parameters": parameters})
    return http.post(f"{sb.url}/api/v1/services/aigc/image2image/out-painting", data=body, headers=headers,
                     timeout=10)


def created_id(resp) -> str:
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert list(body) == ["output", "request_id"] and UUID.fullmatch(body["request_id"])
    assert list(body["output"]) == ["task_status", "task_id"] and body["output"]["task_status"] == "PENDING"
    assert UUID.fullmatch(body["output"]["task_id"])
    return body["output"]["task_id"]


def poll(http, sb, task_id, key=None) -> dict:
    resp = http.get(f"{sb.url}/api/v1/tasks/{task_id}", headers=auth(sb, key), timeout=10)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert UUID.fullmatch(body["request_id"])
    return body


def cancel(http, sb, task_id, key=None):
    return http.post(f"{sb.url}/api/v1/tasks/{task_id}/cancel", headers=auth(sb, key), timeout=10)


def assert_error(resp, status, code, message=None, contains=None) -> dict:
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert list(body) == ERROR_KEYS and body["code"] == code and UUID.fullmatch(body["request_id"])
    if message is not None:
        assert body["message"] == message
    if contains is not None:
        assert contains in body["message"], body["message"]
    return body


def succeeded(body) -> str:
    out = body["output"]
    assert out["task_status"] == "SUCCEEDED", body
    assert list(out) == ["task_id", "task_status", "submit_time", "scheduled_time", "end_time", "output_image_url"]
    assert body["usage"] == {"image_count": 1}
    return out["output_image_url"]


def failed(body, code, message=None, contains=None):
    out = body["output"]
    assert out["task_status"] == "FAILED", body
    assert list(out) == ["task_id", "task_status", "submit_time", "scheduled_time", "end_time", "code", "message"]
    assert "usage" not in body and out["code"] == code
    if message is not None:
        assert out["message"] == message
    if contains is not None:
        assert contains in out["message"], out["message"]


def run(http, sb, image_url=None, **parameters) -> tuple[str, dict]:
    """Upload (unless given a URL), create, let the task finish -> (task_id, final body)."""
    url = upload(http, sb) if image_url is None else image_url
    task_id = created_id(create(http, sb, url, **parameters))
    finish(sb)
    return task_id, poll(http, sb, task_id)


def result(http, sb, **parameters) -> np.ndarray:
    parameters.setdefault("add_watermark", False)
    _, body = run(http, sb, **parameters)
    got = http.get(succeeded(body), timeout=10)
    assert got.status_code == 200
    return decode(got.content)


def create_entry(sb, index=0):
    return sb.requests("dashscope", "create")[index]


def beijing_now(sb) -> datetime:
    return (datetime.now(timezone.utc) + sb.clock_offset).astimezone(timezone(timedelta(hours=8)))


def parse_beijing(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%d %H:%M:%S.%f").replace(tzinfo=timezone(timedelta(hours=8)))
