"""Validate an i2i_outpainting request body the way the service does -> VolcJob
(parameters: https://www.volcengine.com/docs/6791/1279296).

Type errors (a string where a number belongs, 30.5 for an integer) are 50204 "Parse Args Error",
as a Go service decoding JSON into typed fields fails; an integral float (1920.0, seed 0.0) is an
integer, as the Java SDK's `double` fields send them; values out of range are 50200 and the
message names the field. Images are only checked for shape here (count, mode, base64 text vs URL);
decoding them is the emulator's next step. Unknown fields are ignored, as Go's decoder does.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from .volc_protocol import REQ_KEY, VolcError

MAX_PROMPT_CHARS = 800
PROMPT_FIELDS = ("custom_prompt", "prompt")  # both names appear in official examples
IMAGE_FIELDS = ("binary_data_base64", "image_urls")
SIDES = ("top", "bottom", "left", "right")
INT32 = (-(2**31), 2**31 - 1)


@dataclass(frozen=True)
class VolcJob:
    mode: str                    # "ratio" (1 image + side ratios) or "canvas" (canvas + mask)
    source: str                  # "binary_data_base64" or "image_urls"
    images: tuple[str, ...]      # base64 texts or URLs, as sent
    top: float
    bottom: float
    left: float
    right: float
    scale: float
    strength: float
    steps: int
    seed: int                    # negative = random
    max_width: int
    max_height: int
    prompt: str
    prompt_fields: tuple[str, ...]   # which of custom_prompt / prompt the request carried
    return_url: bool
    logo_info: dict | None
    sides_sent: tuple[str, ...] = ()  # which of top/bottom/left/right the body carried


def _reject_constant(name: str):
    raise ValueError(f"{name} is not valid JSON")


def _load(body: bytes) -> dict:
    try:
        form = json.loads(body, parse_constant=_reject_constant)  # no NaN/Infinity (not JSON)
    except (ValueError, UnicodeDecodeError) as exc:
        raise VolcError(50204, f"the body is not valid JSON ({exc})") from None
    if not isinstance(form, dict):
        raise VolcError(50204, "the body must be a JSON object")
    return form


def _number(form: dict, name: str, default, low, high, integer: bool = False, where: str = ""):
    value = form.get(name)
    if value is None:
        return default
    label = f"{where}{name}"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise VolcError(50204, f"{label} must be {'an integer' if integer else 'a number'}, "
                               f"got {json.dumps(value)}")
    if integer and not isinstance(value, int):
        if not value.is_integer():  # 1920.0 is an integer to a Java/Go decoder, 30.5 is not
            raise VolcError(50204, f"{label} must be an integer, got {value}")
        value = int(value)
    if not (low <= value <= high):
        bounds = f"at least {low}" if high == math.inf else f"in [{low}, {high}]"
        raise VolcError(50200, f"{label} must be {bounds}, got {value}")
    return value


def _flag(form: dict, name: str, default: bool, where: str = "") -> bool:
    value = form.get(name)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise VolcError(50204, f"{where}{name} must be true or false, got {json.dumps(value)}")
    return value


def _images(form: dict) -> tuple[str, tuple[str, ...]]:
    given = [(name, form[name]) for name in IMAGE_FIELDS if form.get(name) not in (None, [])]
    if not given:
        raise VolcError(50206, "one of binary_data_base64 or image_urls is required")
    if len(given) > 1:
        raise VolcError(50200, "give exactly one of binary_data_base64 or image_urls, not both")
    name, items = given[0]
    if not isinstance(items, list) or not all(isinstance(item, str) for item in items):
        raise VolcError(50204, f"{name} must be an array of strings")
    if len(items) not in (1, 2):
        raise VolcError(50200, f"{name} must hold 1 image (ratio mode) or 2 (canvas and mask, "
                               f"canvas mode), got {len(items)}")
    return name, tuple(items)


def _prompt(form: dict, max_chars: int) -> tuple[str, tuple[str, ...]]:
    fields = tuple(name for name in PROMPT_FIELDS if form.get(name) is not None)
    for name in fields:
        if not isinstance(form[name], str):
            raise VolcError(50204, f"{name} must be a string")
        if len(form[name]) > max_chars:
            raise VolcError(50200, f"{name} is {len(form[name])} characters, at most {max_chars} allowed")
    # With both present, custom_prompt wins: it is the typed SDK model's name (Java SDK).
    return (form[fields[0]] if fields else ""), fields


def _logo_info(form: dict) -> dict | None:
    logo = form.get("logo_info")
    if logo is None:
        return None
    if not isinstance(logo, dict):
        raise VolcError(50204, "logo_info must be an object")
    where = "logo_info."
    checked = {
        "add_logo": _flag(logo, "add_logo", False, where),
        "position": _number(logo, "position", 0, 0, 3, integer=True, where=where),
        "language": _number(logo, "language", 0, 0, 1, integer=True, where=where),
        "opacity": _number(logo, "opacity", 1.0, 0, 1, where=where),
    }
    text = logo.get("logo_text_content")
    if text is not None and not isinstance(text, str):
        raise VolcError(50204, "logo_info.logo_text_content must be a string")
    checked["logo_text_content"] = text
    return checked


def _sides(form: dict, canvas_mode: bool, absent_side: float, strict: bool) -> dict[str, float]:
    """Side ratios: fractions of the original's height (top/bottom) or width (left/right); an absent
    side is 0.1 in ratio mode and `absent_side` in canvas mode (the SDK models' 0.1, even with two
    images). 0 is accepted unless `strict` (ratio mode; the vendor documents (0, 1], whether 0 is
    refused is UNCONFIRMED)."""
    sides = {}
    for name in SIDES:
        value = float(_number(form, name, absent_side if canvas_mode else 0.1, 0, 1))
        if strict and not canvas_mode and value == 0:
            raise VolcError(50200, f"{name} must be in (0, 1], got 0")
        sides[name] = value
    return sides


def parse_job(body: bytes, max_prompt_chars: int = MAX_PROMPT_CHARS, *, canvas_absent_side: float = 0.1,
              strict_sides: bool = False) -> VolcJob:
    """Body bytes -> VolcJob, or VolcError with the code the service would answer."""
    form = _load(body)
    if form.get("req_key") != REQ_KEY:
        # What the service answers for a wrong (or missing) req_key: the key selects the
        # algorithm, and the account has no access to an unknown one (50400 "Access Denied: Internal Error").
        raise VolcError(50400)
    source, images = _images(form)
    sides = _sides(form, len(images) == 2, canvas_absent_side, strict_sides)
    prompt, prompt_fields = _prompt(form, max_prompt_chars)
    return VolcJob(
        mode="ratio" if len(images) == 1 else "canvas",
        source=source,
        images=images,
        **sides,
        scale=float(_number(form, "scale", 7.0, 1, 20)),
        strength=float(_number(form, "strength", 0.8, 0.1, 1.0)),
        steps=_number(form, "steps", 30, 1, 100, integer=True),
        # Absent seed = random (UNCONFIRMED; the Java model always sends 0). Any negative = random.
        seed=_number(form, "seed", -1, INT32[0], INT32[1], integer=True),
        max_width=_number(form, "max_width", 1920, 1, math.inf, integer=True),
        max_height=_number(form, "max_height", 1920, 1, math.inf, integer=True),
        prompt=prompt,
        prompt_fields=prompt_fields,
        return_url=_flag(form, "return_url", False),
        logo_info=_logo_info(form),
        sides_sent=tuple(name for name in SIDES if form.get(name) is not None),
    )


def describe(job: VolcJob) -> dict[str, Any]:
    """What the request log records about a job (tests assert on it)."""
    return {"mode": job.mode, "source": job.source, "prompt": job.prompt, "prompt_fields": job.prompt_fields,
            "seed_requested": job.seed, "sides": (job.top, job.bottom, job.left, job.right),
            "sides_sent": job.sides_sent,
            "max_size": (job.max_width, job.max_height), "scale": job.scale, "strength": job.strength,
            "steps": job.steps, "return_url": job.return_url, "logo_info": job.logo_info}
