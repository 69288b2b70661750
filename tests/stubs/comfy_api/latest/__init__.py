"""Stand-in for comfy_api.latest: ComfyExtension and the `io` schema module."""

from abc import ABC, abstractmethod

from . import _io as io  # noqa: F401  (the pack imports `io` from here, as in ComfyUI)


class ComfyExtension(ABC):
    async def on_load(self) -> None:
        """ComfyUI >= 0.13 awaits this before get_node_list."""

    @abstractmethod
    async def get_node_list(self) -> list:
        ...
