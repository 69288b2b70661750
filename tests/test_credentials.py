
import pytest
from pack import module

cred = module("nodes.core.credentials")
ConfigError = module("nodes.core.errors").ConfigError


def test_env_aksk_comes_first_and_defaults_to_the_official_https_host(tmp_path):
    c = cred.volc_credentials({"VOLC_ACCESSKEY": "AK", "VOLC_SECRETKEY": "SK", "VOLC_API_KEY": "k"}, home=tmp_path)
    assert (c.kind, c.source, c.access_key, c.base_url) == ("aksk", "env", "AK", "https://visual.volcengineapi.com")
    assert "SK" not in repr(c)  # secrets never show in reprs (logs, tracebacks)


def test_session_token_and_base_override(tmp_path):
    c = cred.volc_credentials({"VOLC_ACCESSKEY": "AK", "VOLC_SECRETKEY": "SK", "VOLC_SESSION_TOKEN": "T",
                               "VOLC_BASE_URL": "http://127.0.0.1:9/x/"}, home=tmp_path)
    assert c.session_token == "T" and c.base_url == "http://127.0.0.1:9/x"


def test_bearer_gateway_needs_a_base_url(tmp_path):
    with pytest.raises(ConfigError, match="VOLC_BASE_URL"):
        cred.volc_credentials({"VOLC_API_KEY": "k"}, home=tmp_path)
    c = cred.volc_credentials({"VOLC_API_KEY": "k", "VOLC_BASE_URL": "https://gw.example/volcv/v1"}, home=tmp_path)
    assert (c.kind, c.api_key, c.base_url) == ("bearer", "k", "https://gw.example/volcv/v1")


def test_volc_auth_forces_a_scheme(tmp_path):
    env = {"VOLC_ACCESSKEY": "AK", "VOLC_SECRETKEY": "SK", "VOLC_API_KEY": "k", "VOLC_BASE_URL": "https://gw/",
           "VOLC_AUTH": "bearer"}
    assert cred.volc_credentials(env, home=tmp_path).kind == "bearer"
    with pytest.raises(ConfigError):
        cred.volc_credentials({**env, "VOLC_AUTH": "magic"}, home=tmp_path)


def test_store_then_sdk_files(tmp_path):
    store = tmp_path / "store.json"
    store.write_text('{"volc": {"access_key": "SAK", "secret_key": "SSK"}}')
    assert cred.volc_credentials({}, store_path=store, home=tmp_path).source == "store"
    (tmp_path / ".volc").mkdir()
    (tmp_path / ".volc" / "credentials").write_text("[default]\naccess_key_id = FAK\nsecret_access_key = FSK\n")
    c = cred.volc_credentials({}, home=tmp_path)
    assert (c.source, c.access_key, c.secret_key) == ("sdk-file", "FAK", "FSK")
    (tmp_path / ".volc" / "credentials").unlink()
    (tmp_path / ".volc" / "config").write_text('{"ak": "JAK", "sk": "JSK"}')
    assert cred.volc_credentials({}, home=tmp_path).access_key == "JAK"


def test_nothing_configured_says_what_to_set(tmp_path):
    with pytest.raises(ConfigError, match="VOLC_ACCESSKEY.*sandbox"):
        cred.volc_credentials({}, home=tmp_path)


def test_unreadable_store_does_not_leak_its_content(tmp_path):
    store = tmp_path / "store.json"
    store.write_text('{"volc": {"secret_key": "TOPSECRET"')
    with pytest.raises(ConfigError) as err:
        cred.volc_credentials({}, store_path=store, home=tmp_path)
    assert "TOPSECRET" not in str(err.value)


def test_dashscope_key_sources(tmp_path):
    c = cred.dashscope_credentials({"DASHSCOPE_API_KEY": "sk-env ", "DASHSCOPE_WORKSPACE_ID": "ws1"}, home=tmp_path)
    assert (c.source, c.api_key, c.workspace, c.base_url) == \
        ("env", "sk-env", "ws1", "https://dashscope.aliyuncs.com/api/v1")
    assert "sk-env" not in repr(c)
    store = tmp_path / "s.json"
    store.write_text('{"dashscope": {"api_key": "sk-store", "base_url": "http://127.0.0.1:1/api/v1/"}}')
    c = cred.dashscope_credentials({}, store_path=store, home=tmp_path)
    assert (c.source, c.base_url) == ("store", "http://127.0.0.1:1/api/v1")
    (tmp_path / ".dashscope").mkdir()
    (tmp_path / ".dashscope" / "api_key").write_text("sk-file\n")
    assert cred.dashscope_credentials({}, home=tmp_path).api_key == "sk-file"
    other = tmp_path / "k"
    other.write_text("sk-other")
    assert cred.dashscope_credentials({"DASHSCOPE_API_KEY_FILE_PATH": str(other)}, home=tmp_path).api_key == "sk-other"
    assert cred.dashscope_credentials({"DASHSCOPE_HTTP_BASE_URL": "https://x/api/v1", "DASHSCOPE_API_KEY": "k"},
                                      home=tmp_path).base_url == "https://x/api/v1"


def test_dashscope_nothing_configured_mentions_the_region(tmp_path):
    with pytest.raises(ConfigError, match="Beijing"):
        cred.dashscope_credentials({}, home=tmp_path)


