"""The sandbox's Volcengine emulator refuses the bodies the service refuses, with its codes, and
bills none of them.
"""

import json

import pytest
from volc_sandbox_client import (  # noqa: F401 (fixtures)
    DROP,
    IMAGE_B64,
    assert_business_error,
    assert_success,
    b64,
    form,
    make_image,
    png_bytes,
    signed_post,
)

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
