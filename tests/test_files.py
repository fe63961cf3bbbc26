"""Atomic writes: the new content replaces the old in one step, and a failed write leaves the old file and no litter."""

from __future__ import annotations

import os

import pytest

from fer_helpers.core.files import (
    atomic_dir,
    atomic_open,
    atomic_path,
    atomic_write_bytes,
    atomic_write_text,
    relative_link,
    rewrite_between,
)


def test_atomic_write_replaces_the_file_and_leaves_nothing_else(tmp_path):
    path = tmp_path / "sub" / "metrics.json"
    assert atomic_write_text(path, "old – text\n") == path  # the folder is made; text is UTF-8
    atomic_write_text(path, "new\n")
    assert path.read_text() == "new\n" and os.listdir(path.parent) == ["metrics.json"]
    atomic_write_bytes(path, b"\x00\x01")
    assert path.read_bytes() == b"\x00\x01"
    assert oct(path.stat().st_mode & 0o777) == oct(0o666 & ~_umask())  # the umask decides, as for any new file


def test_a_failed_write_keeps_the_old_file(tmp_path):
    path = tmp_path / "REPORT.md"
    path.write_text("old")
    with pytest.raises(RuntimeError), atomic_open(path, "w") as out:
        out.write("half")
        raise RuntimeError("interrupted")
    assert path.read_text() == "old" and os.listdir(tmp_path) == ["REPORT.md"]
    with pytest.raises(ValueError, match="mode"), atomic_open(path, "a"):
        pass


def test_atomic_path_gives_a_name_of_its_own_beside_the_target(tmp_path):
    path = tmp_path / "runs-00.tar.gz"
    with atomic_path(path) as first, atomic_path(tmp_path / "runs-00.tar.gz") as second:
        assert first.parent == second.parent == tmp_path and first != second and first.name.endswith(".tmp")
        first.write_bytes(b"a")
        second.write_bytes(b"b")
    assert path.read_bytes() == b"a" and os.listdir(tmp_path) == ["runs-00.tar.gz"]  # the write that ends last wins


def test_atomic_path_can_keep_the_suffix_for_writers_that_choose_the_format_by_name(tmp_path):
    path = tmp_path / "clip.mp4"
    with atomic_path(path, keep_suffix=True) as temporary:
        assert temporary.suffix == ".mp4" and temporary.name.endswith(".tmp.mp4") and temporary != path
        temporary.write_bytes(b"frames")
    assert path.read_bytes() == b"frames" and os.listdir(tmp_path) == ["clip.mp4"]
    with pytest.raises(RuntimeError), atomic_path(tmp_path / "half.avi", keep_suffix=True) as temporary:
        temporary.write_bytes(b"half")
        raise RuntimeError("interrupted")
    assert os.listdir(tmp_path) == ["clip.mp4"]


def test_atomic_dir_swaps_a_whole_folder(tmp_path):
    run_dir = tmp_path / "results" / "model_b-abc"
    run_dir.mkdir(parents=True)
    (run_dir / "old.json").write_text("old")
    with atomic_dir(run_dir) as new:
        (new / "result.json").write_text("{}")
        assert (run_dir / "old.json").exists()  # readers see the old folder until the block ends
    assert os.listdir(run_dir) == ["result.json"] and os.listdir(run_dir.parent) == ["model_b-abc"]
    with pytest.raises(RuntimeError), atomic_dir(run_dir) as new:
        (new / "half.json").write_text("{")
        raise RuntimeError("interrupted")
    assert os.listdir(run_dir) == ["result.json"] and os.listdir(run_dir.parent) == ["model_b-abc"]


def test_relative_link(tmp_path):
    assert relative_link(tmp_path / "reports" / "figures" / "a.png", tmp_path / "reports") == "figures/a.png"
    assert relative_link(tmp_path / "figures" / "a.png", tmp_path / "reports") == "../figures/a.png"


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_rewrite_between_replaces_only_the_marked_block(tmp_path):
    path = tmp_path / "README.md"
    path.write_text("head\n<!-- a -->\nstale\n<!-- b -->\ntail\n")
    assert rewrite_between(path, "<!-- a -->", "<!-- b -->", "fresh")
    assert path.read_text() == "head\n<!-- a -->\nfresh\n<!-- b -->\ntail\n"
    assert not rewrite_between(path, "<!-- a -->", "<!-- b -->", "fresh")  # nothing to change
    path.write_text("<!-- b -->\n<!-- a -->\n")
    with pytest.raises(ValueError, match="<!-- a -->"):  # markers out of order
        rewrite_between(path, "<!-- a -->", "<!-- b -->", "fresh")
    assert path.read_text() == "<!-- b -->\n<!-- a -->\n"  # left as it was
