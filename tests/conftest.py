"""Load the pack the way ComfyUI does: by file location, under a name that is not its folder.

The stand-in comfy_api (tests/stubs) goes on sys.path; the pack root never does (ComfyUI has a
top-level module called `nodes`, and so does this pack).
"""

import importlib.util
import os
import pathlib
import sys
import tempfile

import pytest

# the real-ComfyUI tests' shared module: its asserts are rewritten although test modules import from it
# before pytest loads it as their plugin
pytest.register_assert_rewrite("comfyui_fixtures")
import requests

TESTS = pathlib.Path(__file__).resolve().parent
ROOT = TESTS.parent
PACK = "cloud_outpaint_under_test"

# The result cache and task journal (issue 13) would answer the suites' repeated identical runs: off for
# every test (and the processes they start) unless a test turns it on; nothing goes to the user's folders.
os.environ.setdefault("CLOUD_OUTPAINT_CACHE", "off")
os.environ.setdefault("CLOUD_OUTPAINT_CACHE_DIR", tempfile.mkdtemp(prefix="cloud-outpaint-state-"))
for _name in ("CLOUD_OUTPAINT_DAILY_LIMIT_CNY", "CLOUD_OUTPAINT_PRICE_VOLC_CNY", "CLOUD_OUTPAINT_PRICE_DASHSCOPE_CNY"):
    os.environ.pop(_name, None)

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


def sandbox_env(sb) -> dict:
    """The variables a user sets for the cloud backend, pointing both vendors at the sandbox `sb`."""
    return {"VOLC_BASE_URL": sb.url, "VOLC_ACCESSKEY": sb.volc_access_key, "VOLC_SECRETKEY": sb.volc_secret_key,
            "DASHSCOPE_HTTP_BASE_URL": f"{sb.url}/api/v1", "DASHSCOPE_API_KEY": sb.dashscope_api_key}


@pytest.fixture
def cloud_env(sb, monkeypatch, tmp_path):
    """backend 'cloud' pointed at the sandbox through the environment variables users set (and an empty
    HOME); yields monkeypatch, for more of them."""
    monkeypatch.setenv("HOME", str(tmp_path))
    for name in ("VOLC_API_KEY", "VOLC_AUTH", "VOLC_SESSION_TOKEN", "DASHSCOPE_WORKSPACE_ID"):
        monkeypatch.delenv(name, raising=False)
    for name, value in sandbox_env(sb).items():
        monkeypatch.setenv(name, value)
    return monkeypatch


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


# ---- the reliability summary the README quotes: what the hardening suites tried, counted from this run ----
# A hostile-world helper file can add itself here with one line; names are matched by file.
RELIABILITY = {
    "test_bad_inputs.py": "bad inputs refused before any request",
    "test_malformed_answers.py": "malformed or odd vendor answers met",
    "test_fault_matrix.py": "vendor faults survived (fault matrix rows)",
    "test_interrupts.py": "interrupts in every kind of wait",
    "test_soak.py": "soak tests (50 parallel runs with random faults each)",
    "test_secret_hygiene.py": "secret-hygiene checks (logs, errors, info, echoes)",
    "test_paid_work.py": "paid work kept or named (RGBA, failed siblings, stuck tasks)",
    "test_result_links.py": "hostile result links and upload hosts (SSRF, redirects)",
    "test_hostile_results.py": "hostile results (bombs, other formats)",
    "test_slow_answers.py": "trickling and endless bodies (end at the deadline)",
    "test_route_guard.py": "hostile route requests (rebinding, cross-site, no header)",
    "test_properties.py": "property tests (hypothesis)",
}


def pytest_terminal_summary(terminalreporter):
    counts: dict[str, list[int]] = {}
    for outcome in ("passed", "failed"):
        for report in terminalreporter.stats.get(outcome, []):
            if getattr(report, "when", "call") != "call":
                continue
            name = report.nodeid.split("::")[0].rsplit("/", 1)[-1]
            if name in RELIABILITY:
                counts.setdefault(name, [0, 0])[outcome == "failed"] += 1
    if counts:
        terminalreporter.write_sep("-", "reliability (this run)")
        for name, (passed, failed) in sorted(counts.items()):
            terminalreporter.write_line(f"{RELIABILITY[name]}: {passed} passed, {failed} failed ({name})")
