"""GET /cloud_outpaint/geometry: the preview the page draws, against direct geometry calls."""

import pytest
from pack import module
from route_client import PREFIX, drive

geometry = module("nodes.core.geometry")
preview = module("nodes.core.preview")


# ---- geometry preview ----------------------------------------------------------------------------

def _geometry(queries):
    async def scenario(r):
        out = []
        for query in queries:
            status, answer = await r.call("GET", f"{PREFIX}/geometry", params={k: str(v) for k, v in query.items()})
            assert status == 200
            out.append(answer)
        return out

    return drive(scenario, None)[1]


def _expected(placement, output=None):
    output = output or (placement.canvas_width, placement.canvas_height)
    return {**placement.as_dict(), "output_width": output[0], "output_height": output[1], "error": None}


def test_geometry_of_the_canvas_builder_equals_plan_expansion():
    cases = [
        ({"expand_mode": "pixels", "left": 10, "top": 0, "right": 30, "bottom": 5}, {}),
        ({"expand_mode": "fraction", "fraction_left": 0.25, "fraction_right": 0, "fraction_top": 0.1,
          "fraction_bottom": 0.5, "multiple_of": 64}, {}),
        ({"expand_mode": "aspect_ratio", "aspect_ratio": "16:9", "anchor": "top-left"}, {}),
        ({"expand_mode": "target_size", "target_width": 1000, "target_height": 700, "anchor": "bottom"}, {}),
        ({"expand_mode": "scale", "x_scale": 1.75}, {"y_scale": 1.5}),  # an absent widget takes its default
    ]
    queries = [{"node": "MaskCanvasBuilder", "width": 640, "height": 480, **given} for given, _ in cases]
    answers = _geometry(queries)
    for (given, defaults), answer in zip(cases, answers):
        expected = geometry.plan_expansion(640, 480, given["expand_mode"],
                                           **{k: v for k, v in {**given, **defaults}.items() if k != "expand_mode"})
        assert answer == _expected(expected), given


def test_geometry_of_volc_ratio_and_canvas_mode():
    answers = _geometry([
        {"node": "VolcOutpaint", "width": 1600, "height": 1200, "top": 0.2, "bottom": 0, "left": 0.5, "right": 0.1,
         "max_width": 1920, "max_height": 1920, "output_resolution": "vendor"},
        {"node": "VolcOutpaint", "width": 400, "height": 300},
        {"node": "VolcOutpaint", "width": 3000, "height": 1000, "max_width": 1024, "max_height": 1024,
         "canvas_mode": 1, "output_resolution": "vendor"},
        {"node": "VolcOutpaint", "width": 1600, "height": 1200, "top": 0.2, "bottom": 0, "left": 0.5, "right": 0.1,
         "max_width": 1920, "max_height": 1920},
        {"node": "VolcOutpaint", "width": 3000, "height": 1000, "max_width": 1024, "max_height": 1024,
         "canvas_mode": 1},
    ])
    placement, output = geometry.volc_ratio_output(1600, 1200, 0.5, 0.2, 0.1, 0, 1920, 1920)
    assert output != (placement.canvas_width, placement.canvas_height)  # the case exercises the fit
    assert answers[0] == _expected(geometry.scale_placement(placement, *output), output)
    placement, output = geometry.volc_ratio_output(400, 300, 0.1, 0.1, 0.1, 0.1, 1920, 1920)
    assert answers[1] == _expected(geometry.scale_placement(placement, *output), output)
    assert answers[2] == {"canvas_width": 1024, "canvas_height": 341, "x": 0, "y": 0, "width": 1024, "height": 341,
                          "output_width": 1024, "output_height": 341, "error": None}
    # output_resolution = original (the default): the canvas at the input's own scale comes back
    assert answers[3] == _expected(geometry.pad_fractions(1600, 1200, 0.5, 0.2, 0.1, 0))
    assert answers[4] == _expected(geometry.Placement(3000, 1000, 0, 0, 3000, 1000))


def test_geometry_of_dashscope_modes():
    cases = [
        {"mode": "scale", "x_scale": 2.0, "y_scale": 1.25},
        {"mode": "output_ratio", "output_ratio": "9:16"},
        {"mode": "offsets", "left_offset": 100, "right_offset": 0, "top_offset": 40, "bottom_offset": 300},
        {"mode": "rotate_only", "angle": 30},
        {"mode": "scale", "angle": 15, "x_scale": 1.5, "y_scale": 1.5},
    ]
    answers = _geometry([{"node": "DashScopeOutpaint", "width": 800, "height": 600, **c} for c in cases])
    names = {"left_offset": "left", "right_offset": "right", "top_offset": "top", "bottom_offset": "bottom"}
    for case, answer in zip(cases, answers):
        args = {names.get(k, k): v for k, v in case.items() if k != "mode"}
        assert answer == _expected(geometry.dashscope_plan(800, 600, case["mode"], **args)), case
    rotated = answers[3]
    assert (rotated["width"], rotated["height"]) == geometry.rotated_size(800, 600, 30)  # the bounding box


@pytest.mark.parametrize("query, match", [
    ({"node": "MaskCanvasBuilder", "width": 64, "height": 64, "expand_mode": "aspect_ratio",
      "aspect_ratio": "wide"}, "aspect ratio"),
    ({"node": "MaskCanvasBuilder", "width": 64, "height": 64, "expand_mode": "target_size",
      "target_width": 32}, "smaller than the image"),
    ({"node": "MaskCanvasBuilder", "width": 64, "height": 64, "left": "ten"}, "not a number"),
    ({"node": "MaskCanvasBuilder", "width": 64, "height": 64, "left": 1.5}, "whole number"),
    ({"node": "MaskCanvasBuilder", "width": 0, "height": 64}, "1 to"),
    ({"node": "MaskCanvasBuilder", "height": 64}, "width"),
    ({"node": "VolcOutpaint", "width": 64, "height": 64, "top": 0, "bottom": 0, "left": 0, "right": 0},
     "nothing to outpaint"),
    ({"node": "VolcOutpaint", "width": 64, "height": 64, "top": 1.5}, "0.0 to 1.0"),
    ({"node": "DashScopeOutpaint", "width": 800, "height": 600, "mode": "rotate_only"}, "angle 0 does nothing"),
    ({"node": "DashScopeOutpaint", "width": 800, "height": 600, "x_scale": 4}, "1.0 to 3.0"),
    ({"node": "DashScopeOutpaint", "width": 4000, "height": 100}, "8:1"),
    ({"node": "KSampler", "width": 64, "height": 64}, "no geometry preview"),
    ({"width": 64, "height": 64}, "no geometry preview"),
])
def test_bad_geometry_values_answer_200_with_the_error(query, match):
    [answer] = _geometry([query])
    assert set(answer) == set(preview.KEYS) | {"error"}
    assert match in answer["error"] and all(answer[k] is None for k in preview.KEYS)


def test_preview_defaults_are_the_nodes_widget_defaults():
    for node_id, node_module in (("MaskCanvasBuilder", "canvas_node"), ("VolcOutpaint", "volc_node"),
                                 ("DashScopeOutpaint", "dashscope_node")):
        schema = getattr(module(f"nodes.{node_module}"), node_id).define_schema()
        defaults = {i.id: i.default for i in schema.inputs if hasattr(i, "default")}
        for name, (kind, default) in preview.WIDGETS[node_id].items():
            if name == "canvas_mode":  # not a widget: whether a mask is connected
                continue
            assert defaults[name] == default and isinstance(defaults[name], kind), (node_id, name)


