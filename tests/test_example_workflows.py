"""CI-safe checks of example_workflows/*.json: valid UI format 0.4, only known node types, widget
counts that match the node schemas, links that agree with the nodes, and a prompt that passes
ComfyUI's validation rules for this pack's nodes."""

import json

import comfy_driver as drv
import pytest
import workflows
from conftest import ROOT, load_pack
from core_nodes import CORE_NODES

EXAMPLES = sorted((ROOT / "example_workflows").glob("*.json"))
NODE_KEYS = {"id", "type", "pos", "size", "flags", "order", "mode", "properties"}


def pack_nodes() -> dict:
    import asyncio
    extension = asyncio.run(load_pack().comfy_entrypoint())
    return {n.GET_SCHEMA().node_id: n for n in asyncio.run(extension.get_node_list())}


def all_infos() -> dict:
    return {**CORE_NODES, **{k: drv.node_info(v) for k, v in pack_nodes().items()}}


def test_there_are_examples():
    assert EXAMPLES


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_workflow_is_valid_ui_json(path):
    wf = json.loads(path.read_text())
    assert wf["version"] == 0.4
    assert {"last_node_id", "last_link_id", "nodes", "links"} <= set(wf)
    ids = [n["id"] for n in wf["nodes"]]
    assert len(ids) == len(set(ids)) and max(ids) <= wf["last_node_id"]
    infos = all_infos()
    for node in wf["nodes"]:
        assert NODE_KEYS <= set(node), node["id"]
        assert node["type"] in infos, f"unknown node type {node['type']}"
        assert node["properties"].get("Node name for S&R") == node["type"]
        values = node.get("widgets_values") or []
        assert len(values) == workflows.expected_widget_count(infos[node["type"]]), \
            f"node {node['id']} ({node['type']}): widget count does not match the schema"
    by_id = {n["id"]: n for n in wf["nodes"]}
    for link_id, src, src_slot, dst, dst_slot, kind in wf["links"]:
        assert link_id <= wf["last_link_id"]
        assert link_id in by_id[src]["outputs"][src_slot]["links"]
        assert by_id[dst]["inputs"][dst_slot]["link"] == link_id
        assert by_id[src]["outputs"][src_slot]["type"] == kind
        assert by_id[dst]["inputs"][dst_slot]["type"] in (kind, "*")  # "*" = any type (PreviewAny)


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_workflow_prompt_passes_validation(path):
    wf = json.loads(path.read_text())
    prompt = workflows.ui_to_api(wf, all_infos())
    nodes = pack_nodes()
    for node in prompt.values():
        if node["class_type"] in nodes:
            linked = {k for k, v in node["inputs"].items() if isinstance(v, list)}
            drv.validate(nodes[node["class_type"]], node["inputs"], linked)


SECRET_SHAPES = [r"AKLT[0-9A-Za-z]{8,}", r"\bsk-[0-9A-Za-z-]{12,}", r"[A-Za-z0-9+/]{32,}={0,2}"]


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_workflow_has_thumbnail_and_no_secrets(path):
    import re
    assert path.with_suffix(".jpg").exists()
    text = path.read_text()
    for shape in SECRET_SHAPES:
        assert not re.search(shape, text), f"something shaped like a credential: {shape}"
