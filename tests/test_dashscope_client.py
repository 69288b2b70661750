"""The DashScope client and run orchestration, over real HTTP against the sandbox: upload flow,
every mode, terminal states, timeout/cancel/resume, and the retry/no-retry rules (counted)."""

import time
from dataclasses import replace

import pytest
import torch
from pack import FAST_DASHSCOPE, module

Sandbox = module("nodes.sandbox").Sandbox
ds = module("nodes.core.dashscope")
run_mod = module("nodes.core.dashscope_run")
geometry = module("nodes.core.geometry")
errors = module("nodes.core.errors")
DashScopeCredentials = module("nodes.core.credentials").DashScopeCredentials
FAST = FAST_DASHSCOPE


def creds(sb, key=None):
    return replace(sb.dashscope_credentials(), api_key=key or sb.dashscope_api_key)


def photo(b=1, h=512, w=512, seed=0):
    g = torch.Generator().manual_seed(seed)
    base = torch.rand((b, 3, 4, 4), generator=g)
    return torch.nn.functional.interpolate(base, size=(h, w), mode="bilinear").movedim(1, -1).contiguous()


def run(sb, image=None, params=None, credentials=None, config=FAST, **options):
    options.setdefault("timeout_s", 20)
    return run_mod.run(photo() if image is None else image, params or ds.DashScopeParams(),
                       credentials or creds(sb), run_mod.DashScopeOptions(**options), config)


def creates(sb):
    return [e for e in sb.requests("dashscope") if e.method == "POST" and e.path.endswith("/out-painting")]


def cause(exc_info):
    assert isinstance(exc_info.value, errors.ItemError)
    return exc_info.value.cause


# ---- the happy paths ------------------------------------------------------------------------------

def test_scale_mode_through_the_upload_flow(sb):
    image = photo()
    out, mask, info = run(sb, image, ds.DashScopeParams(mode="scale", x_scale=2.0, y_scale=1.0))
    assert out.shape == (1, 512, 1024, 3) and mask.shape == (1, 512, 1024)
    assert torch.allclose(out[:, 40:470, 300:720], image[:, 40:470, 44:464], atol=1 / 255)
    assert mask[0, 256, 10] == 1 and mask[0, 256, 512] == 0
    [create] = creates(sb)
    assert create.billable and create.detail["resolve_header"] is True
    sent = create.detail["parameters"]
    assert sent["x_scale"] == 2.0 and not {"output_ratio", "left_offset"} & set(sent)
    report = info.to_dict()["results"][0]
    assert report["task_id"] == create.detail["task_id"] and report["polls"] >= 1
    paths = [e.path for e in sb.requests()]
    assert any("/uploads" in p for p in paths) and any(p.startswith("/oss") for p in paths)


@pytest.mark.parametrize("params,size", [
    (ds.DashScopeParams(mode="output_ratio", output_ratio="16:9"), (910, 512)),
    (ds.DashScopeParams(mode="output_ratio", output_ratio="3:4"), (512, 683)),
    (ds.DashScopeParams(mode="offsets", left_offset=100, right_offset=0, bottom_offset=30), (612, 542)),
    (ds.DashScopeParams(mode="rotate_only", angle=30), geometry.rotated_size(512, 512, 30)),
])
def test_every_mode_gives_the_documented_size(sb, params, size):
    out, mask, _ = run(sb, params=params)
    assert (out.shape[2], out.shape[1]) == size
    assert creates(sb)[0].detail["mode"] == params.mode


