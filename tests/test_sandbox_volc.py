"""The offline sandbox's Volcengine emulator, over real HTTP on 127.0.0.1.

Requests are signed with the pack's own volc_signer (proven equal to the official SDK signer in
test_volc_signer.py) and, in the SDK tests, by the official SDK itself. Expected geometry is
written out by hand here, not taken from the code under test.
"""

import base64
import binascii
import io
import json
import re
import threading
import time
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest
import requests
from PIL import Image

from pack import module

sandbox_pkg = module("nodes.sandbox")
standalone = module("nodes.sandbox.standalone")
volc_sandbox = module("nodes.sandbox.volc_emulator")
geometry = module("nodes.core.geometry")
vsig = module("nodes.core.volc_signer")

Sandbox = sandbox_pkg.Sandbox
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

@pytest.fixture
def sb():
    with Sandbox() as sandbox:
        yield sandbox
        assert sandbox.errors == [], "sandbox bugs:\n" + "\n".join(sandbox.errors)


@pytest.fixture
def http():
    with requests.Session() as session:
        session.trust_env = False  # never send loopback traffic through a configured proxy
        yield session


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


# ---- ratio mode -----------------------------------------------------------------------------------

def test_ratio_mode_geometry_and_original_pixels_kept(sb, http):
    body = assert_success(signed_post(http, sb, form()))
    out = decode(result_png(body))
    # 64x48, left/right 0.25 of the width (16 px each), top 0.5 of the height (24 px), bottom 0.
    assert out.shape == (72, 96, 3)
    assert np.array_equal(out[24:72, 16:80], IMAGE)
    assert out[:24].std() > 0 and not np.array_equal(out[:24, 16:80], out[24:48, 16:80])
    placement, size = geometry.volc_ratio_output(64, 48, 0.25, 0.5, 0.25, 0, 1920, 1920)
    assert (placement.x, placement.y, size) == (16, 24, (96, 72))
    assert (sb.request_count("volc"), sb.billable_count("volc")) == (1, 1)


def test_ratio_defaults_are_one_tenth_per_side(sb, http):
    body = assert_success(signed_post(http, sb, form(top=DROP, bottom=DROP, left=DROP, right=DROP)))
    out = decode(result_png(body))
    # 0.1 x 64 = 6.4 -> 6 px left and right; 0.1 x 48 = 4.8 -> 5 px top and bottom.
    assert out.shape == (48 + 10, 64 + 12, 3)
    assert np.array_equal(out[5:53, 6:70], IMAGE)


def test_zero_ratios_are_accepted_and_return_the_image(sb, http):
    body = assert_success(signed_post(http, sb, form(top=0, bottom=0, left=0, right=0)))
    assert np.array_equal(decode(result_png(body)), IMAGE)


@pytest.mark.parametrize("max_width, max_height, expected", [
    (48, 1920, (48, 36)),   # 96x72 canvas, width limits: x0.5
    (1920, 36, (48, 36)),   # height limits
    (60, 60, (60, 45)),     # 96x72 -> 60x45
    (96, 72, (96, 72)),     # exactly fits: untouched
    (4000, 4000, (96, 72)),  # never enlarged
])
def test_result_is_resized_to_fit_max_width_and_height(sb, http, max_width, max_height, expected):
    body = assert_success(signed_post(http, sb, form(max_width=max_width, max_height=max_height)))
    out = decode(result_png(body))
    assert (out.shape[1], out.shape[0]) == expected
    assert sb.requests("volc")[0].detail["max_size"] == (max_width, max_height)


def test_jpeg_output_setting(sb, http):
    sb.volc_output_format = "jpeg"
    data = result_png(assert_success(signed_post(http, sb, form())))
    assert data[:3] == b"\xff\xd8\xff" and decode(data).shape == (72, 96, 3)


# ---- canvas mode ----------------------------------------------------------------------------------

def canvas_and_mask():
    """A 64x48 canvas whose left 16 columns are grey padding, and a mask white on them."""
    canvas = IMAGE.copy()
    canvas[:, :16] = 128
    mask = np.zeros((48, 64), dtype=np.uint8)
    mask[:, :16] = 255
    return canvas, mask


