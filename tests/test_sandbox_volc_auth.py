"""The sandbox's Volcengine emulator: who gets in. Signature V4 (signed with the pack's own
volc_signer, proven equal to the official SDK signer in test_volc_signer.py), the gateway's
refusals, the bearer gateway form, and the official SDK as a client.
"""

import base64
import json
import re
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest
from volc_sandbox_client import (  # noqa: F401 (fixtures)
    BUSINESS_KEYS,
    CV_QUERY,
    IMAGE,
    assert_business_error,
    assert_gateway_error,
    assert_success,
    bearer_post,
    decode,
    form,
    result_png,
    signed_post,
    vsig,
)

# ---- signature / gateway --------------------------------------------------------------------------

def test_bad_signature_is_a_gateway_error(sb, http):
    resp = signed_post(http, sb, form(), sk="not-the-secret")
    meta = assert_gateway_error(resp, "SignatureDoesNotMatch", 100010, 401)
    assert meta["Error"]["Message"].startswith("The request signature we calculated does not match")
    assert b'": ' not in resp.content


def test_unknown_access_key(sb, http):
    assert_gateway_error(signed_post(http, sb, form(), ak="AKLTnobody"), "InvalidAccessKey", 100009, 401)


def test_added_key_pair_is_accepted(sb, http):
    sb.add_volc_key("AKLTsecond", "second-secret")
    assert_success(signed_post(http, sb, form(), ak="AKLTsecond", sk="second-secret"))
    assert sb.requests("volc")[0].detail["access_key"] == "AKLTsecond"


def test_server_clock_offset_expires_signatures(sb, http):
    sb.clock_offset = timedelta(minutes=20)  # beyond the 15-minute tolerance
    assert_gateway_error(signed_post(http, sb, form()), "InvalidTimestamp", 100006, 400)
    sb.clock_offset = timedelta(minutes=-20)
    assert_gateway_error(signed_post(http, sb, form()), "InvalidTimestamp", 100006, 400)
    sb.clock_offset = timedelta(minutes=5)  # within tolerance
    assert_success(signed_post(http, sb, form()))
    assert sb.billable_count() == 1


def test_client_clock_skew_expires_signatures(sb, http):
    skewed = datetime.now(timezone.utc) - timedelta(hours=1)
    assert_gateway_error(signed_post(http, sb, form(), now=skewed), "InvalidTimestamp", 100006, 400)
    sb.clock_offset = timedelta(hours=-1)  # the sandbox shares the client's wrong clock: accepted
    assert_success(signed_post(http, sb, form(), now=skewed))


def test_wrong_service_in_scope(sb, http):
    assert_gateway_error(signed_post(http, sb, form(), service="iam"), "ServiceNotFound", 100007, 404)


def test_missing_authorization(sb, http):
    resp = http.post(f"{sb.url}/?Action=CVProcess&Version=2022-08-31", json=form(), timeout=10)
    assert_gateway_error(resp, "MissingAuthenticationToken", 100003, 401)


@pytest.mark.parametrize("query", [{"Action": "CVProcessX", "Version": "2022-08-31"},
                                   {"Action": "CVProcess", "Version": "2020-08-26"}])
def test_unknown_action_or_version(sb, http, query):
    resp = signed_post(http, sb, form(), query=query)
    assert_gateway_error(resp, "InvalidActionOrVersion", 100008, 404, query["Action"], query["Version"])
    assert sb.requests("volc")[0].action == query["Action"]


def test_missing_action_parameter(sb, http):
    resp = signed_post(http, sb, form(), query={"Version": "2022-08-31"})
    assert_gateway_error(resp, "MissingParameter", 100002, 400, action="")


def test_img2img_outpainting_action(sb, http):
    query = {"Action": "Img2ImgOutpainting", "Version": "2022-08-31"}
    assert_success(signed_post(http, sb, form(), query=query))
    assert sb.billable_count("volc", action="Img2ImgOutpainting") == 1


def test_gateway_refusals_are_never_billable(sb, http):
    signed_post(http, sb, form(), sk="wrong")
    signed_post(http, sb, form(), ak="AKLTnobody")
    signed_post(http, sb, form(), service="iam")
    signed_post(http, sb, form(), query={"Action": "Nope", "Version": "2022-08-31"})
    assert (sb.request_count("volc"), sb.billable_count("volc")) == (4, 0)
    assert all(not e.processed for e in sb.requests())


# ---- bearer gateway form --------------------------------------------------------------------------

