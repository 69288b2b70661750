"""Property tests (hypothesis) for the pure geometry, the canvas/mask painters and the codec.

Each property is checked on random small inputs; the example counts keep the file fast.
"""

import math

import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pack import canvas, geometry, imagecodec

FAST = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow])
ANCHORS = sorted(geometry.ANCHORS)
RATIOS = ["1:1", "16:9", "9:16", "4:3", "3:4", "2:1", "1:3", "21:9", "1.5", "5/4", "7x3"]


@st.composite
def expansions(draw):
    """(width, height, mode, kwargs) for every MaskCanvasBuilder mode, with anchors and multiple_of."""
    w, h = draw(st.integers(1, 12)), draw(st.integers(1, 12))
    mode = draw(st.sampled_from(geometry.EXPAND_MODES))
    kw = {"anchor": draw(st.sampled_from(ANCHORS)), "multiple_of": draw(st.sampled_from([1, 1, 2, 3, 8, 16]))}
    if mode == "pixels":
        kw.update({s: draw(st.integers(0, 20)) for s in ("left", "top", "right", "bottom")})
    elif mode == "fraction":
        kw.update({f"fraction_{s}": draw(st.floats(0, 2, allow_nan=False)) for s in ("left", "top", "right", "bottom")})
    elif mode == "scale":
        kw.update(x_scale=draw(st.floats(1, 3)), y_scale=draw(st.floats(1, 3)))
    elif mode == "aspect_ratio":
        kw.update(aspect_ratio=draw(st.sampled_from(RATIOS)))
    else:
        kw.update(target_width=w + draw(st.integers(0, 30)), target_height=h + draw(st.integers(0, 30)))
    return w, h, mode, kw


def _random_image(b, h, w, c, seed):
    return torch.rand((b, h, w, c), generator=torch.Generator().manual_seed(seed))


@settings(max_examples=400, **FAST)
@given(expansions(), st.integers(1, 2), st.sampled_from([1, 3, 4]), st.sampled_from(canvas.FILL_MODES),
       st.floats(0, 1), st.integers(0, 2**32))
def test_original_lands_where_the_placement_says(exp, batch, channels, fill, noise, seed):
    w, h, mode, kw = exp
    p = geometry.plan_expansion(w, h, mode, **kw)
    assert (p.width, p.height) == (w, h)
    assert min(p.padding) >= 0
    assert p.canvas_width == w + p.left + p.right and p.canvas_height == h + p.top + p.bottom
    assert p.canvas_width % kw["multiple_of"] == 0 and p.canvas_height % kw["multiple_of"] == 0
    if mode == "target_size" and kw["multiple_of"] == 1:
        assert (p.canvas_width, p.canvas_height) == (kw["target_width"], kw["target_height"])
    if mode in ("scale", "aspect_ratio", "target_size"):  # the anchor decides where the extra space goes
        ax, ay = geometry.ANCHORS[kw["anchor"]]
        assert (ax != 0 or p.left == 0) and (ax != 1 or p.right == 0)
        assert (ay != 0 or p.top == 0) and (ay != 1 or p.bottom == 0)
    image = _random_image(batch, h, w, channels, seed)
    out = canvas.build_canvas(image, p, fill, (0.2, 0.4, 0.6), noise, seed)
    assert out.shape == (batch, p.canvas_height, p.canvas_width, channels) and out.dtype == image.dtype
    assert torch.equal(out[:, p.y:p.y + h, p.x:p.x + w], image)


