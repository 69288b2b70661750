"""IMAGE/MASK tensors <-> uint8 arrays <-> PNG/JPEG bytes <-> base64.

Conventions: IMAGE float [B,H,W,C] in 0..1 (C 1, 3 or 4 accepted, C = 3 always produced);
MASK float [B,H,W] or [H,W], 1 = area to generate, written as 8-bit single-channel PNG.
"""

from __future__ import annotations

import base64
import binascii
import io
import math
import struct
import sys
import warnings
import zlib
from typing import NamedTuple

import numpy as np
import torch
from PIL import Image, ImageOps

from . import imageheader
from .errors import InputError
from .imageheader import MAX_DECODE_PIXELS, DecodeError

# Measured on a 2048² photo-like image: Pillow's PNG writer takes ~600 ms at level 1 (~1 s at
# level 6, 12 % smaller); the "Up" filter in numpy + zlib level 1 below is about twice as fast for
# about the same size, and zlib's run-length strategy (Z_RLE) halves the deflate time again and is
# ~9 % smaller on photos; on flat colour gradients (repeats 3 bytes apart, which Z_RLE cannot see)
# it is 3x larger, so a sample of rows decides (`python bench/run.py` prints the figures).
PNG_COMPRESS_LEVEL = 1
PNG_STRATEGY = None  # None: Z_RLE unless a sample of rows packs clearly better with zlib's default
SAMPLE_ROWS = 64
JPEG_QUALITY = 95


def _as_batch(image: torch.Tensor) -> torch.Tensor:
    if not isinstance(image, torch.Tensor):
        raise InputError(f"expected an IMAGE tensor, got {type(image).__name__}")
    if image.dim() == 3:
        image = image.unsqueeze(0)
    if image.dim() != 4 or image.shape[-1] not in (1, 3, 4) or 0 in image.shape:
        raise InputError(f"image has shape {tuple(image.shape)}; expected non-empty [batch, height, width, 3]")
    return image


def check_finite(values: torch.Tensor, what: str) -> None:
    """InputError if a float tensor holds NaN or +-inf. amax/amin propagate NaN and, unlike a float64 sum
    or aminmax on a strided view, allocate nothing the size of the input."""
    if values.is_floating_point() and values.numel() and not (
            math.isfinite(values.amax()) and math.isfinite(values.amin())):
        raise InputError(f"the {what} contains NaN or infinite values")


_CHUNK_ELEMENTS = 1 << 22  # converted at a time: the float scratch stays ~16 MB whatever the image size


