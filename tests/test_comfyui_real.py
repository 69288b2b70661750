"""The pack inside a real ComfyUI on 127.0.0.1 (skipped unless COMFYUI_DIR is set).

Checks: the pack imports (no IMPORT FAILED), /object_info serves the nodes exactly as the
stand-in schema says, the core-node table used by the CI-safe checks is right, every example
workflow runs as an API prompt, a bad widget value is refused before running, an interrupt ends
waiting cloud nodes within a second (and cancels the DashScope task), and independent cloud nodes
of one graph run side by side. The browser checks are in test_comfyui_frontend.py.
"""

import io
import json
import time

import comfy_driver as drv
import pytest
import workflows
from comfy_server import comfyui_dir, side_by_side_prompt, wall_seconds, widget_defaults
from conftest import ROOT
from core_nodes import CORE_NODES
from PIL import Image
from test_example_workflows import EXAMPLES, pack_nodes

pytest_plugins = ["comfyui_fixtures"]  # fixtures sandbox, comfy, object_info
pytestmark = [pytest.mark.comfyui, pytest.mark.skipif(
    comfyui_dir() is None, reason="COMFYUI_DIR is not set: the real-ComfyUI tests need a ComfyUI checkout")]


def test_pack_imported_without_errors(comfy):
    log = comfy.log_text()
    assert "IMPORT FAILED" not in log, log[-3000:]
    assert "Cannot import" not in log and "Error while calling comfy_entrypoint" not in log


def test_object_info_matches_the_schema(object_info):
    for node_id, node_cls in pack_nodes().items():
        real, ours = object_info[node_id], drv.node_info(node_cls)
        for key in ("input_order", "output", "output_name", "name", "display_name", "category"):
            assert real[key] == ours[key], key
        for group, inputs in ours["input"].items():
            for name, (io_type, *opts) in inputs.items():
                real_type, *real_opts = real["input"][group][name]
                assert real_type == io_type
                for opt, value in (opts[0] if opts else {}).items():
                    assert (real_opts[0] if real_opts else {}).get(opt) == value, (name, opt)
        assert real["python_module"] == "custom_nodes.cloud-outpaint"


def test_core_node_table_is_right(object_info):
    for node_id, info in CORE_NODES.items():
        real_order = object_info[node_id]["input_order"]
        assert {k: v for k, v in real_order.items() if k != "hidden"} == info["input_order"]
        assert workflows.expected_widget_count(object_info[node_id]) == workflows.expected_widget_count(info)


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_runs_as_api_prompt(comfy, object_info, path):
    prompt = workflows.ui_to_api(json.loads(path.read_text()), object_info)
    entry = comfy.run_prompt(prompt)
    assert entry["status"]["status_str"] == "success", json.dumps(entry["status"])[:3000]
    images = [img for out in entry["outputs"].values() for img in out.get("images", [])]
    assert images
    for image in images:
        Image.open(io.BytesIO(comfy.view(image))).verify()


def test_mask_canvas_builder_end_to_end(comfy):
    prompt = {
        "1": {"class_type": "EmptyImage", "inputs": {"width": 64, "height": 48, "batch_size": 2, "color": 0xFF0000}},
        "2": {"class_type": "MaskCanvasBuilder", "inputs": {
            "image": ["1", 0], "expand_mode": "pixels", "left": 16, "top": 0, "right": 0, "bottom": 8,
            "feathering": 4, "fraction_left": 0.1, "fraction_top": 0.1, "fraction_right": 0.1,
            "fraction_bottom": 0.1, "x_scale": 1.5, "y_scale": 1.5, "aspect_ratio": "16:9",
            "target_width": 1024, "target_height": 1024, "anchor": "center", "multiple_of": 1,
            "fill": "grey", "fill_color": "#808080", "noise": 0.0, "seed": 0, "feather_curve": "quadratic",
            "overlap": 0}},
        "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "canvas"}},
        "4": {"class_type": "MaskToImage", "inputs": {"mask": ["2", 1]}},
        "5": {"class_type": "SaveImage", "inputs": {"images": ["4", 0], "filename_prefix": "mask"}},
    }
    entry = comfy.run_prompt(prompt)
    assert entry["status"]["status_str"] == "success", json.dumps(entry["status"])[:3000]
    canvases, masks = entry["outputs"]["3"]["images"], entry["outputs"]["5"]["images"]
    assert len(canvases) == 2 and len(masks) == 2  # one mask per batch item
    canvas = Image.open(io.BytesIO(comfy.view(canvases[0]))).convert("RGB")
    mask = Image.open(io.BytesIO(comfy.view(masks[1]))).convert("L")
    assert canvas.size == mask.size == (80, 56)
    # SaveImage truncates 0.5 * 255 to 127
    assert canvas.getpixel((0, 0)) == (127, 127, 127) and canvas.getpixel((40, 20)) == (255, 0, 0)
    assert mask.getpixel((0, 0)) == 255 and mask.getpixel((16, 20)) == 255  # seam column gets 1.0
    assert mask.getpixel((40, 20)) == 0 and mask.getpixel((40, 47)) == 255  # bottom seam row too


