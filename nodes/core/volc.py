"""Volcengine visual `i2i_outpainting` client (CVProcess, 2022-08-31): request building, signing,
sending under the shared HTTP policy, and turning every answer into an image or a VendorError.

Spec: shared/spec/vendor-apis.md Part A. Unconfirmed points are settings (VolcConfig), not guesses.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import requests

from . import transport, volc_signer
from .credentials import VolcCredentials
from .errors import InputError, VendorError
from .imagecodec import DecodeError, from_base64, to_base64
from .widgets import VOLC as _W

VENDOR = "Volcengine"
ACTION, VERSION, REQ_KEY = "CVProcess", "2022-08-31", "i2i_outpainting"
MAX_PROMPT_CHARS = 800  # vendor: ~100 CJK chars / English words matter, the rest "has little effect"

# code -> (plain-language meaning, retryable). Business codes: spec A.6 tables.
BUSINESS_CODES = {
    50411: ("the input image failed the vendor's content moderation", False),
    50511: ("the generated image failed content moderation; a different seed or prompt may pass", False),
    50412: ("the prompt failed the vendor's text moderation", False),
    50512: ("generated text failed moderation", False),
    50413: ("the prompt contains sensitive or copyrighted words", False),
    50518: ("the input image was flagged as copyrighted", False),
    50519: ("the generated image was flagged as copyrighted; try another seed", False),
    50520: ("the vendor's moderation service had an internal error", False),
    50521: ("the vendor's moderation service had an internal error", False),
    50522: ("the vendor's copyright check had an internal error", False),
    50429: ("too many requests per second for this account (QPS limit)", True),
    50430: ("too many requests at once for this account (concurrency limit)", True),
    50500: ("the vendor had an internal error (not retried automatically: it may be billed)", False),
    50501: ("the vendor's algorithm service had an internal error (not retried automatically)", False),
    50200: ("the vendor rejected a parameter", False),
    50201: ("a required parameter is missing", False),
    50204: ("a parameter has the wrong type or is missing", False),
    50205: ("the image is larger than the vendor accepts", False),
    50206: ("the request carried no image", False),
    50207: ("the vendor could not decode the image", False),
    50213: ("the request body is too large; use a smaller image", False),
    50215: ("the input does not meet this service's requirements", False),
    50400: ("access denied: the outpainting service (i2i_outpainting) is not enabled for this account, or "
            "the account lacks permission; enable it in the Volcengine console", False),
    50402: ("this API does not exist (wrong Action/Version for this endpoint)", False),
}
GATEWAY_CODES = {
    "MissingParameter": "the request lacks Action/Version or another required query parameter",
    "MissingAuthenticationToken": "no credentials were sent",
    "MissingRequestInfo": "the signature's scope (access key, region, service) is malformed",
    "MissingSignature": "the request was not signed",
    "InvalidTimestamp": "the signature has expired: check this computer's clock (time zone and NTP)",
    "ServiceNotFound": "wrong service name in the signature",
    "InvalidActionOrVersion": "unknown Action/Version for this endpoint",
    "InvalidAccessKey": "the access key (VOLC_ACCESSKEY) is not known to Volcengine",
    "SignatureDoesNotMatch": "the secret key (VOLC_SECRETKEY) does not match the access key",
    "LackPolicy": "this sub-account has no policy allowing the visual service",
    "AccessDenied": "this account is not allowed to call the visual service",
    "InvalidSecretToken": "the STS session token (VOLC_SESSION_TOKEN) is invalid or expired",
    "FlowLimitExceeded": "the gateway is throttling this account",
}
GATEWAY_RETRYABLE = {"FlowLimitExceeded"}


@dataclass(frozen=True)
class VolcConfig:
    """Protocol points the vendor docs leave open (spec Part E), settable by environment."""

    prompt_field: str = "both"  # "custom_prompt" | "prompt" | "both" (send it under both names)
    mask_white_means: str = "generate"  # canvas-mode mask polarity: "generate" | "keep"
    connect_timeout: float = 10.0
    read_timeout: float = 90.0  # the SDK's 30 s is known to be too short (spec C.1)
    max_download_bytes: int = 64 * 2**20
    max_input_side: int = 4096  # conservative: real limits are unpublished (spec A.5)
    max_input_bytes: int = 5 * 2**20

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> "VolcConfig":
        cfg = cls(prompt_field=env.get("VOLC_PROMPT_FIELD", cls.prompt_field),
                  mask_white_means=env.get("VOLC_MASK_WHITE_MEANS", cls.mask_white_means),
                  read_timeout=float(env.get("VOLC_READ_TIMEOUT", cls.read_timeout)),
                  max_input_side=int(env.get("VOLC_MAX_INPUT_SIDE", cls.max_input_side)),
                  max_input_bytes=int(float(env.get("VOLC_MAX_INPUT_MB", cls.max_input_bytes / 2**20)) * 2**20))
        if cfg.prompt_field not in ("custom_prompt", "prompt", "both"):
            raise InputError(f"VOLC_PROMPT_FIELD={cfg.prompt_field!r}: use custom_prompt, prompt or both")
        if cfg.mask_white_means not in ("generate", "keep"):
            raise InputError(f"VOLC_MASK_WHITE_MEANS={cfg.mask_white_means!r}: use generate or keep")
        return cfg


@dataclass(frozen=True)
class Watermark:
    """logo_info: a visible 'AI generated' label (off unless asked for)."""

    position: int = 0  # 0 bottom-right, 1 bottom-left, 2 top-left, 3 top-right
    language: int = 0  # 0 Chinese "AI生成", 1 English "Generated by AI"
    opacity: float = 1.0
    text: str = ""

    def as_json(self) -> dict:
        info = {"add_logo": True, "position": self.position, "language": self.language, "opacity": self.opacity}
        if self.text:
            info["logo_text_content"] = self.text
        return info


@dataclass(frozen=True)
class VolcParams:
    """Everything sent besides the images. Defaults are the vendor's (Java SDK model)."""

    prompt: str = _W["prompt"].default
    seed: int = _W["seed"].default
    steps: int = _W["steps"].default
    scale: float = _W["scale"].default
    strength: float = _W["strength"].default
    top: float = _W["top"].default
    bottom: float = _W["bottom"].default
    left: float = _W["left"].default
    right: float = _W["right"].default
    max_width: int = _W["max_width"].default
    max_height: int = _W["max_height"].default
    return_url: bool = _W["return_url"].default
    watermark: Watermark | None = None

    def validate(self, canvas_mode: bool) -> None:
        """Ranges from the vendor docs; checked before anything is sent."""
        names = ["steps", "scale", "strength", "seed", "max_width", "max_height"]
        if not canvas_mode:
            names += ["top", "bottom", "left", "right"]
        for name in names:
            _W[name].check(getattr(self, name), VENDOR)
        if not canvas_mode and not any((self.top, self.bottom, self.left, self.right)):
            raise InputError("top, bottom, left and right are all 0: nothing to outpaint")
        if len(self.prompt) > MAX_PROMPT_CHARS:
            raise InputError(f"the prompt has {len(self.prompt)} characters; keep it under {MAX_PROMPT_CHARS} "
                             "(Volcengine reads about 100 words or Chinese characters)")
        if self.watermark:
            _W["watermark_opacity"].check(self.watermark.opacity)


