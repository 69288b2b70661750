"""All expansion math: where the original lands inside the larger canvas.

Every way a user can describe an expansion (pixels per side, fractions per side, x/y scale,
aspect ratio, target size) ends up as one `Placement`, so the canvas builder, the vendor
clients and the tests agree by construction. Pure Python, no tensors.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from .errors import InputError

MAX_SIDE = 16384  # ComfyUI's MAX_RESOLUTION; a larger canvas is refused, not allocated.

# Anchor name -> (horizontal, vertical) share of the extra space that goes *before* the image.
ANCHORS = {
    "top-left": (0.0, 0.0), "top": (0.5, 0.0), "top-right": (1.0, 0.0),
    "left": (0.0, 0.5), "center": (0.5, 0.5), "right": (1.0, 0.5),
    "bottom-left": (0.0, 1.0), "bottom": (0.5, 1.0), "bottom-right": (1.0, 1.0),
}

EXPAND_MODES = ("pixels", "fraction", "scale", "aspect_ratio", "target_size")


@dataclass(frozen=True)
class Placement:
    """The original image (x, y, width, height) inside a canvas of canvas_width x canvas_height."""

    canvas_width: int
    canvas_height: int
    x: int
    y: int
    width: int
    height: int

    @property
    def left(self) -> int:
        return self.x

    @property
    def top(self) -> int:
        return self.y

    @property
    def right(self) -> int:
        return self.canvas_width - self.x - self.width

    @property
    def bottom(self) -> int:
        return self.canvas_height - self.y - self.height

    @property
    def padding(self) -> tuple[int, int, int, int]:
        """(left, top, right, bottom) in pixels."""
        return self.left, self.top, self.right, self.bottom

    def as_dict(self) -> dict:
        return {"canvas_width": self.canvas_width, "canvas_height": self.canvas_height,
                "x": self.x, "y": self.y, "width": self.width, "height": self.height}


def _check_size(width: int, height: int) -> None:
    if width < 1 or height < 1:
        raise InputError(f"image size {width}x{height} is empty: both sides must be at least 1 px")


def _check_canvas(placement: Placement) -> Placement:
    cw, ch = placement.canvas_width, placement.canvas_height
    if cw > MAX_SIDE or ch > MAX_SIDE:
        raise InputError(
            f"the canvas would be {cw}x{ch} px; at most {MAX_SIDE} px per side is allowed. "
            "Use less expansion or downscale the image first.")
    return placement


def _from_padding(width: int, height: int, left: int, top: int, right: int, bottom: int) -> Placement:
    for name, value in (("left", left), ("top", top), ("right", right), ("bottom", bottom)):
        if value < 0:
            raise InputError(f"{name} is {value}: expansion cannot be negative (this node never crops)")
    return _check_canvas(Placement(width + left + right, height + top + bottom, left, top, width, height))


def _anchor(anchor: str) -> tuple[float, float]:
    try:
        return ANCHORS[anchor]
    except KeyError:
        raise InputError(f"unknown anchor {anchor!r}; use one of: {', '.join(ANCHORS)}") from None


def _split(extra: int, share_before: float) -> tuple[int, int]:
    before = int(math.floor(extra * share_before + 1e-9))
    return before, extra - before


def _from_canvas(width: int, height: int, canvas_w: int, canvas_h: int, anchor: str) -> Placement:
    ax, ay = _anchor(anchor)
    left, right = _split(canvas_w - width, ax)
    top, bottom = _split(canvas_h - height, ay)
    return _from_padding(width, height, left, top, right, bottom)


def _round_half_up(value: float) -> int:
    return int(math.floor(value + 0.5))


def parse_ratio(text: str) -> float:
    """'16:9', '16/9', '16x9' or '1.778' -> width / height. Malformed text raises InputError."""
    cleaned = (text or "").strip()
    match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*[:/x×]\s*(\d+(?:\.\d+)?)", cleaned)
    try:
        ratio = float(match.group(1)) / float(match.group(2)) if match else float(cleaned)
    except (ValueError, ZeroDivisionError):
        ratio = float("nan")
    if not math.isfinite(ratio) or ratio <= 0:
        raise InputError(f"aspect ratio {text!r} is not understood; write it as W:H, e.g. 16:9 or 3:4")
    if not 1 / 64 <= ratio <= 64:
        raise InputError(f"aspect ratio {text!r} is outside 1:64 .. 64:1")
    return ratio


def pad_pixels(width, height, left, top, right, bottom) -> Placement:
    _check_size(width, height)
    return _from_padding(width, height, int(left), int(top), int(right), int(bottom))


def pad_fractions(width, height, left, top, right, bottom) -> Placement:
    """Volcengine's ratio semantics: left/right are fractions of the width, top/bottom of the height."""
    _check_size(width, height)
    for name, value in (("left", left), ("top", top), ("right", right), ("bottom", bottom)):
        if not math.isfinite(value) or value < 0:
            raise InputError(f"{name} fraction {value} must be a number >= 0")
    return _from_padding(width, height, _round_half_up(left * width), _round_half_up(top * height),
                         _round_half_up(right * width), _round_half_up(bottom * height))


