"""Issue 13: a paid result is never bought twice. Over real HTTP against the sandbox (backend "cloud"
pointed at it through the users' environment variables), counting its billable requests: a second
process repeats a run for free with identical pixels, a DashScope task created by a killed process is
resumed instead of paid again, two identical runs at once pay once, damaged files cost a new call at
most and never a crash, and nothing on disk holds a secret."""

import json
import os
import signal
import subprocess
import sys
import threading
import time

import pytest
import torch
from conftest import ROOT, sandbox_env
from pack import FAST_DASHSCOPE, module
from PIL import Image

backends = module("nodes.core.backends")
volc = module("nodes.core.volc")
volc_run = module("nodes.core.volc_run")
dashscope = module("nodes.core.dashscope")
dashscope_run = module("nodes.core.dashscope_run")
result_cache = module("nodes.core.result_cache")
Sandbox = module("nodes.sandbox").Sandbox
CLI = ROOT / "cli.py"
RATIO = volc.VolcParams(top=0.1, bottom=0.1, left=0.2, right=0.2)


@pytest.fixture
def cached(cloud_env, tmp_path):
    """The cache on, in a folder of this test's own."""
    state = tmp_path / "state"
    cloud_env.setenv("CLOUD_OUTPAINT_CACHE", "on")
    cloud_env.setenv("CLOUD_OUTPAINT_CACHE_DIR", str(state))
    return state


def picture(seed=1, size=(96, 80)):
    return torch.rand((1, size[1], size[0], 3), generator=torch.Generator().manual_seed(seed))


def run_volc(image, **options):
    return volc_run.run(image, None, RATIO, backends.volc_credentials("cloud"), volc_run.VolcOptions(**options))


def run_dashscope(image, **options):
    return dashscope_run.run(image, dashscope.DashScopeParams(), backends.dashscope_credentials("cloud"),
                             dashscope_run.DashScopeOptions(**options), FAST_DASHSCOPE)


def test_volc_same_request_is_served_from_cache_and_a_change_or_use_cache_off_pays(sb, cached):
    first = run_volc(picture(), variants=2)
    assert sb.billable_count("volc") == 2
    assert first.info.cost == {"cached": 0, "paid": 2, "cost_cny": None}  # no Volcengine price set
    again = run_volc(picture(), variants=2)
    assert sb.billable_count("volc") == 2  # nothing sent
    assert torch.equal(again.images, first.images)
    info = again.info.to_dict()
    assert info["cost"] == {"cached": 2, "paid": 0, "cost_cny": 0.0}
    ids = [r["request_id"] for r in first.info.to_dict()["results"]]
    assert [r["request_id"] for r in info["results"]] == ids  # the original request ids
    assert all(r["from_cache"].startswith(f"from cache: request id {i}, paid 20") for r, i in zip(info["results"], ids))
    run_volc(picture(seed=2), variants=2)  # other pixels: another request
    assert sb.billable_count("volc") == 4
    run_volc(picture(), variants=2, use_cache=False)  # a fresh paid result asked for
    assert sb.billable_count("volc") == 6


def test_volc_ratio_sides_are_part_of_the_request(sb, cached):
    """The same photo with other side fractions (or another expand_mode planning them) is another
    request: the sides the vendor sees are in the key."""
    credentials, options = backends.volc_credentials("cloud"), volc_run.VolcOptions()
    first = volc_run.run(picture(), None, RATIO, credentials, options)
    wider = volc_run.run(picture(), None, volc.VolcParams(top=0.1, bottom=0.1, left=0.4, right=0.4), credentials,
                         options)
    assert sb.billable_count("volc") == 2
    assert wider.images.shape[2] > first.images.shape[2]


def test_volc_canvas_sides_setting_is_part_of_the_request(sb, cached, cloud_env):
    canvas, mask = picture(size=(120, 96)), torch.zeros((1, 96, 120))
    mask[:, :, :20] = 1
    credentials, options = backends.volc_credentials("cloud"), volc_run.VolcOptions()
    volc_run.run(canvas, mask, volc.VolcParams(), credentials, options, volc.VolcConfig.from_env())
    cloud_env.setenv("CLOUD_OUTPAINT_VOLC_CANVAS_SIDES", "omit")  # another body: the sides are left out
    volc_run.run(canvas, mask, volc.VolcParams(), credentials, options, volc.VolcConfig.from_env())
    assert sb.billable_count("volc") == 2


def test_cache_off_by_environment_pays_every_time(sb, cached, cloud_env):
    cloud_env.setenv("CLOUD_OUTPAINT_CACHE", "off")
    run_volc(picture())
    run_volc(picture())
    assert sb.billable_count("volc") == 2
    assert not (cached / "cache").exists()


