"""Test stand-in for ComfyUI's comfy_api package (only what this pack uses). Not shipped to users."""
