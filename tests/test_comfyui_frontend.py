"""The pack's frontend in headless Chromium on a real ComfyUI (skipped unless COMFYUI_DIR is set).

Checks: every example workflow, opened from the template route on a ComfyUI whose input folder started
empty, loads with no missing-node dialog or error, keeps its widget values, converts (graphToPrompt)
to the same prompt as tests/workflows.py and runs from the page; only the widgets of the chosen mode
are drawn (canvas and Vue nodes), and hidden values stay saved and sent; the web/js extension loads
without errors; the keys dialog round trip keeps secrets out of the page, storage, workflow and PNG;
the geometry preview matches the Python geometry; the zh locale; status text under a waiting node.
"""

import io
import json
import os
import shutil
import time

import pytest
import workflows
from comfy_server import PACK_FOLDER, ComfyServer, comfyui_dir
from conftest import ROOT
from pack import module
from PIL import Image
from test_example_workflows import EXAMPLES

widgets = module("nodes.core.widgets")
SAMPLE = module("nodes.sample_image").NAME
TABLES = {"VolcOutpaint": widgets.VOLC, "DashScopeOutpaint": widgets.DASHSCOPE, "MaskCanvasBuilder": widgets.CANVAS}

pytest_plugins = ["comfyui_fixtures"]  # fixtures sandbox, comfy, object_info
pytestmark = [pytest.mark.comfyui, pytest.mark.skipif(
    comfyui_dir() is None, reason="COMFYUI_DIR is not set: the real-ComfyUI tests need a ComfyUI checkout")]

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


def queue_from_page(page, comfy, timeout=90):
    """Queue the page's graph as the Run button does; the finished history entry."""
    before = set(comfy.get("/history"))
    page.evaluate("async () => { await app.queuePrompt(0, 1) }")
    deadline = time.monotonic() + timeout
    while True:
        done = [v for k, v in comfy.get("/history").items()
                if k not in before and v["status"].get("completed") is not None]
        if done:
            return done[0]
        assert time.monotonic() < deadline, "the run from the page did not finish"
        time.sleep(0.3)


def test_the_pack_put_its_sample_into_the_fresh_input_folder(comfy):
    assert comfy.inputs == []  # ComfyUI started with an empty input folder
    assert (comfy.workdir / "input" / SAMPLE).read_bytes() == (ROOT / "example_workflows" / SAMPLE).read_bytes()
    served = comfy.view({"filename": SAMPLE, "subfolder": "", "type": "input"})
    assert served == (comfy.workdir / "input" / SAMPLE).read_bytes()


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_loads_in_the_real_frontend(browser_page, comfy, object_info, path, tmp_path):
    page, wf = browser_page, json.loads(path.read_text())
    # open it as the template browser does: the file ComfyUI serves for this pack, loaded into the graph
    templates = page.evaluate("async () => (await (await fetch('/api/workflow_templates')).json())")
    assert path.stem in templates[PACK_FOLDER]
    served = page.evaluate("async (url) => (await (await fetch(url)).json())",
                           f"/api/workflow_templates/{PACK_FOLDER}/{path.name}")
    assert served == wf
    page.evaluate("async ([wf, name]) => { await app.loadGraphData(wf, true, true, name) }", [served, path.stem])
    page.wait_for_timeout(1000)
    problems = page.evaluate("""() => [
        ...[...document.querySelectorAll('[role=dialog]')].map(d => 'dialog: ' + d.innerText.slice(0, 300)),
        ...[...document.querySelectorAll('[data-testid=error-overlay]')].map(d => 'overlay: ' + d.innerText),
        ...app.graph._nodes.filter(n => n.has_errors).map(n => 'node error: ' + n.type)]""")
    assert problems == []
    for node in wf["nodes"]:
        saved = node.get("widgets_values") or []
        live = page.evaluate("(id) => app.graph.getNodeById(id).serialize().widgets_values || []", node["id"])
        # the frontend may append widgets of its own (PreviewAny's text view); schema widgets come first
        assert live[:len(saved)] == saved, f"node {node['id']} ({node['type']}) widgets shifted"
    frontend_prompt = page.evaluate("async () => (await app.graphToPrompt()).output")
    prompt = json.loads(json.dumps(frontend_prompt))
    for node in prompt.values():  # compare what the server reads: inputs its schema declares
        node.pop("_meta", None)
        declared = {n for group in object_info[node["class_type"]]["input"].values() for n in group}
        node["inputs"] = {k: v for k, v in node["inputs"].items() if k in declared}
    assert prompt == workflows.ui_to_api(wf, object_info)
    page.screenshot(path=str(tmp_path / f"{path.stem}.png"))
    # run it from the page with backend = sandbox (the pack's offline emulator: no key needed), as opened
    page.evaluate("""() => { for (const n of app.graph._nodes) { const w = n.widgets?.find(w => w.name === 'backend');
                                 if (w) { w.value = 'sandbox'; w.callback?.('sandbox'); } } }""")
    entry = queue_from_page(page, comfy)
    assert entry["status"]["status_str"] == "success", json.dumps(entry["status"])[:3000]
    images = [img for out in entry["outputs"].values() for img in out.get("images", [])]
    assert images
    for image in images:
        Image.open(io.BytesIO(comfy.view(image))).verify()


