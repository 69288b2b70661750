"""Issue 12, DashScope: the pack against a sandbox as strict as the real service (fidelity audit findings
3, 6, 7, 11-15), over real HTTP. Each test failed on the code before the fix.

- no-op bodies (offsets all 0, scales 1.0, rotate_only with angle 0) are refused before any request,
  and the sandbox answers such bodies 400 InvalidParameter;
- quarter turns go out with an expansion mode; rotate_only warns (the sandbox refuses them only there);
- the connection test's probe id is a plain UUID (the sandbox answers other ids 400);
- a resent upload that meets FileAlreadyExists is a success;
- a 429 on create while a task of ours runs waits for it instead of spending the backoff;
- limit_image_size: a planned output beyond 1:4..4:1 is refused before paying;
- the upload form carries x-oss-content-type where the SDK puts it;
- DASHSCOPE_WORKSPACE_ID is documented for what it does.
"""

import json
import uuid
from dataclasses import replace

import pytest
import torch
from conftest import ROOT
from dashscope_sandbox_client import (
    assert_error,
    create,
    created_id,
    oss_post,
    policy_data,
    upload,
)
from pack import FAST_DASHSCOPE, module

ds = module("nodes.core.dashscope")
ds_run = module("nodes.core.dashscope_run")
widgets = module("nodes.core.widgets")
geometry = module("nodes.core.geometry")
connection_check = module("nodes.core.connection_check")
errors = module("nodes.core.errors")


def photo(b=1, h=512, w=512):
    g = torch.Generator().manual_seed(3)
    base = torch.rand((b, 3, 4, 4), generator=g)
    return torch.nn.functional.interpolate(base, size=(h, w), mode="bilinear").movedim(1, -1).contiguous()


def run(sb, params, image=None, config=FAST_DASHSCOPE, **options):
    options.setdefault("timeout_s", 30)
    options.setdefault("keep_original", False)
    return ds_run.run(photo() if image is None else image, params, sb.dashscope_credentials(),
                      ds_run.DashScopeOptions(**options), config)


def uploads(sb):
    return sb.requests("dashscope", action="upload")


# ---- finding 3: bodies that expand nothing ----------------------------------------------------------

NO_OPS = {
    "offsets all 0": (ds.DashScopeParams(mode="offsets", left_offset=0, right_offset=0, top_offset=0,
                                         bottom_offset=0), ("left_offset", "right_offset", "top_offset",
                                                            "bottom_offset")),
    "scale 1.0 x 1.0": (ds.DashScopeParams(mode="scale", x_scale=1.0, y_scale=1.0), ("x_scale", "y_scale")),
    "scale 1.0 x 1.0 rotated": (ds.DashScopeParams(mode="scale", x_scale=1.0, y_scale=1.0, angle=30),
                                ("x_scale", "y_scale", "rotate_only")),
    "rotate_only angle 0": (ds.DashScopeParams(mode="rotate_only", angle=0), ("angle",)),
}


@pytest.mark.parametrize("name", list(NO_OPS))
def test_no_op_bodies_are_refused_before_any_request(sb, name):
    params, named = NO_OPS[name]
    with pytest.raises(errors.InputError) as e:
        run(sb, params)
    assert all(widget in str(e.value) for widget in named), str(e.value)
    assert sb.request_count() == 0  # no upload, no getPolicy, nothing billed


def test_the_sandbox_answers_no_op_bodies_400_invalid_parameter(sb, http):
    sb.dashscope_qps = 0
    url = upload(http, sb)

    def create_as_given(**parameters):  # create() adds an expansion when none is named: not here
        body = json.dumps({"model": "image-out-painting", "input": {"image_url": url}, "parameters": parameters})
        return create(http, sb, url, body=body)

    for parameters in ({}, {"angle": 0}, {"x_scale": 1.0, "y_scale": 1.0}, {"add_watermark": False},
                       {"left_offset": 0, "right_offset": 0, "top_offset": 0, "bottom_offset": 0},
                       {"output_ratio": "", "x_scale": 1, "top_offset": 0}):
        assert_error(create_as_given(**parameters), 400, "InvalidParameter", contains="changes nothing")
    assert sb.billable_count() == 0
    created_id(create_as_given(angle=30, x_scale=1.0))  # a rotation alone is something
    sb.dashscope_refuse_no_op = False  # the other possibility: the service bills a copy
    created_id(create_as_given())


