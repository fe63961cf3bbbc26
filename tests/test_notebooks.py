"""The whole study, every notebook, executed by the report runner under the smoke profile."""

from __future__ import annotations

import json
import os

import nbformat
import pytest

from fer_helpers.runner import list_notebooks, run_report


@pytest.mark.trains
def test_every_notebook_runs_under_the_smoke_profile(tmp_path):
    """On FER-2013 where FER2013_PATH is set, else on the synthetic faces; nothing is written to reports/."""
    data_path = os.environ.get("FER2013_PATH") or "synthetic"
    run_dir = run_report("smoke", data_path=data_path, run_dir=tmp_path / "run")

    names = [p.name for p in list_notebooks(None)]
    assert len(names) >= 7
    assert sorted(p.name for p in (run_dir / "executed").iterdir()) == sorted(names)
    for name in names:
        executed = nbformat.read(run_dir / "executed" / name, as_version=4)
        errors = [
            o
            for c in executed.cells
            if c.cell_type == "code"
            for o in c.get("outputs", [])
            if o.get("output_type") == "error"
        ]
        assert not errors, f"{name}: {errors[0]['ename']}: {errors[0]['evalue']}"

    timings = json.loads((run_dir / "timings.json").read_text())
    assert all(t["status"] == "ok" for t in timings["notebooks"])
    # the evaluation notebook runs again last, so that the report includes the ablation trained after it
    assert [t["notebook"] for t in timings["notebooks"]] == [n.removesuffix(".ipynb") for n in names] + [
        "05_evaluation"
    ]
    reports = run_dir / "reports"
    metrics = json.loads((reports / "metrics.json").read_text())
    assert metrics["profile"] == "smoke"
    assert {"hog_svm", "baseline_cnn", "model_b", "resnet_fer"} <= set(metrics["models"])
    assert (reports / "REPORT.md").read_text().strip()
    assert len(list((reports / "figures").glob("*.png"))) >= 10
