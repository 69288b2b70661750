"""The sandbox server itself (vendor-neutral, exercised through the Volcengine routes): latency,
concurrency, request bodies, lifecycle, settings, and serving in the foreground.
"""

import base64
import io
import json
import re
import threading
import time

import pytest
import requests
from pack import module
from volc_sandbox_client import (  # noqa: F401 (fixtures)
    CV_QUERY,
    IMAGE_PNG,
    Sandbox,
    assert_business_error,
    assert_success,
    form,
    signed_post,
    vsig,
)

standalone = module("nodes.sandbox.standalone")
volc_sandbox = module("nodes.sandbox.volc_emulator")

# ---- latency, concurrency, lifecycle --------------------------------------------------------------

def test_latency_applies_to_processed_requests_only(sb, http):
    sb.latency = 0.25
    started = time.perf_counter()
    body = assert_success(signed_post(http, sb, form()))
    assert time.perf_counter() - started >= 0.25
    assert body["time_elapsed"].endswith("ms") and float(body["time_elapsed"][:-2]) >= 250
    started = time.perf_counter()
    assert_business_error(signed_post(http, sb, form(top=5)), 50200, 400)
    assert time.perf_counter() - started < 0.25
    sb.inject("volc", "error", code=50511)  # refused after processing: the processing took its time
    started = time.perf_counter()
    assert_business_error(signed_post(http, sb, form()), 50511, 400)
    assert time.perf_counter() - started >= 0.25


