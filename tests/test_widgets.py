"""One declaration for every widget (nodes/core/widgets.py): the node schemas, the engine's
dataclass defaults, the geometry preview and the engine's own checks all read it."""

import dataclasses
import inspect
import math

import comfy_driver as drv
import pytest
from pack import InputError, module

widgets = module("nodes.core.widgets")
volc = module("nodes.core.volc")
dashscope = module("nodes.core.dashscope")
preview = module("nodes.core.preview")
NODES = {
    "VolcOutpaint": (module("nodes.volc_node").VolcOutpaint, widgets.VOLC),
    "DashScopeOutpaint": (module("nodes.dashscope_node").DashScopeOutpaint, widgets.DASHSCOPE),
    "MaskCanvasBuilder": (module("nodes.canvas_node").MaskCanvasBuilder, widgets.CANVAS),
}


@pytest.mark.parametrize("node_id", NODES)
def test_each_schema_widget_is_the_declared_one(node_id):
    node_cls, table = NODES[node_id]
    info = drv.node_info(node_cls)
    spec = {**info["input"]["required"], **info["input"].get("optional", {})}
    schema_widgets = [name for name, (io_type, _) in spec.items() if io_type not in ("IMAGE", "MASK")]
    assert schema_widgets == list(table)
    for name, w in table.items():
        io_type, opts = spec[name]
        if w.kind == "COMBO":
            assert io_type == list(w.options) or opts.get("options") == list(w.options), name
        else:
            assert io_type == w.kind, name
        assert opts.get("default") == w.default, name
        assert opts.get("tooltip") == (w.tooltip or None), name
        for key in ("min", "max", "step"):
            assert opts.get(key) == getattr(w, key), (name, key)


@pytest.mark.parametrize("node_id", ["VolcOutpaint", "DashScopeOutpaint"])
def test_widgets_added_after_0_1_0_are_optional_and_execute_defaults_to_their_declared_value(node_id):
    """An API prompt saved with 0.1.0 lacks them: ComfyUI must not refuse it, execute() fills the default."""
    node_cls, table = NODES[node_id]
    optional = drv.node_info(node_cls)["input"].get("optional", {})
    parameters = inspect.signature(node_cls.execute).parameters
    assert [n for n in optional if n in table] == [n for n, w in table.items() if w.optional]
    flags = [w.optional for w in table.values()]
    assert flags == sorted(flags)  # the added ones come last: saved widgets_values keep their order
    for name, w in table.items():
        default = parameters[name].default
        assert (default is not inspect.Parameter.empty) is w.optional, name
        assert not w.optional or default == w.default, (name, default, w.default)


@pytest.mark.parametrize("cls, table", [(volc.VolcParams, widgets.VOLC), (dashscope.DashScopeParams, widgets.DASHSCOPE)])
def test_engine_defaults_are_the_widget_defaults(cls, table):
    fields = [f for f in dataclasses.fields(cls) if f.name in table]
    assert len(fields) >= 8
    for f in fields:
        if f.name == "watermark":  # a Watermark object built from four widgets; "off" = None
            assert widgets.WATERMARKS[table["watermark"].default] is f.default is None
        else:
            assert f.default == table[f.name].default, f.name


def test_preview_reads_the_declared_defaults():
    for node_id, names in preview.WIDGETS.items():
        table = NODES[node_id][1]
        for name, (_, default) in names.items():
            if name in table:
                assert default == table[name].default, (node_id, name)


@pytest.mark.parametrize("name, value, words", [
    ("steps", math.nan, "steps is nan, not a finite number"),
    ("steps", math.inf, "not a finite number"),
    ("steps", 2.5, "steps is 2.5; it must be a whole number"),
    ("steps", True, "not a number"),
    ("steps", "30", "not a number"),
    ("steps", 101, "steps is 101; Volcengine accepts 1 to 100"),
    ("scale", 0.5, "scale is 0.5; Volcengine accepts 1.0 to 20.0"),
    ("image_format", "webp", "image_format 'webp' is not one of jpeg, png"),
    ("return_url", 1, "return_url is 1: use true or false"),
    ("prompt", None, "prompt is NoneType, not text"),
])
def test_check_refuses_and_names_the_widget(name, value, words):
    with pytest.raises(InputError) as exc:
        widgets.VOLC[name].check(value, "Volcengine")
    assert words in str(exc.value)


def test_check_returns_the_value_in_its_type():
    assert widgets.VOLC["steps"].check(30.0) == 30 and isinstance(widgets.VOLC["steps"].check(30.0), int)
    assert isinstance(widgets.VOLC["scale"].check(7), float)
    assert widgets.CANVAS["anchor"].check("top-left") == "top-left"


def test_volcengine_params_are_checked_against_the_declaration():
    with pytest.raises(InputError, match="max_width is 32; Volcengine accepts 64 to 8192"):
        volc.VolcParams(max_width=32).validate(canvas_mode=False)
    with pytest.raises(InputError, match="not a finite number"):
        volc.VolcParams(strength=math.nan).validate(canvas_mode=False)


cli = module("nodes.cli")


def _outpaint_actions():
    sub = next(a for a in cli.build_parser()._actions if a.dest == "command")
    return {a.dest: a for a in sub.choices["outpaint"]._actions}


@pytest.mark.parametrize("table, names", [
    (widgets.VOLC, ("top", "bottom", "left", "right", "prompt", "seed", "steps", "scale", "strength", "max_width",
                    "max_height", "variants", "watermark", "watermark_language", "concurrency")),
    (widgets.DASHSCOPE, ("mode", "angle", "output_ratio", "x_scale", "y_scale")),
    (widgets.CANVAS, ("feathering", "overlap", "fill")),
])
def test_cli_flags_are_the_declared_widgets(table, names):
    actions = _outpaint_actions()
    for name in names:
        w, action = table[name], actions[name]
        assert f"default {w.default if w.default != '' else 'empty'}" in action.help, name
        if w.kind == "COMBO":
            assert action.choices == list(w.options), name
        if w.kind in ("INT", "FLOAT"):
            assert f"{w.min:g}-{w.max:g}" in action.help, name


@pytest.mark.parametrize("argv, words", [
    (["--steps", "101"], "steps is 101; use 1 to 100"),
    (["--steps", "2.5"], "'2.5' is not a whole number"),
    (["--scale", "nan"], "scale is nan, not a finite number"),
    (["--concurrency", "9"], "concurrency is 9; use 1 to 8"),
    (["--timeout", "nan"], "not a finite number of seconds"),
    (["--x-scale", "3.5"], "x_scale is 3.5; use 1.0 to 3.0"),
])
def test_cli_refuses_what_the_widget_refuses(argv, words, capsys):
    assert cli.main(["outpaint", "a.png", "--vendor", "volc", *argv]) == 2
    assert words in capsys.readouterr().err
