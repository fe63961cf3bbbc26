"""Statistics of the study: bootstrap intervals over the test images, McNemar's paired test and Holm's correction.

Every interval in the study (metrics.json, REPORT.md, the README, model cards, the claims, Grad-CAM's region
shares) comes from one resampling of the test images, `resample_index`, summarised by its percentiles. The
resamples are held as counts (`resample_counts`: how often each resample draws each image), so that a resampled
mean or confusion matrix is one matrix product; they are drawn once per size and kept.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import numpy as np
import pandas as pd
from scipy import stats

from fer_helpers.data.fer2013 import NUM_CLASSES

METRICS = ("accuracy", "macro_f1", "weighted_f1")  # the headline metrics; each has a bootstrap interval here
N_BOOT = 2000  # resamples of every bootstrap interval in the study (metrics.json, REPORT.md, model cards, claims)
BOOT_SEED = 0
SIGNIFICANCE = 0.05


def as_class_indices(labels: np.ndarray, *preds: np.ndarray, num_classes: int = NUM_CLASSES) -> list[np.ndarray]:
    """Check that labels and predictions are class indices of the same images; return them as int64 arrays."""
    arrays = [np.asarray(a) for a in (labels, *preds)]
    for a in arrays:
        if a.shape[-1:] != arrays[0].shape[-1:]:
            raise ValueError(f"labels and predictions cover different images: {arrays[0].shape} vs {a.shape}")
        if a.size and (not np.issubdtype(a.dtype, np.integer) or a.min() < 0 or a.max() >= num_classes):
            raise ValueError(f"expected class indices 0..{num_classes - 1}, got {a.dtype} in [{a.min()}, {a.max()}]")
    return [a.astype(np.int64) for a in arrays]


# ---- the resampling ----------------------------------------------------------------------------------------------


def resample_index(n: int, n_boot: int = N_BOOT, seed: int = BOOT_SEED) -> np.ndarray:
    """(n_boot, n) indices of the test images, drawn with replacement: the one resampling of every interval."""
    return np.random.default_rng(seed).integers(0, n, size=(n_boot, n), dtype=np.int32)


@lru_cache(maxsize=4)
def resample_counts(n: int, n_boot: int = N_BOOT, seed: int = BOOT_SEED) -> np.ndarray:
    """(n_boot, n) float64, read-only: how often each resample of `resample_index` draws each test image."""
    flat = resample_index(n, n_boot, seed) + (np.arange(n_boot, dtype=np.int64) * n)[:, None]
    counts = np.bincount(flat.ravel(), minlength=n_boot * n).reshape(n_boot, n).astype(np.float64)
    counts.flags.writeable = False
    return counts


def _percentiles(samples: np.ndarray, alpha: float) -> np.ndarray:
    """The (alpha/2, 1 - alpha/2) percentiles of resampled values (along the first axis)."""
    return np.quantile(samples, [alpha / 2, 1 - alpha / 2], axis=0)


def _resampled_means(values: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """The mean of per-image values on each resample, given as (B, N) draw counts."""
    return counts @ values / counts.shape[1]


def _resampled_f1(codes: np.ndarray, counts: np.ndarray, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-class F1 and support of each resample (B, N draw counts); codes = label * num_classes + pred."""
    labels, preds = np.divmod(codes, num_classes)
    classes = np.arange(num_classes)
    is_label, is_pred = labels[:, None] == classes, preds[:, None] == classes
    per_image = np.hstack([is_label & is_pred, is_label, is_pred]).astype(np.float64)  # tp, support, predicted
    tp, support, predicted = np.split(counts @ per_image, 3, axis=1)  # whole numbers, exact in float64
    denom = support + predicted  # 2 tp + fp + fn
    f1 = np.divide(2 * tp, denom, out=np.zeros(tp.shape), where=denom > 0)
    return f1, support


def _resampled_metric(
    labels: np.ndarray, runs: np.ndarray, counts: np.ndarray, metric: str, num_classes: int
) -> np.ndarray:
    """A metric's mean over runs (S, N) on each bootstrap resample (B, N draw counts) of the test images."""
    if metric == "accuracy":
        return _resampled_means((runs == labels).mean(axis=0), counts)
    values = np.zeros(counts.shape[0])
    for run in runs:
        f1, support = _resampled_f1(labels * num_classes + run, counts, num_classes)
        values += f1.mean(axis=1) if metric == "macro_f1" else (f1 * support).sum(axis=1) / support.sum(axis=1)
    return values / len(runs)


