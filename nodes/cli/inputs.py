"""The outpaint command's input files: folders walked, unique output names, sizes from the headers."""

from __future__ import annotations

import dataclasses
import pathlib
import re

from .exits import UsageError

IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".webp")


@dataclasses.dataclass
class Source:
    path: pathlib.Path
    key: str            # output stem, unique in the run (may include sub-folders with --recursive)
    width: int = 0      # after EXIF orientation
    height: int = 0


def _is_output(path: pathlib.Path, out_dir: pathlib.Path) -> bool:
    """A result of an earlier run (so re-running on a folder that holds --out does not outpaint results)."""
    return out_dir in path.resolve().parents and re.search(r"_outpaint(_v\d+)?$", path.stem) is not None


def collect_inputs(inputs: list[str], recursive: bool, out_dir: pathlib.Path) -> list[Source]:
    sources, seen, used = [], set(), {}
    out_dir = out_dir.resolve()
    for text in inputs:
        path = pathlib.Path(text).expanduser()
        if path.is_dir():
            walker = path.rglob("*") if recursive else path.iterdir()
            found = sorted(p for p in walker if p.is_file() and p.suffix.lower() in IMAGE_EXTS
                           and not _is_output(p, out_dir))
            if not found:
                raise UsageError(f"{path}: no PNG/JPEG/WEBP files in this folder"
                                 + ("" if recursive else " (add --recursive to look in sub-folders)"))
            pairs = [(p, str(p.relative_to(path).with_suffix(""))) for p in found]
        elif path.is_file():
            pairs = [(path, path.stem)]
        else:
            raise UsageError(f"{path}: no such file or folder")
        for p, key in pairs:
            real = p.resolve()
            if real in seen:
                continue
            seen.add(real)
            base, n = key, used.get(key, 0)
            if n:  # same name from another folder or with another extension: keep both
                key = f"{base}_{n + 1}"
                while key in used:
                    n += 1
                    key = f"{base}_{n + 1}"
            used[base] = n + 1
            used.setdefault(key, 1)
            sources.append(Source(p, key))
    return sources


def read_header(source: Source) -> None:
    """Width and height (after EXIF rotation) from the file header; refuses files Pillow cannot read."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(source.path) as img:
            width, height = img.size
            try:
                orientation = img.getexif().get(0x0112, 1)
            except Exception:  # noqa: BLE001 - a damaged EXIF block: the decoder ignores it too
                orientation = 1
    except (OSError, UnidentifiedImageError, ValueError) as exc:
        raise UsageError(f"{source.path}: not a readable image ({exc.__class__.__name__}: {exc})") from None
    source.width, source.height = (height, width) if orientation in (5, 6, 7, 8) else (width, height)
