"""VolcOutpaint's expansion types (seed 000: 四边扩展 fraction, 等比扩展 scale, 画幅扩展 aspect_ratio, plus
pixels and target_size) in ratio mode: the side fractions the sandbox receives over real HTTP make the
canvas the geometry promises, the output has that size, and the node, the geometry preview and the CLI
agree. Bad expansions are refused before any request."""

import json

import comfy_driver as drv
import pytest
import torch
from pack import InputError, geometry, module
from PIL import Image
from route_client import PREFIX, drive
from test_volc_node import run_node

cli = module("nodes.cli")
volc = module("nodes.core.volc")
volc_run = module("nodes.core.volc_run")
volc_expansion = module("nodes.core.volc_expansion")
VolcExpansion = volc_expansion.VolcExpansion
W, H = 600, 520  # the issue's photo


def sent_canvas(entry):
    """The canvas the sandbox built from the sides it was sent: W·(1+l+r) x H·(1+t+b), rounded per side."""
    top, bottom, left, right = entry.detail["sides"]
    width, height = entry.detail["input_size"]
    return geometry.pad_fractions(width, height, left, top, right, bottom)


# (widgets, canvas expected for a 600x520 image, the original's x, y on it)
CASES = {
    "aspect 16:9": ({"expand_mode": "aspect_ratio", "aspect_ratio": "16:9"}, (924, 520), (162, 0)),
    "aspect 3:4 from the top": ({"expand_mode": "aspect_ratio", "aspect_ratio": "3:4", "anchor": "top"},
                                (600, 800), (0, 0)),
    "aspect 1.5 decimal": ({"expand_mode": "aspect_ratio", "aspect_ratio": "1.5"}, (780, 520), (90, 0)),
    "scale centred": ({"expand_mode": "scale", "x_scale": 1.5, "y_scale": 1.25}, (900, 650), (150, 65)),
    "scale 3x, the limit": ({"expand_mode": "scale", "x_scale": 3.0, "y_scale": 1.0}, (1800, 520), (600, 0)),
    "scale from a corner": ({"expand_mode": "scale", "x_scale": 2.0, "y_scale": 1.5, "anchor": "bottom-right"},
                            (1200, 780), (600, 260)),
    "pixels": ({"expand_mode": "pixels", "pixels_left": 60, "pixels_top": 0, "pixels_right": 120,
                "pixels_bottom": 52}, (780, 572), (60, 0)),
    "target size": ({"expand_mode": "target_size", "target_width": 1000, "target_height": 700,
                     "anchor": "bottom-right"}, (1000, 700), (400, 180)),
}


