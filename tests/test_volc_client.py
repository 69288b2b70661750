"""The Volcengine client and the run orchestration, over real HTTP against the sandbox.

Counts come from the sandbox's request log: how many requests arrived and how many a real
vendor would bill, so "never resent" is measured, not assumed.
"""

import socket
import time
from dataclasses import replace

import pytest
import torch
from pack import module

Sandbox = module("nodes.sandbox").Sandbox
volc = module("nodes.core.volc")
run_mod = module("nodes.core.volc_run")
transport = module("nodes.core.transport")
geometry = module("nodes.core.geometry")
canvas = module("nodes.core.canvas")
errors = module("nodes.core.errors")
VolcCredentials = module("nodes.core.credentials").VolcCredentials


def creds(sb, **kw):
    return replace(sb.volc_credentials(), **kw)


def bearer(sb, key=None):
    return replace(sb.volc_bearer_credentials(), api_key=key or sb.volc_api_key)


def photo(b=1, h=48, w=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    base = torch.rand((b, 3, 4, 4), generator=g)
    return torch.nn.functional.interpolate(base, size=(h, w), mode="bilinear").movedim(1, -1).contiguous()


def run(sb, image=None, mask=None, params=None, credentials=None, config=volc.VolcConfig(), **options):
    image = photo() if image is None else image
    options.setdefault("timeout_s", 20)
    return run_mod.run(image, mask, params or volc.VolcParams(top=0.25, bottom=0.25, left=0.25, right=0.25),
                       credentials or creds(sb), run_mod.VolcOptions(**options), config)


def item_error(exc_info) -> "errors.VendorError":
    assert isinstance(exc_info.value, errors.ItemError)
    return exc_info.value.cause


# ---- success paths ----------------------------------------------------------------------------

def test_ratio_mode_geometry_and_original_kept(sb):
    image = photo()
    out, mask, info = run(sb, image, image_format="png")
    assert out.shape == (1, 72, 96, 3) and mask.shape == (1, 72, 96)
    assert torch.allclose(out[:, 20:52, 24:72], image[:, 8:40, 8:56], atol=1 / 255)  # centre untouched
    assert mask[0, 0, 0] == 1 and mask[0, 36, 48] == 0
    report = info.to_dict()["results"][0]
    entry = sb.requests("volc")[0]
    assert report["request_id"] and report["output"] == "96x72" and entry.billable
    assert sb.log.count("volc", billable=True) == 1


def test_max_size_resize_is_mapped_back(sb):
    params = volc.VolcParams(top=0.5, bottom=0.5, left=1.0, right=1.0, max_width=96, max_height=96)
    out, mask, info = run(sb, photo(h=48, w=64), params=params, output_resolution="vendor")
    # canvas 192x96 -> fit 96x96 -> 96x48; the original sits at x 24..48, y 12..36
    assert out.shape == (1, 48, 96, 3)
    assert mask[0, 24, 36] == 0 and mask[0, 24, 10] == 1 and mask[0, 2, 36] == 1
    # output_resolution = original (the default): the canvas at the photo's own scale, 192x96
    out, mask, info = run(sb, photo(h=48, w=64), params=params)
    assert out.shape == (1, 96, 192, 3) and info.results[0].vendor_output == "96x48"
    assert mask[0, 48, 96] == 0 and mask[0, 48, 20] == 1 and mask[0, 4, 96] == 1


def test_canvas_mode_with_mask_builder_output(sb):
    image = photo()
    placement = geometry.pad_pixels(64, 48, 16, 0, 16, 8)
    padded = canvas.build_canvas(image, placement)
    mask, _ = canvas.build_mask(placement, 1, 4)
    out, out_mask, info = run(sb, padded, mask)
    assert out.shape == (1, 56, 96, 3)
    entry = sb.requests("volc")[0]
    assert entry.detail["mode"] == "canvas"
    assert torch.allclose(out_mask, mask)
    assert info.to_dict()["mode"] == "canvas"


@pytest.mark.parametrize("white_means", ["generate", "keep"])
def test_mask_polarity_is_configurable(white_means):
    with Sandbox(volc_mask_white_means=white_means) as sb:
        image = torch.zeros((1, 32, 32, 3))
        placement = geometry.pad_pixels(32, 32, 16, 0, 0, 0)
        padded = canvas.build_canvas(image, placement, fill="color", color=(1.0, 1.0, 1.0))
        mask, _ = canvas.build_mask(placement, 1, 0)
        config = volc.VolcConfig(mask_white_means=white_means)
        out, _, _ = run(sb, padded, mask, config=config, keep_original=False, image_format="png")
        # the sandbox generates exactly where the client said: the white pad area changes, the black
        # original does not
        assert out[0, :, 20:].max() < 0.05
        assert out[0, :, :14].mean() < 0.9


def test_prompt_reaches_both_documented_fields(sb):
    run(sb, params=volc.VolcParams(prompt="蓝色的海洋, blue sea"))
    assert set(sb.requests("volc")[0].detail["prompt_fields"]) == {"custom_prompt", "prompt"}
    run(sb, params=volc.VolcParams(prompt="sea"), config=volc.VolcConfig(prompt_field="prompt"))
    assert sb.requests("volc")[1].detail["prompt_fields"] == ("prompt",) or \
        list(sb.requests("volc")[1].detail["prompt_fields"]) == ["prompt"]


def test_bearer_gateway(sb):
    out, _, _ = run(sb, credentials=bearer(sb))
    assert out.shape[0] == 1 and sb.requests("volc")[0].detail["auth"] == "bearer"
    with pytest.raises(errors.ItemError) as e:
        run(sb, credentials=bearer(sb, "sk-wrong"))
    assert item_error(e).http_status == 401 and sb.log.count("volc") == 2


def test_batch_and_variants_are_item_major_and_seeded(sb):
    images = torch.stack([torch.full((48, 64, 3), v) for v in (0.1, 0.5, 0.9)])
    out, mask, info = run(sb, images, params=volc.VolcParams(seed=5), variants=2, concurrency=4,
                          image_format="png")
    assert out.shape[0] == mask.shape[0] == 6
    centres = out[:, 36, 48, 0].tolist()
    assert centres == pytest.approx([0.1, 0.1, 0.5, 0.5, 0.9, 0.9], abs=2 / 255)
    report = info.to_dict()["results"]
    assert [(r["image"], r["variant"], r["seed"]) for r in report] == \
        [(1, 1, 5), (1, 2, 6), (2, 1, 5), (2, 2, 6), (3, 1, 5), (3, 2, 6)]
    assert sorted(e.detail["seed"] for e in sb.requests("volc")) == [5, 5, 5, 6, 6, 6]


def test_return_url_result_is_downloaded(sb):
    out, _, info = run(sb, params=volc.VolcParams(top=0.25, bottom=0.25, left=0.25, right=0.25, return_url=True))
    assert out.shape == (1, 72, 96, 3)
    assert [e.path for e in sb.requests()][-1].startswith("/sandbox/results/")


def test_big_input_is_shrunk_to_the_configured_limit(sb):
    config = volc.VolcConfig(max_input_side=32)
    out, _, info = run(sb, photo(h=48, w=64), config=config)
    assert sb.requests("volc")[0].detail["input_size"] == (32, 24)
    assert "scaled to 32x24" in info.to_dict()["results"][0]["input_notes"][0]


# ---- vendor errors: one request, a clear error, never resent ----------------------------------------

@pytest.mark.parametrize("code,words", [(50411, "moderation"), (50412, "text moderation"),
                                       (50511, "different seed"), (50400, "not enabled"), (50500, "internal"),
                                       (50207, "decode")])
def test_business_errors_are_explained_and_not_retried(sb, code, words):
    sb.inject("volc", "error", code=code)
    with pytest.raises(errors.ItemError) as e:
        run(sb)
    err = item_error(e)
    assert err.code == code and words in err.meaning and err.request_id
    assert sb.log.count("volc") == 1
    assert str(err.request_id) in str(e.value) and "image 1" in str(e.value)


def test_gateway_signature_errors(sb):
    with pytest.raises(errors.ItemError) as e:
        run(sb, credentials=VolcCredentials("aksk", "t", sb.url, sb.volc_access_key, "wrong-secret"))
    assert item_error(e).code == "SignatureDoesNotMatch" and "secret key" in item_error(e).meaning
    with pytest.raises(errors.ItemError) as e:
        run(sb, credentials=VolcCredentials("aksk", "t", sb.url, "AKLTunknown", "x"))
    assert item_error(e).code == "InvalidAccessKey"
    assert sb.log.count("volc", billable=True) == 0 and sb.log.count("volc") == 2


def test_clock_skew_is_explained(sb):
    sb.clock_offset = 20 * 60
    with pytest.raises(errors.ItemError) as e:
        run(sb)
    assert item_error(e).code == "InvalidTimestamp" and "clock" in item_error(e).meaning


@pytest.mark.parametrize("code", [50429, 50430])
def test_throttling_is_retried_with_retry_after(sb, code):
    sb.inject("volc", "throttle", times=2, code=code, retry_after="0.3")
    started = time.monotonic()
    out, _, _ = run(sb)
    assert time.monotonic() - started >= 0.6
    assert sb.log.count("volc") == 3 and sb.log.count("volc", billable=True) == 1


def test_throttling_that_outlasts_the_timeout_fails_fast(sb):
    sb.inject("volc", "throttle", times=5, retry_after="60")
    started = time.monotonic()
    with pytest.raises(errors.ItemError) as e:
        run(sb, timeout_s=5)
    assert item_error(e).code == 50429 and time.monotonic() - started < 2
    assert sb.log.count("volc") == 1


def test_proxy_503_page_is_retried_but_502_is_not(sb):
    sb.inject("volc", "http_5xx_plain", status=503)
    run(sb)
    assert sb.log.count("volc") == 2
    sb.log.clear()
    sb.inject("volc", "http_5xx_plain", status=502)
    with pytest.raises(errors.ItemError) as e:
        run(sb)
    assert item_error(e).http_status == 502 and sb.log.count("volc") == 1


def test_read_timeout_is_never_resent(sb):
    sb.inject("volc", "slow", seconds=3)
    started = time.monotonic()
    with pytest.raises(errors.ItemError) as e:
        run(sb, config=volc.VolcConfig(read_timeout=0.5))
    err = item_error(e)
    assert err.code == "ReadTimeout" and err.billed is None and "not sent again" in err.meaning
    assert time.monotonic() - started < 2.5 and sb.log.count("volc") == 1


@pytest.mark.parametrize("kind", ["drop_after", "drop_before"])
def test_dropped_connection_is_never_resent(sb, kind):
    sb.inject("volc", kind)
    with pytest.raises(errors.ItemError) as e:
        run(sb)
    assert item_error(e).code == "ConnectionLost" and sb.log.count("volc") == 1


def test_connection_refused_is_retried_until_the_deadline():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens here once closed
    dead = VolcCredentials("aksk", "t", f"http://127.0.0.1:{port}", "AK", "SK")
    started = time.monotonic()
    with pytest.raises(errors.ItemError) as e:
        run(None, credentials=dead, timeout_s=3)
    err = item_error(e)
    assert err.code == "ConnectionFailed" and err.billed is False
    assert time.monotonic() - started < 4.5


@pytest.mark.parametrize("kind,params,code,billed", [
    ("malformed", {}, "MalformedResponse", None),
    ("bad_base64", {}, "BadResult", True),
])
def test_broken_success_answers(sb, kind, params, code, billed):
    sb.inject("volc", kind, **params)
    with pytest.raises(errors.ItemError) as e:
        run(sb)
    assert item_error(e).code == code and item_error(e).billed is billed
    assert sb.log.count("volc") == 1


def test_result_link_404_and_oversized(sb):
    sb.inject("volc", "url_404")
    with pytest.raises(errors.ItemError) as e:
        run(sb, params=volc.VolcParams(return_url=True))
    assert item_error(e).code == "HTTP404" and item_error(e).request_id
    sb.inject("volc", "oversized_url", size=5 * 2**20)
    with pytest.raises(errors.ItemError) as e:
        run(sb, params=volc.VolcParams(return_url=True), config=volc.VolcConfig(max_download_bytes=2**20))
    assert item_error(e).code == "ResultTooLarge"
    assert sb.log.count("volc", billable=True) == 2


# ---- bad input: rejected before a single request ------------------------------------------------

@pytest.mark.parametrize("params,match", [
    (volc.VolcParams(steps=0), "steps"), (volc.VolcParams(seed=-2), "seed"),
    (volc.VolcParams(scale=25.0), "scale"), (volc.VolcParams(strength=0.05), "strength"),
    (volc.VolcParams(top=0, bottom=0, left=0, right=0), "nothing to outpaint"),
    (volc.VolcParams(left=1.5), "left"), (volc.VolcParams(prompt="x" * 801), "prompt"),
])
def test_bad_parameters_cost_nothing(sb, params, match):
    with pytest.raises(errors.InputError, match=match):
        run(sb, params=params)
    assert sb.log.count() == 0


@pytest.mark.parametrize("image,mask,match", [
    (torch.zeros((0, 8, 8, 3)), None, "empty"),
    (torch.full((1, 8, 8, 3), float("nan")), None, "NaN"),
    (photo(), torch.ones((1, 40, 64)), "must be 64x48"),
    (photo(), torch.zeros((1, 48, 64)), "marks nothing"),
    (photo(b=2), torch.ones((3, 48, 64)), "batch"),
])
def test_bad_images_cost_nothing(sb, image, mask, match):
    with pytest.raises(errors.InputError, match=match):
        run(sb, image, mask)
    assert sb.log.count() == 0


# ---- waiting: interrupt and timeout -----------------------------------------------------------------

def interrupt_after(seconds):
    deadline = time.monotonic() + seconds

    class Interrupted(BaseException):
        pass

    def poll():
        if time.monotonic() > deadline:
            raise Interrupted()
    return poll, Interrupted


@pytest.mark.parametrize("fault", [("slow", {"seconds": 5}), ("throttle", {"retry_after": "30"})])
def test_interrupt_ends_the_run_within_a_second(sb, fault):
    sb.inject("volc", fault[0], **fault[1])
    poll, Interrupted = interrupt_after(0.5)
    started = time.monotonic()
    with pytest.raises(Interrupted):
        run_mod.run(photo(), None, volc.VolcParams(), creds(sb), run_mod.VolcOptions(timeout_s=60),
                    hooks=run_mod.RunHooks(poll=poll))
    assert time.monotonic() - started < 1.5


def test_timeout_bounds_a_slow_vendor(sb):
    sb.latency = 5
    started = time.monotonic()
    with pytest.raises(errors.ItemError) as e:
        run(sb, timeout_s=1)
    assert item_error(e).code in ("ReadTimeout", "Timeout") and time.monotonic() - started < 2.5


def test_status_and_progress_hooks(sb):
    sb.latency = 0.5
    seen, progress = [], []
    run_mod.run(photo(b=2), None, volc.VolcParams(), creds(sb), run_mod.VolcOptions(concurrency=1),
                hooks=run_mod.RunHooks(status=seen.append, progress=lambda d, t: progress.append((d, t))))
    assert progress[0] == (0, 2) and progress[-1] == (2, 2)
    assert any("0/2 done, 1 running" in s for s in seen) and "2/2 done" in seen[-1]


def test_concurrency_runs_requests_in_parallel(sb):
    sb.latency = 0.4
    started = time.monotonic()
    run(sb, photo(b=4), concurrency=4)
    assert time.monotonic() - started < 1.2  # serial would take 1.6 s
