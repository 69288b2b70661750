"""Fault injection on the sandbox's DashScope emulator: each kind at its stage, in order, and
exactly what is billable and what is charged.
"""

import json
import time

import pytest
import requests
from dashscope_sandbox_client import (  # noqa: F401 (SANDBOX_SETTINGS: read by conftest's sb)
    IMAGE_PNG,
    SANDBOX_SETTINGS,
    advance,
    assert_error,
    auth,
    cancel,
    create,
    create_entry,
    created_id,
    failed,
    finish,
    get_policy,
    oss_post,
    policy_data,
    poll,
    run,
    succeeded,
    upload,
)

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
