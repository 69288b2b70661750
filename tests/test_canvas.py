import numpy as np
import pytest
import torch
from pack import InputError
from pack import canvas as cv
from pack import geometry as g
from reference_pad import image_pad_for_outpaint


def rand_image(b=1, h=20, w=30, c=3, seed=0, dtype=torch.float32):
    return torch.rand((b, h, w, c), generator=torch.Generator().manual_seed(seed)).to(dtype)


def builder(image, left, top, right, bottom, feathering, **kw):
    p = g.pad_pixels(image.shape[2], image.shape[1], left, top, right, bottom)
    mask, band = cv.build_mask(p, image.shape[0], feathering, **kw)
    return cv.build_canvas(image, p), mask, band


@pytest.mark.parametrize("pads", [(8, 0, 0, 0), (0, 8, 0, 0), (16, 24, 0, 0), (8, 8, 8, 8), (0, 0, 40, 0),
                                  (0, 0, 0, 16), (32, 0, 8, 64), (1, 2, 3, 4)])
@pytest.mark.parametrize("feathering", [0, 1, 4, 9])
def test_canvas_equals_image_pad_for_outpaint(pads, feathering):
    image = rand_image(2, 20, 30)
    ref_image, ref_mask = image_pad_for_outpaint(image, *pads, feathering)
    out, mask, _ = builder(image, *pads, feathering)
    assert torch.equal(out, ref_image)
    left, top, right, bottom = pads
    # ImagePadForOutpaint's top/left ramps are already right; bottom/right stop one pixel short
    # of the seam (its documented off-by-one). Ours is the same ramp moved one pixel outwards.
    # Flipping an axis padded only at its end turns the reference's faulty side into its correct
    # one, so there the flipped reference must equal ours exactly.
    flip_dims = [d for d, (before, after) in ((1, (top, bottom)), (2, (left, right))) if after and not before]
    if all(not (before and after) for before, after in ((top, bottom), (left, right))):
        flipped = image.flip(flip_dims) if flip_dims else image
        swapped = (right, bottom, left, top) if flip_dims == [1, 2] else \
            (left, bottom, right, top) if flip_dims == [1] else (right, top, left, bottom) if flip_dims else pads
        _, fixed_ref = image_pad_for_outpaint(flipped, *swapped, feathering)
        fixed_ref = fixed_ref.flip([d for d in flip_dims]) if flip_dims else fixed_ref
        assert torch.allclose(mask[0], fixed_ref[0])
    assert mask.shape == (2, *ref_mask.shape[1:])  # one mask per batch item, ref has batch 1
    assert torch.equal(mask[0], mask[1])


def test_feather_reaches_one_at_every_seam_and_is_symmetric():
    image = rand_image(1, 24, 24)
    _, mask, _ = builder(image, 8, 8, 8, 8, 6)
    inner = mask[0, 8:32, 8:32]
    assert inner[0, 12] == 1 and inner[-1, 12] == 1 and inner[12, 0] == 1 and inner[12, -1] == 1
    assert torch.equal(inner, inner.flip(0)) and torch.equal(inner, inner.flip(1))
    assert torch.equal(inner, inner.T)
    # quadratic ramp ((f-d)/f)^2 along the middle row: d = 0..5 -> 1, 25/36, 16/36, ...
    expected = torch.tensor([((6 - d) / 6) ** 2 for d in range(6)] + [0.0])
    assert torch.allclose(inner[12, :7], expected)
    assert torch.allclose(inner[12, -7:], expected.flip(0))


def test_bottom_right_fix_is_the_only_difference_from_reference():
    image = rand_image(1, 20, 20)
    _, ref = image_pad_for_outpaint(image, 0, 0, 5, 5, 4)
    _, mask, _ = builder(image, 0, 0, 5, 5, 4)
    # the reference ramp at distance d from the seam equals ours at distance d-1: shift by one
    row_ours, row_ref = mask[0, 10, :20], ref[0, 10, :20]
    assert torch.allclose(row_ours[:-1], row_ref[1:])
    assert row_ours[19] == 1.0 and row_ref[19] == pytest.approx((3 / 4) ** 2)


def test_unpadded_sides_get_no_feather():
    image = rand_image(1, 20, 20)
    _, mask, _ = builder(image, 10, 0, 0, 0, 5)
    inner = mask[0, :, 10:]
    assert inner[:, 5:].sum() == 0            # only the left band is non-zero
    assert torch.equal(inner[0], inner[-1])    # top and bottom rows are not feathered


def test_feather_is_clamped_instead_of_dropped():
    image = rand_image(1, 64, 64)
    _, ref = image_pad_for_outpaint(image, 16, 16, 16, 16, 32)
    assert ref[0, 16:80, 16:80].sum() == 0  # the built-in silently drops it
    _, mask, band = builder(image, 16, 16, 16, 16, 50)
    assert band.feathering == 32 and band.clamped
    inner = mask[0, 16:80, 16:80]
    assert inner[0, 32] == 1 and inner[31, 32] > 0 and inner[32, 32] == pytest.approx((1 / 32) ** 2)
    _, _, band = builder(image, 16, 0, 0, 0, 50)  # one padded side: the ramp may cross the image
    assert band.feathering == 50 and not band.clamped


def test_overlap_bites_into_the_original_then_feathers():
    image = rand_image(1, 30, 30)
    _, mask, band = builder(image, 0, 10, 0, 0, 4, overlap=3)
    assert band.overlap == 3
    column = mask[0, 10:, 15]
    assert torch.equal(column[:3], torch.ones(3))
    assert torch.allclose(column[3:8], torch.tensor([1.0, 9 / 16, 4 / 16, 1 / 16, 0.0]))