def canvas_form(canvas, mask, **changes):
    return form(binary_data_base64=[b64(png_bytes(canvas)), b64(png_bytes(mask))],
                top=DROP, bottom=DROP, left=DROP, right=DROP, **changes)


def test_canvas_mode_white_means_generate_by_default(sb, http):
    canvas, mask = canvas_and_mask()
    out = decode(result_png(assert_success(signed_post(http, sb, canvas_form(canvas, mask)))))
    assert out.shape == canvas.shape
    assert np.array_equal(out[:, 16:], canvas[:, 16:])        # black in the mask: kept exactly
    assert not np.array_equal(out[:, :16], canvas[:, :16])    # white: generated
    assert sb.requests("volc")[0].detail["mode"] == "canvas"


def test_canvas_mode_white_means_keep_setting(sb, http):
    canvas, mask = canvas_and_mask()
    default = result_png(assert_success(signed_post(http, sb, canvas_form(canvas, mask))))
    sb.volc_mask_white_means = "keep"
    out = decode(result_png(assert_success(signed_post(http, sb, canvas_form(canvas, mask)))))
    assert np.array_equal(out[:, :16], canvas[:, :16])        # white now means keep
    assert not np.array_equal(out[:, 16:], canvas[:, 16:])
    # The inverted mask under "keep" asks for exactly what the mask asked under "generate".
    inverted = result_png(assert_success(signed_post(http, sb, canvas_form(canvas, 255 - mask))))
    assert inverted == default


def test_canvas_mode_resizes_to_max_size(sb, http):
    canvas, mask = canvas_and_mask()
    out = decode(result_png(assert_success(signed_post(http, sb, canvas_form(canvas, mask, max_width=32)))))
    assert out.shape == (24, 32, 3)


def test_canvas_and_mask_must_be_the_same_size(sb, http):
    canvas, _ = canvas_and_mask()
    small_mask = np.zeros((24, 32), dtype=np.uint8)
    resp = signed_post(http, sb, canvas_form(canvas, small_mask))
    assert_business_error(resp, 50200, 400, in_message="same size")
    assert sb.billable_count() == 0


# ---- seeds ----------------------------------------------------------------------------------------

def test_same_seed_same_result_different_seed_different_result(sb, http):
    first = result_png(assert_success(signed_post(http, sb, form(seed=11))))
    again = result_png(assert_success(signed_post(http, sb, form(seed=11))))
    other = result_png(assert_success(signed_post(http, sb, form(seed=12))))
    assert first == again
    assert first != other
    assert np.array_equal(decode(other)[24:72, 16:80], IMAGE)  # only the new area depends on the seed


def test_seed_minus_one_is_random(sb, http):
    a = result_png(assert_success(signed_post(http, sb, form(seed=-1))))
    b = result_png(assert_success(signed_post(http, sb, form(seed=-1))))
    assert a != b
    seeds = [e.detail["seed"] for e in sb.requests("volc")]
    assert all(0 <= s < 2**31 for s in seeds) and seeds[0] != seeds[1]


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


# ---- body validation ------------------------------------------------------------------------------

