"""output_resolution (issue 14): a 2400x2000 photo comes back at 1.2x its size with its own pixels kept
1:1, through both cloud nodes over real HTTP against the sandbox, which shrinks the results as the
vendors do (Volcengine fits into max_width x max_height, 1920; DashScope keeps results under 5 MB)."""

import json

import comfy_driver as drv
import pytest
import torch
from comfy_server import widget_defaults
from pack import module

VolcOutpaint = module("nodes.volc_node").VolcOutpaint
DashScopeOutpaint = module("nodes.dashscope_node").DashScopeOutpaint
volc, volc_run = module("nodes.core.volc"), module("nodes.core.volc_run")
output_scale, preview = module("nodes.core.output_scale"), module("nodes.core.preview")
widgets = module("nodes.core.widgets")
SANDBOX_SETTINGS = {"dashscope_pending_s": 0.05, "dashscope_running_s": 0.1}  # conftest's sb
W, H = 2400, 2000  # 10 % a side -> 2880x2400


def photo(width=W, height=H, seed=0):
    """Gradients with grain: a photo's texture, not a flat colour that every codec squashes."""
    g = torch.Generator().manual_seed(seed)
    ys, xs = torch.linspace(0, 1, height)[:, None], torch.linspace(0, 1, width)[None, :]
    base = torch.stack([xs.expand(height, width), ys.expand(height, width), (xs * ys).expand(height, width)], -1)
    return (0.15 + 0.6 * base + 0.25 * torch.rand((height, width, 3), generator=g))[None].clamp(0, 1)


def run_node(node, image, unique_id, **overrides):
    inputs = {**widget_defaults(drv.node_info(node)), **overrides, "image": image}
    return drv.execute(node, hidden={"unique_id": unique_id}, linked={"image"}, **inputs)


def assert_original_kept(out, mask, image, x, y, seam):
    """The input's pixels, exactly, wherever the mask keeps them; and it keeps all but the seam band."""
    h, w = image.shape[1:3]
    box = (slice(None), slice(y, y + h), slice(x, x + w))
    kept = mask[box] == 0
    assert torch.equal(out[box][kept], image[kept])
    assert kept[:, seam:h - seam, seam:w - seam].all()


def test_widget_is_last_in_both_tables_and_defaults_to_original():
    for table in (widgets.VOLC, widgets.DASHSCOPE):
        assert list(table)[-2:] == ["use_cache", "output_resolution"]
        assert table["output_resolution"].options == ("original", "vendor")
        assert table["output_resolution"].default == "original"


def test_volc_ratio_mode_comes_back_at_the_photos_scale(sb, cloud_env):
    image = photo()
    out, mask, info = run_node(VolcOutpaint, image, "1")
    assert out.shape == (1, 2400, 2880, 3) and mask.shape == (1, 2400, 2880)
    assert_original_kept(out, mask, image, 240, 200, seam=40)
    report = json.loads(info)
    assert report["output_resolution"] == "original"
    assert report["results"][0]["output"] == "2880x2400" and report["results"][0]["vendor_output"] == "1920x1600"
    assert (mask[:, :200] == 1).all() and (mask[:, :, :240] == 1).all()  # the new area: generated


def test_volc_vendor_keeps_the_vendors_size(sb, cloud_env):
    out, mask, info = run_node(VolcOutpaint, photo(), "1", output_resolution="vendor")
    assert out.shape == (1, 1600, 1920, 3) and mask.shape == (1, 1600, 1920)
    assert "vendor_output" not in json.loads(info)["results"][0]


def test_volc_canvas_mode_keeps_the_canvas_sent(sb, cloud_env):
    """Canvas mode: the canvas (here 2880x2400, the photo padded by 10 %) is the output, at its own scale."""
    canvas = torch.full((1, 2400, 2880, 3), 0.5)
    canvas[:, 200:2200, 240:2640] = photo()
    mask = torch.ones((1, 2400, 2880))
    mask[:, 220:2180, 260:2620] = 0
    out, out_mask, info = drv.execute(VolcOutpaint, hidden={"unique_id": "2"}, linked={"image", "mask"},
                                      **{**widget_defaults(drv.node_info(VolcOutpaint)), "image": canvas, "mask": mask})
    assert out.shape == (1, 2400, 2880, 3) and out_mask.shape == (1, 2400, 2880)
    assert torch.equal(out_mask, mask)
    assert torch.equal(out[:, 220:2180, 260:2620], canvas[:, 220:2180, 260:2620])
    assert json.loads(info)["results"][0]["vendor_output"] == "1920x1600"


def test_volc_canvas_mode_on_the_sdks_grown_canvas_keeps_the_canvas_1_to_1(sb):
    """A service that grows the canvas by the SDK's 0.1 sides (told apart only when nothing is shrunk):
    the canvas's box on it, at the input's scale."""
    canvas = photo(1000, 500)
    mask = torch.zeros((1, 500, 1000))
    mask[:, :, :100] = 1
    omit_sides = volc.VolcConfig.from_env({"CLOUD_OUTPAINT_VOLC_CANVAS_SIDES": "omit"})
    # sides left out: the sandbox grows the canvas by 0.1 a side, as the SDK models do
    result = volc_run.run(canvas, mask, volc.VolcParams(), sb.volc_credentials(), volc_run.VolcOptions(timeout_s=60),
                          omit_sides)
    item = result.info.results[0]
    assert item.output == "1200x600" and item.vendor_output is None and "default side ratio" in item.note
    assert torch.equal(result.images[:, 50:550, 200:1100], canvas[:, :, 100:])
    assert (result.masks[:, :50] == 1).all() and torch.equal(result.masks[:, 50:550, 100:1100], mask)


