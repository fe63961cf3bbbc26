"""Metrics against answers worked out by hand and scikit-learn's: per-class report, confusion, calibration, seeds.

Also the shared helpers of the statistics, claims and report tests: labels with FER-2013's class counts,
predictions with a chosen accuracy and confusions, and saved runs made from them.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import classification_report, confusion_matrix, f1_score

from fer_helpers.data.fer2013 import CLASS_NAMES, FER2013_COUNTS, NUM_CLASSES
from fer_helpers.data.results import RunResult, run_key
from fer_helpers.scoring.metrics import (
    against_chance,
    classification_metrics,
    confusion,
    describe_against_chance,
    expected_calibration_error,
    fit_temperature,
    per_class_report,
    reliability_table,
    softmax,
    top_confusions,
)
from fer_helpers.scoring.runs import ensemble_logits, ensemble_result, seed_summary

C = {name: i for i, name in enumerate(CLASS_NAMES)}


def fer_labels(split: str = "PrivateTest") -> np.ndarray:
    """Labels with FER-2013's per-class counts of one test split (3,589 images)."""
    return np.repeat(np.arange(NUM_CLASSES), FER2013_COUNTS[split])


def make_preds(labels: np.ndarray, accuracy, confusions: dict | None = None, seed: int = 0) -> np.ndarray:
    """Predictions right on a share `accuracy[c]` of class c (or one share for all); of each class's mistakes,
    the share confusions[c][1] goes to class confusions[c][0] and the rest cycles over the other classes."""
    rng = np.random.default_rng(seed)
    accuracy = np.broadcast_to(np.asarray(accuracy, dtype=float), (NUM_CLASSES,))
    preds = labels.copy()
    for c in range(NUM_CLASSES):
        members = rng.permutation(np.flatnonzero(labels == c))
        wrong = members[: round(len(members) * (1 - accuracy[c]))]
        others = [k for k in range(NUM_CLASSES) if k != c]
        target, share = (confusions or {}).get(c, (None, 0.0))
        n_target = round(len(wrong) * share)
        preds[wrong[:n_target]] = target if target is not None else 0
        rest = [k for k in others if k != target]
        preds[wrong[n_target:]] = np.resize(rng.permutation(rest), len(wrong) - n_target)
    return preds


def make_result(
    run_root: Path,
    model: str,
    preds: dict,
    labels: dict,
    seed: int | None = 0,
    *,
    params: int | None = 1000,
    config: dict | None = None,
    data_sha256: str = "abc",
    extra: dict | None = None,
    history: pd.DataFrame | None = None,
) -> RunResult:
    """A saved RunResult whose logits make `preds` the argmax (with some spread for calibration)."""
    config = {"seed": seed} | (config or {})
    key = run_key(model, config, data_sha256)
    rng = np.random.default_rng(0 if seed is None else seed)
    logits = {
        s: (np.eye(NUM_CLASSES)[p] * 2.0 + rng.normal(0, 0.3, (len(p), NUM_CLASSES))).astype(np.float32)
        for s, p in preds.items()
    }
    logits = {s: np.where(np.eye(NUM_CLASSES, dtype=bool)[preds[s]], z + 10, z) for s, z in logits.items()}
    result = RunResult(
        model=model,
        config=config,
        key=key,
        run_dir=Path(run_root) / "results" / f"{model}-{key}",
        data_sha256=data_sha256,
        logits=logits,
        labels=labels,
        metrics={s: classification_metrics(labels[s], preds[s]) for s in preds},
        seed=seed,
        params=params,
        train_seconds=12.0,
        images_per_second=1000.0,
        device="cpu",
        extra=extra or {},
        history=history,
    )
    result.save()
    return RunResult.load(result.run_dir)


# ---- per-class report, confusion matrix, top confusions -------------------------------------------------------


def test_per_class_report_matches_sklearn():
    labels = fer_labels()
    preds = make_preds(labels, 0.55, seed=3)
    ours = per_class_report(labels, preds)
    theirs = classification_report(labels, preds, target_names=list(CLASS_NAMES), output_dict=True, zero_division=0)
    assert list(ours.index) == list(CLASS_NAMES)
    for name in CLASS_NAMES:
        assert ours.loc[name, "precision"] == pytest.approx(theirs[name]["precision"])
        assert ours.loc[name, "recall"] == pytest.approx(theirs[name]["recall"])
        assert ours.loc[name, "f1"] == pytest.approx(theirs[name]["f1-score"])
        assert ours.loc[name, "support"] == theirs[name]["support"]
    assert ours["f1"].mean() == pytest.approx(theirs["macro avg"]["f1-score"])


