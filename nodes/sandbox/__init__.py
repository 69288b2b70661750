"""Offline sandbox: a loopback HTTP server speaking both vendors' protocols.

`Sandbox` is the server (server.py) with the Volcengine and DashScope emulators mounted on it as
`sb.volc` and `sb.dashscope`. Each emulator's settings are also the Sandbox's own attributes and
keyword arguments, named with the vendor first: `Sandbox(dashscope_pending_s=5)`,
`sb.volc_access_key` (= `sb.volc.settings.access_key`).
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any, TextIO

from ..core.credentials import DashScopeCredentials, VolcCredentials
from .dashscope_emulator import REGION as DASHSCOPE_REGION
from .dashscope_emulator import DashScopeEmulator, DashScopeSettings
from .server import SandboxServer
from .standalone import parse_settings, serve_forever
from .volc_emulator import VolcEmulator, VolcSettings

SERVER_SETTINGS = ("latency", "clock_offset", "result_ttl", "max_body_bytes", "result_host")
VENDOR_SETTINGS = {"volc": VolcSettings, "dashscope": DashScopeSettings}  # attribute -> its settings class


class Sandbox(SandboxServer):
    """Loopback emulator of the outpainting vendors; see SandboxServer for the shared API,
    VolcSettings and DashScopeSettings for the `volc_*` / `dashscope_*` settings.
    An unknown keyword argument is a TypeError."""

    def __init__(self, port: int = 0, *, host: str = "127.0.0.1", echo: TextIO | None = None, **settings: Any):
        unknown = [name for name in settings if name not in self.setting_names()]
        if unknown:
            raise TypeError(f"unknown sandbox setting {unknown[0]!r}")
        super().__init__(port, host=host, echo=echo,
                         **{name: value for name, value in settings.items() if name in SERVER_SETTINGS})
        self.volc = VolcEmulator(self)
        self.dashscope = DashScopeEmulator(self)
        for name, value in settings.items():
            if name not in SERVER_SETTINGS:
                setattr(self, name, value)

    @classmethod
    def setting_names(cls) -> tuple[str, ...]:
        """Every name Sandbox(**settings) accepts (and that may be changed later as an attribute)."""
        return SERVER_SETTINGS + tuple(f"{vendor}_{f.name}" for vendor, settings in VENDOR_SETTINGS.items()
                                       for f in fields(settings))

    def describe(self) -> list[str]:
        return super().describe() + self.dashscope.describe() + self.volc.describe()

    def reset(self) -> None:
        """Forget requests, faults, results, errors and DashScope tasks and uploads (settings and
        added keys are kept)."""
        super().reset()
        self.dashscope.reset()

    def volc_credentials(self) -> VolcCredentials:
        """The demo AK/SK pair, signed requests to this sandbox (the sandbox must be running)."""
        return VolcCredentials("aksk", "sandbox", self.url, self.volc_access_key, self.volc_secret_key)

    def volc_bearer_credentials(self) -> VolcCredentials:
        """The demo gateway key, Bearer requests to this sandbox's /volcv/v1 route."""
        return VolcCredentials("bearer", "sandbox", f"{self.url}/volcv/v1", api_key=self.volc_api_key)

    def dashscope_credentials(self) -> DashScopeCredentials:
        """The demo API key on this sandbox's DashScope base URL (the sandbox must be running)."""
        return DashScopeCredentials("sandbox", f"{self.url}/api/v1", self.dashscope_api_key)

    def add_volc_key(self, access_key: str, secret_key: str) -> None:
        self.volc.add_key(access_key, secret_key)

    def add_volc_api_key(self, key: str) -> None:
        self.volc.add_api_key(key)

    def add_dashscope_key(self, key: str, region: str = DASHSCOPE_REGION) -> None:
        self.dashscope.add_key(key, region)

    def dashscope_task(self, task_id: str) -> dict[str, Any] | None:
        return self.dashscope.task(task_id)

    def dashscope_charged_images(self) -> int:
        return self.dashscope.charged_images()


def _setting(vendor: str, name: str) -> property:
    def get(self):
        return getattr(getattr(self, vendor).settings, name)

    def set_(self, value):
        setattr(getattr(self, vendor).settings, name, value)

    return property(get, set_, doc=f"{vendor}.settings.{name}")


for _vendor, _settings in VENDOR_SETTINGS.items():
    for _field in fields(_settings):
        setattr(Sandbox, f"{_vendor}_{_field.name}", _setting(_vendor, _field.name))


__all__ = ["Sandbox", "SandboxServer", "parse_settings", "serve_forever"]
