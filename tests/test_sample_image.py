"""nodes/sample_image.py: the examples' image goes into ComfyUI's input folder, never over a user's file."""

import sys
import types

from conftest import ROOT
from pack import module

sample = module("nodes.sample_image")


def test_the_sample_is_copied_into_an_input_folder_that_lacks_it(tmp_path):
    folder = tmp_path / "input"  # not there yet either
    assert sample.provide(folder) == folder / "cloud_outpaint_sample.png"
    assert (folder / sample.NAME).read_bytes() == (ROOT / "example_workflows" / sample.NAME).read_bytes()
    assert sorted(p.name for p in folder.iterdir()) == [sample.NAME]  # no temporary file left behind
    assert sample.provide(folder) is None  # the second load finds it


def test_a_users_file_of_that_name_is_never_replaced(tmp_path):
    (tmp_path / sample.NAME).write_bytes(b"the user's own picture")
    assert sample.provide(tmp_path) is None
    assert (tmp_path / sample.NAME).read_bytes() == b"the user's own picture"
    dangling = tmp_path / "other"
    dangling.mkdir()
    (dangling / sample.NAME).symlink_to(tmp_path / "nowhere.png")  # even a link to nothing stays
    assert sample.provide(dangling) is None and (dangling / sample.NAME).is_symlink()


def test_a_folder_without_hard_links_gets_the_sample_too_and_keeps_a_users_file(tmp_path, monkeypatch):
    def no_hard_links(src, dst):
        raise PermissionError(1, "Operation not permitted")  # what FAT/exFAT answer

    monkeypatch.setattr(sample.os, "link", no_hard_links)
    assert sample.provide(tmp_path) == tmp_path / sample.NAME
    assert (tmp_path / sample.NAME).read_bytes() == (ROOT / "example_workflows" / sample.NAME).read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == [sample.NAME]
    (tmp_path / sample.NAME).write_bytes(b"the user's own picture")
    assert sample.provide(tmp_path) is None and (tmp_path / sample.NAME).read_bytes() == b"the user's own picture"


def test_install_uses_comfyuis_input_directory_and_does_nothing_outside_comfyui(tmp_path, monkeypatch):
    monkeypatch.delitem(sys.modules, "folder_paths", raising=False)
    assert sample.install() is None
    fake = types.ModuleType("folder_paths")
    fake.get_input_directory = lambda: str(tmp_path / "custom_input")  # what --input-directory sets
    monkeypatch.setitem(sys.modules, "folder_paths", fake)
    assert sample.install() == tmp_path / "custom_input" / sample.NAME
    (tmp_path / "blocked").write_text("a file where the folder should be")
    fake.get_input_directory = lambda: str(tmp_path / "blocked")
    assert sample.install() is None  # logged, never raised: the pack still loads


def test_every_example_loads_the_packs_sample():
    import json
    for path in sorted((ROOT / "example_workflows").glob("*.json")):
        images = [n["widgets_values"][0] for n in json.loads(path.read_text())["nodes"] if n["type"] == "LoadImage"]
        assert images and set(images) == {sample.NAME}, path.name