def test_every_mode_but_rotate_only_expands_with_the_widget_defaults():
    values = widgets.defaults(widgets.DASHSCOPE)
    assert values["angle"] == 0 and values["left_offset"] > 0 and values["right_offset"] > 0
    for mode in ("scale", "output_ratio", "offsets"):
        p = ds.DashScopeParams(mode=mode).plan(800, 600)
        assert (p.canvas_width, p.canvas_height) != (800, 600), mode
    with pytest.raises(errors.InputError, match="angle"):
        ds.DashScopeParams(mode="rotate_only").plan(800, 600)


def test_offsets_that_round_to_0_on_a_downscaled_input_stay_1_px():
    # an image sent at under half its size: a 1 px offset would round to 0 and make the body a no-op
    assert [ds_run._scaled_offset(v, 0.45) for v in (0, 1, 2, 100)] == [0, 1, 1, 45]


# ---- finding 7: quarter turns ---------------------------------------------------------------------------

def test_a_quarter_turn_with_an_expansion_goes_out(sb):
    out, _, info = run(sb, ds.DashScopeParams(mode="scale", angle=90, x_scale=2.0, y_scale=1.0),
                       image=photo(1, 512, 768))
    assert out.shape == (1, 768, 1024, 3)  # turned to 512x768, then the width doubled
    [create_call] = sb.requests("dashscope", action="create")
    assert create_call.detail["angle"] == 90 and create_call.status == 200
    assert not info.to_dict()["results"][0].get("input_notes")


def test_a_quarter_turn_alone_is_warned_about_not_refused(sb):
    params = ds.DashScopeParams(mode="rotate_only", angle=270)
    assert "advise against" in " ".join(params.warnings())
    params.plan(768, 512)  # no InputError
    with pytest.raises(errors.ItemError) as e:  # the strict sandbox, as the reference: rotate-only refuses it
        run(sb, params, image=photo(1, 512, 768))
    assert e.value.cause.code == "InvalidParameter" and e.value.cause.billed is False
    sb.dashscope_refuse_quarter_turns = False  # the newer page only advises against them
    out, _, info = run(sb, params, image=photo(1, 512, 768))
    assert out.shape == (1, 768, 512, 3)
    notes = info.to_dict()["results"][0]["input_notes"]
    assert any("angle 270 with mode rotate_only" in n for n in notes), notes


def test_the_sandbox_refuses_quarter_turns_only_without_an_expansion(sb, http):
    sb.dashscope_qps = 0
    url = upload(http, sb)
    created_id(create(http, sb, url, angle=90, x_scale=2.0))  # the reference's own example
    created_id(create(http, sb, url, angle=180, left_offset=10))
    assert_error(create(http, sb, url, angle=270), 400, "InvalidParameter", contains="90, 180 or 270")


# ---- finding 6: the connection test's probe id --------------------------------------------------------

def test_the_connection_probe_is_a_plain_uuid(sb):
    answer = connection_check.check_dashscope(sb.dashscope_credentials())
    assert answer["ok"] is True, answer
    [poll] = sb.requests("dashscope", action="poll")
    task_id = poll.path.rsplit("/", 1)[1]
    assert str(uuid.UUID(task_id)) == task_id


def test_the_sandbox_answers_ids_that_are_not_uuids_400(sb, http):
    headers = {"Authorization": f"Bearer {sb.dashscope_api_key}"}
    resp = http.get(f"{sb.url}/api/v1/tasks/cloud-outpaint-test-{uuid.uuid4()}", headers=headers, timeout=10)
    assert_error(resp, 400, "InvalidParameter", contains="UUID")
    sb.dashscope_uuid_task_ids = False
    resp = http.get(f"{sb.url}/api/v1/tasks/not-a-uuid", headers=headers, timeout=10)
    assert resp.status_code == 200 and resp.json()["output"]["task_status"] == "UNKNOWN"


# ---- finding 11: FileAlreadyExists on a resent upload ---------------------------------------------------

def test_a_resent_upload_that_finds_its_object_stored_is_a_success(sb):
    sb.inject("dashscope", "upload_drop_after")  # stored, then the connection breaks before the answer
    out, _, _ = run(sb, ds.DashScopeParams())
    assert out.shape[0] == 1
    first, second = uploads(sb)
    assert first.fault == "upload_drop_after" and "object_key" in first.detail
    assert second.status == 409 and second.detail["oss_error"] == "FileAlreadyExists"
    assert sb.dashscope_charged_images() == 1


def test_file_already_exists_on_a_first_attempt_is_still_an_error(sb, http):
    classify = ds._oss_error  # a first attempt that meets an existing object did not upload anything
    grant = policy_data(http, sb)
    assert oss_post(http, grant, b"x").status_code == 200
    again = oss_post(http, grant, b"x")
    assert again.status_code == 409
    assert classify(again) is not None and classify(again, retried=True) is None


