"""Secrets never leak: with every logger at DEBUG (the pack's, urllib3's, requests'), successful and
failing runs of both vendors and the connection test must not put an access key, secret key or
API key into a log record, an exception's str/repr, an info JSON or a connection-test answer.

Notes:
- urllib3's DEBUG logging writes only the connection line and the request line
  ('"POST /?Action=CVProcess&Version=2022-08-31 HTTP/1.1" 200 ...'): method, path and query, never
  headers; neither vendor puts a secret in the query (Volcengine signs in the Authorization header,
  DashScope sends `Authorization: Bearer`). The test checks this instead of assuming it.
- Credential objects hide their secrets from repr (dataclass field(repr=False)); checked too. The
  Volcengine access key is an identifier, not a secret: repr shows it, and the gateway's
  InvalidAccessKey message echoes it back ("The access key 'AKLT…' does not exist."), which reaches
  the error text on purpose (it tells the user which key was refused; connection_check does not
  scrub it either). It must still stay out of log records and info JSON.
- credential_store file modes (0o600 file in a 0o700 dir) are covered by tests/test_credential_store.py.
"""

from __future__ import annotations

import json
import logging

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
connection_check = module("nodes.core.connection_check")

FAST = FAST_DASHSCOPE
WRONG_SK = "wrongSecretKey0123456789abcdefXYZ"
UNKNOWN_AK = "AKLTunknownAccessKey0123456789"
UNKNOWN_AK_SK = "unknownAkSecret0123456789abcdef"
WRONG_VOLC_API_KEY = "volc-wrong-api-key-0123456789abcdef"
WRONG_DS_KEY = "sk-wrongdashscopekey0123456789abcd"


@pytest.fixture
def debug_logs(caplog):
    """Every record of every logger at DEBUG, including urllib3's connection/request lines."""
    loggers = [logging.getLogger(name) for name in ("", "urllib3", "requests", module("nodes").__name__)]
    before = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.DEBUG)
    caplog.set_level(logging.DEBUG)
    yield caplog
    for lg, level in zip(loggers, before):
        lg.setLevel(level)


def texts_of_records(records) -> list[str]:
    out = []
    for r in records:
        out += [r.getMessage(), repr(r.args), str(r.msg)]
        if r.exc_info and r.exc_info[1] is not None:
            out += [str(r.exc_info[1]), repr(r.exc_info[1])]
    return out


def exception_texts(exc: BaseException) -> list[str]:
    out, seen = [], set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        out += [str(exc), repr(exc), repr(exc.args)]
        if isinstance(exc, errors.VendorError):
            out += [exc.describe(), exc.message or "", exc.meaning]
        exc = getattr(exc, "cause", None) or exc.__cause__ or exc.__context__
    return out


def assert_clean(texts: list[str], secrets: list[str], what: str) -> None:
    for secret in secrets:
        assert len(secret) >= 8
        leaks = [t for t in texts if secret in t]
        assert not leaks, f"{what}: secret {secret[:4]}… appears in {leaks[0][:300]!r}"


def photo(h, w):
    return torch.full((1, h, w, 3), 0.4)


def volc_params():
    return volc.VolcParams(top=0.25, bottom=0.25, left=0.25, right=0.25)