# ---- the pack's frontend (web/js): extension, credentials dialog, geometry preview, locales ----

PACK_JS = "/extensions/cloud-outpaint/js/"


@pytest.fixture(scope="module")
def nokey_comfy(tmp_path_factory, sandbox):
    """A second ComfyUI with no key env vars (only the sandbox URLs): keys come from the store."""
    env = {"VOLC_BASE_URL": sandbox.url, "DASHSCOPE_HTTP_BASE_URL": f"{sandbox.url}/api/v1",
           "VOLC_ACCESSKEY": "", "VOLC_SECRETKEY": "", "VOLC_API_KEY": "", "DASHSCOPE_API_KEY": "",
           "HOME": str(tmp_path_factory.mktemp("home"))}  # no ~/.volc or ~/.dashscope SDK files either
    server = ComfyServer(tmp_path_factory.mktemp("comfyui_nokeys"), env=env).start()  # the pack provides the sample
    yield server
    server.stop()


@pytest.fixture(scope="module")
def nokey_page(nokey_comfy, chromium):
    page = open_page(chromium, nokey_comfy.url)
    yield page
    page.close()


def _pack_errors(page):
    return [e for e in page.errors if "cloud-outpaint" in e or "cloud_outpaint" in e.lower()
            or "Cloud Outpaint" in e]


def test_frontend_extension_loads_without_errors(nokey_page):
    page = nokey_page
    page.wait_for_timeout(500)
    names = page.evaluate("() => app.extensions.map(e => e.name)")
    assert "cloud_outpaint.ui" in names
    assert _pack_errors(page) == [] and not [e for e in page.errors if e.startswith("pageerror")], page.errors
    scripts = page.evaluate("async () => (await (await fetch('/extensions')).json())")
    ours = sorted(s for s in scripts if s.startswith(PACK_JS))
    assert ours == [PACK_JS + n for n in ("cloud_outpaint.js", "credentials_dialog.js", "geometry_preview.js",
                                          "mode_widgets.js")]


def _png_text_chunks(data: bytes) -> str:
    image = Image.open(io.BytesIO(data))
    return json.dumps(dict(image.info), default=str)


