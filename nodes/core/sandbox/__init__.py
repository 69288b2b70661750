"""Offline sandbox: a loopback HTTP server speaking the vendors' protocols (see server.py).

`Sandbox` is the server with every vendor emulator installed. To add a vendor, write a mixin like
volc.VolcEmulator (routes, fault kinds, settings in `_install_vendors`) and add it to the bases.
"""

from .server import SandboxServer, serve_forever_cli
from .volc import VolcEmulator


class Sandbox(VolcEmulator, SandboxServer):
    """Loopback emulator of the outpainting vendors; see SandboxServer and VolcEmulator."""


__all__ = ["Sandbox", "SandboxServer", "serve_forever_cli"]
