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


# The one loader lives in the root cli.py (the launcher); load that file by path and use it.
_spec = importlib.util.spec_from_file_location("cloud_outpaint_launcher", ROOT / "cli.py")
launcher = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(launcher)


def load_pack(name: str = PACK):
    """The pack under `name`, its __init__.py run as ComfyUI runs it."""
    return launcher.load_pack(name, run_init=True)


load_pack()
