"""The server-side credential store: owner-only atomic writes, merge rules, validation, and a
status that tells where credentials come from without ever containing a secret."""

import json
import os
import pathlib
import stat
import subprocess
import sys
import textwrap
import threading
import time

import pytest
from pack import module

store = module("nodes.core.credential_store")
backends = module("nodes.core.backends")
errors = module("nodes.core.errors")

SECRET = "sk-VERYsecretVALUE-0123456789abcdef"
ACCESS = "AKLTaccessKEYforTESTS0000000000wxyz"
DS_KEY = "sk-dashscopeKEYforTESTS00000000qrst"


def mode(path):
    return stat.S_IMODE(path.stat().st_mode)


def test_first_save_creates_an_owner_only_file_in_an_owner_only_directory(tmp_path):
    path = tmp_path / "user" / "cloud_outpaint" / "credentials.json"
    store.save(path, "volc", {"access_key": ACCESS, "secret_key": SECRET})
    assert mode(path) == 0o600 and mode(path.parent) == 0o700
    assert json.loads(path.read_text()) == {"volc": {"access_key": ACCESS, "secret_key": SECRET}}
    assert [p.name for p in path.parent.iterdir()] == ["credentials.json"]  # no temp file left


def test_existing_loose_permissions_are_tightened(tmp_path):
    directory = tmp_path / "cloud_outpaint"
    directory.mkdir(mode=0o755)
    path = directory / "credentials.json"
    path.write_text("{}")
    path.chmod(0o644)
    directory.chmod(0o755)
    store.save(path, "dashscope", {"api_key": DS_KEY})
    assert mode(path) == 0o600 and mode(directory) == 0o700


def test_a_crash_while_writing_leaves_the_old_file_intact(tmp_path, monkeypatch):
    path = tmp_path / "cloud_outpaint" / "credentials.json"
    store.save(path, "volc", {"access_key": ACCESS, "secret_key": SECRET})
    before = path.read_bytes()

    def boom(*args, **kwargs):
        raise RuntimeError("simulated crash")

    monkeypatch.setattr(store.json, "dumps", boom)
    with pytest.raises(RuntimeError):
        store.save(path, "volc", {"secret_key": "other-secret-value"})
    assert path.read_bytes() == before
    monkeypatch.undo()

    monkeypatch.setattr(store.os, "replace", boom)  # fails after the temp file was written
    with pytest.raises(RuntimeError):
        store.save(path, "volc", {"secret_key": "other-secret-value"})
    assert path.read_bytes() == before
    assert sorted(p.name for p in path.parent.iterdir()) == ["credentials.json"]


def test_merge_non_empty_fields_replace_and_other_keys_are_kept(tmp_path):
    path = tmp_path / "s.json"
    store.save(path, "volc", {"access_key": ACCESS, "secret_key": SECRET, "base_url": "https://gw.example/x/"})
    store.save(path, "dashscope", {"api_key": DS_KEY, "workspace": "ws-1"})
    store.save(path, "volc", {"access_key": "AKLTnewACCESSkey000000000", "secret_key": "", "session_token": None})
    data = store.load(path)
    assert data["volc"] == {"access_key": "AKLTnewACCESSkey000000000", "secret_key": SECRET,
                            "base_url": "https://gw.example/x"}
    assert data["dashscope"] == {"api_key": DS_KEY, "workspace": "ws-1"}
    store.clear(path, "volc")
    assert store.load(path) == {"dashscope": {"api_key": DS_KEY, "workspace": "ws-1"}}
    store.clear(path, "volc")  # clearing twice is fine
    assert mode(path) == 0o600


