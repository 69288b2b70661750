"""Vendor answers of the wrong shape, over real HTTP: every one reaches the caller of run() as
ItemError("image 1", VendorError) with code MalformedResponse (or the vendor's own code where the
answer is a well-formed error), naming the vendor, the request/task id when one is readable, and
whether it may have been billed. Never a raw AttributeError/TypeError/KeyError.

Volcengine answers come from the sandbox's `malformed(body=...)` fault (after the billable call was
processed). DashScope create answers too; getPolicy and task polls take no generic faults in the
sandbox, so those answers are rewritten by a proxy in front of it (tests/answer_proxy.py), and the
sandbox still sees, bills and cancels what it would. Cases: redteam report F6 and its c4_* scripts.
"""

from __future__ import annotations

import base64
import io
import json

import answer_proxy
import numpy as np
import pytest
import torch
from pack import FAST_DASHSCOPE, module
from PIL import Image

Sandbox = module("nodes.sandbox").Sandbox
volc, volc_run = module("nodes.core.volc"), module("nodes.core.volc_run")
ds, ds_run = module("nodes.core.dashscope"), module("nodes.core.dashscope_run")
runner = module("nodes.core.runner")
errors = module("nodes.core.errors")
credentials = module("nodes.core.credentials")

RAW = (AttributeError, TypeError, KeyError, IndexError)


def png64(w: int, h: int, mode: str = "RGB", fmt: str = "PNG") -> str:
    buf = io.BytesIO()
    if mode == "I;16":
        Image.fromarray(np.full((h, w), 40000, np.uint16)).save(buf, fmt)
    else:
        Image.new(mode, (w, h)).save(buf, fmt)
    return base64.b64encode(buf.getvalue()).decode()


def chain(exc: BaseException) -> list[BaseException]:
    seen = []
    while exc is not None and exc not in seen:
        seen.append(exc)
        exc = exc.__cause__ or exc.__context__
    return seen


def vendor_error(exc_info, vendor: str) -> errors.VendorError:
    """The error the caller gets: ItemError naming the item, the VendorError as its cause."""
    item = exc_info.value
    assert isinstance(item, errors.ItemError) and item.label == "image 1", repr(item)
    err = item.cause
    assert isinstance(err, errors.VendorError) and err.vendor == vendor
    assert str(item).startswith(f"image 1: {vendor} error ")
    assert not [e for e in chain(item) if isinstance(e, RAW)], chain(item)
    return err


# ---- Volcengine -----------------------------------------------------------------------------------

OK64 = png64(80, 80)


def success(request_id, data) -> dict:
    return {"code": 10000, "request_id": request_id, "data": data}


