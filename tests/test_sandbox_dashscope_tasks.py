"""The sandbox's DashScope emulator: rate and concurrency limits, UNKNOWN and cancelled tasks,
and the temporary upload (getPolicy + OSS form POST).
"""

import base64
import re
import uuid

import pytest
from dashscope_sandbox_client import (  # noqa: F401 (SANDBOX_SETTINGS: read by conftest's sb)
    CANCEL_REFUSED,
    IMAGE_PNG,
    MODEL,
    PENDING_S,
    SANDBOX_SETTINGS,
    advance,
    assert_error,
    auth,
    cancel,
    create,
    create_entry,
    created_id,
    finish,
    get_policy,
    oss_post,
    policy_data,
    poll,
    run,
    succeeded,
    upload,
    upload_form,
)

# ---- throttling -----------------------------------------------------------------------------------

def test_more_than_two_creates_per_second_are_throttled(sb, http):
    url = upload(http, sb)
    first, second, third = (create(http, sb, url) for _ in range(3))
    created_id(first), created_id(second)
    assert_error(third, 429, "Throttling.RateQuota", "Requests rate limit exceeded, please try again later.")
    assert create_entry(sb, 2).detail["throttled"] == "qps" and sb.billable_count() == 2
    sb.add_dashscope_key("sk-another-account-0000000000000")  # the limit is per key (account)
    created_id(create(http, sb, upload(http, sb, key="sk-another-account-0000000000000"),
                      key="sk-another-account-0000000000000"))


def test_concurrent_task_limit(sb, http):
    sb.dashscope_qps = 0
    url = upload(http, sb)
    ids = [created_id(create(http, sb, url)) for _ in range(5)]
    assert_error(create(http, sb, url), 429, "Throttling.RateQuota")
    assert create_entry(sb, 5).detail["throttled"] == "concurrency"
    assert cancel(http, sb, ids[0]).status_code == 200       # a cancelled task frees its slot
    created_id(create(http, sb, url))
    assert_error(create(http, sb, url), 429, "Throttling.RateQuota")
    finish(sb)                                                # finished tasks free theirs
    created_id(create(http, sb, url))
    sb.dashscope_max_concurrent = 1
    assert_error(create(http, sb, url), 429, "Throttling.RateQuota")
    assert sb.billable_count() == 7


# ---- UNKNOWN, cancel ------------------------------------------------------------------------------

def test_unknown_ids_and_other_accounts_tasks(sb, http):
    missing = str(uuid.uuid4())
    body = poll(http, sb, missing)
    assert list(body) == ["request_id", "output"] and body["output"] == {"task_id": missing, "task_status": "UNKNOWN"}
    task_id = created_id(create(http, sb, upload(http, sb)))
    sb.add_dashscope_key("sk-another-account-0000000000000")
    assert poll(http, sb, task_id, key="sk-another-account-0000000000000")["output"]["task_status"] == "UNKNOWN"
    assert poll(http, sb, task_id)["output"]["task_status"] == "PENDING"


def test_tasks_expire_after_24_hours_and_so_do_result_links(sb, http):
    task_id, body = run(http, sb)
    url = succeeded(body)
    advance(sb, 23 * 3600)
    assert http.get(url, timeout=10).status_code == 200
    succeeded(poll(http, sb, task_id))
    advance(sb, 3600)
    assert poll(http, sb, task_id)["output"] == {"task_id": task_id, "task_status": "UNKNOWN"}
    assert http.get(url, timeout=10).status_code == 404


def test_cancel_pending_but_not_running(sb, http):
    url = upload(http, sb)
    pending_id = created_id(create(http, sb, url))
    resp = cancel(http, sb, pending_id)
    assert resp.status_code == 200 and list(resp.json()) == ["request_id"]
    out = poll(http, sb, pending_id)["output"]
    assert list(out) == ["task_id", "task_status", "submit_time", "end_time"] and out["task_status"] == "CANCELED"
    running_id = created_id(create(http, sb, url))
    advance(sb, PENDING_S + 1)
    assert_error(cancel(http, sb, running_id), 400, "UnsupportedOperation", CANCEL_REFUSED)
    finish(sb)
    assert_error(cancel(http, sb, running_id), 400, "UnsupportedOperation", CANCEL_REFUSED)
    assert_error(cancel(http, sb, pending_id), 400, "UnsupportedOperation", CANCEL_REFUSED)  # twice
    assert_error(cancel(http, sb, str(uuid.uuid4())), 400, "UnsupportedOperation", CANCEL_REFUSED)
    assert poll(http, sb, pending_id)["output"]["task_status"] == "CANCELED"
    assert (sb.billable_count(), sb.dashscope_charged_images()) == (2, 1)
    assert [e.detail["task_status"] for e in sb.requests("dashscope", "create")] == ["CANCELED", "SUCCEEDED"]
    assert all(not e.billable for e in sb.requests("dashscope", "cancel"))


