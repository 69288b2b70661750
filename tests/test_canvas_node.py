"""MaskCanvasBuilder driven as ComfyUI drives a V3 node (schema, validation, execute)."""

import inspect

import comfy_driver as drv
import pytest
import torch
from pack import InputError, module
from reference_pad import image_pad_for_outpaint

MaskCanvasBuilder = module("nodes.canvas_node").MaskCanvasBuilder
widgets = module("nodes.core.widgets")
SOCKET_TYPES = {"IMAGE", "MASK"}


def widget_defaults():
    info = drv.node_info(MaskCanvasBuilder)
    return {name: opts["default"] for name, (io_type, opts) in info["input"]["required"].items()
            if io_type not in SOCKET_TYPES}


def run(image, mask=None, **overrides):
    inputs = {**widget_defaults(), "image": image, **overrides}
    if mask is not None:
        inputs["mask"] = mask
    return drv.execute(MaskCanvasBuilder, linked={"image", "mask"} & set(inputs), **inputs)


def test_schema_matches_execute_signature():
    info = drv.node_info(MaskCanvasBuilder)
    assert info["name"] == "MaskCanvasBuilder"
    declared = list(info["input"]["required"]) + list(info["input"].get("optional", {}))
    # every widget comes from the one declaration and reaches execute as a keyword (canvas.build checks them)
    assert declared == ["image", *widgets.CANVAS, "mask"]
    assert list(inspect.signature(MaskCanvasBuilder.execute).parameters) == ["image", "mask", "settings"]
    assert info["output"] == ["IMAGE", "MASK", "INT", "INT", "INT", "INT"]
    assert info["output_name"] == ["image", "mask", "x", "y", "width", "height"]
    # ImagePadForOutpaint's widgets come first, in its order, so users find them where they expect
    assert declared[:7] == ["image", "expand_mode", "left", "top", "right", "bottom", "feathering"]


def test_pixel_mode_matches_the_builtin_and_returns_placement():
    image = torch.rand((3, 40, 50, 3))
    out, mask, x, y, w, h = run(image, left=16, top=8, right=0, bottom=0, feathering=6)
    ref_image, ref_mask = image_pad_for_outpaint(image, 16, 8, 0, 0, 6)
    assert torch.equal(out, ref_image)
    assert mask.shape == (3, 48, 66) and torch.allclose(mask, ref_mask.expand(3, -1, -1))
    assert (x, y, w, h) == (16, 8, 50, 40)
    assert all(type(v) is int for v in (x, y, w, h))


@pytest.mark.parametrize("mode,extra,canvas", [
    ("fraction", dict(fraction_left=0.5, fraction_right=0.5, fraction_top=0.0, fraction_bottom=0.25), (100, 50)),
    ("scale", dict(x_scale=2.0, y_scale=1.0), (100, 40)),
    ("aspect_ratio", dict(aspect_ratio="16:9"), (71, 40)),
    ("target_size", dict(target_width=64, target_height=64, anchor="bottom-right"), (64, 64)),
])
def test_every_mode_produces_the_planned_canvas(mode, extra, canvas):
    image = torch.rand((1, 40, 50, 3))
    out, mask, x, y, w, h = run(image, expand_mode=mode, **extra)
    assert (out.shape[2], out.shape[1]) == canvas and mask.shape[1:] == out.shape[1:3]
    assert torch.equal(out[:, y:y + h, x:x + w], image)


def test_multiple_of_and_fills_and_mask_merge():
    image = torch.rand((2, 30, 30, 3))
    user_mask = torch.zeros((2, 30, 30))
    user_mask[1, 10:12, 10:12] = 1
    out, mask, x, y, w, h = run(image, user_mask, right=10, multiple_of=16, fill="edge", feathering=0)
    assert out.shape[1:3] == (32, 48) and (x, y) == (0, 1)
    assert torch.equal(out[:, 1:31, 30:], image[:, :, -1:].expand(-1, -1, 18, -1))
    assert mask[0, 11:13, 10:12].sum() == 0 and mask[1, 11:13, 10:12].sum() == 4


def test_widget_ranges_are_enforced_by_comfyui_rules():
    image = torch.rand((1, 8, 8, 3))
    with pytest.raises(drv.ValidationFailed, match="value_smaller_than_min"):
        run(image, left=-1)
    with pytest.raises(drv.ValidationFailed, match="value_bigger_than_max"):
        run(image, x_scale=9.0)
    with pytest.raises(drv.ValidationFailed, match="value_not_in_list"):
        run(image, anchor="middle")


def test_validate_inputs_rechecks_what_it_declares():
    image = torch.rand((1, 8, 8, 3))
    with pytest.raises(drv.ValidationFailed, match="aspect ratio"):
        run(image, expand_mode="aspect_ratio", aspect_ratio="16-9")
    with pytest.raises(drv.ValidationFailed, match="fill colour"):
        run(image, fill="color", fill_color="blue")
    with pytest.raises(drv.ValidationFailed, match="fill 'paint'"):
        run(image, fill="paint")
    with pytest.raises(drv.ValidationFailed, match="expand_mode 'zoom'"):
        run(image, expand_mode="zoom")
    # a malformed ratio in a mode that does not use it does not block the run
    run(image, expand_mode="pixels", aspect_ratio="16-9")


@pytest.mark.parametrize("image,overrides,message", [
    (torch.rand((0, 8, 8, 3)), {}, "empty"),
    (torch.rand((1, 8, 8, 3)), {"left": 16384}, "16384"),
    (torch.rand((1, 8, 8, 3)), {"expand_mode": "target_size", "target_width": 4}, "smaller"),
])
def test_bad_input_is_a_clear_error_at_run_time(image, overrides, message):
    with pytest.raises(InputError, match=message):
        run(image, **overrides)


def test_mask_of_wrong_size_or_batch_is_refused():
    image = torch.rand((2, 8, 8, 3))
    with pytest.raises(InputError, match="must be 8x8"):
        run(image, torch.zeros((1, 7, 8)), left=4)
    with pytest.raises(InputError, match="batch"):
        run(image, torch.zeros((3, 8, 8)), left=4)


def test_small_image_keeps_a_clamped_feather():
    image = torch.rand((1, 16, 16, 3))
    _, mask, *_ = run(image, left=8, right=8, feathering=40)
    assert mask[0, 8, 8] == 1 and mask[0, 8, 15] > 0  # f clamped to 8: the band still exists
