"""Volcengine visual `i2i_outpainting` emulator: its routes, settings and fault kinds.

API reference: https://www.volcengine.com/docs/6791/1279296 (signature V4:
https://www.volcengine.com/docs/6369/67270).
- `POST /?Action=CVProcess&Version=2022-08-31` (also Action=Img2ImgOutpainting): the official
  OpenAPI form, AK/SK signature V4 checked by volc_signer.verify against the sandbox clock.
- `POST /volcv/v1?Action=...&Version=...`: the third-party bearer gateway form
  (`Authorization: Bearer KEY`); its own key errors come in its shape (volc_protocol.proxy_auth_error),
  everything after the key check is Volcengine's, passed through unchanged. A bearer request to
  `/` (a gateway given without its path) is answered as such a proxy would: 404, plain text.
- STS: a request carrying X-Security-Token must carry a token the sandbox issued
  (`volc_session_token`, add_session_token()), else the gateway's InvalidSecretToken.

One request goes: front faults (server) -> [gateway_error fault] -> Action/Version -> auth ->
[throttle / pre-processing error fault] -> body validation -> image decoding -> processing
(billable from here) -> [post-processing error / bad_base64 / url_404 / oversized_url fault] ->
latency -> response -> [slow / drop_after / malformed fault] (server). The fault kinds are
volc_faults.FAULT_KINDS.
"""

from __future__ import annotations

import base64
import binascii
import secrets
import threading
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING

import torch

from ..core import geometry, imagecodec, volc_signer
from ..core.errors import InputError
from . import fill, hostile
from .faults import Fault
from .fetch import FetchFailed, FetchRefused, fetch_loopback
from .volc_faults import FAULT_KINDS, RESULT_KINDS, check_fault, error_billable
from .volc_protocol import (
    ACTIONS,
    VERSION,
    VolcError,
    business_error,
    from_volc_error,
    gateway_error,
    proxy_auth_error,
    service_request_id,
    success,
)
from .volc_request import MAX_PROMPT_CHARS, VolcJob, describe, parse_job
from .wire import SandboxRequest, SandboxResponse, text_response

if TYPE_CHECKING:
    from .server import SandboxServer

VENDOR = "volc"
OFFICIAL_PATH = "/"
PROXY_PATH = "/volcv/v1"
MASK_MEANINGS = ("generate", "keep")
OUTPUT_FORMATS = ("png", "jpeg")

# Demo credentials the sandbox always accepts. Shaped like real ones (AKLT… access keys), and
# worthless anywhere else.
DEMO_ACCESS_KEY = "AKLTsandboxDEMOaccessKEY0000000000000000"
DEMO_SECRET_KEY = "c2FuZGJveC1kZW1vLXNlY3JldC1rZXktbm90LXJlYWw="
DEMO_API_KEY = "sk-sandbox-demo-volc-0000000000000000"
DEMO_SESSION_TOKEN = "STS.sandbox-demo-session-token-0000000000"
PROXY_NOT_FOUND = "404 page not found\n"  # what a Go (new-api/one-api) gateway answers on an unknown path

def _strict_base64(text: str, label: str) -> bytes:
    # Stricter than imagecodec.from_base64 (which forgives a client's data: prefix and line
    # breaks): the service refuses both, and the sandbox must catch a client that sends them.
    if text.startswith("data:"):
        raise VolcError(50207, f"{label} must be plain base64, without a data: URI prefix")
    if not text:
        raise VolcError(50207, f"{label} is empty")
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise VolcError(50207, f"{label} is not valid base64") from None


