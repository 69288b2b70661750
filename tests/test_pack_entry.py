"""How the pack loads: inside ComfyUI (V3 entry only), outside it (no comfy_api), and broken."""

import asyncio
import subprocess
import sys
import textwrap

import pytest
import tomllib
from conftest import PACK, ROOT, TESTS, load_pack

LOAD = textwrap.dedent("""
    import importlib.util, sys
    spec = importlib.util.spec_from_file_location("pack_x", {init!r}, submodule_search_locations=[{root!r}])
    m = importlib.util.module_from_spec(spec); sys.modules["pack_x"] = m; spec.loader.exec_module(m)
    print(sorted(k for k in vars(m) if not k.startswith("__")))
""")


def load_in_subprocess(extra_path=None):
    code = LOAD.format(init=str(ROOT / "__init__.py"), root=str(ROOT))
    if extra_path:
        code = f"import sys; sys.path.insert(0, {str(extra_path)!r})\n" + code
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd="/")


def test_imports_without_comfyui():
    result = load_in_subprocess()
    assert result.returncode == 0, result.stderr
    assert "comfy_entrypoint" not in result.stdout and "WEB_DIRECTORY" in result.stdout


def test_real_import_errors_inside_comfyui_are_not_swallowed(tmp_path):
    broken = tmp_path / "comfy_api"
    broken.mkdir()
    (broken / "__init__.py").write_text("")  # comfy_api exists, but comfy_api.latest does not
    result = load_in_subprocess(tmp_path)
    assert result.returncode != 0
    assert "comfy_api.latest" in result.stderr and "Traceback" in result.stderr


def test_v3_entrypoint_lists_the_nodes_and_no_v1_mappings():
    pack = load_pack()
    assert not hasattr(pack, "NODE_CLASS_MAPPINGS")
    assert pack.WEB_DIRECTORY == "./web" and (ROOT / "web").is_dir()
    extension = asyncio.run(pack.comfy_entrypoint())
    asyncio.run(extension.on_load())
    nodes = asyncio.run(extension.get_node_list())
    ids = [n.GET_SCHEMA().node_id for n in nodes]
    assert "MaskCanvasBuilder" in ids and len(ids) == len(set(ids))


def test_pack_modules_import_relatively():
    # absolute imports of the pack's own modules would break under ComfyUI's module name
    for path in ROOT.glob("nodes/**/*.py"):
        text = path.read_text()
        assert "from nodes" not in text and "import nodes" not in text, path
    assert f"{PACK}.nodes.canvas_node" in sys.modules


def test_pyproject_is_registry_ready_and_torch_free():
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())
    project, comfy = meta["project"], meta["tool"]["comfy"]
    assert "comfyui" not in project["name"].lower()
    assert project["version"].count(".") == 2 and project["description"]
    assert project["license"] and project["urls"]["Repository"]
    deps = {d.split("=")[0].split(">")[0].split("<")[0].strip().lower() for d in project["dependencies"]}
    assert deps == {"requests", "pillow", "numpy"}
    assert {"PublisherId", "DisplayName", "requires-comfyui"} <= set(comfy)
    assert "web" not in comfy  # WEB_DIRECTORY is the one way the web folder is registered
    reqs = (ROOT / "requirements.txt").read_text().lower()
    assert "torch" not in reqs
    assert {line.split("=")[0].split(">")[0].strip() for line in reqs.splitlines() if line.strip()} == deps


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    command = "bash tests/run.sh"
    assert command in readme and command in ci


@pytest.mark.parametrize("path", ["LICENSE", "requirements.txt", "example_workflows", "web", "bench"])
def test_layout(path):
    assert (ROOT / path).exists()
    assert not (TESTS / "__init__.py").exists()
