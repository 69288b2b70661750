"""Where a vendor's answer may send the client (red-team F2, issue 12 #1), over real HTTP against the
sandbox: result links, every redirect hop and DashScope's upload_host go only to the vendor's own
result hosts or to the base URL's exact host:port; a plain-http link on a vendor result host is
fetched (the task was paid for); a name that resolves to this machine is refused when the service
is not on it.

The "internal admin" services are more sandboxes, on another loopback address or port: their request
logs prove the client never reached them.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta, timezone

import pytest
import requests
import torch
from pack import FAST_DASHSCOPE, imagecodec, module

Sandbox = module("nodes.sandbox").Sandbox
StoredFile = module("nodes.sandbox.results").StoredFile
volc = module("nodes.core.volc")
volc_run = module("nodes.core.volc_run")
ds = module("nodes.core.dashscope")
ds_run = module("nodes.core.dashscope_run")
hosts = module("nodes.core.hosts")
transport = module("nodes.core.transport")
errors = module("nodes.core.errors")

PNG = imagecodec.encode_png(torch.full((80, 80, 3), 200, dtype=torch.uint8).numpy())


def photo(h, w):
    return torch.rand((1, h, w, 3), generator=torch.Generator().manual_seed(1))


def run_volc(sb, **options):
    options.setdefault("timeout_s", 20)
    return volc_run.run(photo(48, 64), None, volc.VolcParams(return_url=True), sb.volc_credentials(),
                        volc_run.VolcOptions(**options))


def run_ds(sb, **options):
    options.setdefault("timeout_s", 20)
    return ds_run.run(photo(512, 512), ds.DashScopeParams(), sb.dashscope_credentials(),
                      ds_run.DashScopeOptions(**options), FAST_DASHSCOPE)


def failure(run, sb, **options) -> errors.VendorError:
    with pytest.raises(errors.ItemError) as e:
        run(sb, **options)
    return e.value.cause


@pytest.fixture
def admin():
    """An internal service on another loopback address (127.0.0.2)."""
    with Sandbox(host="127.0.0.2") as other:
        yield other


@pytest.fixture
def other_port():
    """An internal service on this machine's 127.0.0.1, another port."""
    with Sandbox() as other:
        yield other


# ---- the c3_ssrf table, for both vendors ------------------------------------------------------

ROWS = {  # row -> (fault kind, params(admin, other_port)); every one must be refused before connecting
    "https metadata": ("result_url", lambda a, o: {"url": "https://169.254.169.254/latest/meta-data/iam"}),
    "https private 10.x": ("result_url", lambda a, o: {"url": "https://10.0.0.5:8443/result.png"}),
    "https internal name": ("result_url", lambda a, o: {"url": "https://internal-admin.corp/result.png"}),
    "direct other loopback": ("result_url", lambda a, o: {"url": a.publish(PNG)}),
    "same host -> 302 http metadata": ("redirect_url", lambda a, o: {"to": "http://169.254.169.254/latest/"}),
    "same host -> 302 loopback admin": ("redirect_url", lambda a, o: {"to": a.publish(PNG)}),
    "same host -> 307 another port": ("redirect_url", lambda a, o: {"to": o.publish(PNG), "status": 307}),
    "same host -> 302 file": ("redirect_url", lambda a, o: {"to": "file:///etc/passwd"}),
    "link with user:password": ("result_url", lambda a, o: {"url": "https://u:p@p9-aiop-sign.byteimg.com/r.png"}),
}


@pytest.mark.parametrize("vendor", ["volc", "dashscope"])
@pytest.mark.parametrize("row", list(ROWS))
def test_result_links_off_the_vendors_hosts_are_refused(sb, admin, other_port, vendor, row):
    kind, params = ROWS[row]
    sb.inject(vendor, kind, **params(admin, other_port))
    error = failure(run_volc if vendor == "volc" else run_ds, sb)
    assert error.code == "UnsafeURL", str(error)
    assert error.billed is True  # the vendor did the work: the error says so, with the id to quote
    assert (error.request_id if vendor == "volc" else error.task_id)
    assert "CLOUD_OUTPAINT_RESULT_HOSTS" in str(error) or "user name" in str(error) or "http(s)" in str(error)
    assert admin.request_count() == 0 and other_port.request_count() == 0
    if kind == "redirect_url":  # the first hop (the vendor's own host) was fetched, the next one never
        assert len(sb.requests("sandbox", action="result")) == 1


@pytest.mark.parametrize("upload_host", ["metadata", "loopback admin"])
def test_dashscope_upload_host_off_its_hosts_is_refused(sb, admin, upload_host):
    url = "http://169.254.169.254/latest/api/token" if upload_host == "metadata" else f"{admin.url}/oss"
    sb.inject("dashscope", "policy_upload_host", url=url)
    error = failure(run_ds, sb)
    assert error.code == "UnsafeURL" and error.billed is False, str(error)
    assert sb.billable_count() == 0 and not sb.requests("dashscope", action="upload")
    assert admin.request_count() == 0


