"""Volcengine signature V4: the spec's vectors, the official SDK as an oracle, the sandbox verifier.

The oracle is `volcengine==1.0.229` (tests/requirements.txt, test-only). Its SignerV4 reads the
clock through its module's `datetime` import; the tests swap that one name for a frozen clock, so
the SDK's own X-Date formatting still runs. Without the SDK the oracle tests skip (see `-ra`).
"""

import base64
import datetime as dt
import hashlib
import json
import random
import string
import types
from collections import OrderedDict
from urllib.parse import quote, urlencode, urlsplit

import pytest
from volc_signing import (
    CV_QUERY,
    EMPTY_SHA256,
    HOST,
    SHARED_VECTORS,
    UTC,
    VECTORS,
    VECTORS_FILE,
    parse_x_date,
    reference_authorization,
    vs,
    x_date,
)

# ---- fixed vectors ---------------------------------------------------------------------------------

@pytest.mark.parametrize("vector", VECTORS, ids=[v["name"] for v in VECTORS])
def test_spec_vectors_exactly(vector):
    own = {"Host", "X-Date", "X-Content-Sha256", "X-Security-Token", "Authorization"}
    given = {k: v for k, v in vector["headers"].items() if k not in own}
    body = vector["body_utf8"].encode("utf-8")
    headers = vs.sign(vector["method"], vector["host"], vector["path"], vector["query"], given, body,
                      vector["access_key"], vector["secret_key"], vector["session_token"],
                      now=parse_x_date(vector["x_date"]))
    assert headers == vector["headers"]
    assert list(headers)[-1] == "Authorization"
    secrets = {vector["access_key"]: vector["secret_key"]}
    assert vs.verify(vector["method"], vector["path"], vs.canonical_query(vector["query"]), headers, body,
                     secrets.get, parse_x_date(vector["x_date"])) == vector["access_key"]


def test_vector_copy_is_the_shared_spec_file():
    if not SHARED_VECTORS.is_file():
        pytest.skip("shared/spec is not beside this checkout")
    assert VECTORS_FILE.read_bytes() == SHARED_VECTORS.read_bytes()


def test_v5_sdk_demo_sign_only():
    # volcengine example/DemoSignOnly.py: GET, empty body, service iam, utcfromtimestamp (naive UTC)
    query = OrderedDict([("Action", "ListUsers"), ("Version", "2018-01-01"), ("Limit", "5"), ("Offset", "0")])
    headers = vs.sign("GET", "open.volcengineapi.com", "/", query, {}, b"", "ak", "sk", service="iam",
                      now=dt.datetime(2021, 12, 28, 17, 23, 26))
    assert headers == {
        "Host": "open.volcengineapi.com",
        "X-Date": "20211228T172326Z",
        "X-Content-Sha256": EMPTY_SHA256,
        "Authorization": "HMAC-SHA256 Credential=ak/20211228/cn-north-1/iam/request, "
                         "SignedHeaders=host;x-content-sha256;x-date, "
                         "Signature=4f5b9d2b436092f11a41b5ad0d6eb6a868b30bd3955f480fa1d6bf1ed3073eba",
    }


@pytest.mark.parametrize("region,signature", [
    ("cn-beijing", "e31c4558bcfe08a286001f59cedbf0791ffd0b2362f10e55ee2627467bcdde93"),
    ("cn-north-1", "e767552e763d42fb963737a8ea9e0391d38a917b8a282417c6e98b2990280cef"),
])
def test_v6_doc_example_signing_only_host_and_x_date_is_accepted(region, signature):
    ak, sk = "AKLTYWViMTVmZGYzM2E0NDI5Mzk2MDZjNjFmMjc2MjRjMzg", "WkRZeE1EQmxPVGhsWWpWak5HVmtNbUUxTXpZeU9UVXlOMlE1TmpZeVlqTQ=="
    date = "20240619T071306Z"
    auth, canonical_hash = reference_authorization(
        "GET", "/", "Action=ListUsers&Limit=10&Offset=0&Version=2018-01-01",
        {"host": "iam.volcengineapi.com", "x-date": date}, b"", ak, sk, date, region, "iam")
    assert canonical_hash == "5ed5bca3905e1fcbf789abb56a17c2d819674a3bcfa468ae476bd1ea80d135cb"
    assert auth.endswith(f"SignedHeaders=host;x-date, Signature={signature}")
    headers = {"Host": "iam.volcengineapi.com", "X-Date": date, "Authorization": auth}
    assert vs.verify("GET", "/", "Action=ListUsers&Version=2018-01-01&Limit=10&Offset=0", headers, b"",
                     {ak: sk}.get, parse_x_date(date), region=region, service="iam") == ak


