"""JSON for bodies that carry a few huge plain strings (base64 images) without the json module's
character-by-character pass over them: a 16 MB answer is read with no text copy of the whole body
and no escaping scan of its image, a request body is written without re-escaping its upload.

Results equal json.loads / compact json.dumps(ensure_ascii=False). Only string VALUES of at least
LONG characters that need no JSON escaping (printable ASCII without quote or backslash; "\\/" is read
as "/") take the short cut; everything else, and every doubt, goes through the json module.
"""

from __future__ import annotations

import json
import secrets

import numpy as np

LONG = 64 * 1024
MAX_STRINGS = 256  # a body of many strings is json's job (the scan below is a Python loop per string)
_WHITESPACE = b" \t\r\n"
_BACKSLASH, _COLON = 0x5C, 0x3A


def _printable_ascii(data) -> bool:
    codes = np.frombuffer(data, dtype=np.uint8)
    return codes.size == 0 or (int(codes.min()) >= 0x20 and int(codes.max()) < 0x7F)


def _long_values(body) -> list[tuple[int, int]]:
    """(start, end) of the characters of each long string value, or [] when there is none, the body
    is cut off inside a string or has too many strings to scan (json then reads it all)."""
    spans, pos, end = [], 0, len(body)
    for _ in range(MAX_STRINGS):
        start = body.find(b'"', pos)
        if start < 0:
            return spans
        close = start
        while True:  # the closing quote: one not escaped by an odd run of backslashes
            close = body.find(b'"', close + 1)
            if close < 0:
                return []
            run = 0
            while body[close - 1 - run] == _BACKSLASH:
                run += 1
            if run % 2 == 0:
                break
        pos = close + 1
        if close - start - 1 >= LONG:
            after = pos
            while after < end and body[after] in _WHITESPACE:
                after += 1
            if after == end or body[after] != _COLON:  # a key is followed by ':'
                spans.append((start + 1, close))
    return []


def _text_of(body, start: int, end: int, views: bool) -> str | memoryview | None:
    """The string a long value's characters stand for (as a read-only view of them when `views` and
    they need no unescaping), or None when they need json's reading."""
    view = memoryview(body)[start:end].toreadonly()
    if not _printable_ascii(view):
        return None
    if body.find(b"\\", start, end) < 0:
        return view if views else str(view, "ascii")
    text = str(view, "ascii").replace("\\/", "/")  # an escaped slash, as some servers write base64
    return None if "\\" in text else text


def _restore(value, texts: dict):
    """`value` with every placeholder string replaced by its text (in place; containers walked
    without recursion)."""
    if isinstance(value, str):
        return texts.get(value, value)
    stack = [value]
    while stack:
        container = stack.pop()
        items = container.items() if isinstance(container, dict) else enumerate(container)
        for key, item in list(items):
            if isinstance(item, str):
                if item in texts:
                    container[key] = texts[item]
            elif isinstance(item, (dict, list)):
                stack.append(item)
    return value


def loads(body: bytes | bytearray, *, views: bool = False):
    """json.loads(body), reading long plain string values straight from the bytes. With `views`,
    those that need no unescaping come as read-only memoryviews of `body` (ASCII: no copy at all)."""
    spans = _long_values(body) if len(body) >= LONG else []
    if not spans:
        return json.loads(body)
    view, token = memoryview(body), secrets.token_hex(8)
    pieces, texts, pos = [], {}, 0
    for i, (start, end) in enumerate(spans):
        text = _text_of(body, start, end, views)
        if text is None:
            return json.loads(body)
        name = f"{token}:{i}"
        texts[name] = text
        pieces += [view[pos:start], name.encode("ascii")]
        pos = end
    pieces.append(view[pos:])
    return _restore(json.loads(b"".join(pieces)), texts)


def _swap_long(value, token: str, longs: list[bytes]):
    """`value` (a copy along the way) with each long plain string replaced by a placeholder; its
    ASCII bytes appended to `longs`."""
    if isinstance(value, str):
        if len(value) >= LONG and value.isascii():
            data = value.encode("ascii")
            if _printable_ascii(data) and data.find(b'"') < 0 and data.find(b"\\") < 0:
                longs.append(data)
                return f"{token}:{len(longs) - 1}"
        return value
    if isinstance(value, dict):
        return {key: _swap_long(item, token, longs) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_swap_long(item, token, longs) for item in value]
    return value


def dumps(value) -> bytes:
    """json.dumps(value, ensure_ascii=False, separators=(",", ":")) as UTF-8, long plain strings
    copied in as they are."""
    token, longs = secrets.token_hex(8), []
    skeleton = json.dumps(_swap_long(value, token, longs), ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    pieces, pos = [], 0
    for i, data in enumerate(longs):
        marker = f'"{token}:{i}"'.encode("ascii")
        at = skeleton.find(marker, pos)
        pieces += [skeleton[pos:at + 1], data]
        pos = at + len(marker) - 1
    pieces.append(skeleton[pos:])
    return b"".join(pieces) if longs else skeleton
