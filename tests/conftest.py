"""Shared fixtures: the real FER-2013 (skipped with a reason where absent) and the embedded synthetic faces."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
REAL_DATA_FIXTURES = {"fer_path", "real_data", "ferplus_path"}


def pytest_collection_modifyitems(items):
    """Mark every test that uses the real data (`-m "not fer2013"` leaves them out; `make test-fast` does)."""
    for item in items:
        if REAL_DATA_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.fer2013)


def _fer_path() -> Path | None:
    env = os.environ.get("FER2013_PATH")
    if env and Path(env).exists():
        return Path(env)
    return None


@pytest.fixture
def no_fer(monkeypatch, tmp_path):
    """No FER-2013 anywhere: no $FER2013_PATH and an empty data folder."""
    from fer_helpers import data

    monkeypatch.delenv("FER2013_PATH", raising=False)
    empty = tmp_path / "empty-data"
    empty.mkdir()
    monkeypatch.setattr(data, "DATA_DIR", empty)


@pytest.fixture(scope="session")
def fer_path() -> Path:
    """Path of the real FER-2013, from FER2013_PATH."""
    path = _fer_path()
    if path is None:
        pytest.skip("real FER-2013 not available: set FER2013_PATH to the Kaggle zip to run this test")
    return path


@pytest.fixture(scope="session")
def real_data(fer_path, tmp_path_factory):
    """All of FER-2013, loaded once per test session (cache in a temporary folder)."""
    from fer_helpers.data import load_fer2013

    return load_fer2013(fer_path, cache_dir=tmp_path_factory.mktemp("fer-cache"))


@pytest.fixture(scope="session")
def synth():
    """A small synthetic data set with FER-2013's classes, splits and imbalance."""
    from fer_helpers.synthetic import make_synthetic_fer

    return make_synthetic_fer(n_train=1400, n_public=350, n_private=350, seed=0)


@pytest.fixture(scope="session")
def ferplus_path() -> Path:
    """Path of the real FER+ votes (ferplus_votes.csv), from FERPLUS_PATH."""
    env = os.environ.get("FERPLUS_PATH")
    if not env or not Path(env).is_file():
        pytest.skip("real FER+ votes not available: set FERPLUS_PATH to ferplus_votes.csv to run this test")
    return Path(env)