@pytest.mark.parametrize("vendor, fields, match", [
    ("volc", {"password": "x"}, "unknown field"),
    ("dashscope", {"secret_key": "x"}, "unknown field"),
    ("volc", {"access_key": 12345}, "string"),
    ("volc", {"secret_key": "abc\ndef"}, "line break"),
    ("dashscope", {"api_key": "sk-" + "a" * 600}, "at most 512"),
    ("dashscope", {"base_url": "ftp://example.com"}, "http"),
    ("dashscope", {"base_url": "javascript:alert(1)"}, "http"),
    ("volc", {"base_url": "https://?q=secretish"}, "http"),
    ("volc", {"base_url": "https://gw.example/a b"}, "http"),
    ("moon", {"api_key": "x"}, "vendor"),
])
def test_bad_fields_are_rejected_and_nothing_is_written(tmp_path, vendor, fields, match):
    path = tmp_path / "s.json"
    with pytest.raises(errors.InputError, match=match) as err:
        store.save(path, vendor, fields)
    assert not path.exists()
    for value in fields.values():
        if isinstance(value, str) and len(value) > 3:
            assert value not in str(err.value)  # an error never quotes the value (it may be a secret)


def test_a_damaged_store_is_reported_and_can_be_overwritten(tmp_path):
    path = tmp_path / "s.json"
    path.write_text('{"volc": {"secret_key": "' + SECRET)
    with pytest.raises(errors.ConfigError) as err:
        store.load(path)
    assert SECRET not in str(err.value)
    status = store.credential_status("volc", {}, path, tmp_path)
    assert not status["configured"] and SECRET not in json.dumps(status)
    store.save(path, "volc", {"access_key": ACCESS, "secret_key": SECRET})
    assert store.credential_status("volc", {}, path, tmp_path)["source"] == "store"


def _sdk_files(home):
    (home / ".volc").mkdir()
    (home / ".volc" / "credentials").write_text("[default]\naccess_key_id = AKLTsdkFILEkey00001111\n"
                                                "secret_access_key = sdk-file-secret-value\n")
    (home / ".dashscope").mkdir()
    (home / ".dashscope" / "api_key").write_text("sk-sdkFILEdashscope-2222\n")


def test_status_sources_env_beats_store_beats_sdk_file(tmp_path):
    home, path = tmp_path / "home", tmp_path / "s.json"
    home.mkdir()
    assert store.credential_status("volc", {}, path, home) == {
        "configured": False, "source": None, "kind": None, "hint": None, "base_url": None,
        "problem": store.credential_status("volc", {}, path, home)["problem"], "stored_fields": []}
    assert "VOLC_ACCESSKEY" in store.credential_status("volc", {}, path, home)["problem"]
    assert "DASHSCOPE_API_KEY" in store.credential_status("dashscope", {}, path, home)["problem"]

    _sdk_files(home)
    volc = store.credential_status("volc", {}, path, home)
    ds = store.credential_status("dashscope", {}, path, home)
    assert (volc["source"], volc["kind"], volc["hint"]) == ("sdk-file", "aksk", "…1111")
    assert (ds["source"], ds["hint"], ds["workspace"]) == ("sdk-file", "…2222", None)

    store.save(path, "volc", {"access_key": ACCESS, "secret_key": SECRET})
    store.save(path, "dashscope", {"api_key": DS_KEY, "workspace": "ws-9", "base_url": "http://127.0.0.1:9/api/v1"})
    volc = store.credential_status("volc", {}, path, home)
    ds = store.credential_status("dashscope", {}, path, home)
    assert (volc["source"], volc["hint"], volc["base_url"]) == ("store", "…wxyz", "https://visual.volcengineapi.com")
    assert volc["stored_fields"] == ["access_key", "secret_key"] and volc["problem"] is None
    assert (ds["source"], ds["hint"], ds["workspace"], ds["base_url"]) == \
        ("store", "…qrst", "ws-9", "http://127.0.0.1:9/api/v1")

    env = {"VOLC_ACCESSKEY": "AKLTfromENVIRONMENT0000abcd", "VOLC_SECRETKEY": "env-secret-value",
           "DASHSCOPE_API_KEY": "sk-fromENVIRONMENT-efgh"}
    volc = store.credential_status("volc", env, path, home)
    ds = store.credential_status("dashscope", env, path, home)
    assert (volc["source"], volc["hint"]) == ("env", "…abcd") and (ds["source"], ds["hint"]) == ("env", "…efgh")
    text = json.dumps([store.credential_status(v, e, path, home) for v in store.VENDORS for e in ({}, env)])
    for secret in (SECRET, DS_KEY, "sdk-file-secret-value", "env-secret-value", "sk-fromENVIRONMENT-efgh",
                   "sk-sdkFILEdashscope-2222"):
        assert secret not in text


