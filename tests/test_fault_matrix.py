"""Fault matrix: every failure mode of both vendors, over real HTTP against the sandbox, as one table.

Each row injects one fault (or sets one sandbox condition), runs the vendor's whole node run, and
checks three things: the outcome (recovered, or a specific error code carrying the request/task id
where the vendor gave one), the exact number of billable requests the sandbox received (a
duplicate would be a double charge), and that the run ended within timeout_s + 1 s.

The rows' results are collected and printed as a table by the last test of this file.

Why `drop_before` is reported, not resent: the sandbox resets the TCP connection after it was
accepted but before it read the request line. From the client's side the connection was made and
the request bytes were handed to the kernel; the reset surfaces as "connection aborted" while
sending or while waiting for the answer, exactly as it would if the vendor had read the request,
processed it, and the answer was lost. Only "no connection could be made" (refused / connect
timeout / DNS) proves nothing was sent, so the client reports ConnectionLost (billed unknown) and
leaves the decision to the user; the sandbox log shows it was in fact not billable.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import Any, Callable

import pytest
import torch
from pack import FAST_DASHSCOPE, module

Sandbox = module("nodes.sandbox").Sandbox
volc = module("nodes.core.volc")
volc_run = module("nodes.core.volc_run")
ds = module("nodes.core.dashscope")
ds_run = module("nodes.core.dashscope_run")
errors = module("nodes.core.errors")
credentials = module("nodes.core.credentials")

FAST = FAST_DASHSCOPE
TIMEOUT_S = 5.0
MATRIX: list[dict] = []  # one dict per row that ran; printed by test_zz_print_matrix


@dataclass
class Row:
    vendor: str  # "volc" | "dashscope"
    fault: str  # label shown in the table
    setup: Callable[[Any], None]  # injects the fault into the sandbox
    expect: str  # "recovered" or the error code (str(code))
    billable: int  # exact number of billable requests the sandbox must have received
    ids: str = ""  # "request" / "task": the error must carry that id
    billed: Any = "any"  # expected VendorError.billed (True/False/None) or "any"
    requests: int | None = None  # exact number of requests to the billable endpoint, when it matters
    timeout_s: float = TIMEOUT_S
    words: str = ""  # must appear in the error's meaning
    creds: Callable[[Any], Any] | None = None
    volc_config: dict = field(default_factory=dict)
    volc_params: dict = field(default_factory=dict)
    ds_config: dict = field(default_factory=dict)
    check: Callable[[Any, Any], None] | None = None  # extra check(sandbox, error_or_None)

    @property
    def id(self) -> str:
        return f"{self.vendor}-{self.fault}".replace(" ", "_")


def inject(vendor, kind, **kw):
    return lambda sb: sb.inject(vendor, kind, **kw)


def skew(sb):
    sb.clock_offset = 20 * 60


def nothing(sb):
    pass


def volc_creds(sb, ak=None, sk=None):
    return replace(sb.volc_credentials(), access_key=ak or sb.volc_access_key, secret_key=sk or sb.volc_secret_key)


def ds_creds(sb, key=None):
    return replace(sb.dashscope_credentials(), api_key=key or sb.dashscope_api_key)


def cancel_was_sent(sb, err):
    cancels = [e for e in sb.requests("dashscope") if e.path.endswith("/cancel")]
    assert len(cancels) == 1 and err.task_id in cancels[0].path
    assert "resume_task_ids" in str(err)


def poll_500_seen(sb, err):
    polls = [e for e in sb.requests("dashscope") if e.method == "GET" and "/tasks/" in e.path]
    assert any(p.status == 500 for p in polls) and polls[-1].status == 200


V, D = "volc", "dashscope"
ROWS = [
    # ---- Volcengine ----------------------------------------------------------------------------
    Row(V, "429 + Retry-After", inject(V, "throttle", times=2, retry_after="0.2"), "recovered", 1, requests=3),
    Row(V, "429 no Retry-After", inject(V, "throttle"), "recovered", 1, requests=2),
    Row(V, "50500 vendor body", inject(V, "error", code=50500), "50500", 0, "request", None, requests=1,
        words="internal"),
    Row(V, "proxy 503 page", inject(V, "http_5xx_plain", status=503), "recovered", 1, requests=2),
    Row(V, "drop_before", inject(V, "drop_before"), "ConnectionLost", 0, billed=None, requests=1),
    Row(V, "slow > read timeout", inject(V, "slow", seconds=3), "ReadTimeout", 1, billed=None, requests=1,
        volc_config={"read_timeout": 0.5}, words="not sent again"),
    Row(V, "drop_after", inject(V, "drop_after"), "ConnectionLost", 1, billed=None, requests=1),
    Row(V, "malformed JSON", inject(V, "malformed"), "MalformedResponse", 1, billed=None, requests=1),
    Row(V, "invalid base64", inject(V, "bad_base64"), "BadResult", 1, "request", True, requests=1),
    Row(V, "result URL 404", inject(V, "url_404"), "HTTP404", 1, "request", True, requests=1,
        volc_params={"return_url": True}),
    Row(V, "result oversized", inject(V, "oversized_url", size=3 * 2**20), "ResultTooLarge", 1, "request", True,
        requests=1, volc_params={"return_url": True}, volc_config={"max_download_bytes": 2**20}),
    Row(V, "wrong secret", nothing, "SignatureDoesNotMatch", 0, "request", False, requests=1,
        creds=lambda sb: volc_creds(sb, sk="wrong-secret-key"), words="secret key"),
    Row(V, "unknown access key", nothing, "InvalidAccessKey", 0, "request", False, requests=1,
        creds=lambda sb: volc_creds(sb, ak="AKLTunknownkey", sk="x" * 20)),
    Row(V, "clock skew 20 min", skew, "InvalidTimestamp", 0, "request", False, requests=1, words="clock"),
    # ---- DashScope ----------------------------------------------------------------------------------
    Row(D, "create 429 + Retry-After", inject(D, "throttle", times=2, retry_after="0.1"), "recovered", 1,
        requests=3),
    Row(D, "create 429 no Retry-After", inject(D, "throttle"), "recovered", 1, requests=2),
    Row(D, "quota exhausted", inject(D, "throttle", code="Throttling.AllocationQuota"),
        "Throttling.AllocationQuota", 0, "request", False, requests=1),
    Row(D, "500 InternalError body", inject(D, "error", code="InternalError"), "InternalError", 0, "request",
        requests=1),
    Row(D, "proxy 503 page", inject(D, "http_5xx_plain", status=503), "recovered", 1, requests=2),
    Row(D, "drop_before", inject(D, "drop_before"), "ConnectionLost", 0, billed=None, requests=1),
    Row(D, "slow > read timeout", inject(D, "slow", seconds=3), "ReadTimeout", 1, billed=None, requests=1,
        ds_config={"read_timeout": 0.5}, words="not sent again"),
    Row(D, "drop_after", inject(D, "drop_after"), "ConnectionLost", 1, billed=None, requests=1),
    Row(D, "malformed JSON", inject(D, "malformed"), "MalformedResponse", 1, billed=None, requests=1),
    Row(D, "result URL 404", inject(D, "url_404"), "HTTP404", 1, "task", True, requests=1),
    Row(D, "result oversized", inject(D, "oversized_url", size=3 * 2**20), "ResultTooLarge", 1, "task", True,
        requests=1, ds_config={"max_download_bytes": 2**20}),
    Row(D, "task FAILED", inject(D, "task_failed", code="InternalError.Algo"), "InternalError.Algo", 1, "task",
        requests=1),
    Row(D, "task UNKNOWN", inject(D, "unknown"), "UNKNOWN", 1, "task", None, requests=1, words="24 h"),
    Row(D, "stuck PENDING", inject(D, "stuck", state="PENDING"), "Timeout", 1, "task", None, requests=1,
        timeout_s=1.5, check=cancel_was_sent),
    Row(D, "poll 500", inject(D, "poll_error", status=500), "recovered", 1, requests=1, check=poll_500_seen),
    Row(D, "wrong key", nothing, "InvalidApiKey", 0, billed=False, requests=0,
        creds=lambda sb: ds_creds(sb, "sk-0123456789abcdef0123456789abcdef"), words="Beijing"),
    Row(D, "intl (Singapore) key", nothing, "InvalidApiKey", 0, billed=False, requests=0,
        creds=lambda sb: ds_creds(sb, sb.dashscope_intl_api_key), words="Beijing"),
]


def photo(h, w, seed=0):
    g = torch.Generator().manual_seed(seed)
    base = torch.rand((1, 3, 4, 4), generator=g)
    return torch.nn.functional.interpolate(base, size=(h, w), mode="bilinear").movedim(1, -1).contiguous()


def run_row(sb, row: Row):
    if row.vendor == V:
        params = volc.VolcParams(top=0.25, bottom=0.25, left=0.25, right=0.25, **row.volc_params)
        config = replace(volc.VolcConfig(), **row.volc_config)
        creds = row.creds(sb) if row.creds else volc_creds(sb)
        return volc_run.run(photo(48, 64), None, params, creds, volc_run.VolcOptions(timeout_s=row.timeout_s), config)
    config = replace(FAST, **row.ds_config)
    creds = row.creds(sb) if row.creds else ds_creds(sb)
    return ds_run.run(photo(512, 512), ds.DashScopeParams(), creds, ds_run.DashScopeOptions(timeout_s=row.timeout_s),
                      config)


def billable_endpoint(sb, vendor):
    """Requests to the endpoint that costs money (Volcengine CVProcess, DashScope task creation)."""
    if vendor == V:
        return sb.requests(V)
    return sb.requests(D, action="create")


@pytest.mark.parametrize("row", ROWS, ids=[r.id for r in ROWS])
def test_fault_matrix(row: Row):
    with Sandbox(dashscope_pending_s=0.1, dashscope_running_s=0.2) as sb:
        row.setup(sb)
        err, got = None, "recovered"
        started = time.monotonic()
        try:
            out, _, info = run_row(sb, row)
        except errors.ItemError as exc:
            err = exc.cause
            got = str(getattr(err, "code", type(err).__name__))
        except Exception as exc:  # anything else is a failure of the row, but still goes in the table
            err, got = exc, f"{type(exc).__name__}"
        seconds = time.monotonic() - started
        billable = sb.billable_count(row.vendor)
        record = {"vendor": row.vendor, "fault": row.fault, "expected": row.expect, "got": got,
                  "billable": f"{billable}/{row.billable}", "seconds": f"{seconds:.2f}", "ok": "FAIL"}
        MATRIX.append(record)

        assert got == row.expect, f"{row.id}: expected {row.expect}, got {got}: {err}"
        if err is not None:
            assert isinstance(err, errors.VendorError)
            if row.ids == "request":
                assert err.request_id and str(err.request_id) in str(err)
            if row.ids == "task":
                assert err.task_id and err.task_id in str(err)
            if row.billed != "any":
                assert err.billed is row.billed, f"billed={err.billed!r}"
            assert row.words in err.meaning
        else:
            assert out.shape[0] == 1
        assert billable == row.billable, f"{billable} billable requests, expected {row.billable}"
        if row.requests is not None:
            assert len(billable_endpoint(sb, row.vendor)) == row.requests
        assert seconds < row.timeout_s + 1, f"took {seconds:.2f} s (timeout_s={row.timeout_s})"
        if row.check:
            row.check(sb, err)
        assert sb.errors == []
        record["ok"] = "ok"


def test_zz_print_matrix(capsys):
    """Last in the file: print the rows that ran as a table (shows in plain `pytest -q` output)."""
    columns = ["vendor", "fault", "expected", "got", "billable", "seconds", "ok"]
    widths = {c: max([len(c)] + [len(str(r[c])) for r in MATRIX]) for c in columns}
    lines = ["", "fault matrix (billable = received/expected)",
             "  ".join(c.ljust(widths[c]) for c in columns),
             "  ".join("-" * widths[c] for c in columns)]
    lines += ["  ".join(str(r[c]).ljust(widths[c]) for c in columns) for r in MATRIX]
    with capsys.disabled():
        print("\n".join(lines))
    assert all(r["ok"] == "ok" for r in MATRIX)
