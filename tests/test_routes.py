"""The pack's credential routes over real HTTP (aiohttp's test server, no ComfyUI): status, save and
clear without secrets, keys bound to their own base URL, hostile stores, and the ComfyUI wiring.
The connection test and the geometry preview are in test_routes_connection.py / test_routes_geometry.py."""

import json
import os
import stat
import sys
import threading
import types

import pytest
from aiohttp import web
from fake_peer import FakePeer
from pack import module
from route_client import PAGE_HEADERS, PREFIX, drive

routes = module("nodes.routes")
store = module("nodes.core.credential_store")
conn = module("nodes.core.connection_check")
backends = module("nodes.core.backends")
credentials = module("nodes.core.credentials")
Sandbox = module("nodes.sandbox").Sandbox


@pytest.fixture(scope="module")
def sandbox():
    with Sandbox() as sb:
        yield sb


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
    sandbox.volc.add_session_token(STS_TOKEN)  # the sandbox checks STS tokens: this one it "issued"
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