def test_per_class_report_keeps_absent_classes_and_does_not_mutate():
    labels = np.array([0, 0, 3, 3, 3])
    preds = np.array([0, 3, 3, 3, 0])
    before = labels.copy(), preds.copy()
    report = per_class_report(labels, preds)
    assert len(report) == NUM_CLASSES and report.loc["Disgust", "support"] == 0 and report.loc["Disgust", "f1"] == 0
    assert report.loc["Happy", ["precision", "recall"]].tolist() == pytest.approx([2 / 3, 2 / 3])
    assert report.loc["Angry", ["precision", "recall", "f1"]].tolist() == pytest.approx([0.5, 0.5, 0.5])
    np.testing.assert_array_equal(labels, before[0])
    np.testing.assert_array_equal(preds, before[1])


@pytest.mark.parametrize("normalize", [None, "true", "pred", "all"])
def test_confusion_matches_sklearn(normalize):
    labels = fer_labels("PublicTest")
    preds = make_preds(labels, 0.5, seed=1)
    ours = confusion(labels, preds, normalize=normalize)
    theirs = confusion_matrix(labels, preds, labels=range(NUM_CLASSES), normalize=normalize)
    np.testing.assert_allclose(ours, theirs)
    if normalize == "true":
        np.testing.assert_allclose(ours.sum(axis=1), 1.0)


def test_confusion_empty_row_is_zero_and_bad_input_fails():
    norm = confusion(np.array([0, 0, 2]), np.array([0, 2, 2]), normalize="true")
    assert norm[1].sum() == 0 and norm[0, 2] == pytest.approx(0.5)
    with pytest.raises(ValueError, match="different images"):
        confusion(np.array([0, 1]), np.array([0]))
    with pytest.raises(ValueError, match="class indices"):
        confusion(np.array([0, 7]), np.array([0, 1]))
    with pytest.raises(ValueError, match="normalize"):
        confusion(np.array([0]), np.array([0]), normalize="rows")


def test_top_confusions_ranks_mistakes():
    labels = np.array([1] * 10 + [2] * 10)
    preds = np.array([1] * 4 + [0] * 5 + [2] + [2] * 7 + [5] * 3)
    top = top_confusions(labels, preds, k=2)
    assert list(top["true"]) == ["Disgust", "Fear"] and list(top["predicted"]) == ["Angry", "Surprise"]
    assert list(top["count"]) == [5, 3] and top["rate"].tolist() == pytest.approx([0.5, 0.3])
    assert list(top.index) == [1, 2]


# ---- calibration -------------------------------------------------------------------------------------------------


def confident(conf: float, n: int, n_right: int) -> tuple[np.ndarray, np.ndarray]:
    """n images, each predicted as class 0 with probability conf; the first n_right are truly class 0."""
    probs = np.full((n, NUM_CLASSES), (1 - conf) / (NUM_CLASSES - 1))
    probs[:, 0] = conf
    labels = np.where(np.arange(n) < n_right, 0, 1)
    return probs, labels


def test_ece_of_one_overconfident_bin():
    probs, labels = confident(0.9, 10, 7)  # says 90%, is right 70%
    assert expected_calibration_error(probs, labels) == pytest.approx(0.2)


def test_ece_weighs_bins_by_their_images():
    # 5 images at 95% confidence all right (gap 0.05), 5 at 55% with 1 right (gap 0.35): ECE = (0.05 + 0.35) / 2.
    p1, l1 = confident(0.95, 5, 5)
    p2, l2 = confident(0.55, 5, 1)
    probs, labels = np.vstack([p1, p2]), np.r_[l1, l2]
    assert expected_calibration_error(probs, labels, n_bins=15) == pytest.approx(0.2)
    table = reliability_table(probs, labels, n_bins=15)
    assert table["count"].sum() == 10 and (table["count"] > 0).sum() == 2
    filled = table[table["count"] > 0]
    assert filled["accuracy"].tolist() == pytest.approx([0.2, 1.0])
    assert filled["confidence"].tolist() == pytest.approx([0.55, 0.95])


def test_ece_is_zero_when_calibrated_and_rejects_logits():
    probs, labels = confident(0.8, 10, 8)
    assert expected_calibration_error(probs, labels) == pytest.approx(0.0)
    with pytest.raises(ValueError, match="softmax"):
        expected_calibration_error(probs * 3, labels)


