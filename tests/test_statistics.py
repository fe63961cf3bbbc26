"""Bootstrap intervals, McNemar's test and Holm's correction against answers worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import f1_score
from test_metrics import fer_labels, make_preds

from fer_helpers.data.fer2013 import NUM_CLASSES
from fer_helpers.scoring.metrics import classification_metrics, per_class_report
from fer_helpers.scoring.statistics import (
    _resampled_f1,
    bootstrap_ci,
    difference_ci,
    holm,
    mcnemar,
    mean_ci,
    p_value_matrix,
    pairwise_mcnemar,
    per_class_f1_ci,
    resample_counts,
    resample_index,
)

# ---- bootstrap ---------------------------------------------------------------------------------------------------


def test_bootstrap_interval_covers_the_true_accuracy_about_95_percent_of_the_time():
    rng = np.random.default_rng(12345)
    labels = np.zeros(500, dtype=np.int64)
    covered = 0
    for sim in range(200):
        preds = np.where(rng.random(500) < 0.6, 0, 1)
        low, high = bootstrap_ci(labels, preds, "accuracy", n_boot=2000, seed=sim)
        covered += low <= 0.6 <= high
    assert 0.92 <= covered / 200 <= 0.98, f"coverage {covered / 200:.3f}"


def test_bootstrap_interval_width_matches_the_binomial_standard_error():
    labels = fer_labels()
    preds = make_preds(labels, 0.6, seed=2)
    low, high = bootstrap_ci(labels, preds, "accuracy")
    se = math.sqrt(0.6 * 0.4 / len(labels))
    assert (high - low) == pytest.approx(2 * 1.96 * se, rel=0.1)
    assert low < 0.6 < high


def test_resampled_f1_of_the_identity_resample_is_sklearns():
    labels = fer_labels()
    preds = make_preds(labels, 0.45, seed=4)
    f1, support = _resampled_f1(labels * NUM_CLASSES + preds, np.ones((1, len(labels))), NUM_CLASSES)
    assert f1.mean() == pytest.approx(f1_score(labels, preds, average="macro"))
    assert (f1 * support).sum() / support.sum() == pytest.approx(f1_score(labels, preds, average="weighted"))


def test_resample_counts_are_the_resampled_indices_counted():
    idx = resample_index(50, n_boot=30, seed=3)
    counts = resample_counts(50, n_boot=30, seed=3)
    assert counts.shape == (30, 50) and not counts.flags.writeable
    for row, drawn in zip(counts, idx):
        assert np.array_equal(row, np.bincount(drawn, minlength=50))
    labels = fer_labels()[:50]
    preds = make_preds(labels, 0.5, seed=1)
    f1, _ = _resampled_f1(labels * NUM_CLASSES + preds, counts, NUM_CLASSES)
    for b in (0, 17):
        expected = f1_score(labels[idx[b]], preds[idx[b]], average=None, labels=range(NUM_CLASSES), zero_division=0)
        assert np.allclose(f1[b], expected)


@pytest.mark.parametrize("metric", ["accuracy", "macro_f1", "weighted_f1"])
def test_bootstrap_is_seeded_and_brackets_the_estimate(metric):
    labels = fer_labels()
    runs = np.stack([make_preds(labels, 0.55, seed=s) for s in range(3)])
    a = bootstrap_ci(labels, runs, metric, n_boot=500, seed=7)
    assert a == bootstrap_ci(labels, runs, metric, n_boot=500, seed=7)
    estimate = np.mean([classification_metrics(labels, p)[metric] for p in runs])
    assert a[0] < estimate < a[1] and a[1] - a[0] < 0.06
    # The mean of three runs varies over resamples no more than a single run does.
    single = bootstrap_ci(labels, runs[0], metric, n_boot=500, seed=7)
    assert a[1] - a[0] <= (single[1] - single[0]) * 1.1


def test_bootstrap_rejects_unknown_metric():
    with pytest.raises(ValueError, match="unknown metric"):
        bootstrap_ci(np.array([0, 1]), np.array([0, 1]), "auc")
    with pytest.raises(ValueError, match="unknown metric"):
        bootstrap_ci(np.array([0, 1]), np.array([0, 1]), "auc", minus=np.array([1, 1]))


@pytest.mark.parametrize("metric", ["accuracy", "macro_f1", "weighted_f1"])
def test_paired_interval_is_the_gap_on_shared_resamples(metric):
    labels = fer_labels()
    a, b = make_preds(labels, 0.6, seed=1), make_preds(labels, 0.5, seed=2)
    low, high = bootstrap_ci(labels, a, metric, n_boot=500, seed=3, minus=b)
    gap = classification_metrics(labels, a)[metric] - classification_metrics(labels, b)[metric]
    assert low < gap < high
    assert bootstrap_ci(labels, a, metric, n_boot=50, minus=a) == (0.0, 0.0)  # a model against itself
    empty = np.array([], dtype=np.int64)
    assert all(math.isnan(v) for v in bootstrap_ci(empty, empty, metric, minus=empty))


def test_mean_and_difference_intervals_leave_out_nans_and_are_seeded():
    values = np.r_[np.random.default_rng(0).random(400), [np.nan] * 5]
    mean, low, high = mean_ci(values)
    assert mean == pytest.approx(np.nanmean(values)) and low < mean < high
    assert mean_ci(values) == (mean, low, high) and mean_ci(values, seed=1) != (mean, low, high)
    assert all(math.isnan(v) for v in mean_ci(np.array([np.nan])))
    low, high = difference_ci(values + 0.2, values)
    assert low < 0.2 < high
    assert all(math.isnan(v) for v in difference_ci(values, np.array([])))


def test_per_class_f1_intervals_contain_the_f1_and_shrink_with_more_faces():
    labels = np.tile(np.arange(7), 200)
    preds = np.where(np.random.default_rng(1).random(len(labels)) < 0.7, labels, (labels + 1) % 7)
    ci = per_class_f1_ci(labels, preds)
    f1 = per_class_report(labels, preds)["f1"].to_numpy()
    assert ci.shape == (7, 2) and (ci[:, 0] <= f1).all() and (f1 <= ci[:, 1]).all()
    small = per_class_f1_ci(labels[:140], preds[:140])
    assert (small[:, 1] - small[:, 0]).mean() > (ci[:, 1] - ci[:, 0]).mean()


# ---- McNemar -----------------------------------------------------------------------------------------------------


def paired(b: int, c: int, both_right: int = 10, both_wrong: int = 5):
    """Labels and two models' predictions with b images only A gets right and c only B gets right."""
    n = b + c + both_right + both_wrong
    labels = np.zeros(n, dtype=np.int64)
    a_right = np.r_[np.ones(b), np.zeros(c), np.ones(both_right), np.zeros(both_wrong)].astype(bool)
    b_right = np.r_[np.zeros(b), np.ones(c), np.ones(both_right), np.zeros(both_wrong)].astype(bool)
    return labels, np.where(a_right, 0, 1), np.where(b_right, 0, 2)


