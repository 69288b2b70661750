"""DashScopeOutpaint: Alibaba DashScope image-out-painting (async task) in a ComfyUI graph."""

from __future__ import annotations

from comfy_api.latest import io

from . import comfy_bridge
from .core import backends, dashscope, dashscope_run, widgets
from .widget_inputs import widget_inputs


class DashScopeOutpaint(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="DashScopeOutpaint",
            display_name="DashScope Outpaint (image-out-painting)",
            category="image/outpaint",
            description=(
                "Extends images with Alibaba DashScope's image-out-painting (Beijing region). The image is "
                "uploaded to DashScope's temporary storage, a task is created and polled. Exactly one "
                "expansion mode is sent (the vendor would silently ignore the others). Key from "
                "DASHSCOPE_API_KEY, never from widgets. Each successful image is billed by DashScope; "
                "backend = sandbox runs offline for free."),
            inputs=[
                io.Image.Input("image"),
                *widget_inputs(widgets.DASHSCOPE),
            ],
            outputs=[
                io.Image.Output("images", display_name="image"),
                io.Mask.Output("generated_mask", display_name="mask",
                               tooltip="area the vendor generated, from the documented geometry (1 = generated)"),
                io.String.Output("info", display_name="info", tooltip="task ids, sizes, polls and timings (JSON)"),
            ],
            hidden=[io.Hidden.unique_id],
        )

    @classmethod
    async def execute(cls, image, mode, angle, output_ratio, x_scale, y_scale, left_offset, right_offset, top_offset,
                      bottom_offset, best_quality, limit_image_size, add_watermark, keep_original, timeout_s, backend,
                      concurrency, image_format, resume_task_ids, use_cache=True,
                      output_resolution="original") -> io.NodeOutput:
        params = dashscope.DashScopeParams(mode=mode, angle=angle, output_ratio=output_ratio, x_scale=x_scale,
                                           y_scale=y_scale, left_offset=left_offset, right_offset=right_offset,
                                           top_offset=top_offset, bottom_offset=bottom_offset,
                                           best_quality=best_quality, limit_image_size=limit_image_size,
                                           add_watermark=add_watermark)
        options = dashscope_run.DashScopeOptions(keep_original=keep_original, timeout_s=timeout_s,
                                                 concurrency=concurrency, image_format=image_format,
                                                 resume_task_ids=dashscope_run.parse_task_ids(resume_task_ids),
                                                 use_cache=use_cache, output_resolution=output_resolution)

        def work(hooks):  # on a worker thread: other nodes run meanwhile
            return dashscope_run.run(image, params, backends.dashscope_credentials(backend), options,
                                     dashscope.DashScopeConfig.from_env(), hooks)
        result = await comfy_bridge.run_in_worker(cls.hidden.unique_id if cls.hidden else None, work)
        # the real input size drives the geometry preview in web/js after a run
        return io.NodeOutput(result.images, result.masks, result.info.to_json(),
                             ui=comfy_bridge.input_size_ui(image.shape[2], image.shape[1], result.info,
                                                                image.shape[0]))