NOT_AN_IMAGE = b64(b"hello, not an image")
INVALID = [
    # (name, body, code, words in the message)
    ("bad json", b"{not json", 50204, "JSON"),
    ("json array", b"[1, 2]", 50204, "object"),
    ("nan", b'{"req_key": "i2i_outpainting", "top": NaN}', 50204, "JSON"),
    ("no images", form(binary_data_base64=DROP), 50206, "binary_data_base64"),
    ("empty image list", form(binary_data_base64=[]), 50206, "image_urls"),
    ("both image fields", form(image_urls=["http://127.0.0.1:1/a.png"]), 50200, "exactly one"),
    ("three images", form(binary_data_base64=[IMAGE_B64] * 3), 50200, "got 3"),
    ("image list not a list", form(binary_data_base64=IMAGE_B64), 50204, "array"),
    ("image not a string", form(binary_data_base64=[123]), 50204, "array of strings"),
    ("data uri prefix", form(binary_data_base64=["data:image/png;base64," + IMAGE_B64]), 50207, "data:"),
    ("invalid base64", form(binary_data_base64=["@@@@"]), 50207, "base64"),
    ("base64 with line breaks", form(binary_data_base64=[IMAGE_B64[:40] + "\n" + IMAGE_B64[40:]]), 50207,
     "base64"),
    ("empty base64", form(binary_data_base64=[""]), 50207, "empty"),
    ("not an image", form(binary_data_base64=[NOT_AN_IMAGE]), 50207, "binary_data_base64[0]"),
    ("top above 1", form(top=1.5), 50200, "top"),
    ("left negative", form(left=-0.1), 50200, "left"),
    ("right as a string", form(right="0.1"), 50204, "right"),
    ("bottom as a bool", form(bottom=True), 50204, "bottom"),
    ("scale too small", form(scale=0.5), 50200, "scale"),
    ("scale too large", form(scale=21), 50200, "scale"),
    ("strength too small", form(strength=0.05), 50200, "strength"),
    ("strength too large", form(strength=1.01), 50200, "strength"),
    ("steps zero", form(steps=0), 50200, "steps"),
    ("steps too many", form(steps=101), 50200, "steps"),
    ("steps fractional", form(steps=30.5), 50204, "steps"),
    ("seed as a string", form(seed="1"), 50204, "seed"),
    ("seed fractional", form(seed=1.5), 50204, "seed"),
    ("seed beyond int32", form(seed=2**31), 50200, "seed"),
    ("max_width zero", form(max_width=0), 50200, "max_width"),
    ("max_height negative", form(max_height=-5), 50200, "max_height"),
    ("max_width fractional", form(max_width=100.5), 50204, "max_width"),
    ("prompt too long", form(prompt="x" * 801), 50200, "prompt"),
    ("custom_prompt too long", form(custom_prompt="字" * 801), 50200, "custom_prompt"),
    ("prompt not a string", form(prompt=5), 50204, "prompt"),
    ("return_url as a string", form(return_url="true"), 50204, "return_url"),
    ("logo_info not an object", form(logo_info=[]), 50204, "logo_info"),
    ("logo position", form(logo_info={"add_logo": True, "position": 4}), 50200, "logo_info.position"),
    ("logo language", form(logo_info={"language": 2}), 50200, "logo_info.language"),
    ("logo opacity", form(logo_info={"opacity": 1.5}), 50200, "logo_info.opacity"),
    ("logo add_logo type", form(logo_info={"add_logo": "yes"}), 50204, "logo_info.add_logo"),
    ("logo text type", form(logo_info={"logo_text_content": 3}), 50204, "logo_text_content"),
    ("internet url", form(binary_data_base64=DROP, image_urls=["http://example.com/a.png"]), 50200,
     "loopback"),
    ("internet https url", form(binary_data_base64=DROP, image_urls=["https://8.8.8.8/a.png"]), 50200,
     "loopback"),
    ("file url", form(binary_data_base64=DROP, image_urls=["file:///etc/passwd"]), 50200, "loopback"),
    ("ftp url", form(binary_data_base64=DROP, image_urls=["ftp://127.0.0.1/a.png"]), 50200, "loopback"),
]


@pytest.mark.parametrize("body, code, words", [case[1:] for case in INVALID], ids=[case[0] for case in INVALID])
def test_invalid_bodies_are_refused_and_not_billed(sb, http, body, code, words):
    body = body if isinstance(body, bytes) else json.dumps(body).encode()
    assert_business_error(signed_post(http, sb, body), code, 400, in_message=words)
    entry = sb.requests("volc")[0]
    assert (entry.billable, entry.processed, entry.status) == (False, False, 400)


@pytest.mark.parametrize("req_key", ["i2i_inpainting", "", DROP])
def test_wrong_req_key_is_access_denied(sb, http, req_key):
    body = assert_business_error(signed_post(http, sb, form(req_key=req_key)), 50400, 401)
    assert body["message"] == "Access Denied: Internal Error"  # what users see for a wrong req_key