# ---- sign() details --------------------------------------------------------------------------------

def test_canonical_query_encoding():
    assert vs.canonical_query({"b": ["2", "1"], "a": "x y/~*+=&中"}) == \
        "a=x%20y%2F~%2A%2B%3D%26%E4%B8%AD&b=2&b=1"
    # pairs: repeated keys keep their order, keys are sorted by code point (upper case first)
    assert vs.canonical_query([("b", "2"), ("a", ""), ("B", "x"), ("b", "1")]) == "B=x&a=&b=2&b=1"
    assert vs.canonical_query({}) == ""
    with pytest.raises(TypeError, match="must be str"):
        vs.canonical_query({"Limit": 5})


def test_host_port_80_443_is_sent_but_not_signed():
    now = dt.datetime(2024, 1, 1, tzinfo=UTC)
    args = ("POST", "/", CV_QUERY)
    plain = vs.sign(args[0], HOST, *args[1:], {}, b"{}", "AK", "SK", now=now)
    for port in ("443", "80"):
        ported = vs.sign(args[0], f"{HOST}:{port}", *args[1:], {}, b"{}", "AK", "SK", now=now)
        assert ported["Host"] == f"{HOST}:{port}"
        assert ported["Authorization"] == plain["Authorization"]
    other = vs.sign(args[0], f"{HOST}:8443", *args[1:], {}, b"{}", "AK", "SK", now=now)
    assert other["Authorization"] != plain["Authorization"]


def test_resigning_replaces_stale_auth_headers_in_any_case():
    first = vs.sign("POST", HOST, "/", CV_QUERY, {"Content-Type": "application/json"}, b"{}", "AK", "SK",
                    session_token="T1", now=dt.datetime(2024, 1, 1, tzinfo=UTC))
    later = dt.datetime(2024, 1, 2, 8, 30, tzinfo=dt.timezone(dt.timedelta(hours=8)))  # 00:30 UTC
    stale = {k.lower(): v for k, v in first.items()}
    again = vs.sign("POST", HOST, "/", CV_QUERY, stale, b"{}", "AK", "SK", session_token="T2", now=later)
    fresh = vs.sign("POST", HOST, "/", CV_QUERY, {"content-type": "application/json"}, b"{}", "AK", "SK",
                    session_token="T2", now=later)
    assert again == fresh
    assert again["X-Date"] == "20240102T003000Z" and again["X-Security-Token"] == "T2"


def test_sign_refuses_ambiguous_input():
    with pytest.raises(TypeError, match="exact bytes"):
        vs.sign("POST", HOST, "/", CV_QUERY, {}, "{}", "AK", "SK")
    with pytest.raises(ValueError, match="twice"):
        vs.sign("POST", HOST, "/", CV_QUERY, {"X-A": "1", "x-a": "2"}, b"", "AK", "SK")
    with pytest.raises(ValueError, match="contradicts"):
        vs.sign("POST", HOST, "/", CV_QUERY, {"Host": "evil.example"}, b"", "AK", "SK")


# ---- the official SDK as an oracle -----------------------------------------------------------------

class FrozenClock:
    moment = dt.datetime(2000, 1, 1, tzinfo=UTC)

    def module(self):
        clock = self

        class FrozenDatetime(dt.datetime):
            @classmethod
            def now(cls, tz=None):  # SDK: datetime.datetime.now(tz=pytz.timezone('UTC'))
                return clock.moment.astimezone(tz) if tz else clock.moment.replace(tzinfo=None)

        return types.SimpleNamespace(datetime=FrozenDatetime)


