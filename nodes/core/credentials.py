"""Where credentials come from: environment first, then the pack's server-side store, then the
vendor SDKs' own files. Never from widgets (they end up in workflow JSON and PNG metadata).

Every lookup returns where the value came from, so the UI can say "configured via env" without
ever showing the secret.

A key travels only to the base URL of its own source (a base URL saved through the settings
panel must never redirect a key from the environment):
- environment key -> VOLC_BASE_URL / DASHSCOPE_HTTP_BASE_URL, else the vendor's default host;
- store key       -> the store's base_url, else the default host;
- SDK-file key    -> the environment's base URL, else the default host (as the vendor SDKs do).
Custom base URLs are https://, or plain http:// for a loopback host (the sandbox, a local
gateway), and never carry user:password@. This module also says what a valid stored value is
(credential_store.py writes the store with the same rules).
"""

from __future__ import annotations

import configparser
import ipaddress
import json
import os
import pathlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from . import private_file
from .errors import ConfigError
from .redaction import host_of

VOLC_DEFAULT_BASE = "https://visual.volcengineapi.com"
DASHSCOPE_DEFAULT_BASE = "https://dashscope.aliyuncs.com/api/v1"
VENDORS = ("volc", "dashscope")
DEFAULT_BASE = {"volc": VOLC_DEFAULT_BASE, "dashscope": DASHSCOPE_DEFAULT_BASE}
FIELDS = {
    "volc": ("access_key", "secret_key", "session_token", "api_key", "base_url"),
    "dashscope": ("api_key", "base_url", "workspace"),
}
SECRET_FIELDS = {"volc": ("access_key", "secret_key", "session_token", "api_key"), "dashscope": ("api_key",)}
MAX_CHARS = 512
STORE_MAX_BYTES = 64 * 1024  # a store holds a few short strings; anything bigger is not ours
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


# ---- what a valid value is ------------------------------------------------------------------------

def is_loopback_host(host: str | None) -> bool:
    if not host:
        return False
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _base_url_problem(url: str) -> str | None:
    """What is wrong with a custom base URL (never quoting it: it could hold a password)."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError:
        return "is not a valid URL"
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment \
            or "\\" in url or " " in url:
        return "must be an https:// URL without query or fragment, e.g. https://dashscope.aliyuncs.com/api/v1"
    if "@" in parts.netloc:
        return "must not contain user:password@ (a gateway's credentials go in the key fields)"
    if parts.scheme == "http" and not is_loopback_host(parts.hostname):
        return (f"must use https:// ({host_of(url)} is not a loopback host; plain http:// is accepted only for "
                "127.0.0.1, ::1 or localhost)")
    return None


def clean_value(name: str, value) -> str:
    """A stored / entered field, stripped ('' = empty); raises ValueError saying what is wrong
    (never quoting the value, which may be a secret)."""
    if not isinstance(value, str):
        raise ValueError("must be a string")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("contains a character that is not valid text (a lone surrogate)") from None
    value = value.strip()
    if len(value) > MAX_CHARS:
        raise ValueError(f"is {len(value)} characters long; at most {MAX_CHARS} are accepted")
    if _CONTROL.search(value):
        raise ValueError("contains a line break or another control character")
    if not value:
        return ""
    if name == "base_url":
        problem = _base_url_problem(value)
        if problem:
            raise ValueError(problem)
        return value.rstrip("/")
    if " " in value:
        raise ValueError("contains a space")
    if not value.isascii():  # keys and ids travel in HTTP headers
        raise ValueError("contains a character that is not plain ASCII")
    return value


def _env_base(env: Mapping[str, str], name: str) -> str:
    try:
        return clean_value("base_url", env.get(name) or "")
    except ValueError as problem:
        raise ConfigError(f"{name} {problem}") from None


# ---- the pack's store (read side; credential_store.py writes it) ---------------------------------

@dataclass(frozen=True)
class StoreContents:
    raw: dict  # the file's JSON object as found (damaged sections included, for save to keep)
    sections: dict  # vendor -> its checked fields (str values, empty ones left out)
    damaged: dict  # vendor -> ConfigError text naming the section


def _check_section(vendor: str, section) -> dict:
    if not isinstance(section, dict):
        raise ValueError("it is not an object")
    checked = {}
    for name in FIELDS[vendor]:
        if section.get(name) is None:
            continue
        try:
            value = clean_value(name, section[name])
        except ValueError as problem:
            raise ValueError(f"{name} {problem}") from None
        if value:
            checked[name] = value
    return checked


def read_store(path: pathlib.Path | None) -> StoreContents:
    """The store, each section checked. A file that cannot be used at all (not a regular file of
    ours, over 64 KB, not a JSON object) raises ConfigError naming the file but never quoting it;
    a damaged section is reported in `damaged` and the other section stays usable."""
    if path is None:
        return StoreContents({}, {}, {})
    try:
        data = private_file.read_private(path, STORE_MAX_BYTES)
    except private_file.UnsafeFile as problem:
        raise ConfigError(f"the credential store {path} {problem}, so it is not read; delete it, or save "
                          "the keys again in the Cloud Outpaint settings (that replaces it)") from None
    except OSError as exc:
        raise ConfigError(f"the credential store {path} cannot be read: {exc.__class__.__name__}") from None
    if data is None:
        return StoreContents({}, {}, {})
    try:
        raw = json.loads(data.decode("utf-8"))
    except (ValueError, RecursionError):
        raise ConfigError(f"the credential store {path} is not valid JSON; clear it in the Cloud Outpaint "
                          "settings or delete the file") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"the credential store {path} does not have the expected shape; clear it in the "
                          "Cloud Outpaint settings or delete the file")
    sections, damaged = {}, {}
    for vendor in VENDORS:
        if raw.get(vendor) is None:
            continue
        try:
            sections[vendor] = _check_section(vendor, raw[vendor])
        except ValueError as problem:
            damaged[vendor] = (f"the {vendor} section of the credential store {path} is damaged ({problem}); "
                               f"save the {vendor} keys again in the Cloud Outpaint settings, or clear them")
    return StoreContents(raw, sections, damaged)


def stored_section(store_path: pathlib.Path | None, vendor: str) -> dict:
    contents = read_store(store_path)
    if vendor in contents.damaged:
        raise ConfigError(contents.damaged[vendor])
    return contents.sections.get(vendor, {})


def _sdk_text(path: pathlib.Path) -> str | None:
    """A vendor SDK's own file (the user may symlink it; still a small regular file)."""
    try:
        data = private_file.read_private(path, STORE_MAX_BYTES, follow_symlinks=True, check_owner=False)
    except (private_file.UnsafeFile, OSError) as problem:
        raise ConfigError(f"{path} {problem if isinstance(problem, private_file.UnsafeFile) else 'cannot be read'}"
                          ", so it is not read") from None
    return None if data is None else data.decode("utf-8", "replace")


