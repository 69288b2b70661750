"""The command line's cost plan (`outpaint --dry-run` and the batch's daily-limit check) over a real CLI
subprocess against the sandbox (backend "cloud" pointed at it): its cache keys are those of the request
the run sends, a bad cost setting is a one-line usage error, and a file that cannot be prepared is
reported failed while the others of the batch run, as they do without a limit."""

import json

import pytest
import test_result_cache as runs
from PIL import Image

ASPECT = ("--expand-mode", "aspect_ratio", "--aspect-ratio")


def test_dry_run_keys_are_those_of_the_expansion_the_run_sends(sb, tmp_path):
    Image.new("RGB", (96, 72), (30, 140, 90)).save(tmp_path / "in.png")
    env = runs.child_env(sb, tmp_path)
    paid = runs.cli(env, "outpaint", "in.png", "--vendor", "volc", *ASPECT, "16:9")
    assert paid.returncode == 0, paid.stderr
    assert sb.billable_count("volc") == 1
    sent = sb.request_count()
    again = runs.cli(env, "outpaint", "in.png", "--vendor", "volc", *ASPECT, "16:9", "--dry-run")
    assert again.returncode == 0, again.stderr
    assert "1 from cache, 0 resumed, 0 to pay" in again.stdout, again.stdout
    for other in ((*ASPECT, "21:9"), ()):  # another expansion; the default 0.1 a side (not what was sent)
        dry = runs.cli(env, "outpaint", "in.png", "--vendor", "volc", *other, "--dry-run")
        assert dry.returncode == 0, dry.stderr
        assert "0 from cache, 0 resumed, 1 to pay" in dry.stdout, (other, dry.stdout)
    assert sb.request_count() == sent  # the dry runs sent nothing


@pytest.mark.parametrize("name,value,flags", [("CLOUD_OUTPAINT_DAILY_LIMIT_CNY", "abc", ["--sandbox"]),
                                              ("CLOUD_OUTPAINT_DAILY_LIMIT_CNY", "abc", []),
                                              ("CLOUD_OUTPAINT_PRICE_VOLC_CNY", "-1", []),
                                              ("CLOUD_OUTPAINT_CACHE_MB", "lots", [])])
def test_a_bad_cost_setting_is_a_one_line_usage_error_before_anything_is_sent(sb, tmp_path, name, value, flags):
    Image.new("RGB", (96, 72), (30, 140, 90)).save(tmp_path / "in.png")
    env = runs.child_env(sb, tmp_path, **{name: value})
    result = runs.cli(env, "outpaint", "in.png", "--vendor", "volc", *flags)
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith(f"python cli.py outpaint: error: {name}={value!r}")
    assert len(result.stderr.splitlines()) == 1 and "Traceback" not in result.stderr
    assert sb.request_count() == 0 and not (tmp_path / "outpainted").exists()


def test_with_a_limit_a_file_that_cannot_be_prepared_fails_alone_as_without_one(sb, tmp_path):
    Image.new("RGB", (96, 72), (30, 140, 90)).save(tmp_path / "in.png")
    Image.new("RGB", (7, 200), (30, 140, 90)).save(tmp_path / "thin.png")  # under Volcengine's 8 px a side
    (tmp_path / "cut.png").write_bytes((tmp_path / "in.png").read_bytes()[:60])  # its header reads, not its data
    files = ("cut.png", "in.png", "thin.png")
    limited = runs.child_env(sb, tmp_path, CLOUD_OUTPAINT_DAILY_LIMIT_CNY="5", CLOUD_OUTPAINT_PRICE_VOLC_CNY="0.05")
    dry = runs.cli(limited, "outpaint", *files, "--vendor", "volc", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    lines = dry.stdout.splitlines()
    assert lines[1].startswith("cut.png: fails before anything is sent, left out of the plan: not a readable image")
    assert lines[2].startswith("in.png: 1 request(s): 0 from cache, 0 resumed, 1 to pay")
    assert lines[3].startswith("thin.png: fails before anything is sent") and "at least 8 px" in lines[3]
    assert "total: 1 call(s), 0 from cache, 0 resumed, 1 to pay" in dry.stdout
    assert sb.request_count() == 0
    unlimited = {k: v for k, v in limited.items() if k != "CLOUD_OUTPAINT_DAILY_LIMIT_CNY"}
    for out, env in (("limited", limited), ("unlimited", unlimited)):
        result = runs.cli(env, "outpaint", *files, "--vendor", "volc", "--out", out, "--no-cache")
        assert result.returncode == 1, (out, result.stderr)
        assert "Traceback" not in result.stderr and "1 written, 2 failed" in result.stderr
        assert [json.loads((tmp_path / out / f"{f[:-4]}_outpaint.json").read_text())["status"] for f in files] == \
            ["failed", "ok", "failed"]
    assert sb.billable_count("volc") == 2  # one paid call per run: in.png


def test_the_dashscope_price_is_its_variable_or_the_list_price_never_a_saved_setting(sb, tmp_path):
    Image.new("RGB", (64, 64), (30, 140, 90)).save(tmp_path / "in.png")
    (tmp_path / "state").mkdir(mode=0o700)
    (tmp_path / "state" / "spend_settings.json").write_text('{"dashscope": 9, "daily_limit_cny": 5}')
    env = runs.child_env(sb, tmp_path)
    listed = json.loads(runs.cli(env, "spend", "--json").stdout)
    assert listed["prices"]["dashscope"] == 0.18 and listed["limit_cny"] == 5 and listed["locked"] == []
    priced = dict(env, CLOUD_OUTPAINT_PRICE_DASHSCOPE_CNY="0.5")
    paid = runs.cli(priced, "outpaint", "in.png", "--vendor", "dashscope")
    assert paid.returncode == 0, paid.stderr
    report = json.loads(runs.cli(priced, "spend", "--json").stdout)
    assert report["prices"]["dashscope"] == 0.5 and report["today_cny"] == 0.5 and report["locked"] == []
    assert sb.billable_count("dashscope") == 1
    for value, says in (("abc", " is not a number; use 0 to 1e+09 CNY"), ("2e9", ": use a number from 0 to 1e+09 CNY")):
        bad = runs.cli(dict(env, CLOUD_OUTPAINT_PRICE_DASHSCOPE_CNY=value), "spend")
        assert bad.returncode == 2
        assert bad.stderr == f"python cli.py spend: error: CLOUD_OUTPAINT_PRICE_DASHSCOPE_CNY={value!r}{says}\n"
