"""Where a vendor node sends its requests: the real cloud, or the pack's offline sandbox.

The sandbox is a loopback server started once per process on first use; the node talks to it
over real HTTP with the very same client code, so "sandbox" exercises everything but the vendor.
"""

from __future__ import annotations

import os
import threading

from . import credential_store, credentials
from .errors import InputError
from .widgets import BACKENDS

_lock = threading.Lock()
_shared = None


def shared_sandbox():
    global _shared
    with _lock:
        if _shared is None:
            from ..sandbox import Sandbox

            _shared = Sandbox()
            _shared.start()
        return _shared


def volc_credentials(backend: str, env=os.environ, store_path=None) -> credentials.VolcCredentials:
    """`store_path` None = the pack's store (credential_store.default_path(): ComfyUI's user directory
    inside ComfyUI, else $CLOUD_OUTPAINT_STORE or ~/.config/cloud-outpaint/credentials.json)."""
    if backend == "cloud":
        return credentials.volc_credentials(env, store_path or credential_store.default_path(env))
    if backend == "sandbox":
        return shared_sandbox().volc_credentials()
    raise InputError(f"backend {backend!r}: use one of {', '.join(BACKENDS)}")


def dashscope_credentials(backend: str, env=os.environ, store_path=None) -> credentials.DashScopeCredentials:
    if backend == "cloud":
        return credentials.dashscope_credentials(env, store_path or credential_store.default_path(env))
    if backend == "sandbox":
        return shared_sandbox().dashscope_credentials()
    raise InputError(f"backend {backend!r}: use one of {', '.join(BACKENDS)}")
