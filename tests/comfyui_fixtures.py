"""Fixtures of the real-ComfyUI suites (test_comfyui_real.py, test_comfyui_frontend.py), loaded as
their pytest plugin: a sandbox, and a ComfyUI whose cloud backend reaches it through the variables a
user sets (one of each per test module). ComfyUI starts with an empty input folder, as on a fresh
install: the examples' image is there only because the pack puts it there (nodes/sample_image.py)."""

import pytest
from comfy_server import ComfyServer
from pack import module

Sandbox = module("nodes.sandbox").Sandbox


@pytest.fixture(scope="module")
def sandbox():
    with Sandbox() as sb:
        yield sb


@pytest.fixture(scope="module")
def comfy(tmp_path_factory, sandbox):
    # the cloud backend reaches the sandbox through the same variables a user sets
    env = {"VOLC_BASE_URL": sandbox.url, "VOLC_ACCESSKEY": sandbox.volc_access_key,
           "VOLC_SECRETKEY": sandbox.volc_secret_key,
           "DASHSCOPE_HTTP_BASE_URL": f"{sandbox.url}/api/v1", "DASHSCOPE_API_KEY": sandbox.dashscope_api_key}
    server = ComfyServer(tmp_path_factory.mktemp("comfyui"), env=env).start()  # no inputs copied
    yield server
    server.stop()


@pytest.fixture(scope="module")
def object_info(comfy):
    return comfy.get("/object_info")