def test_bad_widget_value_is_rejected_before_running(comfy, object_info):
    prompt = workflows.ui_to_api(json.loads((ROOT / "example_workflows/mask_canvas_builder.json").read_text()),
                                 object_info)
    node = next(n for n in prompt.values() if n["class_type"] == "MaskCanvasBuilder")
    node["inputs"].update(expand_mode="aspect_ratio", aspect_ratio="wide")
    status, body = comfy.post("/prompt", {"prompt": prompt})
    assert status == 400
    errors = [e for n in body["node_errors"].values() for e in n["errors"]]
    assert errors[0]["type"] == "custom_validation_failed" and "aspect ratio" in errors[0]["details"]


@pytest.mark.parametrize("node_type", ["VolcOutpaint", "DashScopeOutpaint"])
def test_an_api_prompt_saved_with_0_1_0_still_runs(comfy, object_info, node_type):
    """Scripts keep API prompts: one written for 0.1.0 has none of the widgets added since (optional now)."""
    info = object_info[node_type]
    added = [name for name in info["input"].get("optional", {}) if name != "mask"]
    assert "use_cache" in added and "output_resolution" in added
    inputs = {**widget_defaults(info), "image": ["1", 0], "backend": "sandbox"}
    assert not set(added) & set(inputs)
    prompt = {"1": {"class_type": "EmptyImage", "inputs": {"width": 96, "height": 64, "batch_size": 1,
                                                           "color": 0x3366AA}},
              "2": {"class_type": node_type, "inputs": inputs},
              "3": {"class_type": "PreviewImage", "inputs": {"images": ["2", 0]}}}
    entry = comfy.run_prompt(prompt)
    assert entry["status"]["status_str"] == "success", json.dumps(entry["status"])[:3000]
    assert entry["outputs"]["3"]["images"]


def test_interrupt_stops_a_waiting_cloud_node_within_a_second(comfy, object_info, sandbox):
    prompt = workflows.ui_to_api(json.loads((ROOT / "example_workflows/volc_outpaint_ratio.json").read_text()),
                                 object_info)
    # backend cloud = this test's sandbox (its latency); seed 777: not cached
    next(n for n in prompt.values() if n["class_type"] == "VolcOutpaint")["inputs"].update(seed=777, backend="cloud")
    sandbox.latency = 20
    try:
        status, body = comfy.post("/prompt", {"prompt": prompt})
        assert status == 200
        deadline = time.monotonic() + 30
        while not any(e.action == "CVProcess" for e in sandbox.requests("volc")[-1:]) or \
                sandbox.requests("volc")[-1].detail.get("seed") != 777:
            assert time.monotonic() < deadline, "the request never reached the sandbox"
            time.sleep(0.1)
        interrupted_at = time.monotonic()
        comfy.post("/interrupt", {})
        while True:
            history = comfy.get(f"/history/{body['prompt_id']}")
            if body["prompt_id"] in history:
                break
            assert time.monotonic() - interrupted_at < 5
            time.sleep(0.05)
        took = time.monotonic() - interrupted_at
        events = [event for event, _ in history[body["prompt_id"]]["status"]["messages"]]
        assert "execution_interrupted" in events and "execution_error" not in events
        assert took < 1.5
    finally:
        sandbox.latency = 0


