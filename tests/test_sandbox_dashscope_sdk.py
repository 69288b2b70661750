"""The official `dashscope` SDK as a client of the sandbox's DashScope emulator.
"""

import uuid

import numpy as np
import pytest
import requests
from dashscope_sandbox_client import (  # noqa: F401 (SANDBOX_SETTINGS: read by conftest's sb)
    IMAGE,
    IMAGE_PNG,
    MODEL,
    SANDBOX_SETTINGS,
    Sandbox,
    create_entry,
    decode,
    finish,
    upload,
)

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
                          function="out-painting", headers={"X-DashScope-OssResourceResolve": "enable"}, x_scale=2.0)
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
                                function="out-painting", headers={"X-DashScope-OssResourceResolve": "enable"},
                                x_scale=2.0)
    assert task.status_code == 200
    creates = sb.requests("dashscope", "create")
    assert [e.fault for e in creates] == ["drop_after", None] and sb.billable_count() == 2
    assert creates[0].detail["task_id"] != task.output["task_id"]