def pad_scale(width, height, x_scale, y_scale, anchor="center") -> Placement:
    """DashScope's x_scale/y_scale: the canvas is the image size times the scale, image centred."""
    _check_size(width, height)
    for name, value in (("x_scale", x_scale), ("y_scale", y_scale)):
        if not math.isfinite(value) or value < 1:
            raise InputError(f"{name} is {value}: a scale must be >= 1.0 (1.0 = no expansion)")
    return _from_canvas(width, height, _round_half_up(width * x_scale), _round_half_up(height * y_scale),
                        anchor)


def pad_aspect(width, height, ratio: str | float, anchor="center") -> Placement:
    """Grow one side (never shrink) so that canvas width / height equals the ratio."""
    _check_size(width, height)
    r = parse_ratio(ratio) if isinstance(ratio, str) else float(ratio)
    if width / height < r:
        canvas_w, canvas_h = max(width, _round_half_up(height * r)), height
    else:
        canvas_w, canvas_h = width, max(height, _round_half_up(width / r))
    return _from_canvas(width, height, canvas_w, canvas_h, anchor)


def pad_to_size(width, height, target_width, target_height, anchor="center") -> Placement:
    _check_size(width, height)
    if target_width < width or target_height < height:
        raise InputError(
            f"target size {target_width}x{target_height} is smaller than the image {width}x{height}; "
            "outpainting only adds space (scale the image down first if you need a smaller canvas)")
    return _from_canvas(width, height, int(target_width), int(target_height), anchor)


def snap_to_multiple(placement: Placement, multiple: int, anchor: str = "center",
                     grow_padded_sides: bool = True) -> Placement:
    """Round the canvas up to a multiple of N.

    With grow_padded_sides, the extra pixels go to the sides that are already padded (split
    evenly when both are), so an image padded only on the right stays flush left. An axis with
    no padding at all is split by the anchor.
    """
    if multiple < 1:
        raise InputError(f"multiple_of is {multiple}: use 1 (off) or more")
    if multiple == 1:
        return placement
    ax, ay = _anchor(anchor)
    p = placement

    def grow(length, before, after, share):
        extra = -length % multiple
        if grow_padded_sides and (before or after):
            share = 0.5 if (before and after) else (1.0 if before else 0.0)
        add_before, add_after = _split(extra, share)
        return before + add_before, after + add_after

    left, right = grow(p.canvas_width, p.left, p.right, ax)
    top, bottom = grow(p.canvas_height, p.top, p.bottom, ay)
    return _from_padding(p.width, p.height, left, top, right, bottom)


