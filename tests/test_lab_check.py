"""scripts/lab_check.py's verdicts and summary, without a browser or a Jupyter server."""

import importlib.util
import json
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "lab_check.py"


@pytest.fixture(scope="module")
def lab_check():
    spec = importlib.util.spec_from_file_location("lab_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["lab_check"] = module  # its dataclass looks its module up there
    spec.loader.exec_module(module)
    yield module
    del sys.modules["lab_check"]


def figure(width: int) -> dict:
    return {"cell": 3, "natural": [width, 300], "shown": [width, 300]}


@pytest.mark.parametrize(
    ("changes", "failing"),
    [
        ({}, False),
        ({"stderr": [{"cell": 1, "first": "import torch", "lines": 3, "head": "banner"}]}, False),
        ({"errors": [{"cell": 2, "first": "study = setup()", "ename": "ValueError", "evalue": "bad"}]}, True),
        ({"problem": "timed out after 20 min in `fit()`"}, True),
        ({"not_run": ["fit()"]}, True),
        ({"figures": []}, True),
        ({"figures": [], "draws": False}, False),
        ({"figures": [figure(400), figure(0)]}, True),
    ],
)
def test_verdict(lab_check, changes, failing):
    result = lab_check.NotebookResult("01_data_exploration", code_cells=5, executed=5, figures=[figure(400)])
    for name, value in changes.items():
        setattr(result, name, value)
    assert bool(result.failures) == failing


def test_error_names_its_cell(lab_check):
    error = {"cell": 7, "first": "fig = plots.plot_curves(history)", "ename": "KeyError", "evalue": "'loss'"}
    result = lab_check.NotebookResult("03_baseline_cnn", errors=[error], not_run=["later()"])
    assert result.failures == ["cell 7 `fig = plots.plot_curves(history)`: KeyError: 'loss'"]


def test_summary_table_has_a_row_per_notebook(lab_check):
    results = [
        lab_check.NotebookResult("01_data_exploration", 19, 19, figures=[figure(800)], seconds=27.5),
        lab_check.NotebookResult("02_hog_svm", 17, 3, problem="the kernel died"),
    ]
    rows = lab_check.summary_table(results).splitlines()
    assert len(rows) == 4
    assert rows[2].split() == ["01_data_exploration", "19/19", "0", "0", "1", "27.5", "ok"]
    assert rows[3].split()[-1] == "FAIL"


def test_draws_figures(lab_check, tmp_path):
    def notebook(*sources: str) -> Path:
        cells = [{"cell_type": "code", "source": [s]} for s in sources]
        path = tmp_path / f"{len(list(tmp_path.iterdir()))}.ipynb"
        path.write_text(json.dumps({"cells": [{"cell_type": "markdown", "source": ["plt.show()"]}, *cells]}))
        return path

    assert lab_check.draws_figures(notebook("x = 1", "fig = plots.plot_class_counts(counts)"))
    assert lab_check.draws_figures(notebook("plt.imshow(face)"))
    assert not lab_check.draws_figures(notebook("x = 1", "print(implots)"))
