"""lean_json reads and writes exactly what the json module does, faster only for long plain strings:
property tests against json itself (LONG lowered so that every shape meets the short cut), the
escapes it must leave to json, and Volcengine answers over real HTTP (sandbox) in the layouts other
servers write: the image stays a view of the body, the pixels are those of a compact answer."""

from __future__ import annotations

import base64
import io
import json
import os
import threading
import zlib
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest
import requests
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from pack import module
from PIL import Image

lean_json, answers = module("nodes.core.lean_json"), module("nodes.core.answers")
volc, volc_run, transport = module("nodes.core.volc"), module("nodes.core.volc_run"), module("nodes.core.transport")
errors = module("nodes.core.errors")

COMPACT = {"ensure_ascii": False, "separators": (",", ":")}
B64 = base64.b64encode(os.urandom(60_000)).decode()  # 80 000 characters: over LONG


def plain(value):
    """`value` with lean views turned back into text, for comparing with json's result."""
    if isinstance(value, memoryview):
        return str(value, "ascii")
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def outcome(read, data):
    """("value", what was read) or ("error", None): lean_json must refuse what json refuses."""
    try:
        return "value", plain(read(data))
    except ValueError:  # JSONDecodeError and UnicodeDecodeError alike
        return "error", None


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
    | st.text() | st.text(alphabet="ABCabc+/=019 ", min_size=8),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4),
    max_leaves=12)


@pytest.fixture(scope="module")
def short_long():
    with pytest.MonkeyPatch.context() as patch:  # every string of 8+ characters takes the short cut
        patch.setattr(lean_json, "LONG", 8)
        yield


@settings(max_examples=300, deadline=None)
@given(value=json_values, indent=st.sampled_from([None, 0, 2]), ascii_only=st.booleans())
def test_loads_equals_json_for_any_value_and_layout(short_long, value, indent, ascii_only):
    data = json.dumps(value, indent=indent, ensure_ascii=ascii_only).encode("utf-8")
    assert lean_json.loads(data) == json.loads(data)
    assert plain(lean_json.loads(bytearray(data), views=True)) == json.loads(data)


@settings(max_examples=300, deadline=None)
@given(value=json_values)
def test_dumps_equals_compact_json(short_long, value):
    assert lean_json.dumps(value) == json.dumps(value, **COMPACT).encode("utf-8")


@settings(max_examples=400, deadline=None)
@given(value=json_values, cut=st.integers(0, 400), byte=st.integers(0, 255))
def test_a_damaged_body_gets_json_s_verdict(short_long, value, cut, byte):
    data = bytearray(json.dumps({"data": value, "image": "QUJD" * 20}).encode("utf-8"))
    damaged = bytes(data[:cut % (len(data) + 1)] + bytes([byte]) + data[cut % (len(data) + 1) + 1:])
    for views in (False, True):
        assert outcome(lambda d: lean_json.loads(d, views=views), damaged) == outcome(json.loads, damaged)


@pytest.mark.parametrize("name, text", [
    ("escaped slashes", B64.replace("/", "\\/")),
    ("an escaped quote", B64[:70_000] + '\\"' + B64[70_000:]),
    ("a unicode escape", B64[:70_000] + "\\u00e9" + B64[70_000:]),
    ("an escaped backslash before the end", B64 + "\\\\"),
    ("non-ASCII", B64 + "é"),
    ("a raw tab", B64[:100] + "\t" + B64[100:]),
    ("a raw newline", B64[:100] + "\n" + B64[100:]),
])
def test_long_strings_with_escapes_or_odd_bytes_read_as_json_reads_them(name, text):
    data = ('{"a": "' + text + '", "b": ["' + text + '"]}').encode("utf-8")
    assert outcome(lambda d: lean_json.loads(d, views=True), data) == outcome(json.loads, data)


def test_a_long_plain_value_is_a_view_of_the_body_and_keys_stay_text():
    data = bytearray(json.dumps({"k" * 70_000: 1, "image": [B64], "short": "x"}).encode())
    value = lean_json.loads(data, views=True)
    image = value["image"][0]
    assert isinstance(image, memoryview) and image.readonly and image.obj is data  # no copy of the text
    assert str(image, "ascii") == B64 and "k" * 70_000 in value and value["short"] == "x"
    assert lean_json.loads(bytes(data)) == json.loads(bytes(data))  # without views: all text


def test_a_body_with_more_strings_than_it_scans_goes_to_json():
    data = json.dumps({"items": ["s"] * (lean_json.MAX_STRINGS + 1), "image": B64}).encode()
    value = lean_json.loads(data, views=True)
    assert isinstance(value["image"], str) and value == json.loads(data)


def test_fields_give_views_only_to_texts_with_views():
    data = json.dumps({"request_id": B64, "images": [B64], "message": B64}).encode()
    fields = answers.Fields(lean_json.loads(data, views=True), "")
    assert fields.text("request_id") == B64 and fields.message("message") == B64
    assert fields.texts("images") == (B64,) and isinstance(fields.texts("images")[0], str)
    assert isinstance(fields.texts("images", views=True)[0], memoryview)


# ---- over real HTTP: the sandbox's Volcengine answer, and the same answer laid out as other servers do ----

def big_photo(size: int = 256) -> torch.Tensor:
    return torch.rand((1, size, size, 3), generator=torch.Generator().manual_seed(3))


