"""Where a vendor's answer may send the pack: result links and upload hosts.

A link taken from a vendor's answer (a result URL, DashScope's upload_host, every redirect hop)
is followed only to
- one of the vendor's own result hosts (each client's RESULT_HOSTS, plus the patterns in the
  environment variable CLOUD_OUTPAINT_RESULT_HOSTS), over http or https, on any port; or
- the exact host and port of the configured base URL (the sandbox, a gateway serving results).
When the base URL is not on this machine, a link's host must also resolve to public addresses
only (no loopback, private, link-local, ... address), and the connection goes to the address that
was checked, so a second DNS answer (rebinding) cannot change it. Through a proxy from the
environment, the proxy does the lookup and that check is its business.
"""

from __future__ import annotations

import ipaddress
import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from fnmatch import fnmatchcase
from urllib.parse import SplitResult, urlsplit

from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ConnectTimeoutError, NewConnectionError

from .errors import VendorError

SETTING = "CLOUD_OUTPAINT_RESULT_HOSTS"  # comma list of extra host patterns ("*.example.com", "cdn.example")
DEFAULT_PORTS = {"http": 80, "https": 443}


def setting_patterns(env: Mapping[str, str] = os.environ) -> tuple[str, ...]:
    return tuple(p.strip().lower() for p in env.get(SETTING, "").split(",") if p.strip())


def _address(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        address = ipaddress.ip_address(host.strip("[]").split("%")[0])
    except ValueError:
        return None
    mapped = getattr(address, "ipv4_mapped", None)
    return mapped or address


def _is_public(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    return address.is_global and not address.is_multicast


def on_this_machine(host: str) -> bool:
    """`localhost` or a loopback address literal (the sandbox, a local gateway)."""
    address = _address(host)
    return host.lower() == "localhost" if address is None else address.is_loopback


@dataclass(frozen=True)
class LinkPolicy:
    """One vendor client's rule for links from its answers."""

    vendor: str
    base_url: str
    result_hosts: tuple[str, ...]  # host patterns (fnmatch, case-insensitive); any port

    @property
    def base(self) -> tuple[str, int]:
        parts = urlsplit(self.base_url)
        return (parts.hostname or "").lower(), parts.port or DEFAULT_PORTS.get(parts.scheme, 0)

    @property
    def local_base(self) -> bool:
        return on_this_machine(self.base[0])

    def patterns(self) -> tuple[str, ...]:
        return self.result_hosts + setting_patterns()

    def _refuse(self, what: str, where: str, why: str) -> VendorError:
        return VendorError(self.vendor, "UnsafeURL", f"refusing the {what} on {where}: {why}")

    def check(self, url: str, what: str = "result link") -> SplitResult:
        """The link's parts, or VendorError UnsafeURL (nothing was sent). Never quotes the query
        (a signed link carries its signature there)."""
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError:
            raise self._refuse(what, "a malformed URL", "it cannot be parsed") from None
        host = (parts.hostname or "").lower()
        where = f"{parts.scheme}://{host}" + (f":{port}" if port else "")
        if parts.scheme not in DEFAULT_PORTS or not host:
            raise self._refuse(what, where or "(no host)", "only http(s) links with a host are followed")
        if parts.username is not None or parts.password is not None:
            raise self._refuse(what, where, "the link carries a user name or password")
        if (host, port or DEFAULT_PORTS[parts.scheme]) == self.base:
            return parts
        if not any(fnmatchcase(host, pattern) for pattern in self.patterns()):
            raise self._refuse(what, where, f"{self.vendor} links are followed only to its own hosts "
                               f"({', '.join(self.result_hosts)}) or to the service's own address "
                               f"({self.base[0]}:{self.base[1]}); if that host is genuinely {self.vendor}'s, "
                               f"add it to {SETTING}")
        address = _address(host)
        if address is not None and not self.local_base and not _is_public(address):
            raise self._refuse(what, where, "not a public address")
        return parts

    def trusts(self, host: str, port: int) -> bool:
        """No address check for the base's own host:port, or when the base is on this machine."""
        return self.local_base or (host.lower(), port) == self.base

    def connect_addresses(self, host: str, port: int) -> list[str]:
        """The addresses to connect to for `host`: every address it resolves to must be public."""
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except socket.gaierror:
            return [host]  # let the connection fail as it would have (NameResolutionError)
        addresses = list(dict.fromkeys(info[4][0] for info in infos))
        for text in addresses:
            address = _address(text)
            if address is None or not _is_public(address):
                kind = "loopback" if address is not None and address.is_loopback else "private or reserved"
                raise self._refuse("link", host, f"the name resolves to {text}, a {kind} address, and "
                                   f"the service ({self.base[0]}) is not on this machine")
        return addresses


class _Guarded:
    """urllib3 connection mixin: connects only to checked addresses and tells the run's
    control about its socket (a cancelled or overdue run shuts it, ending any blocked read)."""

    policy: LinkPolicy
    control: object  # transport.RunControl (has track(sock))

    def _new_conn(self):
        if self.proxy is not None or self.policy.trusts(self.host, self.port):
            return super()._new_conn()
        named = self._dns_host
        addresses = self.policy.connect_addresses(named, self.port)
        try:
            for address in addresses:  # in order, as urllib3 would try them
                self._dns_host = address
                try:
                    return super()._new_conn()
                except (NewConnectionError, ConnectTimeoutError):
                    if address == addresses[-1]:
                        raise
        finally:
            self._dns_host = named  # TLS still checks the certificate against the name

    def connect(self):
        super().connect()
        self.control.track(self.sock)


class _GuardedAdapter(HTTPAdapter):
    def __init__(self, pools: dict):
        self._pools = pools
        super().__init__()

    def init_poolmanager(self, *args, **kwargs):
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = self._pools

    def proxy_manager_for(self, proxy, **proxy_kwargs):
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        manager.pool_classes_by_scheme = self._pools
        return manager


def guard(session, policy: LinkPolicy, control) -> None:
    """Make every connection of `session` follow `policy`'s address rule and be tracked by `control`."""
    attrs = {"policy": policy, "control": control}
    http = type("GuardedHTTPConnection", (_Guarded, HTTPConnection), attrs)
    https = type("GuardedHTTPSConnection", (_Guarded, HTTPSConnection), attrs)
    pools = {"http": type("GuardedHTTPPool", (HTTPConnectionPool,), {"ConnectionCls": http}),
             "https": type("GuardedHTTPSPool", (HTTPSConnectionPool,), {"ConnectionCls": https})}
    adapter = _GuardedAdapter(pools)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
