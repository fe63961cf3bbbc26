"""The test suite finds the real data where the study does, and its last line says what it used or skipped."""

from __future__ import annotations

from types import SimpleNamespace

import conftest
import pytest

from fer_helpers.core import paths


@pytest.fixture
def fresh_lookup():
    conftest.real_fer2013.cache_clear()
    conftest.real_ferplus.cache_clear()
    yield
    conftest.real_fer2013.cache_clear()
    conftest.real_ferplus.cache_clear()


def test_fer2013_and_the_votes_are_found_in_data_without_environment_variables(tmp_path, monkeypatch, fresh_lookup):
    for name in ("FER2013_PATH", "FERPLUS_PATH"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(paths, "DATA_DIR", tmp_path)
    assert conftest.real_fer2013() == (None, f"no FER-2013: {conftest.WHERE_FER2013}")
    (tmp_path / "fer2013.csv").write_text("emotion,pixels,Usage\n")
    (tmp_path / "ferplus_votes.csv").write_text("votes\n")
    conftest.real_fer2013.cache_clear()
    assert conftest.real_fer2013() == (tmp_path / "fer2013.csv", f"FER-2013 from {tmp_path / 'fer2013.csv'}")
    assert conftest.real_ferplus()[0] == tmp_path / "ferplus_votes.csv"


def test_a_wrong_environment_variable_is_the_reason_given(tmp_path, monkeypatch, fresh_lookup):
    monkeypatch.setenv("FER2013_PATH", str(tmp_path / "nowhere.zip"))
    path, why = conftest.real_fer2013()
    assert path is None and why.startswith("FER2013_PATH names no data set") and "nowhere.zip" in why


def _report(name: str, skipped: str | None = None, real: bool = True) -> SimpleNamespace:
    return SimpleNamespace(
        nodeid=f"tests/test_x.py::{name}",
        keywords={"fer2013": 1} if real else {},
        skipped=skipped is not None,
        longrepr=("conftest.py", 1, f"Skipped: {skipped}") if skipped else None,
    )


def test_the_summary_line_counts_what_ran_and_what_was_skipped(monkeypatch):
    monkeypatch.setattr(conftest, "real_fer2013", lambda: (None, "no FER-2013: put it in data/"))
    monkeypatch.setattr(conftest, "real_ferplus", lambda: (None, "no votes"))
    reports = [_report("a", "no FER-2013: put it in data/"), _report("b", "no votes"), _report("c", real=False)]
    assert conftest.real_data_line(reports) == (
        "real data: 0 of 2 real-data tests ran; 2 skipped: no FER-2013: put it in data/; no votes"
    )
    assert conftest.real_data_line([_report("c", real=False)]) is None  # none collected: nothing to say
    monkeypatch.setattr(conftest, "real_fer2013", lambda: ("data/fer2013.zip", "FER-2013 from data/fer2013.zip"))
    line = conftest.real_data_line([_report("a"), _report("a"), _report("b", "no votes")])  # setup and call
    assert line == "real data: 1 of 2 real-data tests ran on FER-2013 from data/fer2013.zip; 1 skipped: no votes"
