"""The cost badge and the keys dialog's spend section in headless Chromium on a real ComfyUI
(skipped unless COMFYUI_DIR is set).

The badge text is read where the page really shows it: the strings LiteGraph draws on the canvas
(fillText during a forced frame), and on frontends with Vue nodes (1.42) the node's DOM. The spend
figures come from GET /cloud_outpaint/spend; the cache tests run on a second ComfyUI with the cache
on, whose ledger and cache are in its own user folder.
"""

import json
import time

import pytest
from comfy_server import ComfyServer, comfyui_dir
from comfyui_fixtures import open_page
from conftest import ROOT, sandbox_env

pytest_plugins = ["comfyui_fixtures"]  # fixtures sandbox, comfy, chromium, browser_page
pytestmark = [pytest.mark.comfyui, pytest.mark.skipif(
    comfyui_dir() is None, reason="COMFYUI_DIR is not set: the real-ComfyUI tests need a ComfyUI checkout")]

DASHSCOPE_PRICE = 0.18  # the vendor's documented price, the server's default
PACK_JS = "/extensions/cloud-outpaint/js/"


def spend_of(server):
    return server.get("/cloud_outpaint/spend")


def cny(value):
    """The badge's money format (web/js/spend_panel.js formatCny)."""
    return f"¥{value:.3f}" if value and abs(value) < 0.1 else f"¥{value:.2f}"


ADD_NODES = """() => {
    app.graph.clear();
    app.canvas.ds.offset = [0, 0]; app.canvas.ds.scale = 1;
    for (const [type, x] of [['VolcOutpaint', 40], ['DashScopeOutpaint', 520]]) {
        const node = LiteGraph.createNode(type); app.graph.add(node); node.pos = [x, 80];
    }
}"""

SET_WIDGET = """([type, name, value]) => {
    const node = app.graph._nodes.find(n => n.type === type);
    const widget = node.widgets.find(w => w.name === name);
    widget.value = value; widget.callback?.(value);
    app.graph.setDirtyCanvas(true, true);
}"""

# every string the canvas draws in one forced frame
DRAWN = """() => {
    const drawn = [], fillText = CanvasRenderingContext2D.prototype.fillText;
    CanvasRenderingContext2D.prototype.fillText = function (text, ...rest) {
        drawn.push(String(text)); return fillText.call(this, text, ...rest); };
    try { app.canvas.draw(true, true); } finally { CanvasRenderingContext2D.prototype.fillText = fillText; }
    return drawn;
}"""

EXECUTED = """([type, output]) => app.graph._nodes.find(n => n.type === type).onExecuted(output)"""


def ran(batch: int, cached: int, paid: int, cost_cny: float) -> dict:
    """A cloud node's UI entry after a run (comfy_bridge.input_size_ui): its input size and batch, what it cost."""
    return {"cloud_outpaint_input": [{"width": 64, "height": 64, "batch": batch}],
            "cloud_outpaint_cost": [{"cached": cached, "paid": paid, "cost_cny": cost_cny}]}


def badge_texts(page):
    """The cost badges drawn on the canvas: {node type: text}, read from the frame's fillText calls."""
    texts = page.evaluate("() => Object.fromEntries(app.graph._nodes.filter(n => n.cloudOutpaintCostText)"
                          ".map(n => [n.type, n.cloudOutpaintCostText()]))")
    drawn = page.evaluate(DRAWN)
    for node_type, text in texts.items():
        assert text in drawn, f"{node_type}'s badge {text!r} is not drawn; drawn: {drawn}"
    return texts


def prices(comfy):
    return spend_of(comfy)["prices"]