@pytest.fixture
def sdk(monkeypatch, tmp_path):
    """The SDK's SignerV4 module with a frozen clock, and a VisualService that cannot reach a network
    or this machine's credentials."""
    signer_module = pytest.importorskip("volcengine.auth.SignerV4")
    clock = FrozenClock()
    monkeypatch.setattr(signer_module, "datetime", clock.module())
    for name in ("VOLC_ACCESSKEY", "VOLC_SECRETKEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    return types.SimpleNamespace(signer=signer_module.SignerV4, clock=clock)


def sdk_sign(sdk, method, host, path, query, headers, body, ak, sk, token, region, service, moment):
    from volcengine.base.Request import Request
    from volcengine.Credentials import Credentials

    sdk.clock.moment = moment
    request = Request()
    request.set_method(method)
    request.set_host(host)
    request.set_path(path)
    request.set_query(OrderedDict(query))
    # SignerV4.sign signs the Host header but does not add it: Service.prepare_request does, first.
    request.set_headers(OrderedDict([("Host", host), *headers.items()]))
    request.set_body(body)
    sdk.signer.sign(request, Credentials(ak, sk, service, region, token or ""))
    return dict(request.headers)


CJK = [(0x4E00, 0x9FFF)]
EMOJI = [(0x1F300, 0x1F5FF), (0x1F600, 0x1F64F), (0x1F900, 0x1F9FF)]
PROMPTS = ["蓝色的海洋", "延展天空，保持光照一致。", "a red barn at dusk", "🌅 sunrise over 山脉 🏔️",
           'quotes " and \\ backslash', "tab\tnew\nline", "mixed 中文 and English, 100%", ""]
QUERY_CHARS = string.ascii_letters + string.digits + " /+~=&%*?#-_.!'()中文🎨"


def random_text(rng, ranges, n):
    return "".join(chr(rng.randint(*rng.choice(ranges))) for _ in range(n))


def random_form(rng):
    form = {"req_key": "i2i_outpainting"}
    if rng.random() < 0.5:
        form["image_urls"] = [f"https://example.com/{rng.randrange(10**9)}.png" for _ in range(rng.randint(1, 2))]
    else:
        form["binary_data_base64"] = [base64.b64encode(rng.randbytes(rng.randint(0, 300))).decode()]
    form[rng.choice(["prompt", "custom_prompt"])] = (
        rng.choice(PROMPTS) + random_text(rng, CJK, rng.randint(0, 12)) + random_text(rng, EMOJI, rng.randint(0, 4)))
    for side in ("top", "bottom", "left", "right"):
        form[side] = rng.choice([rng.random(), round(rng.uniform(0, 1), rng.randint(1, 4)), rng.randint(0, 2),
                                 rng.uniform(-1e-300, 1e300)])
    form.update(seed=rng.randint(-1, 2**63), scale=rng.uniform(1, 20), steps=rng.randint(1, 50),
                strength=rng.random(), max_width=rng.choice([1920, 4096]), max_height=rng.randint(1, 4096))
    if rng.random() < 0.5:
        form["return_url"] = rng.random() < 0.5
    if rng.random() < 0.3:
        form["logo_info"] = {"add_logo": True, "position": rng.randint(0, 3), "language": 0,
                             "opacity": rng.random(), "logo_text_content": random_text(rng, CJK + EMOJI, 6)}
    return form


def random_case(seed):
    rng = random.Random(seed)
    separators = rng.choice([None, (",", ":")])  # json.dumps default ", "/": " or compact
    ensure_ascii = rng.choice([True, False])
    method = "GET" if rng.random() < 0.1 else "POST"
    body_text = "" if method == "GET" else json.dumps(random_form(rng), separators=separators,
                                                      ensure_ascii=ensure_ascii)
    query = dict(CV_QUERY)
    for _ in range(rng.choice([0, 0, 1, 3])):
        key = "".join(rng.choice(QUERY_CHARS) for _ in range(rng.randint(1, 8)))
        values = ["".join(rng.choice(QUERY_CHARS) for _ in range(rng.randint(0, 10)))
                  for _ in range(rng.randint(1, 3))]
        query[key] = values if len(values) > 1 else values[0]
    headers = {} if method == "GET" else {"Content-Type": "application/json"}
    if rng.random() < 0.3:
        headers["User-Agent"] = "volc-sdk-python/v1.0.229"  # sent, not signed
    if rng.random() < 0.3:
        headers["X-Request-Id"] = rng.randbytes(8).hex()  # X-*: signed
    if rng.random() < 0.1:
        headers["Content-Md5"] = base64.b64encode(hashlib.md5(body_text.encode()).digest()).decode()
    region, service = rng.choice([("cn-north-1", "cv")] * 4 + [("cn-beijing", "iam"), ("ap-southeast-1", "cv")])
    moment = dt.datetime(2000, 1, 1, tzinfo=UTC) + dt.timedelta(seconds=rng.randrange(36 * 365 * 86400))
    return types.SimpleNamespace(
        rng=rng, method=method, body_text=body_text, body=body_text.encode("utf-8"), query=query, headers=headers,
        host=rng.choice([HOST, HOST, f"{HOST}:443", f"{HOST}:80", "127.0.0.1:18080", "localhost"]),
        path=rng.choice(["/", "/", "/", "", "/api/v1/out paint/中"]),
        ak="AKLT" + "".join(rng.choices(string.ascii_letters + string.digits, k=rng.randint(8, 40))),
        sk="".join(rng.choices(string.ascii_letters + string.digits + "+/=", k=rng.randint(1, 60))),
        token=("STS" + rng.randbytes(rng.randint(4, 40)).hex()) if rng.random() < 0.3 else None,
        region=region, service=service, moment=moment)


@pytest.mark.parametrize("seed", range(240))
def test_matches_official_sdk_byte_for_byte(sdk, seed):
    case = random_case(seed)
    # the SDK gets the body as json.dumps gives it (str) or as bytes; it hashes str as UTF-8
    sdk_body = case.body_text if case.rng.random() < 0.5 else case.body
    theirs = sdk_sign(sdk, case.method, case.host, case.path, case.query, case.headers, sdk_body, case.ak,
                      case.sk, case.token, case.region, case.service, case.moment)
    # our clock may be any aware or naive-UTC datetime for the same instant
    now = case.rng.choice([case.moment, case.moment.replace(tzinfo=None),
                           case.moment.astimezone(dt.timezone(dt.timedelta(hours=8)))])
    ours = vs.sign(case.method, case.host, case.path, case.query, case.headers, case.body, case.ak, case.sk,
                   case.token, case.region, case.service, now=now)
    assert ours["Authorization"] == theirs["Authorization"]
    assert ours["X-Content-Sha256"] == theirs["X-Content-Sha256"] == hashlib.sha256(case.body).hexdigest()
    assert ours["X-Date"] == theirs["X-Date"] == x_date(case.moment)
    assert ours == theirs

    # and the sandbox accepts it, from the URL the SDK would build (urlencode: space -> '+')
    raw_query = case.rng.choice([vs.canonical_query(case.query), urlencode(case.query, doseq=True)])
    received = case.moment + dt.timedelta(seconds=case.rng.randint(-900, 900))
    assert vs.verify(case.method, quote(case.path or "/"), raw_query, theirs, case.body,
                     {case.ak: case.sk}.get, received, region=case.region, service=case.service) == case.ak


def test_matches_sdk_visual_service_on_the_wire(sdk, monkeypatch):
    """The whole SDK path (VisualService.cv_process / Service.json): what it would POST is what we
    sign, and the sandbox accepts the request as it arrives."""
    from volcengine.visual.VisualService import VisualService

    sent = []

    class Response:
        status_code = 200

        def json(self):
            return {"code": 10000}

    rng = random.Random(7)
    for i in range(12):
        service = VisualService()
        service.set_ak(f"AKLTwire{i}")
        service.set_sk(f"wire/secret+{i}==")
        token = f"STSwire{i}" if i % 3 == 0 else ""
        service.set_session_token(token)
        monkeypatch.setattr(service.session, "post", lambda url, **kw: sent.append((url, kw)) or Response())
        sdk.clock.moment = dt.datetime(2024, 1, 1, tzinfo=UTC) + dt.timedelta(seconds=rng.randrange(10**8))
        form = random_form(rng)
        if i % 2:
            service.cv_process(form)
            extra = {}
        else:  # extra query params go into the URL urlencode()d: ' ' -> '+', '/' -> '%2F'
            extra = {"Note": "a b/c~d+e 中"}
            service.json("CVProcess", dict(extra), json.dumps(form))
        url, kw = sent[-1]
        body = kw["data"].encode("utf-8")  # json.dumps default: ASCII only
        assert body == json.dumps(form).encode("ascii")
        ours = vs.sign("POST", HOST, "/", {**CV_QUERY, **extra},
                       {"User-Agent": kw["headers"]["User-Agent"], "Content-Type": "application/json"},
                       body, f"AKLTwire{i}", f"wire/secret+{i}==", token or None, now=sdk.clock.moment)
        assert ours == dict(kw["headers"])
        parts = urlsplit(url)
        assert (parts.scheme, parts.netloc, parts.path) == ("http", HOST, "/")
        assert vs.verify("POST", parts.path, parts.query, kw["headers"], body,
                         {f"AKLTwire{i}": f"wire/secret+{i}=="}.get, sdk.clock.moment) == f"AKLTwire{i}"


def test_lowercase_x_header_is_signed_by_us_but_not_by_the_sdk(sdk):
    # SDK quirk: it tests its own dict's spelling, so 'x-trace' (lowercase) is sent unsigned.
    moment = dt.datetime(2024, 5, 1, tzinfo=UTC)
    given = {"Content-Type": "application/json", "x-trace": "abc"}
    theirs = sdk_sign(sdk, "POST", HOST, "/", CV_QUERY, given, b"{}", "AK", "SK", None, "cn-north-1", "cv", moment)
    ours = vs.sign("POST", HOST, "/", CV_QUERY, given, b"{}", "AK", "SK", now=moment)
    assert "SignedHeaders=content-type;host;x-content-sha256;x-date," in theirs["Authorization"]
    assert "SignedHeaders=content-type;host;x-content-sha256;x-date;x-trace," in ours["Authorization"]
    for headers in (theirs, ours):  # both are valid signatures
        assert vs.verify("POST", "/", vs.canonical_query(CV_QUERY), headers, b"{}", {"AK": "SK"}.get, moment) == "AK"