def test_interrupt_cancels_a_waiting_dashscope_task(comfy, object_info, sandbox):
    prompt = workflows.ui_to_api(json.loads((ROOT / "example_workflows/dashscope_outpaint_ratio.json").read_text()),
                                 object_info)
    next(n for n in prompt.values() if n["class_type"] == "DashScopeOutpaint")["inputs"].update(x_scale=1.25,
                                                                                                backend="cloud")
    sandbox.inject("dashscope", "stuck")
    creates_before = len(sandbox.requests("dashscope", action="create"))
    cancels_before = len(sandbox.requests("dashscope", action="cancel"))
    status, body = comfy.post("/prompt", {"prompt": prompt})
    assert status == 200
    deadline = time.monotonic() + 30
    while len(sandbox.requests("dashscope", action="create")) == creates_before:
        assert time.monotonic() < deadline, "the task was never created"
        time.sleep(0.1)
    interrupted_at = time.monotonic()
    comfy.post("/interrupt", {})
    while body["prompt_id"] not in comfy.get(f"/history/{body['prompt_id']}"):
        assert time.monotonic() - interrupted_at < 5
        time.sleep(0.05)
    took = time.monotonic() - interrupted_at
    events = [e for e, _ in comfy.get(f"/history/{body['prompt_id']}")[body["prompt_id"]]["status"]["messages"]]
    assert "execution_interrupted" in events and took < 1.5
    while len(sandbox.requests("dashscope", action="cancel")) == cancels_before:
        assert time.monotonic() - interrupted_at < 5, "the vendor task was not cancelled"
        time.sleep(0.05)



def _seed() -> int:
    return time.monotonic_ns() % 2**30  # a fresh seed: ComfyUI would serve a repeated graph from its cache


def _run_with_latency(comfy, sandbox, prompt, latency):
    sandbox.latency = latency
    try:
        entry = comfy.run_prompt(prompt, timeout=60)
    finally:
        sandbox.latency = 0
    assert entry["status"]["status_str"] == "success", json.dumps(entry["status"])[:3000]
    return entry


@pytest.mark.parametrize("pair", [("VolcOutpaint", "VolcOutpaint"), ("VolcOutpaint", "DashScopeOutpaint")],
                         ids="+".join)
def test_two_cloud_nodes_in_one_graph_run_side_by_side(comfy, object_info, sandbox, pair):
    latency = 1.0  # per vendor request: a Volcengine run waits it once, a DashScope run at its create
    alone = [wall_seconds(_run_with_latency(comfy, sandbox, side_by_side_prompt(object_info, [node], _seed()),
                                            latency)) for node in pair]
    before = len(sandbox.requests())
    together = wall_seconds(_run_with_latency(comfy, sandbox, side_by_side_prompt(object_info, list(pair), _seed()),
                                              latency))
    # one after the other would take sum(alone); side by side takes about the longer one
    assert together < max(alone) + 0.5 < sum(alone), (alone, together)
    # both nodes' billable requests were in the sandbox at the same time
    starts = sorted(e.time for e in sandbox.requests()[before:] if e.billable)
    assert len(starts) == 2 and (starts[1] - starts[0]).total_seconds() < latency / 2, starts