def test_rotation_marks_the_corners_as_generated(sb):
    out, mask, _ = run(sb, params=ds.DashScopeParams(mode="rotate_only", angle=45), keep_original=False)
    h, w = mask.shape[1:]
    assert mask[0, 2, 2] > 0.9 and mask[0, h // 2, w // 2] < 0.1


def test_small_images_are_scaled_up_and_mapped_back(sb):
    out, mask, info = run(sb, photo(h=256, w=256), ds.DashScopeParams(mode="offsets", left_offset=64, right_offset=0))
    assert out.shape == (1, 256, 320, 3)  # the user's pixels: 64 px more on the left
    report = info.to_dict()["results"][0]
    assert report["sent"] == "512x512" and report["vendor_output"] == "640x512"
    assert creates(sb)[0].detail["parameters"]["left_offset"] == 128
    assert "scaled" in report["input_notes"][0]


def test_batch_order_and_concurrency(sb):
    images = torch.stack([torch.full((512, 512, 3), v) for v in (0.2, 0.8)])
    out, _, info = run(sb, images, ds.DashScopeParams(mode="scale", x_scale=1.2, y_scale=1.0), concurrency=2)
    assert out[:, 256, 300, 0].tolist() == pytest.approx([0.2, 0.8], abs=2 / 255)
    assert len({r["task_id"] for r in info.to_dict()["results"]}) == 2


def test_watermark_flag_is_sent(sb):
    run(sb, params=ds.DashScopeParams(add_watermark=False))
    run(sb)
    assert [c.detail["parameters"]["add_watermark"] for c in creates(sb)] == [False, True]


# ---- terminal states and errors --------------------------------------------------------------------

def test_failed_task_carries_code_and_task_id(sb):
    sb.inject("dashscope", "task_failed", code="InvalidParameter.ImageContent", message="green net")
    with pytest.raises(errors.ItemError) as e:
        run(sb)
    err = cause(e)
    assert err.code == "InvalidParameter.ImageContent" and "moderation" in err.meaning and err.task_id
    assert err.task_id in str(e.value) and len(creates(sb)) == 1


def test_unknown_task(sb):
    sb.inject("dashscope", "unknown")
    with pytest.raises(errors.ItemError) as e:
        run(sb)
    assert cause(e).code == "UNKNOWN" and "24 h" in cause(e).meaning


def test_wrong_key_hints_at_the_region(sb):
    with pytest.raises(errors.ItemError) as e:
        run(sb, credentials=creds(sb, "sk-not-a-key"))
    assert cause(e).code == "InvalidApiKey" and "Beijing" in cause(e).meaning
    assert len(creates(sb)) == 0  # refused at getPolicy: nothing was created


def test_create_throttling_is_retried(sb):
    sb.inject("dashscope", "throttle", times=2, retry_after="0.1")
    run(sb)
    assert len(creates(sb)) == 3 and sum(c.billable for c in creates(sb)) == 1


def test_quota_exhausted_is_not_retried(sb):
    sb.inject("dashscope", "throttle", code="Throttling.AllocationQuota")
    with pytest.raises(errors.ItemError) as e:
        run(sb)
    assert cause(e).code == "Throttling.AllocationQuota" and len(creates(sb)) == 1


def test_lost_create_answer_is_never_resent(sb):
    sb.inject("dashscope", "drop_after")
    with pytest.raises(errors.ItemError) as e:
        run(sb)
    assert cause(e).code == "ConnectionLost" and len(creates(sb)) == 1


def test_poll_errors_are_retried(sb):
    sb.inject("dashscope", "poll_error", status=500)
    run(sb)
    polls = [e for e in sb.requests("dashscope") if e.method == "GET" and "/tasks/" in e.path]
    assert any(p.status == 500 for p in polls) and polls[-1].status == 200


def test_expired_upload_policy_gets_a_fresh_one(sb):
    sb.inject("dashscope", "upload_denied")
    run(sb)
    assert sum(1 for e in sb.requests("dashscope") if "getPolicy" in (e.query or "")) == 2


def test_result_link_gone(sb):
    sb.inject("dashscope", "url_404")
    with pytest.raises(errors.ItemError) as e:
        run(sb)
    assert cause(e).code == "HTTP404" and cause(e).task_id


# ---- waiting: timeout, cancel, resume, interrupt ---------------------------------------------------------

def test_timeout_cancels_and_reports_the_task_id(sb):
    sb.inject("dashscope", "stuck")
    started = time.monotonic()
    with pytest.raises(errors.ItemError) as e:
        run(sb, timeout_s=1.5)
    err = cause(e)
    assert err.code == "Timeout" and err.task_id and "resume_task_ids" in str(err)
    assert time.monotonic() - started < 3
    cancels = [x for x in sb.requests("dashscope") if x.path.endswith("/cancel")]
    assert len(cancels) == 1 and err.task_id in cancels[0].path


def test_resume_fetches_without_a_new_task(sb):
    _, _, info = run(sb)
    task_id = info.to_dict()["results"][0]["task_id"]
    out, _, info2 = run(sb, resume_task_ids=[task_id])
    assert len(creates(sb)) == 1 and info2.to_dict()["results"][0]["task_id"] == task_id
    with pytest.raises(errors.InputError, match="one per image"):
        run(sb, photo(b=2), resume_task_ids=[task_id])


def test_interrupt_while_polling_ends_fast_and_cancels(sb):
    sb.inject("dashscope", "stuck")
    deadline = time.monotonic() + 0.6

    class Stop(BaseException):
        pass

    def poll():
        if time.monotonic() > deadline:
            raise Stop()

    started = time.monotonic()
    with pytest.raises(Stop):
        run_mod.run(photo(), ds.DashScopeParams(), creds(sb), run_mod.DashScopeOptions(timeout_s=30), FAST,
                    run_mod.RunHooks(poll=poll))
    assert time.monotonic() - started < 1.6
    wait_until = time.monotonic() + 3
    while not any(x.path.endswith("/cancel") for x in sb.requests("dashscope")):
        assert time.monotonic() < wait_until, "the vendor task was never cancelled"
        time.sleep(0.05)


# ---- bad input: nothing is sent ---------------------------------------------------------------------

@pytest.mark.parametrize("image,params,match", [
    (photo(), ds.DashScopeParams(mode="rotate_only", angle=0), "angle 0 does nothing"),
    (photo(), ds.DashScopeParams(mode="scale", x_scale=3.5), "x_scale"),
    (photo(), ds.DashScopeParams(mode="offsets", left_offset=1000, right_offset=600), "3x the side"),
    (photo(), ds.DashScopeParams(mode="output_ratio", output_ratio="2:1"), "output_ratio"),
    (photo(h=64, w=1024), ds.DashScopeParams(), "aspect ratio"),
    (torch.full((1, 512, 512, 3), float("nan")), ds.DashScopeParams(), "NaN"),
    (torch.zeros((0, 512, 512, 3)), ds.DashScopeParams(), "empty"),
])
def test_bad_input_costs_nothing(sb, image, params, match):
    with pytest.raises(errors.InputError, match=match):
        run(sb, image, params)
    assert sb.requests() == []


def schedule(config, length, expected):
    """(polls, seconds between the task finishing and the poll that sees it) for a task of `length` s."""
    t, n, backoff = 0.0, 0, config.poll_first
    while t < length:
        t += config.next_poll(t, backoff, expected)
        backoff = min(config.poll_cap, backoff * config.poll_growth)
        n += 1
    return n, t - length


def test_poll_schedule_is_fast_first_sparse_then_dense_near_the_expected_time():
    config = ds.DashScopeConfig()
    assert config.next_poll(0.0, config.poll_first, 25) == 0.5  # a bad input fails within a second
    polls, lag = schedule(config, 30, 25)
    assert polls <= 15 and lag <= config.poll_near
    for length in (20, 22, 26, 33, 37):  # anywhere in the dense window: seen within poll_near
        assert schedule(config, length, 25)[1] <= config.poll_near + 1e-9
    assert schedule(config, 600, 25)[0] < 600 / 4  # a very long task is polled at most every poll_cap


def test_task_durations_learn_from_what_was_seen():
    before = ds.TaskDurations._estimate
    try:
        ds.TaskDurations._estimate = None
        assert ds.TaskDurations.expected(25) == 25
        ds.TaskDurations.observe(40)
        ds.TaskDurations.observe(40)
        assert ds.TaskDurations.expected(25) == 40
        ds.TaskDurations.observe(10)
        assert ds.TaskDurations.expected(25) == pytest.approx(31)
    finally:
        ds.TaskDurations._estimate = before


def test_paste_back_leaves_the_vendor_watermark_visible(sb):
    params = ds.DashScopeParams(mode="scale", x_scale=1.1, y_scale=1.1)  # 563 px, original from 25 to 537
    _, mask, _ = run(sb, params=params)
    assert mask[0, 515, 112] == 1  # inside the original, in the watermark corner: left as the vendor made it
    assert mask[0, 300, 300] == 0
    _, mask, _ = run(sb, params=replace(params, add_watermark=False))
    assert mask[0, 515, 112] == 0
