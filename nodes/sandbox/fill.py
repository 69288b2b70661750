"""The sandbox's stand-in for a generative model: fill new area with a blur of the known pixels
plus seeded grain. Deterministic for a seed, different across seeds, and the known pixels are
left exactly as they were — enough to test every promise a client makes about results.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..core.canvas import build_canvas
from ..core.geometry import Placement

GRAIN = 0.04  # noise amplitude: small, but changes the 8-bit output from one seed to another


def _generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(int(seed) & 0xFFFFFFFFFFFFFFFF)


def outpaint(image: torch.Tensor, placement: Placement, seed: int) -> torch.Tensor:
    """IMAGE [1,H,W,3] -> the canvas of `placement`, original pasted, new area filled."""
    return build_canvas(image, placement, fill="blur", noise=GRAIN, seed=seed)


def inpaint(canvas: torch.Tensor, generate: torch.Tensor, seed: int) -> torch.Tensor:
    """IMAGE [1,H,W,3] + bool [1,H,W] (True = generate) -> pixels where `generate` replaced by a
    blur of the kept pixels only (a normalised blur: generated pixels do not leak into it)."""
    _, h, w, _ = canvas.shape
    keep = (~generate).to(torch.float32)[:, None]                  # [1,1,H,W]
    pixels = canvas.movedim(-1, 1).to(torch.float32)               # [1,3,H,W]
    side = min(h, w)
    small = max(1, round(side / 32))
    size = (max(1, round(small * h / side)), max(1, round(small * w / side)))
    weight = F.interpolate(keep, size=size, mode="area")
    summed = F.interpolate(pixels * keep, size=size, mode="area")
    kept = keep.sum()
    mean = (pixels * keep).sum(dim=(2, 3), keepdim=True) / kept if kept > 0 else torch.full((1, 3, 1, 1), 0.5)
    tiny = torch.where(weight > 1e-6, summed / weight.clamp_min(1e-6), mean)
    blurred = F.interpolate(tiny, size=(h, w), mode="bilinear", align_corners=False).movedim(1, -1)
    grain = torch.randn(blurred.shape, generator=_generator(seed)) * GRAIN
    filled = (blurred + grain).clamp(0, 1).to(canvas.dtype)
    return torch.where(generate[..., None], filled, canvas)
