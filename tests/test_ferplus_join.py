"""The pixel join of fer2013new.csv onto a Kaggle zip: constructed files with a known row order, JPEG-encoded as
Kaggle's are, an identical twin, a face missing from the zip and a row FER+ dropped; the search against brute force."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from fer_helpers.data.fer2013 import CLASS_NAMES, SPLITS, FERDataError, load_fer2013
from fer_helpers.data.ferplus import VOTE_COLUMNS, read_votes
from fer_helpers.data.ferplus_join import (
    MARGIN,
    OUTPUT_COLUMNS,
    STATUSES,
    TOLERANCE,
    build_ferplus_votes,
    coarse_key,
    join_by_pixels,
    match_by_pixels,
)
from fer_helpers.data.synthetic import make_synthetic_fer
from fer_helpers.orchestrate.cli import main

_FOLDER = {"Training": "train", "PublicTest": "test", "PrivateTest": "test"}


def jpeg(face: np.ndarray, quality: int = 95) -> bytes:
    out = io.BytesIO()
    Image.fromarray(face, mode="L").save(out, format="JPEG", quality=quality)
    return out.getvalue()


class Files:
    """fer2013.csv, fer2013new.csv and a Kaggle zip made from the same synthetic faces, and the true join."""

    def __init__(self, folder: Path, lossless: bool = False, seed: int = 3):
        data = make_synthetic_fer(n_train=56, n_public=21, n_private=21, seed=seed, imbalance=False)
        rng = np.random.default_rng(seed)
        images, labels, usage = data.images.copy(), data.labels, data.usage
        train = np.flatnonzero(usage == "Training")
        self.twins = train[labels[train] == labels[train[0]]][:2]  # two Training faces of one class, made identical
        images[self.twins[1]] = images[self.twins[0]]
        order = rng.permutation(len(images))  # fer2013.csv's row r holds face order[r]
        names = [
            f"{_FOLDER[usage[i]]}/{CLASS_NAMES[labels[i]].lower()}/{usage[i]}_{1000 + i}.{'png' if lossless else 'jpg'}"
            for i in range(len(images))
        ]
        self.missing = int(np.flatnonzero(usage == "PublicTest")[0])  # a face the zip lacks
        self.dropped_row = int(np.flatnonzero(order == np.flatnonzero(usage == "PrivateTest")[0])[0])
        self.csv = folder / "fer2013.csv"
        rows = [f"{labels[i]},{' '.join(map(str, images[i].ravel()))},{usage[i]}" for i in order]
        self.csv.write_text("emotion,pixels,Usage\n" + "\n".join(rows) + "\n", encoding="utf-8")
        self.zip = folder / ("fer2013_png.zip" if lossless else "fer2013.zip")
        with zipfile.ZipFile(self.zip, "w") as archive:
            for i, name in enumerate(names):
                if i != self.missing:
                    png = io.BytesIO()
                    Image.fromarray(images[i], mode="L").save(png, format="PNG")
                    archive.writestr(name, png.getvalue() if lossless else jpeg(images[i]))
        self.votes = rng.multinomial(10, np.full(len(VOTE_COLUMNS), 0.1), size=len(order))
        lines = ["Usage,Image name," + ",".join(VOTE_COLUMNS)]
        for row, face in enumerate(order):
            image = "" if row == self.dropped_row else f"fer{row:07d}.png"
            counts = [0] * 9 + [10] if row == self.dropped_row else self.votes[row]
            lines.append(f"{usage[face]},{image}," + ",".join(map(str, counts)))
        self.fer2013new = folder / "fer2013new.csv"
        self.fer2013new.write_text("\n".join(lines) + "\n", encoding="utf-8")
        self.order, self.names, self.usage = order, names, usage

    def row_of(self, face: int) -> int:
        return int(np.flatnonzero(self.order == face)[0])


@pytest.fixture
def files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Files:
    monkeypatch.setenv("FER_CACHE_DIR", str(tmp_path / "cache"))
    return Files(tmp_path)


def test_join_recovers_the_row_order_and_leaves_out_what_it_cannot_tell(files: Files, tmp_path: Path) -> None:
    out = tmp_path / "ferplus_votes.csv"
    join = build_ferplus_votes(files.fer2013new, files.csv, files.zip, out)
    written = pd.read_csv(out, dtype={"entry": str})
    assert tuple(written.columns) == OUTPUT_COLUMNS
    assert written.fer2013_row.is_monotonic_increasing
    left_out = {files.row_of(face) for face in (*files.twins, files.missing)} | {files.dropped_row}
    assert set(written.fer2013_row) == set(range(len(files.order))) - left_out
    for row in written.itertuples():
        assert row.entry == files.names[files.order[row.fer2013_row]]
        assert row.ferplus_image == f"fer{row.fer2013_row:07d}.png"
        assert [getattr(row, name) for name in VOTE_COLUMNS] == list(files.votes[row.fer2013_row])
    counts = join.counts
    assert counts.loc["Training", "ambiguous"] == 2  # the twins: one face twice, the pairing unknowable
    assert counts.loc["PublicTest", "unmatched"] == 1  # the face the zip lacks
    assert counts.loc["PrivateTest", "no votes"] == 1  # the row FER+ dropped
    assert counts["exact"].sum() == 0  # JPEG is lossy
    assert counts[list(STATUSES)].to_numpy().sum() == len(files.order) - 1
    for split in SPLITS:  # every entry either carries votes or is counted as left
        assert counts.loc[split, "entries left"] + int((written.entry.str.contains(split)).sum()) == (
            np.sum(files.usage == split) - (split == "PublicTest")
        )
    matched = join.match.status == STATUSES[1]
    assert 0 < join.match.nearest[matched].max() <= TOLERANCE  # quality-95 JPEG, measured, not assumed to be 0
    assert "ambiguous" in join.summary() and "tolerance 3" in join.summary()


def test_a_lossless_copy_matches_exactly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FER_CACHE_DIR", str(tmp_path / "cache"))
    files = Files(tmp_path, lossless=True)
    join = join_by_pixels(read_votes(files.fer2013new), load_fer2013(files.csv), load_fer2013(files.zip))
    assert join.counts[STATUSES[1]].sum() == 0
    assert join.counts[STATUSES[0]].sum() == len(join.table) == len(files.order) - 4


def test_cli_writes_and_refuses_to_replace(files: Files, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "votes.csv"
    args = ["ferplus", "join", str(files.fer2013new), str(files.csv), str(files.zip), "--out", str(out)]
    assert main(args) == 0
    assert "Wrote" in capsys.readouterr().out
    first = out.read_bytes()
    assert main(args) == 2
    assert "exists" in capsys.readouterr().err
    assert main([*args, "--force", "--tolerance", "0.5"]) == 0  # too tight for JPEG: nothing matches
    assert out.read_bytes() != first
    assert len(pd.read_csv(out)) == 0
    assert main(["ferplus", "join", str(tmp_path / "nope.csv"), str(files.csv), str(files.zip), "--out", "x"]) == 2


def test_files_that_do_not_belong_together_fail_and_write_nothing(files: Files, tmp_path: Path) -> None:
    out = tmp_path / "votes.csv"
    lines = files.fer2013new.read_text(encoding="utf-8").splitlines()
    short = tmp_path / "short.csv"
    short.write_text("\n".join(lines[:-1]) + "\n", encoding="utf-8")
    with pytest.raises(FERDataError, match="rows but"):
        build_ferplus_votes(short, files.csv, files.zip, out)
    moved = tmp_path / "moved.csv"  # one row's Usage changed: the files do not follow one order
    usage, rest = lines[1].split(",", 1)
    other = "PublicTest" if usage != "PublicTest" else "Training"
    moved.write_text("\n".join([lines[0], f"{other},{rest}", *lines[2:]]) + "\n", encoding="utf-8")
    with pytest.raises(FERDataError, match=r"moved\.csv line 2: Usage"):
        build_ferplus_votes(moved, files.csv, files.zip, out)
    with pytest.raises(FERDataError, match="not the original fer2013.csv"):
        build_ferplus_votes(files.fer2013new, files.zip, files.zip, out)
    assert not out.exists() and not list(tmp_path.glob(".votes.csv*"))


def test_coarse_key_bounds_the_distance_from_below() -> None:
    rng = np.random.default_rng(0)
    a, b = rng.integers(0, 256, size=(2, 200, 48, 48), dtype=np.uint8)
    b[:100] = np.clip(a[:100].astype(int) + rng.integers(-3, 4, size=(100, 48, 48)), 0, 255)
    coarse = np.abs(coarse_key(a) - coarse_key(b)).mean(axis=1)
    exact = np.abs(a.astype(int) - b).mean(axis=(1, 2))
    assert np.all(coarse <= exact + 1e-9)


@pytest.mark.parametrize("margin", [0.5, MARGIN])
def test_search_agrees_with_brute_force(margin: float) -> None:
    rng = np.random.default_rng(1)
    entries = make_synthetic_fer(n_train=60, n_public=0, n_private=0, seed=2).images
    entries[1] = entries[0]  # identical twins
    entries[3] = np.clip(entries[2].astype(int) + 2, 0, 255)  # a rival 2 grey levels away: within MARGIN, not 0.5
    amplitude = rng.integers(1, 10, size=(60, 1, 1))  # some rows too far from every entry
    noise = rng.integers(-amplitude, amplitude + 1, size=(60, 48, 48))
    rows = np.clip(entries[rng.permutation(60)].astype(int) + noise, 0, 255).astype(np.uint8)
    entries_before = entries.copy()
    found = match_by_pixels(rows, entries, TOLERANCE, margin)
    np.testing.assert_array_equal(entries, entries_before)  # the input is not changed
    brute = np.abs(rows[:, None].astype(int) - entries[None].astype(int)).mean(axis=(2, 3))
    ranked = np.sort(brute, axis=1)
    reach = TOLERANCE + margin
    for row in range(len(rows)):
        assert found.nearest[row] == (ranked[row, 0] if ranked[row, 0] <= reach else np.inf)
        unique = ranked[row, 0] <= TOLERANCE and ranked[row, 1] > ranked[row, 0] + margin
        assert (found.entry[row] == np.argmin(brute[row])) == unique
        assert (found.entry[row] >= 0) == unique or found.status[row] == "ambiguous"
    statuses = set(found.status)
    assert {"ambiguous", "unmatched", "within tolerance"} <= statuses  # every branch is taken
    with pytest.raises(ValueError, match="margin"):
        match_by_pixels(rows, entries, TOLERANCE, 0)