def test_redirects_on_the_vendors_own_host_are_followed_and_bounded(sb):
    sb.inject("volc", "redirect_url", to=sb.publish(PNG))
    out, _, _ = run_volc(sb)  # one hop on the service's own host:port: fine
    assert out.shape[0] == 1 and len(sb.requests("sandbox", action="result")) == 2
    expires = datetime.now(timezone.utc) + timedelta(hours=1)
    link = sb.publish(PNG)
    for _ in range(transport.MAX_REDIRECTS + 1):  # a chain one hop too long
        link = sb.publish_file(StoredFile("text/plain", expires, location=link, status=302))
    sb.inject("volc", "result_url", url=link)
    error = failure(run_volc, sb)
    assert error.code == "TooManyRedirects" and error.request_id and error.billed is True


# ---- issue 12 #1: a plain-http result link on the vendor's own result host -----------------------

def test_dashscope_oss_result_links_over_plain_http_pass_the_real_rule():
    links = hosts.LinkPolicy("DashScope", "https://dashscope.aliyuncs.com/api/v1", ds.RESULT_HOSTS)
    for url in ("http://dashscope-result-sh.oss-cn-shanghai.aliyuncs.com/1d/a.png?Expires=1&OSSAccessKeyId=k&Signature=s",
                "https://dashscope-result-wlcb-acdr-1.oss-cn-wulanchabu-acdr-1.aliyuncs.com/x.png",
                "https://dashscope-result-sh.oss-accelerate.aliyuncs.com/x.mp4",
                "https://dashscope-file-xxx.oss-cn-beijing.aliyuncs.com",  # an upload_host
                "https://dashscope.aliyuncs.com/api/v1/x.png"):  # the base's own host
        links.check(url)
    for url in ("http://dashscope.aliyuncs.com/x.png",  # the base host, another port (80)
                "https://aliyuncs.com.evil.example/x.png", "https://oss-cn-beijing.aliyuncs.com.evil.example/x",
                "https://100.100.100.200/latest/meta-data", "ftp://dashscope-result-bj.oss-cn-beijing.aliyuncs.com/x"):
        with pytest.raises(errors.VendorError, match="refusing"):
            links.check(url)
    volc_links = hosts.LinkPolicy("Volcengine", "https://visual.volcengineapi.com", volc.RESULT_HOSTS)
    volc_links.check("https://p26-aiop-sign.byteimg.com/tos-cn-i-vuqhorh59i/x.image?x-signature=s")
    volc_links.check("http://bucket.tos-cn-beijing.volces.com/r.jpeg")
    with pytest.raises(errors.VendorError, match="refusing"):
        volc_links.check("https://cdn.example/a.png")  # any https host was once enough


def test_dashscope_result_on_a_second_plain_http_host_is_fetched_also_on_resume(sb, monkeypatch):
    sb.result_host = "localhost"  # results come from another host name than the API, over http
    unlisted = failure(run_ds, sb)  # a host no rule names: refused, with the way to fetch it again
    assert unlisted.code == "UnsafeURL" and unlisted.billed is True and "resume_task_ids" in unlisted.hint
    monkeypatch.setenv(hosts.SETTING, "dashscope-result-*.example, localhost")  # as a user would add a host
    out, _, info = run_ds(sb)
    assert out.shape == (1, 768, 768, 3)
    again, _, _ = run_ds(sb, resume_task_ids=[unlisted.task_id])  # the task that was paid for
    assert again.shape == out.shape and sb.dashscope_charged_images() == 2
    fetched = sb.requests("sandbox", action="result")
    assert len(fetched) == 2 and all(e.status == 200 for e in fetched)


# ---- a name that resolves to this machine, when the service is not on it -------------------------

@pytest.mark.parametrize("scheme", ["http", "https"])
def test_a_listed_name_resolving_to_loopback_is_refused_for_a_remote_service(sb, monkeypatch, scheme):
    monkeypatch.setenv(hosts.SETTING, "localhost")
    link = sb.publish(PNG).replace("http://127.0.0.1", f"{scheme}://localhost")
    control = transport.RunControl(10, "DashScope")
    links = hosts.LinkPolicy("DashScope", "https://dashscope.aliyuncs.com/api/v1", ds.RESULT_HOSTS)
    with requests.Session() as session:
        session.trust_env = False
        hosts.guard(session, links, control)
        with pytest.raises(errors.VendorError, match="resolves to .*loopback") as e:
            transport.download(session, link, control=control, policy=links)
    assert e.value.code == "UnsafeURL" and sb.request_count() == 0
    # the same link with the service on this machine (the sandbox, a local gateway) is fine
    local = replace(links, base_url=sb.url)
    with requests.Session() as session:
        session.trust_env = False
        hosts.guard(session, local, control)
        if scheme == "http":
            assert transport.download(session, link, control=control, policy=local) == PNG


@pytest.mark.parametrize("kind,params", [("result_url", {}), ("redirect_url", {"to": 5}),
                                         ("redirect_url", {"to": "http://x/", "status": 200})])
def test_sandbox_refuses_bad_link_faults(sb, kind, params):
    with pytest.raises((TypeError, ValueError)):
        sb.inject("volc", kind, **params)
