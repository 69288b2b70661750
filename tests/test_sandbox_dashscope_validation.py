"""The sandbox's DashScope emulator refuses what the service refuses: headers, keys and regions,
invalid create bodies (on the create call or inside the task), and inputs the task cannot use.
"""

import json
import uuid

import pytest
from dashscope_sandbox_client import (  # noqa: F401 (SANDBOX_SETTINGS: read by conftest's sb)
    IMAGE,
    IMAGE_PNG,
    MODEL,
    SANDBOX_SETTINGS,
    SYNC_MESSAGE,
    URL_MESSAGE,
    advance,
    assert_error,
    auth,
    cancel,
    create,
    create_entry,
    created_id,
    ds_sandbox,
    encode,
    failed,
    finish,
    get_policy,
    make_image,
    poll,
    run,
    succeeded,
    upload,
)

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
    for parameters in ({"angle": 0, "x_scale": 1.5}, {"angle": 359}, {"angle": 30.0}, {"x_scale": 1, "y_scale": 3},
                       {"output_ratio": "", "top_offset": 1}, {"output_ratio": None, "x_scale": None, "angle": 1},
                       {"unknown": "ignored"}):
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