@settings(max_examples=300, **FAST)
@given(st.integers(1, 2000), st.integers(1, 2000), st.data())
def test_scale_placement_there_and_back_is_within_a_pixel(cw, ch, data):
    w, h = data.draw(st.integers(1, cw)), data.draw(st.integers(1, ch))
    x, y = data.draw(st.integers(0, cw - w)), data.draw(st.integers(0, ch - h))
    p = geometry.Placement(cw, ch, x, y, w, h)
    f = data.draw(st.floats(1.0, 4.0))  # a vendor returning a larger (or equal) canvas
    ow, oh = max(1, round(cw * f)), max(1, round(ch * f))
    q = geometry.scale_placement(p, ow, oh)
    assert 0 <= q.x and 0 <= q.y and q.x + q.width <= ow and q.y + q.height <= oh
    back = geometry.scale_placement(q, cw, ch)
    for a, b in ((back.x, p.x), (back.y, p.y), (back.x + back.width, p.x + p.width),
                 (back.y + back.height, p.y + p.height)):
        assert abs(a - b) <= 1
    assert (back.canvas_width, back.canvas_height) == (cw, ch)


@settings(max_examples=300, **FAST)
@given(st.integers(1, 4096), st.integers(1, 4096), *[st.floats(0, 1) for _ in range(4)],
       st.integers(64, 8192), st.integers(64, 8192))
def test_volc_ratio_output_fits_and_keeps_the_aspect(w, h, left, top, right, bottom, mw, mh):
    try:
        p, (ow, oh) = geometry.volc_ratio_output(w, h, left, top, right, bottom, mw, mh)
    except geometry.InputError:
        return  # only a canvas over MAX_SIDE is refused
    cw, ch = p.canvas_width, p.canvas_height
    assert 1 <= ow <= mw and 1 <= oh <= mh
    assert ow <= cw and oh <= ch  # never enlarged
    # each side is rounded by at most half a pixel (up to a whole one when clamped to 1 px), so the
    # aspect error |ow/oh - cw/ch| is bounded by that rounding: |ow*ch - oh*cw| <= ew*ch + eh*cw
    ew, eh = (1.0 if ow == 1 else 0.5), (1.0 if oh == 1 else 0.5)
    assert abs(ow * ch - oh * cw) <= ew * ch + eh * cw + 1e-6 * cw * ch
    if (ow, oh) != (cw, ch):
        s = min(mw / cw, mh / ch)
        assert abs(ow - cw * s) <= 1 and abs(oh - ch * s) <= 1


@st.composite
def dashscope_cases(draw):
    w, h = draw(st.integers(1, 3000)), draw(st.integers(1, 3000))
    angle = draw(st.integers(0, 359))  # quarter turns included (issue 12)
    mode = draw(st.sampled_from(geometry.DASHSCOPE_MODES))
    kw = {"angle": angle}
    if mode == "output_ratio":
        kw["output_ratio"] = draw(st.sampled_from(geometry.DASHSCOPE_RATIOS))
    elif mode == "scale":
        kw.update(x_scale=draw(st.floats(1, 3)), y_scale=draw(st.floats(1, 3)))
    elif mode == "offsets":
        lr, tb = draw(st.integers(0, 3 * w - 1)), draw(st.integers(0, 3 * h - 1))
        left, top = draw(st.integers(0, lr)), draw(st.integers(0, tb))
        kw.update(left=left, right=lr - left, top=top, bottom=tb - top)
    return w, h, mode, kw


@settings(max_examples=400, **FAST)
@given(dashscope_cases())
def test_dashscope_plan_contains_the_rotated_bounding_box(case):
    w, h, mode, kw = case
    try:
        p = geometry.dashscope_plan(w, h, mode, **kw)
    except geometry.InputError as exc:
        no_op = (mode == "scale" and kw["x_scale"] <= 1 and kw["y_scale"] <= 1) or (mode == "rotate_only" and not kw[
            "angle"]) or (mode == "offsets" and not any(kw[side] for side in ("left", "right", "top", "bottom")))
        # only an oversized canvas, or values that change nothing, may be refused for these inputs
        assert "16384" in str(exc) or (no_op and "nothing" in str(exc)), str(exc)
        return
    rw, rh = geometry.rotated_size(w, h, kw["angle"])
    assert (p.width, p.height) == (rw, rh)
    assert rw >= 1 and rh >= 1 and min(p.padding) >= 0
    assert p.x + p.width <= p.canvas_width and p.y + p.height <= p.canvas_height
    if kw["angle"] == 0:
        assert (rw, rh) == (w, h)
    else:  # the bounding box holds the rotated rectangle (its exact extent, rounded outwards)
        a = math.radians(kw["angle"])
        ew = abs(w * math.cos(a)) + abs(h * math.sin(a))
        eh = abs(w * math.sin(a)) + abs(h * math.cos(a))
        assert ew - 1e-6 <= rw <= ew + 2 and eh - 1e-6 <= rh <= eh + 2
    if mode == "rotate_only":
        assert (p.canvas_width, p.canvas_height) == (rw, rh)


