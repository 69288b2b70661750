"""Canvas mode: where the canvas sent to Volcengine landed on the image that came back, and the
paste-back by that answer.

The documented rule is the canvas itself, fitted into max_width x max_height. The official SDK
models default every side ratio to 0.1, even with two images: a service doing the same returns
the canvas in the middle of a larger one. Anything else of another aspect cannot be placed, so
it is returned as it came, never stretched over the original.
"""

from __future__ import annotations

import torch

from . import composite, geometry

DEFAULT_SIDE = 0.1  # the SDK models' side ratio when a body leaves it out


def _near(a: tuple[int, int], b: tuple[int, int]) -> bool:
    return all(abs(x - y) <= 1 for x, y in zip(a, b))


def locate(sent: tuple[int, int], expected: tuple[int, int], out: tuple[int, int], max_width: int,
           max_height: int) -> tuple[geometry.Placement | None, str | None]:
    """-> (the canvas's box on the output, or None when it is unknown; a note, or None for the rule)."""
    width, height = out
    whole = geometry.Placement(width, height, 0, 0, width, height)
    if _near(out, expected):
        return whole, None
    grown, grown_size = geometry.volc_ratio_output(*sent, *(DEFAULT_SIDE,) * 4, max_width, max_height)
    if _near(out, grown_size):
        box = geometry.scale_placement(grown, width, height)
        return box, (f"the output is the canvas grown by Volcengine's default side ratio {DEFAULT_SIDE}: the "
                     f"canvas was placed at x {box.x}, y {box.y}, {box.width}x{box.height}")
    if geometry.same_aspect(sent, out):
        return whole, None  # a plain resize of the canvas
    return None, (f"the output's aspect differs from the canvas sent ({sent[0]}x{sent[1]}): where the canvas "
                  "landed is unknown, so the original was not pasted back and the mask covers the whole image")


def canvas_result(generated: torch.Tensor, source: torch.Tensor, mask: torch.Tensor, box: geometry.Placement | None,
                  keep_original: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """The output and its mask (1 = generated) for canvas mode, `source`/`mask` in canvas space."""
    height, width = generated.shape[1:3]
    if box is None:
        return generated, generated.new_ones((1, height, width))
    if (box.x, box.y, box.width, box.height) == (0, 0, width, height):
        if keep_original:
            return composite.paste_back(generated, source.to(generated.device), mask)
        return generated, composite.resize_mask(mask, width, height)
    out_mask = generated.new_ones((1, height, width))
    out_mask[:, box.y:box.y + box.height, box.x:box.x + box.width] = \
        composite.resize_mask(mask.to(generated.device, generated.dtype), box.width, box.height)
    if keep_original:
        generated = composite.paste_original(generated, source, box, out_mask)
    return generated, out_mask
