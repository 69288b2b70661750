"""Bodies that trickle or never end (red-team F4), over real HTTP against the sandbox: the run ends at
its deadline however slowly the bytes come, its error names the request or task id (a DashScope task
still pending is cancelled), and no worker thread outlives the run.
"""

from __future__ import annotations

import threading
import time

import pytest
import torch
from pack import FAST_DASHSCOPE, imagecodec, module

volc = module("nodes.core.volc")
volc_run = module("nodes.core.volc_run")
ds = module("nodes.core.dashscope")
ds_run = module("nodes.core.dashscope_run")
transport = module("nodes.core.transport")
errors = module("nodes.core.errors")

TIMEOUT_S = 2.0
SLACK_S = 0.8  # the run may end this long after its deadline (the DashScope cancel is a round trip)


def photo(h, w):
    return torch.rand((1, h, w, 3), generator=torch.Generator().manual_seed(3))


def workers() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("cloud-outpaint")]


def timed_out(run, sb, **kw) -> errors.VendorError:
    """Runs with timeout_s=TIMEOUT_S; the run must fail with a Timeout on time and leave no worker."""
    assert workers() == []
    started = time.monotonic()
    with pytest.raises(errors.ItemError) as e:
        run(sb, **kw)
    took = time.monotonic() - started
    assert TIMEOUT_S - 0.1 < took < TIMEOUT_S + SLACK_S, f"the run ended after {took:.2f} s"
    assert workers() == [], "a worker thread outlived its run"
    error = e.value.cause
    assert error.code == "Timeout", str(error)
    return error


def run_volc(sb, params=None, config=volc.VolcConfig()):
    return volc_run.run(photo(48, 64), None, params or volc.VolcParams(), sb.volc_credentials(),
                        volc_run.VolcOptions(timeout_s=TIMEOUT_S), config)


def run_ds(sb, config=FAST_DASHSCOPE):
    return ds_run.run(photo(512, 512), ds.DashScopeParams(), sb.dashscope_credentials(),
                      ds_run.DashScopeOptions(timeout_s=TIMEOUT_S), config)


def test_volc_trickling_answer_ends_at_the_deadline_naming_the_request(sb):
    sb.inject("volc", "trickle", interval=0.2, seconds=30)
    error = timed_out(run_volc, sb)
    assert error.request_id and error.billed is None  # processed: it may be billed (the id comes from X-Tt-Logid)


def test_volc_endless_slow_answer_ends_at_the_deadline(sb):
    sb.inject("volc", "endless", mb_per_s=1, max_mb=500)  # under the byte cap by the deadline
    error = timed_out(run_volc, sb)
    assert error.request_id


@pytest.mark.parametrize("kind,params", [("trickle_url", {"interval": 0.2, "seconds": 30}),
                                         ("endless_url", {"mb_per_s": 1, "max_mb": 500})])
def test_volc_slow_result_download_ends_at_the_deadline_naming_the_request(sb, kind, params):
    sb.inject("volc", kind, **params)
    error = timed_out(run_volc, sb, params=volc.VolcParams(return_url=True))
    assert error.request_id and error.billed is True  # the result was paid for; the id is what to quote


@pytest.mark.parametrize("kind,params", [("poll_trickle", {"interval": 0.2, "seconds": 30}),
                                         ("poll_endless", {"mb_per_s": 0.3, "max_mb": 500})])
def test_dashscope_slow_poll_answer_ends_at_the_deadline_and_cancels_the_task(sb, kind, params):
    sb.inject("dashscope", "stuck", state="PENDING")
    sb.inject("dashscope", kind, **params)
    error = timed_out(run_ds, sb)
    assert error.task_id and "task cancelled" in error.hint, str(error)
    assert sb.dashscope_task(error.task_id)["status"] == "CANCELED"
    assert sb.dashscope_charged_images() == 0


def test_dashscope_trickling_result_ends_at_the_deadline_naming_the_task(sb):
    sb.inject("dashscope", "trickle_url", interval=0.2, seconds=30)
    error = timed_out(run_ds, sb)
    assert error.task_id and error.billed is True and "resume_task_ids" in error.hint, str(error)


def test_an_aborted_run_shuts_its_connections(sb):
    """The deadline backstop's last resort: a read blocked on a peer that sends nothing more ends
    at once when the run is aborted (here: before the per-read timeout of 30 s)."""
    sb.inject("volc", "trickle", interval=20, seconds=60)  # one byte, then silence
    control = transport.RunControl(60, "Volcengine")
    client = volc.VolcClient(sb.volc_credentials(), transport.new_session(), control,
                             volc.VolcConfig(read_timeout=30))
    image = imagecodec.image_to_bytes(photo(48, 64))
    threading.Timer(1.0, control.abort).start()
    started = time.monotonic()
    with pytest.raises(errors.Cancelled):
        client.outpaint([image], volc.VolcParams())
    assert 1.0 < time.monotonic() - started < 10  # far below the 30 s read timeout, with room for a loaded machine
    assert sb.requests("volc")[0].fault == "trickle"
