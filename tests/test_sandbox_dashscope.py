"""The offline sandbox's DashScope image-out-painting emulator, over real HTTP on 127.0.0.1.

Most tests run the task clock by hand (long pending/running times, then `advance`), so every state
is observed deterministically; one test lets real time drive it. Expected sizes are written out by
hand (the rotation bounding box is geometry.rotated_size, which is proven equal to Pillow's in
test_geometry.py). The official `dashscope` SDK is used as a client at the end.
"""

import base64
import io
import json
import re
import threading
import time
import uuid
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest
import requests
from PIL import Image

from pack import module

Sandbox = module("nodes.sandbox").Sandbox
ds_sandbox = module("nodes.sandbox.dashscope_emulator")
geometry = module("nodes.core.geometry")

MODEL = "image-out-painting"
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")
BEIJING_TIME = re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\.\d{3}")
ERROR_KEYS = ["code", "message", "request_id"]
PENDING_S, RUNNING_S = 10.0, 10.0
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

@pytest.fixture
def sb():
    with Sandbox(dashscope_pending_s=PENDING_S, dashscope_running_s=RUNNING_S) as sandbox:
        yield sandbox
        assert sandbox.errors == [], "sandbox bugs:\n" + "\n".join(sandbox.errors)


@pytest.fixture
def http():
    with requests.Session() as session:
        session.trust_env = False  # never send loopback traffic through a configured proxy
        yield session


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


def create(http, sb, image_url, *, key=None, resolve=True, async_header="enable", workspace=None, body=None,
           **parameters):
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


# ---- the whole flow -------------------------------------------------------------------------------

def test_full_flow_upload_create_poll_download(sb, http):
    resp = get_policy(http, sb)
    assert resp.status_code == 200
    body = resp.json()
    assert list(body) == ["request_id", "data"] and UUID.fullmatch(body["request_id"])
    data = body["data"]
    assert list(data) == ["policy", "signature", "upload_dir", "upload_host", "expire_in_seconds", "max_file_size_mb",
                          "capacity_limit_mb", "oss_access_key_id", "x_oss_object_acl", "x_oss_forbid_overwrite"]
    assert data["upload_host"] == f"{sb.url}/oss" and data["upload_dir"].startswith("dashscope-instant/")
    assert (data["expire_in_seconds"], data["max_file_size_mb"], data["x_oss_object_acl"],
            data["x_oss_forbid_overwrite"]) == (300, 100, "private", "true")
    assert data["oss_access_key_id"].startswith("LTAI")
    policy_doc = json.loads(base64.b64decode(data["policy"]))
    assert ["starts-with", "$key", data["upload_dir"]] in policy_doc["conditions"]

    up = oss_post(http, data, IMAGE_PNG, "cat.png")
    assert (up.status_code, up.content) == (200, b"") and up.headers["x-oss-request-id"]
    url = f"oss://{data['upload_dir']}/cat.png"

    task_id = created_id(create(http, sb, url, workspace="llm-sandbox", x_scale=2.0, add_watermark=False))
    pending = poll(http, sb, task_id)
    assert list(pending) == ["request_id", "output"]
    assert list(pending["output"]) == ["task_id", "task_status", "submit_time"]
    assert pending["output"]["task_status"] == "PENDING"
    submit = parse_beijing(pending["output"]["submit_time"])
    assert BEIJING_TIME.fullmatch(pending["output"]["submit_time"])
    assert abs((beijing_now(sb) - submit).total_seconds()) < 5

    advance(sb, PENDING_S)
    running = poll(http, sb, task_id)["output"]
    assert list(running) == ["task_id", "task_status", "submit_time", "scheduled_time", "task_metrics"]
    assert running["task_status"] == "RUNNING"
    assert running["task_metrics"] == {"TOTAL": 1, "SUCCEEDED": 0, "FAILED": 0}
    assert (parse_beijing(running["scheduled_time"]) - submit).total_seconds() == pytest.approx(PENDING_S, abs=0.002)

    advance(sb, RUNNING_S)
    done = poll(http, sb, task_id)
    image_url = succeeded(done)
    out = done["output"]
    took = (parse_beijing(out["end_time"]) - submit).total_seconds()
    assert took == pytest.approx(PENDING_S + RUNNING_S, abs=0.002)
    assert out["submit_time"] == pending["output"]["submit_time"]
    assert re.fullmatch(re.escape(sb.url) + r"/sandbox/results/[0-9a-f]{32}\.png\?Expires=\d+&OSSAccessKeyId=LTAI\w+"
                        r"&Signature=[\w%]+", image_url)
    expires = int(re.search(r"Expires=(\d+)", image_url).group(1))
    assert expires == int((parse_beijing(out["end_time"]) + timedelta(hours=24)).timestamp())

    got = http.get(image_url, timeout=10)
    assert got.status_code == 200 and got.headers["Content-Type"] == "image/png"
    image = decode(got.content)
    assert image.shape == (512, 1024, 3)
    assert np.array_equal(image[:, 256:768], IMAGE)            # the original, untouched, centred
    assert image[:, :256].std() > 0 and image[:, 768:].std() > 0

    entry = create_entry(sb)
    assert (entry.billable, entry.status, entry.path) == (True, 200, "/api/v1/services/aigc/image2image/out-painting")
    d = entry.detail
    assert (d["task_id"], d["mode"], d["resolve_header"], d["workspace"], d["input_source"]) == \
        (task_id, "scale", True, "llm-sandbox", "oss")
    assert d["parameters"] == {"x_scale": 2.0, "add_watermark": False}
    assert (d["best_quality"], d["limit_image_size"], d["add_watermark"]) == (False, True, False)  # defaults applied
    assert (d["input_size"], d["output_size"], d["task_status"]) == ((512, 512), (1024, 512), "SUCCEEDED")
    assert [e.action for e in sb.requests("dashscope")] == ["getPolicy", "upload", "create", "poll", "poll", "poll"]
    assert (sb.billable_count("dashscope"), sb.dashscope_charged_images()) == (1, 1)


def test_real_time_drives_the_task(http):
    with Sandbox(dashscope_pending_s=0.1, dashscope_running_s=0.2) as sb:
        task_id = created_id(create(http, sb, upload(http, sb)))
        seen = []
        deadline = time.monotonic() + 5
        while not seen or seen[-1] not in ("SUCCEEDED", "FAILED"):
            assert time.monotonic() < deadline
            seen.append(poll(http, sb, task_id)["output"]["task_status"])
            time.sleep(0.03)
        assert [s for i, s in enumerate(seen) if i == 0 or seen[i - 1] != s] == ["PENDING", "RUNNING", "SUCCEEDED"]
        assert sb.errors == []