@dataclass
class VolcResult:
    image: bytes
    request_id: str
    elapsed_s: float
    time_elapsed: str = ""  # the vendor's own figure
    via_url: bool = False
    prompt_field_sent: list[str] = field(default_factory=list)


def build_body(params: VolcParams, images_b64: list[str], config: VolcConfig) -> dict:
    body: dict = {"req_key": REQ_KEY, "binary_data_base64": images_b64}
    if params.prompt:
        names = ("custom_prompt", "prompt") if config.prompt_field == "both" else (config.prompt_field,)
        body.update({name: params.prompt for name in names})
    body.update(seed=params.seed, steps=params.steps, scale=params.scale, strength=params.strength,
                max_width=params.max_width, max_height=params.max_height, return_url=params.return_url)
    if len(images_b64) == 1:
        body.update(top=params.top, bottom=params.bottom, left=params.left, right=params.right)
    if params.watermark:
        body["logo_info"] = params.watermark.as_json()
    return body


def classify(response: requests.Response) -> VendorError | None:
    """None for a success; otherwise the VendorError this answer means."""
    data = transport.json_object(response)
    status = response.status_code
    retry_after = transport.parse_retry_after(response.headers.get("Retry-After"))
    if data is None:
        return transport.not_json_error(VENDOR, response)
    meta = data.get("ResponseMetadata") or {}
    gateway = meta.get("Error") if isinstance(meta, dict) else None
    if gateway:
        code = gateway.get("Code") or str(gateway.get("CodeN"))
        meaning = GATEWAY_CODES.get(code, "the Volcengine gateway refused the request")
        return VendorError(VENDOR, code, meaning, message=gateway.get("Message", ""), http_status=status,
                           request_id=meta.get("RequestId"), retryable=code in GATEWAY_RETRYABLE, billed=False,
                           retry_after=retry_after)
    code = data.get("code")
    if status == 200 and code == 10000:
        return None
    meaning, retryable = BUSINESS_CODES.get(code, ("the vendor returned an error", False))
    return VendorError(VENDOR, code if code is not None else f"HTTP{status}", meaning,
                       message=str(data.get("message", "")), http_status=status,
                       request_id=data.get("request_id"), retryable=retryable,
                       billed=False if retryable else None, retry_after=retry_after)


