"""Fault injection on the sandbox's Volcengine emulator: each kind at its stage, in order, and
exactly what is billable.
"""

import base64
import binascii
import json
import time

import pytest
import requests
from volc_sandbox_client import (  # noqa: F401 (fixtures)
    IMAGE_PNG,
    assert_business_error,
    assert_gateway_error,
    assert_success,
    form,
    signed_post,
)

# ---- fault injection ------------------------------------------------------------------------------

@pytest.mark.parametrize("code, status, message, billable", [
    (50411, 400, "Pre Img Risk Not Pass", False),
    (50412, 400, "Text Risk Not Pass", False),
    (50511, 400, "Post Img Risk Not Pass", True),
    (50519, 400, "Post Img Risk Not Pass: Copyright", True),
    (50500, 500, "Internal Error", False),
    (50501, 500, "Internal RPC Error", False),
])
def test_error_fault(sb, http, code, status, message, billable):
    sb.inject("volc", "error", code=code)
    body = assert_business_error(signed_post(http, sb, form()), code, status)
    assert body["message"] == message
    entry = sb.requests("volc")[0]
    assert (entry.fault, entry.billable) == ("error", billable)
    assert_success(signed_post(http, sb, form()))  # the fault was used once
    assert sb.billable_count() == 1 + billable


def test_error_fault_billable_override_and_custom_fields(sb, http):
    data = {"algorithm_base_resp": {"status_code": 100202, "status_message": "x"}}  # as in SDK issue #30
    sb.inject("volc", "error", code=50501, billable=True, message="Internal RPC Error: algo", data=data)
    body = assert_business_error(signed_post(http, sb, form()), 50501, 500, data=data)
    assert body["message"] == "Internal RPC Error: algo"
    assert sb.billable_count() == 1


def test_gateway_error_fault(sb, http):
    sb.inject("volc", "gateway_error")
    assert_gateway_error(signed_post(http, sb, form()), "AccessDenied", 100013, 403)
    sb.inject("volc", "gateway_error", code="FlowLimitExceeded", code_n=100018, http_status=429,
              message="Flow limit exceeded")
    meta = assert_gateway_error(signed_post(http, sb, form()), "FlowLimitExceeded", 100018, 429)
    assert meta["Error"]["Message"] == "Flow limit exceeded"
    assert sb.billable_count() == 0


@pytest.mark.parametrize("code, message", [
    (50429, "Request Has Reached API Limit, Please Try Later"),
    (50430, "Request Has Reached API Concurrent Limit, Please Try Later"),
])
def test_throttle_fault(sb, http, code, message):
    sb.inject("volc", "throttle", code=code, retry_after=2)
    resp = signed_post(http, sb, form())
    assert assert_business_error(resp, code, 429)["message"] == message
    assert resp.headers["Retry-After"] == "2"
    assert sb.billable_count() == 0


def test_throttle_without_retry_after(sb, http):
    sb.inject("volc", "throttle")
    resp = signed_post(http, sb, form())
    assert_business_error(resp, 50429, 429)
    assert "Retry-After" not in resp.headers


def test_fault_waits_for_a_request_that_reaches_its_stage(sb, http):
    sb.inject("volc", "throttle")
    assert_gateway_error(signed_post(http, sb, form(), sk="wrong"), "SignatureDoesNotMatch", 100010, 401)
    assert [f.kind for f in sb.pending_faults("volc")] == ["throttle"]
    assert_business_error(signed_post(http, sb, form()), 50429, 429)
    sb.inject("volc", "error", code=50511)  # post-processing: an invalid request does not take it
    assert_business_error(signed_post(http, sb, form(top=2)), 50200, 400)
    assert_business_error(signed_post(http, sb, form()), 50511, 400)
    assert sb.pending_faults() == []


