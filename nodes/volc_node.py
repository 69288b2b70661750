"""VolcOutpaint: Volcengine visual i2i_outpainting in a ComfyUI graph."""

from __future__ import annotations

from comfy_api.latest import io

from . import comfy_bridge
from .canvas_node import input_size_ui
from .core import backends, volc, volc_run

WATERMARKS = {"off": None, "bottom-right": 0, "bottom-left": 1, "top-left": 2, "top-right": 3}
_SIDE_TIP = ("fraction of the image {} added on the {} side (ratio mode; Volcengine allows 0 to 1, "
             "1 = double that side); ignored when a mask is connected")


class VolcOutpaint(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="VolcOutpaint",
            display_name="Volcengine Outpaint (i2i_outpainting)",
            category="image/outpaint",
            description=(
                "Extends the canvas with Volcengine's visual service (req_key i2i_outpainting). Ratio mode: "
                "give top/bottom/left/right fractions. Canvas mode: connect a mask (white = generate) and "
                "pass the padded canvas as image, e.g. from MaskCanvasBuilder. Credentials come from "
                "VOLC_ACCESSKEY/VOLC_SECRETKEY (or VOLC_API_KEY + VOLC_BASE_URL), never from widgets. "
                "Every request is billed by Volcengine; backend = sandbox runs offline for free."),
            inputs=[
                io.Image.Input("image", tooltip="ratio mode: the photo; canvas mode: the padded canvas"),
                io.String.Input("prompt", multiline=True, default="",
                                tooltip="what should appear in the new area (optional; ~100 words or "
                                        "Chinese characters are read, and the text is moderated)"),
                *[io.Float.Input(side, default=0.1, min=0.0, max=1.0, step=0.01, tooltip=_SIDE_TIP.format(dim, side))
                  for side, dim in (("top", "height"), ("bottom", "height"), ("left", "width"),
                                    ("right", "width"))],
                io.Int.Input("seed", default=-1, min=-1, max=2**31 - 1, control_after_generate=True,
                             tooltip="-1 = the vendor picks; variants use seed, seed+1, ..."),
                io.Int.Input("steps", default=30, min=1, max=100,
                             tooltip="sampling steps (vendor default 30); more is slower"),
                io.Float.Input("scale", default=7.0, min=1.0, max=20.0, step=0.1,
                               tooltip="how strongly the prompt is followed (vendor default 7)"),
                io.Float.Input("strength", default=0.8, min=0.1, max=1.0, step=0.01,
                               tooltip="lower stays closer to the original (vendor default 0.8)"),
                io.Int.Input("max_width", default=1920, min=64, max=8192, step=8,
                             tooltip="the vendor resizes its result to fit max_width x max_height"),
                io.Int.Input("max_height", default=1920, min=64, max=8192, step=8,
                             tooltip="the vendor resizes its result to fit max_width x max_height"),
                io.Int.Input("variants", default=1, min=1, max=4,
                             tooltip="results per image (each is a billed request); the vendor "
                                     "recommends offering 3-4 to choose from"),
                io.Boolean.Input("keep_original", default=True,
                                 tooltip="paste the original pixels back over the result with a soft seam"),
                io.Int.Input("timeout_s", default=180, min=10, max=3600,
                             tooltip="wall-clock limit for the whole run, retries included"),
                io.Combo.Input("backend", options=list(backends.BACKENDS), default="cloud",
                               tooltip="cloud = Volcengine (billed); sandbox = the pack's offline emulator "
                                       "(free, simple fill: for trying graphs without an account)"),
                io.Combo.Input("image_format", options=["jpeg", "png"], default="jpeg",
                               tooltip="upload format of the image: jpeg (q95, ~5x smaller, faster) or png "
                                       "(lossless); masks are always PNG"),
                io.Int.Input("concurrency", default=2, min=1, max=8,
                             tooltip="requests in flight at once (batch items x variants); raise it only "
                                     "if your account's concurrency quota allows"),
                io.Boolean.Input("return_url", default=False,
                                 tooltip="ask for a download link instead of inline image data"),
                io.Combo.Input("watermark", options=list(WATERMARKS), default="off",
                               tooltip="visible 'AI generated' label added by the vendor (logo_info)"),
                io.Combo.Input("watermark_language", options=["zh", "en"], default="zh",
                               tooltip="label text: zh = AI生成, en = Generated by AI"),
                io.Float.Input("watermark_opacity", default=1.0, min=0.0, max=1.0, step=0.05),
                io.String.Input("watermark_text", default="", tooltip="custom label text (empty = default)"),
                io.Mask.Input("mask", optional=True,
                              tooltip="connect to use canvas mode: 1 (white) = generate, same size as image"),
            ],
            outputs=[
                io.Image.Output("images", display_name="image",
                                tooltip="every batch item x every variant, item-major"),
                io.Mask.Output("generated_mask", display_name="mask",
                               tooltip="area the vendor generated, in output pixels (1 = generated)"),
                io.String.Output("info", tooltip="request ids, sizes and timings (JSON)"),
            ],
            hidden=[io.Hidden.unique_id],
        )

    @classmethod
    def execute(cls, image, prompt, top, bottom, left, right, seed, steps, scale, strength, max_width,
                max_height, variants, keep_original, timeout_s, backend, image_format, concurrency, return_url,
                watermark, watermark_language, watermark_opacity, watermark_text, mask=None) -> io.NodeOutput:
        position = WATERMARKS.get(watermark)
        mark = None if position is None else volc.Watermark(position, int(watermark_language == "en"),
                                                             watermark_opacity, watermark_text)
        params = volc.VolcParams(prompt=prompt, seed=seed, steps=steps, scale=scale, strength=strength, top=top,
                                 bottom=bottom, left=left, right=right, max_width=max_width,
                                 max_height=max_height, return_url=return_url, watermark=mark)
        options = volc_run.RunOptions(variants=variants, keep_original=keep_original, timeout_s=timeout_s,
                                      concurrency=concurrency, image_format=image_format)
        feedback = comfy_bridge.NodeFeedback(cls.hidden.unique_id if cls.hidden else None)
        hooks = volc_run.RunHooks(poll=comfy_bridge.check_interrupt, status=feedback.status,
                                  progress=feedback.progress)
        images, masks, info = volc_run.run(image, mask, params, backends.volc_credentials(backend), options,
                                           volc.VolcConfig.from_env(), hooks)
        # the real input size drives the geometry preview in web/js after a run
        return io.NodeOutput(images, masks, info, ui=input_size_ui(image.shape[2], image.shape[1]))