def test_cost_badge_is_drawn_and_follows_the_widgets(browser_page, comfy):
    page = browser_page
    price = prices(comfy)
    page.evaluate(ADD_NODES)
    page.wait_for_timeout(300)
    texts = badge_texts(page)
    assert texts["DashScopeOutpaint"] == f"≈ {cny(price['dashscope'])} × batch"
    volc_unit = price["volc"]
    assert texts["VolcOutpaint"] == ("Volcengine price not set" if volc_unit is None else f"≈ {cny(volc_unit)} × batch")
    page.evaluate(SET_WIDGET, ["VolcOutpaint", "variants", 3])
    texts = badge_texts(page)
    assert texts["VolcOutpaint"] == ("Volcengine price not set" if volc_unit is None
                                     else f"≈ {cny(volc_unit * 3)} × batch")
    page.evaluate(SET_WIDGET, ["DashScopeOutpaint", "backend", "sandbox"])
    page.evaluate(SET_WIDGET, ["VolcOutpaint", "backend", "sandbox"])
    assert badge_texts(page) == {"VolcOutpaint": "free (sandbox)", "DashScopeOutpaint": "free (sandbox)"}
    page.evaluate(SET_WIDGET, ["DashScopeOutpaint", "backend", "cloud"])
    page.evaluate(SET_WIDGET, ["DashScopeOutpaint", "resume_task_ids", "task-1"])
    assert badge_texts(page)["DashScopeOutpaint"] == "resumes paid tasks (no new task)"
    page.evaluate(SET_WIDGET, ["DashScopeOutpaint", "resume_task_ids", ""])
    # a run's UI entry gives the batch size and how many came from the cache
    page.evaluate(EXECUTED, ["DashScopeOutpaint", ran(2, 2, 0, 0)])
    assert badge_texts(page)["DashScopeOutpaint"] == \
        f"≈ {cny(price['dashscope'] * 2)} (2 images) · last run: from cache"
    page.evaluate(EXECUTED, ["DashScopeOutpaint", ran(3, 1, 2, 0.36)])
    assert badge_texts(page)["DashScopeOutpaint"] == \
        f"≈ {cny(price['dashscope'] * 3)} (3 images) · last run: 1/3 from cache"


def test_cost_badge_sits_above_the_title_apart_from_the_key_badge(browser_page):
    page = browser_page
    # the cost badge is a title badge (drawn above the title bar), the key badge a line in the body
    page.evaluate(ADD_NODES)
    place = page.evaluate("""() => {
        const node = app.graph._nodes.find(n => n.type === 'DashScopeOutpaint');
        const ys = {}, fillText = CanvasRenderingContext2D.prototype.fillText;
        CanvasRenderingContext2D.prototype.fillText = function (text, x, y, ...rest) {
            const t = this.getTransform();  // where on the canvas (ADD_NODES set scale 1, offset 0)
            ys[String(text)] = (t.b * x + t.d * y + t.f) / window.devicePixelRatio;
            return fillText.call(this, text, x, y, ...rest); };
        try { app.canvas.draw(true, true); } finally { CanvasRenderingContext2D.prototype.fillText = fillText; }
        return {cost: ys[node.cloudOutpaintCostText()], key: ys[node.cloudOutpaintBadgeText()],
                titleTop: node.pos[1] - LiteGraph.NODE_TITLE_HEIGHT, bodyTop: node.pos[1]};
    }""")
    assert place["cost"] is not None and place["key"] is not None, place
    assert place["cost"] < place["titleTop"] and place["key"] > place["bodyTop"], place


VUE_LINES = """(type) => { const n = app.graph._nodes.find(n => n.type === type);
    return document.querySelector(`[data-node-id='${n.id}']`)?.innerText.split('\\n') ?? null }"""


def wait_vue_line(page, node_type, text, timeout=5.0):
    """Wait until the Vue node of `node_type` shows a line `text` (its badge row)."""
    deadline = time.monotonic() + timeout
    while (lines := page.evaluate(VUE_LINES, node_type)) is None or text not in lines:
        assert time.monotonic() < deadline, f"{text!r} not on the {node_type} node: {lines}"
        page.wait_for_timeout(100)


def test_cost_badge_in_vue_nodes(browser_page, comfy):
    page = browser_page
    version = page.evaluate("() => window.__COMFYUI_FRONTEND_VERSION__ || ''")
    major, minor = (int(p) for p in (version or "0.0").split(".")[:2])
    if (major, minor) < (1, 40):
        pytest.skip(f"frontend {version}: its Vue nodes are experimental and show no node badges")
    price = prices(comfy)
    page.evaluate("async () => { await app.extensionManager.setting.set('Comfy.VueNodes.Enabled', true) }")
    try:
        page.evaluate(ADD_NODES)
        wait_vue_line(page, "DashScopeOutpaint", f"≈ {cny(price['dashscope'])} × batch", timeout=10)
        page.evaluate(SET_WIDGET, ["DashScopeOutpaint", "backend", "sandbox"])
        wait_vue_line(page, "DashScopeOutpaint", "free (sandbox)")
        page.evaluate(SET_WIDGET, ["DashScopeOutpaint", "backend", "cloud"])
        # a run changes no widget, and the badge still follows it
        page.evaluate(EXECUTED, ["DashScopeOutpaint", ran(2, 2, 0, 0)])
        wait_vue_line(page, "DashScopeOutpaint", f"≈ {cny(price['dashscope'] * 2)} (2 images) · last run: from cache")
        page.evaluate(EXECUTED, ["DashScopeOutpaint", ran(2, 0, 2, 0.36)])
        wait_vue_line(page, "DashScopeOutpaint", f"≈ {cny(price['dashscope'] * 2)} (2 images)")
    finally:
        page.evaluate("async () => { await app.extensionManager.setting.set('Comfy.VueNodes.Enabled', false) }")
        page.wait_for_timeout(500)