# ---- a key travels only to the base URL of its own source (red-team F1) ---------------------------

def test_each_key_takes_the_base_url_of_its_own_source(tmp_path):
    store = tmp_path / "s.json"
    store.write_text('{"volc": {"access_key": "SAK", "secret_key": "SSK", "base_url": "https://stored.example/"},'
                     ' "dashscope": {"api_key": "sk-store", "base_url": "https://stored.example/api/v1",'
                     ' "workspace": "ws-store"}}')
    env = {"VOLC_BASE_URL": "https://env.example", "DASHSCOPE_HTTP_BASE_URL": "https://env.example/api/v1",
           "DASHSCOPE_WORKSPACE_ID": "ws-env"}
    # store keys: the store's URL, never the environment's
    v = cred.volc_credentials(env, store, tmp_path)
    d = cred.dashscope_credentials(env, store, tmp_path)
    assert (v.source, v.base_url) == ("store", "https://stored.example")
    assert (d.source, d.base_url, d.workspace) == ("store", "https://stored.example/api/v1", "ws-store")
    # environment keys: the environment's URL (or the default), never the store's
    env_keys = {"VOLC_ACCESSKEY": "EAK", "VOLC_SECRETKEY": "ESK", "DASHSCOPE_API_KEY": "sk-env"}
    v = cred.volc_credentials(env_keys, store, tmp_path)
    d = cred.dashscope_credentials(env_keys, store, tmp_path)
    assert (v.source, v.base_url) == ("env", cred.VOLC_DEFAULT_BASE)
    assert (d.source, d.base_url, d.workspace) == ("env", cred.DASHSCOPE_DEFAULT_BASE, "")
    d = cred.dashscope_credentials({**env_keys, **env}, store, tmp_path)
    assert (d.base_url, d.workspace) == ("https://env.example/api/v1", "ws-env")
    # a stored key without a stored URL goes to the default host, not to VOLC_BASE_URL
    store.write_text('{"volc": {"access_key": "SAK", "secret_key": "SSK"}, "dashscope": {"api_key": "sk-store"}}')
    assert cred.volc_credentials(env, store, tmp_path).base_url == cred.VOLC_DEFAULT_BASE
    assert cred.dashscope_credentials(env, store, tmp_path).base_url == cred.DASHSCOPE_DEFAULT_BASE
    # a stored gateway key without its URL is an error, not a request to the official host
    store.write_text('{"volc": {"api_key": "gw-key"}}')
    with pytest.raises(ConfigError, match="gateway"):
        cred.volc_credentials(env, store, tmp_path)
    # SDK-file keys: the environment's URL, as the vendor SDKs do
    store.write_text('{"dashscope": {"base_url": "https://stored.example/api/v1"}}')
    (tmp_path / ".dashscope").mkdir()
    (tmp_path / ".dashscope" / "api_key").write_text("sk-file\n")
    d = cred.dashscope_credentials(env, store, tmp_path)
    assert (d.source, d.base_url) == ("sdk-file", "https://env.example/api/v1")


def test_an_environment_key_is_not_blocked_by_a_damaged_store(tmp_path):
    store = tmp_path / "s.json"
    store.write_text('{"volc": 5, "dashscope": 5}')
    assert cred.volc_credentials({"VOLC_ACCESSKEY": "A", "VOLC_SECRETKEY": "S"}, store, tmp_path).source == "env"
    assert cred.dashscope_credentials({"DASHSCOPE_API_KEY": "k"}, store, tmp_path).source == "env"
    with pytest.raises(ConfigError, match="volc section"):
        cred.volc_credentials({}, store, tmp_path)


@pytest.mark.parametrize("url, match", [
    ("http://gw.example/x", "https://"),
    ("https://user:secret-PASSWORD@gw.example/x", "user:password@"),
    ("https://gw.example/x?token=1", "without query"),
    ("ftp://gw.example", "https://"),
    ("https://gw.example:0x50/", "not a valid URL"),
])
def test_environment_base_urls_are_https_or_loopback_without_a_password(tmp_path, url, match):
    for env, resolve, name in (({"VOLC_API_KEY": "k", "VOLC_BASE_URL": url}, cred.volc_credentials, "VOLC_BASE_URL"),
                               ({"DASHSCOPE_API_KEY": "k", "DASHSCOPE_HTTP_BASE_URL": url}, cred.dashscope_credentials,
                                "DASHSCOPE_HTTP_BASE_URL")):
        with pytest.raises(ConfigError, match=match) as err:
            resolve(env, home=tmp_path)
        assert str(err.value).startswith(name) and "PASSWORD" not in str(err.value)
    for ok in ("http://127.0.0.1:9/x", "http://[::1]:9/x", "http://localhost:9/x", "https://gw.example:8443/x"):
        assert cred.volc_credentials({"VOLC_API_KEY": "k", "VOLC_BASE_URL": ok}, home=tmp_path).base_url == ok


def test_a_fifo_as_an_sdk_key_file_does_not_block(tmp_path):
    import os

    (tmp_path / ".dashscope").mkdir()
    os.mkfifo(tmp_path / ".dashscope" / "api_key")
    with pytest.raises(ConfigError, match="not a regular file"):
        cred.dashscope_credentials({}, home=tmp_path)