M, BILLED, UNKNOWN = "MalformedResponse", True, None
# name -> (status, content type, body, expected code, request id named, billed)
VOLC_CASES = {
    "non-JSON 200": (200, "text/html", "<html>hi</html>", M, None, UNKNOWN),
    "JSON list": (200, None, [1, 2, 3], M, None, UNKNOWN),
    "null body": (200, None, None, M, None, UNKNOWN),
    "data is a list": (200, None, success("RID-1", [OK64]), M, "RID-1", BILLED),
    "data is a string": (200, None, success("RID-2", "oops"), M, "RID-2", BILLED),
    "data is a number": (200, None, success("RID-3", 5), M, "RID-3", BILLED),
    "data is missing": (200, None, {"code": 10000, "request_id": "RID-3b"}, M, "RID-3b", BILLED),
    "binary_data_base64 is a string": (200, None, success("RID-4", {"binary_data_base64": OK64}), M, "RID-4",
                                       BILLED),
    "binary_data_base64 is [123]": (200, None, success("RID-5", {"binary_data_base64": [123]}), M, "RID-5", BILLED),
    "image_urls is a string": (200, None, success("RID-6", {"image_urls": "https://x/y.png"}), M, "RID-6", BILLED),
    "image_urls is [null]": (200, None, success("RID-7", {"image_urls": [None]}), M, "RID-7", BILLED),
    "image_urls is [123]": (200, None, success("RID-8", {"image_urls": [123]}), M, "RID-8", BILLED),
    "empty image list": (200, None, success("RID-9", {"binary_data_base64": []}), M, "RID-9", BILLED),
    "code as string '10000'": (200, None, {"code": "10000", "request_id": "RID-10",
                                           "data": {"binary_data_base64": [OK64]}}, M, "RID-10", UNKNOWN),
    "code is a list": (200, None, {"code": [1], "request_id": "RID-11"}, M, "RID-11", UNKNOWN),
    "code is a dict": (200, None, {"code": {"a": 1}, "request_id": "RID-12"}, M, "RID-12", UNKNOWN),
    "code is true": (200, None, {"code": True, "request_id": "RID-12b"}, M, "RID-12b", UNKNOWN),
    "status 200, code null": (200, None, {"code": None, "request_id": "RID-27"}, M, "RID-27", UNKNOWN),
    "ResponseMetadata.Error is a string": (200, None, {"ResponseMetadata": {"RequestId": "RID-13", "Error": "boom"}},
                                           M, "RID-13", UNKNOWN),
    "ResponseMetadata.Error is a list": (200, None, {"ResponseMetadata": {"RequestId": "RID-14", "Error": ["boom"]}},
                                         M, "RID-14", UNKNOWN),
    "ResponseMetadata.Error.Code is int": (200, None, {"ResponseMetadata": {"RequestId": "RID-15", "Error": {
        "Code": 5, "Message": 7}}}, M, "RID-15", UNKNOWN),
    "ResponseMetadata.RequestId is a list": (401, None, {"ResponseMetadata": {"RequestId": ["x"], "Error": {
        "Code": "AccessDenied"}}}, M, None, UNKNOWN),
    "ResponseMetadata is a list": (200, None, {"ResponseMetadata": [1], **success("RID-16", {
        "binary_data_base64": [OK64]})}, M, "RID-16", BILLED),
    "request_id is a dict": (200, None, {"code": 10000, "request_id": {"x": 1},
                                         "data": {"binary_data_base64": ["@@"]}}, M, None, BILLED),
    "time_elapsed is a number": (200, None, {**success("RID-16b", {"binary_data_base64": [OK64]}),
                                             "time_elapsed": 2.5}, M, "RID-16b", BILLED),
    # the shape is right, the content is not: the image cannot be read
    "truncated base64": (200, None, success("RID-17", {"binary_data_base64": [OK64[:-7]]}), "BadResult", "RID-17",
                         BILLED),
    "base64 of text": (200, None, success("RID-18", {"binary_data_base64": [base64.b64encode(b"hello").decode()]}),
                       "BadResult", "RID-18", BILLED),
    "1x1 result": (200, None, success("RID-24", {"binary_data_base64": [png64(1, 1)]}), "BadResult", "RID-24",
                   BILLED),
    # well-formed errors whose message is not text: the vendor's own code, the message as text
    "message is a dict": (200, None, {"code": 50500, "request_id": "RID-26", "message": {"x": "y"}}, 50500, "RID-26",
                          UNKNOWN),
    "gateway Message is a number": (401, None, {"ResponseMetadata": {"RequestId": "RID-28", "Error": {
        "Code": "SignatureDoesNotMatch", "Message": 7}}}, "SignatureDoesNotMatch", "RID-28", False),
    "gateway error with only CodeN": (401, None, {"ResponseMetadata": {"RequestId": "RID-29", "Error": {
        "CodeN": 100010}}}, "100010", "RID-29", False),
}


@pytest.fixture(scope="module")
def volc_sb():
    with Sandbox() as sandbox:
        yield sandbox


def volc_creds(sb):
    return sb.volc_credentials()


def inject_volc(sb, status, content_type, answer):
    text = answer if isinstance(answer, str) else json.dumps(answer)
    sb.inject("volc", "malformed", body=text, status=status,
              content_type=content_type or "application/json; charset=utf-8")