def plan_expansion(width: int, height: int, mode: str, *, left=0, top=0, right=0, bottom=0,
                   fraction_left=0.0, fraction_top=0.0, fraction_right=0.0, fraction_bottom=0.0,
                   x_scale=1.0, y_scale=1.0, aspect_ratio="1:1", target_width=0, target_height=0,
                   anchor="center", multiple_of=1) -> Placement:
    """One entry point for every mode; only the parameters of `mode` are read."""
    if mode == "pixels":
        p = pad_pixels(width, height, left, top, right, bottom)
    elif mode == "fraction":
        p = pad_fractions(width, height, fraction_left, fraction_top, fraction_right, fraction_bottom)
    elif mode == "scale":
        p = pad_scale(width, height, x_scale, y_scale, anchor)
    elif mode == "aspect_ratio":
        p = pad_aspect(width, height, aspect_ratio, anchor)
    elif mode == "target_size":
        p = pad_to_size(width, height, target_width, target_height, anchor)
    else:
        raise InputError(f"unknown expand mode {mode!r}; use one of: {', '.join(EXPAND_MODES)}")
    return snap_to_multiple(p, int(multiple_of), anchor, grow_padded_sides=mode in ("pixels", "fraction"))


def fit_within(width: int, height: int, max_width: int, max_height: int) -> tuple[int, int]:
    """Shrink (never enlarge) to fit max_width x max_height, keeping the aspect ratio."""
    s = min(1.0, max_width / width, max_height / height)
    if s >= 1.0:
        return width, height
    return max(1, _round_half_up(width * s)), max(1, _round_half_up(height * s))


def same_aspect(sent: tuple[int, int], out: tuple[int, int]) -> bool:
    """out is sent, scaled, up to a pixel of rounding on each side."""
    (sw, sh), (ow, oh) = sent, out
    return abs(ow * sh - oh * sw) <= sw + sh


def scale_placement(placement: Placement, out_width: int, out_height: int) -> Placement:
    """The placement mapped onto a resized canvas of out_width x out_height (edges rounded)."""
    p = placement
    sx, sy = out_width / p.canvas_width, out_height / p.canvas_height
    # edges rounded, then kept inside the canvas and at least 1 px wide (a strong shrink could
    # otherwise push a 1 px box past the edge)
    x0, y0 = min(_round_half_up(p.x * sx), out_width - 1), min(_round_half_up(p.y * sy), out_height - 1)
    x1 = min(out_width, max(x0 + 1, _round_half_up((p.x + p.width) * sx)))
    y1 = min(out_height, max(y0 + 1, _round_half_up((p.y + p.height) * sy)))
    return Placement(out_width, out_height, x0, y0, x1 - x0, y1 - y0)


def volc_ratio_output(width: int, height: int, left: float, top: float, right: float, bottom: float,
                      max_width: int, max_height: int) -> tuple[Placement, tuple[int, int]]:
    """Volcengine ratio mode: the canvas W·(1+l+r) x H·(1+t+b) (sides rounded per side), then the
    result resized to fit max_width x max_height (proportional resize: UNCONFIRMED, spec A.5).
    Returns the canvas placement and the expected output size."""
    placement = pad_fractions(width, height, left, top, right, bottom)
    return placement, fit_within(placement.canvas_width, placement.canvas_height, max_width, max_height)


VOLC_MAX_SIDE_FRACTION = 1.0  # Volcengine's top/bottom/left/right: 0 to 1 of the image's side each


def volc_fractions(placement: Placement, given_by: str = "the expansion") -> dict[str, float]:
    """A placement as Volcengine's side ratios {top, bottom, left, right}: the pixels added on each
    side / the image's own side (pad_fractions turns them back into the same pixels). A side over
    Volcengine's limit is an InputError naming `given_by` (the widgets that asked for it)."""
    p = placement
    fractions = {"top": p.top / p.height, "bottom": p.bottom / p.height, "left": p.left / p.width,
                 "right": p.right / p.width}
    for side, value in fractions.items():
        if value > VOLC_MAX_SIDE_FRACTION:
            dim, size = ("height", p.height) if side in ("top", "bottom") else ("width", p.width)
            raise InputError(
                f"{given_by} adds {getattr(p, side)} px on the {side} of a {p.width}x{p.height} image, {value:.2f}x "
                f"its {dim}; Volcengine adds at most {VOLC_MAX_SIDE_FRACTION:g}x the image per side ({size} px here: "
                "at most 3x per axis when centred, 2x from an edge anchor)")
    return fractions