def _resampled_models(
    labels: np.ndarray, *preds: np.ndarray, metric: str, n_boot: int, seed: int, num_classes: int
) -> list[np.ndarray] | None:
    """Each model's metric on the same resamples of the test images; None when there are no images.

    Each of preds is (N,) or (S, N): S runs (seeds) of one model, whose mean metric is resampled.
    """
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; choose one of {METRICS}")
    labels, *preds = as_class_indices(labels, *preds, num_classes=num_classes)
    if len(labels) == 0:
        return None
    counts = resample_counts(len(labels), n_boot, seed)
    return [_resampled_metric(labels, p.reshape(-1, len(labels)), counts, metric, num_classes) for p in preds]


# ---- intervals ---------------------------------------------------------------------------------------------------


def _interval(samples: np.ndarray | None, alpha: float) -> tuple[float, float]:
    """The percentile interval of resampled values as two floats; NaNs when there was nothing to resample."""
    if samples is None:
        return (float("nan"), float("nan"))
    low, high = _percentiles(samples, alpha)
    return (float(low), float(high))


def bootstrap_ci(
    labels: np.ndarray,
    preds: np.ndarray,
    metric: str = "accuracy",
    n_boot: int = N_BOOT,
    seed: int = BOOT_SEED,
    alpha: float = 0.05,
    num_classes: int = NUM_CLASSES,
    *,
    minus: np.ndarray | None = None,
) -> tuple[float, float]:
    """Percentile bootstrap interval of a test-set metric, resampling the test images with replacement.

    preds is (N,) or (S, N): S runs (seeds) of one model on the same images; then the interval is that of
    their mean, every run seeing the same resampled images.

    With `minus` (the predictions of a second model, (N,) or (S, N)), the paired interval of metric(preds) -
    metric(minus): both models score the same resampled images, which keeps the pairing, so the interval is
    narrower than two separate intervals suggest whenever the two models err on the same faces.
    """
    models = (preds,) if minus is None else (preds, minus)
    values = _resampled_models(labels, *models, metric=metric, n_boot=n_boot, seed=seed, num_classes=num_classes)
    return _interval(None if values is None else values[0] - (values[1] if len(values) > 1 else 0), alpha)


def per_class_f1_ci(
    labels: np.ndarray,
    preds: np.ndarray,
    n_boot: int = N_BOOT,
    seed: int = BOOT_SEED,
    alpha: float = 0.05,
    num_classes: int = NUM_CLASSES,
) -> np.ndarray:
    """(num_classes, 2) percentile bootstrap intervals of each class's F1 (mean over runs for (S, N) preds)."""
    labels, preds = as_class_indices(labels, preds, num_classes=num_classes)
    runs = preds.reshape(-1, len(labels))
    counts = resample_counts(len(labels), n_boot, seed)
    f1 = sum(_resampled_f1(labels * num_classes + run, counts, num_classes)[0] for run in runs) / len(runs)
    return _percentiles(f1, alpha).T


def mean_ci(values: np.ndarray, seed: int = BOOT_SEED, alpha: float = 0.05) -> tuple[float, float, float]:
    """Mean of per-image values with its percentile-bootstrap interval, NaNs left out: (mean, low, high)."""
    values = np.asarray(values, dtype=np.float64)
    values = values[~np.isnan(values)]
    if len(values) == 0:
        return (np.nan, np.nan, np.nan)
    return (float(values.mean()), *_interval(_resampled_means(values, resample_counts(len(values), seed=seed)), alpha))


def difference_ci(a: np.ndarray, b: np.ndarray, alpha: float = 0.05) -> tuple[float, float]:
    """Percentile-bootstrap interval of mean(a) - mean(b) of two groups of images, each resampled on its own."""
    a, b = (np.asarray(v, dtype=np.float64) for v in (a, b))
    a, b = a[~np.isnan(a)], b[~np.isnan(b)]
    if len(a) == 0 or len(b) == 0:
        return (np.nan, np.nan)
    return _interval(
        _resampled_means(a, resample_counts(len(a))) - _resampled_means(b, resample_counts(len(b), seed=BOOT_SEED + 1)),
        alpha,
    )


