import pytest
from pack import InputError
from pack import geometry as g


def test_pixels_placement_and_padding():
    p = g.pad_pixels(100, 50, 10, 20, 30, 40)
    assert (p.canvas_width, p.canvas_height) == (140, 110)
    assert (p.x, p.y, p.width, p.height) == (10, 20, 100, 50)
    assert p.padding == (10, 20, 30, 40)


def test_fractions_follow_volcengine_sides():
    # left/right are fractions of the width, top/bottom of the height; rounding half up
    p = g.pad_fractions(1000, 500, 0.1, 0.1, 0.25, 0.0)
    assert p.padding == (100, 50, 250, 0)
    assert g.pad_fractions(3, 3, 0.5, 0.5, 0.5, 0.5).padding == (2, 2, 2, 2)  # 1.5 -> 2


def test_scale_centres_the_image_like_dashscope():
    # DashScope's doc example: 1000x1000, x_scale 2 -> 2000x1000, +500 each side
    p = g.pad_scale(1000, 1000, 2.0, 1.0)
    assert p.padding == (500, 0, 500, 0)
    p = g.pad_scale(1000, 1000, 1.5, 3.0, anchor="top-left")
    assert p.padding == (0, 0, 500, 2000)


@pytest.mark.parametrize("ratio,size,expected", [
    ("16:9", (1000, 1000), (1778, 1000)),
    ("9:16", (1600, 900), (1600, 2844)),
    ("1:1", (300, 200), (300, 300)),
    ("4/3", (400, 300), (400, 300)),
    ("1.5", (300, 300), (450, 300)),
])
def test_aspect_grows_one_side(ratio, size, expected):
    p = g.pad_aspect(*size, ratio)
    assert (p.canvas_width, p.canvas_height) == expected
    assert p.width == size[0] and p.height == size[1]


def test_anchor_positions():
    p = g.pad_to_size(100, 100, 300, 200, "bottom-right")
    assert (p.x, p.y) == (200, 100)
    p = g.pad_to_size(100, 100, 301, 201, "center")
    assert p.padding == (100, 50, 101, 51)
    p = g.pad_to_size(100, 100, 300, 200, "top")
    assert (p.x, p.y) == (100, 0)


def test_target_smaller_than_image_is_refused():
    with pytest.raises(InputError, match="smaller than the image"):
        g.pad_to_size(100, 100, 99, 200)


def test_multiple_of_keeps_unpadded_sides_flush():
    p = g.plan_expansion(100, 100, "pixels", right=30, multiple_of=64)
    assert p.padding == (0, 14, 92, 14)  # width 130 -> 192, all on the right; height 100 -> 128 by anchor
    p = g.plan_expansion(100, 100, "pixels", left=10, right=10, top=5, multiple_of=8)
    assert (p.canvas_width % 8, p.canvas_height % 8) == (0, 0)
    assert p.padding == (10, 12, 10, 0)  # width 120 already fits; height 105 -> 112 on the padded top
    p = g.plan_expansion(100, 100, "scale", x_scale=1.3, y_scale=1.0, anchor="top-left", multiple_of=16)
    assert p.padding == (0, 0, 44, 12)


@pytest.mark.parametrize("bad", ["", "16:", ":9", "0:1", "1:0", "abc", "-1:2", "16:9:1", "nan", "inf", "1000:1"])
def test_malformed_ratios_are_refused(bad):
    with pytest.raises(InputError):
        g.parse_ratio(bad)


@pytest.mark.parametrize("call", [
    lambda: g.pad_pixels(100, 100, -1, 0, 0, 0),
    lambda: g.pad_pixels(0, 100, 1, 0, 0, 0),
    lambda: g.pad_pixels(100, 100, 16385, 0, 0, 0),
    lambda: g.pad_pixels(16000, 100, 200, 0, 200, 0),
    lambda: g.pad_fractions(100, 100, -0.1, 0, 0, 0),
    lambda: g.pad_fractions(100, 100, float("nan"), 0, 0, 0),
    lambda: g.pad_scale(100, 100, 0.5, 1.0),
    lambda: g.pad_scale(10000, 100, 2.0, 1.0),
    lambda: g.plan_expansion(100, 100, "zoom"),
    lambda: g.plan_expansion(100, 100, "scale", anchor="middle"),
    lambda: g.plan_expansion(100, 100, "pixels", multiple_of=0),
])
def test_bad_geometry_gets_a_clear_error(call):
    with pytest.raises(InputError):
        call()


def test_canvas_limit_message_names_the_size():
    with pytest.raises(InputError, match="16384"):
        g.plan_expansion(8000, 8000, "scale", x_scale=3.0, y_scale=1.0)