def test_bearer_status_hints_the_api_key_and_short_keys_show_nothing(tmp_path):
    path = tmp_path / "s.json"
    store.save(path, "volc", {"api_key": "gateway-bearer-key-9876", "base_url": "https://gw.example/volcv/v1"})
    status = store.credential_status("volc", {}, path, tmp_path)
    assert (status["kind"], status["hint"], status["base_url"]) == ("bearer", "…9876", "https://gw.example/volcv/v1")
    store.save(path, "dashscope", {"api_key": "short"})
    assert store.credential_status("dashscope", {}, path, tmp_path)["hint"] == "…"


def test_default_path_and_backends_read_the_store(tmp_path, monkeypatch):
    for name in ("VOLC_ACCESSKEY", "VOLC_SECRETKEY", "VOLC_API_KEY", "VOLC_BASE_URL", "DASHSCOPE_API_KEY",
                 "DASHSCOPE_API_KEY_FILE_PATH", "DASHSCOPE_HTTP_BASE_URL", store.ENV_VAR):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert store.default_path() == tmp_path / ".config" / "cloud-outpaint" / "credentials.json"
    monkeypatch.setenv(store.ENV_VAR, str(tmp_path / "elsewhere.json"))
    assert store.default_path() == tmp_path / "elsewhere.json"
    store.save(store.default_path(), "dashscope", {"api_key": DS_KEY})
    assert backends.dashscope_credentials("cloud").source == "store"
    with pytest.raises(errors.ConfigError):
        backends.volc_credentials("cloud")
    monkeypatch.setattr(store, "_default_path", None)
    store.set_default_path(store.path_in_user_dir(tmp_path / "comfy_user"))
    try:  # what routes.install() does inside ComfyUI: the user directory wins over the environment
        assert store.default_path() == tmp_path / "comfy_user" / "cloud_outpaint" / "credentials.json"
        with pytest.raises(errors.ConfigError):
            backends.dashscope_credentials("cloud")
    finally:
        store.set_default_path(None)


# ---- one damaged section never costs the other one its keys (red-team F10) ---------------------

@pytest.mark.parametrize("bad", ["oops", {"api_key": 5}, ["sk-list"], {"api_key": "sk-ok-000000000000", "base_url": 7}])
def test_a_damaged_section_is_named_and_a_save_keeps_the_other_vendors_keys(tmp_path, bad):
    path = tmp_path / "s.json"
    good = {"access_key": ACCESS, "secret_key": SECRET}
    path.write_text(json.dumps({"volc": good, "dashscope": bad}))
    with pytest.raises(errors.ConfigError, match="dashscope section"):
        store.load(path)
    status = store.credential_status("dashscope", {}, path, tmp_path)
    assert not status["configured"] and "dashscope section" in status["problem"]
    assert store.credential_status("volc", {}, path, tmp_path)["source"] == "store"

    store.save(path, "volc", {"session_token": "sts-token-value-00000"})  # the damaged section stays as it was
    assert json.loads(path.read_text())["dashscope"] == bad
    assert json.loads(path.read_text())["volc"] == {**good, "session_token": "sts-token-value-00000"}
    store.save(path, "dashscope", {"api_key": DS_KEY})  # saving the damaged vendor replaces its section
    assert store.load(path) == {"volc": {**good, "session_token": "sts-token-value-00000"},
                                "dashscope": {"api_key": DS_KEY}}


