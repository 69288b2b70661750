"""Hostile answers: what a compromised vendor, CDN or proxy could send, to test the client's defences.

Result kinds (both emulators take them as faults: the Volcengine request's result, the DashScope
task's result; `times` as usual):
- "result_url" {url}: the result link is `url`, whatever it is (another host, a metadata address).
- "redirect_url" {to, status}: the result link answers `status` (302) with Location `to`.
- "bomb" {width, height}: the result is a tiny, all-black 1-bit PNG that declares width x height
  (a decompression bomb: 13000² is ~21 KB on the wire, 0.5 GB as RGB and 2 GB as a float IMAGE).
- "other_format" {format}: the result is a 16x16 image in another format: tiff, bmp, gif or eps.
- "trickle_url" {interval, seconds}: the result link sends its image one byte every `interval` s;
  after `seconds` it sends the rest at once.
- "endless_url" {mb_per_s, max_mb}: the result link sends a PNG signature, then zeros at mb_per_s
  without Content-Length, and stops after max_mb.
Answer bodies ("endless" / "trickle" with the same parameters): the server's generic after-kinds
(the Volcengine answer, the DashScope create answer) and DashScope's "poll_endless" /
"poll_trickle" (its next task query). An endless answer is the real JSON with white space inside
it until max_mb, then its end; a trickled answer is the real one, byte by byte.
Every stream ends by itself (max_mb, seconds) and when the sandbox stops.
"""

from __future__ import annotations

import functools
import io
import zlib
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from PIL import Image

from .faults import GENERIC_KINDS, REQUIRED, Fault
from .results import StoredFile
from .wire import SandboxResponse, as_timedelta

if TYPE_CHECKING:
    from .server import SandboxServer

RESULT_KINDS: dict[str, dict[str, Any]] = {
    "result_url": {"url": REQUIRED},
    "redirect_url": {"to": REQUIRED, "status": 302},
    "bomb": {"width": 13000, "height": 13000},
    "other_format": {"format": "tiff"},
    "trickle_url": {"interval": 0.5, "seconds": 30.0},
    "endless_url": {"mb_per_s": 50.0, "max_mb": 256},
}
POLL_KINDS = {"poll_endless": dict(GENERIC_KINDS["endless"]), "poll_trickle": dict(GENERIC_KINDS["trickle"])}
FORMATS = {"tiff": ("TIFF", "tif", "image/tiff"), "bmp": ("BMP", "bmp", "image/bmp"),
           "gif": ("GIF", "gif", "image/gif"), "eps": ("EPS", "eps", "application/postscript")}
_CHUNK = 64 * 1024


def check(kind: str, params: dict[str, Any]) -> None:
    """Refuse impossible parameters of the kinds above (at inject time)."""
    def positive(*names: str) -> None:
        for name in names:
            value = params[name]
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
                raise ValueError(f"{kind} needs {name} > 0, got {value!r}")
    base = kind.removeprefix("poll_")
    if kind in ("result_url", "redirect_url") and not isinstance(params.get("url", params.get("to")), str):
        raise TypeError(f"{kind} needs a URL (text)")
    if kind == "redirect_url" and params["status"] not in (301, 302, 303, 307, 308):
        raise ValueError(f"redirect_url status must be a redirect (301-308), got {params['status']!r}")
    if kind == "bomb":
        positive("width", "height")
    if kind == "other_format" and params["format"] not in FORMATS:
        raise ValueError(f"other_format format must be one of {', '.join(FORMATS)}, got {params['format']!r}")
    if base in ("trickle", "trickle_url"):
        positive("interval", "seconds")
    if base in ("endless", "endless_url"):
        positive("mb_per_s", "max_mb")


