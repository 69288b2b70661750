"""Cloud Outpaint for ComfyUI: pack entry point.

ComfyUI loads this folder under its own module name and calls comfy_entrypoint() (V3 nodes).
Outside ComfyUI (tests, command line) there is no comfy_api and the nodes are simply not
registered; inside ComfyUI any real import error still propagates and shows as IMPORT FAILED.
"""

import importlib.util

WEB_DIRECTORY = "./web"
__all__ = ["WEB_DIRECTORY"]

if importlib.util.find_spec("comfy_api") is not None:
    from .nodes.extension import comfy_entrypoint  # noqa: F401

    __all__.append("comfy_entrypoint")