def test_requests_are_served_concurrently(sb):
    sb.latency = 0.3
    results = []

    def one():
        with requests.Session() as session:
            session.trust_env = False
            results.append(signed_post(session, sb, form()).status_code)

    threads = [threading.Thread(target=one) for _ in range(4)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert results == [200] * 4
    assert time.perf_counter() - started < 0.3 * 3


def test_chunked_request_body(sb, http):
    raw = json.dumps(form()).encode()
    headers = vsig.sign("POST", f"127.0.0.1:{sb.port}", "/", CV_QUERY, {"Content-Type": "application/json"}, raw,
                        sb.volc_access_key, sb.volc_secret_key)
    chunks = (raw[i:i + 1000] for i in range(0, len(raw), 1000))
    resp = http.post(f"{sb.url}/?{vsig.canonical_query(CV_QUERY)}", data=chunks, headers=headers, timeout=10)
    assert_success(resp)


def test_unknown_routes(sb, http):
    assert http.get(f"{sb.url}/nothing", timeout=10).status_code == 404
    assert http.get(f"{sb.url}/?Action=CVProcess&Version=2022-08-31", timeout=10).status_code == 405
    assert sb.billable_count() == 0


def test_lifecycle():
    sandbox = Sandbox()
    with pytest.raises(RuntimeError):
        sandbox.url
    sandbox.start()
    first = sandbox.url
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+", first)
    with pytest.raises(RuntimeError):
        sandbox.start()
    sandbox.stop()
    sandbox.stop()  # idempotent
    assert not sandbox.running
    with sandbox:  # can be started again
        assert requests.get(f"{sandbox.url}/nothing", timeout=10).status_code == 404


def test_results_store_drops_the_oldest_files_beyond_its_budget(sb, http):
    sb.results.max_bytes = 2 * len(IMAGE_PNG)
    urls = [sb.publish(IMAGE_PNG) for _ in range(3)]
    assert [http.get(url, timeout=10).status_code for url in urls] == [404, 200, 200]
    sb.results.max_files = 1
    newest = sb.publish(b"x", "bin")
    assert [http.get(url, timeout=10).status_code for url in urls + [newest]] == [404, 404, 404, 200]


@pytest.mark.parametrize("seconds, text", [
    (0, "0s"), (5e-7, "500ns"), (84.448e-6, "84.448µs"), (0.104852309, "104.852309ms"),
    (2.173378731, "2.173378731s"), (3.9, "3.9s"), (63.5, "1m3.5s"), (3600, "1h0m0s"),
])
def test_time_elapsed_is_a_go_duration(seconds, text):
    assert module("nodes.sandbox.wire").go_duration(seconds) == text


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.2", "example.com", "::1"])
def test_listens_on_loopback_only(host):
    with pytest.raises(ValueError):
        Sandbox(host=host)


def test_settings_by_keyword():
    sandbox = Sandbox(volc_mask_white_means="keep", latency=0.5)
    assert (sandbox.volc_mask_white_means, sandbox.latency) == ("keep", 0.5)
    for name in ("volc_mask_white_mean", "url", "running", "log", "errors", "inject", "_volc_keys"):
        with pytest.raises(TypeError):
            Sandbox(**{name: "x"})


def test_stop_cuts_a_slow_answer_short():
    sandbox = Sandbox().start()
    sandbox.inject("volc", "slow", seconds=30)
    outcome = []

    def call():
        with requests.Session() as session:
            session.trust_env = False
            try:
                outcome.append(signed_post(session, sandbox, form()).status_code)
            except requests.RequestException as exc:  # how the cut shows depends on timing: any is fine
                outcome.append(type(exc).__name__)

    thread = threading.Thread(target=call)
    thread.start()
    deadline = time.monotonic() + 5
    while sandbox.billable_count() == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    started = time.perf_counter()
    sandbox.stop()
    thread.join(5)
    assert time.perf_counter() - started < 2 and outcome and not thread.is_alive()


def test_serve_forever_prints_how_to_use_it_and_serves_until_stopped():
    out, stop = _Lines(), threading.Event()
    sandbox = Sandbox(echo=out, **standalone.parse_settings(["latency=0", "volc_output_format=\"jpeg\""]))
    thread = threading.Thread(target=lambda: out.result.append(standalone.serve_forever(sandbox, stop=stop, out=out)))
    thread.start()
    try:
        assert out.ready.wait(10)
        url = re.search(r"VOLC_BASE_URL=(\S+)", out.text).group(1)
        port = int(url.rsplit(":", 1)[1])
        fake = type("SB", (), {"port": port, "url": url, "volc_access_key": volc_sandbox.DEMO_ACCESS_KEY,
                               "volc_secret_key": volc_sandbox.DEMO_SECRET_KEY})
        with requests.Session() as session:
            session.trust_env = False
            body = assert_success(signed_post(session, fake, form()))
        assert base64.b64decode(body["data"]["binary_data_base64"][0])[:2] == b"\xff\xd8"
        creds = sandbox.volc_credentials()  # what describe() tells a person, as the core's credentials
        assert (creds.kind, creds.source, creds.base_url) == ("aksk", "sandbox", url)
        assert f"VOLC_ACCESSKEY={creds.access_key}  VOLC_SECRETKEY={creds.secret_key}" in out.text
    finally:
        stop.set()
        thread.join(10)
    assert out.result == [None] and not sandbox.running
    assert re.search(r"POST /\?Action=CVProcess&Version=2022-08-31 -> 200 \[volc/CVProcess\] billable", out.text)
    assert f"DASHSCOPE_HTTP_BASE_URL={url}/api/v1" in out.text


def test_parse_settings_reads_json_or_text_and_refuses_unknown_names():
    assert standalone.parse_settings(["dashscope_running_s=5", "volc_output_format=jpeg", "latency=0.5",
                                      "dashscope_sync_validation=false", " volc_api_key = sk-x"]) == {
        "dashscope_running_s": 5, "volc_output_format": "jpeg", "latency": 0.5,
        "dashscope_sync_validation": False, "volc_api_key": " sk-x"}
    for item, words in [("no_such_setting=1", "unknown sandbox setting 'no_such_setting'"),
                        ("volc_output_format", "NAME=VALUE"), ("url=x", "unknown sandbox setting 'url'")]:
        with pytest.raises(ValueError, match=words):
            standalone.parse_settings([item])
    assert set(Sandbox.setting_names()) >= {"latency", "volc_mask_white_means", "dashscope_pending_s"}


class _Lines(io.StringIO):
    """A stream that says when the CLI has printed its banner."""

    def __init__(self):
        super().__init__()
        self.ready, self.result = threading.Event(), []
        self._lock = threading.Lock()

    def write(self, text):
        with self._lock:
            n = super().write(text)
        if "Ctrl-C" in text:
            self.ready.set()
        return n

    @property
    def text(self):
        with self._lock:
            return self.getvalue()