@pytest.mark.parametrize("curve", cv.FEATHER_CURVES)
def test_curves_are_monotone_and_bounded(curve):
    d = torch.arange(0, 40, dtype=torch.float32)
    v = cv.feather_values(d, 16, 2, curve)
    assert v.max() <= 1 and v.min() >= 0
    assert torch.all(v[1:] <= v[:-1])
    assert v[0] == 1 and v[2] == 1 and v[18] == 0


def test_dtype_and_device_are_kept():
    image = rand_image(2, 10, 12, dtype=torch.float16)
    p = g.pad_pixels(12, 10, 4, 4, 4, 4)
    out = cv.build_canvas(image, p, "reflect")
    mask, _ = cv.build_mask(p, 2, 3, dtype=image.dtype, device=image.device)
    assert out.dtype == torch.float16 and mask.dtype == torch.float16
    assert out.device == image.device and mask.device == image.device


def test_solid_colour_fill():
    image = rand_image(1, 4, 4)
    p = g.pad_pixels(4, 4, 2, 0, 0, 0)
    out = cv.build_canvas(image, p, "color", cv.parse_color("#ff8000"))
    assert torch.allclose(out[0, 0, 0], torch.tensor([1.0, 128 / 255, 0.0]))
    assert cv.parse_color("0,255,10") == (0.0, 1.0, 10 / 255)
    assert cv.parse_color("#fff") == (1.0, 1.0, 1.0)
    for bad in ("red", "#12345", "1,2", "0,0,256", ""):
        with pytest.raises(InputError):
            cv.parse_color(bad)


@pytest.mark.parametrize("mode", ["edge", "reflect"])
@pytest.mark.parametrize("pads", [(3, 2, 1, 4), (25, 0, 17, 30), (0, 0, 0, 0)])
def test_edge_and_reflect_match_numpy_pad(mode, pads):
    image = rand_image(2, 7, 9)
    left, top, right, bottom = pads
    out = cv.build_canvas(image, g.pad_pixels(9, 7, *pads), mode)
    expected = np.pad(image.numpy(), ((0, 0), (top, bottom), (left, right), (0, 0)), mode=mode)
    assert np.array_equal(out.numpy(), expected)


def test_one_pixel_image_reflects_as_edge():
    image = rand_image(1, 1, 1)
    out = cv.build_canvas(image, g.pad_pixels(1, 1, 3, 3, 3, 3), "reflect")
    assert torch.equal(out, image.expand(1, 7, 7, 3))


def test_blur_fill_continues_the_image_colours():
    image = torch.zeros((1, 64, 64, 3))
    image[:, :, 32:] = 1.0  # left half black, right half white
    out = cv.build_canvas(image, g.pad_pixels(64, 64, 64, 0, 64, 0), "blur")
    assert out[0, :, :32].mean() < 0.2 and out[0, :, -32:].mean() > 0.8
    assert torch.equal(out[:, :, 64:128], image)
    assert torch.isfinite(out).all() and out.min() >= 0 and out.max() <= 1


def test_noise_only_in_new_area_and_seeded():
    image = rand_image(2, 10, 10)
    p = g.pad_pixels(10, 10, 5, 5, 5, 5)
    a = cv.build_canvas(image, p, noise=0.3, seed=1)
    b = cv.build_canvas(image, p, noise=0.3, seed=1)
    c = cv.build_canvas(image, p, noise=0.3, seed=2)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert torch.equal(a[:, 5:15, 5:15], image)
    assert a.min() >= 0 and a.max() <= 1 and (a[:, :5] != 0.5).float().mean() > 0.9
    with pytest.raises(InputError):
        cv.build_canvas(image, p, noise=1.5)


def test_incoming_mask_merges_per_item():
    p = g.pad_pixels(10, 10, 4, 0, 0, 0)
    mask, _ = cv.build_mask(p, 2, 0)
    extra = torch.zeros((2, 10, 10))
    extra[1, 5, 5] = 0.7
    merged = cv.merge_mask(mask, extra, p)
    assert merged[0, 5, 9] == 0 and merged[1, 5, 9] == pytest.approx(0.7)
    assert torch.equal(merged[:, :, :4], torch.ones(2, 10, 4))
    canvas_sized = torch.zeros((1, 10, 14))
    canvas_sized[0, 0, 13] = 1
    assert cv.merge_mask(mask, canvas_sized, p)[:, 0, 13].tolist() == [1.0, 1.0]
    with pytest.raises(InputError, match="10x10"):
        cv.merge_mask(mask, torch.zeros((1, 9, 10)), p)
    with pytest.raises(InputError, match="batch"):
        cv.merge_mask(mask, torch.zeros((3, 10, 10)), p)


@pytest.mark.parametrize("bad", [torch.zeros((0, 4, 4, 3)), torch.zeros((1, 4, 4, 2)), torch.zeros((4, 4)),
                                 torch.zeros((1, 4, 4, 3), dtype=torch.uint8), torch.zeros((1, 0, 4, 3)),
                                 "not a tensor"])
def test_bad_images_are_refused(bad):
    with pytest.raises(InputError):
        cv.check_image(bad)


def test_vectorised_build_is_fast_enough_for_a_2048_canvas():
    # not a timing test: checks the 2048² path runs and matches the reference ramp on one row
    image = rand_image(1, 2048, 2048)
    _, mask, _ = builder(image, 64, 0, 0, 0, 40)
    expected = torch.tensor([((40 - d) / 40) ** 2 for d in range(40)])
    assert torch.allclose(mask[0, 1000, 64:104], expected)
