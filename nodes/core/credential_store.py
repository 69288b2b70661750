"""The pack's server-side credential store: one small JSON file, written only by the settings panel's
routes, read by credentials.py (after the environment, before the vendor SDKs' files).

Where it lives:
- inside ComfyUI: `<ComfyUI user directory>/cloud_outpaint/credentials.json` (nodes/routes.py passes
  the directory in at load time with set_default_path(); this module never imports ComfyUI);
- elsewhere: $CLOUD_OUTPAINT_STORE if set, else ~/.config/cloud-outpaint/credentials.json.

Writes are atomic (a temp file in the same directory, then os.replace) and owner-only (file 0600,
missing folders 0700), never through a symlink (private_file.py). Reading (credentials.read_store)
takes only a small regular file of ours and checks every section's types: a damaged section is
reported by name and a save keeps the other section as it was. A key is only ever sent to the base
URL saved with it, so a save that changes the base URL must carry the key too (save()).
Nothing here ever returns or logs a secret: credential_status() gives only where the credentials
come from and the last four characters of the access key / API key.
"""

from __future__ import annotations

import json
import os
import pathlib
import threading
from collections.abc import Mapping

from . import credentials, private_file
from .credentials import FIELDS, MAX_CHARS, SECRET_FIELDS, VENDORS  # noqa: F401 - part of this module's API
from .errors import ConfigError, InputError

FILE_NAME = "credentials.json"
ENV_VAR = "CLOUD_OUTPAINT_STORE"

_lock = threading.Lock()
_default_path: pathlib.Path | None = None  # set by the ComfyUI layer (routes.install) at load time


# ---- where ---------------------------------------------------------------------------------------

def path_in_user_dir(user_dir: str | os.PathLike) -> pathlib.Path:
    """The store inside ComfyUI's user directory (outside every user's /userdata area)."""
    return pathlib.Path(user_dir) / "cloud_outpaint" / FILE_NAME


def set_default_path(path: str | os.PathLike | None) -> None:
    """Called once by the ComfyUI layer; None goes back to the environment / ~/.config default."""
    global _default_path
    _default_path = pathlib.Path(path) if path is not None else None


def default_path(env: Mapping[str, str] = os.environ) -> pathlib.Path:
    """The store used when no path is passed: the one ComfyUI set, else $CLOUD_OUTPAINT_STORE, else
    ~/.config/cloud-outpaint/credentials.json (resolved on every call, so HOME changes are seen)."""
    if _default_path is not None:
        return _default_path
    if env.get(ENV_VAR):
        return pathlib.Path(env[ENV_VAR]).expanduser()
    return pathlib.Path.home() / ".config" / "cloud-outpaint" / FILE_NAME


# ---- read ----------------------------------------------------------------------------------------

def load(path: pathlib.Path) -> dict:
    """The checked sections ({} when the file does not exist). A file that cannot be used or a
    damaged section raises ConfigError, naming the file (and section) but never quoting it."""
    contents = credentials.read_store(path)
    if contents.damaged:
        raise ConfigError("; ".join(contents.damaged.values()))
    return contents.sections


def _load_for_update(path: pathlib.Path) -> tuple[dict, dict]:
    """(what to write back, the checked sections). A damaged section is written back as it was
    found (its keys are not lost to another vendor's save); a file that cannot be used at all
    holds nothing usable and is replaced."""
    try:
        contents = credentials.read_store(path)
    except ConfigError:
        return {}, {}
    return dict(contents.raw), contents.sections


# ---- validate ------------------------------------------------------------------------------------

def check_vendor(vendor) -> str:
    if not isinstance(vendor, str) or vendor not in VENDORS:
        raise InputError(f"vendor {vendor!r}: use one of {', '.join(VENDORS)}"[:200])
    return vendor


def clean_fields(vendor: str, fields: Mapping) -> dict[str, str]:
    """The non-empty fields, stripped and checked (credentials.clean_value): unknown names,
    non-strings, lone surrogates, control characters, over-long values and base URLs that are not
    https:// (http:// for loopback) or carry user:password@ raise InputError, which names the
    field and never quotes a value."""
    check_vendor(vendor)
    allowed = FIELDS[vendor]
    unknown = sorted(str(k) for k in fields if k not in allowed)
    if unknown:
        raise InputError(f"unknown field(s) for {vendor}: {', '.join(unknown)}; allowed: {', '.join(allowed)}"
                         .encode("utf-8", "replace").decode("utf-8"))
    cleaned = {}
    for name, value in fields.items():
        if value is None:
            continue
        try:
            value = credentials.clean_value(name, value)
        except ValueError as problem:
            raise InputError(f"{vendor} {name} {problem}") from None
        if value:
            cleaned[name] = value
    return cleaned


