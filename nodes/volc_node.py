"""VolcOutpaint: Volcengine visual i2i_outpainting in a ComfyUI graph."""

from __future__ import annotations

from comfy_api.latest import io

from . import comfy_bridge
from .core import backends, volc, volc_expansion, volc_run, widgets
from .widget_inputs import widget_inputs


class VolcOutpaint(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="VolcOutpaint",
            display_name="Volcengine Outpaint (i2i_outpainting)",
            category="image/outpaint",
            description=(
                "Extends the canvas with Volcengine's visual service (req_key i2i_outpainting). Ratio mode: "
                "expand_mode gives the expansion as top/bottom/left/right fractions (四边扩展), pixels per side, "
                "x/y scale (等比扩展), an aspect ratio (画幅扩展) or a target size, sent as side fractions (each "
                "0 to 1). Canvas mode: connect a mask (white = generate) and "
                "pass the padded canvas as image, e.g. from MaskCanvasBuilder; the expansion widgets are then "
                "ignored. Credentials come from "
                "VOLC_ACCESSKEY/VOLC_SECRETKEY (or VOLC_API_KEY + VOLC_BASE_URL), never from widgets. "
                "Every request is billed by Volcengine; backend = sandbox runs offline for free."),
            inputs=[
                io.Image.Input("image", tooltip="ratio mode: the photo; canvas mode: the padded canvas"),
                *widget_inputs(widgets.VOLC),
                io.Mask.Input("mask", optional=True,
                              tooltip="connect to use canvas mode: 1 (white) = generate, same size as image"),
            ],
            outputs=[
                io.Image.Output("images", display_name="image",
                                tooltip="every batch item x every variant, item-major"),
                io.Mask.Output("generated_mask", display_name="mask",
                               tooltip="area the vendor generated, in output pixels (1 = generated)"),
                io.String.Output("info", display_name="info", tooltip="request ids, sizes and timings (JSON)"),
            ],
            hidden=[io.Hidden.unique_id],
        )

    @classmethod
    async def execute(cls, image, prompt, top, bottom, left, right, seed, steps, scale, strength, max_width,
                      max_height, variants, keep_original, timeout_s, backend, image_format, concurrency, return_url,
                      watermark, watermark_language, watermark_opacity, watermark_text, expand_mode="fraction",
                      pixels_left=0, pixels_top=0, pixels_right=0, pixels_bottom=0, x_scale=1.5, y_scale=1.5,
                      aspect_ratio="16:9", target_width=1024, target_height=1024, anchor="center",
                      use_cache=True, output_resolution="original", mask=None) -> io.NodeOutput:
        mark = volc.Watermark.from_widgets(watermark, watermark_language, watermark_opacity, watermark_text)
        params = volc.VolcParams(prompt=prompt, seed=seed, steps=steps, scale=scale, strength=strength, top=top,
                                 bottom=bottom, left=left, right=right, max_width=max_width,
                                 max_height=max_height, return_url=return_url, watermark=mark)
        if mask is None:  # ratio mode: every expansion type becomes the side fractions sent (canvas mode ignores them)
            expansion = volc_expansion.VolcExpansion(
                expand_mode, pixels_left, pixels_top, pixels_right, pixels_bottom, x_scale, y_scale, aspect_ratio,
                target_width, target_height, anchor)
            params = volc_expansion.ratio_params(params, expansion, image.shape[2], image.shape[1])
        options = volc_run.VolcOptions(variants=variants, keep_original=keep_original, timeout_s=timeout_s,
                                       concurrency=concurrency, image_format=image_format, use_cache=use_cache,
                                       output_resolution=output_resolution)

        def work(hooks):  # on a worker thread: other nodes run meanwhile
            return volc_run.run(image, mask, params, backends.volc_credentials(backend), options,
                                volc.VolcConfig.from_env(), hooks)
        result = await comfy_bridge.run_in_worker(cls.hidden.unique_id if cls.hidden else None, work)
        # the real input size drives the geometry preview in web/js after a run
        return io.NodeOutput(result.images, result.masks, result.info.to_json(),
                             ui=comfy_bridge.input_size_ui(image.shape[2], image.shape[1], result.info,
                                                                image.shape[0]))
