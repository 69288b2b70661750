"""The pack's HTTP routes over real HTTP (aiohttp's test server, no ComfyUI), the connection test
against the sandbox, and the geometry preview against direct geometry calls."""

import asyncio
import json
import os
import stat
import sys
import threading
import types
from datetime import timedelta

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from fake_peer import FakePeer
from pack import module

routes = module("nodes.routes")
store = module("nodes.core.credential_store")
conn = module("nodes.core.connection_check")
backends = module("nodes.core.backends")
credentials = module("nodes.core.credentials")
geometry = module("nodes.core.geometry")
preview = module("nodes.core.preview")
Sandbox = module("nodes.sandbox").Sandbox

PREFIX = "/cloud_outpaint"
WRONG_SECRET = "wrong-secret-VALUE-do-not-show-0001"
WRONG_DS_KEY = "sk-wrongDASHSCOPEkey-do-not-show-0002"
PAGE_HEADERS = {"X-Cloud-Outpaint": "1"}  # what web/js/credentials_dialog.js sends on every call


@pytest.fixture(scope="module")
def sandbox():
    with Sandbox() as sb:
        yield sb


@pytest.fixture
def home(tmp_path):
    path = tmp_path / "home"
    path.mkdir()
    return path


class Recorder:
    """Every answer, so a test can assert that no secret ever appeared in any of them."""

    def __init__(self, client: TestClient):
        self.client, self.texts = client, []

    async def call(self, method: str, path: str, body=None, raw: bytes | None = None,
                   content_type: str = "application/json", params=None, headers=None):
        """Sends what the pack's own page sends (web/js: the X-Cloud-Outpaint header) unless
        `headers` says otherwise."""
        kwargs = {"params": params, "headers": {**PAGE_HEADERS, **(headers or {})}}
        if body is not None:
            raw = json.dumps(body).encode()
        if raw is not None:
            kwargs.update(data=raw)
            kwargs["headers"]["Content-Type"] = content_type
        kwargs["headers"] = {k: v for k, v in kwargs["headers"].items() if v is not None}
        async with self.client.request(method, path, **kwargs) as response:
            text = await response.text()
            assert response.headers["Cache-Control"] == "no-store", path
            assert response.content_type == "application/json", path
            self.texts.append(text)
            return response.status, json.loads(text)

    def assert_never_shown(self, *secrets: str) -> None:
        assert self.texts
        for secret in secrets:
            for text in self.texts:
                assert secret not in text


def drive(scenario, store_path, env=None, home=None):
    """Run `scenario(recorder)` against the routes on a real loopback HTTP server."""

    async def main():
        app = web.Application()
        routes.add_routes(app, store_path=lambda: store_path, env=lambda: env if env is not None else {},
                          home=lambda: home)
        async with TestClient(TestServer(app)) as client:
            recorder = Recorder(client)
            result = await scenario(recorder)
            return recorder, result

    return asyncio.run(main())


# ---- credentials -------------------------------------------------------------------------------

