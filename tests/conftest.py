"""Load the pack the way ComfyUI does: by file location, under a name that is not its folder.

The stand-in comfy_api (tests/stubs) goes on sys.path; the pack root never does (ComfyUI has a
top-level module called `nodes`, and so does this pack).
"""

import importlib.util
import pathlib
import sys

import pytest
import requests

TESTS = pathlib.Path(__file__).resolve().parent
ROOT = TESTS.parent
PACK = "cloud_outpaint_under_test"

sys.path.insert(0, str(TESTS / "stubs"))
sys.path.insert(0, str(TESTS))
sys.path.insert(0, str(ROOT / "bench"))  # shared with the bench: reference_pad, comfy_server


# The one loader lives in the root cli.py (the launcher); load that file by path and use it.
_spec = importlib.util.spec_from_file_location("cloud_outpaint_launcher", ROOT / "cli.py")
launcher = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(launcher)


def load_pack(name: str = PACK):
    """The pack under `name`, its __init__.py run as ComfyUI runs it."""
    return launcher.load_pack(name, run_init=True)


load_pack()


# ---- shared wiring: the sandbox and its credentials, an HTTP session that ignores proxies ----

FAST_TASKS = {"dashscope_pending_s": 0.1, "dashscope_running_s": 0.2}


@pytest.fixture
def sb(request):
    """A running sandbox (a test module may set SANDBOX_SETTINGS; default: fast DashScope tasks); afterwards
    none of its handlers may have raised."""
    from pack import module

    settings = getattr(request.module, "SANDBOX_SETTINGS", FAST_TASKS)
    with module("nodes.sandbox").Sandbox(**settings) as sandbox:
        yield sandbox
        assert sandbox.errors == [], "sandbox bugs:\n" + "\n".join(sandbox.errors)


@pytest.fixture
def volc_creds(sb):
    return sb.volc_credentials()


@pytest.fixture
def ds_creds(sb):
    return sb.dashscope_credentials()


@pytest.fixture
def http():
    with requests.Session() as session:
        session.trust_env = False  # never send loopback traffic through a configured proxy
        yield session


@pytest.fixture
def home(tmp_path):
    """An empty home folder (no ~/.volc, no ~/.config of the user running the tests)."""
    path = tmp_path / "home"
    path.mkdir()
    return path
