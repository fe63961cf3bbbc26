"""Accuracy against compute: the frame read from metrics.json, the budget sentences, the published costs."""

from __future__ import annotations

import numpy as np
import pytest
from test_metrics import fer_labels, make_preds, make_result

from fer_helpers.analysis import cost
from fer_helpers.publish.summary import model_entry


def _entry(accuracy: float, seconds: float, precision: str = "32-true") -> dict:
    block = {"accuracy": accuracy, "accuracy_ci95": [accuracy - 0.01, accuracy + 0.01]}
    return {"private_test": block, "train_seconds": seconds, "precision": precision, "device": "cpu (2 threads)"}


METRICS = {
    "models": {
        "hog_svm": _entry(0.43, 60),
        "baseline_cnn": _entry(0.60, 1400),
        "model_b": _entry(0.67, 5000, "bf16-mixed"),
        "model_b_ensemble": _entry(0.70, 15000),  # costs its three seeds: not a point of its own
        "resnet_fer": _entry(0.71, 90000),
    }
}


def test_the_frame_has_one_row_per_trained_model_cheapest_first():
    frame = cost.compute_frame(METRICS)
    assert list(frame["name"]) == ["hog_svm", "baseline_cnn", "model_b", "resnet_fer"]
    assert frame["hours"].tolist() == pytest.approx([60 / 3600, 1400 / 3600, 5000 / 3600, 25.0])
    assert frame["main"].all()


def test_each_budget_buys_the_most_accurate_model_that_fits_in_it():
    answers = cost.budget_answers(cost.compute_frame(METRICS), "a 2-core CPU")
    assert answers == [
        "10 minutes of a 2-core CPU: HOG + SVM at 43.0% (42.0%-44.0%), trained in 60 s in float32.",
        "1 hour of a 2-core CPU: Baseline CNN at 60.0% (59.0%-61.0%), trained in 23 minutes in float32.",
        "10 hours of a 2-core CPU: Model B at 67.0% (66.0%-68.0%), trained in 83 minutes in bf16 mixed.",
    ]
    nothing = cost.budget_answers(cost.compute_frame({"models": {"resnet_fer": _entry(0.7, 90000)}}), "x")
    assert nothing[0] == "10 minutes of x: no model of this run trains that fast."


def test_a_published_cost_counts_every_training_crop():
    anchor = cost.PUBLISHED_COSTS[0]
    assert anchor.train_images == anchor.epochs * 28_709 * anchor.crops_per_face
    assert cost.published_frame().loc[0, "training crops (M)"] == pytest.approx(anchor.train_images / 1e6, abs=0.05)


def test_a_models_training_images_are_its_fastest_seeds_epochs_times_the_faces(tmp_path):
    y = fer_labels("PrivateTest")
    labels = {"PrivateTest": y}

    def preds(seed: int) -> dict:
        return {"PrivateTest": make_preds(y, 0.6, seed=seed)}

    runs = [
        make_result(tmp_path, "model_b", preds(seed), labels, seed, extra={"stopped_epoch": epochs})
        for seed, epochs in ((0, 50), (1, 40))
    ]
    runs[0].train_seconds, runs[1].train_seconds = 100.0, 200.0
    entry = model_entry(runs, n_train=1000)
    assert entry["train_images"] == 50 * 1000 and [s["epochs"] for s in entry["per_seed"]] == [50, 40]
    crowd = make_result(
        tmp_path, "model_b_crowd", preds(2), labels, 2, extra={"stopped_epoch": 3, "crowd_train_faces": 900}
    )
    assert model_entry([crowd], n_train=1000)["train_images"] == 3 * 900  # the faces with votes
    hog = make_result(tmp_path, "hog_svm", preds(3), labels, None)
    assert model_entry([hog], n_train=1000)["train_images"] == 1000  # one pass over the faces
    assert np.isfinite(entry["train_seconds"])
