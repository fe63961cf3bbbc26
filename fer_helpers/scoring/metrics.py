"""Metrics of a classifier on one set of predictions: headline numbers, per-class report, confusion, calibration.

The metric names (METRICS) and their bootstrap intervals live in statistics, which every number here may call on.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import stats
from sklearn.metrics import accuracy_score, f1_score, precision_recall_fscore_support

from fer_helpers.data.fer2013 import CLASS_NAMES, NUM_CLASSES
from fer_helpers.scoring.statistics import SIGNIFICANCE, as_class_indices, bootstrap_ci

# How tables, figures and prose name each metric (models: `registry.label`).
METRIC_LABELS = {"accuracy": "accuracy", "macro_f1": "macro F1", "weighted_f1": "weighted F1"}


def classification_metrics(labels: np.ndarray, preds: np.ndarray) -> dict:
    """Accuracy (with its bootstrap 95% interval), macro and weighted F1 over the seven classes."""
    labels = np.asarray(labels)
    preds = np.asarray(preds)
    all_classes = list(range(NUM_CLASSES))
    return {
        "n": int(len(labels)),
        "accuracy": float(accuracy_score(labels, preds)),
        "accuracy_ci95": list(bootstrap_ci(labels, preds, "accuracy")),
        "macro_f1": float(f1_score(labels, preds, labels=all_classes, average="macro", zero_division=0)),
        "weighted_f1": float(f1_score(labels, preds, labels=all_classes, average="weighted", zero_division=0)),
    }


def per_class_report(labels: np.ndarray, preds: np.ndarray, class_names: Sequence[str] = CLASS_NAMES) -> pd.DataFrame:
    """Precision, recall, F1 and support of each class: the paper's Table 2, in numbers."""
    labels, preds = as_class_indices(labels, preds, num_classes=len(class_names))
    precision, recall, f1, support = precision_recall_fscore_support(
        labels, preds, labels=list(range(len(class_names))), zero_division=0
    )
    return pd.DataFrame(
        {"precision": precision, "recall": recall, "f1": f1, "support": support.astype(int)},
        index=pd.Index(list(class_names), name="class"),
    )


# ---- confusion ---------------------------------------------------------------------------------------------------

NORMALIZE = (None, "true", "pred", "all")


def confusion_shares(counts: np.ndarray, normalize: str | None) -> np.ndarray:
    """A confusion matrix of counts as shares: "true" rows sum to 1 (recall on the diagonal), "pred" columns sum
    to 1 (precision on the diagonal), "all" the whole matrix; an empty row or column stays zero. None: the counts."""
    if normalize not in NORMALIZE:
        raise ValueError(f"normalize must be one of {NORMALIZE}, got {normalize!r}")
    counts = np.asarray(counts)
    if normalize is None:
        return counts
    totals = {
        "true": counts.sum(axis=1, keepdims=True),
        "pred": counts.sum(axis=0, keepdims=True),
        "all": counts.sum(keepdims=True),
    }[normalize]
    return np.divide(counts, totals, out=np.zeros(counts.shape), where=totals > 0)


def confusion(
    labels: np.ndarray, preds: np.ndarray, normalize: str | None = None, num_classes: int = NUM_CLASSES
) -> np.ndarray:
    """Confusion matrix, rows = true class, columns = predicted; normalize as in confusion_shares."""
    labels, preds = as_class_indices(labels, preds, num_classes=num_classes)
    counts = np.bincount(labels * num_classes + preds, minlength=num_classes**2).reshape(num_classes, num_classes)
    return confusion_shares(counts, normalize)


def top_confusions(
    labels: np.ndarray, preds: np.ndarray, k: int = 5, class_names: Sequence[str] = CLASS_NAMES
) -> pd.DataFrame:
    """The k most frequent mistakes: true class, predicted class, count and share of the true class's images."""
    counts = confusion(labels, preds, num_classes=len(class_names))
    rates = confusion_shares(counts, "true")
    rows = [
        {"true": class_names[t], "predicted": class_names[p], "count": int(counts[t, p]), "rate": float(rates[t, p])}
        for t in range(len(class_names))
        for p in range(len(class_names))
        if t != p and counts[t, p] > 0
    ]
    table = pd.DataFrame(rows, columns=["true", "predicted", "count", "rate"])
    table = table.sort_values(["count", "rate"], ascending=False, kind="stable").head(k)
    return table.set_index(pd.RangeIndex(1, len(table) + 1, name="rank"))


