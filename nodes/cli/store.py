"""Which credential store file the CLI reads (the ComfyUI settings panel writes it)."""

from __future__ import annotations

import os
import pathlib

from ..core import credential_store

PACK_ROOT = pathlib.Path(__file__).resolve().parents[2]


def store_path(store: str | None) -> pathlib.Path:
    """--store, else $CLOUD_OUTPAINT_STORE, else ComfyUI's store when the pack is in custom_nodes and it
    exists, else ~/.config/cloud-outpaint/credentials.json."""
    if store:
        return pathlib.Path(store).expanduser()
    if not os.environ.get(credential_store.ENV_VAR) and PACK_ROOT.parent.name == "custom_nodes":
        comfy = credential_store.path_in_user_dir(PACK_ROOT.parent.parent / "user")
        if comfy.is_file():
            return comfy
    return credential_store.default_path(os.environ)
