"""What sits at the spend ledger's path is not trusted: a FIFO there (which blocks a plain open) or a
symbolic link. Over a real CLI subprocess against the sandbox (backend "cloud" pointed at it), with
a price and a daily limit so the run reads the ledger before it pays and appends to it after: the run
and `spend` end in bounded time, the link's target is neither counted nor written, and the result is
still written (the ledger counts as damaged, as a torn line does)."""

import json
import os

import test_result_cache as runs
from PIL import Image

PRICED = {"CLOUD_OUTPAINT_PRICE_VOLC_CNY": "0.05", "CLOUD_OUTPAINT_DAILY_LIMIT_CNY": "5"}


def run_and_spend(sb, tmp_path):
    """(the outpaint run, `spend --json`'s report); either hanging fails the test (subprocess timeout)."""
    Image.new("RGB", (96, 72), (30, 140, 90)).save(tmp_path / "in.png")
    env = runs.child_env(sb, tmp_path, **PRICED)
    run = runs.cli(env, "outpaint", "in.png", "--vendor", "volc", timeout=60)
    spend = runs.cli(env, "spend", "--json", timeout=30)
    assert spend.returncode == 0, spend.stderr
    return run, json.loads(spend.stdout)


def test_a_fifo_at_the_ledger_path_does_not_hang_the_run_or_spend(sb, tmp_path):
    (tmp_path / "state").mkdir(mode=0o700)
    os.mkfifo(tmp_path / "state" / "spend.jsonl", 0o600)
    run, report = run_and_spend(sb, tmp_path)
    assert run.returncode == 0, run.stderr
    assert (tmp_path / "outpainted" / "in_outpaint.png").is_file() and sb.billable_count("volc") == 1
    assert report["today_cny"] == 0 and report["entries"] == []


def test_a_symlink_at_the_ledger_path_is_not_followed(sb, tmp_path):
    (tmp_path / "state").mkdir(mode=0o700)
    elsewhere = tmp_path / "elsewhere.jsonl"
    planted = {"time": "2030-01-01T00:00:00+00:00", "vendor": "volc", "kind": "request id", "id": "x",
               "images": 1, "cost_cny": 4.0}
    elsewhere.write_text(json.dumps(planted) + "\n")
    before = elsewhere.read_bytes()
    (tmp_path / "state" / "spend.jsonl").symlink_to(elsewhere)
    run, report = run_and_spend(sb, tmp_path)
    assert run.returncode == 0, run.stderr
    assert sb.billable_count("volc") == 1
    assert report["entries"] == [] and elsewhere.read_bytes() == before  # neither read nor written through
    assert (tmp_path / "state" / "spend.jsonl").is_symlink()
