"""Validate an image-out-painting create body the way the service does -> OutpaintJob
(parameters: https://help.aliyun.com/zh/model-studio/image-scaling-api).

Checks come in the service's order, and in two kinds:
- envelope (always answered on the create call, no task): JSON, model, input / parameters
  present, the image URL's scheme (oss:// needs the resolve header);
- parameter values (`deferrable`): answered on the create call by default (as documented: 400
  InvalidParameter "the parameters must conform to the specification: …"), or — setting
  dashscope_sync_validation=False — accepted and FAILED inside the task, as a live probe of other
  DashScope image models observed (UNCONFIRMED for this model).
Checks that need the image (its sides, the offsets' 3x-the-side rule, decoding) always run in
the task. Unknown parameters are ignored; a null value means "use the default".
"""

from __future__ import annotations

import copy
import json
import math
import re
from dataclasses import dataclass
from typing import Any

from ..core.geometry import DASHSCOPE_RATIOS
from .dashscope_protocol import (
    INVALID_URL_MESSAGE,
    MODEL,
    MODEL_NOT_EXIST,
    DashScopeError,
    invalid_parameter,
)

OFFSETS = ("top_offset", "bottom_offset", "left_offset", "right_offset")
QUARTER_TURNS = (90, 180, 270)
FLAGS = (("best_quality", False), ("limit_image_size", True), ("add_watermark", True))  # name, default
TASK_ID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


@dataclass(frozen=True)
class OutpaintJob:
    image_url: str
    source: str                  # "oss", "http" or "data" (a data: URI with base64)
    angle: int
    output_ratio: str
    x_scale: float
    y_scale: float
    top: int
    bottom: int
    left: int
    right: int
    best_quality: bool
    limit_image_size: bool
    add_watermark: bool
    mode: str                    # geometry.DASHSCOPE_MODES: what the priority rule chose


@dataclass(frozen=True)
class CreateBody:
    """The envelope of a create call: what was sent, before the parameter values are judged."""

    input: dict[str, Any]
    parameters: dict[str, Any]
    image_url: str | None
    source: str | None


def expansion_mode(output_ratio: str, x_scale: float, y_scale: float, offsets: tuple[int, ...]) -> str:
    """The documented priority (the angle always applies first): a non-empty
    output_ratio wins; else any scale > 1 -> scale; else any offset > 0 -> offsets; else only
    the rotation (or nothing)."""
    if output_ratio:
        return "output_ratio"
    if x_scale > 1 or y_scale > 1:
        return "scale"
    if any(value > 0 for value in offsets):
        return "offsets"
    return "rotate_only"


def _reject_constant(name: str):
    raise ValueError(f"{name} is not valid JSON")


def _source(url: str, resolve: bool, accept_base64: bool) -> str:
    lowered = url.lower()
    if lowered.startswith("oss://"):
        if not resolve or len(url) <= len("oss://"):
            raise DashScopeError("InvalidParameter.DataInspection", INVALID_URL_MESSAGE)
        return "oss"
    if lowered.startswith(("http://", "https://")) and len(url.split("://", 1)[1]) > 0:
        return "http"
    if accept_base64 and lowered.startswith("data:") and ";base64," in lowered:
        return "data"
    raise DashScopeError("InvalidParameter.DataInspection", INVALID_URL_MESSAGE)


def parse_body(body: bytes, resolve: bool, accept_base64: bool = True) -> CreateBody:
    """The envelope checks (never deferred)."""
    try:
        form = json.loads(body, parse_constant=_reject_constant)
    except (ValueError, UnicodeDecodeError):
        raise DashScopeError("InvalidParameter.JsonPhrase") from None
    if not isinstance(form, dict):
        raise DashScopeError("InvalidParameter.JsonPhrase")
    model = form.get("model")
    if model is None or model == "":
        raise DashScopeError("BadRequest.EmptyModel")
    if model != MODEL:
        raise DashScopeError("InvalidParameter", MODEL_NOT_EXIST)
    if form.get("input") is None:
        raise DashScopeError("BadRequest.EmptyInput")
    if not isinstance(form["input"], dict):
        raise DashScopeError("BadRequest.IllegalInput")
    if form.get("parameters") is None:
        raise DashScopeError("BadRequest.EmptyParameters")
    if not isinstance(form["parameters"], dict):
        raise DashScopeError("InvalidParameter", "the parameters must conform to the specification: "
                                                 "parameters must be an object")
    url = form["input"].get("image_url")
    source = _source(url, resolve, accept_base64) if isinstance(url, str) and url else None
    return CreateBody(copy.deepcopy(form["input"]), copy.deepcopy(form["parameters"]),
                      url if isinstance(url, str) else None, source)