# ---- the temporary upload -------------------------------------------------------------------------

def test_policy_expires_on_the_sandbox_clock(sb, http):
    policy = policy_data(http, sb)
    advance(sb, 299)
    assert oss_post(http, policy, IMAGE_PNG, "a.png").status_code == 200
    advance(sb, 2)
    resp = oss_post(http, policy, IMAGE_PNG, "b.png")
    assert resp.status_code == 403 and resp.headers["Content-Type"] == "application/xml"
    assert re.search(r"<Code>AccessDenied</Code>\s*<Message>Invalid according to Policy: Policy expired.</Message>",
                     resp.text)
    assert re.search(r"<RequestId>([0-9A-F]{24})</RequestId>", resp.text).group(1) == resp.headers["x-oss-request-id"]


def multipart(fields: list[tuple[str, bytes, str | None]]) -> tuple[bytes, str]:
    boundary = "sandboxboundary1234"
    out = b""
    for name, value, filename in fields:
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
        out += f"--{boundary}\r\nContent-Disposition: {disposition}\r\n\r\n".encode() + value + b"\r\n"
    return out + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


@pytest.mark.parametrize("change, status, code", [
    ({"Signature": "AAAA"}, 403, "SignatureDoesNotMatch"),
    ({"policy": base64.b64encode(b'{"expiration":"2099-01-01T00:00:00.000Z"}').decode()}, 403,
     "SignatureDoesNotMatch"),
    ({"OSSAccessKeyId": "LTAInobody"}, 403, "InvalidAccessKeyId"),
    ({"key": "elsewhere/in.png"}, 403, "AccessDenied"),
    ({"x-oss-object-acl": "public-read"}, 403, "AccessDenied"),
    ({"policy": None}, 400, "InvalidArgument"),
    ({"key": None}, 400, "InvalidArgument"),
])
def test_upload_form_checks(sb, http, change, status, code):
    policy = policy_data(http, sb)
    resp = oss_post(http, policy, IMAGE_PNG, **change)
    assert resp.status_code == status and f"<Code>{code}</Code>" in resp.text, resp.text
    assert sb.requests("dashscope", "upload")[0].detail["oss_error"] == code


def test_upload_file_must_be_last_and_single(sb, http):
    policy = policy_data(http, sb)
    fields = [(k, v.encode(), None) for k, v in upload_form(policy).items()]
    for parts in ([("file", IMAGE_PNG, "in.png")] + fields, fields + [("file", b"1", "a"), ("file", b"2", "b")],
                  fields):
        body, content_type = multipart(parts)
        resp = http.post(policy["upload_host"], data=body, headers={"Content-Type": content_type}, timeout=10)
        assert resp.status_code == 400 and "<Code>MalformedPOSTRequest</Code>" in resp.text
    resp = http.post(policy["upload_host"], data=b"x", headers={"Content-Type": "text/plain"}, timeout=10)
    assert resp.status_code == 400 and "MalformedPOSTRequest" in resp.text
    body, content_type = multipart(fields + [("file", IMAGE_PNG, "in.png")])
    assert http.post(policy["upload_host"], data=body, headers={"Content-Type": content_type},
                     timeout=10).status_code == 200


def test_upload_size_overwrite_and_success_status(sb, http):
    sb.dashscope_upload_max_mb = 1
    policy = policy_data(http, sb)
    resp = oss_post(http, policy, bytes(1024 * 1024 + 1), "big.bin")
    assert resp.status_code == 400 and "<Code>EntityTooLarge</Code>" in resp.text
    assert oss_post(http, policy, IMAGE_PNG, "a.png").status_code == 200
    resp = oss_post(http, policy, IMAGE_PNG, "a.png")
    assert resp.status_code == 409 and "<Code>FileAlreadyExists</Code>" in resp.text
    resp = oss_post(http, policy, IMAGE_PNG, "b.png", success_action_status="201")
    assert resp.status_code == 201 and "<Key>" in resp.text and resp.headers["ETag"]
    resp = oss_post(http, policy, IMAGE_PNG, "c.png", success_action_status=None)
    assert (resp.status_code, resp.content) == (204, b"")
    assert sb.billable_count() == 0


def test_get_policy_refusals(sb, http):
    assert_error(get_policy(http, sb, model=""), 400, "BadRequest.EmptyModel")
    assert_error(http.get(f"{sb.url}/api/v1/uploads?model={MODEL}", headers=auth(sb), timeout=10), 400,
                 "InvalidParameter", contains="getPolicy")
    sb.dashscope_policy_qps = 1
    assert get_policy(http, sb).status_code == 200
    assert_error(get_policy(http, sb), 429, "Throttling.RateQuota")
    assert get_policy(http, sb, model="qwen-vl-plus").status_code == 200  # per account and model