def _to_uint8(values: torch.Tensor, what: str) -> np.ndarray:
    """[B,H,...] float in 0..1 -> uint8 array of the same shape, row block by row block."""
    if values.dtype == torch.uint8:
        return values.cpu().numpy()
    check_finite(values, what)
    out = torch.empty(values.shape, dtype=torch.uint8)
    rows = max(1, _CHUNK_ELEMENTS // max(1, values[0, :1].numel()))
    for b in range(values.shape[0]):
        for y in range(0, values.shape[1], rows):
            part = values[b, y:y + rows].to(torch.float32)
            # Round half up, then clamp *before* the cast: out-of-range values must not wrap around.
            out[b, y:y + rows] = part.mul(255.0).add_(0.5).clamp_(0, 255)
    return out.numpy()


def image_to_uint8(image: torch.Tensor, alpha_background: tuple[float, float, float] | None = None) -> np.ndarray:
    """IMAGE -> uint8 [B,H,W,3]. Alpha is dropped, or composited over `alpha_background`."""
    image = _as_batch(image)
    if image.shape[-1] == 1:
        image = image.expand(-1, -1, -1, 3)
    elif image.shape[-1] == 4:
        rgb, alpha = image[..., :3], image[..., 3:]
        if alpha_background is not None:
            bg = torch.tensor(alpha_background, dtype=image.dtype, device=image.device)
            rgb = rgb * alpha + bg * (1 - alpha)
        image = rgb
    return _to_uint8(image, "image")


def mask_to_uint8(mask: torch.Tensor) -> np.ndarray:
    """MASK [B,H,W] or [H,W] -> uint8 [B,H,W], 255 = generate."""
    if not isinstance(mask, torch.Tensor) or mask.dim() not in (2, 3) or 0 in mask.shape:
        raise InputError("expected a non-empty MASK tensor [batch, height, width]")
    return _to_uint8(mask.reshape((-1, mask.shape[-2], mask.shape[-1])), "mask")


def uint8_to_image(array: np.ndarray) -> torch.Tensor:
    """uint8 [H,W,3] or [B,H,W,3] -> float32 IMAGE [B,H,W,3]."""
    t = torch.from_numpy(np.ascontiguousarray(array))
    if t.dim() == 3:
        t = t.unsqueeze(0)
    return t.to(torch.float32).div_(255.0)


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def _deflate(data, level: int, strategy: int) -> bytes:
    deflate = zlib.compressobj(level, zlib.DEFLATED, 15, 8, strategy)
    return deflate.compress(data) + deflate.flush()


def _strategy(raw: np.ndarray, level: int) -> int:
    """Z_RLE when it packs a sample of the filtered rows (spread over the image) about as well as the default."""
    sample = np.ascontiguousarray(raw[::max(1, raw.shape[0] // SAMPLE_ROWS)])
    rle, default = (len(_deflate(sample, level, s)) for s in (zlib.Z_RLE, zlib.Z_DEFAULT_STRATEGY))
    return zlib.Z_RLE if rle <= default * 1.05 else zlib.Z_DEFAULT_STRATEGY


def encode_png(array: np.ndarray, compress_level: int = PNG_COMPRESS_LEVEL, strategy: int | None = PNG_STRATEGY) -> bytes:
    """uint8 [H,W,3] (RGB) or [H,W] (L) -> 8-bit PNG bytes. Lossless.

    Every row uses PNG filter 2 ("Up": difference to the row above), computed in one numpy
    pass; that is what makes this twice as fast as Pillow's per-row adaptive filtering.
    """
    array = np.ascontiguousarray(array, dtype=np.uint8)
    if array.ndim == 2:
        colour_type, height, width = 0, *array.shape
    elif array.ndim == 3 and array.shape[2] == 3:
        colour_type, height, width = 2, *array.shape[:2]
    else:
        raise InputError(f"cannot write a PNG from an array of shape {array.shape}")
    rows = array.reshape(height, -1)
    raw = np.empty((height, rows.shape[1] + 1), dtype=np.uint8)
    raw[:, 0] = 2
    raw[0, 1:] = rows[0]
    np.subtract(rows[1:], rows[:-1], out=raw[1:, 1:])  # uint8 arithmetic wraps mod 256, as PNG wants
    header = struct.pack(">IIBBBBB", width, height, 8, colour_type, 0, 0, 0)
    if strategy is None:
        strategy = _strategy(raw, compress_level)
    idat = _deflate(raw, compress_level, strategy)  # straight from the array's buffer
    return b"".join((b"\x89PNG\r\n\x1a\n", _png_chunk(b"IHDR", header), _png_chunk(b"IDAT", idat),
                     _png_chunk(b"IEND", b"")))


def encode_jpeg(array: np.ndarray, quality: int = JPEG_QUALITY) -> bytes:
    """uint8 [H,W,3] -> JPEG bytes (4:4:4 at quality >= 90, so colour edges stay sharp)."""
    buf = io.BytesIO()
    subsampling = 0 if quality >= 90 else 2
    Image.fromarray(array).save(buf, format="JPEG", quality=quality, subsampling=subsampling)
    return buf.getvalue()


def encode_image(array: np.ndarray, fmt: str = "png", quality: int = JPEG_QUALITY) -> bytes:
    if fmt == "png":
        return encode_png(array)
    if fmt in ("jpeg", "jpg"):
        return encode_jpeg(array, quality)
    raise InputError(f"unknown image format {fmt!r}; use png or jpeg")


def _open(data: bytes, max_pixels: int = MAX_DECODE_PIXELS) -> Image.Image:
    width, height = imageheader.checked_size(data, max_pixels)
    fmt = imageheader.header(data)[0]
    try:
        img = Image.open(io.BytesIO(data), formats=(fmt,))
        if img.size != (width, height):  # our reader and Pillow's must agree on what gets decoded
            raise DecodeError(f"the {fmt} header is inconsistent ({width}x{height} vs {img.size})")
        img.load()
    except Image.DecompressionBombError as exc:
        raise DecodeError(f"Pillow refuses this {width}x{height} image: Image.MAX_IMAGE_PIXELS is "
                          f"{Image.MAX_IMAGE_PIXELS} in this process (set by ComfyUI or another custom node)") from exc
    except DecodeError:
        raise
    except Exception as exc:  # PIL raises many types for corrupt data
        raise DecodeError(f"not a readable image ({len(data)} bytes): {exc}") from exc
    return img


def _pil_pixels(img: Image.Image, channels: int) -> np.ndarray:
    """PIL image -> uint8 array [H,W,3] or [H,W] (read-only, no copy beyond Pillow's own), or a
    float32 array in 0..1 for 16-bit and float modes (kept exact)."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        scale = 1.0 if img.mode == "F" else 65535.0
        arr = np.clip(np.asarray(img, dtype=np.float32) / scale, 0, 1)
        return np.repeat(arr[..., None], 3, axis=2) if channels == 3 else arr
    if channels == 1:
        if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
            alpha = np.asarray(img.convert("RGBA").getchannel("A"))  # a mask stored as transparency
            return 1.0 - alpha.astype(np.float32) / np.float32(255)
        img = img.convert("L")
    elif img.mode != "RGB":
        img = img.convert("RGB")  # drops alpha; vendors return opaque results
    return np.asarray(img)


def pixels_into(pixels: np.ndarray, out: torch.Tensor) -> torch.Tensor:
    """Write decoded pixels (decode_pixels) into `out`, a float32 CPU tensor of their shape (e.g. an item
    of the output batch), as 0..1, in place: no float copy in between. Returns `out`."""
    if tuple(out.shape) != pixels.shape or out.dtype != torch.float32:
        raise ValueError(f"pixels {pixels.shape} do not fit a {out.dtype} tensor {tuple(out.shape)}")
    if pixels.dtype != np.uint8:
        np.copyto(out.numpy(), pixels)  # out.numpy() shares memory with `out` (a CPU tensor)
        return out
    with warnings.catch_warnings():  # Pillow's pixels are read-only: only read here
        warnings.filterwarnings("ignore", "The given NumPy array is not writable", UserWarning)
        source = torch.from_numpy(pixels)
    return out.copy_(source).div_(255)  # torch's threads, in place: the values of .to(float32).div_(255)


def _pil_to_float(img: Image.Image, channels: int) -> torch.Tensor:
    pixels = _pil_pixels(img, channels)
    return pixels_into(pixels, torch.empty(pixels.shape, dtype=torch.float32))


def decode_pixels(data: bytes, max_pixels: int = MAX_DECODE_PIXELS) -> np.ndarray:
    """PNG/JPEG/WEBP bytes -> pixels [H,W,3] (uint8, or float32 for 16-bit images) for pixels_into:
    a quarter of a float image's memory while a result waits for its slot in the output batch."""
    return _pil_pixels(_open(data, max_pixels), 3)


def decode_image(data: bytes, exif_transpose: bool = False, max_pixels: int = MAX_DECODE_PIXELS) -> torch.Tensor:
    """PNG/JPEG/WEBP bytes -> IMAGE [1,H,W,3] float32 (DecodeError past `max_pixels`)."""
    img = _open(data, max_pixels)
    if exif_transpose:
        img = ImageOps.exif_transpose(img)
    return _pil_to_float(img, 3).unsqueeze(0)


def decode_mask(data: bytes, max_pixels: int = MAX_DECODE_PIXELS) -> torch.Tensor:
    """Grey PNG (white = generate) -> MASK [1,H,W] float32. Transparency counts as 'generate'."""
    return _pil_to_float(_open(data, max_pixels), 1).unsqueeze(0)


def image_size(data: bytes) -> tuple[int, int]:
    """(width, height) of PNG/JPEG/WEBP bytes, from the header only (any size)."""
    return imageheader.header(data)[1:]


_STRICT_A2B = sys.version_info >= (3, 11)  # binascii's strict_mode is new in 3.11


def to_base64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def from_base64(text: str | memoryview) -> bytes:
    """Strict base64 -> bytes. A data: URI prefix and line breaks are tolerated. `text` may be a
    memoryview of ASCII (a long string left in the answer's body by lean_json)."""
    if isinstance(text, memoryview) and text[:5] == b"data:":
        text = str(text, "ascii")
    if not isinstance(text, (str, memoryview)):
        raise DecodeError(f"expected a base64 string, got {type(text).__name__}")
    if isinstance(text, str) and text.startswith("data:"):
        text = text.partition(",")[2]
    try:  # straight from the ASCII buffer: no bytes copy, no regex pass over the text
        return binascii.a2b_base64(text, strict_mode=True) if _STRICT_A2B else base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        pass  # maybe wrapped lines: strip white space (slow path, copies the text)
    if isinstance(text, memoryview):
        text = str(text, "ascii")
    try:
        return base64.b64decode("".join(text.split()), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise DecodeError(f"invalid base64 ({len(text)} chars): {exc}") from exc


def image_to_bytes(image: torch.Tensor, index: int = 0, fmt: str = "png", quality: int = JPEG_QUALITY) -> bytes:
    """One item of an IMAGE batch -> encoded bytes."""
    return encode_image(image_to_uint8(_as_batch(image)[index:index + 1])[0], fmt, quality)


def mask_to_png(mask: torch.Tensor, index: int = 0, invert: bool = False) -> bytes:
    """One item of a MASK batch -> 8-bit single-channel PNG (255 = generate unless inverted)."""
    arr = mask_to_uint8(mask.reshape((-1, mask.shape[-2], mask.shape[-1]))[index:index + 1])[0]
    return encode_png(255 - arr if invert else arr)


def resize_u8(array: np.ndarray, width: int, height: int) -> np.ndarray:
    """uint8 [H,W,3] or [H,W] resized with Lanczos (Pillow), e.g. to meet a vendor's size limits."""
    if (array.shape[1], array.shape[0]) == (width, height):
        return array
    return np.asarray(Image.fromarray(array).resize((width, height), Image.LANCZOS))


class Encoded(NamedTuple):
    data: bytes
    array: np.ndarray  # what was encoded: the input, or its one resize
    encodes: int  # full encodes it took (1 when the input fitted; at most 4)


FIT_MARGIN = 0.95  # per side, below the predicted scale: a smaller image packs a little denser


def encode_within(array: np.ndarray, fmt: str, max_bytes: int, quality: int = JPEG_QUALITY,
                  min_side: int = 1) -> Encoded:
    """Encode under max_bytes: as given when it fits; else (JPEG) once at quality 85, then one resize to
    the scale the first encode predicts (size ~ pixel count), with at most one correction.

    Every encode is of the full image, so the prediction costs nothing extra; the loop it replaces
    shrank by 15 % and re-encoded until the size fitted (2-4 encodes, and more pixels lost than needed).
    """
    data, encodes = encode_image(array, fmt, quality), 1
    if len(data) <= max_bytes:
        return Encoded(data, array, encodes)
    if fmt in ("jpeg", "jpg") and quality > 85:
        quality = 85
        data, encodes = encode_image(array, fmt, quality), encodes + 1
        if len(data) <= max_bytes:
            return Encoded(data, array, encodes)
    h, w = array.shape[:2]
    scale = 1.0
    for _ in range(2):  # the predicted resize, then at most one correction
        scale *= math.sqrt(max_bytes / len(data)) * FIT_MARGIN
        nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
        if min(nw, nh) < min_side:
            raise InputError(f"the image cannot be encoded under {max_bytes / 2**20:.1f} MiB without going "
                             f"below {min_side} px a side")
        sent = resize_u8(array, nw, nh)
        data, encodes = encode_image(sent, fmt, quality), encodes + 1
        if len(data) <= max_bytes:
            return Encoded(data, sent, encodes)
    raise InputError(f"the image did not fit under {max_bytes / 2**20:.1f} MiB after a predicted resize and one "
                     f"correction ({nw}x{nh}: {len(data) / 2**20:.1f} MiB)")