def test_temperature_scaling_recovers_the_temperature_that_made_the_logits_overconfident():
    rng = np.random.default_rng(0)
    calibrated = rng.normal(size=(4000, 7)) * 1.5
    labels = np.array([rng.choice(7, p=p) for p in softmax(calibrated)])  # labels drawn from the model's own probs
    overconfident = 2.5 * calibrated
    t = fit_temperature(overconfident, labels)
    assert t == pytest.approx(2.5, rel=0.1)
    before = expected_calibration_error(softmax(overconfident), labels)
    after = expected_calibration_error(softmax(overconfident, t), labels)
    assert after < before / 3
    assert np.array_equal(softmax(overconfident, t).argmax(1), overconfident.argmax(1))  # accuracy unchanged


# ---- seeds and ensembles -----------------------------------------------------------------------------------------


def test_seed_summary_arithmetic(tmp_path):
    labels = np.repeat(np.arange(NUM_CLASSES), 100)
    results = [
        make_result(
            tmp_path, "model_b", {"PrivateTest": make_preds(labels, acc, seed=s)}, {"PrivateTest": labels}, seed=s
        )
        for s, acc in enumerate((0.5, 0.6, 0.7))
    ]
    summary = seed_summary(results, "PrivateTest")
    assert summary["seeds"] == [0, 1, 2] and summary["n_seeds"] == 3
    assert summary["accuracy"]["per_seed"] == pytest.approx([0.5, 0.6, 0.7])
    assert summary["accuracy"]["mean"] == pytest.approx(0.6)
    assert summary["accuracy"]["std"] == pytest.approx(0.1)  # sample standard deviation
    f1s = [f1_score(labels, r.preds("PrivateTest"), average="macro") for r in results]
    assert summary["macro_f1"]["mean"] == pytest.approx(np.mean(f1s))
    assert summary["macro_f1"]["std"] == pytest.approx(np.std(f1s, ddof=1))
    assert math.isnan(seed_summary(results[:1], "PrivateTest")["accuracy"]["std"])


def test_ensemble_averages_probabilities(tmp_path):
    labels = fer_labels()
    results = [
        make_result(
            tmp_path,
            "resnet_fer",
            {"PrivateTest": make_preds(labels, 0.6, seed=s)},
            {"PrivateTest": labels},
            seed=s,
            params=500,
        )
        for s in range(3)
    ]
    log_probs = ensemble_logits(results)["PrivateTest"]
    expected = np.mean([r.probs("PrivateTest") for r in results], axis=0)
    np.testing.assert_allclose(np.exp(log_probs), expected, rtol=1e-5, atol=1e-7)
    ensemble = ensemble_result(results)
    assert ensemble.model == "resnet_fer_ensemble" and ensemble.params == 1500
    # Three independent 60% voters agree on the truth more often than any one of them.
    assert ensemble.metrics["PrivateTest"]["accuracy"] > 0.62
    other = make_result(
        tmp_path, "resnet_fer", {"PrivateTest": labels[::-1].copy()}, {"PrivateTest": labels[::-1].copy()}, seed=9
    )
    with pytest.raises(ValueError, match="different PrivateTest images"):
        ensemble_logits(results + [other])


def test_against_chance_tells_a_one_class_model_from_a_good_one():
    labels = np.repeat(np.arange(NUM_CLASSES), [40, 5, 10, 60, 20, 15, 50])  # Happy most frequent
    happy = CLASS_NAMES.index("Happy")
    one_class = against_chance(labels, np.full_like(labels, happy))
    assert one_class["majority_class"] == "Happy"
    assert one_class["accuracy"] == one_class["majority"] == 60 / len(labels)
    assert not one_class["above_chance"]
    assert "no better than guessing" in describe_against_chance(one_class, "Model B")

    rng = np.random.default_rng(0)
    good = np.where(rng.random(len(labels)) < 0.7, labels, (labels + 1) % NUM_CLASSES)
    check = against_chance(labels, np.stack([good, good]))  # two seeds, the same answers
    assert check["above_chance"] and check["p_value"] < 1e-6
    assert describe_against_chance(check).startswith(f"it answers {check['accuracy']:.1%} of {len(labels)} faces")
    with pytest.raises(ValueError):
        against_chance(labels, good[:-1])
