"""Issue 13: know what is paid. The spend ledger against the sandbox's billable counts, the daily limit
refusing with zero requests sent, the prices and settings (environment wins over the dialog), the
routes the keys dialog reads, and the CLI's spend, cache and --dry-run."""

import asyncio
import json
import subprocess
import sys
import threading
import time

import pytest
import test_result_cache as runs
from pack import module
from PIL import Image
from route_client import PREFIX, drive

errors = module("nodes.core.errors")
cost_state = module("nodes.core.cost_state")
spend_ledger = module("nodes.core.spend_ledger")
cached = runs.cached  # the fixture: cache on, in this test's own folder


def test_the_ledger_matches_the_sandbox_billable_counts(sb, cached, cloud_env):
    cloud_env.setenv("CLOUD_OUTPAINT_PRICE_VOLC_CNY", "0.05")
    runs.run_volc(runs.picture(1), variants=3)
    runs.run_volc(runs.picture(2))
    runs.run_volc(runs.picture(1), variants=3)  # from cache: not in the ledger
    for seed in (1, 2):
        runs.run_dashscope(runs.picture(seed, (64, 64)))
    summary = spend_ledger.SpendLedger(cached).summary()
    assert summary["requests_today"] == {"volc": sb.billable_count("volc"), "dashscope": sb.billable_count("dashscope")}
    assert summary["requests_today"] == {"volc": 4, "dashscope": 2}
    assert summary["today_cny"] == pytest.approx(4 * 0.05 + 2 * 0.18)
    assert summary["month_cny"] == summary["today_cny"]
    entries = summary["entries"]
    assert entries[0]["vendor"] == "dashscope" and entries[-1]["vendor"] == "volc"  # newest first
    billed = {e.detail.get("task_id") for e in sb.requests("dashscope", "create")} - {None}
    assert billed and billed == {e["id"] for e in entries if e["vendor"] == "dashscope"}, billed
    assert all(e["images"] == 1 and e["kind"] in ("request id", "task id") for e in entries)


def test_a_volc_request_without_a_price_is_counted_as_price_not_set(sb, cached):
    result = runs.run_volc(runs.picture())
    assert result.info.cost == {"cached": 0, "paid": 1, "cost_cny": None}
    entry = spend_ledger.SpendLedger(cached).summary()["entries"][0]
    assert entry["cost_cny"] is None and entry["vendor"] == "volc"
    assert cost_state.report()["prices"] == {"volc": None, "dashscope": 0.18}


def test_the_limit_refuses_before_anything_is_sent_and_names_its_figures(sb, cached, cloud_env):
    runs.run_dashscope(runs.picture(1, (64, 64)))  # today: CNY 0.18
    sent = sb.request_count()
    cloud_env.setenv("CLOUD_OUTPAINT_DAILY_LIMIT_CNY", "0.30")
    with pytest.raises(errors.InputError) as refused:
        runs.run_dashscope(runs.picture(2, (64, 64)))
    text = str(refused.value)
    assert "CNY 0.30" in text and "CNY 0.18" in text and "nothing was sent" in text
    assert sb.request_count() == sent
    again = runs.run_dashscope(runs.picture(1, (64, 64)))  # from cache: costs nothing, passes
    assert again.info.cost["cached"] == 1 and sb.request_count() == sent
    with pytest.raises(errors.InputError, match="no Volcengine price"):
        runs.run_volc(runs.picture())
    assert sb.request_count() == sent
    cloud_env.setenv("CLOUD_OUTPAINT_PRICE_VOLC_CNY", "0.05")
    runs.run_volc(runs.picture(), variants=2)  # 0.18 + 2 x 0.05 = 0.28: under 0.30
    with pytest.raises(errors.InputError, match="refused by the daily limit"):
        runs.run_volc(runs.picture(3))
    assert sb.billable_count() == 3