def test_save_status_and_clear_never_return_a_secret(tmp_path, home, sandbox):
    path = tmp_path / "user" / "cloud_outpaint" / "credentials.json"
    volc_fields = {"access_key": "AKLTrouteACCESSkey00000000abcd", "secret_key": "route-secret-key-VALUE-1234",
                   "session_token": "route-session-token-VALUE-5678"}
    ds_fields = {"api_key": "sk-routeDASHSCOPEkey-00000000wxyz", "workspace": "ws-route",
                 "base_url": "https://dashscope.aliyuncs.com/api/v1/"}

    async def scenario(r):
        status, empty = await r.call("GET", f"{PREFIX}/credentials")
        assert status == 200 and set(empty) == {"volc", "dashscope"}
        assert empty["volc"]["configured"] is False and "VOLC_ACCESSKEY" in empty["volc"]["problem"]
        assert set(empty["volc"]) == {"configured", "source", "kind", "hint", "base_url", "problem", "stored_fields"}
        assert set(empty["dashscope"]) == {"configured", "source", "hint", "base_url", "workspace", "problem",
                                           "stored_fields"}

        status, saved = await r.call("POST", f"{PREFIX}/credentials", {"vendor": "volc", **volc_fields})
        assert status == 200 and saved["volc"]["configured"] and saved["volc"]["source"] == "store"
        assert (saved["volc"]["kind"], saved["volc"]["hint"]) == ("aksk", "…abcd")
        status, saved = await r.call("POST", f"{PREFIX}/credentials", {"vendor": "dashscope", **ds_fields})
        assert (saved["dashscope"]["hint"], saved["dashscope"]["workspace"], saved["dashscope"]["base_url"]) == \
            ("…wxyz", "ws-route", "https://dashscope.aliyuncs.com/api/v1")
        # a partial save keeps the secret key and token
        status, saved = await r.call("POST", f"{PREFIX}/credentials",
                                     {"vendor": "volc", "access_key": "AKLTsecondACCESSkey0000efgh", "secret_key": ""})
        assert saved["volc"]["hint"] == "…efgh"
        assert saved["volc"]["stored_fields"] == ["access_key", "secret_key", "session_token"]
        _, got = await r.call("GET", f"{PREFIX}/credentials")
        assert got == saved

        status, cleared = await r.call("POST", f"{PREFIX}/credentials/clear", {"vendor": "volc"})
        assert status == 200 and cleared["volc"]["configured"] is False and cleared["dashscope"]["configured"]
        # the connection test answer and the geometry answer are checked for secrets too
        await r.call("POST", f"{PREFIX}/test", {"vendor": "dashscope", "backend": "sandbox"})
        await r.call("GET", f"{PREFIX}/geometry", params={"node": "VolcOutpaint", "width": "100", "height": "80"})

    recorder, _ = drive(scenario, path, home=home)
    recorder.assert_never_shown(volc_fields["secret_key"], volc_fields["session_token"], ds_fields["api_key"],
                                sandbox.dashscope_api_key, backends.shared_sandbox().dashscope_api_key)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert json.loads(path.read_text()) == {"dashscope": {"api_key": ds_fields["api_key"], "workspace": "ws-route",
                                                          "base_url": "https://dashscope.aliyuncs.com/api/v1"}}


def test_env_shows_as_the_source_and_beats_the_store(tmp_path, home):
    path = tmp_path / "s.json"
    store.save(path, "dashscope", {"api_key": "sk-storedKEY-000000001111"})
    env = {"DASHSCOPE_API_KEY": "sk-environmentKEY-0000002222"}

    async def scenario(r):
        return (await r.call("GET", f"{PREFIX}/credentials"))[1]

    recorder, status = drive(scenario, path, env=env, home=home)
    assert (status["dashscope"]["source"], status["dashscope"]["hint"]) == ("env", "…2222")
    assert status["dashscope"]["stored_fields"] == ["api_key"]
    recorder.assert_never_shown("sk-storedKEY-000000001111", "sk-environmentKEY-0000002222")


@pytest.mark.parametrize("path, raw, content_type, status, match", [
    ("/credentials", b'{"vendor": "volc", "password": "pw-secret-value"}', "application/json", 400, "unknown field"),
    ("/credentials", b'{"vendor": "moon", "api_key": "x"}', "application/json", 400, "vendor"),
    ("/credentials", b'{"api_key": "x"}', "application/json", 400, "vendor"),
    ("/credentials", b'{"vendor": "volc", "secret_key": "a\\nb"}', "application/json", 400, "line break"),
    ("/credentials", b'{"vendor": "dashscope", "base_url": "file:///etc/passwd"}', "application/json", 400, "http"),
    ("/credentials", b'{"vendor": "volc"', "application/json", 400, "not valid JSON"),
    ("/credentials", b'["volc"]', "application/json", 400, "JSON object"),
    ("/credentials", b"vendor=volc&secret_key=x", "application/x-www-form-urlencoded", 415, "JSON"),
    ("/credentials", b'{"vendor": "volc", "secret_key": "x"}', "text/plain", 415, "JSON"),
    ("/credentials", json.dumps({"vendor": "volc", "secret_key": "x" * 17000}).encode(), "application/json", 413,
     "16 KB"),
    ("/credentials/clear", b'{"vendor": "moon"}', "application/json", 400, "vendor"),
    ("/credentials/clear", b'{"vendor": "volc", "all": true}', "application/json", 400, "unknown"),
    ("/test", b'{"vendor": "moon", "backend": "sandbox"}', "application/json", 400, "vendor"),
    ("/test", b'{"vendor": "volc", "backend": "moon"}', "application/json", 400, "backend"),
    ("/test", b'{"vendor": "volc", "secret_key": "x"}', "application/json", 400, "unknown"),
])
def test_bad_requests_are_refused_and_nothing_is_written(tmp_path, path, raw, content_type, status, match):
    store_path = tmp_path / "s.json"

    async def scenario(r):
        return await r.call("POST", PREFIX + path, raw=raw, content_type=content_type)

    recorder, (code, answer) = drive(scenario, store_path)
    assert code == status and set(answer) == {"error"} and match in answer["error"]
    assert not store_path.exists()
    recorder.assert_never_shown("pw-secret-value")


