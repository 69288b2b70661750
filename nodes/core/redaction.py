"""Vendor text made safe to show: secrets blanked first, then the text capped.

No imports from the pack: errors.py (VendorError's text) and transport.py (errors raised by send)
both use it. The order matters: a text cut first and blanked second shows the half of a secret
that survived the cut (red-team F8), so blanking always runs on the whole text and the cap only
on what is shown.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import urlsplit

BLANK = "***"
SHOWN_CHARS = 300  # what a user sees of one vendor text (a 5 MB vendor message must not reach the UI)
SCANNED_CHARS = 16 * 1024  # what is kept of a vendor text at all: far beyond what is shown, so a
                           # secret cut at this point is never visible
MIN_RUN = 8  # any run of this many characters of a known secret is blanked (a cut key too)
# Credentials echoed by a proxy or gateway page, whoever's they are.
_HEADER_SECRETS = re.compile(r"(?i)\b(bearer\s+|x-security-token\s*[:=]\s*)[^\s\"'<>,;]+")


def _marked_runs(text: str, secret: str, marks: bytearray, run: int = MIN_RUN) -> None:
    """Mark every place where `run` or more consecutive characters of `secret` occur."""
    if len(secret) <= run:
        start = text.find(secret)
        while start >= 0:
            marks[start:start + len(secret)] = b"\1" * len(secret)
            start = text.find(secret, start + 1)
        return
    for i in range(len(secret) - run + 1):
        piece = secret[i:i + run]
        start = text.find(piece)
        while start >= 0:
            marks[start:start + run] = b"\1" * run
            start = text.find(piece, start + 1)


def redact_text(text, secrets: Iterable[str] = (), *, pieces: bool = True) -> str:
    """`text` (anything; made a str, at most SCANNED_CHARS) with every piece of a secret of
    MIN_RUN+ characters, every whole secret of 4+ characters and every `Bearer …` /
    `X-Security-Token: …` value replaced by ***. pieces=False blanks whole secrets only: for the
    pack's own texts (a host name must stay readable even if a test key happens to contain it)."""
    text = str(text if text is not None else "")[:SCANNED_CHARS]
    text = _HEADER_SECRETS.sub(lambda m: m.group(1) + BLANK, text)
    marks = bytearray(len(text))
    for secret in secrets:
        if isinstance(secret, str) and len(secret) >= 4:
            _marked_runs(text, secret, marks, MIN_RUN if pieces else len(secret))
    if not any(marks):
        return text
    out, i = [], 0
    while i < len(text):
        if marks[i]:
            while i < len(text) and marks[i]:
                i += 1
            out.append(BLANK)
        else:
            j = marks.find(b"\1", i)
            j = len(text) if j < 0 else j
            out.append(text[i:j])
            i = j
    return "".join(out)


def cap_text(text, limit: int = SHOWN_CHARS) -> str:
    """At most `limit` characters of a vendor text, with … when something was cut."""
    text = str(text if text is not None else "")
    return text if len(text) <= limit else text[:limit - 1] + "…"


def host_of(url: str) -> str:
    """hostname[:port] of a URL, for messages: never the user:password@ part of its netloc."""
    try:
        parts = urlsplit(url)
        host, port = parts.hostname or "?", parts.port
    except ValueError:
        return "?"
    host = f"[{host}]" if ":" in host else host
    return f"{host}:{port}" if port else host
