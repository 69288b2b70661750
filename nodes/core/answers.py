"""Reading vendor JSON into typed answers, shared by both vendors.

Every field is type-checked where it is read (`Fields`); an answer of the wrong shape raises
`Shape`, which the vendor's parser turns into one VendorError "MalformedResponse" naming the
vendor, the ids known so far and whether the request may have been billed (`malformed`).
Shape texts name fields and JSON types only, never values: a value may echo what was sent.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import TypeVar

import requests

from . import lean_json, transport
from .errors import VendorError

T = TypeVar("T")


class Shape(Exception):
    """What is wrong with an answer's shape, e.g. "output.task_id is a number, expected text"."""


def kind(value: object) -> str:
    """A JSON value's type in words."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "text"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def vendor_text(value: object) -> str:
    """A vendor's message as text, whatever JSON it came as (a message is shown, never interpreted)."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, default=str)


class Fields:
    """The fields of one JSON object; `where` names it in shape errors ("data", "output")."""

    def __init__(self, value: object, where: str):
        if not isinstance(value, dict):
            raise Shape(f"{where} is {kind(value)}, expected an object")
        self._data, self._where = value, where

    def _get(self, name: str) -> object:
        return _as_str(self._data.get(name))

    def _name(self, name: str) -> str:
        return f"{self._where}.{name}" if self._where else name

    def filled(self, name: str) -> bool:
        """Present and not empty (null, "", [] and {} count as absent)."""
        return self._get(name) not in (None, "", [], {})

    def text(self, name: str, *, required: bool = False) -> str:
        """A string field; "" when absent or null (an error when required)."""
        value = self._get(name)
        if value is None or (required and value == ""):
            if required:
                raise Shape(f"{self._name(name)} is missing")
            return ""
        if not isinstance(value, str):
            raise Shape(f"{self._name(name)} is {kind(value)}, expected text")
        return value

    def integer(self, name: str) -> int | None:
        value = self._get(name)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            raise Shape(f"{self._name(name)} is {kind(value)}, expected a whole number")
        return value

    def number(self, name: str) -> float | None:
        value = self._get(name)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise Shape(f"{self._name(name)} is {kind(value)}, expected a number")
        return float(value)

    def texts(self, name: str, *, views: bool = False) -> tuple[str | memoryview, ...]:
        """A list of strings; () when absent or null. With `views`, the long ones read by
        object_body(views=True) stay memoryviews of the body (for base64: no text copy)."""
        value = self._data.get(name)
        if value is None:
            return ()
        if not isinstance(value, list):
            raise Shape(f"{self._name(name)} is {kind(value)}, expected a list of text")
        items = tuple(item if views else _as_str(item) for item in value)
        for i, item in enumerate(items):
            if not isinstance(item, (str, memoryview)):
                raise Shape(f"{self._name(name)}[{i}] is {kind(item)}, expected text")
        return items

    def object(self, name: str, *, required: bool = False) -> Fields | None:
        value = self._get(name)
        if value is None:
            if required:
                raise Shape(f"{self._name(name)} is missing")
            return None
        return Fields(value, self._name(name))

    def message(self, name: str) -> str:
        return vendor_text(self._get(name))


def _as_str(value: object) -> object:
    """A long string value kept as a view of the body (lean_json), as text; anything else as it is."""
    return str(value, "ascii") if isinstance(value, memoryview) else value


def object_body(response: requests.Response, *, views: bool = False) -> dict:
    """The body as a JSON object, or raises Shape (not JSON, or JSON of another type). With `views`,
    long plain strings are memoryviews of the body: Fields gives them as text except to texts(views=True)."""
    try:
        value = lean_json.loads(response.content, views=views)  # from the bytes as read: no text copy
    except ValueError:
        raise Shape("the body is not JSON") from None
    if not isinstance(value, dict):
        raise Shape(f"the body is {kind(value)}, expected a JSON object")
    return value


BILLED_NOTE = {True: "; the vendor reported success, so it was billed",
               None: "; the request may have been processed and billed", False: ""}


def malformed(vendor: str, problem: Shape | str, *, http_status: int | None = None, request_id: str = "",
              task_id: str = "", billed: bool | None = None, note: str = "", hint: str = "") -> VendorError:
    """The error for an answer of the wrong shape (`note` replaces the billing note). Never retried:
    a malformed answer is no refusal."""
    meaning = f"the answer does not have {vendor}'s documented shape ({problem}){note or BILLED_NOTE[billed]}"
    return VendorError(vendor, "MalformedResponse", meaning, http_status=http_status,
                       request_id=request_id or None, task_id=task_id or None, billed=billed, hint=hint)


def call(parse: Callable[[requests.Response], T | VendorError], session: requests.Session, method: str,
         url: str, **send_options) -> T:
    """transport.send, with the answer read by `parse` (a typed answer, or the VendorError it means)
    inside the send loop: a malformed or error answer is retried, redacted and raised like any other."""
    kept: list = []

    def classify(response: requests.Response) -> VendorError | None:
        answer = parse(response)
        if isinstance(answer, VendorError):
            return answer
        kept.append(answer)
        return None

    transport.send(session, method, url, classify=classify, **send_options).close()
    return kept[-1]