def test_bearer_gateway_with_the_demo_key(sb, http):
    body = assert_success(bearer_post(http, sb, form(prompt="蓝色的海洋")))
    assert decode(result_png(body)).shape == (72, 96, 3)
    entry = sb.requests("volc")[0]
    assert (entry.path, entry.billable, entry.detail["auth"], entry.detail["prompt"]) == \
        ("/volcv/v1", True, "bearer", "蓝色的海洋")


def test_bearer_gateway_with_an_added_key(sb, http):
    sb.add_volc_api_key("sk-another")
    assert_success(bearer_post(http, sb, form(), key="sk-another"))


@pytest.mark.parametrize("key, message", [("sk-wrong", "无效的令牌"), (False, "未提供令牌")])
def test_bearer_gateway_refuses_bad_keys_in_its_own_shape(sb, http, key, message):
    resp = bearer_post(http, sb, form(), key=key)
    assert resp.status_code == 401
    body = resp.json()
    assert list(body) == ["error"] and list(body["error"]) == ["code", "message", "type"]
    assert body["error"]["type"] == "new_api_error"
    assert re.fullmatch(message + r" \(request id: \d{14}[0-9A-F]{20}\)", body["error"]["message"])
    assert sb.billable_count() == 0


def test_bearer_gateway_refuses_a_signed_request(sb, http):
    raw = json.dumps(form()).encode()
    headers = vsig.sign("POST", f"127.0.0.1:{sb.port}", "/volcv/v1", CV_QUERY, {"Content-Type": "application/json"},
                        raw, sb.volc_access_key, sb.volc_secret_key)
    resp = http.post(f"{sb.url}/volcv/v1?{vsig.canonical_query(CV_QUERY)}", data=raw, headers=headers, timeout=10)
    assert resp.status_code == 401 and resp.json()["error"]["type"] == "new_api_error"


def test_bearer_gateway_passes_volcengine_errors_through(sb, http):
    assert_business_error(bearer_post(http, sb, form(req_key="nope")), 50400, 401)
    resp = bearer_post(http, sb, form(), query={"Action": "Nope", "Version": "2022-08-31"})
    assert_gateway_error(resp, "InvalidActionOrVersion", 100008, 404, action="Nope")


# ---- the official SDK as a client -----------------------------------------------------------------

@pytest.fixture
def sdk(sb):
    visual = pytest.importorskip("volcengine.visual.VisualService")
    service = visual.VisualService()  # a process-wide singleton; __init__ resets its settings
    # The SDK builds scheme://host/path and signs Host: host, so host:port reaches the sandbox.
    service.set_host(f"127.0.0.1:{sb.port}")
    service.set_scheme("http")
    service.set_ak(sb.volc_access_key)
    service.set_sk(sb.volc_secret_key)
    service.session.trust_env = False
    return service


def test_official_sdk_cv_process(sb, sdk):
    result = sdk.cv_process(form())  # SDK body: json.dumps with ", " separators
    assert list(result) == BUSINESS_KEYS and result["code"] == 10000
    out = decode(base64.b64decode(result["data"]["binary_data_base64"][0]))
    assert out.shape == (72, 96, 3) and np.array_equal(out[24:72, 16:80], IMAGE)
    entry = sb.requests("volc")[0]
    assert (entry.action, entry.billable, entry.detail["auth"]) == ("CVProcess", True, "signature")


def test_official_sdk_img2img_outpainting(sb, sdk):
    assert sdk.img2img_outpainting(form(custom_prompt="蓝色的海洋"))["code"] == 10000
    entry = sb.requests("volc")[0]
    assert (entry.action, entry.detail["prompt"]) == ("Img2ImgOutpainting", "蓝色的海洋")


def test_official_sdk_wrong_secret_key(sb, sdk):
    sdk.set_sk("wrong-secret")
    with pytest.raises(Exception) as info:
        sdk.cv_process(form())
    assert '"Code":"SignatureDoesNotMatch"' in str(info.value) and '"CodeN":100010' in str(info.value)
    assert sb.billable_count() == 0


def test_official_sdk_business_error_text(sb, sdk):
    # The SDK raises Exception("b'{...}'") on non-200; callers string-match the code (spec C.3).
    with pytest.raises(Exception) as info:
        sdk.cv_process(form(req_key="i2i_wrong"))
    assert '"code":50400' in str(info.value) and "Access Denied: Internal Error" in str(info.value)