def test_slow_fault_is_billable_even_when_the_client_gives_up(sb, http):
    sb.inject("volc", "slow", seconds=0.3)
    started = time.perf_counter()
    assert_success(signed_post(http, sb, form()))
    assert time.perf_counter() - started >= 0.3
    sb.inject("volc", "slow", seconds=0.4)
    with pytest.raises(requests.exceptions.ReadTimeout):
        signed_post(http, sb, form(), timeout=0.1)
    assert sb.billable_count() == 2  # the timed-out request was processed: never resend it


def test_drop_before_is_not_processed(sb, http):
    sb.inject("volc", "drop_before")
    with pytest.raises(requests.exceptions.ConnectionError):
        signed_post(http, sb, form())
    (entry,) = sb.requests("volc")
    assert (entry.fault, entry.status, entry.processed, entry.billable) == ("drop_before", None, False, False)
    assert_success(signed_post(http, sb, form()))
    assert sb.billable_count() == 1


def test_drop_before_on_a_kept_alive_connection(sb, http):
    assert_success(signed_post(http, sb, form()))  # the session now holds an open connection
    sb.inject("volc", "drop_before")
    with pytest.raises(requests.exceptions.ConnectionError):
        signed_post(http, sb, form())
    assert sb.billable_count() == 1 and sb.requests("volc")[1].fault == "drop_before"


def test_drop_after_is_processed_and_billable(sb, http):
    sb.inject("volc", "drop_after")
    with pytest.raises(requests.exceptions.ConnectionError):
        signed_post(http, sb, form())
    (entry,) = sb.requests("volc")
    assert (entry.fault, entry.status, entry.processed, entry.billable) == ("drop_after", None, True, True)


def test_malformed_fault(sb, http):
    sb.inject("volc", "malformed")
    resp = signed_post(http, sb, form())
    assert resp.status_code == 200
    with pytest.raises(ValueError):
        json.loads(resp.content)
    assert resp.content.startswith(b'{"code":10000')  # a success body cut short
    sb.inject("volc", "malformed", body="<html>oops</html>", content_type="text/html")
    resp = signed_post(http, sb, form())
    assert (resp.status_code, resp.text, resp.headers["Content-Type"]) == (200, "<html>oops</html>", "text/html")
    assert sb.billable_count() == 2


def test_bad_base64_fault(sb, http):
    sb.inject("volc", "bad_base64")
    body = assert_success(signed_post(http, sb, form(return_url=True)))
    (text,) = body["data"]["binary_data_base64"]
    assert body["data"]["image_urls"] is None
    with pytest.raises(binascii.Error):
        base64.b64decode(text, validate=True)
    assert sb.billable_count() == 1


def test_http_5xx_plain_fault(sb, http):
    sb.inject("volc", "http_5xx_plain")
    resp = signed_post(http, sb, form())
    assert resp.status_code == 503 and resp.headers["Content-Type"] == "text/html" and "nginx" in resp.text
    sb.inject("volc", "http_5xx_plain", status=502, body="Bad Gateway", content_type="text/plain",
              retry_after=5)
    resp = signed_post(http, sb, form())
    assert (resp.status_code, resp.text, resp.headers["Retry-After"]) == (502, "Bad Gateway", "5")
    assert sb.billable_count() == 0 and all(not e.processed for e in sb.requests())


def test_url_404_fault(sb, http):
    sb.inject("volc", "url_404")
    body = assert_success(signed_post(http, sb, form()))
    assert body["data"]["binary_data_base64"] is None
    (url,) = body["data"]["image_urls"]
    assert http.get(url, timeout=10).status_code == 404
    assert sb.billable_count() == 1


@pytest.mark.parametrize("declare_length", [True, False])
def test_oversized_url_fault(sb, http, declare_length):
    size = 3 * 1024 * 1024 + 5
    sb.inject("volc", "oversized_url", size=size, declare_length=declare_length)
    (url,) = assert_success(signed_post(http, sb, form()))["data"]["image_urls"]
    with http.get(url, stream=True, timeout=10) as got:
        assert got.status_code == 200
        assert got.headers.get("Content-Length") == (str(size) if declare_length else None)
        received = sum(len(chunk) for chunk in got.iter_content(256 * 1024))
    assert received == size
    assert sb.billable_count() == 1