def test_wrong_types_give_a_config_error_never_a_type_error(tmp_path):
    credentials = module("nodes.core.credentials")
    path = tmp_path / "s.json"
    for section, resolve in (({"volc": {"access_key": 12345678901234, "secret_key": ["x"]}}, "volc_credentials"),
                             ({"dashscope": {"api_key": 1234567890123}}, "dashscope_credentials"),
                             ({"dashscope": {"api_key": "sk-ok-000000000000", "base_url": 5}}, "dashscope_credentials"),
                             ({"volc": {"api_key": "sk-x-0000", "base_url": ["http://a"]}}, "volc_credentials"),
                             ({"volc": {"secret_key": "line\nbreak", "access_key": "AK"}}, "volc_credentials")):
        path.write_text(json.dumps(section))
        vendor = next(iter(section))
        status = store.credential_status(vendor, {}, path, tmp_path)
        assert not status["configured"] and f"{vendor} section" in status["problem"], section
        with pytest.raises(errors.ConfigError, match=f"{vendor} section"):
            getattr(credentials, resolve)({}, path, tmp_path)


# ---- the file itself: only a small regular file of ours is read (red-team F11) -----------------

def test_save_never_chmods_through_a_symlink(tmp_path):
    decoy = tmp_path / "someone-elses-file.txt"
    decoy.write_text("not ours\n")
    decoy.chmod(0o644)
    path = tmp_path / "cloud_outpaint" / "credentials.json"
    path.parent.mkdir(mode=0o700)
    os.symlink(decoy, path)
    with pytest.raises(errors.ConfigError, match="symbolic link"):
        store.load(path)
    store.save(path, "dashscope", {"api_key": DS_KEY})
    assert mode(decoy) == 0o644 and decoy.read_text() == "not ours\n"
    assert not path.is_symlink() and mode(path) == 0o600 and store.load(path)["dashscope"]["api_key"] == DS_KEY

    # the pack's folder as a symlink to someone else's folder: refused, neither chmod-ed nor written
    other = tmp_path / "other-folder"
    other.mkdir(mode=0o755)
    other.chmod(0o755)
    linked = tmp_path / "linked" / "cloud_outpaint"
    linked.parent.mkdir()
    os.symlink(other, linked)
    with pytest.raises(errors.ConfigError, match="symbolic link"):
        store.save(linked / "credentials.json", "dashscope", {"api_key": DS_KEY})
    assert mode(other) == 0o755 and list(other.iterdir()) == []


def test_a_fifo_at_the_store_path_does_not_block(tmp_path):
    path = tmp_path / "credentials.json"
    os.mkfifo(path)
    box = {}

    def read():
        try:
            store.load(path)
        except errors.ConfigError as exc:
            box["error"] = str(exc)

    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    thread.join(5)
    if thread.is_alive():  # let the blocked reader go before failing
        fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
        os.write(fd, b"{}")
        os.close(fd)
    assert not thread.is_alive(), "reading a FIFO store blocked"
    assert "is not a regular file" in box["error"]


def test_a_symlink_to_dev_zero_is_not_read(tmp_path):
    """In a child process with its address space capped, so a regression ends in MemoryError there."""
    path = tmp_path / "cloud_outpaint" / "credentials.json"
    path.parent.mkdir()
    os.symlink("/dev/zero", path)
    child = textwrap.dedent(f"""
        import json, resource, sys
        sys.path.insert(0, {str(pathlib.Path(__file__).parent)!r})
        from pack import module
        store = module("nodes.core.credential_store")
        size = next(int(l.split()[1]) * 1024 for l in open("/proc/self/status") if l.startswith("VmSize"))
        resource.setrlimit(resource.RLIMIT_AS, (size + 512 * 2**20, resource.RLIM_INFINITY))
        print(json.dumps(store.all_status({{}}, __import__("pathlib").Path({str(path)!r}))))
    """)
    proc = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr[-2000:]
    status = json.loads(proc.stdout.strip().splitlines()[-1])
    assert all("is a symbolic link" in status[v]["problem"] for v in ("volc", "dashscope"))