def test_a_chunked_body_over_the_limit_is_refused(tmp_path):
    async def body():
        for _ in range(20):
            yield b" " * 1024

    async def scenario(r):
        async with r.client.post(f"{PREFIX}/credentials", data=body(),
                                 headers={"Content-Type": "application/json", **PAGE_HEADERS}) as response:
            return response.status, response.headers["Cache-Control"]

    _, (status, cache) = drive(scenario, tmp_path / "s.json")
    assert (status, cache) == (413, "no-store")


# ---- a key goes only to the base URL of its own source (red-team F1, F1b) ----------------------

STS_TOKEN = "STS-SESSION-TOKEN-user-VALUE-3333"


def test_a_base_url_saved_without_its_key_is_refused_and_no_key_follows_it(tmp_path, home, sandbox):
    path = tmp_path / "user" / "cloud_outpaint" / "credentials.json"
    env = {"DASHSCOPE_API_KEY": sandbox.dashscope_api_key, "DASHSCOPE_HTTP_BASE_URL": f"{sandbox.url}/api/v1"}
    with FakePeer() as attacker:
        async def scenario(r):
            out = {}
            # the user saved AK/SK + an STS token for their (here: sandbox) host
            await r.call("POST", f"{PREFIX}/credentials", {"vendor": "volc", "access_key": sandbox.volc_access_key,
                                                           "secret_key": sandbox.volc_secret_key,
                                                           "session_token": STS_TOKEN, "base_url": sandbox.url})
            before = path.read_bytes()
            out["volc url only"] = await r.call("POST", f"{PREFIX}/credentials",
                                                {"vendor": "volc", "base_url": attacker.url})
            out["volc half key"] = await r.call("POST", f"{PREFIX}/credentials",
                                                {"vendor": "volc", "base_url": attacker.url, "access_key": "AKLTx0"})
            out["unchanged"] = path.read_bytes() == before
            out["volc test"] = await r.call("POST", f"{PREFIX}/test", {"vendor": "volc"})
            # a gateway key the same way
            await r.call("POST", f"{PREFIX}/credentials/clear", {"vendor": "volc"})
            await r.call("POST", f"{PREFIX}/credentials", {"vendor": "volc", "api_key": sandbox.volc_api_key,
                                                           "base_url": f"{sandbox.url}/volcv/v1"})
            out["gateway url only"] = await r.call("POST", f"{PREFIX}/credentials",
                                                   {"vendor": "volc", "base_url": attacker.url})
            out["gateway test"] = await r.call("POST", f"{PREFIX}/test", {"vendor": "volc"})
            # the DashScope key lives in the environment: a saved base URL never redirects it
            out["ds url only"] = await r.call("POST", f"{PREFIX}/credentials",
                                              {"vendor": "dashscope", "base_url": f"{attacker.url}/api/v1"})
            data = json.loads(path.read_text())
            data["dashscope"] = {"base_url": f"{attacker.url}/api/v1"}  # as an older version could have saved
            path.write_text(json.dumps(data))
            out["ds test"] = await r.call("POST", f"{PREFIX}/test", {"vendor": "dashscope"})
            out["ds status"] = await r.call("GET", f"{PREFIX}/credentials")
            # a new base URL with a complete key is the user's choice; the old secrets do not follow it
            out["with key"] = await r.call("POST", f"{PREFIX}/credentials", {
                "vendor": "volc", "base_url": sandbox.url, "access_key": sandbox.volc_access_key,
                "secret_key": sandbox.volc_secret_key})
            return out

        recorder, out = drive(scenario, path, env=env, home=home)
        for name in ("volc url only", "volc half key", "gateway url only", "ds url only"):
            status, body = out[name]
            assert status == 400 and "base_url" in body["error"] and "same save" in body["error"], (name, body)
        assert out["unchanged"]
        assert out["volc test"][1]["ok"] and out["gateway test"][1]["ok"], out
        assert out["ds test"][1]["ok"] and out["ds test"][1]["source"] == "env"
        assert out["ds status"][1]["dashscope"]["base_url"] == f"{sandbox.url}/api/v1"
        assert attacker.requests == []
    assert out["with key"][0] == 200 and out["with key"][1]["volc"]["kind"] == "aksk"
    assert json.loads(path.read_text())["volc"] == {"access_key": sandbox.volc_access_key,
                                                    "secret_key": sandbox.volc_secret_key, "base_url": sandbox.url}
    recorder.assert_never_shown(STS_TOKEN, sandbox.volc_secret_key, sandbox.volc_api_key, sandbox.dashscope_api_key)