def test_loopback_url_that_404s_is_an_image_decode_error(sb, http):
    resp = signed_post(http, sb, form(binary_data_base64=DROP, image_urls=[sb.missing_result_url()]))
    assert_business_error(resp, 50207, 400, in_message="404")
    assert sb.billable_count() == 0


def test_image_size_limits(sb, http):
    tall = b64(png_bytes(make_image(1, 4097)))
    assert_business_error(signed_post(http, sb, form(binary_data_base64=[tall])), 50205, 400, in_message="4097")
    sb.volc_max_image_bytes = 100
    assert_business_error(signed_post(http, sb, form()), 50205, 400, in_message="100")
    sb.volc_max_body_bytes = 100
    assert_business_error(signed_post(http, sb, form()), 50213, 400)
    assert sb.billable_count() == 0


ACCEPTED = [
    ("ratios at 1", dict(top=1, bottom=1, left=1, right=1)),
    ("scale bounds low", dict(scale=1, strength=0.1, steps=1)),
    ("scale bounds high", dict(scale=20, strength=1.0, steps=100)),
    ("seed zero", dict(seed=0)),
    ("seed int32 max", dict(seed=2**31 - 1)),
    ("prompt 800 chars", dict(prompt="字" * 800)),
    ("null fields count as absent", dict(custom_prompt=None, image_urls=None, return_url=None)),
    ("full logo_info", dict(logo_info={"add_logo": True, "position": 3, "language": 1, "opacity": 0.3,
                                       "logo_text_content": "AI"})),
    ("unknown fields ignored", dict(negative_prompt="blurry", version="v2")),
]


@pytest.mark.parametrize("changes", [case[1] for case in ACCEPTED], ids=[case[0] for case in ACCEPTED])
def test_boundary_values_are_accepted(sb, http, changes):
    assert_success(signed_post(http, sb, form(**changes)))
    assert sb.billable_count() == 1


@pytest.mark.parametrize("fields, used", [
    ({"custom_prompt": "sea"}, "sea"),
    ({"prompt": "sky"}, "sky"),
    ({"custom_prompt": "sea", "prompt": "sky"}, "sea"),
    ({}, ""),
])
def test_prompt_under_either_name_is_recorded(sb, http, fields, used):
    assert_success(signed_post(http, sb, form(**fields)))
    detail = sb.requests("volc")[0].detail
    assert detail["prompt_fields"] == tuple(fields) and detail["prompt"] == used


# ---- URLs: return_url and image_urls --------------------------------------------------------------

def test_return_url_serves_the_result_until_the_link_expires(sb, http):
    inline = result_png(assert_success(signed_post(http, sb, form(seed=5))))
    body = assert_success(signed_post(http, sb, form(seed=5, return_url=True)))
    assert body["data"]["binary_data_base64"] is None
    (url,) = body["data"]["image_urls"]
    assert url.startswith(f"{sb.url}/sandbox/results/") and url.endswith(".png")
    got = http.get(url, timeout=10)
    assert got.status_code == 200 and got.headers["Content-Type"] == "image/png"
    assert got.content == inline
    sb.clock_offset = timedelta(hours=23, minutes=59)
    assert http.get(url, timeout=10).status_code == 200
    sb.clock_offset = timedelta(hours=24, seconds=1)  # links live 24 h
    assert http.get(url, timeout=10).status_code == 404
    assert sb.billable_count() == 2 and sb.request_count("sandbox") == 3


def test_result_ttl_is_configurable(sb, http):
    sb.result_ttl = timedelta(seconds=60)
    (url,) = assert_success(signed_post(http, sb, form(return_url=True)))["data"]["image_urls"]
    sb.clock_offset = timedelta(seconds=59)
    assert http.get(url, timeout=10).status_code == 200
    sb.clock_offset = timedelta(seconds=61)
    assert http.get(url, timeout=10).status_code == 404


def test_image_urls_input_from_the_sandbox_itself(sb, http):
    inline = result_png(assert_success(signed_post(http, sb, form())))
    url = sb.publish(IMAGE_PNG)
    body = assert_success(signed_post(http, sb, form(binary_data_base64=DROP, image_urls=[url])))
    assert result_png(body) == inline
    assert sb.requests("volc")[1].detail["source"] == "image_urls"


