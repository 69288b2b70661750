"""Issue 12, Volcengine: the sandbox as strict and as odd as the service (audit findings 2, 4, 5, 8 and
the sandbox lists), and the pack against it, over real HTTP on 127.0.0.1.

Canvas mode without sides grows by the SDK models' 0.1 a side; a bearer request to "/" meets a
proxy's 404; STS tokens are checked; integral floats pass; strict sides refuse 0.
Expected sizes are worked out by hand here, not taken from the code under test.
"""

import json
from dataclasses import replace

import numpy as np
import pytest
import torch
from pack import module
from volc_sandbox_client import (
    CV_QUERY,
    DROP,
    IMAGE,
    assert_business_error,
    assert_gateway_error,
    assert_success,
    b64,
    decode,
    form,
    png_bytes,
    result_png,
    signed_post,
)

volc = module("nodes.core.volc")
run_mod = module("nodes.core.volc_run")
geometry = module("nodes.core.geometry")
canvas = module("nodes.core.canvas")
errors = module("nodes.core.errors")
imagecodec = module("nodes.core.imagecodec")
conn = module("nodes.core.connection_check")
vsig = module("nodes.core.volc_signer")

OMIT = volc.VolcConfig.from_env({"CLOUD_OUTPAINT_VOLC_CANVAS_SIDES": "omit"})


