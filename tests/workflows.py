"""UI-format workflow helpers: widget counting and the UI -> API prompt conversion the frontend does.

Rules from ComfyUI's frontend (graphToPrompt): every widget input (INT, FLOAT, STRING, BOOLEAN,
COMBO) stores one value in `widgets_values`, in the node's input order; a widget with
control_after_generate stores one more value right after it (not sent to the server); an
image-upload combo stores one more (the upload button). The frontend also gives INT widgets
named seed / noise_seed that control unless the schema says control_after_generate=False
(seen in frontend 1.42). Links become [source id, slot].
"""

from __future__ import annotations

import json
import pathlib

WIDGET_TYPES = {"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"}


def widget_inputs(info: dict) -> list[tuple[str, dict, int]]:
    """(name, options, number of widgets_values entries it takes) in the frontend's order."""
    out = []
    for group in ("required", "optional"):
        for name in info["input_order"].get(group, []):
            io_type, *rest = info["input"][group][name]
            opts = rest[0] if rest else {}
            if (isinstance(io_type, list) or io_type in WIDGET_TYPES) and not opts.get("forceInput"):
                control = opts.get("control_after_generate", name in ("seed", "noise_seed") and io_type == "INT")
                extra = int(bool(control)) + int(bool(opts.get("image_upload")))
                out.append((name, opts, 1 + extra))
    return out


def expected_widget_count(info: dict) -> int:
    return sum(n for _, _, n in widget_inputs(info))


def load(path: pathlib.Path) -> dict:
    return json.loads(path.read_text())


def ui_to_api(workflow: dict, infos: dict[str, dict]) -> dict:
    """Convert an example workflow to the API prompt that the frontend would queue."""
    links = {link[0]: link for link in workflow["links"]}
    prompt = {}
    for node in workflow["nodes"]:
        if node.get("mode", 0) != 0:
            continue
        info = infos[node["type"]]
        inputs = {}
        values = list(node.get("widgets_values") or [])
        for name, _, width in widget_inputs(info):
            inputs[name] = values[0]
            values = values[width:]
        for socket in node.get("inputs", []):
            if socket.get("link") is not None:
                link = links[socket["link"]]
                inputs[socket["name"]] = [str(link[1]), link[2]]
        prompt[str(node["id"])] = {"class_type": node["type"], "inputs": inputs}
    return prompt