@pytest.mark.parametrize("case", CASES, ids=list(CASES))
def test_the_node_sends_the_fractions_of_the_planned_canvas(cloud_env, sb, case):
    values, canvas, (x, y) = CASES[case]
    out, mask, info = run_node(torch.rand((1, H, W, 3)), max_width=2048, max_height=2048, **values)
    [entry] = sb.requests("volc")
    assert entry.detail["mode"] == "ratio" and entry.detail["input_size"] == (W, H)
    placement = sent_canvas(entry)
    assert (placement.canvas_width, placement.canvas_height) == canvas and (placement.x, placement.y) == (x, y)
    assert all(0 <= side <= 1 for side in entry.detail["sides"])
    assert out.shape == (1, canvas[1], canvas[0], 3)  # the vendor's canvas came back, nothing resized
    assert json.loads(info)["results"][0]["output"] == f"{canvas[0]}x{canvas[1]}"
    # the paste-back: the original's box in the output is the generated mask's hole
    assert float(mask[0, y + H // 2, x + W // 2]) == 0.0 and float(mask.mean()) > 0


def test_the_issue_example_16_9_is_16_9_and_output_fitted_keeps_it(cloud_env, sb):
    out, _, _ = run_node(torch.rand((1, H, W, 3)), expand_mode="aspect_ratio", aspect_ratio="16:9",
                         max_width=640, max_height=640, output_resolution="vendor")
    top, bottom, left, right = sb.requests("volc")[0].detail["sides"]
    assert W * (1 + left + right) / (H * (1 + top + bottom)) == pytest.approx(16 / 9, abs=0.002)
    assert out.shape[1:3] == (360, 640)  # 924x520 fitted into 640x640 by the vendor


def test_fraction_mode_sends_the_sides_as_given(cloud_env, sb):
    run_node(torch.rand((1, 40, 48, 3)), top=0.2, bottom=0.0, left=0.5, right=0.1, x_scale=3.0, aspect_ratio="x")
    assert sb.requests("volc")[0].detail["sides"] == (0.2, 0.0, 0.5, 0.1)  # the other types' widgets unread


def test_canvas_mode_ignores_the_expansion_widgets(cloud_env, sb):
    mask = torch.zeros((1, 40, 48))
    mask[:, :, :8] = 1
    out, _, info = run_node(torch.rand((1, 40, 48, 3)), mask, expand_mode="aspect_ratio", aspect_ratio="nonsense",
                            x_scale=3.0, anchor="left")
    assert json.loads(info)["mode"] == "canvas" and out.shape == (1, 40, 48, 3)
    assert sb.requests("volc")[0].detail["mode"] == "canvas"


def test_a_batch_of_variants_sends_the_same_fractions(cloud_env, sb):
    out, _, _ = run_node(torch.rand((2, H, W, 3)), expand_mode="scale", x_scale=1.5, y_scale=1.5, variants=2)
    assert out.shape == (4, 780, 900, 3)
    assert {e.detail["sides"] for e in sb.requests("volc")} == {(0.25, 0.25, 0.25, 0.25)}


@pytest.mark.parametrize("values, says", [
    ({"expand_mode": "scale", "x_scale": 3.0, "anchor": "left"}, r"x_scale 3.0.*anchor left.*1200 px on the right"
                                                                 r".*at most 1x the image per side"),
    ({"expand_mode": "scale", "x_scale": 1.0, "y_scale": 1.0}, "nothing to outpaint"),
    ({"expand_mode": "pixels", "pixels_left": 601}, r"pixels_left 601.*601 px on the left.*at most 1x"),
    ({"expand_mode": "pixels"}, "nothing to outpaint"),
    ({"expand_mode": "aspect_ratio", "aspect_ratio": "4:1"}, r"aspect_ratio 4:1.*at most 1x"),
    ({"expand_mode": "aspect_ratio", "aspect_ratio": "600:520"}, "image's own size: nothing to outpaint"),
    ({"expand_mode": "aspect_ratio", "aspect_ratio": "wide"}, r"aspect_ratio wide.*not understood"),
    ({"expand_mode": "target_size", "target_width": 500, "target_height": 600}, "smaller than the image"),
    ({"expand_mode": "target_size", "target_width": 1900, "target_height": 520}, r"target_width 1900.*at most 1x"),
])
def test_bad_expansions_are_refused_before_any_request(cloud_env, sb, values, says):
    with pytest.raises(InputError, match=says):
        run_node(torch.rand((1, H, W, 3)), **values)
    assert sb.request_count() == 0


def test_the_widget_ranges_hold_for_the_new_widgets():
    with pytest.raises(drv.ValidationFailed, match="value_bigger_than_max"):
        run_node(torch.rand((1, 8, 8, 3)), expand_mode="scale", x_scale=3.5)
    with pytest.raises(drv.ValidationFailed, match="value_not_in_list"):
        run_node(torch.rand((1, 8, 8, 3)), expand_mode="rotate")


def test_the_core_run_sends_what_ratio_params_gives(sb, volc_creds):
    """The engine path the CLI takes: ratio_params, then volc_run.run over real HTTP."""
    params = volc_expansion.ratio_params(volc.VolcParams(), VolcExpansion("aspect_ratio", aspect_ratio="1:1",
                                                                         anchor="bottom"), W, H)
    assert (params.top, params.bottom, params.left, params.right) == (80 / 520, 0.0, 0.0, 0.0)
    result = volc_run.run(torch.rand((1, H, W, 3)), None, params, volc_creds)
    assert sb.requests("volc")[0].detail["sides"] == (80 / 520, 0.0, 0.0, 0.0)
    assert result.images.shape == (1, 600, 600, 3)


def test_fractions_give_back_the_same_pixels_for_many_sizes():
    """pad_fractions(volc_fractions(p)) == p: what the vendor (and the sandbox) rebuild is what was planned."""
    for width in (8, 97, 600, 1023, 4096):
        for height in (8, 131, 520, 2048):
            for mode, extra in (("aspect_ratio", {"aspect_ratio": "16:9"}), ("aspect_ratio", {"aspect_ratio": "9:16"}),
                                ("scale", {"x_scale": 1.37, "y_scale": 2.91}), ("pixels", {"pixels_left": 3})):
                expansion = VolcExpansion(mode, **extra)
                try:
                    planned = expansion.placement(width, height)
                    f = expansion.fractions(width, height)
                except InputError:
                    continue  # over the per-side limit or nothing to do: refused, tested above
                assert geometry.pad_fractions(width, height, f["left"], f["top"], f["right"], f["bottom"]) == planned


# ---- the geometry preview (GET /cloud_outpaint/geometry) -------------------------------------------

def test_the_preview_shows_the_canvas_the_node_sends():
    queries = [{"node": "VolcOutpaint", "width": W, "height": H, **{k: str(v) for k, v in values.items()},
                "max_width": 2048, "max_height": 2048} for values, _, _ in CASES.values()]
    queries.append({"node": "VolcOutpaint", "width": W, "height": H, "expand_mode": "scale", "x_scale": "3",
                    "anchor": "left"})
    queries.append({"node": "VolcOutpaint", "width": W, "height": H, "expand_mode": "aspect_ratio",
                    "aspect_ratio": "wide", "canvas_mode": "1"})

    async def scenario(r):
        answers = []
        for query in queries:
            status, answer = await r.call("GET", f"{PREFIX}/geometry", params=query)
            assert status == 200
            answers.append(answer)
        return answers

    answers = drive(scenario, None)[1]
    for (values, canvas, (x, y)), answer in zip(CASES.values(), answers):
        assert answer["error"] is None, values
        assert (answer["canvas_width"], answer["canvas_height"], answer["x"], answer["y"]) == (*canvas, x, y)
        assert (answer["output_width"], answer["output_height"]) == canvas
    assert "at most 1x the image per side" in answers[-2]["error"]
    assert answers[-1]["error"] is None and answers[-1]["canvas_width"] == W  # canvas mode: the input itself


# ---- the command line ----------------------------------------------------------------------------

def photo(tmp_path, size=(W, H)):
    folder = tmp_path / "in"
    folder.mkdir()
    Image.new("RGB", size, (40, 120, 200)).save(folder / "p.png")
    Image.new("RGB", (400, 400), (200, 120, 40)).save(folder / "q.png")
    return folder


@pytest.mark.parametrize("flags, sizes", [
    (["--expand-mode", "aspect_ratio", "--aspect-ratio", "16:9"], {"p": (924, 520), "q": (711, 400)}),
    (["--expand-mode", "scale", "--x-scale", "1.5", "--y-scale", "1.25", "--anchor", "top-left"],
     {"p": (900, 650), "q": (600, 500)}),
    (["--expand-mode", "pixels", "--pixels-left", "60", "--pixels-bottom", "52"], {"p": (660, 572), "q": (460, 452)}),
    (["--expand-mode", "target_size", "--target-width", "700", "--target-height", "600"],
     {"p": (700, 600), "q": (700, 600)}),
])
def test_the_cli_sends_each_files_own_fractions(tmp_path, capsys, monkeypatch, cloud_env, sb, flags, sizes):
    code = cli.main(["outpaint", str(photo(tmp_path)), "--vendor", "volc", "--out", str(tmp_path / "out"),
                     "--quiet", "--max-width", "2048", "--max-height", "2048", *flags])
    assert code == 0, capsys.readouterr().err
    sent = {entry.detail["input_size"]: sent_canvas(entry) for entry in sb.requests("volc")}
    for stem, size in sizes.items():
        assert Image.open(tmp_path / "out" / f"{stem}_outpaint.png").size == size
        side = json.loads((tmp_path / "out" / f"{stem}_outpaint.json").read_text())
        placement = sent[tuple(side["input_size"])]
        assert (placement.canvas_width, placement.canvas_height) == size
        params = side["parameters"]  # the sidecar names the fractions this file was sent
        assert geometry.pad_fractions(*side["input_size"], params["left"], params["top"], params["right"],
                                      params["bottom"]) == placement
        assert side["expansion"]["expand_mode"] == flags[1]


@pytest.mark.parametrize("argv, says", [
    (["--expand-mode", "scale", "--aspect-ratio", "16:9"], "--aspect-ratio: not read by --expand-mode scale"),
    (["--top", "0.2", "--expand-mode", "pixels", "--pixels-left", "8"], "--top: not read by --expand-mode pixels"),
    (["--x-scale", "2"], "--x-scale: not read by --expand-mode fraction"),
    (["--expand-mode", "scale", "--x-scale", "3", "--anchor", "left"], "at most 1x the image per side"),
    (["--expand-mode", "target_size", "--target-width", "100"], "smaller than the image"),
    (["--expand-mode", "aspect_ratio", "--pad-pixels", "8,0,8,0"], "does not apply in canvas mode"),
    (["--expand-mode", "stretch"], "invalid choice"),
])
def test_the_cli_refuses_bad_expansions_before_sending(tmp_path, capsys, cloud_env, sb, argv, says):
    code = cli.main(["outpaint", str(photo(tmp_path)), "--vendor", "volc", "--out", str(tmp_path / "out"), *argv])
    assert code == 2 and says in capsys.readouterr().err
    assert sb.request_count() == 0 and not (tmp_path / "out").exists()


def test_dashscope_still_takes_the_shared_scale_flags_and_not_volcs(tmp_path, capsys):
    folder = photo(tmp_path)
    assert cli.main(["outpaint", str(folder), "--vendor", "dashscope", "--sandbox", "--anchor", "left"]) == 2
    assert "--anchor: Volcengine option" in capsys.readouterr().err
    code = cli.main(["outpaint", str(folder / "q.png"), "--vendor", "dashscope", "--sandbox", "--mode", "scale",
                     "--x-scale", "1.5", "--y-scale", "1.25", "--out", str(tmp_path / "out"), "--quiet"])
    assert code == 0, capsys.readouterr().err
    assert Image.open(tmp_path / "out" / "q_outpaint.png").size == (600, 500)