# ---- calibration -------------------------------------------------------------------------------------------------


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Class probabilities of logits divided by a temperature."""
    from scipy.special import softmax as _softmax

    return _softmax(np.asarray(logits, dtype=np.float64) / temperature, axis=1)


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    """The temperature T that minimises the negative log-likelihood of softmax(logits / T) (Guo et al. 2017)."""
    from scipy.optimize import minimize_scalar
    from scipy.special import log_softmax

    z = np.asarray(logits, dtype=np.float64)
    (labels,) = as_class_indices(labels, num_classes=z.shape[1])
    rows = np.arange(len(labels))

    def nll(log_t: float) -> float:
        return float(-log_softmax(z / np.exp(log_t), axis=1)[rows, labels].mean())

    return float(np.exp(minimize_scalar(nll, bounds=(np.log(0.05), np.log(20.0)), method="bounded").x))


def reliability_table(probs: np.ndarray, labels: np.ndarray, n_bins: int = 15) -> pd.DataFrame:
    """Confidence against accuracy in equal-width confidence bins (lower, upper]: the reliability diagram's data."""
    probs = np.asarray(probs, dtype=np.float64)
    if probs.ndim != 2 or not np.allclose(probs.sum(axis=1), 1.0, atol=1e-3):
        raise ValueError("probs must be (N, num_classes) probabilities whose rows sum to 1 (softmax the logits)")
    (labels,) = as_class_indices(labels, num_classes=probs.shape[1])
    if len(labels) != len(probs):
        raise ValueError(f"{len(probs)} rows of probabilities for {len(labels)} labels")
    confidence = probs.max(axis=1)
    correct = (probs.argmax(axis=1) == labels).astype(np.float64)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    bins = np.clip(np.searchsorted(edges, confidence, side="left") - 1, 0, n_bins - 1)
    count = np.bincount(bins, minlength=n_bins)
    with np.errstate(invalid="ignore"):
        mean_confidence = np.bincount(bins, weights=confidence, minlength=n_bins) / count
        accuracy = np.bincount(bins, weights=correct, minlength=n_bins) / count
    return pd.DataFrame(
        {
            "bin_lower": edges[:-1],
            "bin_upper": edges[1:],
            "count": count,
            "confidence": mean_confidence,
            "accuracy": accuracy,
            "gap": accuracy - mean_confidence,
        }
    )


def expected_calibration_error(probs: np.ndarray, labels: np.ndarray, n_bins: int = 15) -> float:
    """Expected calibration error: the image-weighted mean gap between confidence and accuracy over the bins."""
    table = reliability_table(probs, labels, n_bins)
    filled = table[table["count"] > 0]
    return float((filled["count"] * filled["gap"].abs()).sum() / table["count"].sum())


# ---- seeds and ensembles -----------------------------------------------------------------------------------------


def against_chance(labels: np.ndarray, preds: np.ndarray, num_classes: int = NUM_CLASSES) -> dict:
    """An accuracy beside what guessing gets: a uniform guess (1/num_classes) and always answering the most
    frequent class (the majority share), with a one-sided binomial test of the accuracy against the majority share.

    preds is (N,) or (S, N) (S seeds of one model: their mean number of right answers is tested). A model trained
    for a few epochs on a few faces often answers one class for every face and then sits at that class's share.
    """
    labels = np.asarray(labels)
    preds = np.atleast_2d(np.asarray(preds))
    if preds.shape[1:] != labels.shape:
        raise ValueError(f"need predictions (N,) or (S, N) for {labels.shape} labels, got {preds.shape}")
    counts = np.bincount(labels, minlength=num_classes)
    majority = float(counts.max() / len(labels))
    right = int(round(float((preds == labels).sum(axis=1).mean())))
    p_value = float(stats.binomtest(right, len(labels), majority, alternative="greater").pvalue)
    return {
        "accuracy": right / len(labels),
        "n": len(labels),
        "uniform": 1 / num_classes,
        "majority": majority,
        "majority_class": CLASS_NAMES[int(counts.argmax())] if num_classes == NUM_CLASSES else str(counts.argmax()),
        "p_value": p_value,
        "above_chance": p_value < SIGNIFICANCE,
    }


def describe_against_chance(check: dict, what: str = "it") -> str:
    """A sentence from against_chance: '<what> answers 14.3% of 140 faces right, against 14.3% for a uniform guess
    and 14.3% for always answering Happy: no better than guessing (binomial p = 0.54).'"""
    text = (
        f"{what} answers {check['accuracy']:.1%} of {check['n']:,} faces right, against {check['uniform']:.1%} for a "
        f"uniform guess and {check['majority']:.1%} for always answering {check['majority_class']}"
    )
    if check["above_chance"]:
        return f"{text}: above chance (binomial p = {check['p_value']:.2g})."
    return f"{text}: no better than guessing (binomial p = {check['p_value']:.2g})."


def confident_mistakes(labels: np.ndarray, probs: np.ndarray, per_class: int = 4) -> dict[int, np.ndarray]:
    """For each true class, the indices of its misclassified faces, most confident wrong answer first (at most
    per_class of them)."""
    labels, probs = np.asarray(labels), np.asarray(probs)
    preds = probs.argmax(axis=1)
    chosen = {}
    for c in range(probs.shape[1]):
        wrong = np.flatnonzero((labels == c) & (preds != c))
        order = np.argsort(-probs[wrong, preds[wrong]], kind="stable")
        chosen[c] = wrong[order[:per_class]]
    return chosen