def test_cost_scripts_load_without_errors(browser_page):
    page = browser_page
    scripts = page.evaluate("async () => (await (await fetch('/extensions')).json())")
    assert {PACK_JS + "cost_badge.js", PACK_JS + "spend_panel.js"} <= set(scripts)
    assert "cloud_outpaint.cost" in page.evaluate("() => app.extensions.map(e => e.name)")
    ours = [e for e in page.errors if "cloud-outpaint" in e or "cloud_outpaint" in e.lower()]
    assert ours == [] and not [e for e in page.errors if e.startswith("pageerror")], page.errors


OPEN_DIALOG = f"""async () => {{
    const {{ openCredentialsDialog }} = await import('{PACK_JS}credentials_dialog.js');
    await openCredentialsDialog();
}}"""
SPEND = "#cloud-outpaint-credentials [data-section=spend]"


def press(page, button, result):
    """Click a spend section button and wait for its result line (emptied first: no stale "Saved")."""
    page.evaluate(f"() => {{ document.querySelector('{SPEND} [data-role=spend-result]').textContent = '' }}")
    page.locator(f"{SPEND} button[name={button}]").click()
    page.wait_for_function(f"document.querySelector('{SPEND} [data-role=spend-result]')?.textContent"
                           f".startsWith({json.dumps(result)})", timeout=10_000)


def test_dialog_shows_the_spend_and_saves_the_settings(browser_page, comfy):
    page = browser_page
    spend = spend_of(comfy)
    page.evaluate(ADD_NODES)
    page.evaluate(OPEN_DIALOG)
    section = page.locator(SPEND)
    try:
        page.wait_for_function(f"document.querySelector('{SPEND} [data-role=spend-today]')"
                               "?.textContent.startsWith('Today')", timeout=10_000)
        assert section.locator("[data-role=spend-today]").inner_text().startswith(f"Today 今日: {cny(spend['today_cny'])}")
        assert section.locator("[data-role=spend-month]").inner_text() == f"This month 本月: {cny(spend['month_cny'])}"
        cache_line = section.locator("[data-role=cache]").inner_text()
        assert (f"{spend['cache']['entries']} results" if spend["cache"]["enabled"] else "cache: off") in cache_line
        # save a Volcengine price and a daily limit: the server keeps them, the badge re-prices at once
        section.locator("input[name=volc_price_cny]").fill("0.05")
        section.locator("input[name=daily_limit_cny]").fill("2.5")
        press(page, "save-spend", "Saved")
        saved = comfy.get("/cloud_outpaint/spend")
        assert saved["prices"]["volc"] == 0.05 and saved["limit_cny"] == 2.5
        assert badge_texts(page)["VolcOutpaint"] == f"≈ {cny(0.05)} × batch"
        assert "of ¥2.50 limit" in section.locator("[data-role=spend-today]").inner_text()
        # a bad number is refused in the page, nothing is sent
        section.locator("input[name=volc_price_cny]").fill("-1")
        press(page, "save-spend", "✗")
        assert comfy.get("/cloud_outpaint/spend")["prices"]["volc"] == 0.05
        # an empty field: price not set (which the limit refuses), then no limit
        section.locator("input[name=volc_price_cny]").fill("")
        press(page, "save-spend", "Saved")
        page.wait_for_function("() => app.graph._nodes.find(n => n.type === 'VolcOutpaint').cloudOutpaintCostText()"
                               ".includes('refused')", timeout=10_000)
        assert badge_texts(page)["VolcOutpaint"] == "Volcengine price not set (refused under the daily limit)"
        section.locator("input[name=daily_limit_cny]").fill("")
        press(page, "save-spend", "Saved")
        cleared = comfy.get("/cloud_outpaint/spend")
        assert cleared["prices"]["volc"] is None and cleared["limit_cny"] is None
        assert badge_texts(page)["VolcOutpaint"] == "Volcengine price not set"
        press(page, "clear-cache", "Cache cleared")
        assert comfy.get("/cloud_outpaint/spend")["cache"]["entries"] == 0
        assert not [e for e in page.errors if "cloud_outpaint" in e.lower()], page.errors
    finally:
        page.evaluate("() => document.getElementById('cloud-outpaint-credentials')?.remove()")


