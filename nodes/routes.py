"""The pack's HTTP routes (settings panel and geometry preview), under /cloud_outpaint/.

Inside ComfyUI, install() (called by nodes/extension.py at import time) points the credential store
at `<ComfyUI user directory>/cloud_outpaint/credentials.json` and registers the handlers on
PromptServer.instance.routes (ComfyUI adds the /api/... twin). Outside ComfyUI install() does
nothing; tests drive build_routes()/add_routes() on a plain aiohttp application.

    GET  /cloud_outpaint/credentials         -> {"volc": status, "dashscope": status}
    POST /cloud_outpaint/credentials         {"vendor", <fields>} -> same shape as GET
    POST /cloud_outpaint/credentials/clear   {"vendor"} -> same shape as GET
    POST /cloud_outpaint/test                {"vendor", "backend"} -> connection_check answer
    GET  /cloud_outpaint/geometry?node=..&width=..&height=..&<widget>=.. -> preview
    GET  /cloud_outpaint/spend               -> spend today/month, limit, prices, recent entries, cache size
    POST /cloud_outpaint/spend/settings      {"volc_price_cny", "daily_limit_cny"} -> same as GET /spend
    POST /cloud_outpaint/cache/clear         {} -> {"cleared": n}
    GET  /cloud_outpaint/widget_modes        -> which widgets each node's mode widget shows (widget_modes.py)

Security: every request must come from the ComfyUI page itself (route_guard.py: Host allowlist
against DNS rebinding, no cross-site requests, and the X-Cloud-Outpaint: 1 header on every POST);
a status never contains a secret (only the last 4 characters of the access key / API key); request
bodies must be JSON and at most 16 KB; every answer is Cache-Control: no-store; nothing here logs a
request body.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import pathlib
from collections.abc import Callable, Iterable, Mapping

from aiohttp import web

from . import route_guard, widget_modes
from .core import connection_check, cost_state, credential_store, preview
from .core.errors import ConfigError, InputError

log = logging.getLogger(__name__)

PREFIX = "/cloud_outpaint"
MAX_BODY = 16 * 1024
HEADERS = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}

Handler = Callable[[web.Request], "asyncio.Future[web.StreamResponse]"]


class _BadRequest(Exception):
    def __init__(self, status: int, text: str):
        super().__init__(text)
        self.status, self.text = status, text


def _json(data: dict, status: int = 200) -> web.Response:
    return web.json_response(data, status=status, headers=HEADERS)


async def _body(request: web.Request) -> dict:
    if request.content_type != "application/json":
        raise _BadRequest(415, "send the body as JSON (Content-Type: application/json)")
    if request.content_length is not None and request.content_length > MAX_BODY:
        raise _BadRequest(413, f"the body is over {MAX_BODY // 1024} KB")
    chunks, size = [], 0
    while True:
        chunk = await request.content.read(MAX_BODY + 1 - size)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
        if size > MAX_BODY:
            raise _BadRequest(413, f"the body is over {MAX_BODY // 1024} KB")
    try:
        data = json.loads(b"".join(chunks).decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise _BadRequest(400, "the body is not valid JSON") from None
    if not isinstance(data, dict):
        raise _BadRequest(400, "the body must be a JSON object")
    return data


def _local_address(request: web.Request) -> str | None:
    """The address of this machine the client connected to (None for a non-TCP socket)."""
    sockname = request.transport.get_extra_info("sockname") if request.transport else None
    return sockname[0] if isinstance(sockname, tuple) and sockname else None


def _guarded(handler: Handler, refusal: Callable[[web.Request], str | None]) -> Handler:
    """A refused caller -> 403; bad input -> 400/413/415 {"error"}; anything else -> 500 with the
    exception's class only."""

    async def wrapper(request: web.Request) -> web.StreamResponse:
        try:
            refused = refusal(request)
            if refused:
                log.warning("cloud_outpaint %s %s refused: %s", request.method, request.path, refused[:160])
                return _json({"error": refused}, 403)
            return await handler(request)
        except _BadRequest as exc:
            return _json({"error": exc.text}, exc.status)
        except InputError as exc:
            return _json({"error": str(exc)}, 400)
        except ConfigError as exc:
            return _json({"error": str(exc)}, 500)
        except OSError as exc:
            log.warning("cloud_outpaint %s %s: %s", request.method, request.path, exc.__class__.__name__)
            return _json({"error": f"the credential store could not be written ({exc.__class__.__name__}: "
                                   f"{exc.strerror or 'I/O error'})"}, 500)
        except Exception as exc:  # noqa: BLE001 - never a traceback (or a value) to the browser
            log.error("cloud_outpaint %s %s failed: %s", request.method, request.path, exc.__class__.__name__)
            return _json({"error": f"internal error ({exc.__class__.__name__})"}, 500)

    wrapper.__name__ = handler.__name__
    return wrapper


