"""MaskCanvasBuilder: pad an image into a larger canvas and make the matching outpaint mask."""

from __future__ import annotations

from comfy_api.latest import io

from . import comfy_bridge
from .core import canvas, geometry, widgets
from .core.errors import InputError
from .widget_inputs import widget_inputs

# Schema.search_aliases arrived after ComfyUI 0.3.64 (our floor); pass it only where it exists.
_SEARCH = ({"search_aliases": ["pad image for outpainting", "extend canvas", "expand image", "outpaint mask"]}
           if "search_aliases" in getattr(io.Schema, "__dataclass_fields__", {}) else {})


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
                *widget_inputs(widgets.CANVAS),
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
            for name, value in (("expand_mode", expand_mode), ("fill", fill)):
                if value is not None:
                    widgets.CANVAS[name].check(value)
            if expand_mode == "aspect_ratio" and aspect_ratio is not None:
                geometry.parse_ratio(aspect_ratio)
            if fill == "color" and fill_color is not None:
                canvas.parse_color(fill_color)
        except InputError as exc:
            return str(exc)
        return True

    @classmethod
    def execute(cls, image, mask=None, **settings) -> io.NodeOutput:
        result = canvas.build(image, settings, mask)
        p = result.placement
        return io.NodeOutput(result.image, result.mask, p.x, p.y, p.width, p.height,
                             ui=comfy_bridge.input_size_ui(p.width, p.height))
