"""The sandbox's Volcengine emulator: what it makes of a valid request (ratio and canvas modes,
seeds, results inline or by URL), over real HTTP on 127.0.0.1. Expected geometry is written
out by hand here, not taken from the code under test.
"""

from datetime import timedelta

import numpy as np
import pytest
from volc_sandbox_client import (  # noqa: F401 (fixtures)
    DROP,
    IMAGE,
    IMAGE_PNG,
    assert_business_error,
    assert_success,
    b64,
    decode,
    form,
    geometry,
    png_bytes,
    result_png,
    signed_post,
)

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
    # sides sent as 0, as the pack does: a side left out grows the canvas (test_volc_fidelity.py)
    return form(binary_data_base64=[b64(png_bytes(canvas)), b64(png_bytes(mask))],
                top=0, bottom=0, left=0, right=0, **changes)


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
    body = assert_success(signed_post(http, sb, form(binary_data_base64=DROP, image_urls=urls, top=0,
                                                     bottom=0, left=0, right=0)))
    out = decode(result_png(body))
    assert np.array_equal(out[:, 16:], canvas[:, 16:])
