"""VolcOutpaint driven as ComfyUI drives a V3 node, against the sandbox (both backends)."""

import asyncio
import inspect
import json

import comfy_driver as drv
import pytest
import torch
from pack import module

VolcOutpaint = module("nodes.volc_node").VolcOutpaint
Sandbox = module("nodes.sandbox").Sandbox
backends = module("nodes.core.backends")
errors = module("nodes.core.errors")
SOCKETS = {"IMAGE", "MASK"}


def defaults(**overrides):
    info = drv.node_info(VolcOutpaint)
    values = {name: opts.get("default") for name, (io_type, opts) in info["input"]["required"].items()
              if io_type not in SOCKETS}
    return {**values, **overrides}


def run_node(image, mask=None, **overrides):
    inputs = {**defaults(**overrides), "image": image}
    if mask is not None:
        inputs["mask"] = mask
    return drv.execute(VolcOutpaint, hidden={"unique_id": "7"}, linked={"image", "mask"} & set(inputs), **inputs)


@pytest.fixture
def cloud_env(monkeypatch, tmp_path):
    """'cloud' pointed at a private sandbox through the same environment variables users set."""
    with Sandbox() as sb:
        monkeypatch.setenv("HOME", str(tmp_path))
        for name in ("VOLC_API_KEY", "VOLC_AUTH", "VOLC_SESSION_TOKEN"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("VOLC_BASE_URL", sb.url)
        monkeypatch.setenv("VOLC_ACCESSKEY", sb.volc_access_key)
        monkeypatch.setenv("VOLC_SECRETKEY", sb.volc_secret_key)
        yield sb


def test_schema_matches_execute_and_has_no_secret_widgets():
    info = drv.node_info(VolcOutpaint)
    declared = list(info["input"]["required"]) + list(info["input"].get("optional", {}))
    assert declared == list(inspect.signature(VolcOutpaint.execute).parameters)
    assert info["output"] == ["IMAGE", "MASK", "STRING"]
    assert info["input"]["required"]["seed"][1]["control_after_generate"] is True
    assert not any(word in name for name in declared for word in ("key", "secret", "token", "password"))


def test_sandbox_backend_runs_offline():
    image = torch.rand((2, 40, 48, 3))
    out, mask, info = run_node(image, backend="sandbox", variants=2, seed=3)
    assert out.shape == (4, 48, 58, 3) and mask.shape == (4, 48, 58)
    report = json.loads(info)
    assert [r["seed"] for r in report["results"]] == [3, 4, 3, 4]
    assert backends.shared_sandbox().log.count("volc", billable=True) >= 4


def test_cloud_backend_reads_credentials_from_the_environment(cloud_env):
    image = torch.rand((1, 40, 48, 3))
    out, mask, info = run_node(image, prompt="a calm lake", watermark="top-left", watermark_language="en")
    entry = cloud_env.requests("volc")[0]
    assert entry.detail["auth"] == "signature" and entry.detail["prompt"] == "a calm lake"
    assert entry.detail["logo_info"]["position"] == 2 and entry.detail["logo_info"]["language"] == 1
    assert cloud_env.volc_secret_key not in info and cloud_env.volc_access_key not in info


def test_canvas_mode_when_a_mask_is_connected(cloud_env):
    image = torch.rand((1, 40, 48, 3))
    mask = torch.zeros((1, 40, 48))
    mask[:, :, :8] = 1
    out, out_mask, info = run_node(image, mask)
    assert out.shape == (1, 40, 48, 3) and json.loads(info)["mode"] == "canvas"
    assert cloud_env.requests("volc")[0].detail["mode"] == "canvas"


def test_missing_credentials_say_what_to_do(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    for name in ("VOLC_ACCESSKEY", "VOLC_SECRETKEY", "VOLC_API_KEY", "VOLC_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(errors.ConfigError, match="sandbox"):
        run_node(torch.rand((1, 8, 8, 3)))


def test_widget_ranges_follow_the_vendor():
    with pytest.raises(drv.ValidationFailed, match="value_bigger_than_max"):
        run_node(torch.rand((1, 8, 8, 3)), top=1.5)
    with pytest.raises(drv.ValidationFailed, match="value_not_in_list"):
        run_node(torch.rand((1, 8, 8, 3)), backend="moon")


def test_vendor_error_names_the_item(cloud_env):
    cloud_env.inject("volc", "error", code=50411)
    with pytest.raises(errors.ItemError, match=r"image 1: Volcengine error 50411.*moderation.*request id"):
        run_node(torch.rand((1, 8, 8, 3)))


def test_the_ui_tells_the_page_the_input_size_and_batch():
    """web/js reads them: the geometry preview (size) and the cost badge (x batch), after a run."""
    values = {**defaults(backend="sandbox"), "image": torch.rand((2, 40, 48, 3))}
    out = asyncio.run(VolcOutpaint.execute(**values))
    assert out.ui["cloud_outpaint_input"] == [{"width": 48, "height": 40, "batch": 2}]