def test_times_and_order(sb, http):
    sb.inject("volc", "throttle", times=2)
    sb.inject("volc", "error", code=50511)
    assert_business_error(signed_post(http, sb, form()), 50429, 429)
    assert [(f.kind, f.remaining) for f in sb.pending_faults()] == [("throttle", 1), ("error", 1)]
    assert_business_error(signed_post(http, sb, form()), 50429, 429)
    assert_business_error(signed_post(http, sb, form()), 50511, 400)
    assert_success(signed_post(http, sb, form()))
    assert [e.fault for e in sb.requests("volc")] == ["throttle", "throttle", "error", None]
    assert sb.billable_count() == 2


def test_one_fault_per_request(sb, http):
    sb.inject("volc", "error", code=50511)
    sb.inject("volc", "slow", seconds=0.2)
    started = time.perf_counter()
    assert_business_error(signed_post(http, sb, form()), 50511, 400)
    assert time.perf_counter() - started < 0.2
    assert [f.kind for f in sb.pending_faults()] == ["slow"]


def test_faults_are_per_vendor(sb, http):
    url = sb.publish(IMAGE_PNG)
    sb.inject("sandbox", "drop_before")
    assert_success(signed_post(http, sb, form()))  # volc requests do not take the sandbox's fault
    with pytest.raises(requests.exceptions.ConnectionError):
        http.get(url, timeout=10)
    assert http.get(url, timeout=10).content == IMAGE_PNG


def test_exactly_n_billable_in_a_mixed_run(sb, http):
    outcomes = []
    for fault in [None, ("drop_before", {}), ("throttle", {}), ("drop_after", {}), None,
                  ("http_5xx_plain", {}), ("error", {"code": 50519}), ("gateway_error", {}), ("malformed", {})]:
        if fault:
            sb.inject("volc", fault[0], **fault[1])
        try:
            outcomes.append(signed_post(http, sb, form()).status_code)
        except requests.exceptions.ConnectionError:
            outcomes.append("dropped")
    signed_post(http, sb, form(top=3))  # invalid
    assert outcomes == [200, "dropped", 429, "dropped", 200, 503, 400, 403, 200]
    # billable: 2 successes, drop_after, 50519 (output moderation), malformed
    assert (sb.request_count("volc"), sb.billable_count("volc")) == (10, 5)


@pytest.mark.parametrize("call, error", [
    (lambda sb: sb.inject("volc", "nope"), ValueError),
    (lambda sb: sb.inject("nobody", "error"), ValueError),
    (lambda sb: sb.inject("volc", "error", cod=50500), TypeError),
    (lambda sb: sb.inject("volc", "slow"), TypeError),
    (lambda sb: sb.inject("volc", "slow", seconds=-1), ValueError),
    (lambda sb: sb.inject("volc", "oversized_url"), TypeError),
    (lambda sb: sb.inject("volc", "throttle", code=50500), ValueError),
    (lambda sb: sb.inject("volc", "error", code=12345), ValueError),
    (lambda sb: sb.inject("volc", "gateway_error", code="Whatever"), ValueError),
    (lambda sb: sb.inject("volc", "error", times=0), ValueError),
])
def test_inject_refuses_mistakes(sb, call, error):
    with pytest.raises(error):
        call(sb)
    assert sb.pending_faults() == []


def test_clear_faults_and_reset(sb, http):
    sb.inject("volc", "throttle", times=3)
    sb.clear_faults("volc")
    assert_success(signed_post(http, sb, form(return_url=True)))
    sb.reset()
    assert sb.requests() == [] and sb.pending_faults() == [] and sb.billable_count() == 0
