"""Who may call the pack's routes (red-team F1): a DNS-rebinding page, a page on another site and a
request without the pack's header are refused over real HTTP before anything is read, written or
sent; the pack's own page (the JS in web/js, run in node) and LAN users of `--listen 0.0.0.0`
still work."""

import asyncio
import json
import pathlib
import shutil
import socket
import subprocess

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from fake_peer import FakePeer
from pack import module

routes = module("nodes.routes")
guard = module("nodes.route_guard")
store = module("nodes.core.credential_store")

PREFIX = "/cloud_outpaint"
ENV_KEY = "sk-ENVIRONMENT-dashscope-key-SECRET-1234"
PACK = {"X-Cloud-Outpaint": "1", "Content-Type": "application/json"}
ROOT = pathlib.Path(__file__).resolve().parent.parent


def app_for(store_path, env=None, listen=()):
    app = web.Application()
    routes.add_routes(app, store_path=lambda: store_path, env=lambda: env or {}, home=lambda: store_path.parent,
                      listen=lambda: listen)
    return app


def drive(scenario, app):
    async def main():
        async with TestClient(TestServer(app, host="127.0.0.1")) as client:
            return await scenario(client)

    return asyncio.run(main())


async def answer(response):
    async with response:
        return response.status, await response.json()


def test_a_rebinding_page_is_refused_on_every_route_and_nothing_reaches_the_attacker(tmp_path):
    """The attacker's page: Host = Origin = its own name, which now resolves to 127.0.0.1."""
    path = tmp_path / "cloud_outpaint" / "credentials.json"
    with FakePeer() as attacker, FakePeer() as vendor:
        env = {"DASHSCOPE_API_KEY": ENV_KEY, "DASHSCOPE_HTTP_BASE_URL": f"{vendor.url}/api/v1"}

        async def scenario(client):
            port = client.server.port
            rebind = {**PACK, "Host": f"attacker.example:{port}", "Origin": f"http://attacker.example:{port}"}
            out = {"get": await answer(await client.get(f"{PREFIX}/credentials", headers=rebind)),
                   "geometry": await answer(await client.get(f"{PREFIX}/geometry?node=VolcOutpaint&width=9&height=9",
                                                             headers=rebind))}
            for route, body in (("credentials", {"vendor": "dashscope", "base_url": f"{attacker.url}/api/v1",
                                                 "api_key": "sk-attacker-own-key-0000"}),
                                ("credentials/clear", {"vendor": "dashscope"}),
                                ("test", {"vendor": "dashscope"})):
                out[route] = await answer(await client.post(f"{PREFIX}/{route}", headers=rebind, json=body))
            # the same calls from the ComfyUI page itself go through
            out["own"] = await answer(await client.post(f"{PREFIX}/test", headers=PACK, json={"vendor": "dashscope"}))
            return out

        out = drive(scenario, app_for(path, env))
    for name in ("get", "geometry", "credentials", "credentials/clear", "test"):
        status, body = out[name]
        assert status == 403 and "attacker.example" in body["error"] and "Host" in body["error"], (name, body)
    assert not path.exists() and attacker.requests == []
    assert out["own"][0] == 200 and out["own"][1]["source"] == "env"
    assert [(m, p.split("/tasks/")[0]) for m, p, _ in vendor.requests] == [("GET", "/api/v1")]
    assert vendor.requests[0][2]["Authorization"] == f"Bearer {ENV_KEY}"  # the env key went to the env host only


@pytest.mark.parametrize("headers, match", [
    ({"Origin": "http://evil.example", "Content-Type": "application/json"}, "X-Cloud-Outpaint"),  # no preflight
    ({"Origin": "http://evil.example", "Content-Type": "text/plain"}, "X-Cloud-Outpaint"),  # a "simple" request
    ({**PACK, "Origin": "http://evil.example", "Sec-Fetch-Site": "cross-site"}, "another site"),
    ({"Content-Type": "application/json", "X-Cloud-Outpaint": "yes"}, "X-Cloud-Outpaint"),
])
def test_a_request_from_another_site_or_without_the_pack_header_is_refused(tmp_path, headers, match):
    path = tmp_path / "s.json"
    with FakePeer() as attacker:
        async def scenario(client):
            got = {}
            for route, body in (("credentials", {"vendor": "volc", "api_key": "sk-x-0000000000000",
                                                 "base_url": attacker.url}),
                                ("test", {"vendor": "volc"})):
                got[route] = await answer(await client.post(f"{PREFIX}/{route}", headers=headers,
                                                            data=json.dumps(body)))
            got["status"] = await answer(await client.get(f"{PREFIX}/credentials", headers=headers))
            return got

        got = drive(scenario, app_for(path, {"VOLC_API_KEY": "sk-env-gw-key-000000", "VOLC_BASE_URL": attacker.url}))
    for route in ("credentials", "test"):
        assert got[route][0] == 403 and match in got[route][1]["error"], got[route]
    assert not path.exists() and attacker.requests == []
    # a GET changes nothing: it needs no pack header, but another site is still refused
    assert got["status"][0] == (403 if headers.get("Sec-Fetch-Site") == "cross-site" else 200)


