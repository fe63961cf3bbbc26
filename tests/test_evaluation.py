"""The report run's last step writes the evaluation's tables, figures, metrics.json and REPORT.md from saved runs."""

from __future__ import annotations

import json

import matplotlib.pyplot as plt
import pytest

from fer_helpers.orchestrate import steps
from fer_helpers.orchestrate.runner import ReportError, write_report_step
from fer_helpers.orchestrate.study import setup
from fer_helpers.publish.evaluation import NoResultsError, evaluate, write_report


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A smoke run folder on the synthetic faces with HOG + SVM and the baseline CNN trained (seconds)."""
    run_dir = tmp_path_factory.mktemp("run")
    study = setup("smoke", "synthetic", run_dir)
    steps.hog_svm_runs(study)
    steps.cnn_runs(study, "baseline_cnn")
    return study


@pytest.mark.trains
def test_the_last_step_writes_every_table_figure_and_the_report(trained, tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("untouched\n", encoding="utf-8")
    written = write_report(trained, readme)
    reports = trained.reports_dir
    assert written == [reports / "metrics.json", reports / "REPORT.md"]  # a smoke run leaves the README alone
    assert readme.read_text(encoding="utf-8") == "untouched\n"
    metrics = json.loads((reports / "metrics.json").read_text(encoding="utf-8"))
    assert set(metrics["models"]) >= {"hog_svm", "baseline_cnn"} and metrics["profile"] == "smoke"
    figures = {p.stem for p in (reports / "figures").glob("*.png")}
    assert {"against_paper", "confusion_hog_svm", "confusion_baseline_cnn", "mcnemar_pvalues", "reliability"} <= figures
    tables = {p.stem for p in (reports / "tables").glob("*.csv")}
    assert {"comparison", "per_class_f1", "mcnemar", "calibration", "near_duplicates", "paper_claims"} <= tables
    text = (reports / "REPORT.md").read_text(encoding="utf-8")
    # every figure linked under its caption, the extra tables under theirs, in the evaluation's order
    assert "![Confusion matrix of Baseline CNN on PrivateTest](figures/confusion_baseline_cnn.png)" in text
    assert text.index("## McNemar tests between models (PrivateTest)") < text.index("## The paper's claims, tested")
    assert not plt.get_fignums()  # each figure closed once saved


@pytest.mark.trains
def test_the_notebooks_methods_keep_what_they_made_for_the_report(trained):
    evaluation = evaluate(trained)
    labels, preds = evaluation.predictions()
    assert set(preds) == {"hog_svm", "baseline_cnn"} and all(len(p) == len(labels) for p in preds.values())
    table = evaluation.mcnemar()
    assert list(evaluation.tables) == ["McNemar tests between models (PrivateTest)"] and len(table) == 1
    assert list(evaluation.figures) == ["McNemar p-values between models on PrivateTest"]
    assert evaluation.seeds().empty and len(evaluation.tables) == 1  # one seed each: no spread table for REPORT.md
    plt.close("all")


def test_an_empty_run_folder_writes_nothing_and_says_which_notebooks_train(no_fer, tmp_path, capsys):
    study = setup("smoke", "synthetic", tmp_path / "run")
    with pytest.raises(NoResultsError, match="No saved results .* Run notebooks 02_hog_svm, 03_baseline_cnn"):
        evaluate(study)
    assert write_report_step("smoke", "synthetic", tmp_path / "run") == []
    assert "report: nothing written. No saved results" in capsys.readouterr().out
    assert not (tmp_path / "run" / "reports" / "REPORT.md").exists()


@pytest.mark.trains
def test_a_failure_while_writing_names_the_run_folder(trained, monkeypatch, capsys):
    from fer_helpers.publish import report

    def broken(*args, **kwargs):
        raise KeyError("accuracy")

    monkeypatch.setattr(report, "write_report_md", broken)
    with pytest.raises(ReportError, match=f"Writing the report from {trained.run_dir} failed: KeyError"):
        write_report_step("smoke", "synthetic", trained.run_dir)
    assert "Traceback" in capsys.readouterr().err  # where it failed, not only what


@pytest.mark.trains
def test_the_command_writes_the_report_alone(trained, tmp_path, capsys):
    from fer_helpers.orchestrate.cli import main

    assert (
        main(["report", "--write-only", "--profile", "smoke", "--data", "synthetic", "--run-dir", str(trained.run_dir)])
        == 0
    )
    assert "report: wrote" in capsys.readouterr().out and (trained.reports_dir / "REPORT.md").is_file()
    empty = tmp_path / "empty"
    assert main(["report", "--write-only", "--profile", "smoke", "--data", "synthetic", "--run-dir", str(empty)]) == 1
    assert "nothing written" in capsys.readouterr().out
    with pytest.raises(SystemExit):  # notebooks, or the report alone: not both
        main(["report", "--write-only", "--notebooks", "05"])
