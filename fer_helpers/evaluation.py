"""Evaluation: headline metrics, per-class reports and the statistics behind them."""
from __future__ import annotations

import numpy as np
from sklearn.metrics import accuracy_score, f1_score

from .data import NUM_CLASSES


def wilson_ci95(correct: int, total: int) -> tuple[float, float]:
    """Wilson score 95% interval for a proportion (accuracy)."""
    if total == 0:
        return (float("nan"), float("nan"))
    z = 1.959963984540054
    p = correct / total
    denom = 1 + z**2 / total
    centre = (p + z**2 / (2 * total)) / denom
    half = z * np.sqrt(p * (1 - p) / total + z**2 / (4 * total**2)) / denom
    return (float(centre - half), float(centre + half))


def classification_metrics(labels: np.ndarray, preds: np.ndarray) -> dict:
    """Accuracy (with a 95% interval), macro and weighted F1 over the seven classes."""
    labels = np.asarray(labels)
    preds = np.asarray(preds)
    all_classes = list(range(NUM_CLASSES))
    correct = int((labels == preds).sum())
    return {
        "n": int(len(labels)),
        "accuracy": float(accuracy_score(labels, preds)),
        "accuracy_ci95": list(wilson_ci95(correct, len(labels))),
        "macro_f1": float(f1_score(labels, preds, labels=all_classes, average="macro", zero_division=0)),
        "weighted_f1": float(f1_score(labels, preds, labels=all_classes, average="weighted", zero_division=0)),
    }
