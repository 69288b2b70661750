"""A catalogue of bad inputs: each is refused before any network call, with a message that names
what to change, and the sandbox saw zero requests.

MaskCanvasBuilder cases go through geometry/canvas or the node (tests/comfy_driver.py);
VolcOutpaint and DashScopeOutpaint cases go through volc_run.run / dashscope_run.run against a
live Sandbox, so "nothing was sent" is measured by its request log.
"""

import asyncio
import inspect
from dataclasses import replace

import comfy_driver as drv
import pytest
import torch
from pack import FAST_DASHSCOPE, InputError, canvas, geometry, module

Sandbox = module("nodes.sandbox").Sandbox
volc = module("nodes.core.volc")
volc_run = module("nodes.core.volc_run")
ds = module("nodes.core.dashscope")
ds_run = module("nodes.core.dashscope_run")
credentials = module("nodes.core.credentials")
MaskCanvasBuilder = module("nodes.canvas_node").MaskCanvasBuilder

FAST = FAST_DASHSCOPE
NAN, INF = float("nan"), float("inf")
TASK_1, TASK_2 = "d76ec1e8-ea27-4038-8913-235c88ef0f70", "4cbabbdf-2c1f-43f4-b983-c2cc47f4c115"
VOLC = volc.VolcParams(top=0.25, bottom=0.25, left=0.25, right=0.25)
DS = ds.DashScopeParams()


@pytest.fixture(scope="module")
def shared_sandbox():
    with Sandbox(dashscope_pending_s=0.1, dashscope_running_s=0.2) as sandbox:
        yield sandbox


@pytest.fixture
def sb(shared_sandbox):
    shared_sandbox.reset()
    yield shared_sandbox
    assert shared_sandbox.errors == []