@settings(max_examples=150, **FAST)
@given(st.integers(1, 2), st.integers(1, 9), st.integers(1, 9), st.sampled_from([1, 3, 4]),
       st.integers(0, 2**32), st.booleans())
def test_png_round_trip(batch, h, w, c, seed, representable):
    g = torch.Generator().manual_seed(seed)
    if representable:
        image = torch.randint(0, 256, (batch, h, w, c), generator=g).to(torch.float32) / 255
    else:
        image = torch.rand((batch, h, w, c), generator=g)
    rgb = image[..., :3] if c >= 3 else image.expand(-1, -1, -1, 3)
    for i in range(batch):
        back = imagecodec.decode_image(imagecodec.image_to_bytes(image, i, "png"))
        assert back.shape == (1, h, w, 3) and back.dtype == torch.float32
        if representable:
            assert torch.equal(back[0], rgb[i])
        else:
            assert float((back[0] - rgb[i]).abs().max()) <= 1 / 255
    mask = image[..., 0]
    for i in range(batch):
        back = imagecodec.decode_mask(imagecodec.mask_to_png(mask, i))
        assert back.shape == (1, h, w)
        if representable:
            assert torch.equal(back[0], mask[i])
        else:
            assert float((back[0] - mask[i]).abs().max()) <= 1 / 255


@st.composite
def feather_cases(draw):
    w, h = draw(st.integers(1, 24)), draw(st.integers(1, 24))
    left, top, right, bottom = (draw(st.integers(0, 6)) for _ in range(4))
    return geometry.pad_pixels(w, h, left, top, right, bottom), draw(st.integers(0, 15)), \
        draw(st.integers(0, 6)), draw(st.sampled_from(canvas.FEATHER_CURVES))


def _non_increasing(t):
    return bool((t[..., 1:] <= t[..., :-1]).all()) if t.shape[-1] > 1 else True


@settings(max_examples=400, **FAST)
@given(feather_cases())
def test_feather_is_bounded_monotone_and_symmetric(case):
    p, feathering, overlap, curve = case
    mask, band = canvas.build_mask(p, 2, feathering, overlap, curve)
    assert mask.shape == (2, p.canvas_height, p.canvas_width)
    assert torch.equal(mask[0], mask[1])
    m = mask[0]
    assert float(m.min()) >= 0 and float(m.max()) <= 1
    outside = torch.ones_like(m, dtype=torch.bool)
    outside[p.y:p.y + p.height, p.x:p.x + p.width] = False
    assert bool((m[outside] == 1).all())
    inner = m[p.y:p.y + p.height, p.x:p.x + p.width]
    if not any(p.padding):
        assert bool((inner == 0).all())
    # from each padded side inward the mask never rises (to the middle when both sides are padded)
    for grid, before, after in ((inner, p.left, p.right), (inner.T, p.top, p.bottom)):
        n = grid.shape[-1]
        half = (n + 1) // 2 if before and after else n
        if before:
            assert _non_increasing(grid[:, :half])
        if after:
            assert _non_increasing(grid.flip(-1)[:, :half])
    if p.left == p.right:
        assert torch.equal(m, m.flip(-1))
    if p.top == p.bottom:
        assert torch.equal(m, m.flip(-2))
    if len(set(p.padding)) == 1 and p.width == p.height:
        assert torch.equal(m, m.T)