def test_credentials_dialog_round_trip_keeps_secrets_out_of_the_page(nokey_page, nokey_comfy, sandbox, tmp_path):
    page, comfy = nokey_page, nokey_comfy
    assert comfy.get("/cloud_outpaint/credentials")["volc"]["configured"] is False
    # reach the dialog the way a user does: Settings ▸ Cloud Outpaint ▸ button
    page.evaluate("app.extensionManager.command.execute('Comfy.ShowSettingsDialog')")
    page.get_by_text("Cloud Outpaint", exact=True).first.click()
    page.locator("[data-cloud-outpaint=open-keys]").click()
    dialog = page.locator("#cloud-outpaint-credentials")
    volc, dash = dialog.locator("[data-vendor=volc]"), dialog.locator("[data-vendor=dashscope]")
    page.wait_for_function("document.querySelector('#cloud-outpaint-credentials [data-role=status]')"
                           "?.textContent.includes('no key')")
    for name in ("access_key", "secret_key", "session_token", "api_key"):
        assert volc.locator(f"input[name={name}]").get_attribute("type") == "password"
        assert volc.locator(f"input[name={name}]").get_attribute("autocomplete") == "off"
    secrets = [sandbox.volc_access_key, sandbox.volc_secret_key, sandbox.dashscope_api_key]
    volc.locator("input[name=access_key]").fill(sandbox.volc_access_key)
    volc.locator("input[name=secret_key]").fill(sandbox.volc_secret_key)
    volc.locator("input[name=base_url]").fill(sandbox.url)  # a stored key goes only to the URL saved with it
    volc.locator("button[name=save]").click()
    dash.locator("input[name=api_key]").fill(sandbox.dashscope_api_key)
    dash.locator("select[name=region]").select_option("custom")
    dash.locator("input[name=base_url]").fill(f"{sandbox.url}/api/v1")
    dash.locator("button[name=save]").click()
    page.wait_for_function("""() => [...document.querySelectorAll('#cloud-outpaint-credentials [data-role=status]')]
                              .every(s => s.textContent.startsWith('✓ key: store'))""", timeout=10_000)
    # the inputs are emptied right after saving
    assert page.evaluate("() => [...document.querySelectorAll('#cloud-outpaint-credentials input')]"
                         ".every(i => i.value === '')")
    status = comfy.get("/cloud_outpaint/credentials")
    assert status["volc"]["source"] == "store" and status["dashscope"]["source"] == "store"
    assert status["volc"]["hint"].endswith(sandbox.volc_access_key[-4:])
    for vendor_section in (volc, dash):
        vendor_section.locator("button[name=test-cloud]").click()
    results = "() => [...document.querySelectorAll('#cloud-outpaint-credentials [data-role=result]')]" \
              ".map(r => r.textContent)"
    deadline = time.monotonic() + 30
    while not all(r.startswith("✓ OK (cloud)") for r in page.evaluate(results)):
        assert time.monotonic() < deadline, page.evaluate(results)
        page.wait_for_timeout(200)
    page.locator("#cloud-outpaint-credentials [role=dialog]").screenshot(path=str(tmp_path / "credentials.png"))
    page.locator("#cloud-outpaint-credentials button[name=close]").click()
    page.keyboard.press("Escape")  # the settings dialog

    # a run from the page: LoadImage -> MaskCanvasBuilder -> SaveImage, plus a cloud node
    wf = json.loads((ROOT / "example_workflows/mask_canvas_builder.json").read_text())
    page.evaluate("async (wf) => { await app.loadGraphData(wf) }", wf)
    page.evaluate("""() => { const n = LiteGraph.createNode('VolcOutpaint'); app.graph.add(n); }""")
    page.wait_for_timeout(500)
    badge = page.evaluate("() => app.graph._nodes.find(n => n.type === 'VolcOutpaint').cloudOutpaintBadgeText()")
    assert badge.startswith("✓ key: store")
    page.evaluate("""() => {
        app.graph.remove(app.graph._nodes.find(n => n.type === 'VolcOutpaint'));
        const save = LiteGraph.createNode('SaveImage');
        app.graph.add(save);
        app.graph._nodes.find(n => n.type === 'MaskCanvasBuilder').connect(0, save, 0);
    }""")
    history_before = set(comfy.get("/history"))
    page.evaluate("async () => { await app.queuePrompt(0, 1) }")
    deadline = time.monotonic() + 60
    while True:
        new = {k: v for k, v in comfy.get("/history").items() if k not in history_before}
        done = [v for v in new.values() if v["status"].get("completed") is not None]
        if done:
            break
        assert time.monotonic() < deadline, "the run from the page did not finish"
        time.sleep(0.3)
    assert done[0]["status"]["status_str"] == "success", json.dumps(done[0]["status"])[:2000]
    saved = [img for out in done[0]["outputs"].values() for img in out.get("images", []) if img["type"] == "output"]
    assert saved, "the example should save an image"
    png_text = _png_text_chunks(comfy.view(saved[0]))
    assert "MaskCanvasBuilder" in png_text  # the workflow is embedded, so the check below means something

    html = page.evaluate("() => document.documentElement.outerHTML")
    storage = page.evaluate("() => JSON.stringify({l: {...localStorage}, s: {...sessionStorage}})")
    workflow = page.evaluate("() => JSON.stringify(app.graph.serialize())")
    user_files = "".join(p.read_text(errors="replace") for p in (comfy.workdir / "user").rglob("*.json")
                         if "cloud_outpaint" not in p.parts)
    for secret in secrets:
        for where, text in (("page HTML", html), ("web storage", storage), ("workflow", workflow),
                            ("PNG text chunks", png_text), ("user settings files", user_files),
                            ("ComfyUI log", comfy.log_text())):
            assert secret not in text, f"a secret leaked into the {where}"