class VolcClient:
    """One client per node run: shares the run's session, deadline and cancel flag."""

    def __init__(self, credentials: VolcCredentials, session: requests.Session, control: transport.RunControl,
                 config: VolcConfig = VolcConfig()):
        self.credentials, self.session, self.control, self.config = credentials, session, control, config
        base = urlsplit(credentials.base_url)
        if base.scheme not in ("http", "https") or not base.netloc:
            raise InputError(f"Volcengine base URL {credentials.base_url!r} is not an http(s) URL")
        self.host, self.path = base.netloc, base.path or "/"
        self.query = volc_signer.canonical_query({"Action": ACTION, "Version": VERSION})
        self.url = f"{base.scheme}://{base.netloc}{self.path}?{self.query}"
        self._secrets = (credentials.secret_key, credentials.session_token, credentials.api_key)

    def _headers(self, body: bytes) -> Callable[[], dict]:
        c = self.credentials
        if c.kind == "bearer":
            return lambda: {"Content-Type": "application/json", "Authorization": f"Bearer {c.api_key}"}
        # re-signed on every attempt so X-Date is fresh after a long backoff
        return lambda: volc_signer.sign("POST", self.host, self.path, {"Action": ACTION, "Version": VERSION},
                                        {"Content-Type": "application/json"}, body, c.access_key,
                                        c.secret_key, c.session_token or None)

    def outpaint(self, images: list[bytes], params: VolcParams,
                 on_wait: Callable[[str], None] | None = None) -> VolcResult:
        """One billable CVProcess call: [image] (ratio mode) or [canvas, mask] (canvas mode)."""
        fields = build_body(params, [to_base64(i) for i in images], self.config)
        body = json.dumps(fields, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        started = time.monotonic()
        response = transport.send(self.session, "POST", self.url, control=self.control, billable=True,
                             classify=classify, prepare=self._headers(body), data=body,
                             connect_timeout=self.config.connect_timeout, read_timeout=self.config.read_timeout,
                             on_wait=on_wait, secrets=self._secrets)
        data = transport.json_object(response) or {}
        request_id = data.get("request_id", "")
        result = data.get("data") or {}
        try:
            encoded = [b for b in result.get("binary_data_base64") or [] if b]
            if encoded:
                image, via_url = from_base64(encoded[0]), False
            elif result.get("image_urls"):
                image = transport.download(self.session, result["image_urls"][0], control=self.control,
                                      base_url=self.credentials.base_url,
                                      max_bytes=self.config.max_download_bytes, on_wait=on_wait)
                via_url = True
            else:
                raise DecodeError("the success answer carried no image")
        except DecodeError as exc:
            raise VendorError(VENDOR, "BadResult", "the vendor reported success but its image could not be read",
                              message=str(exc), request_id=request_id, billed=True) from exc
        except VendorError as exc:
            exc.request_id = exc.request_id or request_id
            exc.billed = True
            raise
        return VolcResult(image, request_id, time.monotonic() - started, str(data.get("time_elapsed", "")),
                          via_url, [k for k in ("custom_prompt", "prompt") if k in fields])
