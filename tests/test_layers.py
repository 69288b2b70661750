"""The layer rules of the pack's layout, read from the source (AST), so a stray import fails here:

- nodes/core (the engine) and nodes/sandbox (the emulator) import nothing of ComfyUI;
- the engine reaches the emulator only through backends.shared_sandbox();
- the command line (nodes/cli) runs without ComfyUI too;
- modules stay small, and no two share a name (tracebacks and searches stay unambiguous).
"""

import ast
import collections
import pathlib

import pytest
from conftest import ROOT

NODES = ROOT / "nodes"
COMFY_MODULES = {"comfy", "comfy_api", "comfy_execution", "comfy_extras", "server", "folder_paths", "aiohttp",
                 "execution", "nodes", "latent_preview"}
MAX_LINES = 420  # "about 400"


def _modules(folder: pathlib.Path) -> list[pathlib.Path]:
    return sorted(p for p in folder.rglob("*.py") if "__pycache__" not in p.parts)


def _imports(path: pathlib.Path):
    """(absolute top-level name or None, relative target as a path under nodes/ or None, the function it is in)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    scopes = {}
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for child in ast.walk(node):
                scopes.setdefault(id(child), node.name)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name.split(".")[0], None, scopes.get(id(node))
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0:
                yield node.module.split(".")[0], None, scopes.get(id(node))
            else:
                base = path.parent
                for _ in range(node.level - 1):
                    base = base.parent
                target = base.joinpath(*(node.module or "").split(".")) if node.module else base
                yield None, target, scopes.get(id(node))


@pytest.mark.parametrize("layer", ["core", "sandbox", "cli"])
def test_comfyui_free_layers_import_nothing_of_comfyui(layer):
    offenders = [(p.relative_to(ROOT).as_posix(), name) for p in _modules(NODES / layer)
                 for name, _, _ in _imports(p) if name in COMFY_MODULES]
    assert offenders == []


def test_the_engine_reaches_the_emulator_only_through_its_one_starter():
    reaches = [(p.relative_to(ROOT).as_posix(), scope) for p in _modules(NODES / "core")
               for _, target, scope in _imports(p)
               if target is not None and (target == NODES / "sandbox" or NODES / "sandbox" in target.parents)]
    assert reaches == [("nodes/core/backends.py", "shared_sandbox")]


def test_the_emulator_does_not_import_the_comfyui_layer_or_the_cli():
    allowed = {NODES / "core", NODES / "sandbox"}
    offenders = [(p.relative_to(ROOT).as_posix(), str(target.relative_to(ROOT)))
                 for p in _modules(NODES / "sandbox") for _, target, _ in _imports(p)
                 if target is not None and not any(a == target or a in target.parents for a in allowed)]
    assert offenders == []


def test_no_module_is_over_about_400_lines():
    sizes = {p.relative_to(ROOT).as_posix(): len(p.read_text(encoding="utf-8").splitlines())
             for p in [ROOT / "__init__.py", ROOT / "cli.py", *_modules(NODES), *_modules(ROOT / "bench")]}
    assert {name: n for name, n in sizes.items() if n > MAX_LINES} == {}


def test_no_two_modules_share_a_name_and_none_poses_as_a_test():
    names = collections.defaultdict(list)
    for p in _modules(NODES):
        if p.name != "__init__.py":
            names[p.stem].append(p.relative_to(ROOT).as_posix())
    assert {stem: paths for stem, paths in names.items() if len(paths) > 1} == {}
    assert [n for n in names if n.endswith("_test") or n.startswith("test_")] == []