@pytest.fixture(scope="module")
def ledger_comfy(tmp_path_factory, sandbox, comfy):
    """A ComfyUI with the result cache on (the suites turn it off) whose Volcengine price and daily
    limit come from environment variables."""
    env = {**sandbox_env(sandbox), "CLOUD_OUTPAINT_CACHE": "on", "CLOUD_OUTPAINT_PRICE_VOLC_CNY": "0.2",
           "CLOUD_OUTPAINT_DAILY_LIMIT_CNY": "5"}
    server = ComfyServer(tmp_path_factory.mktemp("comfyui_ledger"), env=env).start()  # the pack puts the examples' image in its input folder
    yield server
    server.stop()


@pytest.fixture
def ledger_page(ledger_comfy, chromium):
    page = open_page(chromium, ledger_comfy.url)
    yield page
    page.close()


def test_a_repeated_run_shows_from_cache_on_the_badge(ledger_page, ledger_comfy):
    page = ledger_page
    wf = json.loads((ROOT / "example_workflows/dashscope_outpaint_ratio.json").read_text())
    page.evaluate("async (wf) => { await app.loadGraphData(wf) }", wf)
    page.evaluate(SET_WIDGET, ["DashScopeOutpaint", "backend", "cloud"])  # the sandbox behind the cloud URL
    # this server's cache starts empty: the first run pays, the second is served from the cache
    costs = []
    for timeout_s in (300, 301):  # a widget the vendor never sees, so ComfyUI runs the node again
        page.evaluate(SET_WIDGET, ["DashScopeOutpaint", "timeout_s", timeout_s])
        page.evaluate("() => { app.graph._nodes.find(n => n.type === 'DashScopeOutpaint').cloudOutpaintLastCost = null }")
        page.evaluate("async () => { await app.queuePrompt(0, 1) }")
        page.wait_for_function("() => app.graph._nodes.find(n => n.type === 'DashScopeOutpaint')"
                               ".cloudOutpaintLastCost", timeout=60_000)
        costs.append(page.evaluate("() => app.graph._nodes.find(n => n.type === 'DashScopeOutpaint').cloudOutpaintLastCost"))
        text = badge_texts(page)["DashScopeOutpaint"]
        assert text.startswith(f"≈ {cny(DASHSCOPE_PRICE)} (1 image)"), text  # the run told the batch size
    assert costs[0]["paid"] == 1 and costs[0]["cached"] == 0, costs
    assert costs[1]["paid"] == 0 and costs[1]["cached"] == 1, costs
    assert text.endswith(" · last run: from cache"), text
    # the paid run's ledger line and cached result are in this server's own user folder (the production
    # place), not in a folder inherited from the test process
    state = ledger_comfy.workdir / "user" / "cloud_outpaint"
    ledger = [json.loads(line) for line in (state / "spend.jsonl").read_text().splitlines()]
    assert [(e["vendor"], e["images"], e["cost_cny"]) for e in ledger] == [("dashscope", 1, DASHSCOPE_PRICE)], ledger
    cached = [json.loads(p.read_text()) for p in (state / "cache").glob("*/*.json")]
    assert [c["id"] for c in cached] == [ledger[0]["id"]], cached


def test_dialog_shows_environment_settings_read_only(ledger_page, ledger_comfy):
    page, spend = ledger_page, ledger_comfy.get("/cloud_outpaint/spend")
    assert set(spend.get("locked", [])) >= {"volc_price_cny", "daily_limit_cny"}, spend
    page.evaluate(ADD_NODES)
    page.wait_for_function("() => app.graph._nodes.find(n => n.type === 'VolcOutpaint')"
                           ".cloudOutpaintCostText().startsWith('≈')", timeout=10_000)
    assert badge_texts(page)["VolcOutpaint"] == f"≈ {cny(0.2)} × batch"
    page.evaluate(OPEN_DIALOG)
    page.wait_for_function(f"document.querySelector('{SPEND} input[name=volc_price_cny]')?.value === '0.2'",
                           timeout=10_000)
    for name, value in (("volc_price_cny", "0.2"), ("daily_limit_cny", "5")):
        field = page.locator(f"{SPEND} input[name={name}]")
        assert field.input_value() == value and field.get_attribute("readonly") is not None
