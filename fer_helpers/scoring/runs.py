"""A model's runs as a whole: a finished run scored into a RunResult, its seeds in order and summarised, per-class
numbers over seeds, and the seed ensemble (mean softmax probabilities) as a run of its own.

The metrics themselves, on one set of predictions, are `metrics`'s."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from fer_helpers.data.fer2013 import CLASS_NAMES, FERData
from fer_helpers.data.results import RunResult, run_key
from fer_helpers.scoring.metrics import classification_metrics, per_class_report
from fer_helpers.scoring.statistics import METRICS


def scored_run(name: str, config, key: str, run_dir: Path, data: FERData, logits: dict, **facts) -> RunResult:
    """A finished run named `name` of `config` (a CNNConfig or HOGConfig) on `data`, scored on each split of
    `logits` against the data's labels. The one place where HOG and CNN runs become RunResults; `facts` are
    RunResult's other fields."""
    labels = {split: data.labels[data.usage == split] for split in logits}
    metrics = {split: classification_metrics(labels[split], scores.argmax(axis=1)) for split, scores in logits.items()}
    return RunResult(name, config.to_dict(), key, run_dir, data.sha256, logits, labels, metrics, config.seed, **facts)


def by_seed(results: Iterable[RunResult]) -> list[RunResult]:
    """A model's runs in seed order (a run without a seed, such as HOG+SVM's, last)."""
    return sorted(results, key=lambda r: (r.seed is None, r.seed if r.seed is not None else 0))


def seed_summary(results: Sequence[RunResult], split: str) -> dict:
    """Mean ± standard deviation (ddof=1; NaN for one run) of each headline metric over the runs' seeds."""
    if not results:
        raise ValueError("seed_summary needs at least one result")
    per_run = [classification_metrics(r.labels[split], r.preds(split)) for r in results]
    summary: dict = {"split": split, "n_seeds": len(results), "seeds": [r.seed for r in results]}
    for metric in METRICS:
        values = np.array([m[metric] for m in per_run])
        summary[metric] = {
            "mean": float(values.mean()),
            "std": float(values.std(ddof=1)) if len(values) > 1 else float("nan"),
            "per_seed": values.tolist(),
        }
    return summary


def per_class_over_seeds(
    results: Sequence[RunResult], split: str, class_names: Sequence[str] = CLASS_NAMES
) -> pd.DataFrame:
    """per_class_report averaged over a model's runs (seeds)."""
    reports = [per_class_report(r.labels[split], r.preds(split), class_names) for r in results]
    return sum(reports[1:], reports[0]) / len(reports)


def ensemble_logits(results: Sequence[RunResult]) -> dict[str, np.ndarray]:
    """Log of the mean softmax probabilities over runs (seeds), for every split all runs scored."""
    if not results:
        raise ValueError("ensemble_logits needs at least one result")
    splits = [s for s in results[0].logits if all(s in r.logits for r in results)]
    out = {}
    for split in splits:
        for r in results[1:]:
            if not np.array_equal(r.labels[split], results[0].labels[split]):
                raise ValueError(f"{r.model} (seed {r.seed}) scored different {split} images; cannot ensemble")
        mean_probs = np.mean([r.probs(split).astype(np.float64) for r in results], axis=0)
        out[split] = np.log(np.clip(mean_probs, 1e-12, None)).astype(np.float32)
    return out


def ensemble_result(results: Sequence[RunResult], model: str | None = None) -> RunResult:
    """The seed ensemble of one model's runs as a RunResult of its own (not saved); params counts all members."""
    logits = ensemble_logits(results)
    first = results[0]
    model = model or f"{first.model}_ensemble"
    config = {"members": [r.key for r in results]}
    key = run_key(model, config, first.data_sha256)
    labels = {s: first.labels[s] for s in logits}
    metrics = {s: classification_metrics(labels[s], logits[s].argmax(axis=1)) for s in logits}
    params = sum(r.params for r in results) if all(r.params for r in results) else None
    return replace(
        first,
        model=model,
        config=config,
        key=key,
        run_dir=first.run_dir.parent / f"{model}-{key}",
        logits=logits,
        labels=labels,
        metrics=metrics,
        seed=None,
        params=params,
        train_seconds=float(sum(r.train_seconds for r in results)),
        images_per_second=None,
        history=None,
        extra={"seeds": [r.seed for r in results]},
        from_cache=False,
    )