# ---- tests -------------------------------------------------------------------------------------------------------


def holm(p_values: Sequence[float]) -> np.ndarray:
    """Holm's step-down adjustment of a family of p-values (controls the family-wise error rate)."""
    p = np.asarray(p_values, dtype=np.float64)
    order = np.argsort(p)
    adjusted = np.maximum.accumulate((len(p) - np.arange(len(p))) * p[order])
    out = np.empty_like(p)
    out[order] = np.minimum(adjusted, 1.0)
    return out


def mcnemar(labels: np.ndarray, preds_a: np.ndarray, preds_b: np.ndarray) -> dict:
    """McNemar's paired test of two models on the same images: does one win their disagreements beyond chance?

    b = images A gets right and B wrong, c = the reverse. Exact two-sided binomial test when b + c < 25,
    else the chi-square test with continuity correction, (|b - c| - 1)^2 / (b + c) on one degree of freedom.
    """
    labels, preds_a, preds_b = as_class_indices(labels, preds_a, preds_b)
    if preds_a.shape != labels.shape or preds_b.shape != labels.shape:
        raise ValueError("mcnemar needs one prediction per image from each model")
    right_a = preds_a == labels
    right_b = preds_b == labels
    b = int((right_a & ~right_b).sum())
    c = int((~right_a & right_b).sum())
    if b + c < 25:
        p_value = stats.binomtest(b, b + c, 0.5).pvalue if b + c else 1.0
        return {"b": b, "c": c, "statistic": float(min(b, c)), "p_value": float(p_value), "method": "exact binomial"}
    statistic = max(abs(b - c) - 1, 0) ** 2 / (b + c)
    return {
        "b": b,
        "c": c,
        "statistic": float(statistic),
        "p_value": float(stats.chi2.sf(statistic, df=1)),
        "method": "chi-square with continuity correction",
    }


def pairwise_mcnemar(labels: np.ndarray, preds_by_model: dict[str, np.ndarray]) -> pd.DataFrame:
    """McNemar's test for every pair of models on the same images, one row per pair, with the accuracy gap's
    paired bootstrap interval and the p-values Holm-corrected over all the pairs (the family)."""
    names = list(preds_by_model)
    rows = []
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            test = mcnemar(labels, preds_by_model[a], preds_by_model[b])
            rows.append(
                {
                    "model_a": a,
                    "model_b": b,
                    "accuracy_a": float(np.mean(preds_by_model[a] == labels)),
                    "accuracy_b": float(np.mean(preds_by_model[b] == labels)),
                    **dict(
                        zip(
                            ("gap_ci_low", "gap_ci_high"),
                            bootstrap_ci(labels, preds_by_model[a], minus=preds_by_model[b]),
                        )
                    ),
                    "only_a_right": test["b"],
                    "only_b_right": test["c"],
                    "statistic": test["statistic"],
                    "p_value": test["p_value"],
                    "method": test["method"],
                }
            )
    table = pd.DataFrame(
        rows,
        columns=[
            "model_a",
            "model_b",
            "accuracy_a",
            "accuracy_b",
            "gap_ci_low",
            "gap_ci_high",
            "only_a_right",
            "only_b_right",
            "statistic",
            "p_value",
            "method",
        ],
    )
    table.insert(table.columns.get_loc("p_value") + 1, "p_holm", holm(table["p_value"]) if len(table) else [])
    return table


def p_value_matrix(pairs: pd.DataFrame) -> pd.DataFrame:
    """The p-values of pairwise_mcnemar as a symmetric model x model table (NaN on the diagonal)."""
    names = list(dict.fromkeys([*pairs["model_a"], *pairs["model_b"]]))
    matrix = pd.DataFrame(np.nan, index=pd.Index(names, name="model"), columns=names)
    for pair in pairs.itertuples(index=False):
        matrix.loc[pair.model_a, pair.model_b] = matrix.loc[pair.model_b, pair.model_a] = pair.p_value
    return matrix