def run_volc(sb, mask=None, **options):
    image = torch.rand((1, 48, 64, 3), generator=torch.Generator().manual_seed(0))
    return volc_run.run(image, mask, volc.VolcParams(), volc_creds(sb),
                              volc_run.VolcOptions(timeout_s=10, **options))


@pytest.mark.parametrize("name", list(VOLC_CASES))
def test_volcengine_answer_of_the_wrong_shape(volc_sb, name):
    status, content_type, answer, code, request_id, billed = VOLC_CASES[name]
    volc_sb.reset()
    inject_volc(volc_sb, status, content_type, answer)
    with pytest.raises(errors.ItemError) as e:
        run_volc(volc_sb)
    err = vendor_error(e, "Volcengine")
    assert err.code == code, str(err)
    assert err.request_id == request_id
    if request_id:
        assert request_id in str(e.value)
    assert err.billed is billed, f"billed={err.billed!r}: {err}"
    if billed is None and code == M:
        assert "may have been processed and billed" in err.meaning
    assert not err.retryable
    # the billable call was processed once and never resent
    assert volc_sb.billable_count("volc") == 1 and len(volc_sb.requests("volc")) == 1
    assert volc_sb.errors == []


ODD_RESULTS = {  # valid answers with unusual images: a result (RGB, 0..1), with a note if the size is off
    "RGBA": (png64(80, 80, "RGBA"), 0.0),
    "palette": (png64(80, 80, "P"), 0.0),
    "16-bit grey": (png64(80, 80, "I;16"), 40000 / 65535),
    "grey L": (png64(80, 80, "L"), 0.0),
    "CMYK JPEG": (png64(80, 80, "CMYK", "JPEG"), 1.0),  # CMYK (0,0,0,0) is white
    "wrong size 300x20": (png64(300, 20), 0.0),
}


@pytest.mark.parametrize("canvas_mode", [False, True], ids=["ratio", "canvas"])
@pytest.mark.parametrize("name", list(ODD_RESULTS))
def test_volcengine_odd_but_valid_results(volc_sb, name, canvas_mode):
    encoded, value = ODD_RESULTS[name]
    volc_sb.reset()
    inject_volc(volc_sb, 200, None, success("RID-ODD", {"binary_data_base64": [encoded]}))
    mask = torch.ones((1, 48, 64)) if canvas_mode else None
    result = run_volc(volc_sb, mask, keep_original=False)
    size = (300, 20) if "300x20" in name else (80, 80)
    assert tuple(result.images.shape) == (1, size[1], size[0], 3) and result.images.dtype == torch.float32
    assert tuple(result.masks.shape) == (1, size[1], size[0])
    assert torch.allclose(result.images, torch.full_like(result.images, value), atol=1 / 255)
    [entry] = result.info.results
    assert entry.request_id == "RID-ODD" and entry.output == f"{size[0]}x{size[1]}"
    expected = "64x48" if canvas_mode else "76x58"
    assert entry.note.startswith(f"expected {expected}")  # the size differs from what was sent / documented
    assert json.loads(result.info.to_json())["results"][0]["note"] == entry.note


# ---- DashScope --------------------------------------------------------------------------------------

def real(change):
    return answer_proxy.edit(change)


def output(**fields):
    """The sandbox's own poll answer with output fields replaced."""
    return real(lambda a: {**a, "output": {**a["output"], **fields}})


def policy_data(**fields):
    return real(lambda a: {**a, "data": {**a["data"], **fields}})


