"""The pack's modules, as loaded by conftest (import these in tests, never the pack root by path)."""

import importlib

from conftest import PACK


def module(dotted: str):
    return importlib.import_module(f"{PACK}.{dotted}")


geometry = module("nodes.core.geometry")
canvas = module("nodes.core.canvas")
imagecodec = module("nodes.core.imagecodec")
errors = module("nodes.core.errors")
InputError = errors.InputError
