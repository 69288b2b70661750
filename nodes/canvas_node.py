"""MaskCanvasBuilder: pad an image into a larger canvas and make the matching outpaint mask."""

from __future__ import annotations

import logging

from comfy_api.latest import io

from . import comfy_bridge
from .core import canvas, geometry
from .core.errors import InputError

log = logging.getLogger(__name__)

MAX = geometry.MAX_SIDE
# Schema.search_aliases arrived after ComfyUI 0.3.64 (our floor); pass it only where it exists.
_SEARCH = ({"search_aliases": ["pad image for outpainting", "extend canvas", "expand image", "outpaint mask"]}
           if "search_aliases" in getattr(io.Schema, "__dataclass_fields__", {}) else {})
_SIDE_TIP = "pixels added on the {} side (expand_mode = pixels)"
_FRACTION_TIP = ("fraction of the image {} added on the {} side (expand_mode = fraction; "
                 "Volcengine's ratio semantics, 0.1 = 10 %)")


class MaskCanvasBuilder(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="MaskCanvasBuilder",
            display_name="Mask Canvas Builder (outpaint)",
            category="image/outpaint",
            **_SEARCH,
            description=(
                "Pads an image into a larger canvas and returns the matching mask (1 = area to generate) "
                "plus where the original sits, for cloud or local outpainting. Does everything "
                "'Pad Image for Outpainting' does, with one mask per batch item, a symmetric "
                "vectorised feather, more ways to say how much to expand, and more fills."),
            inputs=[
                io.Image.Input("image"),
                io.Combo.Input("expand_mode", options=list(geometry.EXPAND_MODES), default="pixels",
                               tooltip="how the expansion is given: pixels per side, fraction per side, "
                                       "x/y scale, target aspect ratio, or target width x height"),
                *[io.Int.Input(side, default=0, min=0, max=MAX, step=1, tooltip=_SIDE_TIP.format(side))
                  for side in ("left", "top", "right", "bottom")],
                io.Int.Input("feathering", default=40, min=0, max=MAX, step=1,
                             tooltip="width in px of the soft ramp ((f-d)/f)^2 that lets the mask reach "
                                     "into the original from each padded side; shrunk to fit small images"),
                *[io.Float.Input(f"fraction_{side}", default=0.1, min=0.0, max=4.0, step=0.01,
                                 tooltip=_FRACTION_TIP.format(dim, side))
                  for side, dim in (("left", "width"), ("top", "height"), ("right", "width"),
                                    ("bottom", "height"))],
                io.Float.Input("x_scale", default=1.5, min=1.0, max=8.0, step=0.05,
                               tooltip="canvas width = image width x this (expand_mode = scale; DashScope's x_scale)"),
                io.Float.Input("y_scale", default=1.5, min=1.0, max=8.0, step=0.05,
                               tooltip="canvas height = image height x this (expand_mode = scale; DashScope's y_scale)"),
                io.String.Input("aspect_ratio", default="16:9",
                                tooltip="target canvas shape W:H, e.g. 16:9, 3:4, 1:1 (expand_mode = aspect_ratio); "
                                        "only one side grows"),
                io.Int.Input("target_width", default=1024, min=1, max=MAX, step=1,
                             tooltip="canvas width (expand_mode = target_size); must be >= the image width"),
                io.Int.Input("target_height", default=1024, min=1, max=MAX, step=1,
                             tooltip="canvas height (expand_mode = target_size); must be >= the image height"),
                io.Combo.Input("anchor", options=list(geometry.ANCHORS), default="center",
                               tooltip="where the original sits when the canvas size is given as a whole "
                                       "(scale, aspect_ratio, target_size) and where rounding adds pixels"),
                io.Int.Input("multiple_of", default=1, min=1, max=1024, step=1,
                             tooltip="round the canvas up to a multiple of this (8, 16, 64 for diffusion "
                                     "models); the extra goes to the padded sides"),
                io.Combo.Input("fill", options=list(canvas.FILL_MODES), default="grey",
                               tooltip="what the new area shows: grey 0.5 (as Pad Image for Outpainting), "
                                       "a solid colour, the edge pixels stretched, a mirror of the image, "
                                       "or a blurred stretched copy"),
                io.String.Input("fill_color", default="#808080",
                                tooltip="colour for fill = color: #RRGGBB or r,g,b (0-255)"),
                io.Float.Input("noise", default=0.0, min=0.0, max=1.0, step=0.01,
                               tooltip="strength of gaussian noise added to the new area only (0 = off)"),
                io.Int.Input("seed", default=0, min=0, max=0xFFFFFFFFFFFFFFFF, control_after_generate=False,
                             tooltip="seed of the noise, so a canvas can be rebuilt exactly"),
                # control_after_generate=False: the frontend would otherwise add a "randomize"
                # control to any INT named seed, changing the canvas (and paid calls after it) each run
                io.Combo.Input("feather_curve", options=list(canvas.FEATHER_CURVES), default="quadratic",
                               tooltip="shape of the feather ramp; quadratic matches Pad Image for Outpainting"),
                io.Int.Input("overlap", default=0, min=0, max=MAX, step=1,
                             tooltip="px of the original next to each padded side that are fully masked "
                                     "(1.0) so the model repaints the seam; the feather starts after it"),
                io.Mask.Input("mask", optional=True,
                              tooltip="extra area to generate, at the size of the input image or of the "
                                      "expanded canvas; merged (max) into the outpaint mask"),
            ],
            outputs=[
                io.Image.Output("canvas", display_name="image", tooltip="the padded canvas"),
                io.Mask.Output("canvas_mask", display_name="mask",
                               tooltip="one mask per batch item; 1 = area to generate"),
                io.Int.Output("x", display_name="x", tooltip="left edge of the original inside the canvas"),
                io.Int.Output("y", display_name="y", tooltip="top edge of the original inside the canvas"),
                io.Int.Output("width", display_name="width", tooltip="width of the original"),
                io.Int.Output("height", display_name="height", tooltip="height of the original"),
            ],
        )

    @classmethod
    def validate_inputs(cls, expand_mode=None, fill=None, aspect_ratio=None, fill_color=None):
        # Naming an input here turns off ComfyUI's own check for it, so both combos are re-checked.
        # Linked inputs arrive as None and are checked in execute instead.
        try:
            if expand_mode is not None and expand_mode not in geometry.EXPAND_MODES:
                return f"expand_mode {expand_mode!r} is not one of {', '.join(geometry.EXPAND_MODES)}"
            if fill is not None and fill not in canvas.FILL_MODES:
                return f"fill {fill!r} is not one of {', '.join(canvas.FILL_MODES)}"
            if expand_mode == "aspect_ratio" and aspect_ratio is not None:
                geometry.parse_ratio(aspect_ratio)
            if fill == "color" and fill_color is not None:
                canvas.parse_color(fill_color)
        except InputError as exc:
            return str(exc)
        return True

    @classmethod
    def execute(cls, image, expand_mode, left, top, right, bottom, feathering,
                fraction_left, fraction_top, fraction_right, fraction_bottom, x_scale, y_scale,
                aspect_ratio, target_width, target_height, anchor, multiple_of, fill, fill_color,
                noise, seed, feather_curve, overlap, mask=None) -> io.NodeOutput:
        image = canvas.check_image(image)
        batch, height, width, _ = image.shape
        placement = geometry.plan_expansion(
            width, height, expand_mode, left=left, top=top, right=right, bottom=bottom,
            fraction_left=fraction_left, fraction_top=fraction_top, fraction_right=fraction_right,
            fraction_bottom=fraction_bottom, x_scale=x_scale, y_scale=y_scale, aspect_ratio=aspect_ratio,
            target_width=target_width, target_height=target_height, anchor=anchor, multiple_of=multiple_of)
        out_mask, band = canvas.build_mask(placement, batch, feathering, overlap, feather_curve,
                                           dtype=image.dtype, device=image.device)
        if band.clamped:
            log.warning("MaskCanvasBuilder: feathering %d / overlap %d do not fit a %dx%d image; "
                        "using %d / %d", feathering, overlap, width, height, band.feathering, band.overlap)
        if mask is not None:
            out_mask = canvas.merge_mask(out_mask, mask, placement)
        color = canvas.parse_color(fill_color) if fill == "color" else (0.5, 0.5, 0.5)
        out_image = canvas.build_canvas(image, placement, fill, color, noise, seed)
        return io.NodeOutput(out_image, out_mask, placement.x, placement.y, placement.width, placement.height,
                             ui=comfy_bridge.input_size_ui(width, height))