def test_a_bad_price_or_limit_variable_is_refused_by_name(sb, cached, cloud_env):
    cloud_env.setenv("CLOUD_OUTPAINT_DAILY_LIMIT_CNY", "lots")
    with pytest.raises(errors.InputError, match="CLOUD_OUTPAINT_DAILY_LIMIT_CNY"):
        runs.run_volc(runs.picture())
    assert sb.request_count() == 0


def test_saved_settings_apply_and_environment_variables_win(tmp_path):
    env = {"CLOUD_OUTPAINT_CACHE_DIR": str(tmp_path)}
    cost_state.save({"volc_price_cny": 0.1, "daily_limit_cny": 5}, env)
    assert cost_state.load(env).prices["volc"] == 0.1 and cost_state.load(env).daily_limit_cny == 5
    assert (tmp_path / "spend_settings.json").stat().st_mode & 0o077 == 0
    env["CLOUD_OUTPAINT_DAILY_LIMIT_CNY"] = "2"
    settings = cost_state.load(env)
    assert settings.daily_limit_cny == 2 and settings.locked == ["daily_limit_cny"]
    with pytest.raises(errors.InputError):
        cost_state.save({"volc_price_cny": -1}, env)
    with pytest.raises(errors.InputError):
        cost_state.save({"api_key": "x"}, env)


# ---- the routes the keys dialog reads -----------------------------------------------------------------

def test_spend_routes(tmp_path, sb, cached, cloud_env):
    runs.run_dashscope(runs.picture(1, (64, 64)))
    env = {"CLOUD_OUTPAINT_CACHE_DIR": str(cached), "CLOUD_OUTPAINT_DAILY_LIMIT_CNY": "3"}

    async def scenario(r):
        got = {"get": await r.call("GET", f"{PREFIX}/spend")}
        got["refused"] = await r.call("POST", f"{PREFIX}/spend/settings", {"volc_price_cny": 0.2},
                                      headers={"X-Cloud-Outpaint": None})
        got["save"] = await r.call("POST", f"{PREFIX}/spend/settings", {"volc_price_cny": 0.2, "daily_limit_cny": 9})
        got["bad"] = await r.call("POST", f"{PREFIX}/spend/settings", {"volc_price_cny": "cheap"})
        got["clear_refused"] = await r.call("POST", f"{PREFIX}/cache/clear", {}, headers={"X-Cloud-Outpaint": None})
        got["clear"] = await r.call("POST", f"{PREFIX}/cache/clear", {})
        got["after"] = await r.call("GET", f"{PREFIX}/spend")
        return got

    recorder, got = drive(scenario, tmp_path / "credentials.json", env=env)
    status, body = got["get"]
    assert status == 200
    assert body["today_cny"] == pytest.approx(0.18) and body["month_cny"] == pytest.approx(0.18)
    assert body["limit_cny"] == 3 and body["prices"] == {"volc": None, "dashscope": 0.18}
    assert body["requests_today"] == {"volc": 0, "dashscope": 1}
    assert len(body["entries"]) == 1 and body["entries"][0]["vendor"] == "dashscope"
    assert body["cache"]["entries"] == 1 and body["cache"]["bytes"] > 0 and body["cache"]["enabled"] is True
    assert got["refused"][0] == 403 and got["clear_refused"][0] == 403
    status, body = got["save"]
    assert status == 200 and body["prices"]["volc"] == 0.2
    assert body["limit_cny"] == 3 and body["locked"] == ["daily_limit_cny"]  # the environment wins
    assert got["bad"][0] == 400
    assert got["clear"] == (200, {"cleared": 1})
    assert got["after"][1]["cache"]["entries"] == 0 and got["after"][1]["today_cny"] == pytest.approx(0.18)
    recorder.assert_never_shown(sb.dashscope_api_key, sb.volc_secret_key)