def test_geometry_preview_matches_the_python_geometry(browser_page, comfy):
    page = browser_page
    wf = json.loads((ROOT / "example_workflows/mask_canvas_builder.json").read_text())
    page.evaluate("async (wf) => { await app.loadGraphData(wf) }", wf)
    page.evaluate("""() => {
        const node = app.graph._nodes.find(n => n.type === 'MaskCanvasBuilder');
        node.widgets.find(w => w.name === 'expand_mode').value = 'pixels';
        node.widgets.find(w => w.name === 'multiple_of').value = 1;
        const left = node.widgets.find(w => w.name === 'left');
        left.value = 123; left.callback?.(123);
        app.graph.setDirtyCanvas(true, true);
    }""")
    page.wait_for_function("""() => app.graph._nodes.find(n => n.type === 'MaskCanvasBuilder')
                              .cloudOutpaintGeometry?.query?.includes('left=123')""", timeout=10_000)
    node = page.evaluate("""() => { const n = app.graph._nodes.find(n => n.type === 'MaskCanvasBuilder');
                             return {geometry: n.cloudOutpaintGeometry,
                                     widgets: Object.fromEntries(n.widgets.map(w => [w.name, w.value]))} }""")
    geometry = node["geometry"]
    expected = comfy.get("/cloud_outpaint/geometry?" + geometry["query"])
    assert {k: geometry[k] for k in expected} == expected
    assert geometry["error"] is None and geometry["x"] == 123
    assert geometry["canvas_width"] == 1024 + 123 + node["widgets"]["right"]
    # an impossible value shows the route's error (drawn in red) instead of numbers
    page.evaluate("""() => { const n = app.graph._nodes.find(n => n.type === 'MaskCanvasBuilder');
        n.widgets.find(w => w.name === 'expand_mode').value = 'aspect_ratio';
        n.widgets.find(w => w.name === 'aspect_ratio').value = 'wide';
        app.graph.setDirtyCanvas(true, true); }""")
    page.wait_for_function("""() => app.graph._nodes.find(n => n.type === 'MaskCanvasBuilder')
                              .cloudOutpaintGeometry?.error""", timeout=10_000)
    page.evaluate("""() => { const n = app.graph._nodes.find(n => n.type === 'MaskCanvasBuilder');
        n.widgets.find(w => w.name === 'expand_mode').value = 'pixels';
        n.widgets.find(w => w.name === 'aspect_ratio').value = '16:9';
        app.graph.setDirtyCanvas(true, true); }""")
    page.wait_for_function("""() => app.graph._nodes.find(n => n.type === 'MaskCanvasBuilder')
                              .cloudOutpaintGeometry?.error === null""", timeout=10_000)


def test_geometry_preview_uses_the_real_input_size_after_a_run(browser_page, comfy):
    page = browser_page
    wf = json.loads((ROOT / "example_workflows/mask_canvas_builder.json").read_text())
    page.evaluate("async (wf) => { await app.loadGraphData(wf) }", wf)
    page.evaluate("async () => { await app.queuePrompt(0, 1) }")
    page.wait_for_function("""() => app.graph._nodes.find(n => n.type === 'MaskCanvasBuilder')
                              .cloudOutpaintGeometry?.query?.includes('width=384')""", timeout=60_000)
    size = page.evaluate("() => app.graph._nodes.find(n => n.type === 'MaskCanvasBuilder').cloudOutpaintInput")
    assert size == {"width": 384, "height": 256}  # example_workflows/cloud_outpaint_sample.png


def test_node_shows_its_chinese_name_with_the_zh_locale(browser_page):
    page = browser_page
    translations = page.evaluate("async () => (await (await fetch('/i18n')).json())")
    assert translations["zh"]["nodeDefs"]["VolcOutpaint"]["display_name"].startswith("火山引擎")
    ready = "window.app && window.app.graph && window.app.canvas"
    # node definitions are translated when the page loads them, so reload after switching
    page.evaluate("async () => { await app.extensionManager.setting.set('Comfy.Locale', 'zh') }")
    try:
        page.reload()
        page.wait_for_function(ready, timeout=90_000)
        page.evaluate("() => { app.graph.clear(); for (const t of ['VolcOutpaint', 'DashScopeOutpaint',"
                      " 'MaskCanvasBuilder']) app.graph.add(LiteGraph.createNode(t)); }")
        titles = page.evaluate("() => Object.fromEntries(app.graph._nodes.map(n => [n.type, n.title]))")
        assert titles == {"VolcOutpaint": "火山引擎扩图 (i2i_outpainting)",
                          "DashScopeOutpaint": "DashScope 扩图 (image-out-painting)",
                          "MaskCanvasBuilder": "扩图画布与遮罩 (outpaint)"}
    finally:
        page.evaluate("async () => { await app.extensionManager.setting.set('Comfy.Locale', 'en') }")
        page.reload()
        page.wait_for_function(ready, timeout=90_000)
        page.wait_for_load_state("networkidle")  # the next test must not race the page's start-up