def _merge(vendor: str, old: dict, new: dict) -> dict:
    """The vendor's new section. A key is sent only to the base URL saved with it, so a new base
    URL is refused unless the same save carries a complete key; the stored secrets the save does
    not repeat (say an STS token, or the AK/SK when a gateway key comes) are then dropped."""
    url = new.get("base_url")
    if url is not None and url != old.get("base_url", credentials.DEFAULT_BASE[vendor]):
        complete = bool(new.get("api_key")) or (vendor == "volc" and bool(new.get("access_key"))
                                                 and bool(new.get("secret_key")))
        if not complete:
            what = "the access key and secret key (or the gateway API key)" if vendor == "volc" else "the API key"
            raise InputError(f"{vendor} base_url: a new base URL is saved only together with {what}, entered again "
                             "in the same save (a saved key is only ever sent to the URL it was saved with)")
        old = {k: v for k, v in old.items() if k not in SECRET_FIELDS[vendor]}
    return {**old, **new}


# ---- write ---------------------------------------------------------------------------------------

def _write(path: pathlib.Path, data: dict) -> None:
    """Atomic, owner-only replace; the text is built before anything touches the disk."""
    text = json.dumps(data, ensure_ascii=False, indent=1, sort_keys=True) + "\n"
    encoded = text.encode("utf-8")
    try:
        private_file.make_private_dirs(path.parent, private_file.OWN_DIR_NAMES)
    except private_file.UnsafeFile as problem:
        raise ConfigError(f"{problem}: the keys are not written through it") from None
    private_file.write_private(path, encoded)


def save(path: pathlib.Path, vendor: str, fields: Mapping) -> dict:
    """Merge `fields` into the vendor's section: non-empty fields replace, other keys are kept
    (see _merge for a new base URL). Returns the checked sections of the new store (contains
    secrets: for the caller's use only, never to be sent)."""
    cleaned = clean_fields(vendor, fields)
    with _lock:
        data, sections = _load_for_update(path)
        data[vendor] = _merge(vendor, sections.get(vendor, {}), cleaned)
        _write(path, data)
        return {**sections, vendor: data[vendor]}


def clear(path: pathlib.Path, vendor: str) -> dict:
    """Remove the vendor's section (the other vendor's is kept, damaged or not)."""
    check_vendor(vendor)
    with _lock:
        data, sections = _load_for_update(path)
        data.pop(vendor, None)  # written even when absent: that replaces a file that cannot be used
        sections.pop(vendor, None)
        _write(path, data)
        return sections


# ---- status (never a secret) ---------------------------------------------------------------------

def _hint(key: str) -> str | None:
    """"…" plus the last four characters; nothing of a key too short to hide the rest."""
    if not key:
        return None
    return "…" + key[-4:] if len(key) >= 12 else "…"


def credential_status(vendor: str, env: Mapping[str, str] = os.environ, store_path: pathlib.Path | None = None,
                      home: pathlib.Path | None = None) -> dict:
    """Where the vendor's credentials come from, with no secret in it (safe to send to the browser)."""
    check_vendor(vendor)
    try:
        stored = credentials.read_store(store_path).sections.get(vendor, {})
    except ConfigError:
        stored = {}
    status = {"configured": False, "source": None, "hint": None, "base_url": None, "problem": None,
              "stored_fields": sorted(k for k in FIELDS[vendor] if stored.get(k))}
    if vendor == "volc":
        status["kind"] = None
    else:
        status["workspace"] = None
    try:
        if vendor == "volc":
            c = credentials.volc_credentials(env, store_path, home)
            status.update(kind=c.kind, hint=_hint(c.access_key if c.kind == "aksk" else c.api_key))
        else:
            c = credentials.dashscope_credentials(env, store_path, home)
            status.update(hint=_hint(c.api_key), workspace=c.workspace or None)
        status.update(configured=True, source=c.source, base_url=c.base_url)
    except ConfigError as exc:
        status["problem"] = str(exc)
        status["base_url"] = stored.get("base_url") or None
        if vendor == "dashscope":
            status["workspace"] = stored.get("workspace") or None
    return status


def all_status(env: Mapping[str, str] = os.environ, store_path: pathlib.Path | None = None,
               home: pathlib.Path | None = None) -> dict:
    return {vendor: credential_status(vendor, env, store_path, home) for vendor in VENDORS}
