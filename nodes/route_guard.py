"""Who may call the pack's routes: the ComfyUI page itself, never another site open in the same browser.

Checked before a request body is read (routes.py):
- Host must be a loopback IP literal, `localhost`, an address ComfyUI was told to `--listen` on,
  or, when ComfyUI listens on all interfaces (`--listen` / `0.0.0.0` / `::`), the IP literal of the
  interface the request arrived on (an address of this machine by construction: a LAN user who
  opens http://192.168.1.5:8188 sends exactly that). CLOUD_OUTPAINT_ALLOWED_HOSTS=name[,name] adds
  names, for a reverse proxy or a DNS name that serves ComfyUI.
  This is what stops DNS rebinding. The attacker's page has Host = Origin = the attacker's own
  name, which now resolves to 127.0.0.1, so comparing Host with Origin (ComfyUI's middleware)
  passes; a name we were not told about never does, and an IP literal involves no DNS to rebind.
- `Sec-Fetch-Site: cross-site` is refused (browsers send it on every request).
- Every route that changes state or spends (every POST) needs `X-Cloud-Outpaint: 1`, which the
  pack's own JS sends. A page on another origin can send a custom header only after a CORS
  preflight, which ComfyUI does not grant for it (even `--enable-cors-header` allows only
  Content-Type and Authorization), so plain cross-site forms and fetches are refused here.
No aiohttp import: the checks take the header mapping and the connection's local address.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from urllib.parse import urlsplit

HEADER = "X-Cloud-Outpaint"
ALLOWED_HOSTS_VAR = "CLOUD_OUTPAINT_ALLOWED_HOSTS"
ALL_INTERFACES = ("", "0.0.0.0", "::")


def _ip(text: str | None):
    """An IP literal (IPv4-mapped IPv6 as the IPv4 address, zone dropped), or None for a name."""
    if not text:
        return None
    try:
        ip = ipaddress.ip_address(text.split("%", 1)[0].strip("[]"))
    except ValueError:
        return None
    return getattr(ip, "ipv4_mapped", None) or ip


def host_name(host_header: str | None) -> str | None:
    """The host part of a Host header (no port, no brackets, lower case, no trailing dot)."""
    if not host_header:
        return None
    try:
        name = urlsplit("//" + host_header.strip()).hostname
    except ValueError:
        return None
    return name.rstrip(".") if name else None


def listen_addresses(listen_arg: str | None) -> list[str]:
    """ComfyUI's --listen value ("127.0.0.1", "0.0.0.0,::", ...) as a list."""
    return [part.strip() for part in str(listen_arg or "").split(",")] if listen_arg is not None else []


def host_allowed(host_header: str | None, *, local_address: str | None, listen: Iterable[str] = (),
                 extra_hosts: Iterable[str] = ()) -> bool:
    name = host_name(host_header)
    if not name:
        return False
    ip = _ip(name)
    if name == "localhost" or (ip is not None and ip.is_loopback):
        return True
    listen = list(listen)
    if ip is not None and any(_ip(addr) == ip for addr in listen if addr not in ALL_INTERFACES):
        return True
    if name in (addr.lower().rstrip(".") for addr in listen if addr not in ALL_INTERFACES):
        return True  # --listen given a name
    if ip is not None and any(addr in ALL_INTERFACES for addr in listen) and ip == _ip(local_address):
        return True
    return name in (h.strip().lower().rstrip(".") for h in extra_hosts if h.strip())


def refusal(headers: Mapping[str, str], *, changes_state: bool, local_address: str | None,
            listen: Iterable[str] = (), extra_hosts: Iterable[str] = ()) -> str | None:
    """Why the request is refused (403), or None when it may go on."""
    host = headers.get("Host")
    if not host_allowed(host, local_address=local_address, listen=listen, extra_hosts=extra_hosts):
        shown = (host_name(host) or "none")[:100]
        return (f"refused: the request's Host ({shown}) is not this ComfyUI's address. Open ComfyUI through "
                f"127.0.0.1, localhost or the address it listens on; for a reverse proxy or a DNS name, add the "
                f"name to {ALLOWED_HOSTS_VAR}")
    if (headers.get("Sec-Fetch-Site") or "").strip().lower() == "cross-site":
        return "refused: the request comes from another site (Sec-Fetch-Site: cross-site)"
    if changes_state and (headers.get(HEADER) or "").strip() != "1":
        return (f"refused: this route needs the header {HEADER}: 1, which the Cloud Outpaint page sends "
                "(a page on another site cannot)")
    return None
