"""Load the pack the way ComfyUI does: by file location, under a name that is not its folder.

The stand-in comfy_api (tests/stubs) goes on sys.path; the pack root never does (ComfyUI has a
top-level module called `nodes`, and so does this pack).
"""

import importlib.util
import pathlib
import sys

TESTS = pathlib.Path(__file__).resolve().parent
ROOT = TESTS.parent
PACK = "cloud_outpaint_under_test"

sys.path.insert(0, str(TESTS / "stubs"))
sys.path.insert(0, str(TESTS))
sys.path.insert(0, str(ROOT / "bench"))  # shared with the bench: reference_pad, comfy_server


def load_pack(name: str = PACK):
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, ROOT / "__init__.py",
                                                  submodule_search_locations=[str(ROOT)])
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


load_pack()