def test_an_interrupt_ends_every_cloud_node_of_the_graph(comfy, object_info, sandbox):
    # side by side: a Volcengine request in flight and a DashScope task that never finishes
    sandbox.inject("volc", "slow", seconds=20)
    sandbox.inject("dashscope", "stuck")
    before, cancels_before = len(sandbox.requests()), len(sandbox.requests("dashscope", action="cancel"))
    status, body = comfy.post("/prompt", {"prompt": side_by_side_prompt(
        object_info, ["VolcOutpaint", "DashScopeOutpaint"], _seed())})
    assert status == 200
    deadline = time.monotonic() + 30
    while {(e.vendor, e.action) for e in sandbox.requests()[before:] if e.billable} != {
            ("volc", "CVProcess"), ("dashscope", "create")}:
        assert time.monotonic() < deadline, "both cloud nodes should be waiting on the vendor"
        time.sleep(0.05)
    interrupted_at = time.monotonic()
    comfy.post("/interrupt", {})
    while body["prompt_id"] not in comfy.get(f"/history/{body['prompt_id']}"):
        # ComfyUI records the prompt only once every node's worker thread has ended
        assert time.monotonic() - interrupted_at < 5, "a cloud node kept its prompt running"
        time.sleep(0.05)
    took = time.monotonic() - interrupted_at
    events = [e for e, _ in comfy.get(f"/history/{body['prompt_id']}")[body["prompt_id"]]["status"]["messages"]]
    assert "execution_interrupted" in events and "execution_error" not in events and took < 1.5, (events, took)
    while len(sandbox.requests("dashscope", action="cancel")) == cancels_before:
        assert time.monotonic() - interrupted_at < 5, "the DashScope task was not cancelled"
        time.sleep(0.05)
    # the interrupt belonged to that prompt: the next one runs
    entry = comfy.run_prompt(side_by_side_prompt(object_info, ["VolcOutpaint", "DashScopeOutpaint"], _seed()))
    assert entry["status"]["status_str"] == "success", json.dumps(entry["status"])[:3000]


def test_a_large_photo_comes_back_at_its_own_scale_through_both_cloud_nodes(comfy, object_info, sandbox, tmp_path):
    """output_resolution = original (the default), issue 14: a 2400x2000 photo, 10 % a side, comes back at
    2880x2400 from both nodes, its own pixels unchanged inside the seam (the sandbox shrinks the results as
    the vendors do: Volcengine to max_width x max_height 1920, DashScope's result under the 5 MB limit,
    here 2 MiB), compared with the same photo through LoadImage -> SaveImage."""
    import numpy as np

    rng = np.random.default_rng(14)
    ys, xs = np.mgrid[0:2000, 0:2400]
    base = np.stack([xs / 2400, ys / 2000, xs * ys / 4.8e6], -1) * 150 + 40
    Image.fromarray((base + rng.integers(0, 60, base.shape)).astype(np.uint8)).save(tmp_path / "large_photo.png")
    name = comfy.add_input(tmp_path / "large_photo.png")
    seed = _seed()
    prompt = {"1": {"class_type": "LoadImage", "inputs": {"image": name}},
              "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "photo"}}}
    for node, node_type, extra in (("10", "VolcOutpaint", {"seed": seed}),
                                   ("12", "DashScopeOutpaint", {"mode": "scale", "x_scale": 1.2, "y_scale": 1.2,
                                                                "add_watermark": False, "image_format": "jpeg",
                                                                "angle": 0})):
        prompt[node] = {"class_type": node_type, "inputs": {
            **widget_defaults(object_info[node_type]), "image": ["1", 0], "backend": "cloud", **extra}}
        prompt[str(int(node) + 1)] = {"class_type": "SaveImage", "inputs": {"images": [node, 0],
                                                                            "filename_prefix": node_type}}
    sandbox.dashscope_limited_output_bytes = 2 * 2**20
    try:
        entry = comfy.run_prompt(prompt, timeout=300)
    finally:
        sandbox.dashscope_limited_output_bytes = 5 * 1024 * 1024
    assert entry["status"]["status_str"] == "success", json.dumps(entry["status"])[:3000]

    def saved(node):
        [image] = entry["outputs"][node]["images"]
        return np.asarray(Image.open(io.BytesIO(comfy.view(image))).convert("RGB"))

    photo = saved("2")
    assert photo.shape == (2000, 2400, 3)
    for node in ("11", "13"):
        out = saved(node)
        assert out.shape == (2400, 2880, 3), node
        seam = 40  # 2 % of the shorter side
        assert np.array_equal(out[200 + seam:2200 - seam, 240 + seam:2640 - seam], photo[seam:-seam, seam:-seam]), node