def test_canvas_mode_by_urls(sb, http):
    canvas, mask = canvas_and_mask()
    urls = [sb.publish(png_bytes(canvas)), sb.publish(png_bytes(mask))]
    body = assert_success(signed_post(http, sb, form(binary_data_base64=DROP, image_urls=urls, top=DROP,
                                                     bottom=DROP, left=DROP, right=DROP)))
    out = decode(result_png(body))
    assert np.array_equal(out[:, 16:], canvas[:, 16:])


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


# ---- latency, concurrency, lifecycle --------------------------------------------------------------

def test_latency_applies_to_processed_requests_only(sb, http):
    sb.latency = 0.25
    started = time.perf_counter()
    body = assert_success(signed_post(http, sb, form()))
    assert time.perf_counter() - started >= 0.25
    assert body["time_elapsed"].endswith("ms") and float(body["time_elapsed"][:-2]) >= 250
    started = time.perf_counter()
    assert_business_error(signed_post(http, sb, form(top=5)), 50200, 400)
    assert time.perf_counter() - started < 0.25
    sb.inject("volc", "error", code=50511)  # refused after processing: the processing took its time
    started = time.perf_counter()
    assert_business_error(signed_post(http, sb, form()), 50511, 400)
    assert time.perf_counter() - started >= 0.25


