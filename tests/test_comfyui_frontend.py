"""The pack's frontend in headless Chromium on a real ComfyUI (skipped unless COMFYUI_DIR is set).

Checks: every example workflow, opened from the template route on a ComfyUI whose input folder started
empty, loads with no missing-node dialog or error, keeps its widget values, converts (graphToPrompt)
to the same prompt as tests/workflows.py and runs from the page; the web/js extension loads
without errors; the keys dialog round trip keeps secrets out of the page, storage, workflow and PNG;
the geometry preview matches the Python geometry; the zh locale; status text under a waiting node.
"""

import io
import json
import time

import pytest
import workflows
from comfy_server import PACK_FOLDER, ComfyServer, comfyui_dir
from comfyui_fixtures import open_page
from conftest import ROOT
from pack import module
from PIL import Image
from test_example_workflows import EXAMPLES

SAMPLE = module("nodes.sample_image").NAME

pytest_plugins = ["comfyui_fixtures"]  # fixtures sandbox, comfy, object_info, chromium, browser_page
pytestmark = [pytest.mark.comfyui, pytest.mark.skipif(
    comfyui_dir() is None, reason="COMFYUI_DIR is not set: the real-ComfyUI tests need a ComfyUI checkout")]

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
    # ComfyServer creates the input folder empty (it seeds nothing): the pack's file is the only one there
    # (ComfyUI 0.20.1 makes an empty `3d` subfolder of its own)
    assert [p.name for p in (comfy.workdir / "input").iterdir() if p.is_file()] == [SAMPLE]
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
    # run it as opened: the cloud examples come with backend = sandbox (the pack's offline emulator: no key, free)
    backends = page.evaluate("() => app.graph._nodes.map(n => n.widgets?.find(w => w.name === 'backend')?.value)"
                             ".filter(Boolean)")
    assert set(backends) <= {"sandbox"}, backends
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
    assert ours == [PACK_JS + n for n in ("cloud_outpaint.js", "cost_badge.js", "credentials_dialog.js",
                                          "geometry_preview.js", "mode_widgets.js", "spend_panel.js")]


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


def test_volc_geometry_preview_follows_the_expansion_type(browser_page, comfy):
    page = browser_page
    wf = json.loads((ROOT / "example_workflows/volc_outpaint_aspect.json").read_text())
    page.evaluate("async (wf) => { await app.loadGraphData(wf) }", wf)
    find = "app.graph._nodes.find(n => n.type === 'VolcOutpaint')"
    page.wait_for_function(f"() => {find}.cloudOutpaintGeometry?.query?.includes('expand_mode=aspect_ratio')",
                           timeout=10_000)
    geometry = page.evaluate(f"() => {find}.cloudOutpaintGeometry")
    assert (geometry["canvas_width"], geometry["canvas_height"]) == (1820, 1024)  # the nominal 1024² at 16:9
    assert {k: geometry[k] for k in geometry if k != "query"} == comfy.get("/cloud_outpaint/geometry?" +
                                                                          geometry["query"])
    page.evaluate(f"""() => {{ const n = {find};
        n.widgets.find(w => w.name === 'expand_mode').value = 'scale';
        n.widgets.find(w => w.name === 'x_scale').value = 3;
        n.widgets.find(w => w.name === 'anchor').value = 'left';
        app.graph.setDirtyCanvas(true, true); }}""")
    page.wait_for_function(f"() => {find}.cloudOutpaintGeometry?.error?.includes('at most 1x')", timeout=10_000)


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
                     n.widgets.find(w => w.name === 'seed').value = 4242;  // not cached
                     n.widgets.find(w => w.name === 'backend').value = 'cloud'; }""")  # the test's sandbox
    sandbox.latency = 4
    try:
        page.evaluate("async () => { await app.queuePrompt(0, 1) }")
        page.wait_for_function("""() => app.graph._nodes.find(n => n.type === 'VolcOutpaint').widgets
                                  .some(w => typeof w.value === 'string' && w.value.startsWith('Volcengine'))""",
                               timeout=30_000)
    finally:
        sandbox.latency = 0
