"""The pack's ComfyUI extension: the list of V3 nodes it registers, and (at import time) the
settings/preview HTTP routes, the credential store's place in ComfyUI's user directory and the
examples' image in ComfyUI's input folder."""

from comfy_api.latest import ComfyExtension, io

from . import routes, sample_image
from .canvas_node import MaskCanvasBuilder
from .dashscope_node import DashScopeOutpaint
from .volc_node import VolcOutpaint

routes.install()  # no-op without ComfyUI's PromptServer (tests with the stand-in comfy_api)
sample_image.install()  # no-op without ComfyUI's folder_paths

NODES: list[type[io.ComfyNode]] = [MaskCanvasBuilder, VolcOutpaint, DashScopeOutpaint]


class CloudOutpaintExtension(ComfyExtension):
    async def get_node_list(self) -> list[type[io.ComfyNode]]:
        return list(NODES)


async def comfy_entrypoint() -> CloudOutpaintExtension:
    return CloudOutpaintExtension()
