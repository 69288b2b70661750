"""The command line's cost plan (`outpaint --dry-run` and the batch's daily-limit check) over a real CLI
subprocess against the sandbox (backend "cloud" pointed at it): its cache keys are those of the request
the run sends, a bad cost setting is a one-line usage error, and a file that cannot be prepared is
reported failed while the others of the batch run, as they do without a limit."""

import json

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