@dataclass
class VolcSettings:
    """The emulator's settings (on a Sandbox: `volc_<name>`; change them any time). The real
    limits and tolerances are unpublished: these are guesses, kept configurable."""

    access_key: str = DEMO_ACCESS_KEY       # the demo key pair (always accepted); add_key() adds more
    secret_key: str = DEMO_SECRET_KEY
    api_key: str = DEMO_API_KEY             # the demo bearer key of the /volcv/v1 gateway; add_api_key()
    session_token: str = DEMO_SESSION_TOKEN  # an STS token the sandbox issued; add_session_token()
    mask_white_means: str = "generate"      # "generate" (white 255 = area to fill) or "keep"
    output_format: str = "png"              # or "jpeg"
    max_skew: timedelta = volc_signer.MAX_SKEW  # signature clock tolerance
    max_image_bytes: int = 5 * 1024 * 1024  # input limits -> 50205
    max_image_side: int = 4096
    max_body_bytes: int = 32 * 1024 * 1024  # request body limit -> 50213
    max_prompt_chars: int = MAX_PROMPT_CHARS  # -> 50200
    # Canvas mode: a side the body leaves out grows the canvas by this ratio, as the official SDK
    # models default every side to 0.1 even with two images (what the service does is UNCONFIRMED);
    # sides that are sent apply too. 0 = an absent side keeps the canvas.
    canvas_absent_side: float = 0.1
    strict_sides: bool = False              # ratio mode: a side of 0 -> 50200 (the documented (0, 1])


