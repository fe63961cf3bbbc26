"""Shared fixtures: the real FER-2013 and FER+ votes, found where the study finds them (skipped with a reason
where absent), and the embedded synthetic faces. The run ends with one line saying which real data the tests used,
or how many of them were skipped and why."""

from __future__ import annotations

import struct
import zlib
from functools import cache
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
REAL_DATA_FIXTURES = {"fer_path", "real_data", "ferplus_path"}
REAL_DATA_MARK = "fer2013"
WHERE_FER2013 = "put fer2013.zip into data/ or set FER2013_PATH"
WHERE_FERPLUS = "put ferplus_votes.csv into data/ or beside FER-2013, or set FERPLUS_PATH"


def pytest_collection_modifyitems(items):
    """Mark every test that uses the real data (`-m "not fer2013"` leaves them out; `make test-fast` does)."""
    for item in items:
        if REAL_DATA_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(getattr(pytest.mark, REAL_DATA_MARK))


@cache
def real_fer2013() -> tuple[Path | None, str]:
    """FER-2013 as the study finds it ($FER2013_PATH, else data/), or None and why not."""
    from fer_helpers.data.fer2013 import FERDataError, find_fer2013

    try:
        found = find_fer2013(None)
    except FERDataError as err:
        return None, f"FER2013_PATH names no data set ({err})"
    return (found, f"FER-2013 from {found}") if found is not None else (None, f"no FER-2013: {WHERE_FER2013}")


@cache
def real_ferplus() -> tuple[Path | None, str]:
    """The FER+ votes as the study finds them ($FERPLUS_PATH, else data/, else beside FER-2013), or None and why."""
    from fer_helpers.data.fer2013 import FERDataError
    from fer_helpers.data.ferplus import find_ferplus

    try:
        found = find_ferplus(None, data_path=real_fer2013()[0])
    except FERDataError as err:
        return None, f"FERPLUS_PATH names no votes ({err})"
    return (found, f"FER+ votes from {found}") if found is not None else (None, f"no FER+ votes: {WHERE_FERPLUS}")


def real_data_line(reports: list) -> str | None:
    """The run's last word on real data: which files the real-data tests used, or how many were skipped and why."""
    tests = {r.nodeid: r for r in reports if REAL_DATA_MARK in r.keywords}
    if not tests:
        return None
    skipped = [r for r in tests.values() if r.skipped]
    used = [why for path, why in (real_fer2013(), real_ferplus()) if path is not None]
    line = f"real data: {len(tests) - len(skipped)} of {len(tests)} real-data tests ran"
    line += f" on {' and '.join(used)}" if used else ""
    if skipped:
        reasons = sorted(
            {str(r.longrepr[2]).removeprefix("Skipped: ") for r in skipped if isinstance(r.longrepr, tuple)}
        )
        line += f"; {len(skipped)} skipped: " + "; ".join(reasons)
    return line


def pytest_unconfigure(config):
    """The real-data line, after pytest's own summary: the last line of the run."""
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if reporter is None:
        return
    outcomes = ("passed", "failed", "skipped", "error")
    reports = [r for outcome in outcomes for r in reporter.stats.get(outcome, []) if hasattr(r, "keywords")]
    line = real_data_line(reports)
    if line:
        reporter.write_line(line, bold=True)


@pytest.fixture
def no_fer(monkeypatch, tmp_path):
    """No FER-2013 anywhere: no $FER2013_PATH and an empty data folder."""

    monkeypatch.delenv("FER2013_PATH", raising=False)
    empty = tmp_path / "empty-data"
    empty.mkdir()
    from fer_helpers.core import paths

    monkeypatch.setattr(paths, "DATA_DIR", empty)


@pytest.fixture(scope="session")
def fer_path() -> Path:
    """Path of the real FER-2013, where the study finds it."""
    path, why = real_fer2013()
    if path is None:
        pytest.skip(why)
    return path


@pytest.fixture(scope="session")
def real_data(fer_path, tmp_path_factory):
    """All of FER-2013, loaded once per test session (cache in a temporary folder)."""
    from fer_helpers.data.fer2013 import load_fer2013

    return load_fer2013(fer_path, cache_dir=tmp_path_factory.mktemp("fer-cache"))


@pytest.fixture(scope="session")
def synth():
    """A small synthetic data set with FER-2013's classes, splits and imbalance."""
    from fer_helpers.data.synthetic import make_synthetic_fer

    return make_synthetic_fer(n_train=1400, n_public=350, n_private=350, seed=0)


@pytest.fixture(scope="session")
def ferplus_path() -> Path:
    """Path of the real FER+ votes, where the study finds them."""
    path, why = real_ferplus()
    if path is None:
        pytest.skip(why)
    return path


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> Path:
    """A small, untrained Model B saved with its configuration, as training saves weights."""
    import torch

    from fer_helpers.core.config import CNNConfig
    from fer_helpers.models.registry import build_model
    from fer_helpers.train.weights import save_weights

    config = CNNConfig(model="model_b", model_kwargs={"widths": (8, 16), "hidden": 16})
    torch.manual_seed(0)
    model = build_model(config.model, **config.kwargs)
    return save_weights(model, tmp_path_factory.mktemp("weights") / "weights.safetensors", config)


def png_header(path: Path, width: int, height: int) -> Path:
    """A PNG that declares its size but holds no pixels: what a decompression bomb looks like before decoding."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b""))
    return path
