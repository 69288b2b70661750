"""Download an input image given by URL — from loopback hosts only.

The real vendors download public URLs; the sandbox must never reach the internet (it runs in
tests and offline demos, and a URL in a request must not make it a relay), so anything but an
http(s) URL on a literal loopback address or `localhost` is refused without any network access.
Redirects are not followed (one could point off the machine).
"""

from __future__ import annotations

import http.client
import ipaddress
import ssl
from urllib.parse import urlsplit


class FetchRefused(ValueError):
    """The URL is not one the sandbox may fetch (nothing was sent)."""


class FetchFailed(ValueError):
    """The download was attempted and failed (connection, HTTP status, size)."""

    def __init__(self, message: str, too_large: bool = False):
        super().__init__(message)
        self.too_large = too_large


def _loopback_host(host: str | None) -> str:
    if not host:
        raise FetchRefused("the URL has no host")
    if host.lower() == "localhost":
        return "127.0.0.1"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        raise FetchRefused(f"host {host!r} is not a loopback address (the sandbox never uses DNS)") from None
    if not address.is_loopback:
        raise FetchRefused(f"host {host} is not a loopback address")
    return host


def fetch_loopback(url: str, max_bytes: int, timeout: float = 10.0) -> bytes:
    """GET `url` and return the body; FetchRefused / FetchFailed otherwise."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise FetchRefused(f"malformed URL: {exc}") from None
    if parts.scheme not in ("http", "https"):
        raise FetchRefused(f"scheme {parts.scheme or '(none)'!r} is not http or https")
    host = _loopback_host(parts.hostname)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    if parts.scheme == "https":
        # Loopback test servers use self-signed certificates; there is nothing to authenticate.
        connection = http.client.HTTPSConnection(host, port, timeout=timeout,
                                                 context=ssl._create_unverified_context())
    else:
        connection = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        connection.request("GET", target, headers={"User-Agent": "cloud-outpaint-sandbox"})
        response = connection.getresponse()
        if response.status != 200:
            raise FetchFailed(f"HTTP {response.status} {response.reason}")
        declared = response.getheader("Content-Length")
        if declared and declared.isdigit() and int(declared) > max_bytes:
            raise FetchFailed(f"the file is {declared} bytes, more than {max_bytes}", too_large=True)
        data = response.read(max_bytes + 1)
        if len(data) > max_bytes:
            raise FetchFailed(f"the file is more than {max_bytes} bytes", too_large=True)
        return data
    except (OSError, http.client.HTTPException) as exc:
        raise FetchFailed(f"download failed: {exc}") from None
    finally:
        connection.close()