def test_loopback_literals_and_localhost_are_the_default_hosts(tmp_path):
    async def scenario(client):
        port = client.server.port
        expected = {f"127.0.0.1:{port}": 200, f"localhost:{port}": 200, "LOCALHOST": 200, f"[::1]:{port}": 200,
                    "127.8.9.10": 200, f"192.0.2.2:{port}": 403,  # not listening on all interfaces
                    "localhost.attacker.example": 403, "127.0.0.1.attacker.example": 403, "0x7f000001": 403,
                    "a:b:c": 403}
        got = {}
        for host in expected:
            headers = {**PACK, "Host": host, "Sec-Fetch-Site": "same-origin"}
            got[host] = (await answer(await client.get(f"{PREFIX}/credentials", headers=headers)))[0]
        return expected, got

    expected, got = drive(scenario, app_for(tmp_path / "s.json"))
    assert got == expected


def _lan_ip() -> str | None:
    """An address of this machine that is not loopback (a UDP connect sends nothing)."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.connect(("192.0.2.1", 9))
            ip = probe.getsockname()[0]
    except OSError:
        return None
    return None if ip.startswith("127.") or ip == "0.0.0.0" else ip


def test_listen_on_all_interfaces_lets_lan_users_in_by_ip_but_no_name(tmp_path):
    """ComfyUI --listen 0.0.0.0: a LAN user opens http://<this machine's IP>:8188 (Host = that IP)."""
    lan = _lan_ip()
    if lan is None:
        pytest.skip("this machine has no non-loopback IPv4 address")
    path = tmp_path / "s.json"

    async def main():
        app = app_for(path, {guard.ALLOWED_HOSTS_VAR: "comfy.lan.example, other.example"}, listen=["0.0.0.0"])
        server = TestServer(app, host="0.0.0.0")
        await server.start_server()
        try:
            async with aiohttp.ClientSession() as session:
                url = f"http://{lan}:{server.port}{PREFIX}/credentials"
                save = {"vendor": "dashscope", "api_key": "sk-lan-user-key-00000000"}
                out = {"lan ip": await answer(await session.post(url, headers=PACK, json=save))}
                for label, host in (("another ip", "198.51.100.7"), ("a name", "rebind.example"),
                                    ("allowed name", "comfy.lan.example:8188")):
                    out[label] = await answer(await session.post(url, headers={**PACK, "Host": host}, json=save))
                return out
        finally:
            await server.close()

    out = asyncio.run(main())
    assert out["lan ip"][0] == 200 and out["lan ip"][1]["dashscope"]["source"] == "store"
    assert out["allowed name"][0] == 200  # CLOUD_OUTPAINT_ALLOWED_HOSTS (a reverse proxy's name)
    assert out["another ip"][0] == 403 and out["a name"][0] == 403


def test_a_specific_listen_address_is_allowed_and_nothing_else():
    check = guard.host_allowed
    assert check("192.168.1.5:8188", local_address="192.168.1.5", listen=["192.168.1.5"])
    assert check("[fd00::5]:8188", local_address="fd00::5", listen=["fd00::5"])
    assert check("comfybox:8188", local_address="10.0.0.2", listen=["comfybox"])  # --listen given a name
    assert not check("192.168.1.6", local_address="192.168.1.6", listen=["192.168.1.5"])  # not all interfaces
    assert check("192.168.1.6", local_address="::ffff:192.168.1.6", listen=["0.0.0.0", "::"])  # dual stack
    assert not check("evil.example", local_address="127.0.0.1", listen=["0.0.0.0", "::"])
    assert guard.listen_addresses("0.0.0.0,::") == ["0.0.0.0", "::"] and guard.listen_addresses(None) == []


def test_the_packs_own_page_sends_the_header_on_every_call(tmp_path):
    """web/js/credentials_dialog.js, run in node against the routes over HTTP: GET and POST work."""
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed")
    js = tmp_path / "js"
    shutil.copytree(ROOT / "web" / "js", js)
    (js / "package.json").write_text('{"type": "module"}')
    path = tmp_path / "s.json"

    async def main():
        async with TestServer(app_for(path), host="127.0.0.1") as server:
            script = f"""
                globalThis.window = {{ comfyAPI: {{ api: {{ api: {{
                    // what ComfyUI's frontend api.fetchApi does: adds its own header, then fetch()
                    fetchApi: (route, options = {{}}) => {{
                        options.headers = {{ ...(options.headers || {{}}), "Comfy-User": "" }};
                        return fetch("http://127.0.0.1:{server.port}" + route, options);
                    }} }} }} }} }};
                const dialog = await import("./credentials_dialog.js");
                const saved = await dialog.callRoute("credentials", {{ vendor: "dashscope", api_key: "sk-js-key-000000001234" }});
                const status = await dialog.refreshCredentialStatus();
                console.log(JSON.stringify({{ saved: saved.dashscope.source, status: status.dashscope.hint }}));
            """
            proc = await asyncio.create_subprocess_exec(node, "--input-type=module", "-e", script, cwd=js,
                                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            out, err = await asyncio.wait_for(proc.communicate(), 60)
            return proc.returncode, out.decode(), err.decode()

    code, out, err = asyncio.run(main())
    assert code == 0, err
    assert json.loads(out.strip().splitlines()[-1]) == {"saved": "store", "status": "…1234"}
    assert store.load(path)["dashscope"]["api_key"] == "sk-js-key-000000001234"