def test_http_and_data_uri_inputs(sb, http):
    sb.dashscope_qps = 0
    via_oss = result(http, sb, x_scale=1.5)
    via_http = result(http, sb, image_url=sb.publish(IMAGE_PNG), x_scale=1.5)
    data_uri = "data:image/png;base64," + base64.b64encode(IMAGE_PNG).decode()
    via_data = result(http, sb, image_url=data_uri, x_scale=1.5)
    assert np.array_equal(via_oss, via_http) and np.array_equal(via_oss, via_data)  # deterministic fill
    assert [e.detail["input_source"] for e in sb.requests("dashscope", "create")] == ["oss", "http", "data"]


# ---- geometry -------------------------------------------------------------------------------------

@pytest.mark.parametrize("size, parameters, mode, expected, origin", [
    ((512, 512), {"x_scale": 2.0}, "scale", (1024, 512), (256, 0)),
    ((512, 512), {"y_scale": 1.5}, "scale", (512, 768), (0, 128)),
    ((512, 512), {"x_scale": 1.5, "y_scale": 2.0}, "scale", (768, 1024), (128, 256)),
    ((512, 512), {"output_ratio": "16:9"}, "output_ratio", (910, 512), (199, 0)),
    ((512, 512), {"output_ratio": "3:4"}, "output_ratio", (512, 683), (0, 85)),
    ((512, 512), {"output_ratio": "9:16"}, "output_ratio", (512, 910), (0, 199)),
    ((768, 512), {"output_ratio": "4:3"}, "output_ratio", (768, 576), (0, 32)),
    ((768, 512), {"output_ratio": "1:1"}, "output_ratio", (768, 768), (0, 128)),
    ((512, 512), {"left_offset": 100, "bottom_offset": 30}, "offsets", (612, 542), (100, 0)),
    ((512, 512), {"top_offset": 7, "right_offset": 9}, "offsets", (521, 519), (0, 7)),
    # priority: a non-empty ratio beats the scales, a scale beats the offsets
    ((512, 512), {"output_ratio": "4:3", "x_scale": 2.0, "left_offset": 100}, "output_ratio", (683, 512), (85, 0)),
    ((512, 512), {"x_scale": 2.0, "left_offset": 100}, "scale", (1024, 512), (256, 0)),
    ((512, 512), {"output_ratio": "", "x_scale": 1.0, "top_offset": 50}, "offsets", (512, 562), (0, 50)),
    ((512, 512), {}, "rotate_only", (512, 512), (0, 0)),
])
def test_expansion_modes_and_priority(sb, http, size, parameters, mode, expected, origin):
    source = make_image(*size, seed=3)
    _, body = run(http, sb, upload(http, sb, encode(source)), add_watermark=False, **parameters)
    image = decode(http.get(succeeded(body), timeout=10).content)
    assert (image.shape[1], image.shape[0]) == expected
    x, y = origin
    assert np.array_equal(image[y:y + size[1], x:x + size[0]], source)
    detail = create_entry(sb).detail
    assert detail["mode"] == mode and detail["placement"]["x"] == x and detail["placement"]["y"] == y


def pillow_rotation(array, angle):
    rotated = np.asarray(Image.fromarray(array).convert("RGBA").rotate(angle, resample=Image.Resampling.BICUBIC,
                                                                       expand=True))
    return rotated[..., :3], rotated[..., 3] == 255


@pytest.mark.parametrize("angle", [30, 45, 301])
def test_rotation_only(sb, http, angle):
    image = result(http, sb, angle=angle)
    width, height = geometry.rotated_size(512, 512, angle)
    assert (image.shape[1], image.shape[0]) == (width, height) and width > 512
    pixels, inside = pillow_rotation(IMAGE, angle)  # counter-clockwise, as the doc says
    assert np.array_equal(image[inside], pixels[inside])
    for corner in (image[:20, :20], image[:20, -20:], image[-20:, :20], image[-20:, -20:]):
        assert corner.mean() > 10 and corner.std() > 0  # generated, not the rotation's black fill
    assert create_entry(sb).detail["mode"] == "rotate_only"


def test_rotation_then_scale_of_the_rotated_box(sb, http):
    image = result(http, sb, angle=30, x_scale=2.0, left_offset=100)
    width, height = geometry.rotated_size(512, 512, 30)
    assert (image.shape[1], image.shape[0]) == (int(width * 2 + 0.5), height)
    assert create_entry(sb).detail["mode"] == "scale"


def test_quarter_turns_are_refused_unless_allowed(sb, http):
    url = upload(http, sb, encode(make_image(768, 512)))
    assert_error(create(http, sb, url, angle=90), 400, "InvalidParameter", contains="90, 180 or 270")
    sb.dashscope_refuse_quarter_turns = False
    _, body = run(http, sb, url, angle=90, add_watermark=False)
    image = decode(http.get(succeeded(body), timeout=10).content)
    assert np.array_equal(image, np.rot90(make_image(768, 512)))  # exact transpose, counter-clockwise


# ---- watermark, quality, output size --------------------------------------------------------------

def test_watermark_is_on_by_default_bottom_left(sb, http):
    url = upload(http, sb)
    _, marked = run(http, sb, url, x_scale=2.0)
    _, clean = run(http, sb, url, x_scale=2.0, add_watermark=False)
    a = decode(http.get(succeeded(marked), timeout=10).content)
    b = decode(http.get(succeeded(clean), timeout=10).content)
    x0, y0, x1, y1 = create_entry(sb, 0).detail["watermark_box"]
    assert "watermark_box" not in create_entry(sb, 1).detail
    assert x0 < 30 and x1 < 1024 // 2 and y1 > 512 - 30 and y0 > 512 * 0.8  # small, bottom-left
    outside = np.ones(a.shape[:2], dtype=bool)
    outside[y0:y1, x0:x1] = False
    assert np.array_equal(a[outside], b[outside])                          # nothing else changes
    box_a, box_b = a[y0:y1, x0:x1].astype(int), b[y0:y1, x0:x1].astype(int)
    assert (box_a != box_b).mean() > 0.5 and (box_a == 255).all(axis=-1).sum() > 20  # darkened, white text


def test_best_quality_takes_longer(sb, http):
    url = upload(http, sb)
    task_id = created_id(create(http, sb, url, best_quality=True))
    advance(sb, PENDING_S + RUNNING_S + 1)
    assert poll(http, sb, task_id)["output"]["task_status"] == "RUNNING"  # twice the running time
    advance(sb, RUNNING_S)
    succeeded(poll(http, sb, task_id))