def test_dashscope_key_is_the_image_bytes_not_the_upload_name(sb, cached):
    first = run_dashscope(picture(size=(64, 64)))
    assert sb.billable_count("dashscope") == 1
    sent = sb.request_count()
    again = run_dashscope(picture(size=(64, 64)))
    assert sb.request_count() == sent  # not even the upload policy or the upload
    assert torch.equal(again.images, first.images)
    assert again.info.to_dict()["results"][0]["from_cache"].startswith(
        f"from cache: task id {first.info.results[0].task_id}")
    assert again.info.cost == {"cached": 1, "paid": 0, "cost_cny": 0.0}
    assert first.info.cost == {"cached": 0, "paid": 1, "cost_cny": 0.18}


def test_another_account_or_base_url_is_another_key():
    creds = module("nodes.core.credentials")
    a = creds.VolcCredentials("aksk", "env", "http://127.0.0.1:1", "AK1", "SK")
    items = [(([b"img"]), -1)]
    key = lambda c: volc_run.paid_guard.for_volc(c, items, RATIO, volc.VolcConfig()).keys[0]
    assert key(a) != key(creds.VolcCredentials("aksk", "env", "http://127.0.0.1:1", "AK2", "SK"))
    assert key(a) != key(creds.VolcCredentials("aksk", "env", "http://127.0.0.1:2", "AK1", "SK"))
    assert key(a) == key(creds.VolcCredentials("aksk", "env", "http://127.0.0.1:1", "AK1", "other SK"))


# ---- a second process -------------------------------------------------------------------------------

def child_env(sb, tmp_path, **extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VOLC_", "DASHSCOPE_"))}
    env.update(HOME=str(tmp_path), PYTHONDONTWRITEBYTECODE="1", CLOUD_OUTPAINT_CACHE="on",
               CLOUD_OUTPAINT_CACHE_DIR=str(tmp_path / "state"), **sandbox_env(sb), DASHSCOPE_POLL_CAP="0.5",
               **extra)
    return env


def cli(env, *args, timeout=90):
    return subprocess.run([sys.executable, str(CLI), *map(str, args)], env=env, capture_output=True, text=True,
                          timeout=timeout, cwd=env["HOME"], check=False)


@pytest.mark.parametrize("vendor,flags", [("volc", ["--variants", "2"]), ("dashscope", [])])
def test_a_second_process_pays_nothing_and_writes_identical_pixels(sb, tmp_path, vendor, flags):
    Image.new("RGB", (96, 72), (30, 140, 90)).save(tmp_path / "in.png")
    env = child_env(sb, tmp_path)
    first = cli(env, "outpaint", "in.png", "--vendor", vendor, "--out", "one", *flags)
    assert first.returncode == 0, first.stderr
    paid = sb.billable_count(vendor)
    assert paid == (2 if vendor == "volc" else 1)
    sent = sb.request_count()
    second = cli(env, "outpaint", "in.png", "--vendor", vendor, "--out", "two", *flags)
    assert second.returncode == 0, second.stderr
    assert sb.request_count() == sent  # a restart: nothing at all was sent
    names = sorted(p.name for p in (tmp_path / "one").glob("*.png"))
    assert names and names == sorted(p.name for p in (tmp_path / "two").glob("*.png"))
    for name in names:
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "two" / name).read_bytes()
    sidecar = json.loads((tmp_path / "two" / "in_outpaint.json").read_text())
    assert sidecar["info"]["cost"] == {"cached": paid, "paid": 0, "cost_cny": 0.0}
    assert all(r["from_cache"].startswith("from cache") for r in sidecar["info"]["results"])


def test_a_killed_process_after_the_dashscope_create_costs_no_new_task(tmp_path):
    with Sandbox(dashscope_pending_s=0.2, dashscope_running_s=4) as sb:
        Image.new("RGB", (96, 72), (200, 40, 90)).save(tmp_path / "in.png")
        env = child_env(sb, tmp_path)
        journal = tmp_path / "state" / "journal"
        child = subprocess.Popen([sys.executable, str(CLI), "outpaint", "in.png", "--vendor", "dashscope", "--out",
                                  "one"], env=env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 60
        while not list(journal.glob("*.json")) and time.monotonic() < deadline and child.poll() is None:
            time.sleep(0.02)
        assert list(journal.glob("*.json")), "the task was not journaled"
        assert sb.billable_count("dashscope") == 1
        child.send_signal(signal.SIGKILL)
        child.wait(10)
        assert not (tmp_path / "one" / "in_outpaint.png").exists()  # it died before the result
        task_id = json.loads(next(journal.glob("*.json")).read_text())["task_id"]
        second = cli(env, "outpaint", "in.png", "--vendor", "dashscope", "--out", "two")
        assert second.returncode == 0, second.stderr
        assert sb.billable_count("dashscope") == 1  # the task was resumed, not created again
        assert sb.request_count("dashscope", "upload") == 1  # nor uploaded again
        sidecar = json.loads((tmp_path / "two" / "in_outpaint.json").read_text())
        assert sidecar["task_ids"] == [task_id]
        assert not list(journal.glob("*.json"))  # its result is in the cache now
        third = cli(env, "outpaint", "in.png", "--vendor", "dashscope", "--out", "three")
        assert third.returncode == 0 and sb.billable_count("dashscope") == 1
        assert (tmp_path / "two" / "in_outpaint.png").read_bytes() == \
            (tmp_path / "three" / "in_outpaint.png").read_bytes()


def test_a_failed_task_leaves_nothing_to_resume(sb, cached, cloud_env):
    sb.inject("dashscope", "task_failed")
    with pytest.raises(module("nodes.core.errors").ItemError):
        run_dashscope(picture(size=(64, 64)))
    assert sb.billable_count("dashscope") == 1
    assert not list((cached / "journal").glob("*.json"))
    run_dashscope(picture(size=(64, 64)))  # a new task: the failed one is not resumed
    assert sb.billable_count("dashscope") == 2


# ---- at the same moment -----------------------------------------------------------------------------

@pytest.mark.parametrize("vendor", ["volc", "dashscope"])
def test_two_identical_runs_at_the_same_moment_pay_once(sb, cached, vendor):
    sb.latency = 0.5
    go, results, errors = threading.Barrier(2), [], []

    def one():
        go.wait()
        try:
            results.append(run_volc(picture()) if vendor == "volc" else run_dashscope(picture(size=(64, 64))))
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=one) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors and len(results) == 2
    assert sb.billable_count(vendor) == 1
    assert torch.equal(results[0].images, results[1].images)
    assert sorted(r.info.cost["cached"] for r in results) == [0, 1]


