"""Typed run results and options, and what the batch runner makes of errors nobody planned for.
Vendor calls go over real HTTP to the sandbox."""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass

import pytest
import torch
from pack import FAST_DASHSCOPE, module

Sandbox = module("nodes.sandbox").Sandbox
volc, volc_run = module("nodes.core.volc"), module("nodes.core.volc_run")
ds, ds_run = module("nodes.core.dashscope"), module("nodes.core.dashscope_run")
runner = module("nodes.core.runner")
transport = module("nodes.core.transport")
errors = module("nodes.core.errors")
credentials = module("nodes.core.credentials")


def photo(b=1, h=48, w=64):
    return torch.rand((b, h, w, 3), generator=torch.Generator().manual_seed(0))


# ---- typed results ----------------------------------------------------------------------------------

def test_volc_run_returns_typed_info_and_the_node_json_is_made_from_it(sb):
    params = volc.VolcParams(seed=7)
    result = volc_run.run(photo(b=2), None, params, sb.volc_credentials(), volc_run.VolcOptions(variants=2))
    assert isinstance(result, runner.RunResult) and result.images.shape[0] == 4
    info = result.info
    assert isinstance(info, volc_run.VolcRunInfo) and info.mode == "ratio" and info.keep_original is True
    assert [(r.image, r.variant, r.seed) for r in info.results] == [(1, 1, 7), (1, 2, 8), (2, 1, 7), (2, 2, 8)]
    assert all(r.request_id and r.vendor_time for r in info.results)
    as_json = json.loads(info.to_json())
    assert list(as_json) == ["vendor", "mode", "keep_original", "results", "output_resolution"]
    assert as_json["vendor"] == "Volcengine"
    assert as_json["results"][0]["seed"] == 7 and "note" not in as_json["results"][0]  # None is left out


def test_dashscope_run_returns_typed_info(sb):
    result = ds_run.run(photo(h=512, w=512), ds.DashScopeParams(), sb.dashscope_credentials(),
                              ds_run.DashScopeOptions(timeout_s=20), FAST_DASHSCOPE)
    [entry] = result.info.results
    [create] = sb.requests("dashscope", action="create")
    assert entry.task_id == create.detail["task_id"] and entry.polls >= 1 and entry.output == "768x768"
    as_json = json.loads(result.info.to_json())
    assert list(as_json) == ["vendor", "mode", "angle", "watermark", "keep_original", "results", "output_resolution"]
    assert as_json["results"][0]["parameters_sent"]["x_scale"] == 1.5


# ---- options: one set of checks for both vendors -----------------------------------------------------

@pytest.mark.parametrize("options,match", [
    ({"concurrency": 9}, "accepts 1 to 8"),
    ({"concurrency": 0}, "concurrency"),
    ({"concurrency": True}, "concurrency"),
    ({"timeout_s": float("nan")}, "timeout_s"),
    ({"timeout_s": float("inf")}, "timeout_s"),
    ({"timeout_s": -1}, "timeout_s"),
    ({"image_format": "webp"}, "image_format"),
])
@pytest.mark.parametrize("vendor", ["volc", "dashscope"])
def test_shared_options_are_checked_before_anything_is_sent(sb, vendor, options, match):
    with pytest.raises(errors.InputError, match=match):
        if vendor == "volc":
            volc_run.run(photo(), None, volc.VolcParams(), sb.volc_credentials(), volc_run.VolcOptions(**options))
        else:
            ds_run.run(photo(h=512, w=512), ds.DashScopeParams(), sb.dashscope_credentials(),
                             ds_run.DashScopeOptions(**options), FAST_DASHSCOPE)
    assert sb.requests() == []


def test_vendor_options_share_one_base():
    assert issubclass(volc_run.VolcOptions, runner.CommonOptions) and volc_run.VolcOptions is volc_run.VolcOptions
    assert issubclass(ds_run.DashScopeOptions, runner.CommonOptions)
    assert (volc_run.VolcOptions().image_format, ds_run.DashScopeOptions().image_format) == ("jpeg", "png")
    with pytest.raises(errors.InputError, match="variants"):
        volc_run.VolcOptions(variants=5).validate()
    with pytest.raises(errors.InputError, match="resume_task_ids"):
        ds_run.DashScopeOptions(resume_task_ids=[""]).validate()


# ---- the runner: errors nobody planned for ---------------------------------------------------------

def batch(jobs, poll=lambda: None):
    control = transport.RunControl(5, "Test")
    return runner.run_batch(jobs, [f"image {i + 1}" for i in range(len(jobs))], control=control, concurrency=2,
                            hooks=runner.RunHooks(poll=poll))


def test_a_job_raising_anything_becomes_an_item_error_naming_it():
    def broken(report):
        raise KeyError("output")

    with pytest.raises(errors.ItemError) as e:
        batch([lambda report: "ok", broken])
    assert e.value.label == "image 2" and isinstance(e.value.cause, KeyError)
    assert str(e.value) == "image 2: KeyError: 'output'"


def test_cancelled_and_hook_errors_pass_unchanged():
    class Interrupt(Exception):  # e.g. a front end's interrupt that is an Exception
        pass

    def hook():
        raise Interrupt()

    with pytest.raises(Interrupt):
        batch([lambda report: time.sleep(1)], poll=hook)

    def cancelled(report):
        raise errors.Cancelled()

    with pytest.raises(errors.Cancelled):
        batch([cancelled])


@dataclass(frozen=True)
class BrokenSchedule(ds.DashScopeConfig):
    """A poll schedule that fails once the task exists: stands for any bug while waiting."""

    def next_poll(self, elapsed, backoff, expected):
        raise ZeroDivisionError("division by zero")


def test_any_failure_while_waiting_cancels_the_task_and_names_it():
    with Sandbox(dashscope_pending_s=60) as sb:
        config = BrokenSchedule(**dataclasses.asdict(FAST_DASHSCOPE))
        with pytest.raises(errors.ItemError) as e:
            ds_run.run(photo(h=512, w=512), ds.DashScopeParams(), sb.dashscope_credentials(),
                             ds_run.DashScopeOptions(timeout_s=10), config)
        err = e.value.cause
        [create] = sb.requests("dashscope", action="create")
        task_id = create.detail["task_id"]
        assert isinstance(err, errors.VendorError) and err.code == "ClientError" and err.task_id == task_id
        assert isinstance(err.__cause__, ZeroDivisionError) and "ZeroDivisionError" in err.meaning
        assert f"put {task_id} in resume_task_ids" in str(e.value) and "task cancelled" in str(e.value)
        assert sb.dashscope_task(task_id)["status"] == "CANCELED"
        assert sb.errors == []


def test_a_failed_download_names_the_task_and_how_to_fetch_it_again(sb):
    sb.inject("dashscope", "url_404")
    with pytest.raises(errors.ItemError) as e:
        ds_run.run(photo(h=512, w=512), ds.DashScopeParams(), sb.dashscope_credentials(),
                         ds_run.DashScopeOptions(timeout_s=10), FAST_DASHSCOPE)
    err = e.value.cause
    assert err.code == "HTTP404" and err.billed is True and err.task_id
    assert f"put {err.task_id} in resume_task_ids to fetch its result again" in str(e.value)
    assert sb.requests("dashscope", action="cancel") == []  # it succeeded: nothing to cancel
