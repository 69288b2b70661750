"""Drive a V3 node the way ComfyUI's executor does, without ComfyUI.

Steps mirror ComfyUI 0.20.1 `execution.validate_inputs` and `_async_map_node_over_list`:
schema finalised, widget values coerced to their type, min/max and combo checks *unless* the
node's validate_inputs names that input, validate_inputs called with the widget values it
declares (linked inputs arrive as None), then execute (sync or async) on a class with
`hidden` filled in, and the NodeOutput unpacked.
"""

from __future__ import annotations

import asyncio
import inspect

from comfy_api.latest import io


class ValidationFailed(Exception):
    def __init__(self, errors: list[dict]):
        super().__init__("; ".join(f"{e['type']}: {e['details']}" for e in errors))
        self.errors = errors


def node_info(node_cls) -> dict:
    """What /object_info/<id> would serve for this node."""
    return node_cls.GET_SCHEMA().get_v1_info(node_cls)


def _declared(node_cls) -> tuple[list[str], bool]:
    own = node_cls.__dict__.get("validate_inputs")
    if own is None:
        return [], False
    spec = inspect.getfullargspec(own.__func__)
    return spec.args, spec.varkw is not None


def validate(node_cls, inputs: dict, linked: set[str] = frozenset()) -> dict:
    """Coerce and check widget values; returns the inputs to execute with."""
    info = node_info(node_cls)
    declared, has_kwargs = _declared(node_cls)
    spec = {**info["input"].get("required", {}), **info["input"].get("optional", {})}
    errors, values = [], dict(inputs)
    for name, (io_type, opts) in spec.items():
        if name not in values:
            if name in info["input"].get("required", {}):
                errors.append({"type": "required_input_missing", "details": name})
            continue
        if name in linked:
            continue
        val = values[name]
        try:
            val = {"INT": int, "FLOAT": float, "STRING": str, "BOOLEAN": bool}.get(io_type, lambda v: v)(val)
        except (TypeError, ValueError) as exc:
            errors.append({"type": "invalid_input_type", "details": f"{name}, {val}, {exc}"})
            continue
        values[name] = val
        if name in declared or has_kwargs:
            continue
        if "min" in opts and val < opts["min"]:
            errors.append({"type": "value_smaller_than_min", "details": name})
        elif "max" in opts and val > opts["max"]:
            errors.append({"type": "value_bigger_than_max", "details": name})
        elif io_type == "COMBO" and val not in opts.get("options", []):
            errors.append({"type": "value_not_in_list", "details": f"{name}: '{val}'"})
    unknown = set(values) - set(spec)
    if unknown:
        raise TypeError(f"inputs not in the schema: {sorted(unknown)}")
    if (declared or has_kwargs) and not errors:
        args = {k: (None if k in linked else v) for k, v in values.items() if k in declared or has_kwargs}
        result = node_cls.validate_inputs(**args)
        if result is not True:
            errors.append({"type": "custom_validation_failed", "details": str(result)})
    if errors:
        raise ValidationFailed(errors)
    return values


async def execute_async(node_cls, hidden: dict | None = None, linked: set[str] = frozenset(), **inputs) -> tuple:
    """Validate, then run execute on a per-run clone, as ComfyUI does; returns the outputs.
    Awaitable, so several nodes can run on one event loop as ComfyUI runs independent nodes."""
    values = validate(node_cls, inputs, linked)
    clone = type(node_cls.__name__, (node_cls,), {"hidden": io.HiddenHolder(hidden)})
    out = clone.execute(**values)
    if inspect.isawaitable(out):
        out = await out
    if isinstance(out, io.NodeOutput):
        return out.args
    return tuple(out)


def execute(node_cls, hidden: dict | None = None, linked: set[str] = frozenset(), **inputs) -> tuple:
    """execute_async on an event loop of its own (ComfyUI runs each prompt under asyncio.run)."""
    return asyncio.run(execute_async(node_cls, hidden, linked, **inputs))
