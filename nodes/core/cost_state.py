"""Where the pack keeps what it remembers about money (result cache, task journal, spend ledger) and
the cost settings: prices and the daily limit.

The folder: $CLOUD_OUTPAINT_CACHE_DIR if set; inside ComfyUI `<user directory>/cloud_outpaint/`
(beside the credential store; routes.install() passes it in with set_comfy_dir()); elsewhere (the
CLI) the user's cache folder, $XDG_CACHE_HOME/cloud-outpaint or ~/.cache/cloud-outpaint. Every file
under it is owner-only (private_file.py). Settings saved from the keys dialog (spend_settings.json)
hold no secret; environment variables win over them.
"""

from __future__ import annotations

import json
import math
import os
import pathlib
from collections.abc import Mapping
from dataclasses import dataclass, field

from . import env_settings, private_file
from .errors import InputError

DIR_VAR = "CLOUD_OUTPAINT_CACHE_DIR"
CACHE_VAR, CACHE_MB_VAR = "CLOUD_OUTPAINT_CACHE", "CLOUD_OUTPAINT_CACHE_MB"
PRICE_VARS = {"volc": "CLOUD_OUTPAINT_PRICE_VOLC_CNY", "dashscope": "CLOUD_OUTPAINT_PRICE_DASHSCOPE_CNY"}
LIMIT_VAR = "CLOUD_OUTPAINT_DAILY_LIMIT_CNY"
DASHSCOPE_PRICE_CNY = 0.18  # image-out-painting, per successful image (the vendor's price list)
DEFAULT_CACHE_MB = 2048
SETTINGS_FILE = "spend_settings.json"
SETTING_VARS = {"volc_price_cny": PRICE_VARS["volc"], "daily_limit_cny": LIMIT_VAR}

_comfy_dir: pathlib.Path | None = None


def set_comfy_dir(user_dir: str | os.PathLike | None) -> None:
    """Called by the ComfyUI layer at load time with ComfyUI's user directory (None: back to the default)."""
    global _comfy_dir
    _comfy_dir = pathlib.Path(user_dir) / "cloud_outpaint" if user_dir is not None else None


def state_dir(env: Mapping[str, str] = os.environ) -> pathlib.Path:
    if env.get(DIR_VAR):
        return pathlib.Path(env[DIR_VAR]).expanduser()
    if _comfy_dir is not None:
        return _comfy_dir
    base = env.get("XDG_CACHE_HOME") or str(pathlib.Path.home() / ".cache")
    return pathlib.Path(base).expanduser() / "cloud-outpaint"


def cache_enabled(env: Mapping[str, str] = os.environ) -> bool:
    return (env.get(CACHE_VAR) or "on").strip().lower() not in ("off", "0", "false", "no")


def cache_cap_bytes(env: Mapping[str, str] = os.environ) -> int:
    return int(env_settings.number(env, CACHE_MB_VAR, DEFAULT_CACHE_MB, 0, 10**7, unit="MB") * 2**20)


@dataclass
class CostSettings:
    """Prices in CNY (None = not set) and the daily limit (None = no limit); `locked` names the
    settings an environment variable gives (the dialog cannot change those)."""

    prices: dict[str, float | None]
    daily_limit_cny: float | None
    locked: list[str] = field(default_factory=list)


def _amount(value, name: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise InputError(f"{name} is {value!r}: use a number of CNY (0 or more), or null for none")
    return float(value)


def _saved(directory: pathlib.Path) -> dict:
    """The saved settings; a damaged or unsafe file counts as no settings (it holds no secret)."""
    try:
        data = json.loads(private_file.read_private(directory / SETTINGS_FILE, 16 * 1024) or b"{}")
    except (OSError, ValueError, private_file.UnsafeFile):
        return {}
    out = {}
    for name in SETTING_VARS:
        try:
            out[name] = _amount(data.get(name), name) if isinstance(data, dict) else None
        except InputError:
            out[name] = None
    return out


def load(env: Mapping[str, str] = os.environ, directory: pathlib.Path | None = None) -> CostSettings:
    """Environment first, then the saved file. A malformed variable is an InputError naming it."""
    saved = _saved(directory or state_dir(env))
    locked = [name for name, var in SETTING_VARS.items() if (env.get(var) or "").strip()]

    def amount(var: str, default: float | None) -> float | None:
        return env_settings.number(env, var, default, 0, 1e9, unit="CNY")

    def pick(name: str) -> float | None:
        """A setting the dialog saves: its variable when set, else the saved value."""
        return amount(SETTING_VARS[name], None) if name in locked else saved.get(name)

    # the DashScope price is no dialog setting: its variable, else the vendor's list price
    prices = {"volc": pick("volc_price_cny"), "dashscope": amount(PRICE_VARS["dashscope"], DASHSCOPE_PRICE_CNY)}
    return CostSettings(prices, pick("daily_limit_cny"), locked)


def save(values: Mapping, env: Mapping[str, str] = os.environ, directory: pathlib.Path | None = None) -> CostSettings:
    """Saves volc_price_cny and daily_limit_cny (each a number or null; a missing one keeps its value)."""
    unknown = sorted(set(values) - set(SETTING_VARS))
    if unknown:
        raise InputError(f"unknown setting(s): {', '.join(map(str, unknown))[:200]}; use "
                         f"{', '.join(SETTING_VARS)}")
    directory = directory or state_dir(env)
    current = _saved(directory)
    current.update({name: _amount(values[name], name) for name in values})
    private_file.make_private_dirs(directory, private_file.OWN_DIR_NAMES)
    private_file.write_private(directory / SETTINGS_FILE, json.dumps(current, indent=1).encode())
    return load(env, directory)


def report(env: Mapping[str, str] = os.environ) -> dict:
    """What GET /cloud_outpaint/spend and `python cli.py spend` show."""
    from .result_cache import ResultCache
    from .spend_ledger import SpendLedger

    directory = state_dir(env)
    settings = load(env, directory)
    summary = SpendLedger(directory).summary()
    cache = ResultCache(directory / "cache", 0).stats() if (directory / "cache").is_dir() else \
        {"entries": 0, "bytes": 0}
    return {"today_cny": summary["today_cny"], "month_cny": summary["month_cny"],
            "limit_cny": settings.daily_limit_cny, "prices": settings.prices,
            "requests_today": summary["requests_today"], "entries": summary["entries"],
            "cache": {**cache, "enabled": cache_enabled(env)}, "locked": settings.locked}


def clear_cache(env: Mapping[str, str] = os.environ) -> int:
    """Removes every cached result; returns how many there were."""
    from .result_cache import ResultCache

    return ResultCache(state_dir(env) / "cache", 0).clear()
