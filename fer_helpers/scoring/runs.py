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


# ---- the best mix of runs, chosen on one split -------------------------------------------------------------------

MIX_NAME = "cnn_mix"  # the mix of CNN runs that greedy selection chooses on PublicTest
MIX_SPLIT = "PublicTest"  # the split that chooses the mix; the report split never does


def greedy_selection(probs: Sequence[np.ndarray], labels: np.ndarray, max_members: int = 100) -> list[int]:
    """Forward selection with replacement (Caruana et al. 2004): start empty, add the candidate whose probabilities
    most raise the mean's accuracy on `labels`, again and again (a candidate may be added more than once, which
    weights it), and stop when no addition raises it; the indices into `probs` in the order added.

    Ties go to the first candidate in the order given; at most `max_members` additions.
    """
    if not probs:
        raise ValueError("greedy_selection needs at least one candidate")
    stacked = np.stack([np.asarray(p, dtype=np.float64) for p in probs])
    if stacked.shape[1] != len(labels):
        raise ValueError(f"{stacked.shape[1]} faces of probabilities for {len(labels)} labels")
    total = np.zeros(stacked.shape[1:])
    chosen: list[int] = []
    best = -1.0
    while len(chosen) < max_members:
        # the argmax of a sum is the argmax of the mean, so the sum of the members' probabilities decides
        accuracy = ((total[None] + stacked).argmax(axis=2) == labels[None]).mean(axis=1)
        candidate = int(np.argmax(accuracy))
        if accuracy[candidate] <= best:
            break
        chosen.append(candidate)
        total += stacked[candidate]
        best = float(accuracy[candidate])
    return chosen


def cnn_pool(results_by_model: dict[str, Sequence[RunResult]]) -> list[RunResult]:
    """Every CNN run (one with a best epoch) of a run folder that scored the mix's split, by model name, then seed."""
    return [
        r
        for name in sorted(results_by_model)
        for r in results_by_model[name]
        if "best_epoch" in r.extra and MIX_SPLIT in r.logits
    ]


def best_mix(pool: Sequence[RunResult], split: str = MIX_SPLIT) -> tuple[RunResult, list[int]]:
    """The mix of `pool` that `greedy_selection` chooses on `split` alone, as a run of its own (`MIX_NAME`: mean
    softmax over its members, a member added twice counting twice), and the chosen indices into `pool`.

    Only `split`'s probabilities and labels are read to choose; the other splits are scored, never consulted.
    """
    if not pool:
        raise ValueError("best_mix needs at least one run")
    chosen = greedy_selection([r.probs(split) for r in pool], pool[0].labels[split])
    members = [pool[i] for i in chosen]
    mix = ensemble_result(members, model=MIX_NAME)
    unique = list({r.key: r for r in members}.values())
    params = sum(r.params for r in unique) if all(r.params for r in unique) else None
    return replace(mix, params=params, train_seconds=float(sum(r.train_seconds for r in unique))), chosen