def test_base_urls_are_https_or_loopback_and_a_password_in_one_is_never_echoed(tmp_path, home):
    password = "Gateway-PASSWORD-9876"
    path = tmp_path / "s.json"
    env = {}

    async def scenario(r):
        out = {}
        for url in ("http://dashscope.example/api/v1", f"https://gwuser:{password}@127.0.0.3:9/api/v1",
                    f"http://gwuser:{password}@127.0.0.1:9/api/v1", "https://good.example\\@evil.example/",
                    "https://x.example:99999/"):
            out[url] = await r.call("POST", f"{PREFIX}/credentials",
                                    {"vendor": "dashscope", "api_key": "sk-some-key-0000001111", "base_url": url})
        for url in ("http://127.0.0.1:9/api/v1", "http://[::1]:9/api/v1", "http://localhost:9/api/v1",
                    "https://gw.example:8443/api/v1"):
            out[url] = await r.call("POST", f"{PREFIX}/credentials",
                                    {"vendor": "dashscope", "api_key": "sk-some-key-0000001111", "base_url": url})
        path.write_text(json.dumps({"dashscope": {"api_key": "sk-some-key-0000001111",
                                                  "base_url": f"https://gwuser:{password}@gw.example/api/v1"}}))
        out["stored"] = await r.call("GET", f"{PREFIX}/credentials")
        env.update(DASHSCOPE_API_KEY="sk-env-key-000000002222",
                   DASHSCOPE_HTTP_BASE_URL=f"https://gwuser:{password}@127.0.0.3:9/api/v1")
        out["env"] = await r.call("GET", f"{PREFIX}/credentials")
        out["env test"] = await r.call("POST", f"{PREFIX}/test", {"vendor": "dashscope"})
        return out

    recorder, out = drive(scenario, path, env=env, home=home)
    assert out["http://dashscope.example/api/v1"][0] == 400 and "https://" in out["http://dashscope.example/api/v1"][1][
        "error"]
    for url in (f"https://gwuser:{password}@127.0.0.3:9/api/v1", f"http://gwuser:{password}@127.0.0.1:9/api/v1"):
        assert out[url][0] == 400 and "user:password@" in out[url][1]["error"]
    assert out["https://good.example\\@evil.example/"][0] == 400 and out["https://x.example:99999/"][0] == 400
    for url in ("http://127.0.0.1:9/api/v1", "http://[::1]:9/api/v1", "http://localhost:9/api/v1",
                "https://gw.example:8443/api/v1"):
        assert out[url][0] == 200 and out[url][1]["dashscope"]["base_url"] == url
    stored = out["stored"][1]["dashscope"]
    assert not stored["configured"] and stored["base_url"] is None and "dashscope section" in stored["problem"]
    assert "user:password@" in stored["problem"]
    env_status = out["env"][1]["dashscope"]
    assert not env_status["configured"] and "DASHSCOPE_HTTP_BASE_URL" in env_status["problem"]
    assert out["env test"][1]["code"] == "NotConfigured" and "DASHSCOPE_HTTP_BASE_URL" in out["env test"][1]["message"]
    recorder.assert_never_shown(password)
    # and the transport names hostname[:port] only, whatever URL it is handed
    answer = conn.check_dashscope(credentials.DashScopeCredentials("t", f"http://gwuser:{password}@127.0.0.1:9/api/v1",
                                                                   "sk-k"), timeout_s=2)
    assert not answer["ok"] and "127.0.0.1:9" in answer["message"] and password not in json.dumps(answer)