def test_jpeg_output_setting(sb, http):
    sb.dashscope_output_format = "jpeg"
    _, body = run(http, sb, x_scale=1.2)
    url = succeeded(body)
    got = http.get(url, timeout=10)
    assert ".jpg?" in url and got.content[:3] == b"\xff\xd8\xff" and got.headers["Content-Type"] == "image/jpeg"


def test_limit_image_size_reencodes_as_jpeg(sb, http):
    noisy = encode(np.random.default_rng(1).integers(0, 256, (512, 512, 3), dtype=np.uint8))
    sb.dashscope_limited_output_bytes = 600_000  # the PNG of the noisy result is about 1.3 MB
    _, body = run(http, sb, upload(http, sb, noisy), x_scale=2.0)
    got = http.get(succeeded(body), timeout=10).content
    assert got[:3] == b"\xff\xd8\xff" and len(got) <= 600_000
    detail = create_entry(sb).detail
    assert detail["reencoded"] == "jpeg" and detail["output_bytes"] == len(got)


def test_output_over_the_limit_fails_without_limit_image_size(sb, http):
    sb.dashscope_max_output_bytes = 100_000
    _, body = run(http, sb, x_scale=2.0, limit_image_size=False)
    failed(body, "InvalidParameter.DataInspection", "The image size is not supported for the data inspection.")
    assert (sb.billable_count(), sb.dashscope_charged_images()) == (1, 0)


# ---- headers and keys -----------------------------------------------------------------------------

@pytest.mark.parametrize("value", [None, "disable", ""])
def test_async_header_is_required(sb, http, value):
    resp = create(http, sb, upload(http, sb), async_header=value)
    assert_error(resp, 403, "AccessDenied", SYNC_MESSAGE)
    assert sb.billable_count() == 0 and create_entry(sb).detail["async_header"] == value


def test_oss_url_needs_the_resolve_header(sb, http):
    url = upload(http, sb)
    assert_error(create(http, sb, url, resolve=False), 400, "InvalidParameter.DataInspection", URL_MESSAGE)
    assert create_entry(sb).detail["resolve_header"] is False
    created_id(create(http, sb, url))
    assert create_entry(sb, 1).detail["workspace"] is None and sb.billable_count() == 1


@pytest.mark.parametrize("key, message", [(False, "No API-key provided."), ("sk-wrong", "Invalid API-key provided.")])
def test_bad_keys_everywhere(sb, http, key, message):
    assert_error(get_policy(http, sb, key=key), 401, "InvalidApiKey", message)
    assert_error(create(http, sb, "oss://x/y.png", key=key), 401, "InvalidApiKey", message)
    resp = http.get(f"{sb.url}/api/v1/tasks/{uuid.uuid4()}", headers=auth(sb, key), timeout=10)
    assert_error(resp, 401, "InvalidApiKey", message)
    assert_error(cancel(http, sb, uuid.uuid4(), key=key), 401, "InvalidApiKey", message)
    assert sb.billable_count() == 0 and not any(e.processed for e in sb.requests())


def test_region_locked_keys(sb, http):
    url = upload(http, sb)
    resp = create(http, sb, url, key=sb.dashscope_intl_api_key)
    assert_error(resp, 401, "InvalidApiKey", "Invalid API-key provided.")
    assert create_entry(sb).detail["key_region"] == "ap-southeast-1"
    sb.add_dashscope_key("sk-from-singapore-0000000000000000", region="ap-southeast-1")
    assert_error(get_policy(http, sb, key="sk-from-singapore-0000000000000000"), 401, "InvalidApiKey")
    sb.add_dashscope_key("sk-second-beijing-key-00000000000")
    created_id(create(http, sb, upload(http, sb, key="sk-second-beijing-key-00000000000"),
                      key="sk-second-beijing-key-00000000000"))
    sb.dashscope_region = "ap-southeast-1"  # now the sandbox plays the Singapore endpoint
    assert_error(get_policy(http, sb), 401, "InvalidApiKey")
    assert get_policy(http, sb, key=sb.dashscope_intl_api_key).status_code == 200
    assert sb.dashscope_api_key == ds_sandbox.DEMO_API_KEY
    assert sb.dashscope_api_key.startswith("sk-") and len(sb.dashscope_api_key) == 35


# ---- validation -----------------------------------------------------------------------------------

def body_with(**changes) -> str:
    body = {"model": MODEL, "input": {"image_url": "oss://dashscope-instant/x/in.png"}, "parameters": {}}
    for name, value in changes.items():
        if value is ...:
            body.pop(name)
        else:
            body[name] = value
    return json.dumps(body)


def params(**values) -> str:
    return body_with(parameters=values)


SYNC_ERRORS = [
    ("bad json", "{nope", 400, "InvalidParameter.JsonPhrase", "input json error"),
    ("json array", "[]", 400, "InvalidParameter.JsonPhrase", "input json error"),
    ("nan", body_with(parameters={"x_scale": float("nan")}), 400, "InvalidParameter.JsonPhrase", None),
    ("no model", body_with(model=...), 400, "BadRequest.EmptyModel", 'Required parameter "model" missing'),
    ("other model", body_with(model="wanx-v1"), 400, "InvalidParameter", "Model not exist."),
    ("no input", body_with(input=...), 400, "BadRequest.EmptyInput", "Required input parameter missing"),
    ("input not an object", body_with(input="x"), 400, "BadRequest.IllegalInput", "json format"),
    ("no parameters", body_with(parameters=...), 400, "BadRequest.EmptyParameters", '"parameters" missing'),
    ("no image_url", body_with(input={}), 400, "InvalidParameter", "Field required: input.image_url"),
    ("image_url not a string", body_with(input={"image_url": 5}), 400, "InvalidParameter", "must be a string"),
    ("ftp url", body_with(input={"image_url": "ftp://127.0.0.1/a.png"}), 400, "InvalidParameter.DataInspection",
     "does not appear to be valid"),
    ("plain text url", body_with(input={"image_url": "a.png"}), 400, "InvalidParameter.DataInspection", None),
    ("angle 360", params(angle=360), 400, "InvalidParameter", "angle must be in [0, 359]"),
    ("angle negative", params(angle=-1), 400, "InvalidParameter", "angle"),
    ("angle fractional", params(angle=30.5), 400, "InvalidParameter", "angle must be an integer"),
    ("angle string", params(angle="30"), 400, "InvalidParameter", "angle must be an integer"),
    ("angle 180", params(angle=180), 400, "InvalidParameter", "90, 180 or 270"),
    ("ratio 2:1", params(output_ratio="2:1"), 400, "InvalidParameter", "output_ratio"),
    ("ratio number", params(output_ratio=1.5), 400, "InvalidParameter", "output_ratio"),
    ("x_scale below 1", params(x_scale=0.5), 400, "InvalidParameter", "x_scale must be in [1.0, 3.0]"),
    ("x_scale above 3", params(x_scale=3.01), 400, "InvalidParameter", "x_scale"),
    ("y_scale string", params(y_scale="2"), 400, "InvalidParameter", "y_scale must be a number"),
    ("y_scale bool", params(y_scale=True), 400, "InvalidParameter", "y_scale"),
    ("offset negative", params(left_offset=-1), 400, "InvalidParameter", "left_offset must be >= 0"),
    ("offset fractional", params(top_offset=1.5), 400, "InvalidParameter", "top_offset must be an integer"),
    ("flag string", params(best_quality="yes"), 400, "InvalidParameter", "best_quality must be true or false"),
    ("flag number", params(add_watermark=1), 400, "InvalidParameter", "add_watermark"),
    ("limit flag", params(limit_image_size="false"), 400, "InvalidParameter", "limit_image_size"),
]