def test_requests_are_served_concurrently(sb):
    sb.latency = 0.3
    results = []

    def one():
        with requests.Session() as session:
            session.trust_env = False
            results.append(signed_post(session, sb, form()).status_code)

    threads = [threading.Thread(target=one) for _ in range(4)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert results == [200] * 4
    assert time.perf_counter() - started < 0.3 * 3


def test_chunked_request_body(sb, http):
    raw = json.dumps(form()).encode()
    headers = vsig.sign("POST", f"127.0.0.1:{sb.port}", "/", CV_QUERY, {"Content-Type": "application/json"}, raw,
                        sb.volc_access_key, sb.volc_secret_key)
    chunks = (raw[i:i + 1000] for i in range(0, len(raw), 1000))
    resp = http.post(f"{sb.url}/?{vsig.canonical_query(CV_QUERY)}", data=chunks, headers=headers, timeout=10)
    assert_success(resp)


def test_unknown_routes(sb, http):
    assert http.get(f"{sb.url}/nothing", timeout=10).status_code == 404
    assert http.get(f"{sb.url}/?Action=CVProcess&Version=2022-08-31", timeout=10).status_code == 405
    assert sb.billable_count() == 0


def test_lifecycle():
    sandbox = Sandbox()
    with pytest.raises(RuntimeError):
        sandbox.url
    sandbox.start()
    first = sandbox.url
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+", first)
    with pytest.raises(RuntimeError):
        sandbox.start()
    sandbox.stop()
    sandbox.stop()  # idempotent
    assert not sandbox.running
    with sandbox:  # can be started again
        assert requests.get(f"{sandbox.url}/nothing", timeout=10).status_code == 404


def test_results_store_drops_the_oldest_files_beyond_its_budget(sb, http):
    sb.results.max_bytes = 2 * len(IMAGE_PNG)
    urls = [sb.publish(IMAGE_PNG) for _ in range(3)]
    assert [http.get(url, timeout=10).status_code for url in urls] == [404, 200, 200]
    sb.results.max_files = 1
    newest = sb.publish(b"x", "bin")
    assert [http.get(url, timeout=10).status_code for url in urls + [newest]] == [404, 404, 404, 200]


@pytest.mark.parametrize("seconds, text", [
    (0, "0s"), (5e-7, "500ns"), (84.448e-6, "84.448µs"), (0.104852309, "104.852309ms"),
    (2.173378731, "2.173378731s"), (3.9, "3.9s"), (63.5, "1m3.5s"), (3600, "1h0m0s"),
])
def test_time_elapsed_is_a_go_duration(seconds, text):
    assert module("nodes.sandbox.wire").go_duration(seconds) == text


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.2", "example.com", "::1"])
def test_listens_on_loopback_only(host):
    with pytest.raises(ValueError):
        Sandbox(host=host)


def test_settings_by_keyword():
    sandbox = Sandbox(volc_mask_white_means="keep", latency=0.5)
    assert (sandbox.volc_mask_white_means, sandbox.latency) == ("keep", 0.5)
    for name in ("volc_mask_white_mean", "url", "running", "log", "errors", "inject", "_volc_keys"):
        with pytest.raises(TypeError):
            Sandbox(**{name: "x"})


def test_stop_cuts_a_slow_answer_short():
    sandbox = Sandbox().start()
    sandbox.inject("volc", "slow", seconds=30)
    outcome = []

    def call():
        with requests.Session() as session:
            session.trust_env = False
            try:
                outcome.append(signed_post(session, sandbox, form()).status_code)
            except requests.RequestException as exc:  # how the cut shows depends on timing: any is fine
                outcome.append(type(exc).__name__)

    thread = threading.Thread(target=call)
    thread.start()
    deadline = time.monotonic() + 5
    while sandbox.billable_count() == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    started = time.perf_counter()
    sandbox.stop()
    thread.join(5)
    assert time.perf_counter() - started < 2 and outcome and not thread.is_alive()


def test_serve_forever_prints_how_to_use_it_and_serves_until_stopped():
    out, stop = _Lines(), threading.Event()
    sandbox = Sandbox(echo=out, **standalone.parse_settings(["latency=0", "volc_output_format=\"jpeg\""]))
    thread = threading.Thread(target=lambda: out.result.append(standalone.serve_forever(sandbox, stop=stop, out=out)))
    thread.start()
    try:
        assert out.ready.wait(10)
        url = re.search(r"VOLC_BASE_URL=(\S+)", out.text).group(1)
        port = int(url.rsplit(":", 1)[1])
        fake = type("SB", (), {"port": port, "url": url, "volc_access_key": volc_sandbox.DEMO_ACCESS_KEY,
                               "volc_secret_key": volc_sandbox.DEMO_SECRET_KEY})
        with requests.Session() as session:
            session.trust_env = False
            body = assert_success(signed_post(session, fake, form()))
        assert base64.b64decode(body["data"]["binary_data_base64"][0])[:2] == b"\xff\xd8"
        creds = sandbox.volc_credentials()  # what describe() tells a person, as the core's credentials
        assert (creds.kind, creds.source, creds.base_url) == ("aksk", "sandbox", url)
        assert f"VOLC_ACCESSKEY={creds.access_key}  VOLC_SECRETKEY={creds.secret_key}" in out.text
    finally:
        stop.set()
        thread.join(10)
    assert out.result == [None] and not sandbox.running
    assert re.search(r"POST /\?Action=CVProcess&Version=2022-08-31 -> 200 \[volc/CVProcess\] billable", out.text)
    assert f"DASHSCOPE_HTTP_BASE_URL={url}/api/v1" in out.text


def test_parse_settings_reads_json_or_text_and_refuses_unknown_names():
    assert standalone.parse_settings(["dashscope_running_s=5", "volc_output_format=jpeg", "latency=0.5",
                                      "dashscope_sync_validation=false", " volc_api_key = sk-x"]) == {
        "dashscope_running_s": 5, "volc_output_format": "jpeg", "latency": 0.5,
        "dashscope_sync_validation": False, "volc_api_key": " sk-x"}
    for item, words in [("no_such_setting=1", "unknown sandbox setting 'no_such_setting'"),
                        ("volc_output_format", "NAME=VALUE"), ("url=x", "unknown sandbox setting 'url'")]:
        with pytest.raises(ValueError, match=words):
            standalone.parse_settings([item])
    assert set(Sandbox.setting_names()) >= {"latency", "volc_mask_white_means", "dashscope_pending_s"}


class _Lines(io.StringIO):
    """A stream that says when the CLI has printed its banner."""

    def __init__(self):
        super().__init__()
        self.ready, self.result = threading.Event(), []
        self._lock = threading.Lock()

    def write(self, text):
        with self._lock:
            n = super().write(text)
        if "Ctrl-C" in text:
            self.ready.set()
        return n

    @property
    def text(self):
        with self._lock:
            return self.getvalue()


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