# ---- Volcengine ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class VolcCredentials:
    """AK/SK (optionally with an STS token) for V4 signing, or an API key for a Bearer gateway."""

    kind: str  # "aksk" | "bearer"
    source: str  # "env" | "store" | "sdk-file" | "sandbox"
    base_url: str
    access_key: str = ""
    secret_key: str = field(default="", repr=False)
    session_token: str = field(default="", repr=False)
    api_key: str = field(default="", repr=False)


def _volc_sdk_files(home: pathlib.Path) -> tuple[str, str] | None:
    """~/.volc/credentials (ini) or ~/.volc/config (json), as the volcengine SDK reads them."""
    text = _sdk_text(home / ".volc" / "credentials")
    if text is not None:
        parser = configparser.ConfigParser()
        try:
            parser.read_string(text)
        except configparser.Error:
            parser = configparser.ConfigParser()
        if parser.has_section("default"):
            ak = parser.get("default", "access_key_id", fallback="")
            sk = parser.get("default", "secret_access_key", fallback="")
            if ak and sk:
                return ak, sk
    text = _sdk_text(home / ".volc" / "config")
    if text is not None:
        try:
            data = json.loads(text)
        except ValueError:
            return None
        if isinstance(data, dict) and isinstance(data.get("ak"), str) and isinstance(data.get("sk"), str) \
                and data["ak"] and data["sk"]:
            return data["ak"], data["sk"]
    return None