def test_status_text_shows_under_a_waiting_cloud_node(browser_page, sandbox):
    # ComfyUI's frontend renders send_progress_text itself (a text preview widget on the node)
    page = browser_page
    wf = json.loads((ROOT / "example_workflows/volc_outpaint_ratio.json").read_text())
    page.evaluate("async (wf) => { await app.loadGraphData(wf) }", wf)
    page.evaluate("""() => { const n = app.graph._nodes.find(n => n.type === 'VolcOutpaint');
                     n.widgets.find(w => w.name === 'seed').value = 4242; }""")  # not cached
    sandbox.latency = 4
    try:
        page.evaluate("async () => { await app.queuePrompt(0, 1) }")
        page.wait_for_function("""() => app.graph._nodes.find(n => n.type === 'VolcOutpaint').widgets
                                  .some(w => typeof w.value === 'string' && w.value.startsWith('Volcengine'))""",
                               timeout=30_000)
    finally:
        sandbox.latency = 0


# ---- only the widgets of the chosen mode (web/js/mode_widgets.js) ----

def shown_widgets(table, mode, mask_linked=False):
    """The widgets of `table` that apply under `mode`, in order, from nodes/core/widgets.py."""
    by_link = {widgets.mode_widget(table), *widgets.modes_by_widget(table)} if mask_linked else set()
    return [name for name, w in table.items() if name not in by_link and (not w.modes or mode in w.modes)]


# the widgets the canvas really draws: LiteGraph sets last_y on each widget it draws
DRAWN = """(id) => { const n = app.graph.getNodeById(id);
    app.canvas.ds.scale = 0.5; app.canvas.ds.offset[0] = 40 - n.pos[0]; app.canvas.ds.offset[1] = 40 - n.pos[1];
    for (const w of n.widgets) w.last_y = undefined;
    app.canvas.draw(true, true);
    return n.widgets.filter(w => w.last_y !== undefined).map(w => w.name) }"""
SET_WIDGET = """async ([id, name, value]) => { const n = app.graph.getNodeById(id);
    const w = n.widgets.find(w => w.name === name); w.value = value; w.callback?.(value, app.canvas, n);
    await new Promise(r => setTimeout(r, 100)) }"""  # what the canvas / Vue widget does on a choice


def _drawn(page, node_id, table):
    return [name for name in page.evaluate(DRAWN, node_id) if name in table]


@pytest.mark.parametrize("node_type", sorted(TABLES))
def test_only_the_widgets_of_the_chosen_mode_are_drawn_and_all_values_stay(browser_page, node_type):
    page, table = browser_page, TABLES[node_type]
    mode_name = widgets.mode_widget(table)
    node_id = page.evaluate("""async (type) => { app.graph.clear(); const n = LiteGraph.createNode(type);
        n.pos = [100, 100]; app.graph.add(n); await new Promise(r => setTimeout(r, 500)); return n.id }""", node_type)
    assert _drawn(page, node_id, table) == shown_widgets(table, table[mode_name].default)
    heights, saved = {}, page.evaluate("(id) => app.graph.getNodeById(id).serialize().widgets_values", node_id)
    for mode in table[mode_name].options:
        page.evaluate(SET_WIDGET, [node_id, mode_name, mode])
        assert _drawn(page, node_id, table) == shown_widgets(table, mode), mode
        size = page.evaluate("(id) => { const n = app.graph.getNodeById(id); return [n.size[1], n.computeSize()[1]] }",
                             node_id)
        # resized to its visible widgets (the preview's text may have changed its own height since)
        assert abs(size[0] - size[1]) < 20, (mode, size)
        heights[mode] = size[0]
        # every widget keeps its place and value in the workflow, and goes to the backend in the prompt
        values = page.evaluate("(id) => app.graph.getNodeById(id).serialize().widgets_values", node_id)
        assert len(values) == len(saved)
        assert [v for v, old in zip(values, saved) if v != old] == ([mode] if mode != table[mode_name].default else [])
        inputs = page.evaluate("async (id) => (await app.graphToPrompt()).output[id].inputs", node_id)
        assert set(table) <= set(inputs) and inputs[mode_name] == mode
    counts = {mode: len(shown_widgets(table, mode)) for mode in heights}
    fewest, most = min(counts, key=counts.get), max(counts, key=counts.get)
    assert counts[fewest] < counts[most] and heights[fewest] < heights[most]
    # a saved workflow loads with the visibility of its saved mode
    chosen = table[mode_name].options[-1]
    page.evaluate(SET_WIDGET, [node_id, mode_name, chosen])
    workflow = page.evaluate("() => app.graph.serialize()")
    page.evaluate("async (wf) => { app.graph.clear(); await app.loadGraphData(wf);"
                  " await new Promise(r => setTimeout(r, 500)) }", workflow)
    assert _drawn(page, node_id, table) == shown_widgets(table, chosen)
    reloaded = page.evaluate("(id) => app.graph.getNodeById(id).serialize().widgets_values", node_id)
    assert reloaded == next(n for n in workflow["nodes"] if n["id"] == node_id)["widgets_values"]


