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

# DashScope polling for tests: the sandbox's tasks take fractions of a second, so poll that fast too.
FAST_DASHSCOPE = module("nodes.core.dashscope").DashScopeConfig(
    poll_first=0.05, poll_growth=1.5, poll_cap=0.2, poll_near=0.05, expected_s=0.3, creates_per_second=50)