def _volc_candidates(env: Mapping[str, str], store_path: pathlib.Path | None, home: pathlib.Path | None):
    """(kind, source, ak, sk, token, api_key, base) in priority order, each base from its key's own
    source. The store and the SDK files are read only when the environment's keys are not taken."""
    if env.get("VOLC_ACCESSKEY") and env.get("VOLC_SECRETKEY"):
        yield ("aksk", "env", env["VOLC_ACCESSKEY"], env["VOLC_SECRETKEY"], env.get("VOLC_SESSION_TOKEN", ""), "",
               _env_base(env, "VOLC_BASE_URL"))
    if env.get("VOLC_API_KEY"):
        yield "bearer", "env", "", "", "", env["VOLC_API_KEY"], _env_base(env, "VOLC_BASE_URL")
    stored = stored_section(store_path, "volc")
    if stored.get("access_key") and stored.get("secret_key"):
        yield ("aksk", "store", stored["access_key"], stored["secret_key"], stored.get("session_token", ""), "",
               stored.get("base_url", ""))
    if stored.get("api_key"):
        yield "bearer", "store", "", "", "", stored["api_key"], stored.get("base_url", "")
    sdk = _volc_sdk_files(home or pathlib.Path.home())
    if sdk:
        yield "aksk", "sdk-file", sdk[0], sdk[1], "", "", _env_base(env, "VOLC_BASE_URL")


def volc_credentials(env: Mapping[str, str] = os.environ, store_path: pathlib.Path | None = None,
                     home: pathlib.Path | None = None) -> VolcCredentials:
    """Resolve Volcengine credentials; raises ConfigError saying what to set when none are found.

    VOLC_AUTH=aksk|bearer forces one scheme when both are configured (default: AK/SK first).
    """
    forced = (env.get("VOLC_AUTH") or "").lower()
    if forced not in ("", "aksk", "bearer"):
        raise ConfigError(f"VOLC_AUTH={forced!r}: use aksk or bearer")
    for kind, source, ak, sk, token, key, base in _volc_candidates(env, store_path, home):
        if forced and kind != forced:
            continue
        if kind == "bearer" and not base:
            if source == "env":
                raise ConfigError("VOLC_API_KEY is for a Bearer-token gateway: also set VOLC_BASE_URL to the "
                                  "gateway's URL (the official host only accepts AK/SK signing)")
            raise ConfigError("the saved gateway API key has no gateway base URL: save the key and the gateway's "
                              "URL together in the Cloud Outpaint settings (the official host only accepts AK/SK)")
        return VolcCredentials(kind, source, base or VOLC_DEFAULT_BASE, ak, sk, token, key)
    raise ConfigError("no Volcengine credentials: set VOLC_ACCESSKEY and VOLC_SECRETKEY (or VOLC_API_KEY with "
                      "VOLC_BASE_URL for a gateway), save them in the Cloud Outpaint settings, or put them in "
                      "~/.volc/credentials. To try the node without an account, choose backend = sandbox.")


# ---- DashScope -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class DashScopeCredentials:
    source: str  # "env" | "store" | "sdk-file" | "sandbox"
    base_url: str
    api_key: str = field(default="", repr=False)
    workspace: str = ""


def dashscope_credentials(env: Mapping[str, str] = os.environ, store_path: pathlib.Path | None = None,
                          home: pathlib.Path | None = None) -> DashScopeCredentials:
    """DASHSCOPE_API_KEY, then the pack's store, then the SDK's key file (DASHSCOPE_API_KEY_FILE_PATH
    or ~/.dashscope/api_key); each with the base URL (and workspace) of its own source."""
    env_workspace = env.get("DASHSCOPE_WORKSPACE_ID") or ""
    if (env.get("DASHSCOPE_API_KEY") or "").strip():
        return DashScopeCredentials("env", _env_base(env, "DASHSCOPE_HTTP_BASE_URL") or DASHSCOPE_DEFAULT_BASE,
                                    env["DASHSCOPE_API_KEY"].strip(), env_workspace)
    stored = stored_section(store_path, "dashscope")
    if stored.get("api_key"):
        return DashScopeCredentials("store", stored.get("base_url") or DASHSCOPE_DEFAULT_BASE, stored["api_key"],
                                    stored.get("workspace") or env_workspace)
    key_file = pathlib.Path(env.get("DASHSCOPE_API_KEY_FILE_PATH") or
                            (home or pathlib.Path.home()) / ".dashscope" / "api_key")
    key = (_sdk_text(key_file) or "").strip()
    if key:
        return DashScopeCredentials("sdk-file", _env_base(env, "DASHSCOPE_HTTP_BASE_URL") or DASHSCOPE_DEFAULT_BASE,
                                    key, env_workspace)
    raise ConfigError("no DashScope API key: set DASHSCOPE_API_KEY (a key of the China (Beijing) region: "
                      "image-out-painting runs only there), save it in the Cloud Outpaint settings, or put it in "
                      "~/.dashscope/api_key. To try the node without an account, choose backend = sandbox.")
