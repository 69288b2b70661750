"""Drive the pack's routes over real loopback HTTP (aiohttp's test server, no ComfyUI), recording
every answer so a test can assert that no secret ever appeared in one."""

import asyncio
import json

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from pack import module

routes = module("nodes.routes")

PREFIX = "/cloud_outpaint"
PAGE_HEADERS = {"X-Cloud-Outpaint": "1"}  # what web/js/credentials_dialog.js sends on every call


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