def photo(h=48, w=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    base = torch.rand((1, 3, 4, 4), generator=g)
    return torch.nn.functional.interpolate(base, size=(h, w), mode="bilinear").movedim(1, -1).contiguous()


def padded_canvas():
    """A 64x48 photo padded 16 px left and right and 8 px at the bottom: a 96x56 canvas and its mask."""
    placement = geometry.pad_pixels(64, 48, 16, 0, 16, 8)
    mask, _ = canvas.build_mask(placement, 1, 0)
    return canvas.build_canvas(photo(), placement), mask


def run(sb, image, mask=None, params=None, credentials=None, config=volc.VolcConfig(), **options):
    options.setdefault("timeout_s", 20)
    options.setdefault("image_format", "png")
    return run_mod.run(image, mask, params or volc.VolcParams(top=0.25, bottom=0.25, left=0.25, right=0.25),
                       credentials or sb.volc_credentials(), run_mod.VolcOptions(**options), config)


def vendor_error(exc_info):
    return exc_info.value.cause


def canvas_body(**changes):
    image = IMAGE.copy()
    image[:, :16] = 128
    mask = np.zeros(image.shape[:2], np.uint8)
    mask[:, :16] = 255
    sides = {side: changes.pop(side, DROP) for side in ("top", "bottom", "left", "right")}
    return form(binary_data_base64=[b64(png_bytes(image)), b64(png_bytes(mask))], **sides, **changes)


# ---- 1. canvas mode: explicit 0 sides; an output of another size is placed or left alone -------

def test_sandbox_grows_a_canvas_sent_without_sides_by_the_sdk_default(sb, http):
    grown = decode(result_png(assert_success(signed_post(http, sb, canvas_body()))))
    # 64x48, 0.1 a side: 6.4 -> 6 px left and right, 4.8 -> 5 px top and bottom
    assert grown.shape == (58, 76, 3)
    assert sb.requests("volc")[0].detail["sides_sent"] == ()
    kept = decode(result_png(assert_success(signed_post(http, sb, canvas_body(top=0, bottom=0, left=0, right=0)))))
    assert kept.shape == (48, 64, 3) and np.array_equal(kept[:, 16:], IMAGE[:, 16:])
    sb.volc_canvas_absent_side = 0
    assert decode(result_png(assert_success(signed_post(http, sb, canvas_body())))).shape == (48, 64, 3)


def test_canvas_mode_sends_the_four_sides_as_0_and_gets_the_canvas_back(sb):
    image, mask = padded_canvas()
    out, out_mask, info = run(sb, image, mask)
    detail = sb.requests("volc")[0].detail
    assert detail["sides_sent"] == ("top", "bottom", "left", "right") and detail["sides"] == (0, 0, 0, 0)
    assert out.shape == (1, 56, 96, 3)
    assert torch.allclose(out[:, 0:48, 16:80], image[:, 0:48, 16:80], atol=1 / 255)  # the photo, in place
    assert torch.equal(out_mask, mask)
    assert info.to_dict()["results"][0].get("note") is None


def test_canvas_sides_omit_leaves_them_out_and_places_the_grown_result(sb):
    image, mask = padded_canvas()
    out, out_mask, info = run(sb, image, mask, config=OMIT)
    assert sb.requests("volc")[0].detail["sides_sent"] == ()
    # 96x56 grown by 0.1 a side: 9.6 -> 10 px left and right, 5.6 -> 6 px top and bottom
    assert out.shape == (1, 68, 116, 3)
    note = info.to_dict()["results"][0]["note"]
    assert note.startswith("expected 96x56") and "default side ratio 0.1" in note and "x 10, y 6, 96x56" in note
    # the canvas sits in the middle, 1:1: the photo where the vendor put it, not stretched over the output
    assert torch.allclose(out[:, 6:54, 26:90], image[:, 0:48, 16:80], atol=1 / 255)
    assert torch.equal(out_mask[:, 6:62, 10:106], mask) and out_mask[:, :6].eq(1).all() and out_mask[:, :, :10].eq(1).all()


def test_canvas_sides_setting_is_checked_by_name():
    assert volc.VolcConfig.from_env({}).canvas_sides == "zero"
    with pytest.raises(errors.InputError, match="CLOUD_OUTPAINT_VOLC_CANVAS_SIDES=.*zero, omit"):
        volc.VolcConfig.from_env({"CLOUD_OUTPAINT_VOLC_CANVAS_SIDES": "none"})


def test_a_canvas_result_of_another_aspect_is_not_pasted_back(sb):
    image, mask = padded_canvas()
    wide = np.full((40, 160, 3), 200, np.uint8)  # 4:1 for a 96x56 canvas
    sb.inject("volc", "result_url", url=sb.publish(png_bytes(wide)))
    out, out_mask, info = run(sb, image, mask, params=volc.VolcParams(return_url=True))
    assert out.shape == (1, 40, 160, 3)
    assert torch.allclose(out, torch.full_like(out, 200 / 255), atol=1 / 255)  # untouched: nothing stretched onto it
    assert out_mask.eq(1).all()
    note = info.to_dict()["results"][0]["note"]
    assert "aspect differs" in note and "not pasted back" in note


# ---- 2. a bearer gateway given as a bare host --------------------------------------------------

@pytest.mark.parametrize("suffix", ["", "/"])
def test_a_bearer_base_url_without_a_path_posts_to_volcv_v1(sb, suffix):
    creds = replace(sb.volc_bearer_credentials(), base_url=sb.url + suffix)
    out, _, _ = run(sb, photo(), credentials=creds)
    assert out.shape == (1, 72, 96, 3)
    (entry,) = sb.requests("volc")
    assert entry.path == "/volcv/v1" and entry.detail["auth"] == "bearer" and entry.billable


def test_sandbox_answers_a_bearer_request_to_root_like_a_proxy(sb, http):
    resp = http.post(f"{sb.url}/?{vsig.canonical_query(CV_QUERY)}", data=json.dumps(form()).encode(),
                     headers={"Authorization": f"Bearer {sb.volc_api_key}", "Content-Type": "application/json"})
    assert resp.status_code == 404 and resp.headers["Content-Type"].startswith("text/plain")
    assert resp.text == "404 page not found\n" and sb.billable_count("volc") == 0


def test_a_404_tells_the_user_to_check_the_base_url_path(sb):
    creds = replace(sb.volc_bearer_credentials(), base_url=f"{sb.url}/v1/outpaint")
    with pytest.raises(errors.ItemError) as e:
        run(sb, photo(), credentials=creds)
    error = vendor_error(e)
    assert error.code == "HTTP404" and "VOLC_BASE_URL" in str(error) and "/volcv/v1" in error.hint
    assert sb.billable_count("volc") == 0


# ---- 3. the connection test: any service-level answer proves the credentials --------------------

@pytest.mark.parametrize("code", [50207, 50215, 50205, 50206, 50413])
def test_connection_test_takes_any_service_answer_as_working_credentials(sb, code):
    sb.inject("volc", "error", code=code)
    answer = conn.check_volc(sb.volc_credentials())
    assert answer["ok"] and answer["code"] == str(code), answer
    assert code == 50206 or f"it said {code}" in answer["message"]


@pytest.mark.parametrize("code", [50400, 50402])
def test_connection_test_still_fails_on_access_refusals(sb, code):
    sb.inject("volc", "error", code=code, http_status=401 if code == 50402 else None)
    answer = conn.check_volc(sb.volc_credentials())
    assert not answer["ok"] and answer["code"] == str(code), answer


def test_connection_test_fails_on_a_gateway_refusal(sb):
    answer = conn.check_volc(replace(sb.volc_credentials(), secret_key="d3Jvbmctc2VjcmV0LWtleS0wMDAwMDA="))
    assert not answer["ok"] and answer["code"] == "SignatureDoesNotMatch"


# ---- 4. sandbox strictness: STS tokens, integral floats, strict sides ---------------------------

def sts_post(http, sb, token):
    raw = json.dumps(form()).encode()
    headers = vsig.sign("POST", f"127.0.0.1:{sb.port}", "/", CV_QUERY, {"Content-Type": "application/json"}, raw,
                        sb.volc_access_key, sb.volc_secret_key, session_token=token)
    return http.post(f"{sb.url}/?{vsig.canonical_query(CV_QUERY)}", data=raw, headers=headers, timeout=10)


def test_sandbox_checks_sts_session_tokens(sb, http):
    assert_gateway_error(sts_post(http, sb, "garbage-token"), "InvalidSecretToken", 100026, 401)
    assert_success(sts_post(http, sb, sb.volc_session_token))
    sb.volc.add_session_token("STS.issued-later-0000")
    assert_success(sts_post(http, sb, "STS.issued-later-0000"))
    assert sb.billable_count("volc") == 2


def test_the_pack_reports_a_refused_session_token(sb):
    with pytest.raises(errors.ItemError) as e:
        run(sb, photo(), credentials=replace(sb.volc_credentials(), session_token="STS.expired-0000"))
    assert vendor_error(e).code == "InvalidSecretToken" and "VOLC_SESSION_TOKEN" in vendor_error(e).meaning
    out, _, _ = run(sb, photo(), credentials=replace(sb.volc_credentials(), session_token=sb.volc_session_token))
    assert out.shape == (1, 72, 96, 3)


def test_sandbox_takes_integral_floats_as_the_java_sdk_sends_them(sb, http):
    assert_success(signed_post(http, sb, form(seed=0.0, steps=30.0, max_width=1920.0, max_height=1920.0)))
    detail = sb.requests("volc")[0].detail
    assert detail["seed_requested"] == 0 and type(detail["seed_requested"]) is int
    assert detail["max_size"] == (1920, 1920) and detail["steps"] == 30
    assert_business_error(signed_post(http, sb, form(seed=0.5)), 50204, 400, in_message="seed")
    assert_business_error(signed_post(http, sb, form(max_width=1920.5)), 50204, 400, in_message="max_width")


def test_strict_sides_refuse_a_side_of_0_by_name(sb, http):
    assert_success(signed_post(http, sb, form(bottom=0)))  # lenient by default
    sb.volc_strict_sides = True
    assert_business_error(signed_post(http, sb, form(bottom=0)), 50200, 400, in_message="bottom")
    assert_success(signed_post(http, sb, form(bottom=0.001)))
    kept = signed_post(http, sb, canvas_body(top=0, bottom=0, left=0, right=0))  # ratio sides only
    assert decode(result_png(assert_success(kept))).shape == (48, 64, 3)


def test_a_refused_side_of_0_gets_a_plain_hint(sb):
    sb.volc_strict_sides = True
    with pytest.raises(errors.ItemError) as e:
        run(sb, photo(), params=volc.VolcParams(top=0.25, bottom=0, left=0.25, right=0.25))
    error = vendor_error(e)
    assert error.code == 50200 and "bottom" in error.message and "0.001" in error.hint and "bottom" in error.hint
    assert "0.001" in str(error)
    out, _, _ = run(sb, photo(), params=volc.VolcParams(top=0.25, bottom=0.001, left=0.25, right=0.25))
    assert out.shape == (1, 60, 96, 3)  # 48 + 12 + 0.048 -> 0 px


def test_a_refused_canvas_side_of_0_points_to_the_setting(sb):
    sb.inject("volc", "error", code=50200, message="Request Invalid Args: top must be in (0, 1], got 0")
    image, mask = padded_canvas()
    with pytest.raises(errors.ItemError) as e:
        run(sb, image, mask)
    assert "CLOUD_OUTPAINT_VOLC_CANVAS_SIDES=omit" in vendor_error(e).hint


def test_a_50200_about_another_field_gets_no_side_hint(sb):
    sb.inject("volc", "error", code=50200, message="Request Invalid Args: steps must be in [1, 100], got 0")
    with pytest.raises(errors.ItemError) as e:
        run(sb, photo(), params=volc.VolcParams(top=0.25, bottom=0, left=0.25, right=0.25))
    assert vendor_error(e).hint == ""
