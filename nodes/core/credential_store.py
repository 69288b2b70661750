"""The pack's server-side credential store: one small JSON file, written only by the settings panel's
routes, read by credentials.py (after the environment, before the vendor SDKs' files).

Where it lives:
- inside ComfyUI: `<ComfyUI user directory>/cloud_outpaint/credentials.json` (nodes/routes.py passes
  the directory in at load time with set_default_path(); this module never imports ComfyUI);
- elsewhere: $CLOUD_OUTPAINT_STORE if set, else ~/.config/cloud-outpaint/credentials.json.

Writes are atomic (a temp file in the same directory, then os.replace) and owner-only (file 0600,
directory 0700). Nothing here ever returns or logs a secret: credential_status() gives only where
the credentials come from and the last four characters of the access key / API key.
"""

from __future__ import annotations

import json
import os
import pathlib
import re
import threading
from collections.abc import Mapping
from urllib.parse import urlsplit

from . import credentials
from .errors import ConfigError, InputError

FILE_NAME = "credentials.json"
PACK_DIR_NAMES = ("cloud_outpaint", "cloud-outpaint")  # directories that are ours to chmod 0700
ENV_VAR = "CLOUD_OUTPAINT_STORE"
VENDORS = ("volc", "dashscope")
FIELDS = {
    "volc": ("access_key", "secret_key", "session_token", "api_key", "base_url"),
    "dashscope": ("api_key", "base_url", "workspace"),
}
MAX_CHARS = 512
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")

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
    """The whole store ({} when the file does not exist). A damaged file raises ConfigError, naming
    the file but never quoting its content."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise ConfigError(f"the credential store {path} cannot be read: {exc.__class__.__name__}") from None
    try:
        data = json.loads(text)
    except ValueError:
        raise ConfigError(f"the credential store {path} is not valid JSON; clear it in the Cloud Outpaint "
                          "settings or delete the file") from None
    if not isinstance(data, dict) or any(not isinstance(data.get(v, {}), dict) for v in VENDORS):
        raise ConfigError(f"the credential store {path} does not have the expected shape; clear it in the "
                          "Cloud Outpaint settings or delete the file")
    return data


def _load_for_update(path: pathlib.Path) -> dict:
    """Like load(), but a damaged file counts as empty: nothing usable would be lost by rewriting it."""
    try:
        return load(path)
    except ConfigError:
        if path.is_file():
            return {}
        raise


# ---- validate ------------------------------------------------------------------------------------

def check_vendor(vendor) -> str:
    if vendor not in VENDORS:
        raise InputError(f"vendor {vendor!r}: use one of {', '.join(VENDORS)}")
    return vendor


def clean_fields(vendor: str, fields: Mapping) -> dict[str, str]:
    """The non-empty fields, stripped and checked; unknown names, non-strings, control characters
    (newlines), over-long values and non-http(s) base URLs raise InputError (which never quotes a value)."""
    check_vendor(vendor)
    allowed = FIELDS[vendor]
    unknown = sorted(str(k) for k in fields if k not in allowed)
    if unknown:
        raise InputError(f"unknown field(s) for {vendor}: {', '.join(unknown)}; allowed: {', '.join(allowed)}")
    cleaned = {}
    for name, value in fields.items():
        if value is None:
            continue
        if not isinstance(value, str):
            raise InputError(f"{vendor} {name} must be a string")
        value = value.strip()
        if not value:
            continue
        if len(value) > MAX_CHARS:
            raise InputError(f"{vendor} {name} is {len(value)} characters long; at most {MAX_CHARS} are accepted")
        if _CONTROL.search(value):
            raise InputError(f"{vendor} {name} contains a line break or another control character")
        if name == "base_url":
            parts = urlsplit(value)
            if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment \
                    or " " in value:
                raise InputError(f"{vendor} base_url must be an http:// or https:// URL without query or "
                                 "fragment, e.g. https://dashscope.aliyuncs.com/api/v1")
            value = value.rstrip("/")
        elif " " in value:
            raise InputError(f"{vendor} {name} contains a space")
        cleaned[name] = value
    return cleaned


# ---- write ---------------------------------------------------------------------------------------

def _prepare_dir(directory: pathlib.Path) -> None:
    if not directory.exists():
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(directory, 0o700)  # mkdir's mode is filtered by the umask
    elif directory.name in PACK_DIR_NAMES:
        os.chmod(directory, 0o700)


def _write(path: pathlib.Path, data: dict) -> None:
    """Atomic, owner-only replace. The text is built before anything touches the disk, and a failure
    at any step leaves the previous file as it was (the temp file is removed)."""
    text = json.dumps(data, ensure_ascii=False, indent=1, sort_keys=True) + "\n"
    _prepare_dir(path.parent)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        try:
            os.fchmod(fd, 0o600)  # O_CREAT's mode is filtered by the umask too
            os.write(fd, text.encode("utf-8"))
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    os.chmod(path, 0o600)


def save(path: pathlib.Path, vendor: str, fields: Mapping) -> dict:
    """Merge `fields` into the vendor's section: non-empty fields replace, other keys are kept.
    Returns the whole new store (contains secrets: for the caller's use only, never to be sent)."""
    cleaned = clean_fields(vendor, fields)
    with _lock:
        data = _load_for_update(path)
        section = {k: v for k, v in (data.get(vendor) or {}).items() if k in FIELDS[vendor]}
        section.update(cleaned)
        data[vendor] = section
        if path.exists():
            os.chmod(path, 0o600)
        _write(path, data)
        return data


def clear(path: pathlib.Path, vendor: str) -> dict:
    """Remove the vendor's section (the other vendor's is kept)."""
    check_vendor(vendor)
    with _lock:
        data = _load_for_update(path)
        if vendor not in data and path.exists():
            return data
        data.pop(vendor, None)
        _write(path, data)
        return data


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
        stored = (load(store_path).get(vendor) or {}) if store_path is not None else {}
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
