"""ComfyUI-free building blocks: geometry, canvas, codec, errors. Nothing here imports comfy*."""