@pytest.mark.parametrize("name, body, status, code, words", SYNC_ERRORS, ids=[e[0] for e in SYNC_ERRORS])
def test_validation_errors_on_create(sb, http, name, body, status, code, words):
    resp = create(http, sb, None, body=body)
    error = assert_error(resp, status, code, contains=words)
    if code.startswith("InvalidParameter") and "parameters" in body and name.startswith(("angle", "ratio", "x_",
                                                                                         "y_", "offset", "flag",
                                                                                         "limit")):
        assert error["message"].startswith("the parameters must conform to the specification: ")
    entry = create_entry(sb)
    assert (entry.billable, entry.processed) == (False, False) and "task_id" not in entry.detail


def test_accepted_values_at_the_edges(sb, http):
    sb.dashscope_qps = sb.dashscope_max_concurrent = 0
    url = upload(http, sb)
    for parameters in ({"angle": 0}, {"angle": 359}, {"angle": 30.0}, {"x_scale": 1, "y_scale": 3},
                       {"output_ratio": ""}, {"output_ratio": None, "x_scale": None}, {"unknown": "ignored"}):
        created_id(create(http, sb, url, **parameters))
    assert sb.billable_count() == 7


def test_parameter_checks_can_run_in_the_task(sb, http):
    sb.dashscope_sync_validation = False  # as a live probe saw other DashScope image models behave
    task_id = created_id(create(http, sb, upload(http, sb), angle=400))
    finish(sb)
    failed(poll(http, sb, task_id), "InvalidParameter", contains="angle must be in [0, 359]")
    bad_url = create(http, sb, None, body=body_with(input={"image_url": "nope"}))
    assert_error(bad_url, 400, "InvalidParameter.DataInspection")  # the URL check stays synchronous
    assert (sb.billable_count(), sb.dashscope_charged_images()) == (1, 0)


# ---- checks inside the task ------------------------------------------------------------------------

@pytest.mark.parametrize("data, code, words", [
    (b"not an image at all", "InvalidParameter.ImageFormat", "read image error"),
    (encode(make_image(64, 64), "GIF"), "InvalidParameter.ImageFormat", "read image error"),
    (encode(make_image(256, 256)), "InvalidParameter", "512 to 4096 px on each side, got 256x256"),
    (encode(make_image(512, 511)), "InvalidParameter", "got 512x511"),
    (encode(make_image(4100, 600)), "InvalidParameter", "got 4100x600"),
])
def test_image_checks_fail_the_task(sb, http, data, code, words):
    task_id, body = run(http, sb, upload(http, sb, data))
    failed(body, code, contains=words)
    assert body["output"]["task_id"] == task_id
    assert (sb.billable_count(), sb.dashscope_charged_images()) == (1, 0)
    assert create_entry(sb).detail["task_status"] == "FAILED"


def test_jpeg_and_webp_inputs_are_accepted(sb, http):
    for fmt in ("JPEG", "WEBP"):
        _, body = run(http, sb, upload(http, sb, encode(IMAGE, fmt), name=f"in.{fmt.lower()}"))
        succeeded(body)


def test_input_over_10_mb_fails(sb, http):
    sb.dashscope_max_image_bytes = len(IMAGE_PNG) - 1
    _, body = run(http, sb)
    failed(body, "InvalidParameter.DataInspection")


def test_offsets_must_stay_under_three_times_the_side(sb, http):
    _, body = run(http, sb, left_offset=1000, right_offset=536)
    failed(body, "InvalidParameter", contains="3 x the width (1536)")
    _, body = run(http, sb, top_offset=1535)
    succeeded(body)


@pytest.mark.parametrize("make_url, message", [
    (lambda sb: sb.missing_result_url(), "download for input_image error"),
    (lambda sb: "http://example.com/cat.png", "download for input_image error"),
    (lambda sb: "oss://dashscope-instant/nobody/2024-01-01/x/in.png", "oss download error"),
])
def test_download_failures_fail_the_task(sb, http, make_url, message):
    _, body = run(http, sb, make_url(sb))
    failed(body, "InvalidParameter.FileDownload", message)
    assert create_entry(sb).detail["download_error"]


def test_uploads_are_bound_to_model_account_and_48_hours(sb, http):
    sb.dashscope_qps = 0
    other_model = upload(http, sb, model="qwen-vl-plus")
    sb.add_dashscope_key("sk-another-account-0000000000000")
    other_account = upload(http, sb, key="sk-another-account-0000000000000")
    mine = upload(http, sb)
    ids = [created_id(create(http, sb, url)) for url in (other_model, other_account, mine)]
    finish(sb)
    failed(poll(http, sb, ids[0]), "InvalidParameter.FileDownload", "oss download error")
    failed(poll(http, sb, ids[1]), "InvalidParameter.FileDownload", "oss download error")
    succeeded(poll(http, sb, ids[2]))
    assert "qwen-vl-plus" in create_entry(sb, 0).detail["download_error"]
    advance(sb, 48 * 3600)
    task_id = created_id(create(http, sb, mine))
    finish(sb)
    failed(poll(http, sb, task_id), "InvalidParameter.FileDownload", "oss download error")


# ---- throttling -----------------------------------------------------------------------------------

def test_more_than_two_creates_per_second_are_throttled(sb, http):
    url = upload(http, sb)
    first, second, third = (create(http, sb, url) for _ in range(3))
    created_id(first), created_id(second)
    assert_error(third, 429, "Throttling.RateQuota", "Requests rate limit exceeded, please try again later.")
    assert create_entry(sb, 2).detail["throttled"] == "qps" and sb.billable_count() == 2
    sb.add_dashscope_key("sk-another-account-0000000000000")  # the limit is per key (account)
    created_id(create(http, sb, upload(http, sb, key="sk-another-account-0000000000000"),
                      key="sk-another-account-0000000000000"))


