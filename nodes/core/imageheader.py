"""What an image's first bytes say: its format and size, read without Pillow or torch (so the
checks run before any decoder sees the bytes, and cost no torch import).

Vendor results (and the CLI's inputs) are decoded only as PNG, JPEG or WEBP: Pillow's other
plugins are attack surface (EPS runs Ghostscript), and no vendor answers in them. The pixel cap is
the pack's own, whatever Pillow's process-wide Image.MAX_IMAGE_PIXELS says (another custom node
may have set it to None).
"""

from __future__ import annotations


class DecodeError(ValueError):
    """Bytes that should be an image (or base64 of one) are not."""


DECODE_FORMATS = ("PNG", "JPEG", "WEBP")
MAX_DECODE_PIXELS = 8192 * 8192  # a 8192² result is 805 MB as a float IMAGE already
RESULT_SLACK = 2.25  # a result may be 1.5x per side over what was asked before it is refused
_OTHER_FORMATS = ((b"II*\x00", "TIFF"), (b"MM\x00*", "TIFF"), (b"%!PS", "EPS (PostScript)"),
                  (b"\xc5\xd0\xd3\xc6", "EPS (PostScript)"), (b"GIF8", "GIF"), (b"BM", "BMP"),
                  (b"8BPS", "PSD"), (b"DDS ", "DDS"), (b"\x00\x00\x01\x00", "ICO"), (b"%PDF", "PDF"))
_JPEG_FRAMES = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}  # SOFn markers: they carry the size


class TooManyPixels(DecodeError):
    """An image whose header declares more pixels than the cap: refused before decoding."""


def result_pixel_cap(width: int, height: int) -> int:
    """The pixel cap for a result expected to be about width x height."""
    return min(MAX_DECODE_PIXELS, int(width * height * RESULT_SLACK))


def _jpeg_size(data: bytes) -> tuple[int, int]:
    i = 2
    while i + 4 <= len(data):
        if data[i] != 0xFF:
            break
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
        elif marker == 0x01 or 0xD0 <= marker <= 0xD9:  # markers without a length
            i += 2
        elif marker in _JPEG_FRAMES:
            if i + 9 > len(data):
                break
            return int.from_bytes(data[i + 7:i + 9], "big"), int.from_bytes(data[i + 5:i + 7], "big")
        else:
            i += 2 + int.from_bytes(data[i + 2:i + 4], "big")
    raise DecodeError(f"not a readable JPEG ({len(data)} bytes): no frame header")


def _webp_size(data: bytes) -> tuple[int, int]:
    chunk = data[12:16]
    if chunk == b"VP8 " and len(data) >= 30:
        return int.from_bytes(data[26:28], "little") & 0x3FFF, int.from_bytes(data[28:30], "little") & 0x3FFF
    if chunk == b"VP8L" and len(data) >= 25:
        bits = int.from_bytes(data[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8X" and len(data) >= 30:
        return int.from_bytes(data[24:27], "little") + 1, int.from_bytes(data[27:30], "little") + 1
    raise DecodeError(f"not a readable WEBP ({len(data)} bytes): unknown header")


def header(data: bytes) -> tuple[str, int, int]:
    """(format, width, height) read from the first bytes alone, by the pack's own reader: nothing
    of Pillow runs on bytes that are not PNG, JPEG or WEBP, or that declare too many pixels."""
    if data.startswith(b"\x89PNG\r\n\x1a\n") and data[12:16] == b"IHDR" and len(data) >= 24:
        return "PNG", int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    if data.startswith(b"\xff\xd8\xff"):
        return ("JPEG", *_jpeg_size(data))
    if data.startswith(b"RIFF") and data[8:12] == b"WEBP":
        return ("WEBP", *_webp_size(data))
    other = next((name for magic, name in _OTHER_FORMATS if data.startswith(magic)), None)
    raise DecodeError(f"not a PNG, JPEG or WEBP image ({len(data)} bytes" + (f", {other} data)" if other else ")")
                      + ": only those formats are decoded")


def checked_size(data: bytes, max_pixels: int = MAX_DECODE_PIXELS) -> tuple[int, int]:
    """(width, height) from the header, or DecodeError / TooManyPixels; decodes nothing."""
    fmt, width, height = header(data)
    if width <= 0 or height <= 0:
        raise DecodeError(f"the {fmt} header declares an empty image ({width}x{height})")
    if width * height > max_pixels:
        raise TooManyPixels(f"the {fmt} image declares {width}x{height} = {width * height / 1e6:.1f} M pixels, over "
                            f"the cap of {max_pixels / 1e6:.1f} M pixels: refused before decoding")
    return width, height