def test_the_node_ui_carries_the_cost(sb, cached):
    node = module("nodes.dashscope_node").DashScopeOutpaint
    widgets = module("nodes.core.widgets")
    values = {name: w.default for name, w in widgets.DASHSCOPE.items()}
    dashscope = module("nodes.core.dashscope")
    original = dashscope.DashScopeConfig.from_env
    dashscope.DashScopeConfig.from_env = classmethod(lambda cls, env=None: runs.FAST_DASHSCOPE)
    try:
        first = asyncio.run(node.execute(runs.picture(1, (64, 64)), **values))
        again = asyncio.run(node.execute(runs.picture(1, (64, 64)), **values))
    finally:
        dashscope.DashScopeConfig.from_env = original
    assert first.ui["cloud_outpaint_cost"] == [{"cached": 0, "paid": 1, "cost_cny": 0.18}]
    assert again.ui["cloud_outpaint_cost"] == [{"cached": 1, "paid": 0, "cost_cny": 0.0}]
    assert json.loads(again.result[2])["results"][0]["from_cache"].startswith("from cache: task id")
    assert sb.billable_count("dashscope") == 1


# ---- the command line ---------------------------------------------------------------------------------

def test_cli_dry_run_sends_nothing_and_spend_and_cache_show_the_same_data(sb, tmp_path):
    Image.new("RGB", (96, 72), (30, 140, 90)).save(tmp_path / "in.png")
    env = runs.child_env(sb, tmp_path, CLOUD_OUTPAINT_PRICE_VOLC_CNY="0.05")
    dry = runs.cli(env, "outpaint", "in.png", "--vendor", "volc", "--variants", "3", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert sb.request_count() == 0
    assert "3 to pay" in dry.stdout and "CNY 0.15" in dry.stdout and "nothing is sent" in dry.stdout
    assert not (tmp_path / "outpainted").exists()
    assert runs.cli(env, "outpaint", "in.png", "--vendor", "volc", "--variants", "3").returncode == 0
    sent = sb.request_count()
    dry = runs.cli(env, "outpaint", "in.png", "--vendor", "volc", "--variants", "3", "--dry-run")
    assert "3 from cache" in dry.stdout and "0 to pay" in dry.stdout and sb.request_count() == sent
    limited = dict(env, CLOUD_OUTPAINT_DAILY_LIMIT_CNY="0.2")
    refused = runs.cli(limited, "outpaint", "in.png", "--vendor", "volc", "--variants", "3", "--seed", "7")
    assert refused.returncode == 2 and "daily limit" in refused.stderr and sb.request_count() == sent
    spend = runs.cli(env, "spend", "--json")
    report = json.loads(spend.stdout)
    assert report["requests_today"] == {"volc": 3, "dashscope": 0} == {"volc": sb.billable_count("volc"),
                                                                       "dashscope": 0}
    assert report["today_cny"] == pytest.approx(0.15) and report["cache"]["entries"] == 3
    text = runs.cli(env, "spend").stdout
    assert "today: CNY 0.15" in text and "request id" in text
    cleared = runs.cli(env, "cache", "--clear")
    assert cleared.returncode == 0 and "cleared 3" in cleared.stdout
    assert "0 cached result(s)" in runs.cli(env, "cache").stdout


def test_inside_comfyui_the_state_lives_beside_the_key_store(tmp_path, monkeypatch):
    import sys
    import types

    routes = module("nodes.routes")
    store = module("nodes.core.credential_store")
    folder_paths = types.ModuleType("folder_paths")
    folder_paths.get_user_directory = lambda: str(tmp_path / "user")
    monkeypatch.setitem(sys.modules, "folder_paths", folder_paths)
    monkeypatch.setitem(sys.modules, "server", None)  # no PromptServer: the paths are set all the same
    monkeypatch.setattr(routes, "_installed", False)
    monkeypatch.setattr(store, "_default_path", None)
    monkeypatch.setattr(cost_state, "_comfy_dir", None)
    routes.install()
    assert cost_state.state_dir({}) == tmp_path / "user" / "cloud_outpaint" == store.default_path().parent
    assert cost_state.state_dir({"CLOUD_OUTPAINT_CACHE_DIR": str(tmp_path / "x")}) == tmp_path / "x"
    monkeypatch.setattr(cost_state, "_comfy_dir", None)
    assert cost_state.state_dir({"XDG_CACHE_HOME": str(tmp_path / "xdg")}) == tmp_path / "xdg" / "cloud-outpaint"


def test_a_damaged_journal_entry_is_forgotten(tmp_path):
    journal = module("nodes.core.task_journal").TaskJournal(tmp_path)
    journal.record("k" * 64, "d76ec1e8-ea27-4038-8913-235c88ef0f70", "req")
    assert journal.pending("k" * 64) == ("d76ec1e8-ea27-4038-8913-235c88ef0f70", "req")
    (tmp_path / ("k" * 64 + ".json")).write_bytes(b'{"task_id": 5')
    assert journal.pending("k" * 64) is None and not list(tmp_path.glob("*.json"))
    journal.record("k" * 64, "d76ec1e8-ea27-4038-8913-235c88ef0f70", "req")
    entry = json.loads((tmp_path / ("k" * 64 + ".json")).read_text())
    entry["created"] -= 25 * 3600  # past the task id's 24 h life
    (tmp_path / ("k" * 64 + ".json")).write_text(json.dumps(entry))
    assert journal.pending("k" * 64) is None


# ---- two runs at once against the limit (spend_holds) ----------------------------------------------

spend_holds = module("nodes.core.spend_holds")


def two_at_once(run_one):
    """Runs run_one() in two threads started together: (results, errors)."""
    go, results, failures = threading.Barrier(2), [], []

    def one(seed):
        go.wait()
        try:
            results.append(run_one(seed))
        except Exception as exc:  # noqa: BLE001
            failures.append(exc)

    threads = [threading.Thread(target=one, args=(seed,)) for seed in (1, 2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return results, failures


@pytest.mark.parametrize("vendor", ["volc", "dashscope"])
def test_two_runs_that_fit_the_limit_only_alone_do_not_both_pay(sb, cached, cloud_env, vendor):
    """Two cloud nodes of one graph run side by side: the second is checked while the first is paying."""
    cloud_env.setenv("CLOUD_OUTPAINT_PRICE_VOLC_CNY", "0.18")
    cloud_env.setenv("CLOUD_OUTPAINT_DAILY_LIMIT_CNY", "0.30")
    sb.latency = 1.0
    run_one = (lambda seed: runs.run_volc(runs.picture(seed))) if vendor == "volc" else \
        (lambda seed: runs.run_dashscope(runs.picture(seed, (64, 64))))
    results, failures = two_at_once(run_one)
    assert len(results) == 1 and len(failures) == 1, failures
    text = str(failures[0])
    assert isinstance(failures[0], errors.InputError) and "CNY 0.18 is held by runs still going" in text
    assert "nothing was sent" in text
    assert sb.billable_count(vendor) == 1
    assert spend_ledger.SpendLedger(cached).summary()["today_cny"] == pytest.approx(0.18)
    with spend_holds.SpendHolds(cached).locked() as holds:
        assert holds == {}  # both runs ended: nothing held


def test_two_processes_that_fit_the_limit_only_alone_do_not_both_pay(sb, tmp_path):
    sb.latency = 1.5
    for name, colour in (("a.png", (10, 40, 190)), ("b.png", (190, 40, 10))):
        Image.new("RGB", (96, 72), colour).save(tmp_path / name)
    env = runs.child_env(sb, tmp_path, CLOUD_OUTPAINT_PRICE_VOLC_CNY="0.18", CLOUD_OUTPAINT_DAILY_LIMIT_CNY="0.30")
    children = [subprocess.Popen([sys.executable, str(runs.CLI), "outpaint", name, "--vendor", "volc", "--out", name[0]],
                                 env=env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
                for name in ("a.png", "b.png")]
    codes = sorted((child.wait(90), child.stderr.read()) for child in children)
    assert [code for code, _ in codes] == [0, 2], codes
    assert "held by runs still going" in codes[1][1]
    assert sb.billable_count("volc") == 1


def test_a_failed_run_holds_nothing_and_a_dead_process_s_hold_counts_no_more(sb, cached, cloud_env):
    cloud_env.setenv("CLOUD_OUTPAINT_DAILY_LIMIT_CNY", "0.30")
    sb.inject("dashscope", "upload_denied", times=2)  # refused, and again with a fresh policy: not billed
    with pytest.raises(errors.ItemError):  # a BatchError is one
        runs.run_dashscope(runs.picture(1, (64, 64)))
    with spend_holds.SpendHolds(cached).locked() as holds:
        assert holds == {}
        dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                              text=True, check=True)
        holds["stale"] = {"pid": int(dead.stdout), "cny": 5.0, "since": time.time()}
    result = runs.run_dashscope(runs.picture(2, (64, 64)))  # 0.18 under 0.30: the dead hold is not counted
    assert result.info.cost["paid"] == 1


def test_a_paid_call_moves_its_price_from_the_hold_to_the_ledger(sb, cached, cloud_env):
    paid_guard, backends = module("nodes.core.paid_guard"), module("nodes.core.backends")
    guard = paid_guard.for_dashscope(backends.dashscope_credentials("cloud"),
                                     [(b"image one", {"n": 1}), (b"image two", {"n": 2})], resume=False)
    holds = spend_holds.SpendHolds(cached)
    with guard:
        with holds.locked() as now:
            assert holds.total(now) == pytest.approx(0.36)  # two tasks at CNY 0.18, held
        guard.paid(0, "TASK-1", b"result")
        with holds.locked() as now:
            assert holds.total(now) == pytest.approx(0.18)
        assert spend_ledger.SpendLedger(cached).summary()["today_cny"] == pytest.approx(0.18)
    with holds.locked() as now:
        assert now == {}


def dashscope_guard(count: int = 2):
    paid_guard, backends = module("nodes.core.paid_guard"), module("nodes.core.backends")
    return paid_guard.for_dashscope(backends.dashscope_credentials("cloud"),
                                    [(f"image {i}".encode(), {"n": i}) for i in range(count)], resume=False)


def held(state) -> float:
    holds = spend_holds.SpendHolds(state)
    with holds.locked() as now:
        return holds.total(now)


def test_a_task_to_resume_is_held_too_for_it_is_billed_in_this_run(sb, cached, cloud_env):
    dashscope_guard().created(0, "TASK-OLD", "REQ-OLD")  # a run that created image 0's task and died
    with dashscope_guard() as guard:
        assert guard.plan()["resumed"] == 1 and guard.plan()["paid"] == 1
        assert held(cached) == pytest.approx(0.36)
        guard.paid(0, "TASK-OLD", b"result")  # the resumed task succeeds: billed now
        assert held(cached) == pytest.approx(0.18)  # the new call is still held


def test_a_job_still_going_when_the_run_returns_stays_held_until_it_ends(sb, cached, cloud_env):
    guard, landed = dashscope_guard(1), threading.Event()
    go_on = threading.Event()

    def billable_call(report):  # e.g. a DashScope task left running by an interrupt
        go_on.wait(10)
        guard.paid(0, "TASK-LATE", b"result")

    with guard:
        job = guard.wrap(0, billable_call, lambda entry: None)
        worker = threading.Thread(target=lambda: (job(lambda text: None), landed.set()))
        worker.start()
        time.sleep(0.2)
    assert held(cached) == pytest.approx(0.18)  # the run returned, its call did not: still held
    go_on.set()
    assert landed.wait(10)
    assert held(cached) == 0 and spend_ledger.SpendLedger(cached).summary()["today_cny"] == pytest.approx(0.18)


def test_a_billed_failure_without_an_id_is_in_the_ledger(sb, cached, cloud_env):
    guard = dashscope_guard(1)

    def billed_without_id(report):
        raise errors.VendorError("DashScope", "BadResult", "unreadable result", billed=True)

    with guard, pytest.raises(errors.VendorError):
        guard.wrap(0, billed_without_id, lambda entry: None)(lambda text: None)
    [entry] = spend_ledger.SpendLedger(cached).summary()["entries"]
    assert entry["id"] == "" and entry["cost_cny"] == pytest.approx(0.18)