B = answer_proxy.body
# name -> (stage, rewrite, expected code, request id named, billed)
DS_CASES = {
    "policy: data is a list": ("policy", B({"request_id": "RQ-P", "data": [1]}), M, "RQ-P", False),
    "policy: data is a string": ("policy", B({"request_id": "RQ-P", "data": "x"}), M, "RQ-P", False),
    "policy: max_file_size_mb 'abc'": ("policy", policy_data(max_file_size_mb="abc"), M, "sandbox", False),
    "policy: upload_host 123": ("policy", policy_data(upload_host=123), M, "sandbox", False),
    "policy: signature missing": ("policy", policy_data(signature=None), M, "sandbox", False),
    "policy: non-JSON": ("policy", B("<html>", content_type="text/html"), M, None, False),
    "create: output is a list": ("create", {"request_id": "RQ-C", "output": ["TASK"]}, M, "RQ-C", UNKNOWN),
    "create: output is a string": ("create", {"request_id": "RQ-C", "output": "TASK"}, M, "RQ-C", UNKNOWN),
    "create: task_id is a dict": ("create", {"request_id": "RQ-C", "output": {"task_id": {"a": 1}}}, M, "RQ-C",
                                  UNKNOWN),
    "create: request_id is a number": ("create", {"request_id": 5, "output": {"task_id": "T-1"}}, M, None, UNKNOWN),
    "create: JSON list": ("create", [], M, None, UNKNOWN),
    "create: 400 code list": ("create", (400, {"code": ["x"], "message": 5}), M, None, False),
    "create: 401 code int": ("create", (401, {"code": 401}), M, None, False),
    "create: 400 message list": ("create", (400, {"code": "InvalidParameter", "message": ["a"], "request_id": "RQ-E"}),
                                 "InvalidParameter", "RQ-E", False),
    "poll: output is a list": ("poll", B({"request_id": "RQ-T", "output": [1]}), M, "RQ-T", UNKNOWN),
    "poll: output is a string": ("poll", B({"request_id": "RQ-T", "output": "SUCCEEDED"}), M, "RQ-T", UNKNOWN),
    "poll: output missing": ("poll", B({"request_id": "RQ-T"}), M, "RQ-T", UNKNOWN),
    "poll: task_status is a list": ("poll", B({"request_id": "RQ-T", "output": {"task_status": ["SUCCEEDED"]}}), M,
                                    "RQ-T", UNKNOWN),
    "poll: output_image_url 123": ("poll", output(task_status="SUCCEEDED", output_image_url=123), M, "sandbox",
                                   BILLED),
    "poll: output_image_url list": ("poll", output(task_status="SUCCEEDED", output_image_url=["x"]), M, "sandbox",
                                    BILLED),
    "poll: SUCCEEDED without a link": ("poll", output(task_status="SUCCEEDED"), M, "sandbox", BILLED),
    "poll: FAILED with code dict": ("poll", output(task_status="FAILED", code={"a": 1}), M, "sandbox", False),
    "poll: usage.image_count text": ("poll", real(lambda a: {**a, "usage": {"image_count": "1"}}), M, "sandbox",
                                     UNKNOWN),
    "poll: JSON list (200)": ("poll", B([1]), M, None, UNKNOWN),
    "poll: null": ("poll", B(None), M, None, UNKNOWN),
    "poll: 200 non-JSON": ("poll", B("oops", content_type="text/plain"), M, None, UNKNOWN),
}


@pytest.fixture(scope="module")
def ds_sb():
    # tasks stay PENDING long enough for a malformed poll answer to find them cancellable
    with Sandbox(dashscope_pending_s=60) as sandbox:
        yield sandbox


@pytest.fixture(scope="module")
def proxy(ds_sb):
    with answer_proxy.AnswerProxy(ds_sb.url) as p:
        yield p


def setup_ds(sb, proxy, stage, rewrite):
    sb.reset()
    proxy.rules.clear()
    proxy.rewritten.clear()
    proxy.files.clear()
    if stage != "create":
        proxy.rewrite(stage, rewrite)
        return
    status, answer = rewrite if isinstance(rewrite, tuple) else (200, rewrite)
    sb.inject("dashscope", "malformed", body=json.dumps(answer), status=status)


