"""output_resolution = original: the vendor's result brought to the input's own scale.

Both vendors return less than a large photo's pixels (Volcengine fits its result into max_width x
max_height, 1920 by default; DashScope takes at most 4096 px a side and shrinks results over 5 MB).
Here the output canvas is planned in the input's own pixels, so the original lands on it 1:1 and
only the generated area is upscaled. Pure geometry; the resize itself is composite.upscale_image.
"""

from __future__ import annotations

from . import geometry

ORIGINAL, VENDOR = "original", "vendor"
OPTIONS = (ORIGINAL, VENDOR)
# 8192² px: one float32 RGB IMAGE of that is 768 MiB in ComfyUI (its mask 256 MiB more, per batch
# item and variant); past it the vendor's own size is returned, with a note, instead of risking
# the machine's memory for an upscale of generated pixels. Each side stays within MAX_SIDE too.
MAX_PIXELS = 8192 * 8192


def over_limit(width: int, height: int) -> str | None:
    """The note that says why an original-scale canvas of width x height is not made, or None."""
    if width <= geometry.MAX_SIDE and height <= geometry.MAX_SIDE and width * height <= MAX_PIXELS:
        return None
    return (f"output_resolution original would make {width}x{height} px ({width * height / 1e6:.0f} MP), over the "
            f"pack's limit of 8192x8192 px ({MAX_PIXELS / 1e6:.0f} MP, 768 MiB per float32 image) or "
            f"{geometry.MAX_SIDE} px a side: the vendor's size is returned instead")


def at_input_scale(box: geometry.Placement, width: int, height: int) -> geometry.Placement:
    """The vendor's output canvas scaled so that `box` (where a width x height input landed on it)
    becomes exactly width x height: the placement of the input on the original-scale canvas."""
    sx, sy = width / box.width, height / box.height
    x, y = round(box.x * sx), round(box.y * sy)
    right, bottom = round(box.right * sx), round(box.bottom * sy)
    return geometry.Placement(x + width + right, y + height + bottom, x, y, width, height)


def target(planned: geometry.Placement | None,
           out_size: tuple[int, int]) -> tuple[geometry.Placement | None, str | None]:
    """-> (the original-scale placement to upscale the output to, or None for the vendor's size; a note).
    `planned` is the input's placement at its own scale (None: not asked for, or over the limit, said
    before paying). An output of another shape than planned is not stretched onto it."""
    if planned is None:
        return None, None
    size = (planned.canvas_width, planned.canvas_height)
    if not geometry.same_aspect(size, out_size):
        return None, (f"the vendor's {out_size[0]}x{out_size[1]} is not the shape of the planned {size[0]}x{size[1]}: "
                      "returned at the vendor's size, not stretched (output_resolution original)")
    return planned, None