def _integer(params: dict, name: str, low: int, high: float) -> int:
    value = params.get(name)
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, float) and value.is_integer():
            value = int(value)  # 30.0: a JSON number the service's typed decoding accepts (UNCONFIRMED)
        else:
            raise invalid_parameter(f"{name} must be an integer, got {json.dumps(value)}")
    if not low <= value <= high:
        bounds = f">= {low}" if high == math.inf else f"in [{low}, {high}]"
        raise invalid_parameter(f"{name} must be {bounds}, got {value}")
    return value


def _scale(params: dict, name: str) -> float:
    value = params.get(name)
    if value is None:
        return 1.0
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise invalid_parameter(f"{name} must be a number, got {json.dumps(value)}")
    if not 1.0 <= value <= 3.0:
        raise invalid_parameter(f"{name} must be in [1.0, 3.0], got {value}")
    return float(value)


def _flag(params: dict, name: str, default: bool) -> bool:
    value = params.get(name)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise invalid_parameter(f"{name} must be true or false, got {json.dumps(value)}")
    return value


def parse_job(envelope: CreateBody, refuse_quarter_turns: bool = True, refuse_no_op: bool = True) -> OutpaintJob:
    """The parameter-value checks (deferrable); `envelope` from parse_body. Quarter turns are refused
    only for a rotation alone (the reference's example takes angle=90 with x_scale=2.0); a body that
    neither expands nor rotates is refused with `refuse_no_op` ("参数设置建议": some mode must apply)."""
    if envelope.image_url is None:
        if "image_url" in envelope.input and envelope.input["image_url"] is not None:
            raise invalid_parameter("input.image_url must be a string")
        raise DashScopeError("InvalidParameter", "Field required: input.image_url", deferrable=True)
    if envelope.source is None:  # an empty string
        raise DashScopeError("InvalidParameter", "Field required: input.image_url", deferrable=True)
    p = envelope.parameters
    angle = _integer(p, "angle", 0, 359)
    ratio = p.get("output_ratio")
    if ratio is None:
        ratio = ""
    if not isinstance(ratio, str) or (ratio and ratio not in DASHSCOPE_RATIOS):
        raise invalid_parameter(f"output_ratio must be one of \"\", {', '.join(map(repr, DASHSCOPE_RATIOS))}; "
                                f"got {json.dumps(ratio)}")
    x_scale, y_scale = _scale(p, "x_scale"), _scale(p, "y_scale")
    top, bottom, left, right = (_integer(p, name, 0, math.inf) for name in OFFSETS)
    flags = {name: _flag(p, name, default) for name, default in FLAGS}
    mode = expansion_mode(ratio, x_scale, y_scale, (top, bottom, left, right))
    if mode == "rotate_only":
        if refuse_quarter_turns and angle in QUARTER_TURNS:
            # The doc, rotation alone: angle "[1,359]…但不能设置为 90、180、270" (cannot be 90, 180 or 270).
            raise invalid_parameter(f"angle cannot be 90, 180 or 270 without an expansion, got {angle}")
        if refuse_no_op and angle == 0:
            raise invalid_parameter("set output_ratio, x_scale or y_scale above 1.0, an offset above 0, or an angle "
                                    "in [1, 359]: this request changes nothing")
    return OutpaintJob(
        image_url=envelope.image_url, source=envelope.source, angle=angle, output_ratio=ratio,
        x_scale=x_scale, y_scale=y_scale, top=top, bottom=bottom, left=left, right=right,
        **flags, mode=mode,
    )


def seed_text(job: OutpaintJob) -> str:
    """What the sandbox's deterministic fill is seeded with besides the input bytes: the
    geometry parameters only, so that add_watermark/best_quality/limit_image_size change
    nothing but what they are about."""
    return json.dumps([job.angle, job.output_ratio, job.x_scale, job.y_scale, job.top, job.bottom,
                       job.left, job.right])