def test_the_sandbox_answer_is_read_without_a_text_copy(sb):
    client = volc.VolcClient(sb.volc_credentials(), transport.new_session(), transport.RunControl(30, "Volcengine"))
    payload = big_photo()
    buf = io.BytesIO()
    Image.fromarray((payload[0].numpy() * 255).astype(np.uint8)).save(buf, "PNG")
    params = volc.VolcParams(left=0.1, right=0.1, top=0.1, bottom=0.1)
    answer = client.call(volc.build_body(params, [base64.b64encode(buf.getvalue()).decode()], volc.VolcConfig()),
                         billable=True)
    [image] = answer.images_b64
    assert isinstance(image, memoryview) and len(image) >= lean_json.LONG  # the short cut was taken
    decoded = Image.open(io.BytesIO(base64.b64decode(bytes(image))))
    assert decoded.size == (308, 308)


@pytest.mark.parametrize("layout", ["compact", "pretty", "escaped slashes", "ASCII-escaped message"])
def test_volc_answers_in_other_layouts_give_the_same_pixels(sb, layout):
    image = big_photo()
    params = volc.VolcParams(left=0.1, right=0.1)
    options = volc_run.VolcOptions(timeout_s=30, use_cache=False)
    reference = volc_run.run(image, None, params, sb.volc_credentials(), replace(options, keep_original=False))
    encoded = base64.b64encode(reference_png(reference.images)).decode()
    answer = {"code": 10000, "request_id": "RID-LAYOUT", "message": "Success — 成功", "time_elapsed": "1.2s",
              "data": {"binary_data_base64": [encoded]}}
    text = {"compact": json.dumps(answer, **COMPACT), "pretty": json.dumps(answer, indent=4, ensure_ascii=False),
            "escaped slashes": json.dumps(answer, **COMPACT).replace("/", "\\/"),
            "ASCII-escaped message": json.dumps(answer)}[layout]
    sb.inject("volc", "malformed", body=text, status=200, content_type="application/json; charset=utf-8")
    result = volc_run.run(image, None, params, sb.volc_credentials(), replace(options, keep_original=False))
    assert torch.equal(result.images, reference.images)
    assert result.info.results[0].request_id == "RID-LAYOUT"


def reference_png(images: torch.Tensor) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(images[0].mul(255).round().to(torch.uint8).numpy()).save(buf, "PNG")
    return buf.getvalue()


def test_a_long_value_with_a_raw_control_character_is_malformed_as_json_says(sb):
    body = '{"code":10000,"request_id":"RID-CTRL","data":{"binary_data_base64":["' + B64[:100] + "\x01" + B64 + '"]}}'
    sb.inject("volc", "malformed", body=body, status=200, content_type="application/json")
    with pytest.raises(errors.ItemError) as e:
        volc_run.run(big_photo(64), None, volc.VolcParams(left=0.1), sb.volc_credentials(),
                     volc_run.VolcOptions(timeout_s=30, use_cache=False))
    assert e.value.cause.code == "MalformedResponse" and "not JSON" in e.value.cause.meaning


# ---- read_body: one buffer of the declared size, and the bodies that declare none or another ----

BODY = os.urandom(300_000)


class Answering:
    """A loopback server answering GET /<way> with BODY: as sent, gzip-encoded, chunked, or cut short."""

    def __enter__(self):
        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                way = self.path.strip("/")
                self.send_response(200)
                if way == "gzip":
                    packer = zlib.compressobj(wbits=31)
                    data = packer.compress(BODY) + packer.flush()
                    self.send_header("Content-Encoding", "gzip")
                elif way == "bomb":
                    packer = zlib.compressobj(wbits=31)
                    data = packer.compress(bytes(8 * 2**20)) + packer.flush()
                    self.send_header("Content-Encoding", "gzip")
                else:
                    data = BODY
                if way == "chunked":
                    self.send_header("Transfer-Encoding", "chunked")
                    self.end_headers()
                    for i in range(0, len(data), 70_000):
                        piece = data[i:i + 70_000]
                        self.wfile.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
                    self.wfile.write(b"0\r\n\r\n")
                    return
                self.send_header("Content-Length", str(len(data) + (1000 if way == "short" else 0)))
                self.end_headers()
                self.wfile.write(data)
                if way == "short":
                    self.close_connection = True

        class Server(ThreadingHTTPServer):
            def handle_error(self, request, client_address):  # a client that stops reading (the cap) is expected
                pass

        self.server = Server(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


def read(url: str, max_bytes: int = 2**20) -> bytearray:
    with requests.Session() as session:
        session.trust_env = False
        response = session.get(url, stream=True, timeout=10)
        return transport.read_body(response, control=transport.RunControl(30, "test"), max_bytes=max_bytes,
                                   read_timeout=5)


@pytest.mark.parametrize("way", ["identity", "gzip", "chunked"])
def test_read_body_returns_the_body_whatever_its_framing(way):
    with Answering() as server:
        body = read(f"{server.url}/{way}")
    assert isinstance(body, bytearray) and body == BODY


def test_a_body_shorter_than_declared_is_a_broken_connection():
    with Answering() as server, pytest.raises(requests.ConnectionError):
        read(f"{server.url}/short")


def test_a_compressed_body_is_capped_after_decoding():
    with Answering() as server, pytest.raises(errors.VendorError) as e:
        read(f"{server.url}/bomb", max_bytes=2**20)
    assert e.value.code == "AnswerTooLarge"