def test_concurrent_task_limit(sb, http):
    sb.dashscope_qps = 0
    url = upload(http, sb)
    ids = [created_id(create(http, sb, url)) for _ in range(5)]
    assert_error(create(http, sb, url), 429, "Throttling.RateQuota")
    assert create_entry(sb, 5).detail["throttled"] == "concurrency"
    assert cancel(http, sb, ids[0]).status_code == 200       # a cancelled task frees its slot
    created_id(create(http, sb, url))
    assert_error(create(http, sb, url), 429, "Throttling.RateQuota")
    finish(sb)                                                # finished tasks free theirs
    created_id(create(http, sb, url))
    sb.dashscope_max_concurrent = 1
    assert_error(create(http, sb, url), 429, "Throttling.RateQuota")
    assert sb.billable_count() == 7


# ---- UNKNOWN, cancel ------------------------------------------------------------------------------

def test_unknown_ids_and_other_accounts_tasks(sb, http):
    missing = str(uuid.uuid4())
    body = poll(http, sb, missing)
    assert list(body) == ["request_id", "output"] and body["output"] == {"task_id": missing, "task_status": "UNKNOWN"}
    task_id = created_id(create(http, sb, upload(http, sb)))
    sb.add_dashscope_key("sk-another-account-0000000000000")
    assert poll(http, sb, task_id, key="sk-another-account-0000000000000")["output"]["task_status"] == "UNKNOWN"
    assert poll(http, sb, task_id)["output"]["task_status"] == "PENDING"


def test_tasks_expire_after_24_hours_and_so_do_result_links(sb, http):
    task_id, body = run(http, sb)
    url = succeeded(body)
    advance(sb, 23 * 3600)
    assert http.get(url, timeout=10).status_code == 200
    succeeded(poll(http, sb, task_id))
    advance(sb, 3600)
    assert poll(http, sb, task_id)["output"] == {"task_id": task_id, "task_status": "UNKNOWN"}
    assert http.get(url, timeout=10).status_code == 404


def test_cancel_pending_but_not_running(sb, http):
    url = upload(http, sb)
    pending_id = created_id(create(http, sb, url))
    resp = cancel(http, sb, pending_id)
    assert resp.status_code == 200 and list(resp.json()) == ["request_id"]
    out = poll(http, sb, pending_id)["output"]
    assert list(out) == ["task_id", "task_status", "submit_time", "end_time"] and out["task_status"] == "CANCELED"
    running_id = created_id(create(http, sb, url))
    advance(sb, PENDING_S + 1)
    assert_error(cancel(http, sb, running_id), 400, "UnsupportedOperation", CANCEL_REFUSED)
    finish(sb)
    assert_error(cancel(http, sb, running_id), 400, "UnsupportedOperation", CANCEL_REFUSED)
    assert_error(cancel(http, sb, pending_id), 400, "UnsupportedOperation", CANCEL_REFUSED)  # twice
    assert_error(cancel(http, sb, str(uuid.uuid4())), 400, "UnsupportedOperation", CANCEL_REFUSED)
    assert poll(http, sb, pending_id)["output"]["task_status"] == "CANCELED"
    assert (sb.billable_count(), sb.dashscope_charged_images()) == (2, 1)
    assert [e.detail["task_status"] for e in sb.requests("dashscope", "create")] == ["CANCELED", "SUCCEEDED"]
    assert all(not e.billable for e in sb.requests("dashscope", "cancel"))


# ---- the temporary upload -------------------------------------------------------------------------

def test_policy_expires_on_the_sandbox_clock(sb, http):
    policy = policy_data(http, sb)
    advance(sb, 299)
    assert oss_post(http, policy, IMAGE_PNG, "a.png").status_code == 200
    advance(sb, 2)
    resp = oss_post(http, policy, IMAGE_PNG, "b.png")
    assert resp.status_code == 403 and resp.headers["Content-Type"] == "application/xml"
    assert re.search(r"<Code>AccessDenied</Code>\s*<Message>Invalid according to Policy: Policy expired.</Message>",
                     resp.text)
    assert re.search(r"<RequestId>([0-9A-F]{24})</RequestId>", resp.text).group(1) == resp.headers["x-oss-request-id"]


def multipart(fields: list[tuple[str, bytes, str | None]]) -> tuple[bytes, str]:
    boundary = "sandboxboundary1234"
    out = b""
    for name, value, filename in fields:
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
        out += f"--{boundary}\r\nContent-Disposition: {disposition}\r\n\r\n".encode() + value + b"\r\n"
    return out + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


@pytest.mark.parametrize("change, status, code", [
    ({"Signature": "AAAA"}, 403, "SignatureDoesNotMatch"),
    ({"policy": base64.b64encode(b'{"expiration":"2099-01-01T00:00:00.000Z"}').decode()}, 403,
     "SignatureDoesNotMatch"),
    ({"OSSAccessKeyId": "LTAInobody"}, 403, "InvalidAccessKeyId"),
    ({"key": "elsewhere/in.png"}, 403, "AccessDenied"),
    ({"x-oss-object-acl": "public-read"}, 403, "AccessDenied"),
    ({"policy": None}, 400, "InvalidArgument"),
    ({"key": None}, 400, "InvalidArgument"),
])
def test_upload_form_checks(sb, http, change, status, code):
    policy = policy_data(http, sb)
    resp = oss_post(http, policy, IMAGE_PNG, **change)
    assert resp.status_code == status and f"<Code>{code}</Code>" in resp.text, resp.text
    assert sb.requests("dashscope", "upload")[0].detail["oss_error"] == code


def test_upload_file_must_be_last_and_single(sb, http):
    policy = policy_data(http, sb)
    fields = [(k, v.encode(), None) for k, v in upload_form(policy).items()]
    for parts in ([("file", IMAGE_PNG, "in.png")] + fields, fields + [("file", b"1", "a"), ("file", b"2", "b")],
                  fields):
        body, content_type = multipart(parts)
        resp = http.post(policy["upload_host"], data=body, headers={"Content-Type": content_type}, timeout=10)
        assert resp.status_code == 400 and "<Code>MalformedPOSTRequest</Code>" in resp.text
    resp = http.post(policy["upload_host"], data=b"x", headers={"Content-Type": "text/plain"}, timeout=10)
    assert resp.status_code == 400 and "MalformedPOSTRequest" in resp.text
    body, content_type = multipart(fields + [("file", IMAGE_PNG, "in.png")])
    assert http.post(policy["upload_host"], data=body, headers={"Content-Type": content_type},
                     timeout=10).status_code == 200


