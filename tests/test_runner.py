"""The report runner executes numbered notebooks in order, injects parameters, times them and names failures."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest

from fer_helpers.core.paths import REPORT_STEP
from fer_helpers.data import fer2013
from fer_helpers.orchestrate import runner
from fer_helpers.orchestrate.runner import ReportError, list_notebooks, run_report

PARAMETERS = 'profile = "classroom"\ndata_path = None\nrun_dir = None\nfresh = False'


def write_notebook(path, *sources: str) -> None:
    """A notebook whose first code cell is the tagged parameters cell, followed by `sources`."""
    params = nbformat.v4.new_code_cell(PARAMETERS, metadata={"tags": ["parameters"]})
    cells = [nbformat.v4.new_markdown_cell("# A test notebook"), params]
    cells += [nbformat.v4.new_code_cell(src) for src in sources]
    nb = nbformat.v4.new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)


@pytest.fixture
def notebooks(tmp_path):
    folder = tmp_path / "notebooks"
    folder.mkdir()
    write_notebook(
        folder / "01_write.ipynb",
        "from pathlib import Path\nPath(run_dir).mkdir(parents=True, exist_ok=True)",
        "(Path(run_dir) / 'order.txt').write_text(f'01 {profile} {fresh} {data_path}\\n')",
    )
    write_notebook(
        folder / "02_append.ipynb",
        "from pathlib import Path\nwith open(Path(run_dir) / 'order.txt', 'a') as f:\n    f.write('02\\n')",
    )
    (folder / "scratch.ipynb").write_text("not a numbered notebook, never run")
    return folder


def test_list_notebooks_orders_and_selects(notebooks):
    assert [p.stem for p in list_notebooks(None, notebooks)] == ["01_write", "02_append"]
    assert [p.stem for p in list_notebooks(["02"], notebooks)] == ["02_append"]
    with pytest.raises(ValueError, match="no notebook matches \\['07'\\]"):
        list_notebooks(["01", "07"], notebooks)


def test_run_report_executes_in_order_with_parameters(no_fer, notebooks, tmp_path, capsys):
    run_dir = run_report("smoke", run_dir=tmp_path / "run", fresh=True, notebook_dir=notebooks)
    assert run_dir == (tmp_path / "run").resolve()
    # The injected parameters replace the notebook's defaults; no data was found, so the runner's decision
    # (synthetic faces) is passed on and no notebook looks for the data again.
    assert (run_dir / "order.txt").read_text() == "01 smoke True synthetic\n02\n"
    assert sorted(p.name for p in (run_dir / "executed").iterdir()) == ["01_write.ipynb", "02_append.ipynb"]
    timings = json.loads((run_dir / "timings.json").read_text())
    # the notebooks in their numbered order, then the report, written from what they saved
    assert [t["notebook"] for t in timings["notebooks"]] == ["01_write", "02_append", REPORT_STEP]
    assert [t["status"] for t in timings["notebooks"]] == ["ok", "ok", "skipped"]  # no result: no report
    assert all(t["seconds"] > 0 for t in timings["notebooks"])
    assert timings["profile"] == "smoke" and timings["synthetic"] is True
    out, err = capsys.readouterr()
    assert "[2/3] 02_append ... " in out and " s\n" in out
    # these notebooks saved no result: the last step says so and writes no report
    assert f"[3/3] {REPORT_STEP} ..." in out and f"{REPORT_STEP}: nothing written. No saved results" in out
    assert not (run_dir / "reports" / "REPORT.md").exists()
    assert "SYNTHETIC FACES - NOT FER-2013 RESULTS" in err


def test_the_kernels_talk_over_encrypted_sockets_and_say_nothing_on_the_terminal(no_fer, notebooks, tmp_path, capfd):
    """The kernels' own stderr is the terminal's: without encryption each would warn there about plain TCP."""
    run_report("smoke", run_dir=tmp_path / "run", notebook_dir=notebooks)
    err = capfd.readouterr().err
    assert "without encryption" not in err and "[IPKernelApp]" not in err


def test_what_a_notebook_reports_as_progress_shows_on_the_runners_terminal(no_fer, notebooks, tmp_path, capsys):
    write_notebook(
        notebooks / "03_train.ipynb",
        "from fer_helpers.core import progress",
        "progress.report('model_b epoch 1/2: loss 1.5', done=True)\nprint('only in the notebook')",
    )
    run_report("smoke", run_dir=tmp_path / "run", notebooks=["03"], notebook_dir=notebooks)
    out = capsys.readouterr().out
    assert "[1/2] 03_train model_b epoch 1/2: loss 1.5\n" in out and "only in the notebook" not in out
    assert not list((tmp_path / "run").glob("*.log"))  # nothing of it left in the run folder


def test_exercise_cells_run_only_when_asked(no_fer, notebooks, tmp_path):
    exercise = "with open(Path(run_dir) / 'order.txt', 'a') as f:\n    f.write('exercise\\n')"
    nb = nbformat.read(notebooks / "02_append.ipynb", as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell(exercise, metadata={"tags": [runner.EXERCISE_TAG]}))
    nbformat.write(nb, notebooks / "02_append.ipynb")
    report = run_report("smoke", run_dir=tmp_path / "report", notebook_dir=notebooks)
    assert (report / "order.txt").read_text().splitlines()[-1] == "02"
    skipped = nbformat.read(report / "executed" / "02_append.ipynb", as_version=4).cells[-1]
    assert skipped.source == exercise and not skipped.get("outputs")  # shown to the reader, not run
    lesson = run_report("smoke", run_dir=tmp_path / "lesson", notebook_dir=notebooks, exercises=True)
    assert (lesson / "order.txt").read_text().splitlines()[-1] == "exercise"


def test_failure_names_notebook_cell_and_error(no_fer, notebooks, tmp_path):
    write_notebook(
        notebooks / "03_broken.ipynb",
        "x = 1",
        "# the faulty cell\nraise ValueError('no faces in this split')",
        "never = 'reached'",
    )
    with pytest.raises(ReportError) as info:
        run_report("smoke", run_dir=tmp_path / "run", notebooks=["03"], notebook_dir=notebooks)
    message = str(info.value)
    partial = (tmp_path / "run" / "executed" / "03_broken.ipynb").resolve()
    # Cell 3 of the source notebook: markdown (0), parameters (1), "x = 1" (2), the faulty cell (3).
    assert "03_broken.ipynb failed in cell 3" in message
    assert "`# the faulty cell`" in message
    assert "ValueError: no faces in this split" in message
    assert str(partial) in message and partial.exists()
    timings = json.loads((tmp_path / "run" / "timings.json").read_text())
    assert timings["notebooks"][0]["status"] == "failed"


def test_given_missing_data_path_fails_before_running(notebooks, tmp_path):
    with pytest.raises(fer2013.FERDataError, match="not-there.zip: no such file"):
        run_report("smoke", data_path=tmp_path / "not-there.zip", run_dir=tmp_path / "run", notebook_dir=notebooks)
    assert not (tmp_path / "run").exists()


def test_unknown_profile_is_rejected(notebooks, tmp_path):
    with pytest.raises(ValueError, match="unknown profile"):
        run_report("huge", run_dir=tmp_path / "run", notebook_dir=notebooks)


def test_ensure_kernel_runs_this_interpreter():
    from jupyter_client.kernelspec import KernelSpecManager

    name = runner.ensure_kernel()
    argv0 = KernelSpecManager().get_kernel_spec(name).argv[0]
    assert argv0.startswith("python") or runner._same_file(argv0, __import__("sys").executable)


@pytest.mark.trains
def test_data_exploration_notebook_runs_on_synthetic_faces(tmp_path):
    run_dir = run_report("smoke", data_path="synthetic", run_dir=tmp_path / "run", notebooks=["01"])
    assert (run_dir / "executed" / "01_data_exploration.ipynb").exists()
    figures = {p.name for p in (run_dir / "reports" / "figures").iterdir()}
    assert figures == {"class_counts.png", "mean_faces.png", "pixel_histograms.png"}  # never individual faces
    counts = (run_dir / "reports" / "tables" / "class_counts.csv").read_text().splitlines()
    assert counts[0].endswith(",data") and counts[2].startswith("Disgust,60,20,20,436,56,55,synthetic")


def test_a_report_on_fer2013_without_crowd_votes_skips_the_label_noise_notebook(tmp_path, monkeypatch, capsys):
    from fer_helpers.orchestrate import runner

    monkeypatch.delenv("FERPLUS_PATH", raising=False)
    from fer_helpers.core import paths

    monkeypatch.setattr(paths, "DATA_DIR", tmp_path / "empty")
    fer = tmp_path / "fer" / "fer2013.zip"
    fer.parent.mkdir()
    fer.write_bytes(b"")
    paths = [Path(f"{n}.ipynb") for n in ("05_evaluation", "07_ablation", "08_label_noise")]
    assert [p.stem for p in runner.without_vote_notebooks(paths, fer)] == ["05_evaluation", "07_ablation"]
    assert "Skipping 08_label_noise: no FER+ crowd votes" in capsys.readouterr().out
    (fer.parent / "ferplus_votes.csv").write_text("entry\n")
    assert runner.without_vote_notebooks(paths, fer) == paths