# ---- DashScope image-out-painting (spec B.2/B.3) -------------------------------------------------

DASHSCOPE_MODES = ("scale", "output_ratio", "offsets", "rotate_only")
DASHSCOPE_RATIOS = ("1:1", "3:4", "4:3", "9:16", "16:9")
DASHSCOPE_MIN_SIDE, DASHSCOPE_MAX_SIDE = 512, 4096
DASHSCOPE_MAX_UPSCALE = 8.0  # smaller inputs are refused rather than blown up into a billed blur
DASHSCOPE_MAX_ASPECT = 4.0  # with limit_image_size, the reference keeps outputs within 1:4 .. 4:1
DASHSCOPE_QUARTER_TURNS = (90, 180, 270)
NO_OP_NOTE = "; such a request would be refused, or billed for a copy of the input"


def rotated_size(width: int, height: int, angle: float) -> tuple[int, int]:
    """Bounding box of the image rotated by `angle` degrees (counter-clockwise), sized exactly as
    Pillow's rotate(expand=True) does (the sandbox rotates with Pillow): the inverse map of the
    corners, with cos/sin rounded to 15 digits, then ceil(max) - floor(min); quarter turns are
    exact transposes (Pillow's fast path)."""
    if angle % 90 == 0:
        return (height, width) if angle % 180 else (width, height)
    a = -math.radians(angle)
    cos, sin = round(math.cos(a), 15), round(math.sin(a), 15)
    cx, cy = width / 2, height / 2
    # translation of the inverse rotation about the centre (the same floating-point steps)
    tx, ty = cos * -cx + sin * -cy + cx, -sin * -cx + cos * -cy + cy
    xs = [cos * x + sin * y + tx for x, y in ((0, 0), (width, 0), (width, height), (0, height))]
    ys = [-sin * x + cos * y + ty for x, y in ((0, 0), (width, 0), (width, height), (0, height))]
    return math.ceil(max(xs)) - math.floor(min(xs)), math.ceil(max(ys)) - math.floor(min(ys))


def dashscope_input_scale(width: int, height: int) -> float:
    """Factor that brings an image inside DashScope's 512..4096 px per side (1.0 if already inside)."""
    low, high = DASHSCOPE_MIN_SIDE / min(width, height), DASHSCOPE_MAX_SIDE / max(width, height)
    if low > DASHSCOPE_MAX_UPSCALE:
        raise InputError(f"a {width}x{height} image is too small for DashScope: reaching its "
                         f"{DASHSCOPE_MIN_SIDE} px minimum would need more than {DASHSCOPE_MAX_UPSCALE:g}x "
                         "upscaling (a blur billed as an image); upscale it yourself first")
    if low > high:
        raise InputError(f"a {width}x{height} image cannot be scaled so that both sides are within "
                         f"{DASHSCOPE_MIN_SIDE}-{DASHSCOPE_MAX_SIDE} px (aspect ratio over 8:1)")
    return min(max(1.0, low), high)