def test_upload_size_overwrite_and_success_status(sb, http):
    sb.dashscope_upload_max_mb = 1
    policy = policy_data(http, sb)
    resp = oss_post(http, policy, bytes(1024 * 1024 + 1), "big.bin")
    assert resp.status_code == 400 and "<Code>EntityTooLarge</Code>" in resp.text
    assert oss_post(http, policy, IMAGE_PNG, "a.png").status_code == 200
    resp = oss_post(http, policy, IMAGE_PNG, "a.png")
    assert resp.status_code == 409 and "<Code>FileAlreadyExists</Code>" in resp.text
    resp = oss_post(http, policy, IMAGE_PNG, "b.png", success_action_status="201")
    assert resp.status_code == 201 and "<Key>" in resp.text and resp.headers["ETag"]
    resp = oss_post(http, policy, IMAGE_PNG, "c.png", success_action_status=None)
    assert (resp.status_code, resp.content) == (204, b"")
    assert sb.billable_count() == 0


def test_get_policy_refusals(sb, http):
    assert_error(get_policy(http, sb, model=""), 400, "BadRequest.EmptyModel")
    assert_error(http.get(f"{sb.url}/api/v1/uploads?model={MODEL}", headers=auth(sb), timeout=10), 400,
                 "InvalidParameter", contains="getPolicy")
    sb.dashscope_policy_qps = 1
    assert get_policy(http, sb).status_code == 200
    assert_error(get_policy(http, sb), 429, "Throttling.RateQuota")
    assert get_policy(http, sb, model="qwen-vl-plus").status_code == 200  # per account and model


# ---- fault injection ------------------------------------------------------------------------------

@pytest.mark.parametrize("params, status, code, message", [
    ({}, 500, "InternalError", "An internal error has occured, please try again later or contact service support."),
    ({"code": "Arrearage"}, 400, "Arrearage", "Access denied, please make sure your account is in good standing."),
    ({"code": "ModelUnavailable", "retry_after": 3}, 503, "ModelUnavailable", None),
    ({"code": "Custom.Thing", "http_status": 418, "message": "teapot"}, 418, "Custom.Thing", "teapot"),
])
def test_error_fault(sb, http, params, status, code, message):
    url = upload(http, sb)
    sb.inject("dashscope", "error", **params)
    resp = create(http, sb, url)
    assert_error(resp, status, code, message)
    if "retry_after" in params:
        assert resp.headers["Retry-After"] == "3"
    assert sb.billable_count() == 0 and create_entry(sb).fault == "error"
    created_id(create(http, sb, url))


@pytest.mark.parametrize("code, message", [
    ("Throttling.RateQuota", "Requests rate limit exceeded, please try again later."),
    ("Throttling.AllocationQuota", "Free allocated quota exceeded."),
])
def test_throttle_fault(sb, http, code, message):
    url = upload(http, sb)
    sb.inject("dashscope", "throttle", times=2, code=code, retry_after="0.5")
    for _ in range(2):
        resp = create(http, sb, url)
        assert_error(resp, 429, code, message)
        assert resp.headers["Retry-After"] == "0.5"
    created_id(create(http, sb, url))  # throttled calls do not count against the QPS window
    created_id(create(http, sb, url))
    assert sb.billable_count() == 2


def test_generic_faults_apply_to_the_create_call_only(sb, http):
    task_id = created_id(create(http, sb, upload(http, sb)))
    sb.inject("dashscope", "http_5xx_plain")
    policy = policy_data(http, sb)                       # getPolicy, upload, poll, cancel: untouched
    assert oss_post(http, policy, IMAGE_PNG).status_code == 200
    assert poll(http, sb, task_id)["output"]["task_status"] == "PENDING"
    assert cancel(http, sb, task_id).status_code == 200
    resp = create(http, sb, f"oss://{policy['upload_dir']}/in.png")
    assert resp.status_code == 503 and "nginx" in resp.text
    assert create_entry(sb, 1).fault == "http_5xx_plain" and sb.billable_count() == 1


def test_drop_before_creates_nothing(sb, http):
    url = upload(http, sb)
    sb.inject("dashscope", "drop_before")
    with pytest.raises(requests.exceptions.ConnectionError):
        create(http, sb, url)
    entry = create_entry(sb)
    assert (entry.fault, entry.processed, entry.billable) == ("drop_before", False, False)
    assert sb.dashscope_charged_images() == 0


def test_drop_after_creates_a_task_whose_answer_is_lost(sb, http):
    url = upload(http, sb)
    sb.inject("dashscope", "drop_after")
    with pytest.raises(requests.exceptions.ConnectionError):
        create(http, sb, url)
    entry = create_entry(sb)
    assert (entry.fault, entry.status, entry.billable) == ("drop_after", None, True)
    finish(sb)
    succeeded(poll(http, sb, entry.detail["task_id"]))  # it ran, and would be charged
    assert sb.dashscope_charged_images() == 1


def test_slow_and_malformed_faults(sb, http):
    url = upload(http, sb)
    sb.inject("dashscope", "slow", seconds=0.3)
    started = time.perf_counter()
    created_id(create(http, sb, url))
    assert time.perf_counter() - started >= 0.3
    sb.inject("dashscope", "malformed")
    resp = create(http, sb, url)
    assert resp.status_code == 200 and resp.content.startswith(b'{"output":')
    with pytest.raises(ValueError):
        json.loads(resp.content)
    assert sb.billable_count() == 2 and create_entry(sb, 1).detail["task_id"]


def test_task_failed_fault(sb, http):
    sb.inject("dashscope", "task_failed", code="InvalidParameter.ImageContent")
    _, body = run(http, sb)
    failed(body, "InvalidParameter.ImageContent", "The image content does not comply with green network verification")
    sb.inject("dashscope", "task_failed", message="algo broke")
    _, body = run(http, sb)
    failed(body, "InternalError.Algo", "algo broke")
    assert (sb.billable_count(), sb.dashscope_charged_images()) == (2, 0)


@pytest.mark.parametrize("state, cancel_status", [("RUNNING", 400), ("PENDING", 200)])
def test_stuck_fault(sb, http, state, cancel_status):
    sb.inject("dashscope", "stuck", state=state)
    task_id, body = run(http, sb)
    assert body["output"]["task_status"] == state
    advance(sb, 3600)
    assert poll(http, sb, task_id)["output"]["task_status"] == state
    assert cancel(http, sb, task_id).status_code == cancel_status
    assert (sb.billable_count(), sb.dashscope_charged_images()) == (1, 0)


