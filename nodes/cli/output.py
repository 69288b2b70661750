"""What the commands write: files replaced atomically, JSON records, and a core run's images and info."""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib


def write_atomic(path: pathlib.Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def write_json(path: pathlib.Path, record: dict) -> None:
    write_atomic(path, json.dumps(record, ensure_ascii=False, indent=1).encode("utf-8"))


def jsonable(value):
    return dataclasses.asdict(value) if dataclasses.is_dataclass(value) else value


def run_output(result) -> tuple:
    """The IMAGE batch and the info dict of a core run (volc_run.run / dashscope_run.run: a RunResult)."""
    return result.images, result.info.to_dict()
