"""POST /cloud_outpaint/test: the free connection test of each vendor, against the sandbox."""

import json
from datetime import timedelta

import pytest
from pack import module
from route_client import PREFIX, drive

backends = module("nodes.core.backends")
conn = module("nodes.core.connection_check")
credentials = module("nodes.core.credentials")
Sandbox = module("nodes.sandbox").Sandbox
WRONG_SECRET = "wrong-secret-VALUE-do-not-show-0001"
WRONG_DS_KEY = "sk-wrongDASHSCOPEkey-do-not-show-0002"


@pytest.fixture(scope="module")
def sandbox():
    with Sandbox() as sb:
        yield sb


# ---- connection test ---------------------------------------------------------------------------

def _volc(sb, **kw):
    return credentials.VolcCredentials(**{"kind": "aksk", "source": "store", "base_url": sb.url,
                                          "access_key": sb.volc_access_key, "secret_key": sb.volc_secret_key, **kw})


def _ds(sb, key):
    return credentials.DashScopeCredentials("store", f"{sb.url}/api/v1", key)


def test_volc_connection_test_is_free_and_names_the_vendor_error(sandbox):
    billed = sandbox.billable_count()
    good = conn.check_volc(_volc(sandbox))
    assert good["ok"] and good["code"] == "50206" and good["source"] == "store" and good["request_id"]
    bad_secret = conn.check_volc(_volc(sandbox, secret_key=WRONG_SECRET))
    assert not bad_secret["ok"] and bad_secret["code"] == "SignatureDoesNotMatch"
    assert "secret key" in bad_secret["message"] and WRONG_SECRET not in json.dumps(bad_secret)
    bad_key = conn.check_volc(_volc(sandbox, access_key="AKLTunknownACCESSkey000000000000"))
    assert not bad_key["ok"] and bad_key["code"] == "InvalidAccessKey" and "access key" in bad_key["message"]
    bearer = conn.check_volc(_volc(sandbox, kind="bearer", base_url=f"{sandbox.url}/volcv/v1",
                                   api_key=sandbox.volc_api_key, access_key="", secret_key=""))
    assert bearer["ok"], bearer
    bad_bearer = conn.check_volc(_volc(sandbox, kind="bearer", base_url=f"{sandbox.url}/volcv/v1",
                                       api_key=WRONG_SECRET, access_key="", secret_key=""))
    assert not bad_bearer["ok"] and WRONG_SECRET not in json.dumps(bad_bearer)
    sandbox.inject("volc", "error", code=50400)
    disabled = conn.check_volc(_volc(sandbox))
    assert not disabled["ok"] and disabled["code"] == "50400" and "not enabled" in disabled["message"]
    sandbox.inject("volc", "error", times=3, code=50500, message=f"internal error for {sandbox.volc_secret_key}")
    echoed = conn.check_volc(_volc(sandbox))  # even a vendor echoing a secret does not get it shown
    # a service-level answer: the credentials work (issue 12), and the vendor's words are still redacted
    assert echoed["ok"] and echoed["code"] == "50500" and "***" in echoed["message"]
    assert sandbox.volc_secret_key not in json.dumps(echoed)
    sandbox.clock_offset = timedelta(hours=2)  # this computer's clock is 2 h off
    try:
        skewed = conn.check_volc(_volc(sandbox))
    finally:
        sandbox.clock_offset = timedelta(0)
    assert not skewed["ok"] and skewed["code"] == "InvalidTimestamp" and "clock" in skewed["message"]
    assert sandbox.billable_count() == billed == 0


def test_dashscope_connection_test_is_free_and_gives_the_region_hint(sandbox):
    billed = sandbox.billable_count()
    good = conn.check_dashscope(_ds(sandbox, sandbox.dashscope_api_key))
    assert good["ok"] and good["code"] is None and good["request_id"] and good["source"] == "store"
    for key in (WRONG_DS_KEY, sandbox.dashscope_intl_api_key):
        bad = conn.check_dashscope(_ds(sandbox, key))
        assert not bad["ok"] and bad["code"] == "InvalidApiKey" and "Beijing" in bad["message"]
        assert key not in json.dumps(bad)
    unreachable = conn.check_dashscope(credentials.DashScopeCredentials("store", "http://127.0.0.1:9/api/v1", "k"),
                                       timeout_s=2)
    assert not unreachable["ok"] and unreachable["code"] in ("ConnectionFailed", "Timeout")
    assert sandbox.billable_count() == billed == 0


def test_test_route_uses_the_store_for_cloud_and_the_shared_sandbox(tmp_path, home, sandbox):
    path = tmp_path / "s.json"
    shared = backends.shared_sandbox()
    shared_billed = shared.billable_count()

    async def scenario(r):
        answers = {}
        for vendor in ("volc", "dashscope"):
            answers["sandbox", vendor] = (await r.call("POST", f"{PREFIX}/test",
                                                       {"vendor": vendor, "backend": "sandbox"}))[1]
            answers["none", vendor] = (await r.call("POST", f"{PREFIX}/test", {"vendor": vendor}))[1]
        await r.call("POST", f"{PREFIX}/credentials", {"vendor": "volc", "access_key": sandbox.volc_access_key,
                                                       "secret_key": WRONG_SECRET, "base_url": sandbox.url})
        await r.call("POST", f"{PREFIX}/credentials", {"vendor": "dashscope", "api_key": WRONG_DS_KEY,
                                                       "base_url": f"{sandbox.url}/api/v1"})
        for vendor in ("volc", "dashscope"):
            answers["wrong", vendor] = (await r.call("POST", f"{PREFIX}/test", {"vendor": vendor}))[1]
        await r.call("POST", f"{PREFIX}/credentials", {"vendor": "volc", "secret_key": sandbox.volc_secret_key})
        await r.call("POST", f"{PREFIX}/credentials", {"vendor": "dashscope", "api_key": sandbox.dashscope_api_key})
        for vendor in ("volc", "dashscope"):
            answers["good", vendor] = (await r.call("POST", f"{PREFIX}/test",
                                                    {"vendor": vendor, "backend": "cloud"}))[1]
        return answers

    recorder, answers = drive(scenario, path, home=home)
    for vendor in ("volc", "dashscope"):
        assert answers["sandbox", vendor]["ok"] and answers["sandbox", vendor]["source"] == "sandbox"
        assert answers["none", vendor] == {**answers["none", vendor], "ok": False, "code": "NotConfigured",
                                           "source": None}
        assert answers["good", vendor]["ok"] and answers["good", vendor]["source"] == "store"
        assert set(answers["good", vendor]) == {"ok", "message", "code", "request_id", "source"}
    assert answers["wrong", "volc"]["code"] == "SignatureDoesNotMatch" and not answers["wrong", "volc"]["ok"]
    assert answers["wrong", "dashscope"]["code"] == "InvalidApiKey" and not answers["wrong", "dashscope"]["ok"]
    recorder.assert_never_shown(WRONG_SECRET, WRONG_DS_KEY, sandbox.volc_secret_key, sandbox.dashscope_api_key,
                                shared.volc_secret_key, shared.dashscope_api_key)
    assert sandbox.billable_count() == 0 and shared.billable_count() == shared_billed


