"""The whole study, every notebook and its exercises, executed by the report runner under the smoke profile."""

from __future__ import annotations

import json
import os
from pathlib import Path

import nbformat
import pytest

from fer_helpers.core.paths import REPORT_STEP
from fer_helpers.orchestrate.runner import EXERCISE_TAG, list_notebooks, run_report

# Cells put around a notebook's exercises: what the report and the later notebooks read (results/, reports/) must
# be the same, file for file, after the exercises as before them.
SNAPSHOT = """import pathlib as _pathlib
def _study_files(root):
    root = _pathlib.Path(root)
    return sorted((str(p.relative_to(root)), p.stat().st_size, p.stat().st_mtime_ns)
                  for sub in ("results", "reports") for p in (root / sub).rglob("*") if p.is_file())
_before_exercises = _study_files(study.run_dir)"""
CHECK = """_changed = sorted(set(_study_files(study.run_dir)) ^ set(_before_exercises))
assert not _changed, f'the exercises changed the study results: {_changed}'"""


def with_exercise_check(source: Path, target: Path) -> None:
    """A copy of a notebook whose exercise cells are preceded by SNAPSHOT and followed by CHECK."""
    nb = nbformat.read(source, as_version=4)
    tagged = [i for i, c in enumerate(nb.cells) if EXERCISE_TAG in c.get("metadata", {}).get("tags", [])]
    if tagged:
        nb.cells.insert(tagged[-1] + 1, nbformat.v4.new_code_cell(CHECK))
        nb.cells.insert(tagged[0], nbformat.v4.new_code_cell(SNAPSHOT))
    nbformat.write(nb, target)


@pytest.mark.trains
def test_every_notebook_and_its_exercises_run_under_the_smoke_profile(tmp_path):
    """On FER-2013 where FER2013_PATH is set, else on the synthetic faces; nothing is written to reports/, and
    the exercises leave the study's results and reports as they found them."""
    data_path = os.environ.get("FER2013_PATH") or "synthetic"
    notebook_dir = tmp_path / "notebooks"
    notebook_dir.mkdir()
    for path in list_notebooks(None):
        with_exercise_check(path, notebook_dir / path.name)
    run_dir = run_report(
        "smoke", data_path=data_path, run_dir=tmp_path / "run", notebook_dir=notebook_dir, exercises=True
    )

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
    # the notebooks run in their numbered order; the report is written last, from what every notebook saved
    stems = [n.removesuffix(".ipynb") for n in names]
    assert [t["notebook"] for t in timings["notebooks"]] == [*stems, REPORT_STEP]
    reports = run_dir / "reports"
    metrics = json.loads((reports / "metrics.json").read_text())
    assert metrics["profile"] == "smoke"
    assert {"hog_svm", "baseline_cnn", "model_b", "resnet_fer"} <= set(metrics["models"])
    assert (reports / "REPORT.md").read_text().strip()
    assert len(list((reports / "figures").glob("*.png"))) >= 10


@pytest.mark.trains
def test_label_noise_notebook_renders_from_saved_runs_alone(tmp_path):
    """With train = False, notebook 08 trains nothing: in an empty run folder it names the crowd twin still to
    train and shows no crowd run, without an error."""
    import papermill

    from fer_helpers.orchestrate.runner import ensure_kernel

    output, run_dir = tmp_path / "08.ipynb", tmp_path / "run"
    notebook = next(p for p in list_notebooks(None) if p.name.startswith("08_"))
    parameters = {"profile": "smoke", "data_path": "synthetic", "run_dir": str(run_dir), "train": False}
    papermill.execute_notebook(
        notebook,
        output,
        parameters=parameters,
        kernel_name=ensure_kernel(),
        cwd=notebook.parent,
        skip_cells_with_tag=EXERCISE_TAG,
        progress_bar=False,
    )
    assert not list((run_dir / "results").glob("*/result.json"))  # nothing trained
    shown = json.dumps([c.get("outputs", []) for c in nbformat.read(output, as_version=4).cells])
    assert "Not trained yet" in shown and "the crowd twin of Baseline CNN" in shown
    assert "Nothing to compare: this run folder has no crowd run." in shown


@pytest.mark.trains
def test_the_data_notebooks_exercises_print_no_warnings_on_fer2013(fer_path, tmp_path):
    """Notebook 01's exercises as a class runs them (classroom profile, FER-2013): no warning blocks, such as the
    ConvergenceWarning that a logistic regression on raw pixels gave."""
    run_dir = run_report("classroom", data_path=fer_path, run_dir=tmp_path / "run", notebooks=["01"], exercises=True)
    executed = nbformat.read(run_dir / "executed" / "01_data_exploration.ipynb", as_version=4)
    exercises = [c for c in executed.cells if EXERCISE_TAG in c.get("metadata", {}).get("tags", [])]
    assert len(exercises) >= 3
    stderr = ["".join(o.get("text", "")) for c in exercises for o in c.outputs if o.get("name") == "stderr"]
    assert not stderr, stderr
