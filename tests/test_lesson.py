"""The lesson's record: built from a classroom run folder, kept to the latest two runs, written into the README."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from fer_helpers import lesson
from fer_helpers.claims import ABLATION_LEARNED
from fer_helpers.markdown import format_count
from fer_helpers.profiles import get_profile


def _run_folder(path, *, seconds=(10.0, 100.0), profile="classroom", fresh=True, every=True, status="ok"):
    (path / "reports" / "tables").mkdir(parents=True)
    notebooks = [
        {"notebook": "01_data_exploration", "seconds": seconds[0], "status": "ok"},
        {"notebook": "05_evaluation", "seconds": seconds[1], "status": status},
        {"notebook": "05_evaluation", "seconds": 5.0, "status": "ok"},  # the report pass
    ]
    timings = {
        "profile": profile,
        "data_path": "/data/fer2013.zip",
        "synthetic": False,
        "created": "2026-12-02T00:00:00+0000",
        "total_seconds": sum(t["seconds"] for t in notebooks),
        "notebooks": notebooks,
        "fresh_run_folder": fresh,
        "every_notebook": every,
    }
    (path / "timings.json").write_text(json.dumps(timings))
    block = {"accuracy": 0.5, "accuracy_ci95": [0.48, 0.52]}
    metrics = {
        "data": {"sha256": "ab" * 32},
        "git_commit": "0123456",
        "models": {
            "hog_svm": {"private_test": {"accuracy": 0.43, "accuracy_ci95": [0.41, 0.45]}},
            "model_b": {"private_test": block},
            "baseline_cnn": {
                "private_test": {"accuracy": 0.47, "accuracy_ci95": [0.45, 0.49]},
                "images_per_second": 400.0,
                "precision": "bf16-mixed",
            },
            "model_b_no_bn": {"private_test": block},  # not a main model: left out
        },
        "claims": [
            {
                "claim": "Model B is more accurate than HOG + SVM",
                "verdict": "direction reproduced, size not",
                "detail": "+7.0 points; McNemar p = 1e-9",
                "basis": "x",
            },
            {"claim": "HOG + SVM accuracy lies in 35-40%", "verdict": "reproduced", "detail": "d", "basis": "y"},
        ],
    }
    (path / "reports" / "metrics.json").write_text(json.dumps(metrics))
    pd.DataFrame(
        [
            {"model": "model_b", "split": "PublicTest", "change": "full Model B (reference)", "accuracy": 0.3},
            {"model": "model_b", "split": "PrivateTest", "change": "full Model B (reference)", "accuracy": 0.31},
            {"model": "model_b_no_bn", "split": "PublicTest", "change": "no BatchNorm", "accuracy": 0.2},
        ]
    ).to_csv(path / "reports" / "tables" / "ablation.csv", index=False)
    return path


def test_a_lesson_run_is_summarised_from_its_folder(tmp_path):
    run = lesson.lesson_run(_run_folder(tmp_path))
    assert run["notebooks"] == {"01_data_exploration": 10.0, "05_evaluation": 105.0}  # both passes of 05
    assert set(run["models"]) == {"hog_svm", "baseline_cnn", "model_b"}
    assert run["models"]["baseline_cnn"]["train_images_per_second"] == 400.0
    assert run["models"]["baseline_cnn"]["precision"] == "bf16-mixed"
    assert [o["claim"] for o in run["orderings"]] == ["Model B is more accurate than HOG + SVM"]
    assert run["ablation_reference"] == {"split": "PublicTest", "accuracy": 0.3, "learned_threshold": ABLATION_LEARNED}


@pytest.mark.parametrize(
    "change, reason",
    [
        ({"profile": "smoke"}, "not the lesson"),
        ({"fresh": False}, "not empty"),
        ({"every": False}, "selection"),
        ({"status": "failed"}, "failed"),
    ],
)
def test_only_a_whole_lesson_from_an_empty_folder_counts(tmp_path, change, reason):
    with pytest.raises(ValueError, match=reason):
        lesson.lesson_run(_run_folder(tmp_path, **change))


def test_the_record_keeps_the_latest_two_runs_and_the_readme_shows_them(tmp_path):
    record_path = tmp_path / "lesson.json"
    for i, first in enumerate((11.0, 22.0, 33.0)):
        record = lesson.record_lesson(_run_folder(tmp_path / f"run{i}", seconds=(first, 100.0)), record_path)
    assert [r["notebooks"]["01_data_exploration"] for r in record["runs"]] == [22.0, 33.0]
    assert json.loads(record_path.read_text()) == record
    stale = record | {"profile_settings": record["profile_settings"] | {"baseline_max_epochs": 99}}
    record_path.write_text(json.dumps(stale))  # runs of a lesson with other settings
    assert len(lesson.record_lesson(_run_folder(tmp_path / "run3"), record_path)["runs"]) == 1
    record_path.write_text(json.dumps(record))

    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{lesson.LESSON_START}\nstale block\n{lesson.LESSON_END}\nafter\n")
    full_run = {"models": {"baseline_cnn": {"images_per_second": 1150.0, "device": "cpu (2 threads)"}}}
    assert lesson.update_readme_lesson(readme, record, full_run)
    text = readme.read_text()
    assert "stale block" not in text and text.startswith("intro\n") and text.endswith("after\n")
    assert "| `01_data_exploration` | 22 | 33 |" in text
    assert "HOG + SVM 43.0%" in text and "Model B 50.0%" in text
    assert "Model B is more accurate than HOG + SVM: direction reproduced, size not" in text
    assert "30.0% on PublicTest, below the 45%" in text and "withholds its verdicts" in text
    # the full run's entry does not say its precision: no warning
    assert (
        "trained at 400 images/s in this lesson in bf16 mixed, against 1,150 in the committed full run on cpu "
        "(2 threads)." in text
    )
    in_float32 = {"models": {"baseline_cnn": full_run["models"]["baseline_cnn"] | {"precision": "32-true"}}}
    assert (
        "images/s in this lesson in bf16 mixed, against 1,150 in the committed full run on cpu (2 threads) in "
        "float32: different precisions" in lesson.lesson_block(record, in_float32)
    )
    in_bf16 = {"models": {"baseline_cnn": full_run["models"]["baseline_cnn"] | {"precision": "bf16-mixed"}}}
    assert "different precisions" not in lesson.lesson_block(record, in_bf16)
    assert "2 run(s) of 2.1 and 2.3 minutes, within the 12 minutes" in text
    assert "Model B at 50.0% on PrivateTest, below the 55% it should reach" in text
    assert not lesson.update_readme_lesson(readme, record, full_run)  # unchanged: nothing written


def test_a_new_full_run_refreshes_the_lesson_block_from_the_committed_record(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text(f"{lesson.LESSON_START}\nstale\n{lesson.LESSON_END}\n")
    full_run = {"models": {"baseline_cnn": {"images_per_second": 999.0, "device": "cpu (2 threads)"}}}
    assert not lesson.refresh_readme_lesson(readme, full_run, tmp_path / "no-lesson.json")
    assert "stale" in readme.read_text()  # no record: left as it is
    record_path = tmp_path / "lesson.json"
    lesson.record_lesson(_run_folder(tmp_path / "run"), record_path)
    assert lesson.refresh_readme_lesson(readme, full_run, record_path)
    assert "stale" not in readme.read_text() and "against 999 in the committed full run" in readme.read_text()


def test_a_readme_without_the_markers_is_an_error(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("no markers\n")
    with pytest.raises(ValueError, match="lesson:start"):
        lesson.update_readme_lesson(readme, lesson.record_lesson(_run_folder(tmp_path / "run"), tmp_path / "l.json"))


def test_the_table_says_what_each_notebook_trains_under_the_profile():
    profile = get_profile("classroom")
    doing = lesson.what_each_notebook_does(profile)
    assert f"{profile.baseline_max_epochs} epochs" in doing["03"]
    assert f"{format_count(profile.ours_max_epochs, 'epoch')}, with" in doing["04"]
    assert f"{format_count(profile.ablation_epochs, 'epoch')} each on {profile.side_train_per_class:,}" in doing["07"]
    for epochs, words in ((1, "1 epoch each"), (2, "2 epochs each")):
        assert words in lesson.what_each_notebook_does(get_profile("classroom", ablation_epochs=epochs))["07"]
    assert " and ".join(f"{c:g}" for c in profile.hog_c_grid) in doing["02"]


def test_the_targets_are_judged_on_every_run_time_and_the_latest_accuracy():
    def run(seconds, accuracy):
        return {"total_seconds": seconds, "models": {"model_b": {"accuracy": accuracy, "accuracy_ci95": [0, 1]}}}

    fast_good = {"runs": [run(600.0, 0.50), run(700.0, 0.56)]}
    assert "within the 12 minutes" in lesson.target_verdicts(fast_good)
    assert "56.0% on PrivateTest, at or above the 55%" in lesson.target_verdicts(fast_good)
    one_slow = {"runs": [run(600.0, 0.56), run(721.0, 0.56)]}
    assert "10.0 and 12.0 minutes, over the 12 minutes" in lesson.target_verdicts(one_slow)
    assert "no Model B in the latest run" in lesson.target_verdicts({"runs": [{"total_seconds": 60.0, "models": {}}]})
    assert "cosine schedule" in lesson.what_each_notebook_does(get_profile("classroom"))["04"]
