"""The pack's ComfyUI extension: the list of V3 nodes it registers, and (at import time) the
settings/preview HTTP routes and the credential store's place in ComfyUI's user directory."""

from comfy_api.latest import ComfyExtension, io

from . import routes
from .canvas_node import MaskCanvasBuilder
from .dashscope_node import DashScopeOutpaint
from .volc_node import VolcOutpaint

routes.install()  # no-op without ComfyUI's PromptServer (tests with the stand-in comfy_api)

NODES: list[type[io.ComfyNode]] = [MaskCanvasBuilder, VolcOutpaint, DashScopeOutpaint]


class CloudOutpaintExtension(ComfyExtension):
    async def get_node_list(self) -> list[type[io.ComfyNode]]:
        return list(NODES)


async def comfy_entrypoint() -> CloudOutpaintExtension:
    return CloudOutpaintExtension()