def test_the_store_is_read_only_up_to_64_kb(tmp_path):
    path = tmp_path / "credentials.json"
    with open(path, "wb") as f:  # 400 MB, sparse
        f.truncate(400 * 2**20)
    started = time.monotonic()
    with pytest.raises(errors.ConfigError, match="over 64 KB"):
        store.load(path)
    assert time.monotonic() - started < 1
    body = json.dumps({"dashscope": {"api_key": DS_KEY}, "pad": ""})
    path.write_text(body[:-2] + "x" * (64 * 1024 - len(body)) + '"}')  # exactly 64 KB: still read
    assert path.stat().st_size == 64 * 1024 and store.load(path)["dashscope"]["api_key"] == DS_KEY
    path.write_text(body[:-2] + "x" * (64 * 1024 + 1 - len(body)) + '"}')
    with pytest.raises(errors.ConfigError, match="over 64 KB"):
        store.load(path)


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="chown to another user needs root")
def test_a_store_owned_by_another_user_is_not_read(tmp_path):
    path = tmp_path / "credentials.json"
    store.save(path, "dashscope", {"api_key": DS_KEY})
    os.chown(path, 54321, -1)
    with pytest.raises(errors.ConfigError, match="owned by another user"):
        store.load(path)


def test_missing_parent_folders_are_created_owner_only_under_umask_000(tmp_path):
    path = tmp_path / "ComfyUI" / "user" / "cloud_outpaint" / "credentials.json"
    old = os.umask(0)
    try:
        store.save(path, "dashscope", {"api_key": DS_KEY})
    finally:
        os.umask(old)
    assert [mode(p) for p in (tmp_path / "ComfyUI", tmp_path / "ComfyUI" / "user", path.parent, path)] == \
        [0o700, 0o700, 0o700, 0o600]


# ---- a key is only ever sent to the base URL saved with it (red-team F1) ------------------------

def test_a_new_base_url_needs_its_key_in_the_same_save(tmp_path):
    path = tmp_path / "s.json"
    store.save(path, "volc", {"access_key": ACCESS, "secret_key": SECRET, "session_token": "sts-token-00000000"})
    for fields in ({"base_url": "https://gw.example"}, {"base_url": "https://gw.example", "access_key": ACCESS},
                   {"base_url": "https://gw.example", "session_token": "sts-other-0000000"}):
        with pytest.raises(errors.InputError, match="same save"):
            store.save(path, "volc", fields)
    assert store.load(path)["volc"] == {"access_key": ACCESS, "secret_key": SECRET,
                                        "session_token": "sts-token-00000000"}
    # the default host is the current URL when none is saved: naming it is no change
    store.save(path, "volc", {"base_url": "https://visual.volcengineapi.com/"})
    # a gateway key with its URL: the AK/SK and token saved for the other host are dropped
    store.save(path, "volc", {"base_url": "https://gw.example", "api_key": "gw-key-000000000000"})
    assert store.load(path)["volc"] == {"base_url": "https://gw.example", "api_key": "gw-key-000000000000"}
    store.save(path, "volc", {"base_url": "https://gw.example/", "api_key": "gw-key-111111111111"})  # same URL
    store.save(path, "dashscope", {"api_key": DS_KEY, "workspace": "ws-1"})
    store.save(path, "dashscope", {"base_url": "https://dashscope.aliyuncs.com/api/v1", "workspace": "ws-2"})
    with pytest.raises(errors.InputError, match="API key"):
        store.save(path, "dashscope", {"base_url": "https://dashscope-intl.aliyuncs.com/api/v1"})
    store.save(path, "dashscope", {"base_url": "https://dashscope-intl.aliyuncs.com/api/v1", "api_key": DS_KEY + "x"})
    assert store.load(path)["dashscope"] == {"api_key": DS_KEY + "x", "workspace": "ws-2",
                                             "base_url": "https://dashscope-intl.aliyuncs.com/api/v1"}


def test_temp_files_left_by_a_killed_writer_are_removed_by_the_next_save(tmp_path):
    path = tmp_path / "cloud_outpaint" / "credentials.json"
    store.save(path, "dashscope", {"api_key": DS_KEY})
    child = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(child.stdout)  # a process that has ended
    stale = path.with_name(f".credentials.json.{dead_pid}.1234.tmp")
    live = path.with_name(f".credentials.json.{os.getppid()}.1234.tmp")  # a writer that is still running
    for tmp in (stale, live):
        tmp.write_text('{"dashscope": {"api_key": "sk-half-written"}}')
    store.save(path, "volc", {"access_key": ACCESS, "secret_key": SECRET})
    assert not stale.exists() and live.exists()
