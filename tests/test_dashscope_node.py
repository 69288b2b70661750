"""DashScopeOutpaint driven as ComfyUI drives a V3 node, against the sandbox (both backends)."""

import inspect
import json

import comfy_driver as drv
import pytest
import torch
from pack import module

DashScopeOutpaint = module("nodes.dashscope_node").DashScopeOutpaint
Sandbox = module("nodes.sandbox").Sandbox
errors = module("nodes.core.errors")
SOCKETS = {"IMAGE", "MASK"}


def run_node(image, **overrides):
    info = drv.node_info(DashScopeOutpaint)
    inputs = {name: opts.get("default") for name, (t, opts) in info["input"]["required"].items() if t not in SOCKETS}
    inputs.update(overrides, image=image)
    return drv.execute(DashScopeOutpaint, hidden={"unique_id": "9"}, linked={"image"}, **inputs)


@pytest.fixture
def cloud_env(monkeypatch, tmp_path):
    with Sandbox(dashscope_pending_s=0.05, dashscope_running_s=0.1) as sb:
        monkeypatch.setenv("HOME", str(tmp_path))
        monkeypatch.delenv("DASHSCOPE_WORKSPACE_ID", raising=False)
        monkeypatch.setenv("DASHSCOPE_HTTP_BASE_URL", f"{sb.url}/api/v1")
        monkeypatch.setenv("DASHSCOPE_API_KEY", sb.dashscope_api_key)
        yield sb


def test_schema_matches_execute_and_keeps_the_vendor_watermark_default():
    info = drv.node_info(DashScopeOutpaint)
    declared = list(info["input"]["required"]) + list(info["input"].get("optional", {}))
    assert declared == list(inspect.signature(DashScopeOutpaint.execute).parameters)
    assert info["input"]["required"]["add_watermark"][1]["default"] is True
    assert info["output"] == ["IMAGE", "MASK", "STRING"]


def test_sandbox_backend_runs_offline():
    out, mask, info = run_node(torch.rand((1, 512, 512, 3)), backend="sandbox", mode="offsets", left_offset=64,
                               right_offset=0)
    assert out.shape == (1, 512, 576, 3) and mask.shape == (1, 512, 576)
    assert json.loads(info)["results"][0]["task_id"]


def test_cloud_backend_reads_the_key_from_the_environment(cloud_env):
    out, _, info = run_node(torch.rand((1, 512, 512, 3)), mode="output_ratio", output_ratio="4:3")
    assert out.shape == (1, 512, 683, 3)
    assert cloud_env.dashscope_api_key not in info


def test_resume_task_ids_input(cloud_env):
    _, _, info = run_node(torch.rand((1, 512, 512, 3)))
    task_id = json.loads(info)["results"][0]["task_id"]
    billed = cloud_env.billable_count()
    _, _, info2 = run_node(torch.rand((1, 512, 512, 3)), resume_task_ids=f" {task_id}\n")
    assert cloud_env.billable_count() == billed and json.loads(info2)["results"][0]["task_id"] == task_id


def test_missing_key_says_what_to_do(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    for name in ("DASHSCOPE_API_KEY", "DASHSCOPE_API_KEY_FILE_PATH"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(errors.ConfigError, match="DASHSCOPE_API_KEY"):
        run_node(torch.rand((1, 512, 512, 3)))


def test_widget_ranges_follow_the_vendor():
    with pytest.raises(drv.ValidationFailed, match="value_bigger_than_max"):
        run_node(torch.rand((1, 8, 8, 3)), x_scale=3.5)
    with pytest.raises(drv.ValidationFailed, match="value_not_in_list"):
        run_node(torch.rand((1, 8, 8, 3)), output_ratio="2:1")
