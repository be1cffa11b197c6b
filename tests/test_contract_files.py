"""gs_contract.files: non-regular paths are named for what they are, never opened."""

from __future__ import annotations

import os

import pytest

from gs_contract.errors import InputError
from gs_contract.files import regular_file_problem, require_regular_file


def test_regular_file_passes(tmp_path):
    path = tmp_path / "a.ply"
    path.write_bytes(b"ply\n")
    assert regular_file_problem(path) is None
    assert require_regular_file(path, source="s.json", field="assets.a.ply") == path


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs POSIX FIFOs")
def test_each_kind_of_non_regular_path_is_named(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    loop_a, loop_b = tmp_path / "loop_a", tmp_path / "loop_b"
    loop_a.symlink_to(loop_b)
    loop_b.symlink_to(loop_a)
    broken = tmp_path / "broken"
    broken.symlink_to(tmp_path / "missing")
    cases = {
        fifo: "named pipe (FIFO)",
        loop_a: "symbolic link loop",
        broken: "broken symbolic link",
        tmp_path: "a directory",
        tmp_path / "missing": "file not found",
    }
    if os.path.exists("/dev/zero"):
        cases["/dev/zero"] = "character device"
    for path, words in cases.items():
        problem = regular_file_problem(path)
        assert problem is not None and words in problem, (path, problem)


def test_require_names_source_field_and_path(tmp_path):
    with pytest.raises(InputError) as info:
        require_regular_file(tmp_path, source="scene.json", field="assets.tissue.ply")
    message = info.value.message
    assert message.startswith("scene.json: assets.tissue.ply: a directory")
    assert str(tmp_path) in message


def test_portable_path_is_relative_to_the_folder_and_resolves_back(tmp_path, monkeypatch):
    from gs_contract.files import portable_path

    asset = tmp_path / "assets" / "tool.ply"
    folder = tmp_path / "out" / "deep"
    text = portable_path(asset, folder)
    assert text == "../../assets/tool.ply"
    assert (folder / text).resolve() == asset.resolve()
    monkeypatch.chdir(tmp_path)  # relative inputs are taken from the working folder
    assert portable_path("assets/tool.ply", "out") == "../assets/tool.ply"