def test_runs_and_connection_tests_leak_no_secret(debug_logs):
    texts: list[str] = []  # everything a user or a log could see, besides the log records
    info_json: list[str] = []

    def attempt(fn, *args, expect_error: bool):
        try:
            result = fn(*args)
        except Exception as exc:  # noqa: BLE001
            assert expect_error, f"unexpected error: {exc}"
            texts.extend(exception_texts(exc))
            return exc
        assert not expect_error, "expected an error"
        return result

    with Sandbox(dashscope_pending_s=0.05, dashscope_running_s=0.1) as sb:
        sb.add_volc_key(UNKNOWN_AK + "x", "unused")  # a second key pair the sandbox knows (not used by us)
        good_aksk = sb.volc_credentials()
        good_bearer = sb.volc_bearer_credentials()
        good_ds = sb.dashscope_credentials()
        bad_cases = [
            credentials.VolcCredentials("aksk", "test", sb.url, sb.volc_access_key, WRONG_SK),
            credentials.VolcCredentials("aksk", "test", sb.url, UNKNOWN_AK, UNKNOWN_AK_SK),
            credentials.VolcCredentials("bearer", "test", sb.url + "/volcv/v1", api_key=WRONG_VOLC_API_KEY),
        ]
        secrets = [sb.volc_secret_key, sb.volc_api_key, sb.dashscope_api_key, sb.dashscope_intl_api_key, WRONG_SK,
                   UNKNOWN_AK_SK, WRONG_VOLC_API_KEY, WRONG_DS_KEY]
        access_keys = [sb.volc_access_key, UNKNOWN_AK]  # identifiers: see the module docstring
        # the access key is an identifier (it travels in clear in the Authorization scope) and repr
        # shows it on purpose; everything secret must stay out of repr
        reprs = [repr(c) for c in (good_aksk, good_bearer, good_ds, *bad_cases)]
        assert_clean(reprs, secrets, "credential repr")

        def volc_once(creds, **opts):
            return volc_run.run(photo(48, 64), None, volc_params(), creds, volc_run.VolcOptions(timeout_s=5, **opts))

        def ds_once(creds):
            return ds_run.run(photo(512, 512), ds.DashScopeParams(), creds, ds_run.DashScopeOptions(timeout_s=5), FAST)

        # successes: the info JSON is part of what users see (and share)
        for result in (attempt(volc_once, good_aksk, expect_error=False),
                       attempt(volc_once, good_bearer, expect_error=False),
                       attempt(ds_once, good_ds, expect_error=False)):
            texts.append(result[2].to_json())
            info_json.append(result[2].to_json())
        # wrong / unknown credentials
        for bad in bad_cases:
            err = attempt(volc_once, bad, expect_error=True)
            assert isinstance(err, errors.ItemError)
        for key in (WRONG_DS_KEY, sb.dashscope_intl_api_key):
            err = attempt(ds_once, credentials.DashScopeCredentials("test", f"{sb.url}/api/v1", key),
                          expect_error=True)
            assert err.cause.code == "InvalidApiKey"
        # vendor errors that echo text back (the vendor's message ends up in VendorError.message)
        sb.inject("volc", "error", code=50411, message="Risk control: input image rejected (echo: outpaint request)")
        attempt(volc_once, good_aksk, expect_error=True)
        sb.inject("dashscope", "task_failed", code="InvalidParameter.ImageContent", message="echo: the image text")
        attempt(ds_once, good_ds, expect_error=True)
        sb.inject("volc", "throttle", retry_after="0.05")
        attempt(volc_once, good_aksk, expect_error=False)
        # a read timeout and a lost connection (network errors carry urllib3's own text)
        sb.inject("volc", "slow", seconds=1.5)
        attempt(volc_run.run, photo(48, 64), None, volc_params(), good_aksk, volc_run.VolcOptions(timeout_s=5),
                volc.VolcConfig(read_timeout=0.5), expect_error=True)
        sb.inject("dashscope", "drop_after")
        attempt(ds_once, good_ds, expect_error=True)

        # the connection test (no CLI): good and bad credentials of both vendors
        answers = [connection_check.check_volc(c, timeout_s=5) for c in (good_aksk, good_bearer, *bad_cases)]
        answers += [connection_check.check_dashscope(credentials.DashScopeCredentials("test", f"{sb.url}/api/v1", k),
                                                    timeout_s=5)
                    for k in (sb.dashscope_api_key, WRONG_DS_KEY, sb.dashscope_intl_api_key)]
        assert [a["ok"] for a in answers] == [True, True, False, False, False, True, False, False]
        texts += [json.dumps(a, ensure_ascii=False) for a in answers]
        assert sb.errors == []

    records = debug_logs.records
    urllib3_lines = [r.getMessage() for r in records if r.name.startswith("urllib3")]
    assert any("CVProcess" in line for line in urllib3_lines), "urllib3 DEBUG logging was not captured"
    assert not any("Authorization" in line or "Bearer" in line for line in urllib3_lines)
    assert_clean(texts_of_records(records), secrets + access_keys, "log records")
    assert_clean(info_json, secrets + access_keys, "info JSON")
    assert_clean(texts, secrets, "exceptions / info JSON / connection-test answers")


def test_credentials_repr_hides_secrets():
    v = credentials.VolcCredentials("aksk", "env", "https://visual.volcengineapi.com", "AKLTpublicpart1234",
                                    "SecretKeyValue0123456789", session_token="StsSessionToken0123456789")
    b = credentials.VolcCredentials("bearer", "env", "https://x.example/volcv/v1", api_key="BearerApiKey0123456789")
    d = credentials.DashScopeCredentials("env", "https://dashscope.aliyuncs.com/api/v1", "sk-dashscope0123456789")
    for secret, c in (("SecretKeyValue0123456789", v), ("StsSessionToken0123456789", v),
                      ("BearerApiKey0123456789", b), ("sk-dashscope0123456789", d)):
        assert secret not in repr(c) and secret not in str(c)


def test_a_secret_echoed_by_the_vendor_is_blanked_in_run_errors():
    with Sandbox() as sb:
        sb.inject("volc", "error", code=50411, message=f"echo {sb.volc_secret_key}")
        c = sb.volc_credentials()
        with pytest.raises(errors.ItemError) as e:
            volc_run.run(torch.rand((1, 16, 16, 3)), None, volc.VolcParams(), c, volc_run.VolcOptions(timeout_s=10))
        assert sb.volc_secret_key not in str(e.value) and "***" in str(e.value)


# ---- a secret is blanked before a vendor text is cut, and every vendor text is capped (F7, F8) ------