def test_two_processes_at_the_same_moment_pay_once(sb, tmp_path):
    sb.latency = 1.0
    Image.new("RGB", (96, 72), (10, 40, 190)).save(tmp_path / "in.png")
    env = child_env(sb, tmp_path)
    children = [subprocess.Popen([sys.executable, str(CLI), "outpaint", "in.png", "--vendor", "volc", "--out", out],
                                 env=env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
                for out in ("one", "two")]
    for child in children:
        assert child.wait(90) == 0, child.stderr.read()
    assert sb.billable_count("volc") == 1
    assert (tmp_path / "one" / "in_outpaint.png").read_bytes() == (tmp_path / "two" / "in_outpaint.png").read_bytes()


# ---- damaged files ------------------------------------------------------------------------------------

def test_damaged_cache_journal_ledger_and_settings_cost_a_call_at_most_and_hold_no_secret(sb, cached):
    run_volc(picture())
    run_dashscope(picture(size=(64, 64)))
    assert sb.billable_count() == 2
    bins = sorted((cached / "cache").glob("??/*.bin"))
    assert len(bins) == 2
    bins[0].write_bytes(bins[0].read_bytes()[:100])  # truncated
    bins[1].unlink()  # deleted
    (cached / "journal").mkdir(exist_ok=True)
    (cached / "journal" / ("0" * 64 + ".json")).write_text("{not json")
    with open(cached / "spend.jsonl", "a") as ledger:
        ledger.write('{"torn": ')
    (cached / "spend_settings.json").write_text("[1, 2")
    run_volc(picture())
    run_dashscope(picture(size=(64, 64)))
    assert sb.billable_count() == 4  # each damaged entry cost one new call, and was rebuilt
    run_volc(picture())
    run_dashscope(picture(size=(64, 64)))
    assert sb.billable_count() == 4
    summary = module("nodes.core.spend_ledger").SpendLedger(cached).summary()
    assert summary["requests_today"] == {"volc": 2, "dashscope": 2}
    for meta in (cached / "cache").glob("??/*.json"):
        meta.write_bytes(b"\xff\x00" * 10)
    run_volc(picture())
    assert sb.billable_count() == 5
    secrets = [sb.volc_secret_key, sb.volc_access_key, sb.dashscope_api_key]
    for path in cached.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert not any(s.encode() in data for s in secrets), path
            if path.name not in ("spend_settings.json", "0" * 64 + ".json"):  # not the ones this test wrote
                assert path.stat().st_mode & 0o077 == 0, path


def test_the_size_cap_evicts_the_least_recently_used(sb, cached, cloud_env):
    run_volc(picture(seed=1))
    size = result_cache.ResultCache(cached / "cache", 10**9).stats()["bytes"]
    cloud_env.setenv("CLOUD_OUTPAINT_CACHE_MB", str(1.5 * size / 2**20))  # room for one result
    run_volc(picture(seed=2))
    cache = result_cache.ResultCache(cached / "cache", 10**9)
    assert cache.stats()["entries"] == 1
    run_volc(picture(seed=2))
    assert sb.billable_count("volc") == 2  # the newest is kept
    run_volc(picture(seed=1))
    assert sb.billable_count("volc") == 3  # the oldest went


def test_the_status_line_says_from_cache_with_the_original_id(sb, cached):
    runner = module("nodes.core.runner")
    first = run_volc(picture(seed=9))
    lines = []
    volc_run.run(picture(seed=9), None, RATIO, backends.volc_credentials("cloud"), volc_run.VolcOptions(),
                 hooks=runner.RunHooks(status=lines.append))
    assert lines[-1].startswith("Volcengine: 1 done: 0 paid")
    assert f"from cache: request id {first.info.results[0].request_id}, paid 20" in lines[-1]
