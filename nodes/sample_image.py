"""The examples' input image, put into ComfyUI's input folder when the pack loads.

Every example_workflows/*.json loads `cloud_outpaint_sample.png` with LoadImage, so an example opened
from the template browser runs on a fresh install without copying anything by hand. The file goes to
folder_paths.get_input_directory() (which follows --input-directory); a file of that name already
there is never replaced, whatever it holds. Outside ComfyUI (no folder_paths) nothing happens.
"""

from __future__ import annotations

import logging
import os
import pathlib
import tempfile

log = logging.getLogger(__name__)

NAME = "cloud_outpaint_sample.png"
SOURCE = pathlib.Path(__file__).resolve().parent.parent / "example_workflows" / NAME


def provide(input_dir: str | os.PathLike) -> pathlib.Path | None:
    """Copy the sample into `input_dir` unless a file of its name is there. The path if it was copied."""
    folder = pathlib.Path(input_dir)
    target = folder / NAME
    if target.exists() or target.is_symlink():
        return None
    folder.mkdir(parents=True, exist_ok=True)
    data = SOURCE.read_bytes()
    fd, tmp = tempfile.mkstemp(prefix=".cloud_outpaint_", suffix=".png", dir=folder)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.link(tmp, target)  # whole or not at all; fails if the name appeared meanwhile
    except FileExistsError:
        return None
    except OSError:  # no hard links here (FAT, exFAT, some shares): an exclusive create, never a replace
        try:
            with open(target, "xb") as out:
                out.write(data)
        except FileExistsError:
            return None
    finally:
        os.unlink(tmp)
    return target


def install() -> pathlib.Path | None:
    """Inside ComfyUI: provide the sample in its input folder (a failure is logged, never raised)."""
    try:
        import folder_paths  # ComfyUI's
    except ImportError:
        return None
    try:
        copied = provide(folder_paths.get_input_directory())
    except OSError as exc:
        log.warning("cloud_outpaint: could not put %s into the input folder (%s); the examples need it there",
                    NAME, exc)
        return None
    if copied:
        log.info("cloud_outpaint: put the examples' image %s into %s", NAME, copied.parent)
    return copied
