"""Which widgets each node shows, for the page (web/js/mode_widgets.js), from the one widget declaration.

    {node id: {"mode_widget": "expand_mode" | "mode",
               "modes": {widget: [mode values under which it applies]},
               "linked_hides": {input: [widgets that do not apply while that input is connected]}}}

A hidden widget keeps its value (saved in the workflow and sent in the prompt); only the page hides it.
"""

from __future__ import annotations

from .core import widgets


def _node(node_id: str, table) -> dict:
    mode = widgets.mode_widget(table)
    modes = widgets.modes_by_widget(table)
    # VolcOutpaint with a mask connected runs canvas mode: the ratio-mode expansion does not apply
    linked = {"mask": [mode, *modes]} if node_id == "VolcOutpaint" else {}
    return {"mode_widget": mode, "modes": modes, "linked_hides": linked}


MODES = {node_id: _node(node_id, table) for node_id, table in widgets.BY_NODE.items() if widgets.mode_widget(table)}