class VolcEmulator:
    """The Volcengine routes on a SandboxServer. The extra keys are its own, behind its own lock."""

    def __init__(self, server: SandboxServer, settings: VolcSettings | None = None):
        self.server = server
        self.settings = settings or VolcSettings()
        self._lock = threading.Lock()  # guards the two key sets
        self._keys: dict[str, str] = {}
        self._api_keys: set[str] = set()
        self._session_tokens: set[str] = set()
        server.register_vendor(VENDOR, FAULT_KINDS, check_fault)
        server.add_route("POST", OFFICIAL_PATH, self._official, vendor=VENDOR)
        server.add_route("POST", PROXY_PATH, self._proxy, vendor=VENDOR)

    def add_key(self, access_key: str, secret_key: str) -> None:
        """Accept another AK/SK pair for the signed (official) form."""
        with self._lock:
            self._keys[access_key] = secret_key

    def add_api_key(self, key: str) -> None:
        """Accept another bearer key on the /volcv/v1 gateway form."""
        with self._lock:
            self._api_keys.add(key)

    def add_session_token(self, token: str) -> None:
        """Accept another STS session token (X-Security-Token) with any known key pair."""
        with self._lock:
            self._session_tokens.add(token)

    def describe(self) -> list[str]:
        s, url = self.settings, self.server.url
        return [
            f"volc (signed):  VOLC_BASE_URL={url}  VOLC_ACCESSKEY={s.access_key}  VOLC_SECRETKEY={s.secret_key}",
            f"volc (bearer):  {url}{PROXY_PATH}  Authorization: Bearer {s.api_key}",
        ]

    # ---- the two front doors -------------------------------------------------------------------

    def _secret_for(self, access_key: str) -> str | None:
        if access_key == self.settings.access_key:
            return self.settings.secret_key
        with self._lock:
            return self._keys.get(access_key)

    def _token_known(self, token: str) -> bool:
        with self._lock:
            return token == self.settings.session_token or token in self._session_tokens

    def _official(self, request: SandboxRequest) -> SandboxResponse:
        action, version = self._action(request)
        rid = service_request_id(self.server.now())
        if (request.header("Authorization") or "").strip().lower().startswith("bearer "):
            request.annotate(auth="bearer")
            return text_response(404, PROXY_NOT_FOUND)  # a bearer gateway's host, without /volcv/v1
        refused = self._gateway(request, rid, action, version)
        if refused is not None:
            return refused
        try:
            access_key = volc_signer.verify(
                request.method, request.path, request.raw_query, request.header_dict(), request.body,
                self._secret_for, now=self.server.now(), max_skew=self.settings.max_skew)
        except volc_signer.SignatureError as exc:
            return gateway_error(rid, action, version, exc.code, exc.code_n, exc.http_status, exc.message)
        token = request.header("X-Security-Token")
        if token is not None and not self._token_known(token):
            return gateway_error(rid, action, version, "InvalidSecretToken")
        request.annotate(auth="signature", access_key=access_key)
        return self._service(request, rid)

    def _proxy(self, request: SandboxRequest) -> SandboxResponse:
        action, version = self._action(request)
        rid = service_request_id(self.server.now())
        scheme, _, key = (request.header("Authorization") or "").strip().partition(" ")
        key = key.strip()
        if scheme.lower() != "bearer" or not key:
            return proxy_auth_error(rid, "未提供令牌")  # "no token provided"
        with self._lock:
            known = key == self.settings.api_key or key in self._api_keys
        if not known:
            return proxy_auth_error(rid, "无效的令牌")  # "invalid token"
        request.annotate(auth="bearer")
        refused = self._gateway(request, rid, action, version)
        return refused if refused is not None else self._service(request, rid)

    def _action(self, request: SandboxRequest) -> tuple[str, str]:
        query = request.query()
        action, version = query.get("Action", ""), query.get("Version", "")
        request.note(action=action or None)
        return action, version

    def _gateway(self, request: SandboxRequest, rid: str, action: str,
                      version: str) -> SandboxResponse | None:
        """Gateway-stage fault and Action/Version routing (before authentication)."""
        fault = self.server.faults.take(VENDOR, {"gateway_error"})
        if fault is not None:
            request.note(fault=fault.kind)
            p = fault.params
            return gateway_error(rid, action, version, p["code"], p["code_n"], p["http_status"], p["message"])
        if not action or not version:
            missing = "Action" if not action else "Version"
            return gateway_error(rid, action, version, "MissingParameter",
                                 message=f"The request must contain the parameter {missing}.")
        if action not in ACTIONS or version != VERSION:
            return gateway_error(rid, action, version, "InvalidActionOrVersion",
                                 message=f"Could not find operation {action} for version {version}.")
        return None

    # ---- the service ---------------------------------------------------------------------------

    def _service(self, request: SandboxRequest, rid: str) -> SandboxResponse:
        fault = self.server.faults.take(VENDOR, {"throttle", "error"},
                                 accept=lambda f: f.kind == "throttle" or not error_billable(f))
        if fault is not None:
            request.note(fault=fault.kind)
            return self._error_fault(fault, rid, request)
        try:
            if len(request.body) > self.settings.max_body_bytes:
                raise VolcError(50213, f"the body is {len(request.body)} bytes, "
                                       f"at most {self.settings.max_body_bytes} allowed")
            job = parse_job(request.body, self.settings.max_prompt_chars,
                            canvas_absent_side=self.settings.canvas_absent_side,
                            strict_sides=self.settings.strict_sides)
            request.annotate(**describe(job))
            images = self._load_images(job, request)
        except VolcError as exc:
            return from_volc_error(rid, request.elapsed(), exc)

        request.mark_processed(billable=True)  # from here a real account is charged
        data, seed = self._render(job, images)
        request.annotate(seed=seed)
        self.server.sleep(self.server.latency)  # simulated processing time

        fault = self.server.faults.take(VENDOR, RESULT_KINDS,
                                 accept=lambda f: f.kind != "error" or error_billable(f))
        if fault is not None:
            request.note(fault=fault.kind)
        return self._answer(request, rid, job, data, fault)

    def _answer(self, request: SandboxRequest, rid: str, job: VolcJob, data: bytes,
                     fault: Fault | None) -> SandboxResponse:
        """The answer to a processed request: the image inline or by URL — or the fault's version."""
        kind = fault.kind if fault is not None else None
        ext = "jpg" if self.settings.output_format == "jpeg" else "png"
        if kind == "error":
            return self._error_fault(fault, rid, request)
        if kind == "bad_base64":
            value = fault.params["value"]
            if value is None:  # half a valid text, then characters outside the base64 alphabet
                valid = imagecodec.to_base64(data)
                value = valid[: len(valid) // 2] + "#%!*"
            return success(rid, request.elapsed(), [value], None)
        if kind == "url_404":
            return success(rid, request.elapsed(), None, [self.server.missing_result_url(ext)])
        if kind == "oversized_url":
            url = self.server.publish_synthetic(fault.params["size"], ext, bool(fault.params["declare_length"]))
            return success(rid, request.elapsed(), None, [url])
        if kind in hostile.RESULT_KINDS:
            inline, url = hostile.result(self.server, fault, data, ext, by_url=job.return_url)
            return success(rid, request.elapsed(), [imagecodec.to_base64(inline)] if inline else None,
                           [url] if url else None)
        if job.return_url:
            return success(rid, request.elapsed(), None, [self.server.publish(data, ext)])
        return success(rid, request.elapsed(), [imagecodec.to_base64(data)], None)

    def _error_fault(self, fault: Fault, rid: str, request: SandboxRequest) -> SandboxResponse:
        p = fault.params
        code = p["code"]
        message = p.get("message") or VolcError(code).message
        headers = {"Retry-After": str(p["retry_after"])} if p.get("retry_after") is not None else None
        return business_error(rid, request.elapsed(), code, message, p.get("http_status"), p.get("data"), headers)

    # ---- images --------------------------------------------------------------------------------

    def _image_bytes(self, job: VolcJob, index: int) -> bytes:
        label = f"{job.source}[{index}]"
        if job.source == "binary_data_base64":
            data = _strict_base64(job.images[index], label)
        else:
            try:
                data = fetch_loopback(job.images[index], self.settings.max_image_bytes)
            except FetchRefused as exc:
                raise VolcError(50200, f"{label}: the sandbox only downloads loopback http(s) URLs "
                                       f"({exc})") from None
            except FetchFailed as exc:
                raise VolcError(50205 if exc.too_large else 50207, f"{label}: {exc}") from None
        if len(data) > self.settings.max_image_bytes:
            raise VolcError(50205, f"{label} is {len(data)} bytes, at most {self.settings.max_image_bytes} allowed")
        return data

    def _load_images(self, job: VolcJob, request: SandboxRequest) -> list[torch.Tensor]:
        """Decoded inputs: [image] (ratio mode) or [canvas, mask] (canvas mode)."""
        decoded = []
        for index in range(len(job.images)):
            data = self._image_bytes(job, index)
            label = f"{job.source}[{index}]"
            try:
                width, height = imagecodec.image_size(data)
                if max(width, height) > self.settings.max_image_side:
                    raise VolcError(50205, f"{label} is {width}x{height}, at most "
                                           f"{self.settings.max_image_side} px per side allowed")
                is_mask = job.mode == "canvas" and index == 1
                decoded.append(imagecodec.decode_mask(data) if is_mask else imagecodec.decode_image(data))
            except imagecodec.DecodeError as exc:
                raise VolcError(50207, f"{label}: {exc}") from None
        if job.mode == "canvas":
            canvas, mask = decoded
            if tuple(canvas.shape[1:3]) != tuple(mask.shape[1:3]):
                raise VolcError(50200, f"the mask is {mask.shape[2]}x{mask.shape[1]} but the canvas is "
                                       f"{canvas.shape[2]}x{canvas.shape[1]}; they must be the same size")
        request.annotate(input_size=(decoded[0].shape[2], decoded[0].shape[1]))
        return decoded

    def _render(self, job: VolcJob, images: list[torch.Tensor]) -> tuple[bytes, int]:
        """The local stand-in for the model: -> (encoded image, seed used)."""
        seed = job.seed if job.seed >= 0 else secrets.randbelow(2**31)
        image = images[0]
        if job.mode == "canvas":
            canvas, mask = images
            if self.settings.mask_white_means not in MASK_MEANINGS:
                raise ValueError(f"volc_mask_white_means must be one of {MASK_MEANINGS}, "
                                 f"got {self.settings.mask_white_means!r}")
            white = mask >= 0.5
            generate = white if self.settings.mask_white_means == "generate" else ~white
            image = fill.inpaint(canvas, generate, seed)
        if job.mode == "canvas" and not any((job.top, job.bottom, job.left, job.right)):
            pixels = image
            out_size = geometry.fit_within(image.shape[2], image.shape[1], job.max_width, job.max_height)
        else:  # ratio mode, and canvas mode with sides (sent or defaulted): the canvas grows
            try:
                placement, out_size = geometry.volc_ratio_output(
                    image.shape[2], image.shape[1], job.left, job.top, job.right, job.bottom,
                    job.max_width, job.max_height)
            except InputError as exc:  # cannot happen with validated ratios and size limits
                raise VolcError(50200, str(exc)) from None
            pixels = fill.outpaint(image, placement, seed)
        array = imagecodec.resize_u8(imagecodec.image_to_uint8(pixels)[0], *out_size)
        fmt = self.settings.output_format
        if fmt not in OUTPUT_FORMATS:
            raise ValueError(f"volc_output_format must be one of {OUTPUT_FORMATS}, got {fmt!r}")
        return imagecodec.encode_image(array, fmt), seed
