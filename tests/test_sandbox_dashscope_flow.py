"""The sandbox's DashScope image-out-painting emulator: the whole flow (upload, create, poll,
download) and what a task makes (expansion modes, rotation, watermark, output size), over real
HTTP on 127.0.0.1. Most tests run the task clock by hand (long pending/running times, then
`advance`), so every state is observed deterministically; one test lets real time drive it.
Expected sizes are written out by hand (the rotation bounding box is geometry.rotated_size,
which is proven equal to Pillow's in test_geometry.py).
"""

import base64
import json
import re
import threading
import time
from datetime import timedelta

import numpy as np
import pytest
import requests
from dashscope_sandbox_client import (  # noqa: F401 (SANDBOX_SETTINGS: read by conftest's sb)
    BEIJING_TIME,
    IMAGE,
    IMAGE_PNG,
    PENDING_S,
    RUNNING_S,
    SANDBOX_SETTINGS,
    UUID,
    Sandbox,
    advance,
    assert_error,
    beijing_now,
    create,
    create_entry,
    created_id,
    decode,
    encode,
    failed,
    finish,
    geometry,
    get_policy,
    make_image,
    oss_post,
    parse_beijing,
    poll,
    result,
    run,
    succeeded,
    upload,
)
from PIL import Image

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
    ((512, 512), {"x_scale": 1.0, "y_scale": 1.0, "right_offset": 5}, "offsets", (517, 512), (0, 0)),
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


def test_durations_may_be_given_in_seconds(sb, http):
    sb.dashscope_task_ttl = 60
    sb.dashscope_upload_ttl = 3600
    task_id, body = run(http, sb)
    succeeded(body)
    advance(sb, 60)
    assert poll(http, sb, task_id)["output"]["task_status"] == "UNKNOWN"