def img(b=1, h=48, w=64, c=3, dtype=torch.float32, fill=None):
    t = torch.rand((b, h, w, c), generator=torch.Generator().manual_seed(0))
    if fill is not None:
        t[0, h // 2, w // 2, 0] = fill
    return t.to(dtype) if dtype != torch.float32 else t


def huge(side):
    return torch.zeros(1, 1, 1, 3).expand(1, side, side, 3)


def huge_mask(side):
    return torch.ones(1, 1, 1).expand(1, side, side)


# ---- drivers ------------------------------------------------------------------------------------

def volc_call(image=None, mask=None, params=VOLC, **options):
    def call(sb):
        options.setdefault("timeout_s", 20)
        creds = sb.volc_credentials()
        volc_run.run(img() if image is None else image, mask, params, creds, volc_run.VolcOptions(**options))
    return call


def ds_call(image=None, params=DS, **options):
    def call(sb):
        options.setdefault("timeout_s", 20)
        creds = sb.dashscope_credentials()
        ds_run.run(img(h=64, w=64) if image is None else image, params, creds,
                   ds_run.DashScopeOptions(**options), FAST)
    return call


def local(fn, *args, **kw):
    return lambda sb: fn(*args, **kw)


def node_widgets():
    info = drv.node_info(MaskCanvasBuilder)
    return {name: opts["default"] for name, (io_type, opts) in info["input"]["required"].items()
            if io_type not in ("IMAGE", "MASK")}


def node_call(image=None, mask=None, **overrides):
    def call(sb):
        inputs = {**node_widgets(), "image": img(h=16, w=16) if image is None else image, **overrides}
        if mask is not None:
            inputs["mask"] = mask
        drv.execute(MaskCanvasBuilder, linked={"image", "mask"} & set(inputs), **inputs)
    return call


P8 = geometry.pad_pixels(8, 8, 2, 2, 2, 2)

# id -> (call, key word the message must contain)
CASES = {
    # ---- MaskCanvasBuilder (geometry / canvas / node) ------------------------------------------
    "canvas-empty-batch": (local(canvas.check_image, torch.rand(0, 8, 8, 3)), "empty"),
    "canvas-zero-height": (local(canvas.check_image, torch.rand(1, 0, 8, 3)), "at least 1"),
    "canvas-2-channel": (local(canvas.build_canvas, torch.rand(1, 8, 8, 2), P8), "shape"),
    "canvas-5d-tensor": (local(canvas.check_image, torch.rand(1, 1, 8, 8, 3)), "shape"),
    "canvas-not-a-tensor": (local(canvas.check_image, [[0.5]]), "IMAGE tensor"),
    "node-uint8-image": (node_call(img(h=16, w=16, dtype=torch.uint8)), "dtype"),
    "node-int16-image": (node_call(img(h=16, w=16, dtype=torch.int16)), "dtype"),
    "canvas-negative-pixels": (local(geometry.pad_pixels, 8, 8, -1, 0, 0, 0), "negative"),
    "canvas-zero-size-image": (local(geometry.pad_pixels, 0, 8, 1, 1, 1, 1), "at least 1 px"),
    "canvas-over-16384": (local(geometry.pad_pixels, 8, 8, 0, 0, 16380, 0), "16384"),
    "canvas-scale-over-16384": (local(geometry.pad_scale, 6000, 10, 3.0, 1.0), "16384"),
    "canvas-scale-below-1": (local(geometry.pad_scale, 8, 8, 0.5, 1.0), ">= 1.0"),
    "canvas-scale-nan": (local(geometry.pad_scale, 8, 8, float("nan"), 1.0), ">= 1.0"),
    "canvas-negative-fraction": (local(geometry.pad_fractions, 8, 8, -0.1, 0, 0, 0), ">= 0"),
    "canvas-inf-fraction": (local(geometry.pad_fractions, 8, 8, 0, float("inf"), 0, 0), ">= 0"),
    "canvas-target-smaller": (local(geometry.pad_to_size, 64, 64, 32, 64), "smaller"),
    "aspect-garbage": (local(geometry.parse_ratio, "wide"), "W:H"),
    "aspect-zero-height": (local(geometry.parse_ratio, "16:0"), "W:H"),
    "aspect-zero-width": (local(geometry.parse_ratio, "0:9"), "W:H"),
    "aspect-empty": (local(geometry.parse_ratio, ""), "W:H"),
    "aspect-negative": (local(geometry.parse_ratio, "-1.5"), "W:H"),
    "aspect-extreme": (local(geometry.parse_ratio, "1:100"), "1:64"),
    "node-aspect-three-parts": (node_call(expand_mode="aspect_ratio", aspect_ratio="16:9:2"), "W:H"),
    "colour-short-hex": (local(canvas.parse_color, "#12"), "#RRGGBB"),
    "colour-bad-hex": (local(canvas.parse_color, "#GGHHII"), "#RRGGBB"),
    "colour-out-of-range": (local(canvas.parse_color, "300,0,0"), "0-255"),
    "colour-two-values": (local(canvas.parse_color, "10,20"), "r,g,b"),
    "node-colour-name": (node_call(fill="color", fill_color="blue"), "#RRGGBB"),
    "canvas-unknown-fill": (local(canvas.build_canvas, torch.rand(1, 8, 8, 3), P8, "noise"), "unknown fill"),
    "node-unknown-fill": (node_call(fill="smear"), "fill"),
    "canvas-unknown-anchor": (local(geometry.plan_expansion, 8, 8, "scale", x_scale=2.0, anchor="middle"),
                              "unknown anchor"),
    "canvas-unknown-mode": (local(geometry.plan_expansion, 8, 8, "percent"), "unknown expand mode"),
    "node-unknown-mode": (node_call(expand_mode="percent"), "expand_mode"),
    "canvas-multiple-of-zero": (local(geometry.plan_expansion, 8, 8, "pixels", left=1, multiple_of=0),
                                "multiple_of"),
    "canvas-noise-over-1": (local(canvas.build_canvas, torch.rand(1, 8, 8, 3), P8, "grey", noise=2.0), "noise"),
    "canvas-negative-feather": (local(canvas.build_mask, P8, 1, -1), ">= 0"),
    "canvas-unknown-curve": (local(canvas.build_mask, P8, 1, 4, 0, "cubic"), "feather curve"),
    "canvas-mask-wrong-size": (local(canvas.merge_mask, torch.zeros(1, 12, 12), torch.zeros(1, 5, 5), P8),
                               "it must be"),
    "canvas-mask-batch-mismatch": (local(canvas.merge_mask, torch.zeros(2, 12, 12), torch.zeros(3, 8, 8), P8),
                                   "mask batch"),
    "canvas-mask-4d": (local(canvas.merge_mask, torch.zeros(1, 12, 12), torch.zeros(1, 1, 8, 8), P8),
                       "expected [batch"),
    "node-mask-wrong-size": (node_call(mask=torch.zeros(1, 7, 7), left=4), "it must be"),
    "node-mask-batch-mismatch": (node_call(img(b=2, h=16, w=16), mask=torch.zeros(3, 16, 16), left=4),
                                 "mask batch"),

    # ---- VolcOutpaint ---------------------------------------------------------------------------
    "volc-empty-batch": (volc_call(torch.rand(0, 48, 64, 3)), "empty"),
    "volc-nan-pixel": (volc_call(img(fill=float("nan"))), "NaN"),
    "volc-inf-pixel": (volc_call(img(fill=float("inf"))), "infinite"),
    "volc-uint8-image": (volc_call(img(dtype=torch.uint8)), "dtype"),
    "volc-int16-image": (volc_call(img(dtype=torch.int16)), "dtype"),
    "volc-2-channel": (volc_call(img(c=2)), "shape"),
    "volc-mask-wrong-size": (volc_call(mask=torch.ones(1, 10, 10)), "it must be"),
    "volc-mask-batch-mismatch": (volc_call(img(b=2), mask=torch.ones(3, 48, 64)), "mask batch"),
    "volc-all-zero-mask": (volc_call(mask=torch.zeros(1, 48, 64)), "marks nothing"),
    "volc-nan-mask": (volc_call(mask=torch.full((1, 48, 64), float("nan"))), "NaN"),
    "volc-zero-expansion": (volc_call(params=volc.VolcParams(top=0, bottom=0, left=0, right=0)),
                            "nothing to outpaint"),
    "volc-negative-side": (volc_call(params=replace(VOLC, top=-0.1)), "top is -0.1"),
    "volc-side-over-1": (volc_call(params=replace(VOLC, left=1.5)), "left is 1.5"),
    "volc-nan-side": (volc_call(params=replace(VOLC, right=float("nan"))), "right is nan"),
    "volc-canvas-over-16384": (volc_call(img(h=9000, w=4), params=volc.VolcParams(top=1.0, bottom=1.0)), "16384"),
    "volc-prompt-801-chars": (volc_call(params=replace(VOLC, prompt="a" * 801)), "characters"),
    "volc-steps-0": (volc_call(params=replace(VOLC, steps=0)), "steps"),
    "volc-steps-101": (volc_call(params=replace(VOLC, steps=101)), "steps"),
    "volc-scale-0.5": (volc_call(params=replace(VOLC, scale=0.5)), "scale"),
    "volc-scale-21": (volc_call(params=replace(VOLC, scale=21.0)), "scale"),
    "volc-strength-0.05": (volc_call(params=replace(VOLC, strength=0.05)), "strength"),
    "volc-strength-1.5": (volc_call(params=replace(VOLC, strength=1.5)), "strength"),
    "volc-seed-minus-2": (volc_call(params=replace(VOLC, seed=-2)), "seed"),
    "volc-seed-2-31": (volc_call(params=replace(VOLC, seed=2**31)), "seed"),
    "volc-max-width-32": (volc_call(params=replace(VOLC, max_width=32)), "max_width"),
    "volc-watermark-opacity": (volc_call(params=replace(VOLC, watermark=volc.Watermark(opacity=2.0))), "opacity"),
    "volc-variants-0": (volc_call(variants=0), "variants"),
    "volc-variants-5": (volc_call(variants=5), "variants"),
    "volc-concurrency-0": (volc_call(concurrency=0), "concurrency"),
    "volc-concurrency-17": (volc_call(concurrency=17), "concurrency"),
    "volc-timeout-0": (volc_call(timeout_s=0), "timeout_s"),
    "volc-timeout-negative": (volc_call(timeout_s=-5), "timeout_s"),
    "volc-format-webp": (volc_call(image_format="webp"), "image_format"),

    # ---- DashScopeOutpaint ----------------------------------------------------------------------
    "ds-empty-batch": (ds_call(torch.rand(0, 64, 64, 3)), "empty"),
    "ds-nan-pixel": (ds_call(img(h=64, w=64, fill=float("nan"))), "NaN"),
    "ds-inf-pixel": (ds_call(img(h=64, w=64, fill=float("-inf"))), "infinite"),
    "ds-uint8-image": (ds_call(img(h=64, w=64, dtype=torch.uint8)), "dtype"),
    "ds-2-channel": (ds_call(img(h=64, w=64, c=2)), "shape"),
    "ds-aspect-over-8-to-1": (ds_call(img(h=64, w=600)), "8:1"),
    "ds-too-small-1x9": (ds_call(img(h=1, w=9)), "too small"),
    "ds-x-scale-over-3": (ds_call(params=replace(DS, x_scale=3.5)), "1.0 to 3.0"),
    "ds-y-scale-under-1": (ds_call(params=replace(DS, y_scale=0.5)), "1.0 to 3.0"),
    "ds-offsets-3x-width": (ds_call(params=replace(DS, mode="offsets", left_offset=96, right_offset=96)),
                            "offsets too large"),
    "ds-offsets-3x-height": (ds_call(params=replace(DS, mode="offsets", top_offset=192)), "offsets too large"),
    "ds-negative-offset": (ds_call(params=replace(DS, mode="offsets", left_offset=-10, right_offset=20)),
                           "left_offset is -10; DashScope accepts 0 to 12288"),
    "ds-canvas-over-16384": (ds_call(img(h=8, w=6000), params=replace(DS, x_scale=3.0)), "16384"),
    "ds-output-ratio-2-1": (ds_call(params=replace(DS, mode="output_ratio", output_ratio="2:1")), "output_ratio"),
    # issue 12: quarter turns are sent with an expansion; what expands nothing is refused instead
    "ds-rotate-only-angle-0": (ds_call(params=replace(DS, mode="rotate_only", angle=0)), "angle 0 does nothing"),
    "ds-scale-1x1": (ds_call(params=replace(DS, x_scale=1.0, y_scale=1.0)), "expands nothing"),
    "ds-offsets-all-0": (ds_call(params=replace(DS, mode="offsets", left_offset=0, right_offset=0)),
                         "expands nothing"),
    "ds-output-over-4-1": (ds_call(img(h=512, w=1024), params=replace(DS, x_scale=3.0, y_scale=1.0)),
                           "1:4 to 4:1"),
    "ds-angle-360": (ds_call(params=replace(DS, angle=360)), "0 to 359"),
    "ds-angle-negative": (ds_call(params=replace(DS, angle=-10)), "0 to 359"),
    "ds-unknown-mode": (ds_call(params=replace(DS, mode="zoom")), "mode 'zoom' is not one of"),
    "ds-concurrency-0": (ds_call(concurrency=0), "concurrency"),
    "ds-timeout-0": (ds_call(timeout_s=0), "timeout_s"),
    "ds-format-gif": (ds_call(image_format="gif"), "image_format"),
    "ds-resume-ids-too-few": (ds_call(img(b=2, h=64, w=64), resume_task_ids=[TASK_1]), "give one per image"),
    "ds-resume-ids-too-many": (ds_call(resume_task_ids=[TASK_1, TASK_2]), "give one per image"),

    # ---- redteam F12: NaN / inf deadlines ----------------------------------------------------------
    "volc-timeout-nan": (volc_call(timeout_s=NAN), "timeout_s"),
    "ds-timeout-nan": (ds_call(timeout_s=NAN), "timeout_s"),
    "ds-timeout-inf": (ds_call(timeout_s=INF), "timeout_s"),
    # ---- redteam F13: what reached a raw exception (or the vendor) -------------------------------
    "volc-prompt-lone-surrogate": (volc_call(params=replace(VOLC, prompt="sky \ud800 sea")), "prompt has a broken"),
    "volc-watermark-text-surrogate": (volc_call(params=replace(VOLC, watermark=volc.Watermark(text="\udfff"))),
                                      "watermark_text has a broken"),
    "volc-prompt-none": (volc_call(params=replace(VOLC, prompt=None)), "prompt is NoneType, not text"),
    "volc-variants-1.5": (volc_call(variants=1.5), "variants is 1.5; it must be a whole number"),
    "volc-steps-30.5": (volc_call(params=replace(VOLC, steps=30.5)), "steps is 30.5; it must be a whole number"),
    "volc-seed-1.5": (volc_call(params=replace(VOLC, seed=1.5)), "seed is 1.5; it must be a whole number"),
    "ds-angle-45.5": (ds_call(params=replace(DS, angle=45.5)), "angle is 45.5; it must be a whole number"),
    # claimed with expand(): 1.2e9 and 3e10 float32 values the run must refuse before converting any
    "volc-canvas-mode-20000": (volc_call(huge(20000), mask=huge_mask(20000)), "16384"),
    "volc-canvas-mode-100000": (volc_call(huge(100000), mask=huge_mask(100000)), "16384"),
    # ---- redteam F14 ----------------------------------------------------------------------------
    "volc-1x1": (volc_call(img(h=1, w=1)), "at least 8 px a side"),
    "volc-1x1-canvas-mode": (volc_call(img(h=1, w=1), mask=torch.ones(1, 1, 1)), "at least 8 px a side"),
    "volc-watermark-position-9": (volc_call(params=replace(VOLC, watermark=volc.Watermark(position=9))),
                                  "watermark position 9"),
    "volc-watermark-language-7": (volc_call(params=replace(VOLC, watermark=volc.Watermark(language=7))),
                                  "language 7"),
    "node-nan-image": (node_call(torch.full((1, 16, 16, 3), NAN), left=4), "image contains NaN"),
    "node-inf-image": (node_call(img(h=16, w=16, fill=INF), left=4), "image contains NaN or infinite"),
    "node-nan-mask": (node_call(mask=torch.full((1, 16, 16), NAN), left=4), "mask contains NaN"),
    "node-inf-mask-canvas-size": (node_call(mask=torch.full((1, 16, 20), -INF), left=4), "mask contains NaN"),
    # ---- redteam F15: resume ids go into URL paths ---------------------------------------------------
    "ds-resume-id-dot-dot": (ds_call(resume_task_ids=["../../uploads?action=getPolicy&model=x"]),
                             "is not a DashScope task id"),
    "ds-resume-id-query": (ds_call(resume_task_ids=[TASK_1 + "?action=getPolicy"]), "is not a DashScope task id"),
    "ds-resume-id-fragment": (ds_call(resume_task_ids=[TASK_1 + "#"]), "is not a DashScope task id"),
    "ds-resume-id-slash-cancel": (ds_call(resume_task_ids=[TASK_1 + "/cancel"]), "is not a DashScope task id"),
    "ds-resume-id-percent": (ds_call(resume_task_ids=["%2e%2e%2fuploads"]), "is not a DashScope task id"),
    "ds-resume-id-newline": (ds_call(resume_task_ids=[TASK_1 + "\n"]), "is not a DashScope task id"),
    "ds-resume-id-too-long": (ds_call(resume_task_ids=[TASK_1 + "0"]), "is not a DashScope task id"),
    "ds-resume-id-not-hex": (ds_call(resume_task_ids=["g" * 8 + TASK_1[8:]]), "is not a DashScope task id"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_is_refused_before_any_request(sb, case):
    call, word = CASES[case]
    with pytest.raises((InputError, drv.ValidationFailed)) as exc_info:
        call(sb)
    assert word in str(exc_info.value)
    assert sb.requests() == []


# ---- accepted on purpose (documented behaviour, checked without any request) -----------------------

def test_rgba_is_accepted_and_alpha_is_dropped():
    rgba = img(c=4)
    [item] = volc_run.prepare_items(rgba, None, VOLC, volc.VolcConfig(), "png")
    [ds_item] = ds_run.prepare_items(img(h=96, w=128, c=4), DS, ds.DashScopeConfig(), "png")
    assert item.sent_size == (64, 48) and ds_item.sent_size[1] >= geometry.DASHSCOPE_MIN_SIDE
    p = geometry.pad_pixels(64, 48, 4, 0, 0, 0)
    assert canvas.build_canvas(rgba, p).shape == (1, 48, 68, 4)


def test_tiny_images_are_refused_for_dashscope_but_moderate_ones_upscaled():
    # more than 8x upscaling to reach the 512 px minimum would only be a billed blur
    with pytest.raises(InputError, match="too small"):
        ds_run.prepare_items(img(h=1, w=1), DS, ds.DashScopeConfig(), "png")
    [item] = ds_run.prepare_items(img(h=64, w=64), DS, ds.DashScopeConfig(), "png")
    assert item.sent_size == (512, 512) and "scaled" in item.notes[0]


def test_infinite_colour_is_a_clear_error():
    with pytest.raises(InputError, match="fill colour"):
        canvas.parse_color("inf,0,0")

# ---- the nodes' execute() called directly (as a script or another node pack may) -------------------
# ComfyUI's own validation would stop most of these; execute() must refuse them all the same.

VolcOutpaint = module("nodes.volc_node").VolcOutpaint
DashScopeOutpaint = module("nodes.dashscope_node").DashScopeOutpaint


@pytest.fixture
def cloud(cloud_env):
    return cloud_env


def execute(node, **overrides):
    info = drv.node_info(node)
    inputs = {name: opts.get("default") for name, (io_type, opts) in info["input"]["required"].items()
              if io_type not in ("IMAGE", "MASK")}
    image = img() if node is VolcOutpaint else img(h=64, w=64)
    result = node.execute(**{**inputs, "image": image, "backend": "cloud", "timeout_s": 20, **overrides})
    return asyncio.run(result) if inspect.iscoroutine(result) else result  # the cloud nodes are async


V_NODE, D_NODE = VolcOutpaint, DashScopeOutpaint
# id -> (node, widget overrides, environment, words the message must contain)
NODE_CASES = {
    "volc-variants-1.5": (V_NODE, {"variants": 1.5}, {}, "variants is 1.5"),
    "volc-steps-30.5": (V_NODE, {"steps": 30.5}, {}, "steps is 30.5"),
    "volc-seed-1.5": (V_NODE, {"seed": 1.5}, {}, "seed is 1.5"),
    "volc-prompt-none": (V_NODE, {"prompt": None}, {}, "prompt is NoneType"),
    "volc-prompt-surrogate": (V_NODE, {"prompt": "sky \ud800 sea"}, {}, "prompt has a broken character"),
    "volc-watermark-text-surrogate": (V_NODE, {"watermark": "top-left", "watermark_text": "\udfff"}, {},
                                      "watermark_text has a broken character"),
    "volc-watermark-bogus": (V_NODE, {"watermark": "bogus"}, {}, "watermark 'bogus' is not one of"),
    "volc-watermark-language-fr": (V_NODE, {"watermark": "top-left", "watermark_language": "fr"}, {},
                                   "watermark_language 'fr' is not one of"),
    "volc-watermark-opacity-nan": (V_NODE, {"watermark": "top-left", "watermark_opacity": NAN}, {},
                                   "watermark_opacity is nan"),
    "volc-image-1x1": (V_NODE, {"image": img(h=1, w=1)}, {}, "at least 8 px a side"),
    "volc-image-20x20-min-side-32": (V_NODE, {"image": img(h=20, w=20)}, {"VOLC_MIN_INPUT_SIDE": "32"},
                                     "at least 32 px a side"),
    "ds-angle-45.5": (D_NODE, {"angle": 45.5}, {}, "angle is 45.5"),
    "ds-resume-dot-dot": (D_NODE, {"resume_task_ids": "../../uploads?action=getPolicy&model=x"}, {},
                          "not a DashScope task id"),
    "ds-resume-second-id-bad": (D_NODE, {"image": img(b=2, h=64, w=64), "resume_task_ids": f"{TASK_1}, x/../y"}, {},
                                "'x/../y' is not a DashScope task id"),
    # tuning by environment (F13): the variable is named, nothing is sent
    "env-VOLC_READ_TIMEOUT-90s": (V_NODE, {}, {"VOLC_READ_TIMEOUT": "90s"}, "VOLC_READ_TIMEOUT='90s'"),
    "env-VOLC_READ_TIMEOUT-nan": (V_NODE, {}, {"VOLC_READ_TIMEOUT": "nan"}, "VOLC_READ_TIMEOUT='nan'"),
    "env-VOLC_READ_TIMEOUT-negative": (V_NODE, {}, {"VOLC_READ_TIMEOUT": "-1"}, "VOLC_READ_TIMEOUT='-1'"),
    "env-VOLC_MAX_INPUT_SIDE-0": (V_NODE, {}, {"VOLC_MAX_INPUT_SIDE": "0"}, "VOLC_MAX_INPUT_SIDE='0'"),
    "env-VOLC_MAX_INPUT_SIDE-2.5k": (V_NODE, {}, {"VOLC_MAX_INPUT_SIDE": "2500.5"}, "whole number"),
    "env-VOLC_MAX_INPUT_MB-0": (V_NODE, {}, {"VOLC_MAX_INPUT_MB": "0"}, "VOLC_MAX_INPUT_MB='0'"),
    "env-VOLC_MAX_INPUT_MB-inf": (V_NODE, {}, {"VOLC_MAX_INPUT_MB": "inf"}, "VOLC_MAX_INPUT_MB='inf'"),
    "env-VOLC_MIN_INPUT_SIDE-0": (V_NODE, {}, {"VOLC_MIN_INPUT_SIDE": "0"}, "VOLC_MIN_INPUT_SIDE='0'"),
    "env-VOLC_PROMPT_FIELD": (V_NODE, {}, {"VOLC_PROMPT_FIELD": "text"}, "VOLC_PROMPT_FIELD='text'"),
    "env-DASHSCOPE_CREATES_PER_SECOND-0": (D_NODE, {}, {"DASHSCOPE_CREATES_PER_SECOND": "0"},
                                           "DASHSCOPE_CREATES_PER_SECOND='0'"),
    "env-DASHSCOPE_CREATES_PER_SECOND-nan": (D_NODE, {}, {"DASHSCOPE_CREATES_PER_SECOND": "nan"},
                                             "DASHSCOPE_CREATES_PER_SECOND='nan'"),
    "env-DASHSCOPE_POLL_CAP-0": (D_NODE, {}, {"DASHSCOPE_POLL_CAP": "0"}, "DASHSCOPE_POLL_CAP='0'"),
    "env-DASHSCOPE_POLL_CAP-negative": (D_NODE, {}, {"DASHSCOPE_POLL_CAP": "-5"}, "DASHSCOPE_POLL_CAP='-5'"),
    "env-DASHSCOPE_POLL_CAP-nan": (D_NODE, {}, {"DASHSCOPE_POLL_CAP": "nan"}, "DASHSCOPE_POLL_CAP='nan'"),
    "env-DASHSCOPE_POLL_CAP-5s": (D_NODE, {}, {"DASHSCOPE_POLL_CAP": "5s"}, "DASHSCOPE_POLL_CAP='5s'"),
}


@pytest.mark.parametrize("case", list(NODE_CASES))
def test_bad_node_input_through_execute_is_refused_before_any_request(cloud, sb, case):
    node, overrides, env, words = NODE_CASES[case]
    for name, value in env.items():
        cloud.setenv(name, value)
    with pytest.raises(InputError) as exc_info:
        execute(node, **overrides)
    assert words in str(exc_info.value)
    assert sb.requests() == []


@pytest.mark.parametrize("node", [V_NODE, D_NODE], ids=["volc", "dashscope"])
def test_the_execute_harness_reaches_the_sandbox(cloud, sb, node):
    """The control for the table above: valid inputs through the same path are sent, and billed."""
    cloud.setenv("DASHSCOPE_POLL_CAP", "0.5")
    out, _, _ = execute(node).args
    assert out.shape[-1] == 3 and sb.billable_count("volc" if node is V_NODE else "dashscope") == 1