# ---- a hostile or damaged store answers with the problem, never a 500 or a hang (F10, F11) ----------

def test_wrong_types_in_the_store_name_the_section_and_the_other_vendor_still_works(tmp_path, home, sandbox):
    path = tmp_path / "s.json"
    path.write_text(json.dumps({"volc": {"access_key": 12345678901234, "secret_key": ["x"]},
                                "dashscope": {"api_key": sandbox.dashscope_api_key, "base_url": f"{sandbox.url}/api/v1"}}))

    async def scenario(r):
        out = {"status": await r.call("GET", f"{PREFIX}/credentials"),
               "volc test": await r.call("POST", f"{PREFIX}/test", {"vendor": "volc"}),
               "ds test": await r.call("POST", f"{PREFIX}/test", {"vendor": "dashscope"})}
        path.write_text(json.dumps({"dashscope": {"api_key": "sk-ok-000000000000", "base_url": 5}}))
        out["base 5"] = await r.call("GET", f"{PREFIX}/credentials")
        return out

    _, out = drive(scenario, path, home=home)
    status, body = out["status"]
    assert status == 200 and not body["volc"]["configured"]
    assert "volc section" in body["volc"]["problem"] and "access_key must be a string" in body["volc"]["problem"]
    assert body["dashscope"]["configured"] and body["dashscope"]["source"] == "store"
    assert out["volc test"][0] == 200 and out["volc test"][1]["code"] == "NotConfigured"
    assert "volc section" in out["volc test"][1]["message"]
    assert out["ds test"][1]["ok"]
    assert out["base 5"][0] == 200 and "base_url must be a string" in out["base 5"][1]["dashscope"]["problem"]
    # a node run reads the same way: a ConfigError naming the section, never a TypeError / AttributeError
    with pytest.raises(module("nodes.core.errors").ConfigError, match="dashscope section"):
        backends.dashscope_credentials("cloud", {}, path)


def _drive_with_deadline(scenario, path, seconds=20):
    """drive() in a thread: a store read that blocks (a FIFO before the fix) fails the test instead
    of hanging the suite."""
    box = {}
    thread = threading.Thread(target=lambda: box.setdefault("out", drive(scenario, path)[1]), daemon=True)
    thread.start()
    thread.join(seconds)
    return thread.is_alive(), box.get("out")


