"""Node classes (import comfy_api) live here; everything ComfyUI-free lives in nodes/core."""