def test_dashscope_comes_back_at_the_photos_scale(sb, cloud_env):
    """DashScope shrinks a result over 5 MB (limit_image_size; here over 2 MiB, so that this photo's JPEG
    is): original brings it back to 2880x2400, vendor keeps what came back."""
    sb.dashscope_limited_output_bytes = 2 * 2**20
    image = photo()
    out, mask, info = run_node(DashScopeOutpaint, image, "3", mode="scale", x_scale=1.2, y_scale=1.2,
                               image_format="jpeg")
    assert out.shape == (1, 2400, 2880, 3) and mask.shape == (1, 2400, 2880)
    item = json.loads(info)["results"][0]
    assert item["output"] == "2880x2400" and item["vendor_output"] != "2880x2400"  # the vendor shrank it
    # the vendor's mark (bottom-left) stays generated; everywhere else the photo is kept 1:1 inside the seam
    assert_original_kept(out, mask, image, 240, 200, seam=40)
    assert (mask[:, -240:, :864] == 1).all()  # the watermark zone (30 % x 10 % of the output, bottom-left)
    out_v, _, info_v = run_node(DashScopeOutpaint, image, "3", mode="scale", x_scale=1.2, y_scale=1.2,
                                image_format="jpeg", output_resolution="vendor")
    assert f"{out_v.shape[2]}x{out_v.shape[1]}" == item["vendor_output"] == json.loads(info_v)["results"][0]["output"]


def test_dashscope_without_watermark_keeps_every_interior_pixel(sb, cloud_env):
    image = photo()
    out, mask, _ = run_node(DashScopeOutpaint, image, "4", mode="offsets", left_offset=240, right_offset=240,
                            top_offset=200, bottom_offset=200, add_watermark=False, image_format="jpeg")
    assert out.shape == (1, 2400, 2880, 3)
    assert torch.equal(out[:, 240:2160, 280:2600], image[:, 40:-40, 40:-40])
    assert (mask[:, 240:2160, 280:2600] == 0).all()


def test_over_the_pixel_limit_falls_back_to_the_vendors_size_before_paying():
    assert output_scale.over_limit(8192, 8192) is None
    note = output_scale.over_limit(9000, 8000)
    assert "9000x8000" in note and "vendor's size" in note
    assert output_scale.over_limit(16385, 100)  # MAX_SIDE holds too
    item = volc_run._Item([b""], (1, 1), (1, 1), torch.zeros((1, 7600, 7600, 3)), module("nodes.core.geometry")
                          .pad_fractions(7600, 7600, 0.1, 0.1, 0.1, 0.1), None)
    volc_run.plan_output_scale([item], "original")
    assert item.at_input_scale is None and "9120x9120" in item.resolution_note
    ds, ds_run = module("nodes.core.dashscope"), module("nodes.core.dashscope_run")
    params = ds.DashScopeParams(mode="offsets", left_offset=800, right_offset=800, top_offset=800, bottom_offset=800)
    ds_item = ds_run._Item(b"", 0.5, (3800, 3800), params, params.plan(3800, 3800), [])
    ds_run.plan_output_scale([ds_item], params, 7600, 7600, "original")
    assert ds_item.at_input_scale is None and "9200x9200" in ds_item.resolution_note
    ds_run.plan_output_scale([ds_item], params, 6000, 6000, "original")
    assert ds_item.at_input_scale == params.plan(6000, 6000) and ds_item.resolution_note is None


def test_an_output_of_another_shape_is_not_stretched():
    planned = module("nodes.core.geometry").Placement(2880, 2400, 240, 200, 2400, 2000)
    assert output_scale.target(planned, (1920, 1600)) == (planned, None)
    placement, note = output_scale.target(planned, (1920, 1920))
    assert placement is None and "not stretched" in note


def test_preview_shows_the_size_that_comes_back():
    volc_original = preview.compute("VolcOutpaint", {"width": "2400", "height": "2000"})
    volc_vendor = preview.compute("VolcOutpaint", {"width": "2400", "height": "2000", "output_resolution": "vendor"})
    assert (volc_original["output_width"], volc_original["output_height"]) == (2880, 2400)
    assert (volc_vendor["output_width"], volc_vendor["output_height"]) == (1920, 1600)
    canvas = preview.compute("VolcOutpaint", {"width": "2880", "height": "2400", "canvas_mode": "1"})
    assert (canvas["output_width"], canvas["output_height"]) == (2880, 2400)
    ds_query = {"width": "2400", "height": "2000", "mode": "scale", "x_scale": "1.2", "y_scale": "1.2"}
    assert preview.compute("DashScopeOutpaint", ds_query)["output_width"] == 2880
    big = preview.compute("VolcOutpaint", {"width": "9000", "height": "8000", "max_width": "8192",
                                           "max_height": "8192"})
    assert big["error"] is None and big["output_width"] == 8192 and "vendor's size" in big["note"]


@pytest.mark.parametrize("flag, size", [([], (960, 720)), (["--output-resolution", "vendor"], (480, 360))])
def test_cli_has_the_same_option(tmp_path, capsys, flag, size):
    from PIL import Image

    cli = module("nodes.cli")
    Image.new("RGB", (800, 600), (90, 120, 200)).save(tmp_path / "a.png")
    code = cli.main(["outpaint", str(tmp_path / "a.png"), "--vendor", "volc", "--sandbox", "--max-width", "480",
                     "--max-height", "480", "--out", str(tmp_path / "out"), "--quiet", *flag])
    assert code == 0, capsys.readouterr().err
    assert Image.open(tmp_path / "out" / "a_outpaint.png").size == size
    side = json.loads((tmp_path / "out" / "a_outpaint.json").read_text())
    assert side["info"]["output_resolution"] == (flag[1] if flag else "original")
