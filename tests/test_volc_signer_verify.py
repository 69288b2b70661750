"""The sandbox's side of Volcengine signature V4: verify() accepts what sign() makes, in any header case,
and refuses every tampered, skewed, unsigned or malformed request with the gateway's code."""

import hashlib
import json

import pytest
from volc_signing import (
    CV_QUERY,
    EMPTY_SHA256,
    GATEWAY_MISMATCH,
    HOST,
    UTC,
    dt,
    reference_authorization,
    vs,
    x_date,
)

# ---- verify(): rejections --------------------------------------------------------------------------

NOW = dt.datetime(2025, 6, 15, 12, 34, 56, tzinfo=UTC)
SECRETS = {"AKLTgood": "goodSecret==", "AKTPsts": "stsSecret"}
BODY = json.dumps({"req_key": "i2i_outpainting", "prompt": "蓝色的海洋 🌊", "top": 0.1},
                  ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def signed_request(**changes):
    args = dict(method="POST", host=HOST, path="/", query=CV_QUERY, headers={"Content-Type": "application/json"},
                body=BODY, access_key="AKLTgood", secret_key="goodSecret==", now=NOW)
    args.update(changes)
    headers = vs.sign(**args)
    return dict(method="POST", path="/", raw_query=vs.canonical_query(args["query"]), headers=headers,
                body=args["body"], secret_for=SECRETS.get, now=NOW)


def rejected(request, code, code_n, status):
    with pytest.raises(vs.SignatureError) as caught:
        vs.verify(**request)
    error = caught.value
    assert (error.code, error.code_n, error.http_status) == (code, code_n, status)
    assert isinstance(error, Exception) and error.message and code in str(error)
    return error


def test_verify_accepts_a_signed_request_with_any_header_case():
    request = signed_request()
    assert vs.verify(**request) == "AKLTgood"
    request["headers"] = {k.upper(): v for k, v in request["headers"].items()}
    assert vs.verify(**request) == "AKLTgood"
    assert vs.verify(**signed_request(access_key="AKTPsts", secret_key="stsSecret", session_token="tok")) == "AKTPsts"


@pytest.mark.parametrize("position", [0, len(BODY) // 2, len(BODY) - 1])
def test_tampered_body_one_byte(position):
    request = signed_request()
    body = bytearray(request["body"])
    body[position] ^= 0x01
    request["body"] = bytes(body)
    error = rejected(request, "SignatureDoesNotMatch", 100010, 401)
    assert error.message.startswith(GATEWAY_MISMATCH)


def test_tampered_body_when_the_body_hash_header_is_not_signed():
    # official doc style: only host;x-date signed; the payload hash is still in the canonical request
    date = x_date(NOW)
    auth, _ = reference_authorization("POST", "/", vs.canonical_query(CV_QUERY), {"host": HOST, "x-date": date},
                                      BODY, "AKLTgood", "goodSecret==", date, "cn-north-1", "cv")
    request = dict(method="POST", path="/", raw_query=vs.canonical_query(CV_QUERY),
                   headers={"Host": HOST, "X-Date": date, "Authorization": auth}, body=BODY,
                   secret_for=SECRETS.get, now=NOW)
    assert vs.verify(**request) == "AKLTgood"
    request["body"] = BODY[:-1] + b" "
    error = rejected(request, "SignatureDoesNotMatch", 100010, 401)
    assert error.message == GATEWAY_MISMATCH


@pytest.mark.parametrize("raw_query", ["Action=CVProcess&Version=2022-08-30", "Action=CVProcess",
                                       "Action=CVProcess&Version=2022-08-31&Extra=1"])
def test_tampered_query(raw_query):
    request = signed_request()
    request["raw_query"] = raw_query
    assert rejected(request, "SignatureDoesNotMatch", 100010, 401).message == GATEWAY_MISMATCH


def test_tampered_method_path_and_signed_header():
    for key, value in (("method", "PUT"), ("path", "/other")):
        request = signed_request()
        request[key] = value
        rejected(request, "SignatureDoesNotMatch", 100010, 401)
    request = signed_request()
    request["headers"]["Content-Type"] = "text/plain"
    rejected(request, "SignatureDoesNotMatch", 100010, 401)


def test_wrong_secret():
    error = rejected(signed_request(secret_key="goodSecret=!"), "SignatureDoesNotMatch", 100010, 401)
    assert error.message == GATEWAY_MISMATCH


def test_unknown_access_key():
    rejected(signed_request(access_key="AKLTnobody"), "InvalidAccessKey", 100009, 401)


@pytest.mark.parametrize("value", [None, "", "   "])
def test_missing_authorization(value):
    request = signed_request()
    del request["headers"]["Authorization"]
    if value is not None:
        request["headers"]["authorization"] = value
    rejected(request, "MissingAuthenticationToken", 100003, 401)


def test_other_auth_scheme():
    request = signed_request()
    request["headers"]["Authorization"] = "Bearer sk-123"
    rejected(request, "MissingAuthenticationToken", 100003, 401)


@pytest.mark.parametrize("minutes", [16, -16])
def test_skewed_clock(minutes):
    request = signed_request(now=NOW + dt.timedelta(minutes=minutes))
    rejected(request, "InvalidTimestamp", 100006, 400)
    request["now"] = NOW + dt.timedelta(minutes=minutes)
    assert vs.verify(**request) == "AKLTgood"
    request["now"] = NOW + dt.timedelta(minutes=minutes) - dt.timedelta(minutes=14 if minutes > 0 else -14)
    assert vs.verify(**request) == "AKLTgood"  # 14 minutes: inside the default 15


@pytest.mark.parametrize("value", [None, "2025-06-15T12:34:56Z", "20250615T123456", "20251315T123456Z",
                                   "2025615T1234567Z"])
def test_missing_or_malformed_x_date(value):
    request = signed_request()
    del request["headers"]["X-Date"]
    if value is not None:
        request["headers"]["X-Date"] = value
    rejected(request, "InvalidTimestamp", 100006, 400)


def test_wrong_service_in_scope():
    rejected(signed_request(service="iam"), "ServiceNotFound", 100007, 404)


def test_wrong_region_or_malformed_scope():
    rejected(signed_request(region="cn-beijing"), "MissingRequestInfo", 100004, 400)
    good = signed_request()["headers"]["Authorization"]
    for bad in (good.replace("/request,", "/req,"), good.replace("Credential=AKLTgood/", "Credential="),
                good.replace("Credential=", "Cred="), good.replace("SignedHeaders=", "Headers="),
                good.replace("/20250615/", "/20250614/")):
        request = signed_request()
        request["headers"]["Authorization"] = bad
        rejected(request, "MissingRequestInfo", 100004, 400)


def test_missing_signature():
    request = signed_request()
    request["headers"]["Authorization"] = request["headers"]["Authorization"].split(", Signature=")[0]
    rejected(request, "MissingSignature", 100005, 401)


@pytest.mark.parametrize("signed_names,missing", [(("x-content-sha256", "x-date"), "host"),
                                                  (("host", "x-content-sha256"), "x-date")])
def test_host_and_x_date_must_be_signed(signed_names, missing):
    # validly signed (independent reference signer), but without host or x-date in SignedHeaders
    date = x_date(NOW)
    sent = {"host": HOST, "x-date": date, "x-content-sha256": hashlib.sha256(BODY).hexdigest()}
    auth, _ = reference_authorization("POST", "/", vs.canonical_query(CV_QUERY),
                                      {name: sent[name] for name in signed_names},
                                      BODY, "AKLTgood", "goodSecret==", date, "cn-north-1", "cv")
    request = dict(method="POST", path="/", raw_query=vs.canonical_query(CV_QUERY),
                   headers={**sent, "authorization": auth}, body=BODY, secret_for=SECRETS.get, now=NOW)
    error = rejected(request, "SignatureDoesNotMatch", 100010, 401)
    assert error.message.startswith(GATEWAY_MISMATCH) and missing in error.message


def test_signed_header_not_sent():
    request = signed_request(headers={"Content-Type": "application/json", "X-Trace": "1"})
    del request["headers"]["X-Trace"]
    assert "x-trace" in rejected(request, "SignatureDoesNotMatch", 100010, 401).message


def test_body_hash_header_must_match_body():
    # the client signed a wrong X-Content-Sha256 (its signature is otherwise valid)
    date = x_date(NOW)
    sent = {"host": HOST, "x-date": date, "x-content-sha256": EMPTY_SHA256}
    auth, _ = reference_authorization("POST", "/", vs.canonical_query(CV_QUERY), sent, BODY,
                                      "AKLTgood", "goodSecret==", date, "cn-north-1", "cv")
    request = dict(method="POST", path="/", raw_query=vs.canonical_query(CV_QUERY),
                   headers={**sent, "authorization": auth}, body=BODY, secret_for=SECRETS.get, now=NOW)
    assert "X-Content-Sha256" in rejected(request, "SignatureDoesNotMatch", 100010, 401).message


def test_non_ascii_signature_is_a_mismatch_not_a_crash():
    request = signed_request()
    request["headers"]["Authorization"] = request["headers"]["Authorization"][:-1] + "é"
    rejected(request, "SignatureDoesNotMatch", 100010, 401)