def test_stuck_tasks_hold_their_concurrency_slot(sb, http):
    sb.dashscope_qps, sb.dashscope_max_concurrent = 0, 1
    sb.inject("dashscope", "stuck")
    url = upload(http, sb)
    created_id(create(http, sb, url))
    finish(sb)
    assert_error(create(http, sb, url), 429, "Throttling.RateQuota")


def test_unknown_fault(sb, http):
    sb.inject("dashscope", "unknown")
    task_id = created_id(create(http, sb, upload(http, sb)))
    assert poll(http, sb, task_id)["output"] == {"task_id": task_id, "task_status": "UNKNOWN"}
    assert_error(cancel(http, sb, task_id), 400, "UnsupportedOperation")
    assert (sb.billable_count(), sb.dashscope_charged_images()) == (1, 0)


@pytest.mark.parametrize("params, status, code", [
    ({}, 500, "InternalError"),
    ({"status": 429}, 429, "Throttling.RateQuota"),
    ({"status": 503, "retry_after": 1}, 503, "ModelUnavailable"),
    ({"status": 504, "code": "RequestTimeOut", "message": "slow"}, 504, "RequestTimeOut"),
])
def test_poll_error_fault(sb, http, params, status, code):
    sb.inject("dashscope", "poll_error", **params)
    task_id = created_id(create(http, sb, upload(http, sb)))  # the create call does not take it
    resp = http.get(f"{sb.url}/api/v1/tasks/{task_id}", headers=auth(sb), timeout=10)
    assert_error(resp, status, code, params.get("message"))
    assert poll(http, sb, task_id)["output"]["task_status"] == "PENDING"
    assert sb.billable_count() == 1 and sb.requests("dashscope", "poll")[0].fault == "poll_error"


def test_policy_error_and_upload_denied_faults(sb, http):
    sb.inject("dashscope", "policy_error")
    assert_error(get_policy(http, sb), 429, "Throttling.RateQuota")
    sb.inject("dashscope", "policy_error", code="InternalError")
    assert_error(get_policy(http, sb), 500, "InternalError")
    policy = policy_data(http, sb)
    sb.inject("dashscope", "upload_denied")
    resp = oss_post(http, policy, IMAGE_PNG)
    assert resp.status_code == 403 and "Policy expired." in resp.text and "<Code>AccessDenied</Code>" in resp.text
    sb.inject("dashscope", "upload_denied", status=503, code="ServiceUnavailable", message="busy")
    resp = oss_post(http, policy, IMAGE_PNG)
    assert resp.status_code == 503 and "<Message>busy</Message>" in resp.text
    assert oss_post(http, policy, IMAGE_PNG).status_code == 200
    assert sb.billable_count() == 0


def test_url_404_and_oversized_url_faults(sb, http):
    sb.inject("dashscope", "url_404")
    _, body = run(http, sb)
    assert http.get(succeeded(body), timeout=10).status_code == 404
    size = 3 * 1024 * 1024 + 7
    sb.inject("dashscope", "oversized_url", size=size)
    _, body = run(http, sb)
    url = succeeded(body)
    assert "Expires=" in url
    with http.get(url, stream=True, timeout=10) as got:
        assert got.status_code == 200 and int(got.headers["Content-Length"]) == size
        assert sum(len(chunk) for chunk in got.iter_content(256 * 1024)) == size
    assert (sb.billable_count(), sb.dashscope_charged_images()) == (2, 2)


def test_faults_apply_in_order_and_exact_billing(sb, http):
    sb.dashscope_qps = sb.dashscope_max_concurrent = 0
    url = upload(http, sb)
    outcomes = []
    for fault in [None, ("drop_before", {}), ("throttle", {}), ("drop_after", {}), ("http_5xx_plain", {}),
                  ("error", {}), ("task_failed", {}), ("stuck", {}), ("unknown", {}), ("malformed", {}),
                  ("url_404", {}), ("throttle", {"code": "Throttling.AllocationQuota"})]:
        if fault:
            sb.inject("dashscope", fault[0], **fault[1])
        try:
            outcomes.append(create(http, sb, url).status_code)
        except requests.exceptions.ConnectionError:
            outcomes.append("dropped")
    create(http, sb, url, angle=-5)  # invalid: no task
    assert outcomes == [200, "dropped", 429, "dropped", 503, 500, 200, 200, 200, 200, 200, 429]
    # tasks: the plain one, drop_after, task_failed, stuck, unknown, malformed, url_404
    assert (sb.request_count("dashscope", "create"), sb.billable_count("dashscope")) == (13, 7)
    finish(sb)
    # charged: the plain one, drop_after, malformed, url_404 (SUCCEEDED); not task_failed/stuck/unknown
    assert sb.dashscope_charged_images() == 4
    statuses = [e.detail.get("task_status") for e in sb.requests("dashscope", "create") if e.billable]
    assert statuses == ["SUCCEEDED", "SUCCEEDED", "FAILED", None, None, "SUCCEEDED", "SUCCEEDED"]


@pytest.mark.parametrize("call, error", [
    (lambda sb: sb.inject("dashscope", "nope"), ValueError),
    (lambda sb: sb.inject("dashscope", "throttle", code="Throttling"), ValueError),
    (lambda sb: sb.inject("dashscope", "error", code="Made.Up"), ValueError),
    (lambda sb: sb.inject("dashscope", "error", code=500), TypeError),
    (lambda sb: sb.inject("dashscope", "stuck", state="SUCCEEDED"), ValueError),
    (lambda sb: sb.inject("dashscope", "oversized_url"), TypeError),
    (lambda sb: sb.inject("dashscope", "poll_error", status=999), ValueError),
    (lambda sb: sb.inject("dashscope", "poll_error", status=418), ValueError),
    (lambda sb: sb.inject("dashscope", "task_failed", seconds=1), TypeError),
])
def test_inject_refuses_mistakes(sb, call, error):
    with pytest.raises(error):
        call(sb)
    assert sb.pending_faults() == []


# ---- misc -----------------------------------------------------------------------------------------

