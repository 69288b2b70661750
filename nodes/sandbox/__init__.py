"""Offline sandbox: a loopback HTTP server speaking the vendors' protocols (see server.py).

`Sandbox` is the server with every vendor emulator installed. To add a vendor, write a mixin like
volc.VolcEmulator (routes, fault kinds, settings in `_install_vendors`) and add it to the bases.
"""

from .dashscope import DashScopeEmulator
from .server import SandboxServer, serve_forever_cli
from .volc_emulator import VolcEmulator


class Sandbox(VolcEmulator, DashScopeEmulator, SandboxServer):
    """Loopback emulator of the outpainting vendors; see SandboxServer, VolcEmulator and
    DashScopeEmulator."""


__all__ = ["Sandbox", "SandboxServer", "serve_forever_cli"]