def dashscope_plan(width: int, height: int, mode: str, *, angle: int = 0, output_ratio: str = "1:1",
                   x_scale: float = 1.0, y_scale: float = 1.0, left: int = 0, top: int = 0, right: int = 0,
                   bottom: int = 0) -> Placement:
    """Where the (rotated) image lands in DashScope's output, by the documented priority rules:
    rotation first (bounding box of the rotated image), then exactly one expansion mode.
    Offsets are in the pixels of the image as sent. Ratio/rotation rounding is UNCONFIRMED:
    callers map onto the size the vendor actually returns. A mode whose values change nothing is
    refused ("参数设置建议": a scale above 1.0, an offset above 0, an angle of 1-359 for rotate_only).
    Quarter turns are taken in every mode (the reference's own example: angle=90, x_scale=2.0);
    for rotate_only the docs advise against them, which dashscope_warnings says."""
    if not 0 <= angle <= 359:
        raise InputError(f"angle is {angle}; DashScope accepts 0 to 359 degrees (counter-clockwise)")
    rw, rh = rotated_size(width, height, angle)
    if mode == "rotate_only":
        if angle == 0:
            raise InputError(f"mode rotate_only with angle 0 does nothing (DashScope needs an angle of 1 to 359 "
                             f"here{NO_OP_NOTE}): set angle, or pick an expansion mode")
        return pad_pixels(rw, rh, 0, 0, 0, 0)
    if mode == "output_ratio":
        if output_ratio not in DASHSCOPE_RATIOS:
            raise InputError(f"output_ratio {output_ratio!r}: DashScope accepts {', '.join(DASHSCOPE_RATIOS)}")
        return pad_aspect(rw, rh, output_ratio)
    if mode == "scale":
        for name, value in (("x_scale", x_scale), ("y_scale", y_scale)):
            if not 1.0 <= value <= 3.0:
                raise InputError(f"{name} is {value}; DashScope accepts 1.0 to 3.0")
        if x_scale <= 1.0 and y_scale <= 1.0:
            raise InputError(f"mode scale with x_scale and y_scale both 1.0 expands nothing (DashScope needs at "
                             f"least one above 1.0{NO_OP_NOTE}): raise x_scale or y_scale" +
                             (", or use mode rotate_only to only rotate" if angle else ""))
        return pad_scale(rw, rh, x_scale, y_scale)
    if mode == "offsets":
        if not any(value > 0 for value in (left, right, top, bottom)):
            raise InputError(f"mode offsets with left_offset, right_offset, top_offset and bottom_offset all 0 "
                             f"expands nothing (DashScope needs at least one above 0{NO_OP_NOTE}): set an offset" +
                             (", or use mode rotate_only to only rotate" if angle else ""))
        if left + right >= 3 * width or top + bottom >= 3 * height:
            raise InputError(f"offsets too large for a {width}x{height} image: DashScope needs left+right < "
                             f"{3 * width} and top+bottom < {3 * height} (3x the side)")
        return pad_pixels(rw, rh, left, top, right, bottom)
    raise InputError(f"unknown DashScope mode {mode!r}; use one of: {', '.join(DASHSCOPE_MODES)}")


def dashscope_check_aspect(placement: Placement, mode: str) -> None:
    """With limit_image_size on, the reference keeps outputs within 1:4 .. 4:1; what the service does
    with a plan outside that (refuse, crop, ignore) is unknown, so it is refused before anything is paid."""
    w, h = placement.canvas_width, placement.canvas_height
    if max(w / h, h / w) <= DASHSCOPE_MAX_ASPECT:
        return
    widgets = {"offsets": "the offsets", "scale": "x_scale / y_scale", "output_ratio": "output_ratio",
               "rotate_only": "angle"}.get(mode, mode)
    shape = f"{w / h:.2f}:1" if w >= h else f"1:{h / w:.2f}"
    raise InputError(f"the planned output {w}x{h} ({shape}) is outside the 1:4 to 4:1 that DashScope keeps with "
                     f"limit_image_size on (mode {mode}): change {widgets} (or use mode output_ratio), or turn "
                     "limit_image_size off to send it as it is")


def dashscope_warnings(mode: str, angle: int) -> list[str]:
    """What the docs advise against, sent anyway (the user asked for it)."""
    if mode == "rotate_only" and angle in DASHSCOPE_QUARTER_TURNS:
        return [(f"angle {angle} with mode rotate_only: DashScope's docs advise against quarter turns here (the "
                 "reference says rotate-only cannot take 90/180/270) and a quarter turn leaves no corners to fill; "
                 "a ComfyUI rotate node does it exactly and for free")]
    return []
