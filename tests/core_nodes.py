"""The few ComfyUI core nodes the example workflows use, as /object_info describes them
(ComfyUI 0.20.1). The real-ComfyUI test checks this table against the live server."""


def _info(required: dict, optional: dict | None = None) -> dict:
    inputs = {"required": required, **({"optional": optional} if optional else {})}
    return {"input": inputs, "input_order": {k: list(v) for k, v in inputs.items()}}


CORE_NODES = {
    "LoadImage": _info({"image": [[], {"image_upload": True}]}),
    "PreviewImage": _info({"images": ["IMAGE"]}),
    "MaskToImage": _info({"mask": ["MASK"]}),
    "PreviewAny": _info({"source": ["*", {}]}),
}
