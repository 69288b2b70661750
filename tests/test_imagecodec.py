import io

import numpy as np
import pytest
import torch
from pack import InputError
from pack import imagecodec as ic
from PIL import Image


def rand_u8(shape, seed=0):
    return np.random.default_rng(seed).integers(0, 256, size=shape, dtype=np.uint8)


@pytest.mark.parametrize("shape", [(1, 1, 3), (7, 5, 3), (33, 64, 3), (1, 1), (9, 17)])
def test_png_writer_is_lossless_as_read_by_pillow(shape):
    arr = rand_u8(shape)
    data = ic.encode_png(arr)
    img = Image.open(io.BytesIO(data))
    assert img.mode == ("RGB" if len(shape) == 3 else "L")
    assert np.array_equal(np.asarray(img), arr)


def test_png_writer_compresses_smooth_images():
    ramp = np.tile(np.arange(256, dtype=np.uint8), (256, 1))
    arr = np.stack([ramp, ramp.T, ramp], axis=-1)
    assert len(ic.encode_png(arr)) < arr.nbytes / 20


def test_image_round_trip_png_is_within_half_a_level():
    image = torch.rand((2, 13, 11, 3), generator=torch.Generator().manual_seed(3))
    for i in range(2):
        back = ic.decode_image(ic.image_to_bytes(image, i))
        assert back.shape == (1, 13, 11, 3) and back.dtype == torch.float32
        assert (back[0] - image[i]).abs().max() <= 0.5 / 255 + 1e-6


def test_jpeg_round_trip_is_close():
    y, x = torch.meshgrid(torch.linspace(0, 1, 64), torch.linspace(0, 1, 64), indexing="ij")
    image = torch.stack([y, x, (x + y) / 2], dim=-1)[None]
    back = ic.decode_image(ic.image_to_bytes(image, fmt="jpeg"))
    assert (back - image).abs().mean() < 0.01


def test_values_are_clamped_and_rounded_not_wrapped():
    image = torch.tensor([[[[1.5, -0.2, 0.5], [0.998, 0.002, 1.0]]]])
    assert ic.image_to_uint8(image).tolist() == [[[[255, 0, 128], [254, 1, 255]]]]


def test_nan_and_inf_are_refused():
    for bad in (float("nan"), float("inf")):
        image = torch.zeros((1, 2, 2, 3))
        image[0, 1, 1, 1] = bad
        with pytest.raises(InputError, match="NaN or infinite"):
            ic.image_to_uint8(image)


def test_alpha_is_dropped_or_composited_and_grey_is_expanded():
    rgba = torch.tensor([[[[1.0, 0.0, 0.0, 0.5]]]])
    assert ic.image_to_uint8(rgba).tolist() == [[[[255, 0, 0]]]]
    assert ic.image_to_uint8(rgba, alpha_background=(1.0, 1.0, 1.0)).tolist() == [[[[255, 128, 128]]]]
    grey = torch.full((1, 1, 1, 1), 0.25)
    assert ic.image_to_uint8(grey).tolist() == [[[[64, 64, 64]]]]


def _pil_bytes(img, fmt="PNG"):
    buf = io.BytesIO()
    img.save(buf, format=fmt)
    return buf.getvalue()


def test_decode_always_gives_three_channels():
    for img in (Image.new("RGBA", (3, 2), (10, 20, 30, 0)), Image.new("L", (3, 2), 7),
                Image.new("P", (3, 2)), Image.new("LA", (3, 2))):
        out = ic.decode_image(_pil_bytes(img))
        assert out.shape == (1, 2, 3, 3) and out.dtype == torch.float32
    assert ic.decode_image(_pil_bytes(Image.new("RGBA", (1, 1), (10, 20, 30, 0))))[0, 0, 0].tolist() == \
        pytest.approx([10 / 255, 20 / 255, 30 / 255])


def test_sixteen_bit_png_keeps_its_range():
    arr = np.array([[0, 32768, 65535]], dtype=np.uint16)
    out = ic.decode_image(_pil_bytes(Image.fromarray(arr)))
    assert out[0, 0, :, 0].tolist() == pytest.approx([0.0, 32768 / 65535, 1.0])


def test_mask_png_polarity_and_round_trip():
    mask = torch.tensor([[[0.0, 1.0], [0.5, 1.2]]])
    data = ic.mask_to_png(mask)
    img = Image.open(io.BytesIO(data))
    assert img.mode == "L" and np.asarray(img).tolist() == [[0, 255], [128, 255]]
    assert np.asarray(Image.open(io.BytesIO(ic.mask_to_png(mask, invert=True)))).tolist() == [[255, 0], [127, 0]]
    back = ic.decode_mask(data)
    assert back.shape == (1, 2, 2) and back[0, 0, 1] == 1.0
    assert ic.mask_to_png(mask[0]) == data  # [H,W] is accepted too


def test_mask_from_transparency_means_generate():
    img = Image.new("RGBA", (2, 1), (0, 0, 0, 255))
    img.putpixel((1, 0), (0, 0, 0, 0))
    assert ic.decode_mask(_pil_bytes(img)).tolist() == [[[0.0, 1.0]]]


def test_base64_is_strict_but_tolerates_data_uri_and_newlines():
    data = ic.image_to_bytes(torch.rand((1, 3, 3, 3)))
    text = ic.to_base64(data)
    assert ic.from_base64(text) == data
    assert ic.from_base64("data:image/png;base64," + text) == data
    assert ic.from_base64(text[:10] + "\n" + text[10:]) == data
    for bad in ("abc", "!!!!", text[:-1] + "*"):
        with pytest.raises(ic.DecodeError):
            ic.from_base64(bad)


def test_corrupt_bytes_give_decode_error():
    with pytest.raises(ic.DecodeError):
        ic.decode_image(b"\x89PNG not really")
    with pytest.raises(ic.DecodeError):
        ic.image_size(b"")
    assert ic.image_size(ic.encode_png(rand_u8((5, 8, 3)))) == (8, 5)


def test_bad_shapes_are_refused():
    for bad in (torch.zeros((0, 2, 2, 3)), torch.zeros((1, 2, 2, 5)), torch.zeros((2, 2))):
        with pytest.raises(InputError):
            ic.image_to_uint8(bad)
    with pytest.raises(InputError):
        ic.mask_to_uint8(torch.zeros((1, 0, 3)))
    with pytest.raises(InputError):
        ic.encode_image(rand_u8((2, 2, 3)), "gif")
