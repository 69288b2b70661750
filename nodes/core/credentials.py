"""Where credentials come from: environment first, then the pack's server-side store, then the
vendor SDKs' own files. Never from widgets (they end up in workflow JSON and PNG metadata).

Every lookup returns where the value came from, so the UI can say "configured via env" without
ever showing the secret.
"""

from __future__ import annotations

import configparser
import json
import os
import pathlib
from collections.abc import Mapping
from dataclasses import dataclass, field

from .errors import ConfigError

VOLC_DEFAULT_BASE = "https://visual.volcengineapi.com"


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


def _store(store_path: pathlib.Path | None) -> dict:
    """The pack's own credential store (written by the settings panel). Missing file = empty."""
    if store_path is None or not store_path.exists():
        return {}
    try:
        data = json.loads(store_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"the credential store {store_path} cannot be read: {exc.__class__.__name__}") from None
    if not isinstance(data, dict) or any(not isinstance(data.get(v, {}), dict) for v in ("volc", "dashscope")):
        raise ConfigError(f"the credential store {store_path} does not have the expected shape; clear it in the "
                          "Cloud Outpaint settings or delete the file")
    return data


def _volc_sdk_files(home: pathlib.Path) -> tuple[str, str] | None:
    """~/.volc/credentials (ini) or ~/.volc/config (json), as the volcengine SDK reads them."""
    ini = home / ".volc" / "credentials"
    if ini.exists():
        parser = configparser.ConfigParser()
        parser.read(ini, encoding="utf-8")
        if parser.has_section("default"):
            ak = parser.get("default", "access_key_id", fallback="")
            sk = parser.get("default", "secret_access_key", fallback="")
            if ak and sk:
                return ak, sk
    config = home / ".volc" / "config"
    if config.exists():
        try:
            data = json.loads(config.read_text(encoding="utf-8"))
        except ValueError:
            return None
        if data.get("ak") and data.get("sk"):
            return data["ak"], data["sk"]
    return None


def volc_credentials(env: Mapping[str, str] = os.environ, store_path: pathlib.Path | None = None,
                     home: pathlib.Path | None = None) -> VolcCredentials:
    """Resolve Volcengine credentials; raises ConfigError saying what to set when none are found.

    VOLC_AUTH=aksk|bearer forces one scheme when both are configured (default: AK/SK first).
    """
    base = (env.get("VOLC_BASE_URL") or "").rstrip("/")
    forced = (env.get("VOLC_AUTH") or "").lower()
    if forced not in ("", "aksk", "bearer"):
        raise ConfigError(f"VOLC_AUTH={forced!r}: use aksk or bearer")
    stored = _store(store_path).get("volc", {})
    candidates = []
    if env.get("VOLC_ACCESSKEY") and env.get("VOLC_SECRETKEY"):
        candidates.append(("aksk", "env", env["VOLC_ACCESSKEY"], env["VOLC_SECRETKEY"],
                           env.get("VOLC_SESSION_TOKEN", ""), ""))
    if env.get("VOLC_API_KEY"):
        candidates.append(("bearer", "env", "", "", "", env["VOLC_API_KEY"]))
    if stored.get("access_key") and stored.get("secret_key"):
        candidates.append(("aksk", "store", stored["access_key"], stored["secret_key"],
                           stored.get("session_token", ""), ""))
    if stored.get("api_key"):
        candidates.append(("bearer", "store", "", "", "", stored["api_key"]))
    sdk = _volc_sdk_files(home or pathlib.Path.home())
    if sdk:
        candidates.append(("aksk", "sdk-file", sdk[0], sdk[1], "", ""))
    for kind, source, ak, sk, token, key in candidates:
        if forced and kind != forced:
            continue
        kind_base = base or (stored.get("base_url", "") if source == "store" else "")
        if kind == "bearer" and not kind_base:
            raise ConfigError("VOLC_API_KEY is for a Bearer-token gateway: also set VOLC_BASE_URL to the "
                              "gateway's URL (the official host only accepts AK/SK signing)")
        return VolcCredentials(kind, source, (kind_base or VOLC_DEFAULT_BASE).rstrip("/"), ak, sk, token, key)
    raise ConfigError("no Volcengine credentials: set VOLC_ACCESSKEY and VOLC_SECRETKEY (or VOLC_API_KEY with "
                      "VOLC_BASE_URL for a gateway), save them in the Cloud Outpaint settings, or put them in "
                      "~/.volc/credentials. To try the node without an account, choose backend = sandbox.")


DASHSCOPE_DEFAULT_BASE = "https://dashscope.aliyuncs.com/api/v1"


@dataclass(frozen=True)
class DashScopeCredentials:
    source: str  # "env" | "store" | "sdk-file" | "sandbox"
    base_url: str
    api_key: str = field(default="", repr=False)
    workspace: str = ""


def dashscope_credentials(env: Mapping[str, str] = os.environ, store_path: pathlib.Path | None = None,
                          home: pathlib.Path | None = None) -> DashScopeCredentials:
    """DASHSCOPE_API_KEY, then the pack's store, then the SDK's key file (DASHSCOPE_API_KEY_FILE_PATH
    or ~/.dashscope/api_key). Base URL: DASHSCOPE_HTTP_BASE_URL (the SDK's variable) or the store."""
    stored = _store(store_path).get("dashscope", {})
    workspace = env.get("DASHSCOPE_WORKSPACE_ID") or stored.get("workspace", "")
    base = (env.get("DASHSCOPE_HTTP_BASE_URL") or stored.get("base_url") or DASHSCOPE_DEFAULT_BASE).rstrip("/")
    if env.get("DASHSCOPE_API_KEY"):
        return DashScopeCredentials("env", base, env["DASHSCOPE_API_KEY"].strip(), workspace)
    if stored.get("api_key"):
        return DashScopeCredentials("store", base, stored["api_key"], workspace)
    key_file = pathlib.Path(env.get("DASHSCOPE_API_KEY_FILE_PATH") or
                            (home or pathlib.Path.home()) / ".dashscope" / "api_key")
    if key_file.is_file():
        key = key_file.read_text(encoding="utf-8").strip()
        if key:
            return DashScopeCredentials("sdk-file", base, key, workspace)
    raise ConfigError("no DashScope API key: set DASHSCOPE_API_KEY (a key of the China (Beijing) region: "
                      "image-out-painting runs only there), save it in the Cloud Outpaint settings, or put it in "
                      "~/.dashscope/api_key. To try the node without an account, choose backend = sandbox.")