@functools.lru_cache(maxsize=4)
def bomb_png(width: int, height: int) -> bytes:
    """An all-black 1-bit PNG of width x height: a few KB per 10⁸ pixels."""
    row = bytes(1 + (width + 7) // 8)  # filter byte 0, then zero bits
    packer = zlib.compressobj(9)
    rows_per_block = max(1, 2**20 // len(row))
    block = row * rows_per_block
    parts = []
    for start in range(0, height, rows_per_block):
        parts.append(packer.compress(block if start + rows_per_block <= height else row * (height - start)))
    parts.append(packer.flush())

    def chunk(kind: bytes, payload: bytes) -> bytes:
        return len(payload).to_bytes(4, "big") + kind + payload + zlib.crc32(kind + payload).to_bytes(4, "big")
    header = width.to_bytes(4, "big") + height.to_bytes(4, "big") + bytes((1, 0, 0, 0, 0))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", b"".join(parts)) + chunk(b"IEND", b"")


def other_format(name: str) -> tuple[bytes, str]:
    """A 16x16 grey image in format `name` -> (bytes, file extension)."""
    pil_name, ext, _ = FORMATS[name]
    out = io.BytesIO()
    Image.new("RGB", (16, 16), (128, 128, 128)).save(out, pil_name)
    return out.getvalue(), ext


def _trickle(server: SandboxServer, body: bytes, interval: float, seconds: float) -> Callable[[], Iterator[bytes]]:
    def chunks() -> Iterator[bytes]:
        sent, waited = 0, 0.0
        while sent < len(body) and waited < seconds and not server.stopping:
            yield body[sent:sent + 1]
            sent += 1
            server.sleep(interval)
            waited += interval
        if not server.stopping:
            yield body[sent:]
    return chunks


def _endless(server: SandboxServer, head: bytes, tail: bytes, filler: int, mb_per_s: float,
             max_mb: float) -> Callable[[], Iterator[bytes]]:
    def chunks() -> Iterator[bytes]:
        yield head
        block, left = bytes([filler]) * _CHUNK, int(max_mb * 2**20)
        while left > 0 and not server.stopping:
            yield block[:left]
            left -= _CHUNK
            server.sleep(_CHUNK / (mb_per_s * 2**20))
        yield tail
    return chunks


def stream_answer(server: SandboxServer, fault: Fault, response: SandboxResponse) -> SandboxResponse:
    """`response` (a JSON answer) sent endlessly or trickled, as the fault says; no Content-Length."""
    body, p = bytes(response.body), fault.params
    if fault.kind.endswith("trickle"):
        chunks = _trickle(server, body, float(p["interval"]), float(p["seconds"]))
    else:  # white space inside the JSON object, before its last byte: valid JSON once it ends
        chunks = _endless(server, body[:-1], body[-1:], ord(" "), float(p["mb_per_s"]), float(p["max_mb"]))
    return SandboxResponse(response.status, chunks(), response.content_type, dict(response.headers))


def result(server: SandboxServer, fault: Fault, data: bytes, ext: str, by_url: bool,
           ttl: timedelta | None = None) -> tuple[bytes | None, str | None]:
    """A hostile result of kind `fault.kind` instead of `data`: (inline bytes, None) when the vendor
    would answer inline (`by_url` False; bomb and other_format only), else (None, link)."""
    p, kind = fault.params, fault.kind
    ttl = as_timedelta(server.result_ttl) if ttl is None else ttl
    expires = server.now() + ttl
    if kind == "result_url":
        return None, p["url"]
    if kind in ("bomb", "other_format"):
        content, ext = (bomb_png(p["width"], p["height"]), "png") if kind == "bomb" else other_format(p["format"])
        if not by_url:
            return content, None
        content_type = FORMATS[p["format"]][2] if kind == "other_format" else "image/png"
        return None, server.publish(content, ext, ttl, content_type)
    if kind == "redirect_url":
        file = StoredFile("text/plain", expires, location=p["to"], status=p["status"])
    elif kind == "trickle_url":
        file = StoredFile("image/png", expires, stream=_trickle(server, data, float(p["interval"]), float(p["seconds"])))
    else:  # endless_url
        file = StoredFile("image/png", expires, stream=_endless(server, b"\x89PNG\r\n\x1a\n", b"", 0,
                                                                 float(p["mb_per_s"]), float(p["max_mb"])))
    return None, server.publish_file(file, ext)