redaction = module("nodes.core.redaction")
ECHOED_KEY = "sk-9f8e7d6c5b4a39281706f5e4d3c2b1a0ZZZZ"


def pieces(secret: str, text: str, n: int = 8) -> list[str]:
    """Every run of n characters of the secret that appears in the text."""
    return [secret[i:i + n] for i in range(len(secret) - n + 1) if secret[i:i + n] in text]


def echoing_proxy(cut_at: int):
    """A proxy's 401 page that echoes the request's Authorization header, placed so that a cut of
    the page at `cut_at` characters falls in the middle of the key."""
    def reply(method, path, headers):
        auth = headers.get("Authorization", "")
        head = "<html><body><h1>401 Unauthorized</h1><pre>\nAuthorization: "
        pad = "." * max(0, cut_at - len(head) - len("Bearer ") - 25)
        page = head.replace("<pre>", "<pre>" + pad) + auth + "\n</pre></body></html>"
        return 401, "text/html", page.encode()
    return reply


def test_a_key_echoed_by_a_proxy_page_is_blanked_before_the_page_is_cut():
    from fake_peer import FakePeer

    with FakePeer(echoing_proxy(cut_at=200)) as proxy:
        ds_creds = credentials.DashScopeCredentials("env", f"{proxy.url}/api/v1", ECHOED_KEY)
        with pytest.raises(errors.ItemError) as err:
            ds_run.run(photo(512, 512), ds.DashScopeParams(), ds_creds, ds_run.DashScopeOptions(timeout_s=5), FAST)
        node_error = str(err.value)
        ds_test = connection_check.check_dashscope(ds_creds, timeout_s=5)
        volc_test = connection_check.check_volc(
            credentials.VolcCredentials("bearer", "env", proxy.url, api_key=ECHOED_KEY), timeout_s=5)
        assert proxy.requests and all(h["Authorization"] == f"Bearer {ECHOED_KEY}" for _, _, h in proxy.requests)
    assert "401" in node_error and "***" in node_error
    for text in (node_error, ds_test["message"], volc_test["message"]):
        assert pieces(ECHOED_KEY, text) == [], text


def test_redact_blanks_pieces_of_secrets_and_header_values():
    blank = redaction.redact_text
    assert blank(f"key {ECHOED_KEY[:12]}", [ECHOED_KEY]) == "key ***"  # a cut key: its piece goes too
    assert blank(f"a{ECHOED_KEY[5:20]}b", [ECHOED_KEY]) == "a***b"
    assert blank(f"x {ECHOED_KEY[:7]}", [ECHOED_KEY]) == f"x {ECHOED_KEY[:7]}"  # under 8 characters: kept
    assert blank("Authorization: Bearer someone-elses-token, next", []) == "Authorization: Bearer ***, next"
    assert blank("X-Security-Token: STS.abc/def== rest", []) == "X-Security-Token: *** rest"
    assert blank("short secret abcd here", ["abcd"]) == "short secret *** here"
    key = "sk-ENV-dashscope-key-1234"  # the pack's own texts blank whole secrets only: hosts stay readable
    assert blank(f"dashscope.aliyuncs.com {key}", [key], pieces=False) == "dashscope.aliyuncs.com ***"
    assert blank("dashscope.aliyuncs.com", [key]) == "***.aliyuncs.com"  # a vendor text: pieces go
    assert blank(None, ["abcdefgh"]) == "" and blank(12345678, []) == "12345678"
    assert len(blank("y" * 10**7, [])) == redaction.SCANNED_CHARS
    assert redaction.cap_text("z" * 1000) == "z" * 299 + "…" and redaction.cap_text("ok") == "ok"


def test_a_huge_vendor_message_is_capped_in_node_errors_and_connection_tests():
    huge = "vendor text " * (5 * 2**20 // 12)  # 5 MB
    with Sandbox(dashscope_pending_s=0.05, dashscope_running_s=0.1) as sb:
        volc_creds = sb.volc_credentials()
        ds_creds = sb.dashscope_credentials()
        sb.inject("volc", "error", code=50411, message=huge)
        with pytest.raises(errors.ItemError) as volc_err:
            volc_run.run(photo(48, 64), None, volc_params(), volc_creds, volc_run.VolcOptions(timeout_s=20))
        sb.inject("dashscope", "task_failed", code="InvalidParameter.ImageContent", message=huge)
        with pytest.raises(errors.ItemError) as ds_err:
            ds_run.run(photo(512, 512), ds.DashScopeParams(), ds_creds, ds_run.DashScopeOptions(timeout_s=20), FAST)
        sb.inject("volc", "error", times=3, code=50500, message=huge)
        volc_test = connection_check.check_volc(volc_creds, timeout_s=10)
    for text in (str(volc_err.value), str(ds_err.value), volc_test["message"]):
        assert "vendor text" in text and len(text) < 1000, len(text)
    assert "50411" in str(volc_err.value) and "InvalidParameter.ImageContent" in str(ds_err.value)