def build_routes(store_path: Callable[[], pathlib.Path] = credential_store.default_path,
                 env: Callable[[], Mapping[str, str]] = lambda: os.environ,
                 home: Callable[[], pathlib.Path | None] = lambda: None,
                 listen: Callable[[], Iterable[str]] = lambda: ()) -> list[tuple[str, str, Handler]]:
    """The handlers as (method, path, handler). The providers are called per request, so the store
    path set by install() (or a test's tmp path) is always the current one. `listen` gives the
    addresses ComfyUI listens on (its --listen, split at commas); none = loopback only."""

    def refusal(request: web.Request) -> str | None:
        extra = (env().get(route_guard.ALLOWED_HOSTS_VAR) or "").split(",")
        return route_guard.refusal(request.headers, changes_state=request.method not in ("GET", "HEAD"),
                                   local_address=_local_address(request), listen=listen(), extra_hosts=extra)

    def status() -> dict:
        return credential_store.all_status(env(), store_path(), home())

    async def get_credentials(request: web.Request) -> web.Response:
        return _json(await asyncio.to_thread(status))

    async def post_credentials(request: web.Request) -> web.Response:
        body = await _body(request)
        vendor = credential_store.check_vendor(body.pop("vendor", None))
        await asyncio.to_thread(credential_store.save, store_path(), vendor, body)
        log.info("cloud_outpaint: %s credentials saved (%s)", vendor, ", ".join(sorted(k for k in body if body[k])))
        return _json(await asyncio.to_thread(status))

    async def clear_credentials(request: web.Request) -> web.Response:
        body = await _body(request)
        unknown = sorted(set(body) - {"vendor"})
        if unknown:
            raise InputError(f"unknown field(s): {', '.join(unknown)}")
        vendor = credential_store.check_vendor(body.get("vendor"))
        await asyncio.to_thread(credential_store.clear, store_path(), vendor)
        log.info("cloud_outpaint: %s credentials cleared from the store", vendor)
        return _json(await asyncio.to_thread(status))

    async def test_connection(request: web.Request) -> web.Response:
        body = await _body(request)
        unknown = sorted(set(body) - {"vendor", "backend"})
        if unknown:
            raise InputError(f"unknown field(s): {', '.join(unknown)}")
        vendor, backend = body.get("vendor"), body.get("backend", "cloud")
        if vendor not in connection_check.VENDORS:
            raise InputError(f"vendor {vendor!r}: use one of {', '.join(connection_check.VENDORS)}")
        if backend not in ("cloud", "sandbox"):
            raise InputError(f"backend {backend!r}: use cloud or sandbox")
        result = await asyncio.to_thread(connection_check.run, vendor, backend, env(), store_path())
        return _json(result)

    async def geometry(request: web.Request) -> web.Response:
        query = {key: request.query.get(key, "") for key in request.query}
        return _json(preview.compute(query.pop("node", ""), query))

    async def get_spend(request: web.Request) -> web.Response:
        return _json(await asyncio.to_thread(cost_state.report, env()))

    async def post_spend_settings(request: web.Request) -> web.Response:
        body = await _body(request)
        locked = cost_state.load(env()).locked  # given by an environment variable, which wins: not saved
        await asyncio.to_thread(cost_state.save, {k: v for k, v in body.items() if k not in locked}, env())
        return _json(await asyncio.to_thread(cost_state.report, env()))

    async def clear_cache(request: web.Request) -> web.Response:
        await _body(request)
        cleared = await asyncio.to_thread(cost_state.clear_cache, env())
        log.info("cloud_outpaint: %d cached result(s) cleared", cleared)
        return _json({"cleared": cleared})
    async def get_widget_modes(request: web.Request) -> web.Response:
        return _json(widget_modes.MODES)

    return [("GET", f"{PREFIX}/credentials", _guarded(get_credentials, refusal)),
            ("GET", f"{PREFIX}/spend", _guarded(get_spend, refusal)),
            ("POST", f"{PREFIX}/spend/settings", _guarded(post_spend_settings, refusal)),
            ("POST", f"{PREFIX}/cache/clear", _guarded(clear_cache, refusal)),
            ("POST", f"{PREFIX}/credentials", _guarded(post_credentials, refusal)),
            ("POST", f"{PREFIX}/credentials/clear", _guarded(clear_credentials, refusal)),
            ("POST", f"{PREFIX}/test", _guarded(test_connection, refusal)),
            ("GET", f"{PREFIX}/geometry", _guarded(geometry, refusal)),
            ("GET", f"{PREFIX}/widget_modes", _guarded(get_widget_modes, refusal))]


def add_routes(target, **providers) -> None:
    """Register on an aiohttp Application (tests) or a RouteTableDef (PromptServer.instance.routes)."""
    for method, path, handler in build_routes(**providers):
        if hasattr(target, "router"):
            target.router.add_route(method, path, handler)
        else:
            target.route(method, path)(handler)


_installed = False


def install() -> bool:
    """Inside ComfyUI: store in ComfyUI's user directory, routes on the PromptServer. Returns True when
    the routes were registered; outside ComfyUI (no `server` module or no instance) does nothing."""
    global _installed
    if _installed:
        return True
    try:
        import folder_paths  # ComfyUI's
    except ImportError:
        folder_paths = None
    user_dir = getattr(folder_paths, "get_user_directory", None)
    if user_dir is not None:
        credential_store.set_default_path(credential_store.path_in_user_dir(user_dir()))
        cost_state.set_comfy_dir(user_dir())  # cache, task journal, spend ledger beside the store
    try:
        from server import PromptServer
    except ImportError:
        return False
    instance = getattr(PromptServer, "instance", None)
    if instance is None or not hasattr(instance, "routes"):
        return False
    add_routes(instance.routes, listen=_comfy_listen)
    _installed = True
    return True


def _comfy_listen() -> list[str]:
    """ComfyUI's --listen addresses (comfy.cli_args, parsed before custom nodes load)."""
    try:
        from comfy.cli_args import args  # ComfyUI's
    except ImportError:
        return []
    return route_guard.listen_addresses(getattr(args, "listen", None))
