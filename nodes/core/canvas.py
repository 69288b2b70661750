"""Canvas and mask construction on ComfyUI tensors (IMAGE [B,H,W,C], MASK [B,H,W], 1 = generate).

Everything is vectorised torch and keeps the input's dtype and device. Geometry comes from
`geometry.Placement`; this module only paints pixels.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from . import imagecodec, widgets
from .errors import InputError
from .geometry import Placement
from .widgets import FEATHER_CURVES, FILL_MODES

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MaskBand:
    """Feather and overlap actually applied (after clamping to what fits the image)."""

    feathering: int
    overlap: int
    clamped: bool


@dataclass(frozen=True)
class CanvasResult:
    image: torch.Tensor  # the padded canvas [B,H,W,C]
    mask: torch.Tensor  # [B,H,W], 1 = generate
    placement: Placement  # where the original sits
    band: MaskBand


def build(image, settings: Mapping[str, Any], mask: torch.Tensor | None = None) -> CanvasResult:
    """MaskCanvasBuilder's whole pipeline for its widget values (widgets.CANVAS): check, plan the
    expansion, feathered mask (+ an extra mask merged in), filled canvas."""
    image = check_image(image)
    values = {name: w.check(settings.get(name, w.default), "MaskCanvasBuilder") for name, w in widgets.CANVAS.items()}
    batch, height, width, _ = image.shape
    placement = widgets.plan_expansion(width, height, values)  # first: it refuses an absurd size cheaply
    imagecodec.check_finite(image, "image")  # NaN would pass through into the canvas and the mask
    if isinstance(mask, torch.Tensor):
        imagecodec.check_finite(mask, "mask")
    out_mask, band = build_mask(placement, batch, values["feathering"], values["overlap"], values["feather_curve"],
                                dtype=image.dtype, device=image.device)
    if band.clamped:
        log.warning("MaskCanvasBuilder: feathering %d / overlap %d do not fit a %dx%d image; using %d / %d",
                    values["feathering"], values["overlap"], width, height, band.feathering, band.overlap)
    if mask is not None:
        out_mask = merge_mask(out_mask, mask, placement)
    color = parse_color(values["fill_color"]) if values["fill"] == "color" else (0.5, 0.5, 0.5)
    out_image = build_canvas(image, placement, values["fill"], color, values["noise"], values["seed"])
    return CanvasResult(out_image, out_mask, placement, band)


def check_image(image) -> torch.Tensor:
    """A ComfyUI IMAGE: non-empty float [B,H,W,C] with C in 1, 3, 4."""
    if not isinstance(image, torch.Tensor):
        raise InputError(f"image must be an IMAGE tensor, got {type(image).__name__}")
    if image.dim() == 3:
        image = image.unsqueeze(0)
    if image.dim() != 4 or image.shape[-1] not in (1, 3, 4):
        raise InputError(f"image has shape {tuple(image.shape)}; expected [batch, height, width, 3]")
    if image.shape[0] == 0:
        raise InputError("the image batch is empty (0 images)")
    if image.shape[1] == 0 or image.shape[2] == 0:
        raise InputError(f"image has shape {tuple(image.shape)}: height and width must be at least 1")
    if not image.is_floating_point():
        raise InputError(f"image dtype is {image.dtype}; ComfyUI IMAGEs are float tensors in 0..1")
    return image


def rgb_image(image) -> tuple[torch.Tensor, str | None]:
    """check_image, then the 3 channels a vendor is sent, as a view (no copy): alpha dropped, grey
    repeated; the note says which (for the run's info). Everything after a paid call then works on RGB."""
    image = check_image(image)
    if image.shape[-1] == 4:
        return image[..., :3], "the image has an alpha channel (4 channels): alpha dropped, the RGB sent"
    if image.shape[-1] == 1:
        return image.expand(-1, -1, -1, 3), "grey image (1 channel): sent as RGB"
    return image, None


def check_mask(mask, batch: int, sizes: dict[str, tuple[int, int]]) -> tuple[torch.Tensor, str]:
    """Normalise a MASK to [B,h,w] and say which of `sizes` (name -> (h, w)) it matches."""
    if not isinstance(mask, torch.Tensor) or mask.dim() not in (2, 3):
        shape = tuple(mask.shape) if isinstance(mask, torch.Tensor) else type(mask).__name__
        raise InputError(f"mask has shape {shape}; expected [batch, height, width]")
    mask = mask.reshape((-1, mask.shape[-2], mask.shape[-1]))
    if mask.shape[0] not in (1, batch):
        raise InputError(f"mask batch is {mask.shape[0]} but the image batch is {batch}; "
                         "give one mask for all images or one per image")
    for name, (h, w) in sizes.items():
        if tuple(mask.shape[-2:]) == (h, w):
            return mask, name
    wanted = " or ".join(f"{w}x{h} ({name})" for name, (h, w) in sizes.items())
    raise InputError(f"mask is {mask.shape[-1]}x{mask.shape[-2]} px; it must be {wanted}")


def parse_color(text: str) -> tuple[float, float, float]:
    """'#RRGGBB', '#RGB' or 'r,g,b' (0-255) -> floats in 0..1."""
    s = (text or "").strip()
    try:
        if s.startswith("#") and len(s) in (4, 7):
            digits = s[1:] if len(s) == 7 else "".join(c * 2 for c in s[1:])
            rgb = [int(digits[i:i + 2], 16) for i in (0, 2, 4)]
        else:
            rgb = [int(float(p)) for p in s.split(",")]
            if len(rgb) != 3 or not all(0 <= v <= 255 for v in rgb):
                raise ValueError
    except (ValueError, OverflowError):  # OverflowError: "inf,0,0"
        raise InputError(f"fill colour {text!r} is not understood; write #RRGGBB or r,g,b (0-255)") from None
    return tuple(v / 255.0 for v in rgb)


def _source_index(length: int, offset: int, size: int, mode: str, device) -> torch.Tensor:
    """For each canvas coordinate, the original coordinate it copies (edge or reflect)."""
    i = torch.arange(length, device=device) - offset
    if mode == "edge" or size == 1:
        return i.clamp(0, size - 1)
    period = 2 * (size - 1)  # reflect without repeating the edge pixel, any padding width
    i = torch.remainder(i, period)
    return torch.where(i < size, i, period - i)


def _padded_strips(canvas: torch.Tensor, p: Placement) -> list[torch.Tensor]:
    """Views of a canvas ([B,H,W,C] or a mask [B,H,W]) outside the placed image: full-width top
    and bottom strips, then left and right."""
    y2, x2 = p.y + p.height, p.x + p.width
    return [v for v in (canvas[:, :p.y], canvas[:, y2:], canvas[:, p.y:y2, :p.x], canvas[:, p.y:y2, x2:])
            if v.numel()]


def build_canvas(image: torch.Tensor, placement: Placement, fill: str = "grey",
                 color: tuple[float, float, float] = (0.5, 0.5, 0.5), noise: float = 0.0,
                 seed: int = 0) -> torch.Tensor:
    """The image pasted into the canvas, new area filled by `fill`, optional noise in it."""
    image = check_image(image)
    b, h, w, c = image.shape
    p = placement
    if (h, w) != (p.height, p.width):
        raise InputError(f"placement is for a {p.width}x{p.height} image, got {w}x{h}")
    if noise < 0 or noise > 1 or not math.isfinite(noise):
        raise InputError(f"noise is {noise}; use 0 (off) to 1")
    ch, cw = p.canvas_height, p.canvas_width
    if fill in ("grey", "color"):
        rgb = (0.5, 0.5, 0.5) if fill == "grey" else color
        value = torch.tensor((list(rgb) + [1.0])[:c] if c != 1 else [sum(rgb) / 3],
                             dtype=image.dtype, device=image.device)
        canvas = image.new_empty((b, ch, cw, c))
        for strip in _padded_strips(canvas, p):  # each pixel written once: fill around, image inside
            strip.copy_(value.expand_as(strip))
    elif fill in ("edge", "reflect"):
        rows = _source_index(ch, p.y, h, fill, image.device)
        cols = _source_index(cw, p.x, w, fill, image.device)
        canvas = image[:, rows][:, :, cols]
    elif fill == "blur":
        # A heavily blurred copy of the whole image stretched over the canvas ("pillarbox"):
        # shrink to a few dozen pixels, then enlarge smoothly.
        small = max(1, round(min(ch, cw) / 32))
        nchw = image.movedim(-1, 1).float()
        tiny = F.interpolate(nchw, size=(max(1, round(small * ch / min(ch, cw))),
                                         max(1, round(small * cw / min(ch, cw)))), mode="area")
        canvas = F.interpolate(tiny, size=(ch, cw), mode="bilinear", align_corners=False)
        canvas = canvas.movedim(1, -1).to(image.dtype)
    else:
        raise InputError(f"unknown fill {fill!r}; use one of: {', '.join(FILL_MODES)}")

    if noise > 0:
        gen = torch.Generator().manual_seed(int(seed) & 0xFFFFFFFFFFFFFFFF)
        for strip in _padded_strips(canvas, p):
            grain = torch.randn(strip.shape, generator=gen).to(image.device, image.dtype)
            strip.add_(grain * noise).clamp_(0, 1)
    if fill not in ("edge", "reflect"):  # those index maps already copied the image in place
        canvas[:, p.y:p.y + h, p.x:p.x + w] = image
    return canvas


def clamp_band(placement: Placement, feathering: int, overlap: int) -> MaskBand:
    """Shrink feather/overlap to what fits the original instead of silently dropping them.

    An axis padded on one side can take a band as deep as the image; padded on both sides,
    half of it (so the two bands meet in the middle at most). Unpadded axes do not limit.
    """
    if feathering < 0 or overlap < 0:
        raise InputError(f"feathering ({feathering}) and overlap ({overlap}) must be >= 0")
    p = placement
    room = []
    for length, before, after in ((p.height, p.top, p.bottom), (p.width, p.left, p.right)):
        if before and after:
            room.append(length // 2)
        elif before or after:
            room.append(length)
    limit = min(room) if room else 0
    ov = min(overlap, limit)
    fe = min(feathering, limit - ov)
    clamped = (ov, fe) != (overlap, feathering) and bool(room)
    return MaskBand(fe, ov, clamped)


def _seam_distance(length: int, before: int, after: int) -> torch.Tensor:
    """Per row (or column) of the original: distance to the nearest padded edge, 0 at the seam."""
    i = torch.arange(length, dtype=torch.float64)
    inf = torch.full_like(i, float("inf"))
    d_before = i if before else inf
    d_after = (length - 1 - i) if after else inf
    return torch.minimum(d_before, d_after)


def feather_values(distance: torch.Tensor, feathering: int, overlap: int, curve: str) -> torch.Tensor:
    """Mask value for a distance from the seam: 1 inside the overlap, then a ramp down to 0."""
    if curve not in FEATHER_CURVES:
        raise InputError(f"unknown feather curve {curve!r}; use one of: {', '.join(FEATHER_CURVES)}")
    inside = distance - overlap
    if feathering <= 0:
        return (inside < 0).to(distance.dtype)
    s = ((feathering - inside) / feathering).clamp(0, 1)  # 1 at the band's edge, 0 after f px
    if curve == "quadratic":
        s = s * s
    elif curve == "smoothstep":
        s = s * s * (3 - 2 * s)
    return torch.where(inside < 0, torch.ones_like(s), s)


def build_mask(placement: Placement, batch: int, feathering: int = 0, overlap: int = 0,
               curve: str = "quadratic", dtype=torch.float32, device="cpu",
               out: torch.Tensor | None = None) -> tuple[torch.Tensor, MaskBand]:
    """MASK [B,H',W']: 1 on the new area, the feather/overlap band inside the original, 0 elsewhere.

    The value depends on min(row distance, column distance) through a decreasing curve, so it
    equals max(curve(row distance), curve(column distance)): two 1-D ramps (in float64, so the
    values round exactly like ImagePadForOutpaint's Python floats) and one broadcast maximum.
    `out` (that shape, dtype and device, e.g. a slot of an output batch) is written instead of a new tensor.
    """
    p = placement
    band = clamp_band(p, int(feathering), int(overlap))
    ramps = [feather_values(_seam_distance(n, before, after), band.feathering, band.overlap, curve)
             .to(device=device, dtype=dtype)
             for n, before, after in ((p.height, p.top, p.bottom), (p.width, p.left, p.right))]
    shape = (batch, p.canvas_height, p.canvas_width)
    mask = torch.empty(shape, dtype=dtype, device=device) if out is None else out
    if tuple(mask.shape) != shape or mask.dtype != dtype:
        raise ValueError(f"out is {tuple(mask.shape)} {mask.dtype}, the mask {shape} {dtype}")
    for strip in _padded_strips(mask[:1], p):  # each pixel written once: 1 around, ramps inside
        strip.fill_(1)
    torch.maximum(ramps[0][:, None], ramps[1][None, :], out=mask[0, p.y:p.y + p.height, p.x:p.x + p.width])
    mask[1:] = mask[0]
    return mask, band


def merge_mask(mask: torch.Tensor, incoming: torch.Tensor, placement: Placement) -> torch.Tensor:
    """Union (max) of the outpaint mask with a user mask given at original or canvas size."""
    p = placement
    incoming, size = check_mask(incoming, mask.shape[0], {
        "the input image": (p.height, p.width), "the expanded canvas": (p.canvas_height, p.canvas_width)})
    incoming = incoming.to(mask.device, mask.dtype).clamp(0, 1)
    if size == "the input image":
        placed = torch.zeros((incoming.shape[0], p.canvas_height, p.canvas_width),
                             dtype=mask.dtype, device=mask.device)
        placed[:, p.y:p.y + p.height, p.x:p.x + p.width] = incoming
        incoming = placed
    return torch.maximum(mask, incoming)
