"""GET /cloud_outpaint/widget_modes: what web/js/mode_widgets.js hides, from nodes/core/widgets.py."""

from pack import module
from route_client import PREFIX, drive

widgets = module("nodes.core.widgets")


def _get(headers=None):
    async def scenario(r):
        return await r.call("GET", f"{PREFIX}/widget_modes", headers=headers)

    return drive(scenario, None)[1]


def test_widget_modes_come_from_the_widget_tables():
    status, answer = _get()
    assert status == 200
    assert set(answer) == {"VolcOutpaint", "DashScopeOutpaint", "MaskCanvasBuilder"}
    for node_id, table in (("VolcOutpaint", widgets.VOLC), ("DashScopeOutpaint", widgets.DASHSCOPE),
                           ("MaskCanvasBuilder", widgets.CANVAS)):
        entry = answer[node_id]
        assert entry["mode_widget"] == widgets.mode_widget(table)
        assert entry["modes"] == widgets.modes_by_widget(table)
        mode_values = set(table[entry["mode_widget"]].options)
        for name, modes in entry["modes"].items():
            assert name in table and modes and set(modes) <= mode_values, (node_id, name)
    # spot checks against the declarations the issue names
    assert answer["MaskCanvasBuilder"]["modes"]["left"] == ["pixels"]
    assert answer["DashScopeOutpaint"]["modes"]["output_ratio"] == ["output_ratio"]
    assert "seed" not in answer["VolcOutpaint"]["modes"] and "prompt" not in answer["VolcOutpaint"]["modes"]


def test_a_connected_mask_hides_volc_ratio_mode_widgets_only():
    answer = _get()[1]
    hides = answer["VolcOutpaint"]["linked_hides"]["mask"]
    assert hides[0] == "expand_mode" and {"top", "bottom", "left", "right", "aspect_ratio", "anchor"} <= set(hides)
    assert not {"prompt", "seed", "max_width", "backend"} & set(hides)
    assert answer["MaskCanvasBuilder"]["linked_hides"] == {} == answer["DashScopeOutpaint"]["linked_hides"]


def test_widget_modes_refuse_another_site():
    status, answer = _get({"Origin": "http://evil.example", "Sec-Fetch-Site": "cross-site"})
    assert status == 403 and "another site" in answer["error"]
