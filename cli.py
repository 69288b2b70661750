#!/usr/bin/env python3
"""Cloud Outpaint on the command line: `python cli.py --help`.

Run it from the pack folder (or by its path from anywhere). It loads the pack the way ComfyUI
does: by file location, under a private module name, so the pack's `nodes/` package is never
imported as a top-level `nodes` (ComfyUI has its own). The pack's root __init__.py is not run (it
only registers the ComfyUI nodes), so neither comfy_api nor ComfyUI is ever imported; everything
the commands use lives in nodes/core and the nodes/cli package.
"""

import importlib
import importlib.util
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parent
PACK = "cloud_outpaint_cli"


def load_pack(name: str = PACK, run_init: bool = False):
    """The pack folder as a package named `name`, found by file location as ComfyUI finds it.

    run_init=False skips the pack's __init__.py (it only wires the ComfyUI nodes), which is all the
    commands and the bench need; the tests (tests/conftest.py) load it with run_init=True.
    """
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, ROOT / "__init__.py",
                                                  submodule_search_locations=[str(ROOT)])
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    if run_init:
        spec.loader.exec_module(module)
    return module


def main(argv=None) -> int:
    # `python cli.py` puts the pack folder first on sys.path; take it off so that nothing in the
    # pack (nodes/, tests/, ...) can shadow a top-level module.
    if sys.path and sys.path[0] and pathlib.Path(sys.path[0]).resolve() == ROOT:
        sys.path.pop(0)
    load_pack()
    cli = importlib.import_module(f"{PACK}.nodes.cli")
    return cli.main(argv)


if __name__ == "__main__":
    sys.exit(main())
