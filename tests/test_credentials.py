
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
    assert cred.dashscope_credentials({"DASHSCOPE_HTTP_BASE_URL": "http://x/api/v1", "DASHSCOPE_API_KEY": "k"},
                                      home=tmp_path).base_url == "http://x/api/v1"


def test_dashscope_nothing_configured_mentions_the_region(tmp_path):
    with pytest.raises(ConfigError, match="Beijing"):
        cred.dashscope_credentials({}, home=tmp_path)
