"""Stand-in for comfy_api.latest._io, written from ComfyUI 0.20.1's behaviour (output names: 0.3.64's).

It builds the same V1-shaped node info that /object_info serves (input dicts, input_order,
output names) and keeps the rules that matter to a pack: ids unique across inputs and
outputs, keyword-only widget options, hidden inputs read as cls.hidden.<name>.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any


def _pruned(d: dict) -> dict:
    return {k: v for k, v in d.items() if v is not None}


class Hidden(str, Enum):
    unique_id = "UNIQUE_ID"
    prompt = "PROMPT"
    extra_pnginfo = "EXTRA_PNGINFO"
    dynprompt = "DYNPROMPT"
    auth_token_comfy_org = "AUTH_TOKEN_COMFY_ORG"
    api_key_comfy_org = "API_KEY_COMFY_ORG"


class HiddenHolder:
    def __init__(self, values: dict | None = None):
        values = values or {}
        for h in Hidden:
            setattr(self, h.name, values.get(h.name))


class _Input:
    io_type: str = None

    def __init__(self, id: str, display_name: str = None, optional: bool = False, tooltip: str = None,
                 lazy: bool = None, extra_dict: dict = None, raw_link: bool = None, advanced: bool = None):
        self.id, self.display_name, self.optional, self.tooltip = id, display_name, optional, tooltip
        self.lazy, self.extra_dict, self.raw_link, self.advanced = lazy, extra_dict or {}, raw_link, advanced

    def as_dict(self) -> dict:
        # `optional` is not an option in /object_info: optional inputs go in the "optional" group
        return _pruned({"display_name": self.display_name, "tooltip": self.tooltip, "lazy": self.lazy, "rawLink": self.raw_link,
                        "advanced": self.advanced}) | _pruned(self.extra_dict)


class _WidgetInput(_Input):
    def __init__(self, id, display_name=None, optional=False, tooltip=None, lazy=None, default=None,
                 socketless=None, force_input=None, extra_dict=None, raw_link=None, advanced=None):
        super().__init__(id, display_name, optional, tooltip, lazy, extra_dict, raw_link, advanced)
        self.default, self.socketless, self.force_input = default, socketless, force_input

    def as_dict(self) -> dict:
        return super().as_dict() | _pruned({"default": self.default, "socketless": self.socketless,
                                             "forceInput": self.force_input})


class _Output:
    io_type: str = None

    def __init__(self, id: str = None, display_name: str = None, tooltip: str = None, is_output_list=False):
        # ComfyUI 0.3.64 keeps display_name None here, so an output without one is named by its type
        # ("INT"); 0.20.1 falls back to the id. The stand-in takes the floor's rule.
        self.id, self.display_name, self.tooltip, self.is_output_list = id, display_name, tooltip, is_output_list


def _type(io_type: str, input_base=_Input, **input_fields):
    """A ComfyType class with nested Input/Output bound to io_type."""
    fields = dict(input_fields)

    class Input(input_base):
        def __init__(self, id, *args, **kwargs):
            own = {k: kwargs.pop(k, d) for k, d in fields.items()}
            super().__init__(id, *args, **kwargs)
            for k, v in own.items():
                setattr(self, k, v)

        def as_dict(self):
            extra = {fields_key(k): getattr(self, k) for k in fields}
            return super().as_dict() | _pruned(extra)

    Input.io_type = io_type

    class Output(_Output):
        pass

    Output.io_type = io_type
    return type(io_type.title(), (), {"io_type": io_type, "Input": Input, "Output": Output})


def fields_key(name: str) -> str:
    return {"display_mode": "display", "dynamic_prompts": "dynamicPrompts"}.get(name, name)


class NumberDisplay(str, Enum):
    number = "number"
    slider = "slider"


Int = _type("INT", _WidgetInput, min=None, max=None, step=None, control_after_generate=None, display_mode=None)
Float = _type("FLOAT", _WidgetInput, min=None, max=None, step=None, round=None, display_mode=None)
String = _type("STRING", _WidgetInput, multiline=False, placeholder=None, dynamic_prompts=None)
Boolean = _type("BOOLEAN", _WidgetInput, label_on=None, label_off=None)
Image = _type("IMAGE")
Mask = _type("MASK")


class _ComboInput(_WidgetInput):
    io_type = "COMBO"

    def __init__(self, id, options=None, display_name=None, optional=False, tooltip=None, lazy=None,
                 default=None, control_after_generate=None, **kwargs):
        if isinstance(options, type) and issubclass(options, Enum):
            options = [v.value for v in options]
        super().__init__(id, display_name, optional, tooltip, lazy, default, **kwargs)
        self.options, self.control_after_generate = options, control_after_generate

    def as_dict(self):
        return super().as_dict() | _pruned({"options": self.options, "multiselect": False,
                                             "control_after_generate": self.control_after_generate})


class Combo:
    io_type = "COMBO"
    Input = _ComboInput

    class Output(_Output):
        io_type = "COMBO"


@dataclass
class Schema:
    node_id: str
    display_name: str = None
    category: str = "sd"
    inputs: list = field(default_factory=list)
    outputs: list = field(default_factory=list)
    hidden: list = field(default_factory=list)
    description: str = ""
    search_aliases: list = field(default_factory=list)
    is_input_list: bool = False
    is_output_node: bool = False
    is_deprecated: bool = False
    is_experimental: bool = False
    is_dev_only: bool = False
    is_api_node: bool = False
    not_idempotent: bool = False
    enable_expand: bool = False

    def validate(self):
        ids_in = [i.id for i in self.inputs]
        ids_out = [o.id for o in self.outputs if o.id is not None]
        dup = {i for i in ids_in if ids_in.count(i) > 1} | {o for o in ids_out if ids_out.count(o) > 1}
        if dup:
            raise ValueError(f"ids must be unique, but {sorted(dup)} are not")
        clash = set(ids_in) & set(ids_out)
        if clash:
            raise ValueError(f"input and output ids must differ, but {sorted(clash)} are both")

    def finalize(self):
        if self.is_output_node:
            for h in (Hidden.prompt, Hidden.extra_pnginfo):
                if h not in self.hidden:
                    self.hidden.append(h)
        for i, o in enumerate(self.outputs):
            if o.id is None:
                o.id = f"_{i}_{o.io_type}_"

    def get_v1_info(self, cls) -> dict:
        inputs = {"required": {}}
        for i in self.inputs:
            inputs.setdefault("optional" if i.optional else "required", {})[i.id] = (i.io_type, i.as_dict())
        for h in self.hidden:
            inputs.setdefault("hidden", {})[h.name] = (h.value,)
        return {
            "input": inputs,
            "input_order": {k: list(v) for k, v in inputs.items()},
            "output": [o.io_type for o in self.outputs],
            "output_is_list": [o.is_output_list for o in self.outputs],
            "output_name": [o.display_name or o.io_type for o in self.outputs],
            "output_tooltips": [o.tooltip for o in self.outputs],
            "name": self.node_id, "display_name": self.display_name, "category": self.category,
            "description": self.description, "output_node": self.is_output_node,
            "deprecated": self.is_deprecated, "experimental": self.is_experimental,
            "api_node": self.is_api_node, "python_module": getattr(cls, "RELATIVE_PYTHON_MODULE", "nodes"),
        }


class NodeOutput:
    def __init__(self, *args: Any, ui=None, expand=None, block_execution=None):
        self.args, self.ui, self.expand, self.block_execution = args, ui, expand, block_execution

    @property
    def result(self):
        return self.args if self.args else None


class ComfyNode:
    RELATIVE_PYTHON_MODULE = None
    hidden: HiddenHolder = None

    @classmethod
    def define_schema(cls) -> Schema:
        raise NotImplementedError

    @classmethod
    def execute(cls, **kwargs) -> NodeOutput:
        raise NotImplementedError

    @classmethod
    def validate_inputs(cls, **kwargs):
        raise NotImplementedError

    @classmethod
    def fingerprint_inputs(cls, **kwargs):
        raise NotImplementedError

    @classmethod
    def GET_SCHEMA(cls) -> Schema:
        schema = cls.define_schema()
        schema.validate()
        schema.finalize()
        return schema