# ---- finding 12: 429 while a task of ours runs -----------------------------------------------------------

def test_a_429_while_our_task_runs_waits_for_it_instead_of_backing_off(sb):
    sb.dashscope_max_concurrent = 1  # an account limit of 1 (older references)
    sb.dashscope_pending_s, sb.dashscope_running_s = 0.3, 3.5  # slow tasks (best_quality on a big image)
    out, _, _ = run(sb, ds.DashScopeParams(), image=photo(2), concurrency=2)
    assert out.shape[0] == 2 and sb.dashscope_charged_images() == 2
    creates = sb.requests("dashscope", action="create")
    throttled = [e for e in creates if e.status == 429]
    # a full-jitter backoff (1 s, 2 s, 4 s ...) needs at least 3 refusals to outwait a 3.8 s task
    assert 1 <= len(throttled) <= 2 and len(creates) == 2 + len(throttled), [e.status for e in creates]
    assert ds.TasksInFlight.state(sb.dashscope_api_key)[0] == 0  # nothing left counted as running


# ---- finding 13: the output aspect with limit_image_size -------------------------------------------------

@pytest.mark.parametrize("params, named", [
    (ds.DashScopeParams(mode="scale", x_scale=3.0, y_scale=1.0), "x_scale / y_scale"),
    (ds.DashScopeParams(mode="offsets", left_offset=1500, right_offset=0), "offsets"),
])
def test_an_output_beyond_4_to_1_is_refused_before_paying(sb, params, named):
    image = photo(1, 512, 1024)  # 2:1, made 6:1 / 4.9:1
    with pytest.raises(errors.InputError) as e:
        run(sb, params, image=image)
    assert "limit_image_size" in str(e.value) and named in str(e.value) and "4:1" in str(e.value)
    assert sb.request_count() == 0
    out, _, _ = run(sb, replace(params, limit_image_size=False), image=image)  # the user's explicit choice
    assert out.shape[2] / out.shape[1] > 4


def test_an_output_of_exactly_4_to_1_is_taken():
    p = ds.DashScopeParams(mode="scale", x_scale=2.0, y_scale=1.0).plan(1024, 512)
    assert (p.canvas_width, p.canvas_height) == (2048, 512)


# ---- finding 15: x-oss-content-type ------------------------------------------------------------------------

@pytest.mark.parametrize("fmt, mime", [("png", "image/png"), ("jpeg", "image/jpeg")])
def test_the_upload_form_carries_x_oss_content_type_as_the_sdk_does(sb, fmt, mime):
    run(sb, ds.DashScopeParams(), image_format=fmt)
    [entry] = uploads(sb)
    fields = entry.detail["form_fields"]
    assert fields[-3:] == ["success_action_status", "x-oss-content-type", "file"], fields
    assert entry.detail["x_oss_content_type"] == mime  # the sandbox refuses one the file part disagrees with


def test_the_sandbox_checks_x_oss_content_type(sb, http):
    grant = policy_data(http, sb)
    assert oss_post(http, grant, b"x", "a.png", **{"x-oss-content-type": "image/png"}).status_code == 200
    for value in ("image/jpeg", "not a type"):  # the file part says image/png
        resp = oss_post(http, grant, b"x", "b.png", **{"x-oss-content-type": value})
        assert resp.status_code == 400 and "<Code>InvalidArgument</Code>" in resp.text, resp.text


# ---- strictness that stays lenient where the SDKs are: integral floats ------------------------------------

def test_integral_floats_are_taken_as_the_java_sdk_sends_them(sb, http):
    sb.dashscope_qps = 0
    url = upload(http, sb)
    created_id(create(http, sb, url, angle=30.0, left_offset=1920.0, top_offset=0.0))
    assert_error(create(http, sb, url, left_offset=19.5), 400, "InvalidParameter", contains="integer")


# ---- finding 14: DASHSCOPE_WORKSPACE_ID -------------------------------------------------------------------

def test_dashscope_workspace_id_is_documented_for_what_it_does():
    for path in (ROOT / "README.md", ROOT / "web" / "docs" / "DashScopeOutpaint.md"):
        text = path.read_text(encoding="utf-8")
        assert "X-DashScope-WorkSpace" in text and "DASHSCOPE_WORKSPACE_ID" in text, path
        assert "SDK" in text.split("DASHSCOPE_WORKSPACE_ID", 1)[1][:1200], path