@pytest.mark.parametrize("kind", ["fifo", "symlink", "huge"])
def test_a_store_that_is_a_fifo_a_symlink_or_huge_is_refused_at_once(tmp_path, kind):
    path = tmp_path / "cloud_outpaint" / "credentials.json"
    path.parent.mkdir()
    decoy = tmp_path / "someone-elses-file.json"
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "symlink":
        decoy.write_text(json.dumps({"dashscope": {"api_key": "sk-decoy-key-0000000000"}}))
        decoy.chmod(0o644)
        os.symlink(decoy, path)
    else:
        with open(path, "wb") as f:  # 400 MB, sparse: nothing is written to the disk
            f.truncate(400 * 2**20)

    async def scenario(r):
        got = {"status": await r.call("GET", f"{PREFIX}/credentials")}
        got["save"] = await r.call("POST", f"{PREFIX}/credentials", {"vendor": "volc", "api_key": "sk-gw-000000000000",
                                                                     "base_url": "https://gw.example"})
        return got

    stuck, out = _drive_with_deadline(scenario, path)
    if stuck:
        fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)  # let the blocked reader go
        os.write(fd, b"{}")
        os.close(fd)
    assert not stuck, "the status call blocked on the store"
    status, body = out["status"]
    expected = {"fifo": "is not a regular file", "symlink": "is a symbolic link", "huge": "is over 64 KB"}[kind]
    assert status == 200 and expected in body["volc"]["problem"] and expected in body["dashscope"]["problem"]
    # saving replaces whatever was at the path by an owner-only file, never writing through it
    assert out["save"][0] == 200 and out["save"][1]["volc"]["configured"]
    assert stat.S_ISREG(os.lstat(path).st_mode) and stat.S_IMODE(os.lstat(path).st_mode) == 0o600
    if kind == "symlink":
        assert stat.S_IMODE(decoy.stat().st_mode) == 0o644 and "sk-decoy" in decoy.read_text()


def test_a_lone_surrogate_in_a_credential_field_is_a_400_naming_the_field(tmp_path):
    path = tmp_path / "s.json"
    cases = [("volc", "access_key"), ("volc", "secret_key"), ("volc", "session_token"), ("volc", "api_key"),
             ("volc", "base_url"), ("dashscope", "api_key"), ("dashscope", "workspace")]

    async def scenario(r):
        return [await r.call("POST", f"{PREFIX}/credentials",
                             raw=f'{{"vendor": "{vendor}", "{name}": "AKLT\\ud800abcdefgh"}}'.encode())
                for vendor, name in cases]

    _, answers = drive(scenario, path)
    for (vendor, name), (status, body) in zip(cases, answers):
        assert status == 400 and f"{vendor} {name}" in body["error"] and "surrogate" in body["error"], body
    assert not path.exists()


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
    assert not echoed["ok"] and echoed["code"] == "50500" and "***" in echoed["message"]
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


# ---- geometry preview ----------------------------------------------------------------------------

def _geometry(queries):
    async def scenario(r):
        out = []
        for query in queries:
            status, answer = await r.call("GET", f"{PREFIX}/geometry", params={k: str(v) for k, v in query.items()})
            assert status == 200
            out.append(answer)
        return out

    return drive(scenario, None)[1]


def _expected(placement, output=None):
    output = output or (placement.canvas_width, placement.canvas_height)
    return {**placement.as_dict(), "output_width": output[0], "output_height": output[1], "error": None}


def test_geometry_of_the_canvas_builder_equals_plan_expansion():
    cases = [
        ({"expand_mode": "pixels", "left": 10, "top": 0, "right": 30, "bottom": 5}, {}),
        ({"expand_mode": "fraction", "fraction_left": 0.25, "fraction_right": 0, "fraction_top": 0.1,
          "fraction_bottom": 0.5, "multiple_of": 64}, {}),
        ({"expand_mode": "aspect_ratio", "aspect_ratio": "16:9", "anchor": "top-left"}, {}),
        ({"expand_mode": "target_size", "target_width": 1000, "target_height": 700, "anchor": "bottom"}, {}),
        ({"expand_mode": "scale", "x_scale": 1.75}, {"y_scale": 1.5}),  # an absent widget takes its default
    ]
    queries = [{"node": "MaskCanvasBuilder", "width": 640, "height": 480, **given} for given, _ in cases]
    answers = _geometry(queries)
    for (given, defaults), answer in zip(cases, answers):
        expected = geometry.plan_expansion(640, 480, given["expand_mode"],
                                           **{k: v for k, v in {**given, **defaults}.items() if k != "expand_mode"})
        assert answer == _expected(expected), given


