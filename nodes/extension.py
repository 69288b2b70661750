"""The pack's ComfyUI extension: the list of V3 nodes it registers."""

from comfy_api.latest import ComfyExtension, io

from .canvas_node import MaskCanvasBuilder
from .dashscope_node import DashScopeOutpaint
from .volc_node import VolcOutpaint

NODES: list[type[io.ComfyNode]] = [MaskCanvasBuilder, VolcOutpaint, DashScopeOutpaint]


class CloudOutpaintExtension(ComfyExtension):
    async def get_node_list(self) -> list[type[io.ComfyNode]]:
        return list(NODES)


async def comfy_entrypoint() -> CloudOutpaintExtension:
    return CloudOutpaintExtension()
