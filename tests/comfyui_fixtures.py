"""Fixtures of the real-ComfyUI suites (test_comfyui_real.py, test_comfyui_frontend*.py), loaded
as their pytest plugin: a sandbox, a ComfyUI whose cloud backend reaches it through the variables
a user sets, and a headless Chromium with a page on it (one of each per test module). ComfyUI
starts with an empty input folder, as on a fresh install: the examples' image is there only because
the pack puts it there (nodes/sample_image.py)."""

import os
import shutil

import pytest
from comfy_server import ComfyServer
from conftest import sandbox_env
from pack import module

Sandbox = module("nodes.sandbox").Sandbox


@pytest.fixture(scope="module")
def sandbox():
    with Sandbox() as sb:
        yield sb


@pytest.fixture(scope="module")
def comfy(tmp_path_factory, sandbox):
    # the cloud backend reaches the sandbox through the same variables a user sets
    server = ComfyServer(tmp_path_factory.mktemp("comfyui"), env=sandbox_env(sandbox)).start()  # no inputs copied
    yield server
    server.stop()


@pytest.fixture(scope="module")
def object_info(comfy):
    return comfy.get("/object_info")


CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def chromium():
    """One headless Chromium for the module (Playwright's sync API allows one instance at a time)."""
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    if not shutil.which(CHROMIUM):
        pytest.skip(f"no Chromium at {CHROMIUM}")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def open_page(browser, url):
    """A page on `url` once the app is up; console and page errors are collected in page.errors."""
    page = browser.new_page(viewport={"width": 1500, "height": 900})
    page.errors = []
    page.on("pageerror", lambda exc: page.errors.append(f"pageerror: {exc}"))
    page.on("console", lambda m: m.type == "error" and page.errors.append(f"{m.text} @ {m.location.get('url')}"))
    page.goto(url)
    page.wait_for_function("window.app && window.app.graph && window.app.canvas", timeout=90_000)
    return page


@pytest.fixture(scope="module")
def browser_page(comfy, chromium):
    # a fresh page with no errors of earlier prompts (the server tests queue failing ones on purpose; the
    # 1.42 frontend shows the last prompt's errors when a page opens)
    comfy.post("/history", {"clear": True})
    page = open_page(chromium, comfy.url)
    yield page
    page.close()