def test_geometry_of_volc_ratio_and_canvas_mode():
    answers = _geometry([
        {"node": "VolcOutpaint", "width": 1600, "height": 1200, "top": 0.2, "bottom": 0, "left": 0.5, "right": 0.1,
         "max_width": 1920, "max_height": 1920},
        {"node": "VolcOutpaint", "width": 400, "height": 300},
        {"node": "VolcOutpaint", "width": 3000, "height": 1000, "max_width": 1024, "max_height": 1024,
         "canvas_mode": 1},
    ])
    placement, output = geometry.volc_ratio_output(1600, 1200, 0.5, 0.2, 0.1, 0, 1920, 1920)
    assert output != (placement.canvas_width, placement.canvas_height)  # the case exercises the fit
    assert answers[0] == _expected(geometry.scale_placement(placement, *output), output)
    placement, output = geometry.volc_ratio_output(400, 300, 0.1, 0.1, 0.1, 0.1, 1920, 1920)
    assert answers[1] == _expected(geometry.scale_placement(placement, *output), output)
    assert answers[2] == {"canvas_width": 1024, "canvas_height": 341, "x": 0, "y": 0, "width": 1024, "height": 341,
                          "output_width": 1024, "output_height": 341, "error": None}


def test_geometry_of_dashscope_modes():
    cases = [
        {"mode": "scale", "x_scale": 2.0, "y_scale": 1.25},
        {"mode": "output_ratio", "output_ratio": "9:16"},
        {"mode": "offsets", "left_offset": 100, "right_offset": 0, "top_offset": 40, "bottom_offset": 300},
        {"mode": "rotate_only", "angle": 30},
        {"mode": "scale", "angle": 15, "x_scale": 1.5, "y_scale": 1.5},
    ]
    answers = _geometry([{"node": "DashScopeOutpaint", "width": 800, "height": 600, **c} for c in cases])
    names = {"left_offset": "left", "right_offset": "right", "top_offset": "top", "bottom_offset": "bottom"}
    for case, answer in zip(cases, answers):
        args = {names.get(k, k): v for k, v in case.items() if k != "mode"}
        assert answer == _expected(geometry.dashscope_plan(800, 600, case["mode"], **args)), case
    rotated = answers[3]
    assert (rotated["width"], rotated["height"]) == geometry.rotated_size(800, 600, 30)  # the bounding box


@pytest.mark.parametrize("query, match", [
    ({"node": "MaskCanvasBuilder", "width": 64, "height": 64, "expand_mode": "aspect_ratio",
      "aspect_ratio": "wide"}, "aspect ratio"),
    ({"node": "MaskCanvasBuilder", "width": 64, "height": 64, "expand_mode": "target_size",
      "target_width": 32}, "smaller than the image"),
    ({"node": "MaskCanvasBuilder", "width": 64, "height": 64, "left": "ten"}, "not a number"),
    ({"node": "MaskCanvasBuilder", "width": 64, "height": 64, "left": 1.5}, "whole number"),
    ({"node": "MaskCanvasBuilder", "width": 0, "height": 64}, "1 to"),
    ({"node": "MaskCanvasBuilder", "height": 64}, "width"),
    ({"node": "VolcOutpaint", "width": 64, "height": 64, "top": 0, "bottom": 0, "left": 0, "right": 0},
     "nothing to outpaint"),
    ({"node": "VolcOutpaint", "width": 64, "height": 64, "top": 1.5}, "0.0 to 1.0"),
    ({"node": "DashScopeOutpaint", "width": 800, "height": 600, "angle": 90}, "quarter turns"),
    ({"node": "DashScopeOutpaint", "width": 800, "height": 600, "x_scale": 4}, "1.0 to 3.0"),
    ({"node": "DashScopeOutpaint", "width": 4000, "height": 100}, "8:1"),
    ({"node": "KSampler", "width": 64, "height": 64}, "no geometry preview"),
    ({"width": 64, "height": 64}, "no geometry preview"),
])
def test_bad_geometry_values_answer_200_with_the_error(query, match):
    [answer] = _geometry([query])
    assert set(answer) == set(preview.KEYS) | {"error"}
    assert match in answer["error"] and all(answer[k] is None for k in preview.KEYS)


