"""Results and answers built to hurt the client (red-team F2b, F3), over real HTTP against the sandbox:
other image formats are never handed to Pillow's decoders (EPS would run Ghostscript), a
decompression bomb is refused from its header before a pixel is decoded (whatever Pillow's global
MAX_IMAGE_PIXELS is, None included), and JSON answers and downloads stop at their byte caps.
"""

from __future__ import annotations

import subprocess
import time

import pytest
import torch
from pack import FAST_DASHSCOPE, imagecodec, module
from PIL import Image

volc = module("nodes.core.volc")
volc_run = module("nodes.core.volc_run")
ds = module("nodes.core.dashscope")
ds_run = module("nodes.core.dashscope_run")
imageheader = module("nodes.core.imageheader")
hostile = module("nodes.sandbox.hostile")
errors = module("nodes.core.errors")


def photo(h, w):
    return torch.rand((1, h, w, 3), generator=torch.Generator().manual_seed(2))


def run_volc(sb, params=None, config=volc.VolcConfig(), **options):
    options.setdefault("timeout_s", 20)
    return volc_run.run(photo(48, 64), None, params or volc.VolcParams(), sb.volc_credentials(),
                        volc_run.VolcOptions(**options), config)


def run_ds(sb, params=None, config=FAST_DASHSCOPE, **options):
    options.setdefault("timeout_s", 20)
    return ds_run.run(photo(512, 512), params or ds.DashScopeParams(), sb.dashscope_credentials(),
                      ds_run.DashScopeOptions(**options), config)


def failure(run, sb, **kw) -> errors.VendorError:
    with pytest.raises(errors.ItemError) as e:
        run(sb, **kw)
    return e.value.cause


VOLC_WAYS = {"inline": volc.VolcParams(), "by url": volc.VolcParams(return_url=True)}


# ---- F2b: only PNG, JPEG and WEBP reach a decoder ---------------------------------------------------

@pytest.fixture
def no_subprocess(monkeypatch):
    """Records (and refuses) any program Pillow would start, e.g. Ghostscript for EPS."""
    started = []

    def refuse(*args, **kwargs):
        started.append(args[0] if args else kwargs.get("args"))
        raise OSError("no programs in this test")
    monkeypatch.setattr(subprocess, "Popen", refuse)
    return started


@pytest.mark.parametrize("fmt", list(hostile.FORMATS))
@pytest.mark.parametrize("way", list(VOLC_WAYS))
def test_volc_results_in_other_formats_are_refused_undecoded(sb, no_subprocess, fmt, way):
    sb.inject("volc", "other_format", format=fmt)
    error = failure(run_volc, sb, params=VOLC_WAYS[way])
    assert error.code == "BadResult" and error.billed is True and error.request_id, str(error)
    assert "not a PNG, JPEG or WEBP image" in str(error) and no_subprocess == []


@pytest.mark.parametrize("fmt", list(hostile.FORMATS))
def test_dashscope_results_in_other_formats_are_refused_undecoded(sb, no_subprocess, fmt):
    sb.inject("dashscope", "other_format", format=fmt)
    error = failure(run_ds, sb)
    assert error.code == "BadResult" and error.billed is True and error.task_id, str(error)
    assert "not a PNG, JPEG or WEBP image" in str(error) and no_subprocess == []


def test_the_header_reader_agrees_with_pillow_and_names_what_it_refuses():
    rng = torch.Generator().manual_seed(0)
    arr = (torch.rand((37, 53, 3), generator=rng) * 255).to(torch.uint8).numpy()
    import io
    for fmt, options in (("PNG", {}), ("JPEG", {}), ("JPEG", {"progressive": True}), ("WEBP", {"lossless": True}),
                         ("WEBP", {"quality": 70}), ("WEBP", {"exif": b"Exif\x00\x00"})):
        out = io.BytesIO()
        Image.fromarray(arr).save(out, fmt, **options)
        assert imageheader.header(out.getvalue()) == (fmt, 53, 37)
        assert imagecodec.decode_image(out.getvalue()).shape == (1, 37, 53, 3)
    for fmt in hostile.FORMATS:
        data, _ = hostile.other_format(fmt)
        with pytest.raises(imagecodec.DecodeError, match=hostile.FORMATS[fmt][0][:3]):
            imagecodec.decode_image(data)


# ---- F3: decompression bombs -------------------------------------------------------------------------

@pytest.mark.parametrize("way", list(VOLC_WAYS))
def test_volc_13000_squared_bomb_is_refused_from_its_header(sb, way):
    sb.inject("volc", "bomb", width=13000, height=13000)
    started = time.monotonic()
    error = failure(run_volc, sb, params=VOLC_WAYS[way])
    assert error.code == "ResultTooLarge" and error.billed is True and error.request_id, str(error)
    assert "13000x13000" in str(error) and "before decoding" in str(error)
    assert time.monotonic() - started < 3  # nothing of its 2 GB as an IMAGE was made


