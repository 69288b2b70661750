"""DashScope's temporary storage: upload policies, the OSS form POST, oss:// objects
(https://help.aliyun.com/zh/model-studio/get-temporary-file-url).

getPolicy hands out an OSS PostObject policy (base64 JSON with an expiration and conditions)
signed with the sandbox's OSS secret (HMAC-SHA1, OSS V1 form signature); the form POST is checked
against it like OSS does, and the object is kept for `oss://` resolution, bound to the account
(API key) and the model named at getPolicy. Objects cannot be read back over HTTP (as the doc
says); only a task of the same account and model can use one.
"""

from __future__ import annotations

import base64
import email.parser
import email.policy
import hashlib
import hmac
import json
import re
import secrets
import threading
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from .dashscope_protocol import BEIJING, OSS_BUCKET

ACL = "private"
FORBID_OVERWRITE = "true"
REQUIRED_FIELDS = ("OSSAccessKeyId", "policy", "Signature", "key")
MIME = re.compile(r"[a-z0-9][a-z0-9.+-]*/[a-z0-9][a-z0-9.+-]*", re.IGNORECASE)


class OssError(Exception):
    """An OSS refusal: code (dashscope_protocol.OSS_ERRORS) and message."""

    def __init__(self, code: str, message: str | None = None):
        super().__init__(f"{code}: {message}")
        self.code, self.message = code, message


class MissingObject(LookupError):
    """oss:// resolution failed; the message says why (for the log, not the client)."""


@dataclass(frozen=True)
class Policy:
    policy: str            # base64 of the policy JSON
    signature: str
    access_key_id: str
    upload_dir: str
    expires: datetime
    model: str
    owner: str             # the API key that asked (the sandbox's stand-in for the account)
    max_bytes: int


@dataclass(frozen=True)
class StoredObject:
    data: bytes
    model: str
    owner: str
    content_type: str
    expires: datetime


@dataclass(frozen=True)
class FormPart:
    name: str
    filename: str | None
    content_type: str | None
    value: bytes


def parse_form(content_type: str | None, body: bytes) -> list[FormPart]:
    """multipart/form-data -> parts in order; OssError MalformedPOSTRequest when it is not that."""
    header = email.parser.HeaderParser(policy=email.policy.HTTP).parsestr(f"Content-Type: {content_type or ''}\n\n")
    boundary = header.get_param("boundary") if header.get_content_type() == "multipart/form-data" else None
    if not boundary:
        raise OssError("MalformedPOSTRequest")
    delimiter = b"--" + str(boundary).encode("latin-1")
    chunks = body.split(delimiter)
    if len(chunks) < 3 or not chunks[-1].startswith(b"--"):
        raise OssError("MalformedPOSTRequest")
    parts = []
    for chunk in chunks[1:-1]:
        if not chunk.startswith(b"\r\n") or not chunk.endswith(b"\r\n"):
            raise OssError("MalformedPOSTRequest")
        head, sep, value = chunk[2:-2].partition(b"\r\n\r\n")
        if not sep:
            raise OssError("MalformedPOSTRequest")
        headers = email.parser.BytesHeaderParser(policy=email.policy.HTTP).parsebytes(head + b"\r\n\r\n")
        name = headers.get_param("name", header="content-disposition")
        if headers.get_content_disposition() != "form-data" or not name:
            raise OssError("MalformedPOSTRequest")
        parts.append(FormPart(str(name), headers.get_filename(),
                              headers.get("Content-Type"), value))
    return parts