def test_mcnemar_exact_branch_matches_hand_computation():
    # b=10, c=3: two-sided exact p = 2 P(X <= 3), X ~ Binomial(13, 1/2) = 2 (1 + 13 + 78 + 286) / 2^13.
    result = mcnemar(*paired(10, 3))
    assert (result["b"], result["c"]) == (10, 3)
    assert result["method"] == "exact binomial"
    assert result["p_value"] == pytest.approx(2 * 378 / 8192)
    assert result["statistic"] == 3


def test_mcnemar_chi_square_branch_matches_hand_computation():
    # b=30, c=15: (|30 - 15| - 1)^2 / 45 = 196/45; one degree of freedom: p = erfc(sqrt(x / 2)).
    result = mcnemar(*paired(30, 15))
    assert result["method"] == "chi-square with continuity correction"
    assert result["statistic"] == pytest.approx(196 / 45)
    assert result["p_value"] == pytest.approx(math.erfc(math.sqrt(196 / 45 / 2)))


def test_mcnemar_edge_cases():
    assert mcnemar(*paired(0, 0))["p_value"] == 1.0
    labels, a, b = paired(12, 12)
    assert mcnemar(labels, a, b)["p_value"] == pytest.approx(1.0)
    assert mcnemar(labels, b, a)["b"] == 12
    with pytest.raises(ValueError):
        mcnemar(labels, a[:-1], b)


def test_pairwise_mcnemar_and_its_matrix():
    labels, a, b = paired(30, 15)
    pairs = pairwise_mcnemar(labels, {"a": a, "b": b, "perfect": labels})
    assert len(pairs) == 3 and list(pairs["model_a"]) == ["a", "a", "b"]
    first = pairs.iloc[0]
    assert (first["only_a_right"], first["only_b_right"]) == (30, 15)
    assert first["p_value"] == pytest.approx(mcnemar(labels, a, b)["p_value"])
    assert list(pairs["p_holm"]) == pytest.approx(holm(pairs["p_value"]))
    gap = np.mean(a == labels) - np.mean(b == labels)
    assert first["gap_ci_low"] <= gap <= first["gap_ci_high"]
    matrix = p_value_matrix(pairs)
    assert matrix.loc["b", "a"] == matrix.loc["a", "b"] == first["p_value"]
    assert np.isnan(matrix.loc["a", "a"]) and matrix.shape == (3, 3)


def test_holm_adjusts_a_family_of_p_values():
    assert list(holm([0.01, 0.04, 0.03])) == pytest.approx([0.03, 0.06, 0.06])
    assert list(holm([0.5, 0.9])) == pytest.approx([1.0, 1.0])  # adjusted p-values never fall back below earlier ones