def test_settings_describe_and_reset(sb, http):
    sandbox = Sandbox(dashscope_pending_s=0.5, dashscope_max_concurrent=1, dashscope_output_format="jpeg")
    assert (sandbox.dashscope_pending_s, sandbox.dashscope_max_concurrent) == (0.5, 1)
    with pytest.raises(TypeError):
        Sandbox(dashscope_pending=1)
    assert any(f"DASHSCOPE_HTTP_BASE_URL={sb.url}/api/v1" in line and sb.dashscope_api_key in line
               for line in sb.describe())
    creds = sb.dashscope_credentials()
    assert (creds.source, creds.base_url, creds.api_key) == ("sandbox", f"{sb.url}/api/v1", sb.dashscope_api_key)
    task_id = created_id(create(http, sb, upload(http, sb)))
    sb.reset()
    assert sb.requests() == [] and sb.dashscope_task(task_id) is None
    assert poll(http, sb, task_id)["output"]["task_status"] == "UNKNOWN"


def test_concurrent_polls_do_the_work_once(sb, http):
    task_id = created_id(create(http, sb, upload(http, sb), x_scale=2.0))
    finish(sb)
    urls = []

    def one():
        with requests.Session() as session:
            session.trust_env = False
            urls.append(succeeded(poll(session, sb, task_id)))

    threads = [threading.Thread(target=one) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert len(urls) == 4 and len(set(urls)) == 1
    assert sb.dashscope_task(task_id)["outcome"]["output_size"] == (1024, 512)


# ---- the official SDK as a client -----------------------------------------------------------------

@pytest.fixture
def sdk(sb, monkeypatch):
    dashscope = pytest.importorskip("dashscope")
    # The SDK reads dashscope.base_http_api_url / dashscope.api_key at call time (common/env.py,
    # common/api_key.py). Its sessions keep trust_env: exempt loopback from any configured proxy.
    monkeypatch.setattr(dashscope, "base_http_api_url", f"{sb.url}/api/v1")
    monkeypatch.setattr(dashscope, "api_key", sb.dashscope_api_key)
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.setenv(name, "127.0.0.1,localhost")
    yield dashscope
    dashscope.close_shared_sync_session()  # its pooled connections point at this sandbox


def sdk_api():
    from dashscope.client.base_api import BaseAsyncApi
    return BaseAsyncApi


def test_official_sdk_upload_and_async_call(sb, sdk, tmp_path):
    from dashscope.utils.oss_utils import check_and_upload_local
    path = tmp_path / "cat.png"
    path.write_bytes(IMAGE_PNG)
    uploaded, url, certificate = check_and_upload_local(MODEL, f"file://{path}", sb.dashscope_api_key)
    assert uploaded and url.startswith("oss://dashscope-instant/") and url.endswith("/cat.png")
    assert certificate["upload_host"] == f"{sb.url}/oss"
    api = sdk_api()
    task = api.async_call(model=MODEL, input={"image_url": url}, task_group="aigc", task="image2image",
                          function="out-painting", headers={"X-DashScope-OssResourceResolve": "enable"},
                          x_scale=2.0, add_watermark=False)
    assert task.status_code == 200 and task.output["task_status"] == "PENDING"
    assert api.fetch(task).output["task_status"] == "PENDING"
    finish(sb)
    done = api.wait(task)
    assert done.status_code == 200 and done.output["task_status"] == "SUCCEEDED"
    assert done.usage == {"image_count": 1}
    image = decode(requests.get(done.output["output_image_url"], timeout=10).content)
    assert image.shape == (512, 1024, 3) and np.array_equal(image[:, 256:768], IMAGE)
    entry = create_entry(sb)
    assert entry.detail["resolve_header"] is True and entry.detail["parameters"] == {"x_scale": 2.0,
                                                                                     "add_watermark": False}
    upload_entry = sb.requests("dashscope", "upload")[0]
    assert upload_entry.status == 200 and upload_entry.detail["model"] == MODEL


def test_official_sdk_call_waits_until_done(sdk, tmp_path, http):
    with Sandbox(dashscope_pending_s=0, dashscope_running_s=0) as sb:
        sdk.base_http_api_url = f"{sb.url}/api/v1"
        sdk.api_key = sb.dashscope_api_key
        url = upload(http, sb)
        done = sdk_api().call(model=MODEL, input={"image_url": url}, task_group="aigc", task="image2image",
                              function="out-painting", headers={"X-DashScope-OssResourceResolve": "enable"},
                              output_ratio="16:9")
        assert done.output["task_status"] == "SUCCEEDED"
        image = decode(requests.get(done.output["output_image_url"], timeout=10).content)
        assert image.shape == (512, 910, 3)
        assert sb.errors == []
    sdk.close_shared_sync_session()


def test_official_sdk_errors_cancel_and_unknown(sb, sdk, http):
    api = sdk_api()
    url = upload(http, sb)
    refused = api.async_call(model=MODEL, input={"image_url": url}, task_group="aigc", task="image2image",
                             function="out-painting", api_key="sk-wrong")
    assert (refused.status_code, refused.code, refused.message) == (401, "InvalidApiKey", "Invalid API-key provided.")
    no_header = api.async_call(model=MODEL, input={"image_url": url}, task_group="aigc", task="image2image",
                               function="out-painting")
    assert (no_header.status_code, no_header.code) == (400, "InvalidParameter.DataInspection")
    task = api.async_call(model=MODEL, input={"image_url": url}, task_group="aigc", task="image2image",
                          function="out-painting", headers={"X-DashScope-OssResourceResolve": "enable"})
    assert api.cancel(task).status_code == 200
    assert api.fetch(task).output["task_status"] == "CANCELED"
    again = api.cancel(task)
    assert (again.status_code, again.code) == (400, "UnsupportedOperation")
    assert api.fetch(str(uuid.uuid4())).output["task_status"] == "UNKNOWN"
    assert sb.billable_count() == 1


def test_official_sdk_resends_a_create_whose_answer_was_lost(sb, sdk, http):
    # dashscope 2.x wraps the create POST in _send_with_retry (one resend on ConnectionError, meant
    # for stale pooled connections). When the answer was lost after the task was accepted, that
    # resend creates a second, separately billed task: the hazard our own client must avoid.
    url = upload(http, sb)
    sb.inject("dashscope", "drop_after")
    task = sdk_api().async_call(model=MODEL, input={"image_url": url}, task_group="aigc", task="image2image",
                                function="out-painting", headers={"X-DashScope-OssResourceResolve": "enable"})
    assert task.status_code == 200
    creates = sb.requests("dashscope", "create")
    assert [e.fault for e in creates] == ["drop_after", None] and sb.billable_count() == 2
    assert creates[0].detail["task_id"] != task.output["task_id"]


def test_durations_may_be_given_in_seconds(sb, http):
    sb.dashscope_task_ttl = 60
    sb.dashscope_upload_ttl = 3600
    task_id, body = run(http, sb)
    succeeded(body)
    advance(sb, 60)
    assert poll(http, sb, task_id)["output"]["task_status"] == "UNKNOWN"