class TempStorage:
    """Thread-safe store of issued policies and uploaded objects, on the sandbox clock."""

    def __init__(self, clock):
        self._clock = clock
        self._lock = threading.Lock()
        self._secret = secrets.token_bytes(24)
        self.access_key_id = "LTAI5t" + secrets.token_hex(9)[:18]
        self._policies: dict[str, Policy] = {}
        self._objects: dict[str, StoredObject] = {}

    @property
    def secret(self) -> bytes:
        return self._secret

    def issue(self, model: str, owner: str, expire_s: int, max_mb: int) -> Policy:
        now = self._clock()
        account = hashlib.sha256(owner.encode()).hexdigest()[:32]
        upload_dir = f"dashscope-instant/{account}/{now.astimezone(BEIJING):%Y-%m-%d}/{uuid.uuid4()}"
        expires = now + timedelta(seconds=expire_s)
        max_bytes = int(max_mb) * 1024 * 1024
        document = {
            "expiration": expires.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z"),
            "conditions": [["content-length-range", 0, max_bytes], ["starts-with", "$key", upload_dir],
                           {"bucket": OSS_BUCKET}, {"x-oss-object-acl": ACL},
                           {"x-oss-forbid-overwrite": FORBID_OVERWRITE}],
        }
        text = base64.b64encode(json.dumps(document, separators=(",", ":")).encode()).decode("ascii")
        policy = Policy(text, self._sign(text), self.access_key_id, upload_dir, expires, model, owner, max_bytes)
        with self._lock:
            self._policies[text] = policy
        return policy

    def _sign(self, policy_text: str) -> str:
        return base64.b64encode(hmac.new(self._secret, policy_text.encode(), hashlib.sha1).digest()).decode("ascii")

    def upload(self, parts: list[FormPart], ttl: timedelta) -> tuple[str, StoredObject]:
        """Check a PostObject form like OSS does; store the file. -> (key, object)."""
        files = [p for p in parts if p.name == "file"]
        if len(files) != 1 or parts[-1].name != "file":
            # OSS: "the file field must be the last field of the form", one file per request.
            raise OssError("MalformedPOSTRequest", "The body of your POST request is not well-formed "
                                                   "multipart/form-data: the file field must be the last one, "
                                                   "and only one file per request.")
        fields = {}
        for part in parts[:-1]:
            fields.setdefault(part.name.lower(), part.value.decode("utf-8", "replace"))
        for name in REQUIRED_FIELDS:
            if not fields.get(name.lower()):
                raise OssError("InvalidArgument", f"Missing required form field: {name}.")
        if fields["ossaccesskeyid"] != self.access_key_id:
            raise OssError("InvalidAccessKeyId")
        with self._lock:
            policy = self._policies.get(fields["policy"])
        if policy is None or not hmac.compare_digest(self._sign(fields["policy"]), fields["signature"]):
            raise OssError("SignatureDoesNotMatch")
        now = self._clock()
        if now >= policy.expires:
            raise OssError("AccessDenied", "Invalid according to Policy: Policy expired.")
        key = fields["key"]
        if not key.startswith(policy.upload_dir + "/") or key.endswith("/"):
            raise OssError("AccessDenied", "Invalid according to Policy: Policy Condition failed: "
                                           f'["starts-with", "$key", "{policy.upload_dir}"]')
        for name, expected in (("x-oss-object-acl", ACL), ("x-oss-forbid-overwrite", FORBID_OVERWRITE)):
            # A field the policy names must match when it is sent (whether OSS also refuses a form
            # that leaves it out is UNCONFIRMED: leaving it out is accepted).
            if name in fields and fields[name] != expected:
                raise OssError("AccessDenied", "Invalid according to Policy: Policy Condition failed: "
                                               f'["eq", "${name}", "{expected}"]')
        data = files[0].value
        if len(data) > policy.max_bytes:
            raise OssError("EntityTooLarge", f"Your proposed upload exceeds the maximum allowed size: "
                                             f"{len(data)} bytes, at most {policy.max_bytes}.")
        declared = fields.get("x-oss-content-type")
        if declared is not None and (not MIME.fullmatch(declared) or (
                files[0].content_type and files[0].content_type.split(";")[0].strip().lower() != declared.lower())):
            # the SDK sends it (oss_utils.py); OSS stores the object under it, so it must say what the file is
            raise OssError("InvalidArgument", f"x-oss-content-type {declared!r} is not a MIME type, or disagrees "
                                              f"with the file part's Content-Type {files[0].content_type!r}.")
        content_type = declared or files[0].content_type or "application/octet-stream"
        stored = StoredObject(data, policy.model, policy.owner, content_type, now + ttl)
        with self._lock:
            old = self._objects.get(key)
            if old is not None and now < old.expires and fields.get("x-oss-forbid-overwrite", "").lower() == "true":
                raise OssError("FileAlreadyExists")
            self._objects[key] = stored
        return key, stored

    def resolve(self, url: str, model: str, owner: str) -> bytes:
        """oss://key -> bytes, for a task of `owner` running `model`; MissingObject otherwise."""
        key = url[len("oss://"):]
        with self._lock:
            stored = self._objects.get(key)
            if stored is not None and self._clock() >= stored.expires:
                del self._objects[key]
                stored = None
        if stored is None:
            raise MissingObject(f"no object {key!r} (never uploaded, or older than its 48 h)")
        if stored.owner != owner:
            raise MissingObject("the object was uploaded with another account's key")
        if stored.model != model:
            raise MissingObject(f"the object is bound to model {stored.model!r}, not {model!r}")
        return stored.data

    def clear(self) -> None:
        with self._lock:
            self._policies.clear()
            self._objects.clear()
