"""Translations and help pages (CI-safe, no ComfyUI needed).

locales/zh/nodeDefs.json must cover every node, every input (name + tooltip where the schema has
one) and every output, in the shape ComfyUI's frontend reads ({id: {display_name, description,
inputs: {name: {name, tooltip}}, outputs: {"0": {name, tooltip}}}}); every node has an English help
page web/docs/<id>.md (the frontend's fallback) and a Chinese one web/docs/<id>/zh.md.
"""

import json
import re

import comfy_driver as drv
from conftest import ROOT
from test_example_workflows import pack_nodes

LOCALES = ROOT / "locales"
HAN = re.compile(r"[\u4e00-\u9fff]")


def test_every_locale_file_is_valid_json_objects():
    files = sorted(LOCALES.rglob("*.json"))
    assert files
    for path in files:
        assert isinstance(json.loads(path.read_text(encoding="utf-8")), dict), path


def test_zh_node_defs_cover_every_node_input_and_output():
    zh = json.loads((LOCALES / "zh" / "nodeDefs.json").read_text(encoding="utf-8"))
    nodes = pack_nodes()
    assert set(zh) == set(nodes)
    for node_id, node_cls in nodes.items():
        info, entry = drv.node_info(node_cls), zh[node_id]
        assert HAN.search(entry["display_name"]) and HAN.search(entry["description"]), node_id
        for group in ("required", "optional"):
            for name, (_type, *opts) in info["input"].get(group, {}).items():
                assert HAN.search(entry["inputs"][name]["name"]) or len(entry["inputs"][name]["name"]) <= 2, \
                    (node_id, name)
                if (opts[0] if opts else {}).get("tooltip"):
                    assert HAN.search(entry["inputs"][name].get("tooltip", "")), (node_id, name)
        assert set(entry["inputs"]) == {n for g in ("required", "optional") for n in info["input"].get(g, {})}
        assert set(entry["outputs"]) == {str(i) for i in range(len(info["output"]))}, node_id
        for i, tooltip in enumerate(info.get("output_tooltips") or []):
            if tooltip:
                assert HAN.search(entry["outputs"][str(i)].get("tooltip", "")), (node_id, i)


def test_help_pages_exist_in_english_and_chinese():
    for node_id in pack_nodes():
        english = ROOT / "web" / "docs" / f"{node_id}.md"
        chinese = ROOT / "web" / "docs" / node_id / "zh.md"
        assert english.read_text(encoding="utf-8").startswith("# ")
        text = chinese.read_text(encoding="utf-8")
        assert text.startswith("# ") and len(HAN.findall(text)) > 200, node_id
        # same structure: one Chinese section per English section
        assert text.count("\n## ") == english.read_text(encoding="utf-8").count("\n## "), node_id


def test_only_the_extension_modules_are_under_web():
    # ComfyUI loads every .js under WEB_DIRECTORY as an extension: no stray scripts
    scripts = sorted(p.relative_to(ROOT / "web").as_posix() for p in (ROOT / "web").rglob("*.js"))
    assert scripts == ["js/cloud_outpaint.js", "js/cost_badge.js", "js/credentials_dialog.js", "js/geometry_preview.js",
                       "js/mode_widgets.js", "js/spend_panel.js"]