def run_ds(sb, proxy, **options):
    creds = credentials.DashScopeCredentials("test", f"{proxy.url}/api/v1", sb.dashscope_api_key)
    image = torch.rand((1, 512, 512, 3), generator=torch.Generator().manual_seed(0))
    return ds_run.run(image, ds.DashScopeParams(), creds, ds_run.DashScopeOptions(timeout_s=10, **options),
                            FAST_DASHSCOPE)


@pytest.mark.parametrize("name", list(DS_CASES))
def test_dashscope_answer_of_the_wrong_shape(ds_sb, proxy, name):
    stage, rewrite, code, request_id, billed = DS_CASES[name]
    setup_ds(ds_sb, proxy, stage, rewrite)
    with pytest.raises(errors.ItemError) as e:
        run_ds(ds_sb, proxy)
    err = vendor_error(e, "DashScope")
    text = str(e.value)
    assert err.code == code, text
    if request_id == "sandbox":  # the sandbox's own request id, still readable in the rewritten answer
        assert err.request_id and err.request_id in text
    else:
        assert err.request_id == request_id
        if request_id:
            assert request_id in text
    assert err.billed is billed, f"billed={err.billed!r}: {text}"
    creates = ds_sb.requests("dashscope", action="create")
    cancels = ds_sb.requests("dashscope", action="cancel")
    if stage == "policy":  # nothing was created
        assert creates == [] and ds_sb.billable_count("dashscope") == 0 and err.task_id is None
    elif stage == "create":  # the task exists and may be billed
        assert len(creates) == 1 and ds_sb.billable_count("dashscope") == 1
        if "request_id is a number" in name:  # the task id is readable: cancelled, named, resumable
            assert err.task_id == "T-1" and "put T-1 in resume_task_ids" in text
            assert [c.path for c in cancels] == ["/api/v1/tasks/T-1/cancel"]
        else:
            assert cancels == []
            if code == M and err.http_status is None:
                assert err.task_id is None and "may have been created and billed" in err.meaning
        if "401" in name:
            assert "Beijing" in err.meaning  # the region hint survives a malformed 401 body
    else:  # a poll: the task is named, cancelled while still pending, and resumable
        [create] = creates
        task_id = create.detail["task_id"]
        assert err.task_id == task_id and task_id in text and f"put {task_id} in resume_task_ids" in text
        assert [c.path for c in cancels] == [f"/api/v1/tasks/{task_id}/cancel"]
        assert ds_sb.dashscope_task(task_id)["status"] == "CANCELED" and "task cancelled" in err.hint
        assert ds_sb.billable_count("dashscope") == 1
    assert ds_sb.errors == []


@pytest.mark.parametrize("mode,size,outcome", [
    ("RGBA", (768, 768), "result"),  # the documented 1.5x of 512: no note
    ("P", (700, 760), "note"),
    ("CMYK", (768, 768), "result"),
    ("RGB", (1, 1), "BadResult"),
])
def test_dashscope_odd_but_valid_results(ds_sb, proxy, mode, size, outcome):
    setup_ds(ds_sb, proxy, "poll", None)
    buf = io.BytesIO()
    Image.new(mode, size).save(buf, "JPEG" if mode == "CMYK" else "PNG")
    link = proxy.serve("/result/odd.png", "image/png", buf.getvalue())
    proxy.rewrite("poll", output(task_status="SUCCEEDED", output_image_url=link))
    if outcome == "BadResult":
        with pytest.raises(errors.ItemError) as e:
            run_ds(ds_sb, proxy, keep_original=False)
        err = vendor_error(e, "DashScope")
        assert err.code == "BadResult" and err.billed is True and err.task_id in str(e.value)
        assert "1x1" in err.meaning and "768x768" in err.meaning
        return
    result = run_ds(ds_sb, proxy, keep_original=False)
    assert tuple(result.images.shape) == (1, size[1], size[0], 3) and result.images.dtype == torch.float32
    assert 0 <= float(result.images.min()) and float(result.images.max()) <= 1
    [entry] = result.info.results
    assert entry.vendor_output == f"{size[0]}x{size[1]}"
    assert (entry.note is not None) == (outcome == "note")