def test_a_connected_mask_hides_volc_ratio_widgets(browser_page):
    page, table = browser_page, widgets.VOLC
    wf = json.loads((ROOT / "example_workflows/volc_outpaint_canvas.json").read_text())
    page.evaluate("async (wf) => { await app.loadGraphData(wf); await new Promise(r => setTimeout(r, 500)) }", wf)
    node_id = next(n["id"] for n in wf["nodes"] if n["type"] == "VolcOutpaint")
    mode = page.evaluate("(id) => app.graph.getNodeById(id).widgets.find(w => w.name === 'expand_mode').value", node_id)
    assert _drawn(page, node_id, table) == shown_widgets(table, mode, mask_linked=True)
    page.evaluate("""async (id) => { const n = app.graph.getNodeById(id);
        n.disconnectInput(n.inputs.findIndex(i => i.name === 'mask')); await new Promise(r => setTimeout(r, 200)) }""",
                  node_id)
    assert _drawn(page, node_id, table) == shown_widgets(table, mode)
    assert {"top", "left", "expand_mode"} <= set(shown_widgets(table, mode))


VUE_ROWS = """(id) => [...document.querySelectorAll(`[data-node-id="${id}"] [data-testid=node-widget]`)]
    .map(row => (row.querySelector('label') ?? row.querySelector('.truncate'))?.textContent.trim() ?? '')"""


def test_vue_nodes_render_only_the_widgets_of_the_chosen_mode(comfy, chromium):
    page = open_page(chromium, comfy.url)
    try:
        version = page.evaluate("() => window.__COMFYUI_FRONTEND_VERSION__")
        if tuple(int(x) for x in version.split(".")[:2]) < (1, 40):
            pytest.skip(f"frontend {version}: Vue nodes are an early experiment there; the canvas is checked above")
        page.evaluate("async () => { await app.extensionManager.setting.set('Comfy.VueNodes.Enabled', true) }")
        page.wait_for_timeout(1000)
        for node_type, table in sorted(TABLES.items()):
            mode_name = widgets.mode_widget(table)
            node_id = page.evaluate("""async (type) => { app.graph.clear(); const n = LiteGraph.createNode(type);
                n.pos = [100, 100]; app.graph.add(n); await new Promise(r => setTimeout(r, 800)); return n.id }""",
                                    node_type)
            for mode in table[mode_name].options:
                page.evaluate(SET_WIDGET, [node_id, mode_name, mode])
                page.wait_for_timeout(200)
                rows = [name for name in page.evaluate(VUE_ROWS, node_id) if name in table]
                assert rows == shown_widgets(table, mode), (node_type, mode)
        # and a choice made with the mouse in the node's own select (the last node: VolcOutpaint)
        row = page.locator(f'[data-node-id="{node_id}"] [data-testid=node-widget]').filter(has_text=mode_name)
        row.locator(".p-select").first.click()
        page.get_by_role("option", name="scale", exact=True).click()
        page.wait_for_timeout(300)
        assert page.evaluate("(id) => app.graph.getNodeById(id).widgets.find(w => w.name === 'expand_mode').value",
                             node_id) == "scale"
        assert [name for name in page.evaluate(VUE_ROWS, node_id) if name in table] == shown_widgets(table, "scale")
    finally:
        page.evaluate("async () => { await app.extensionManager.setting.set('Comfy.VueNodes.Enabled', false) }")
        page.close()