@pytest.mark.parametrize("vendor", ["volc", "dashscope"])
def test_30000_squared_bomb_is_refused_with_pillows_limit_switched_off(sb, monkeypatch, vendor):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", None)  # as some other custom nodes do
    sb.inject(vendor, "bomb", width=30000, height=30000)
    error = failure(run_volc if vendor == "volc" else run_ds, sb)
    assert error.code == "ResultTooLarge" and error.billed is True and "30000x30000" in str(error), str(error)


def test_dashscope_13000_squared_bomb_names_its_task(sb):
    sb.inject("dashscope", "bomb", width=13000, height=13000)
    error = failure(run_ds, sb)
    assert error.code == "ResultTooLarge" and error.task_id and "resume_task_ids" in error.hint, str(error)


def test_the_cap_follows_what_was_asked(sb):
    # Volcengine fits its result into max_width x max_height: a 3000² answer to 1024x1024 is no result
    sb.inject("volc", "bomb", width=3000, height=3000)
    error = failure(run_volc, sb, params=volc.VolcParams(max_width=1024, max_height=1024))
    assert error.code == "ResultTooLarge" and "1024x1024" in str(error)
    sb.inject("volc", "bomb", width=2500, height=2500)  # ...within the default 1920² (with slack) it is one
    out, _, _ = run_volc(sb)
    assert out.shape[1:3] == (2500, 2500)
    # DashScope: the planned canvas (512² scaled 2x1 = 1024x512), with slack
    sb.inject("dashscope", "bomb", width=3000, height=3000)
    error = failure(run_ds, sb, params=ds.DashScopeParams(mode="scale", x_scale=2.0, y_scale=1.0))
    assert error.code == "ResultTooLarge" and "1024x512" in str(error)


def test_decoding_never_goes_past_the_packs_own_cap(monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", None)
    bomb = hostile.bomb_png(8193, 8192)
    with pytest.raises(imagecodec.DecodeError, match="8193x8192"):
        imagecodec.decode_image(bomb)
    with pytest.raises(imagecodec.DecodeError, match="8193x8192"):
        imagecodec.decode_mask(bomb)
    assert imageheader.result_pixel_cap(100, 100) == 22500 and imageheader.result_pixel_cap(8192, 8192) == 8192**2


# ---- F3: answers and downloads without end ---------------------------------------------------------

def test_volc_endless_json_answer_stops_at_its_cap(sb):
    sb.inject("volc", "endless", mb_per_s=400, max_mb=400)
    started = time.monotonic()
    config = volc.VolcConfig(max_download_bytes=4 * 2**20)  # a 4 MiB inline result: the answer cap is ~6 MiB
    error = failure(run_volc, sb, config=config)
    assert error.code == "AnswerTooLarge" and error.billed is None and error.request_id, str(error)
    assert time.monotonic() - started < 5
    assert config.max_answer_bytes == 4 * 2**20 * 4 // 3 + 2**20


def test_dashscope_endless_poll_answer_stops_at_its_cap_and_the_task_is_cancelled(sb):
    sb.inject("dashscope", "stuck", state="PENDING")
    sb.inject("dashscope", "poll_endless", mb_per_s=100, max_mb=200)
    started = time.monotonic()
    error = failure(run_ds, sb)
    assert error.code == "AnswerTooLarge" and error.task_id and "cancelled" in error.hint, str(error)
    assert time.monotonic() - started < 5
    assert sb.dashscope_task(error.task_id)["status"] == "CANCELED"


@pytest.mark.parametrize("vendor", ["volc", "dashscope"])
def test_endless_result_download_stops_at_its_cap(sb, vendor):
    sb.inject(vendor, "endless_url", mb_per_s=200, max_mb=400)
    if vendor == "volc":
        error = failure(run_volc, sb, params=volc.VolcParams(return_url=True),
                        config=volc.VolcConfig(max_download_bytes=8 * 2**20))
    else:
        error = failure(run_ds, sb, config=FAST_DASHSCOPE.__class__(**{**FAST_DASHSCOPE.__dict__,
                                                                         "max_download_bytes": 8 * 2**20}))
    assert error.code == "ResultTooLarge" and error.billed is True, str(error)


@pytest.mark.parametrize("kind,params", [("bomb", {"width": 0}), ("other_format", {"format": "psd"}),
                                         ("endless", {"max_mb": 0}), ("trickle_url", {"interval": -1})])
def test_sandbox_refuses_bad_hostile_faults(sb, kind, params):
    with pytest.raises(ValueError):
        sb.inject("volc", kind, **params)
