"""The ablation of Model B: each ingredient removed in turn, measured against the full model.

`ablation_table` sets each variant beside the reference on the same faces (means over seeds, paired bootstrap
intervals of the change, McNemar's test of the seed ensembles), and `describe_ablation` says in one sentence each
what every change costs or adds. What each variant switches off, in words, and the paper's claim it tests are the
variant's `recipes.Ablation`; the verdicts on those claims are `claims`'s."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from fer_helpers.core.paper import ABLATION_SPLIT, CLASS_WEIGHT_CLASSES, REPORT_SPLIT
from fer_helpers.data.results import RunResult
from fer_helpers.models import registry
from fer_helpers.models.recipes import MODEL_B_ABLATIONS
from fer_helpers.scoring.runs import by_seed, ensemble_logits, per_class_over_seeds, seed_summary
from fer_helpers.scoring.statistics import BOOT_SEED, N_BOOT, SIGNIFICANCE, bootstrap_ci, mcnemar

# Views of recipes.MODEL_B_ABLATIONS: each variant's change in words, and the paper's claims among them.
ABLATION_CHANGES: dict[str, str] = {name: ablation.change for name, ablation in MODEL_B_ABLATIONS.items()}
ABLATION_CLAIMS: dict[str, str] = {name: a.claim for name, a in MODEL_B_ABLATIONS.items() if a.claim is not None}


def ablation_table(
    reference: Sequence[RunResult],
    variants: dict[str, Sequence[RunResult]],
    splits: Sequence[str] = (ABLATION_SPLIT, REPORT_SPLIT),
    classes: Sequence[str] = CLASS_WEIGHT_CLASSES,
    n_boot: int = N_BOOT,
    seed: int = BOOT_SEED,
) -> pd.DataFrame:
    """Each variant of a model beside the full model (the reference), one row per (model, split), reference first.

    accuracy and macro_f1 are means over the seeds, with their standard deviation (ddof=1; NaN for one seed) and
    the bootstrap 95% interval of the mean. delta_* is variant minus reference in points (100 x the difference),
    with a paired bootstrap 95% interval (both models scored on the same resampled faces). mcnemar_p is McNemar's
    test of the two seed ensembles (mean softmax over seeds: one prediction per face and model, whatever the number
    of seeds). f1_<class> is each given class's F1, averaged over seeds.
    """
    if not reference:
        raise ValueError("ablation_table needs runs of the full model")
    models = {reference[0].model: by_seed(reference)} | {name: by_seed(runs) for name, runs in variants.items()}
    empty = [name for name, runs in models.items() if not runs]
    if empty:
        raise ValueError(f"no runs of {empty}")
    reference_name = reference[0].model
    base = {}
    for split in splits:
        labels = models[reference_name][0].labels[split]
        for name, runs in models.items():
            for run in runs:
                if split not in run.labels or not np.array_equal(run.labels[split], labels):
                    raise ValueError(f"{name} (seed {run.seed}) was not scored on the reference's {split} faces")
        base[split] = {
            "labels": labels,
            "preds": np.stack([r.preds(split) for r in models[reference_name]]),
            "ensemble": ensemble_logits(models[reference_name])[split].argmax(axis=1),
            "summary": seed_summary(models[reference_name], split),
        }
    rows = []
    for name, runs in models.items():
        is_reference = name == reference_name
        ensembles = ensemble_logits(runs)
        for split in splits:
            ref = base[split]
            labels = ref["labels"]
            preds = np.stack([r.preds(split) for r in runs])
            summary = ref["summary"] if is_reference else seed_summary(runs, split)
            row: dict = {
                "model": name,
                "split": split,
                "change": f"full {registry.label(name)} (reference)"
                if is_reference
                else ABLATION_CHANGES.get(name, name),
                "seeds": tuple(r.seed for r in runs),
            }
            for metric in ("accuracy", "macro_f1"):
                row[metric] = summary[metric]["mean"]
                row[f"{metric}_std"] = summary[metric]["std"]
                row[f"{metric}_ci95"] = tuple(round(v, 4) for v in bootstrap_ci(labels, preds, metric, n_boot, seed))
                if is_reference:
                    row[f"delta_{metric}"] = row[f"delta_{metric}_ci95"] = float("nan")
                else:
                    row[f"delta_{metric}"] = 100 * (summary[metric]["mean"] - ref["summary"][metric]["mean"])
                    interval = bootstrap_ci(labels, preds, metric, n_boot, seed, minus=ref["preds"])
                    row[f"delta_{metric}_ci95"] = tuple(round(100 * v, 2) for v in interval)
            row["mcnemar_p"] = (
                float("nan")
                if is_reference
                else mcnemar(labels, ensembles[split].argmax(axis=1), ref["ensemble"])["p_value"]
            )
            f1 = per_class_over_seeds(runs, split)["f1"]
            row |= {f"f1_{c}": float(f1[c]) for c in classes}
            rows.append(row)
    return pd.DataFrame(rows).set_index(["model", "split"])


def ablation_reference(table: pd.DataFrame) -> str:
    """The reference model of an ablation_table: the one row group without changes."""
    names = table.index.get_level_values("model")[table["delta_accuracy"].isna()].unique()
    if len(names) != 1:
        raise ValueError(f"an ablation table has one reference model (rows without delta), found {list(names)}")
    return str(names[0])


def signed_points(value: float) -> str:
    """A signed change in points with one decimal, never "-0.0"."""
    return f"{round(value, 1) + 0.0:+.1f}"


def _p_text(p: float) -> str:
    text = "p < 0.001" if p < 0.001 else f"p = {p:.2g}"
    return text if p < SIGNIFICANCE else f"{text}, within chance"


def _effect(delta: float, what: str) -> str:
    """'costs 4.1 points of <what>', 'adds 0.6 points of <what>' or 'leaves <what> unchanged'."""
    if round(abs(delta), 1) == 0:
        return f"leaves {what} unchanged"
    return f"{'costs' if delta < 0 else 'adds'} {abs(delta):.1f} points of {what}"


def describe_ablation(table: pd.DataFrame, split: str = ABLATION_SPLIT, reported: str = REPORT_SPLIT) -> list[str]:
    """One sentence per model of an ablation_table: the reference's level, then what each change costs or adds
    on `split` (accuracy with its paired interval and McNemar's p, macro F1) and on `reported`."""
    reference = ablation_reference(table)
    sentences = []
    for model in table.index.get_level_values("model").unique():
        judged = table.loc[(model, split)]
        other = table.loc[(model, reported)] if (model, reported) in table.index else None
        n = len(judged["seeds"])
        seeds = f"mean of {n} seeds" if n > 1 else "one seed"
        if model == reference:
            low, high = judged["accuracy_ci95"]
            accuracy = f"{100 * judged['accuracy']:.1f}% {split} accuracy (95% CI {100 * low:.1f}–{100 * high:.1f}%)"
            text = f"The full {registry.label(model)} reaches {accuracy} and {judged['macro_f1']:.3f} macro F1"
            tail = (
                "" if other is None else f"; on {reported}, {100 * other['accuracy']:.1f}% and {other['macro_f1']:.3f}"
            )
        else:
            low, high = judged["delta_accuracy_ci95"]
            change = judged["change"]
            interval = f"95% CI {signed_points(low)} to {signed_points(high)}; McNemar {_p_text(judged['mcnemar_p'])}"
            text = (
                f"{change[:1].upper() + change[1:]} {_effect(judged['delta_accuracy'], f'{split} accuracy')} "
                f"({interval}) and {_effect(judged['delta_macro_f1'], 'macro F1')}"
            )
            if other is not None:
                tail = (
                    f"; on {reported} it {_effect(other['delta_accuracy'], 'accuracy')} ({_p_text(other['mcnemar_p'])})"
                )
            else:
                tail = ""
        sentences.append(f"{text} ({seeds}){tail}.")
    return sentences