def test_preview_defaults_are_the_nodes_widget_defaults():
    for node_id, node_module in (("MaskCanvasBuilder", "canvas_node"), ("VolcOutpaint", "volc_node"),
                                 ("DashScopeOutpaint", "dashscope_node")):
        schema = getattr(module(f"nodes.{node_module}"), node_id).define_schema()
        defaults = {i.id: i.default for i in schema.inputs if hasattr(i, "default")}
        for name, (kind, default) in preview.WIDGETS[node_id].items():
            if name == "canvas_mode":  # not a widget: whether a mask is connected
                continue
            assert defaults[name] == default and isinstance(defaults[name], kind), (node_id, name)


# ---- ComfyUI wiring ------------------------------------------------------------------------------

def test_install_registers_on_the_prompt_server_and_moves_the_store(tmp_path, monkeypatch):
    table = web.RouteTableDef()
    server = types.ModuleType("server")
    server.PromptServer = type("PromptServer", (), {"instance": types.SimpleNamespace(routes=table)})
    folder_paths = types.ModuleType("folder_paths")
    folder_paths.get_user_directory = lambda: str(tmp_path / "user")
    monkeypatch.setitem(sys.modules, "server", server)
    monkeypatch.setitem(sys.modules, "folder_paths", folder_paths)
    monkeypatch.setattr(routes, "_installed", False)
    monkeypatch.setattr(store, "_default_path", None)
    assert routes.install()
    assert store.default_path() == tmp_path / "user" / "cloud_outpaint" / "credentials.json"
    registered = sorted((r.method, r.path) for r in table)
    assert registered == sorted((m, p) for m, p, _ in routes.build_routes())
    assert all(path.startswith("/cloud_outpaint/") for _, path in registered)


def test_install_without_comfyui_does_nothing(monkeypatch):
    monkeypatch.setitem(sys.modules, "server", None)  # import server -> ImportError
    monkeypatch.setitem(sys.modules, "folder_paths", None)
    monkeypatch.setattr(routes, "_installed", False)
    monkeypatch.setattr(store, "_default_path", None)
    assert routes.install() is False and store._default_path is None


@pytest.mark.comfyui
def test_routes_inside_a_real_comfyui(tmp_path, sandbox):
    from comfy_server import ComfyServer, comfyui_dir

    if comfyui_dir() is None:
        pytest.skip("COMFYUI_DIR is not set: the real-ComfyUI tests need a ComfyUI checkout")
    blank = {name: "" for name in ("VOLC_ACCESSKEY", "VOLC_SECRETKEY", "VOLC_API_KEY", "VOLC_BASE_URL",
                                   "DASHSCOPE_API_KEY", "DASHSCOPE_HTTP_BASE_URL", store.ENV_VAR)}
    server = ComfyServer(tmp_path, env=blank).start()
    try:
        status, saved = server.post(f"/api{PREFIX}/credentials", {"vendor": "dashscope",
                                                                  "api_key": sandbox.dashscope_api_key,
                                                                  "base_url": f"{sandbox.url}/api/v1"})
        assert status == 200 and saved["dashscope"]["source"] == "store", saved
        path = tmp_path / "user" / "cloud_outpaint" / "credentials.json"  # in ComfyUI's --user-directory
        assert stat.S_IMODE(path.stat().st_mode) == 0o600 and stat.S_IMODE(path.parent.stat().st_mode) == 0o700
        assert server.get(f"{PREFIX}/credentials") == saved
        status, result = server.post(f"{PREFIX}/test", {"vendor": "dashscope", "backend": "cloud"})
        assert status == 200 and result["ok"] and result["source"] == "store", result
        status, result = server.post(f"{PREFIX}/test", {"vendor": "volc"})
        assert (status, result["ok"], result["code"]) == (200, False, "NotConfigured")
        answer = server.get(f"{PREFIX}/geometry?node=MaskCanvasBuilder&width=64&height=48&right=16")
        assert (answer["canvas_width"], answer["canvas_height"], answer["error"]) == (80, 48, None)
        assert sandbox.dashscope_api_key not in server.log_text()
    finally:
        server.stop()
