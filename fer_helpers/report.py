"""The report: metrics.json (every headline number with its provenance), REPORT.md, and the README's results table."""
from __future__ import annotations

import json
import math
import os
import platform
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

import numpy as np
import pandas as pd

from .claims import (
    FIELD_RESULTS,
    PAPER_RESULTS,
    PAPER_TABLE2,
    REPORT_SPLIT,
    VERDICT_ORDER,
    check_paper_claims,
    format_paper_range,
    table1_parameter_count,
)
from .data import CLASS_NAMES, twin_mask
from .metrics import (
    MODEL_LABELS,
    classification_metrics,
    ensemble_result,
    expected_calibration_error,
    fit_temperature,
    per_class_report,
    softmax,
)
from .models import MODEL_NAMES
from .profiles import PROFILES, Profile
from .recipes import open_choices
from .results import RunResult, find_results, git_commit
from .statistics import BOOT_SEED, METRICS, N_BOOT, bootstrap_ci, paired_bootstrap_ci, per_class_f1_ci
from .study import SYNTHETIC_STAMP

REPO = Path(__file__).resolve().parents[1]
SPLIT_KEYS = {"PublicTest": "public_test", "PrivateTest": "private_test"}
PAPER_MODELS = tuple(PAPER_RESULTS)
# The study's main models and the notebook that trains each; everything else in a run folder is a variant or ablation.
PRODUCED_BY = {"hog_svm": "02_hog_svm", "baseline_cnn": "03_baseline_cnn"} | {
    m: "04_tuned_cnn" for m in MODEL_NAMES if m != "baseline_cnn"}
PACKAGES = ("numpy", "pandas", "scipy", "scikit-learn", "scikit-image", "torch", "lightning", "matplotlib")
README_START = "<!-- results:start -->"
README_END = "<!-- results:end -->"


def collect_results(run_root: str | Path, data_sha256: str | None = None) -> dict[str, list[RunResult]]:
    """Saved results under run_root grouped by model (the paper's three first), seeds in order.

    Only results on the data with checksum data_sha256 count, when given; of several runs of one model with
    the same seed (an older configuration left behind), the newest wins.
    """
    grouped: dict[str, dict] = {}
    for result in find_results(run_root):  # oldest first, so newer runs overwrite
        if data_sha256 is None or result.data_sha256 == data_sha256:
            grouped.setdefault(result.model, {})[result.seed] = result
    order = sorted(grouped, key=lambda m: (PAPER_MODELS.index(m) if m in PAPER_MODELS else len(PAPER_MODELS), m))
    return {m: sorted(grouped[m].values(), key=lambda r: (r.seed is None, r.seed or 0)) for m in order}


def missing_models(results_by_model: Mapping[str, list]) -> dict[str, str]:
    """The study's main models absent from a run folder, each with the notebook that trains it."""
    return {m: nb for m, nb in PRODUCED_BY.items() if not results_by_model.get(m)}


def missing_runs(results_by_model: Mapping[str, list], profile: Profile) -> list[str]:
    """What the profile's protocol trains that the run folder lacks: main models, CNN seeds, the ablation.

    Each item names what is missing and the notebook that trains it. The ablation is checked only where it trains
    on the profile's own data (no `side_train_per_class`); otherwise its results are not part of the report.
    """
    items = [f"{_label(m)}: not trained (notebook {nb})" for m, nb in missing_models(results_by_model).items()]
    for model, notebook in PRODUCED_BY.items():
        runs = results_by_model.get(model)
        if model == "hog_svm" or not runs:
            continue
        have = {r.seed for r in runs}
        lacking = [s for s in profile.seeds if s not in have]
        if lacking:
            items.append(f"{_label(model)}: seed{'s' if len(lacking) > 1 else ''} "
                         f"{', '.join(map(str, lacking))} of {', '.join(map(str, profile.seeds))} not trained "
                         f"(notebook {notebook})")
    if profile.side_train_per_class is None:
        from .recipes import MODEL_B_ABLATIONS

        absent = [name for name in MODEL_B_ABLATIONS if not results_by_model.get(name)]
        if absent:
            what = "the ablation of Model B" if len(absent) == len(MODEL_B_ABLATIONS) else ", ".join(absent)
            items.append(f"{what}: not trained (notebook 07_ablation)")
    return items


def is_main_model(name: str) -> bool:
    """HOG+SVM, the CNNs of the study and their seed ensembles (not variants or ablations)."""
    return name.removesuffix("_ensemble") in PRODUCED_BY


def package_versions() -> dict[str, str | None]:
    """Versions of Python and the scientific packages that produced the numbers."""
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def _mean_or_none(values: Sequence[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return float(np.mean(present)) if present else None


def _split_block(runs: Sequence[RunResult], split: str, keep: np.ndarray | None = None) -> dict:
    """Headline numbers of one model on one split (or the faces `keep` marks): means over seeds, bootstrap
    intervals, calibration before and after temperature scaling fitted on PublicTest, per class."""
    keep = np.ones(len(runs[0].labels[split]), dtype=bool) if keep is None else keep
    labels = runs[0].labels[split][keep]
    preds = np.stack([r.preds(split)[keep] for r in runs])
    per_run = [classification_metrics(labels, p) for p in preds]
    block: dict = {"n": int(len(labels))}
    block |= {m: float(np.mean([r[m] for r in per_run])) for m in METRICS}
    for metric in METRICS:
        block[f"{metric}_ci95"] = list(bootstrap_ci(labels, preds, metric))
    block["ci95_method"] = f"percentile bootstrap over the test images, {N_BOOT} resamples, seed {BOOT_SEED}" + (
        ", of the mean over seeds" if len(runs) > 1 else "")
    if len(runs) > 1:
        block["std"] = {m: float(np.std([r[m] for r in per_run], ddof=1)) for m in METRICS}
    block["ece"] = float(np.mean([expected_calibration_error(softmax(r.logits[split][keep]), labels) for r in runs]))
    if all("PublicTest" in r.logits for r in runs):  # the temperature is fitted where models are chosen
        temperatures = [fit_temperature(r.logits["PublicTest"], r.labels["PublicTest"]) for r in runs]
        block["temperature"] = float(np.mean(temperatures))
        block["ece_temperature_scaled"] = float(np.mean([
            expected_calibration_error(softmax(r.logits[split][keep], t), labels)
            for r, t in zip(runs, temperatures)]))
    reports = [per_class_report(labels, p) for p in preds]
    per_class = sum(reports[1:], reports[0]) / len(reports)
    f1_ci = per_class_f1_ci(labels, preds)
    block["per_class"] = {name: {k: float(v) for k, v in row.items()} | {"f1_ci95": list(map(float, f1_ci[i]))}
                          for i, (name, row) in enumerate(per_class.iterrows())}
    return block


def crowd_votes(data) -> tuple[np.ndarray, str] | None:
    """FER+ crowd votes (N,10) aligned with the data and where they came from: FER+ for FER-2013 where found,
    votes simulated from the known expressions for synthetic faces; None for FER-2013 without FER+."""
    from .ferplus import find_ferplus, join_votes, read_votes, synthetic_votes

    if not data.is_fer2013:
        return synthetic_votes(data, seed=0), "simulated from the synthetic faces' expressions"
    path = find_ferplus(None, data_path=data.source if Path(data.source).exists() else None)
    if path is None or data.ids is None:  # no votes, or faces without names to match them by
        return None
    return join_votes(data, read_votes(path)).votes, f"FER+ ({Path(path).name})"


def _crowd_block(runs: Sequence[RunResult], plurality: np.ndarray, split: str = REPORT_SPLIT) -> dict:
    """Accuracy and macro F1 against the crowd's plurality, on the faces that have an emotion plurality."""
    decided = plurality >= 0
    labels = plurality[decided]
    preds = np.stack([r.preds(split)[decided] for r in runs])
    per_run = [classification_metrics(labels, p) for p in preds]
    block: dict = {"n": int(decided.sum())}
    for metric in ("accuracy", "macro_f1"):
        block[metric] = float(np.mean([r[metric] for r in per_run]))
        block[f"{metric}_ci95"] = list(bootstrap_ci(labels, preds, metric))
    return block


def model_entry(runs: Sequence[RunResult], twins: Mapping[str, np.ndarray] | None = None,
                crowd: np.ndarray | None = None) -> dict:
    """One model's entry in metrics.json, from its runs (one per seed); `twins` marks, per split, the test faces
    with a byte-identical twin in Training, which the "<split>_dedup" blocks leave out; `crowd`, the FER+ crowd's
    plurality for each face of the report split (-1: none), which "private_test_ferplus" scores against."""
    entry: dict = {}
    for split, key in SPLIT_KEYS.items():
        if all(split in r.logits for r in runs):
            entry[key] = _split_block(runs, split)
            if twins is not None and split in twins:
                entry[f"{key}_dedup"] = _split_block(runs, split, ~twins[split])
    if crowd is not None and all(REPORT_SPLIT in r.logits for r in runs):
        entry[f"{SPLIT_KEYS[REPORT_SPLIT]}_ferplus"] = _crowd_block(runs, crowd)
    entry["seeds"] = [r.seed for r in runs]
    entry["per_seed"] = [
        {"seed": r.seed, "key": r.key, "train_seconds": r.train_seconds,
         "precision": r.extra.get("precision"), "device": r.device}
        | {SPLIT_KEYS[s]: {m: r.metrics[s][m] for m in METRICS if m in r.metrics.get(s, {})}
           for s in SPLIT_KEYS if s in r.metrics}
        for r in runs
    ]
    entry["params"] = runs[0].params
    entry["train_seconds"] = float(np.mean([r.train_seconds for r in runs]))
    entry["images_per_second"] = _mean_or_none([r.images_per_second for r in runs])
    inference = _mean_or_none([r.extra.get("inference_images_per_second") for r in runs])
    if inference is not None:
        entry["inference_images_per_second"] = inference
    entry["device"] = runs[0].device
    precisions = sorted({str(r.extra.get("precision", "32-true")) for r in runs if "best_epoch" in r.extra})
    if len(precisions) > 1:
        entry["precision_note"] = f"seeds trained in different precisions: {', '.join(precisions)}"
    model = runs[0].model
    entry["paper"] = {k: list(v) if isinstance(v, tuple) else v for k, v in PAPER_RESULTS[model].items()} \
        if model in PAPER_RESULTS else None
    return entry


PRECISION_CHECK = ("baseline_cnn", "baseline_cnn_bf16")  # the float32 run and its bf16 twin (same recipe, seed)


def precision_check(results: Mapping[str, Sequence[RunResult]], split: str = REPORT_SPLIT) -> dict | None:
    """The bf16 twin of the float32 baseline against it on the same faces: the accuracy difference and its paired
    bootstrap interval, and the precision each ran in; None until both exist for one seed."""
    reference, twin = ({r.seed: r for r in results.get(name, [])} for name in PRECISION_CHECK)
    seed = next((s for s in sorted(twin, key=str) if s in reference), None)
    if seed is None:
        return None
    a, b = twin[seed], reference[seed]
    labels = a.labels[split]
    low, high = paired_bootstrap_ci(labels, a.preds(split), b.preds(split))
    return {"seed": seed, "split": split, "precisions": [a.extra.get("precision"), b.extra.get("precision")],
            "accuracy": [float(np.mean(a.preds(split) == labels)), float(np.mean(b.preds(split) == labels))],
            "difference": float(np.mean(a.preds(split) == labels) - np.mean(b.preds(split) == labels)),
            "difference_ci95": [low, high]}


def _clean(value):
    """NaN to None (JSON has no NaN), numpy scalars to Python numbers, tuples to lists, recursively."""
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return None if math.isnan(value) else float(value)
    return value


def build_metrics(run_root: str | Path, study) -> dict:
    """Every headline number of the run in metrics.json's shape (STUDY.md §2), with the paper's beside ours.

    Models with several seeds report their mean (and "std"); models other than the paper's three with
    several seeds also get a seed ensemble entry, "<model>_ensemble".
    """
    data = study.data
    profile = getattr(study.profile, "name", study.profile)
    results = collect_results(run_root, data.sha256)
    twins = {split: twin_mask(data, split) for split in SPLIT_KEYS}
    votes = crowd_votes(data)
    label_noise, crowd = None, None
    if votes is not None:
        from .ferplus import agreement, crowd_plurality, noise_ceiling

        in_split = data.usage == REPORT_SPLIT
        crowd = crowd_plurality(votes[0][in_split])
        rate = agreement(data.labels, votes[0], data.usage).loc[(REPORT_SPLIT, "all")]
        ceiling = noise_ceiling(data.labels[in_split], votes[0][in_split])
        label_noise = {"votes": votes[1], "split": REPORT_SPLIT, "agreement": float(rate["rate"]),
                       "agreement_ci95": [float(rate["ci_low"]), float(rate["ci_high"])], "n": int(rate["n"]),
                       "ceiling_plurality": ceiling.plurality, "ceiling_label_draw": ceiling.label_draw}
    models: dict = {}
    for name, runs in results.items():
        models[name] = model_entry(runs, twins, crowd)
        if name not in PAPER_MODELS and len(runs) > 1:
            ensemble = ensemble_result(runs)
            models[ensemble.model] = model_entry([ensemble], twins, crowd) | {
                "seeds": [r.seed for r in runs], "per_seed": [], "ensemble_of": name,
                "train_seconds": ensemble.train_seconds,
            }
    claims = check_paper_claims(results, REPORT_SPLIT, is_fer2013=data.is_fer2013, profile=profile)
    return _clean({
        "profile": profile,
        "data": {"sha256": data.extras.get("source_sha256", data.sha256), "subset_sha256": data.sha256,
                 "source": Path(data.source).name, "form": data.form, "is_fer2013": bool(data.is_fer2013),
                 "subsample": data.extras.get("subsample")},
        "git_commit": git_commit(),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "packages": package_versions(),
        "report_split": REPORT_SPLIT,
        "twins": {SPLIT_KEYS[split]: {"n": int(mask.sum()), "of": int(len(mask)),
                                      "per_class": {c: int(mask[data.split(split)[1] == i].sum())
                                                    for i, c in enumerate(CLASS_NAMES)},
                                      "class_sizes": {c: int((data.split(split)[1] == i).sum())
                                                      for i, c in enumerate(CLASS_NAMES)}}
                  for split, mask in twins.items()},
        "models": models,
        "label_noise": label_noise,
        "claims": claims.to_dict("records"),
        "precision_check": precision_check(results),
        "missing": missing_runs(results, study.profile) if hasattr(study.profile, "seeds") else [],
        "gradcam": load_gradcam(getattr(study, "reports_dir", None), models),
    })


def write_metrics(metrics: dict, path: str | Path) -> Path:
    """Write metrics.json (strict JSON: no NaN)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(_clean(metrics), indent=2, allow_nan=False) + "\n")
    return path


# ---- tables as DataFrames (for notebooks and CSV) ------------------------------------------------------------


def comparison_frame(metrics: dict, split_key: str = "private_test") -> pd.DataFrame:
    """The model comparison as numbers (one row per model), with the paper's figures as printed beside them."""
    rows = []
    for name, entry in metrics["models"].items():
        block = entry.get(split_key)
        if block is None:
            continue
        paper = entry.get("paper")
        std = block.get("std", {})
        rows.append({
            "model": name, "seeds": len(entry["seeds"]),
            "accuracy": block["accuracy"], "accuracy_std": std.get("accuracy"),
            "accuracy_ci95": _interval(block["accuracy_ci95"]), "paper_accuracy": _paper_range(paper, "accuracy"),
            "macro_f1": block["macro_f1"], "macro_f1_std": std.get("macro_f1"),
            "macro_f1_ci95": _interval(block["macro_f1_ci95"]), "paper_macro_f1": _paper_range(paper, "macro_f1"),
            "weighted_f1": block["weighted_f1"], "paper_weighted_f1": _paper_range(paper, "weighted_f1"),
            "params": entry["params"], "paper_params": _paper_params(paper),
            "train_seconds": entry["train_seconds"], "images_per_second": entry["images_per_second"],
            "inference_images_per_second": entry.get("inference_images_per_second"), "device": entry["device"],
        })
    return pd.DataFrame(rows).set_index("model") if rows else pd.DataFrame()


def per_class_frame(metrics: dict, model: str | None = None, split_key: str = "private_test") -> pd.DataFrame:
    """F1 of every class for every model (model=None), or one model's precision, recall, F1 and support.

    Model B's table carries the paper's Table 2 (in words) beside our numbers.
    """
    index = pd.Index(list(CLASS_NAMES), name="class")
    if model is None:
        columns = {n: [e[split_key]["per_class"][c]["f1"] for c in CLASS_NAMES]
                   for n, e in metrics["models"].items() if split_key in e}
        return pd.DataFrame(columns, index=index)
    per_class = metrics["models"][model][split_key]["per_class"]
    frame = pd.DataFrame([per_class[c] for c in CLASS_NAMES], index=index)
    frame["support"] = frame["support"].round().astype(int)
    if "f1_ci95" in frame:
        frame["f1_ci95"] = frame["f1_ci95"].map(_interval)
    if model == "model_b":
        paper = pd.DataFrame([PAPER_TABLE2[c] for c in CLASS_NAMES], index=index,
                             columns=["paper_precision", "paper_recall", "paper_f1", "paper_note"])
        frame = frame.join(paper)
    return frame


def seed_frame(metrics: dict, split_key: str = "private_test") -> pd.DataFrame:
    """Mean ± standard deviation over seeds of each model with several, and every seed's value."""
    rows = []
    for name, entry in metrics["models"].items():
        block = entry.get(split_key)
        if block is None or len(entry["per_seed"]) < 2:
            continue
        row: dict = {"model": name, "seeds": ", ".join(str(s) for s in entry["seeds"])}
        for metric in METRICS:
            row[f"{metric}_mean"] = block[metric]
            row[f"{metric}_std"] = block["std"][metric]
            row[f"{metric}_per_seed"] = ", ".join(f"{p[split_key][metric]:.4f}" for p in entry["per_seed"])
        rows.append(row)
    return pd.DataFrame(rows).set_index("model") if rows else pd.DataFrame()


def claims_frame(metrics: dict) -> pd.DataFrame:
    """The paper's claims with our numbers and verdicts, as a table."""
    return pd.DataFrame(metrics["claims"], columns=["claim", "paper", "ours", "verdict", "basis", "detail", "data"])


# ---- prose ---------------------------------------------------------------------------------------------------


def describe_comparison(metrics: dict, split_key: str = "private_test") -> str:
    """One sentence per main model: our accuracy and macro F1 beside the paper's, in words."""
    sentences = []
    for name, entry in metrics["models"].items():
        block = entry.get(split_key)
        if block is None or not is_main_model(name):
            continue
        low, high = block["accuracy_ci95"]
        text = (f"**{_label(name)}** reaches {_pct(block)} accuracy (95% CI {100 * low:.1f}–{100 * high:.1f}%) "
                f"and macro F1 {_f1(block, 'macro_f1')}")
        paper = entry.get("paper")
        if paper:
            text += (f"; the paper reports {_paper_range(paper, 'accuracy')} and "
                     f"{_paper_range(paper, 'macro_f1')}")
        sentences.append(text + ".")
    return " ".join(sentences) if sentences else "No results yet."


def describe_claims(metrics: dict) -> str:
    """How many of the paper's claims got each verdict (VERDICT_ORDER first, then the untestable ones)."""
    counts = claims_frame(metrics)["verdict"].value_counts()
    order = [v for v in VERDICT_ORDER if v in counts] + sorted(v for v in counts.index if v not in VERDICT_ORDER)
    return (f"Of the paper's {int(counts.sum())} claims checked here: "
            + "; ".join(f"{v}: {int(counts[v])}" for v in order) + ".")


# ---- Markdown ------------------------------------------------------------------------------------------------


def markdown_table(rows: Sequence[Sequence], header: Sequence[str]) -> str:
    """A GitHub-flavoured Markdown table of already formatted cells."""
    def line(cells: Sequence) -> str:
        return "| " + " | ".join(str(c).replace("|", "\\|").replace("\n", " ") for c in cells) + " |"
    return "\n".join([line(header), line(["---"] * len(header)), *(line(r) for r in rows)])


def _flat(df: pd.DataFrame) -> pd.DataFrame:
    """The frame with a named index turned into its first column(s)."""
    return df.reset_index() if any(n is not None for n in df.index.names) else df


def dataframe_markdown(df: pd.DataFrame, digits: int = 3) -> str:
    """A DataFrame as a Markdown table, floats to `digits` decimals (smaller ones, such as p-values, in two
    significant digits rather than as zero), a named index as the first column."""
    flat = _flat(df)
    def cell(v) -> str:
        if v is None or v is pd.NA or (isinstance(v, (float, np.floating)) and math.isnan(v)):
            return "–"
        if isinstance(v, (float, np.floating)):
            return f"{v:.2g}" if 0 < abs(v) < 0.5 * 10**-digits else f"{v:.{digits}f}"
        return str(v)
    rows = [[cell(v) for v in row] for row in flat.itertuples(index=False)]
    return markdown_table(rows, [str(c) for c in flat.columns])


def _label(name: str) -> str:
    return MODEL_LABELS.get(name, name)


def _interval(ci: Sequence[float]) -> str:
    return f"{ci[0]:.3f}–{ci[1]:.3f}"


def _pct_interval(ci: Sequence[float]) -> str:
    return f"{100 * ci[0]:.1f}–{100 * ci[1]:.1f}%"


def _seeds_label(entry: dict) -> str:
    """What a row is: one seed, or the mean ± std over n seeds (and a note where their precisions differ)."""
    seeds = len(entry["per_seed"])
    label = f" (mean ± std, {seeds} seeds)" if seeds > 1 else " (one seed)" if seeds == 1 else ""
    return label + (f" [{entry['precision_note']}]" if entry.get("precision_note") else "")


def _dedup(entry: dict, split_key: str, metric: str = "accuracy") -> str:
    """A metric on the split without the test faces that have a twin in Training, with its interval."""
    block = entry.get(f"{split_key}_dedup")
    if block is None:
        return "–"
    if metric == "accuracy":
        return f"{_pct(block)} ({_pct_interval(block['accuracy_ci95'])})"
    return f"{_f1(block, metric)} ({_interval(block[f'{metric}_ci95'])})"


def _pct(block: dict, metric: str = "accuracy") -> str:
    value = f"{100 * block[metric]:.1f}"
    std = block.get("std", {}).get(metric)
    return f"{value} ± {100 * std:.1f}%" if std is not None else f"{value}%"


def _f1(block: dict, metric: str) -> str:
    std = block.get("std", {}).get(metric)
    return f"{block[metric]:.3f} ± {std:.3f}" if std is not None else f"{block[metric]:.3f}"


def _paper_range(paper: dict | None, metric: str) -> str:
    if not paper or metric not in paper:
        return "–"
    return format_paper_range(*paper[metric], percent=metric == "accuracy")


def _params(value: int | float | None) -> str:
    if value is None:
        return "–"
    return f"{value / 1e6:.2f} M" if value >= 100_000 else f"{value:,.0f}"


def _paper_params(paper: dict | None) -> str:
    return f"±{paper['params'] / 1e6:.1f} M" if paper and paper.get("params") else "–"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def _rate(value: float | None) -> str:
    return "–" if value is None else f"{value:,.0f}"


def banner(metrics: dict) -> str:
    """A loud Markdown warning when the numbers are not the full run on FER-2013; empty otherwise."""
    lines = []
    if not metrics["data"]["is_fer2013"]:
        lines.append(f"> **{SYNTHETIC_STAMP}.** Every number, table and figure here comes from the project's "
                     "synthetic faces; none of it says anything about FER-2013 or the paper.")
    if metrics["profile"] != "full":
        lines.append(f"> **Profile `{metrics['profile']}`:** a shrunken run (fewer epochs, and fewer faces or narrower "
                     "models, than the paper's protocol); the numbers are not comparable with the paper's.")
    missing = metrics.get("missing") or []
    if missing:
        lines.append(f"> **Incomplete run:** this report covers the results saved so far. The `{metrics['profile']}` "
                     "protocol also trains what is listed below; train it (`fer-study train --profile "
                     f"{metrics['profile']}`, best on a GPU) and run `make report PROFILE={metrics['profile']}` "
                     "again.\n>\n" + "\n".join(f"> - {item}" for item in missing))
    return "\n>\n".join(lines)


def comparison_table(metrics: dict, split_key: str = "private_test", main: bool = True) -> str:
    """The paper's Table 3 with ours beside it (main models), or the same columns for variants and ablations."""
    header = ["Model", "Accuracy", "95% CI", "Paper", "Without twins", "Macro F1", "95% CI", "Paper",
              "Weighted F1", "Paper", "Parameters", "Paper", "Training", "Train images/s", "Device"]
    rows = []
    for name, entry in metrics["models"].items():
        block = entry.get(split_key)
        if block is None or is_main_model(name) != main:
            continue
        paper = entry.get("paper")
        acc_ci, f1_ci = block["accuracy_ci95"], block["macro_f1_ci95"]
        rows.append([
            _label(name) + _seeds_label(entry),
            _pct(block), _pct_interval(acc_ci), _paper_range(paper, "accuracy"), _dedup(entry, split_key),
            _f1(block, "macro_f1"), _interval(f1_ci), _paper_range(paper, "macro_f1"),
            _f1(block, "weighted_f1"), _paper_range(paper, "weighted_f1"),
            _params(entry["params"]), _paper_params(paper),
            _duration(entry["train_seconds"]), _rate(entry["images_per_second"]), entry["device"],
        ])
    return markdown_table(rows, header) if rows else ""


def per_class_tables(metrics: dict, split_key: str = "private_test") -> str:
    """F1 of every class for every main model, then Model B's report beside the paper's Table 2 (in words)."""
    f1 = per_class_frame(metrics, split_key=split_key)
    f1 = f1[[m for m in f1.columns if is_main_model(m)]].rename(columns=_label)
    if f1.empty:
        return "_No results._"
    parts = ["F1 by class:", "", dataframe_markdown(f1)]
    dedup = per_class_frame(metrics, split_key=f"{split_key}_dedup")
    if not dedup.empty:
        dedup = dedup[[m for m in dedup.columns if is_main_model(m)]].rename(columns=_label)
        parts += ["", "F1 by class without the test faces that have a twin in Training:", "", dataframe_markdown(dedup)]
    if "model_b" in metrics["models"] and split_key in metrics["models"]["model_b"]:
        model_b = per_class_frame(metrics, "model_b", split_key)
        parts += ["", "Model B, per class, beside the paper's Table 2 (which gives words, not numbers):", "",
                  dataframe_markdown(model_b)]
    return "\n".join(parts)


def describe_twins(metrics: dict, split_key: str = "private_test") -> str:
    """How many test faces have a byte-identical twin in Training, in which classes, and what they add."""
    twins = metrics.get("twins", {}).get(split_key)
    if not twins:
        return ""
    split = {v: k for k, v in SPLIT_KEYS.items()}[split_key]
    sizes = twins.get("class_sizes", {})
    classes = sorted(twins["per_class"].items(), key=lambda kv: -kv[1] / max(sizes.get(kv[0], 1), 1))
    where = ", ".join(f"{c} {n} of {sizes[c]:,} ({n / sizes[c]:.0%})" if sizes.get(c) else f"{c} {n}"
                      for c, n in classes if n)
    text = (f"{twins['n']:,} of the {twins['of']:,} {split} faces ({twins['n'] / max(twins['of'], 1):.1%}) have a "
            f"byte-identical twin in Training ({where}): a model may have seen them, with their label. Without "
            "them, accuracy moves as follows:")
    changes = []
    for name, entry in metrics["models"].items():
        block, dedup = entry.get(split_key), entry.get(f"{split_key}_dedup")
        if block is None or dedup is None or not is_main_model(name):
            continue
        changes.append(f"{_label(name)} {100 * block['accuracy']:.1f}% → {100 * dedup['accuracy']:.1f}% "
                       f"({100 * (dedup['accuracy'] - block['accuracy']):+.1f} points; macro F1 "
                       f"{block['macro_f1']:.3f} → {dedup['macro_f1']:.3f})")
    text = text + " " + "; ".join(changes) + "." if changes else text
    public = metrics.get("twins", {}).get("public_test")
    if split_key == "private_test" and public and public["n"]:
        text += (f" PublicTest, where models and hyper-parameters are chosen, has {public['n']:,} such faces "
                 f"({public['n'] / max(public['of'], 1):.1%}); choices were made on it whole, as in the paper and the "
                 "field, and metrics.json gives every PublicTest number without them too (public_test_dedup).")
    return text


def label_noise_section(metrics: dict, split_key: str = "private_test") -> list[str]:
    """REPORT.md's label-noise section: how often FER-2013's label is the crowd's, and every model on both."""
    noise = metrics.get("label_noise")
    if not noise:
        return []
    low, high = noise["agreement_ci95"]
    rows = [[_label(name) + _seeds_label(e), _pct(e[split_key]), _pct(e[f"{split_key}_ferplus"]),
             _pct_interval(e[f"{split_key}_ferplus"]["accuracy_ci95"]), f"{e[f'{split_key}_ferplus']['macro_f1']:.3f}"]
            for name, e in metrics["models"].items() if f"{split_key}_ferplus" in e and is_main_model(name)]
    return ["## Label noise: FER-2013's labels against the FER+ crowd", "",
            f"Crowd votes: {noise['votes']}. On {noise['split']}, FER-2013's single label equals the crowd's most-voted "
            f"emotion on {noise['agreement']:.1%} of the {noise['n']:,} faces with one (95% CI {low:.1%}–{high:.1%}). "
            f"A predictor that answered each face's most-voted emotion would score {noise['ceiling_plurality']:.1%} "
            f"against FER-2013's labels; one crowd vote drawn at random agrees with the label "
            f"{noise['ceiling_label_draw']:.1%} of the time. Notebook 08 shows the reasoning and trains on the votes.",
            "", markdown_table(rows, ["Model", "Accuracy (FER-2013 labels)", "Accuracy (crowd plurality)", "95% CI",
                                      "Macro F1 (crowd)"]), ""]


def calibration_frame(metrics: dict, split_key: str = "private_test") -> pd.DataFrame:
    """Expected calibration error before and after one temperature fitted on PublicTest, per model."""
    rows = [{"model": _label(name), "temperature (fitted on PublicTest)": e[split_key]["temperature"],
             "ECE": e[split_key]["ece"], "ECE after temperature scaling": e[split_key]["ece_temperature_scaled"]}
            for name, e in metrics["models"].items() if split_key in e and "temperature" in e[split_key]]
    return pd.DataFrame(rows).set_index("model") if rows else pd.DataFrame()


def field_table(metrics: dict, split_key: str = "private_test") -> str:
    """The field's numbers on FER-2013 (human, the 2013 winner, the best single network) beside ours."""
    rows = [[what, f"{100 * accuracy:.4g}%", "–", source, measured]
            for what, accuracy, source, measured in FIELD_RESULTS]
    for name, entry in metrics["models"].items():
        block = entry.get(split_key)
        if block is None or not is_main_model(name):
            continue
        rows.append([f"{_label(name)}{_seeds_label(entry)}", _pct(block), _dedup(entry, split_key),
                     "this study", f"{metrics.get('report_split', REPORT_SPLIT)}, {metrics['profile']} profile"])
    return markdown_table(sorted(rows, key=lambda r: float(r[1].split("%")[0].split(" ")[0])),
                          ["Who", "Accuracy", "Without twins", "Source", "Measured on"])


def claims_table(metrics: dict) -> str:
    """The paper's claims with our numbers and verdicts, in Markdown."""
    def ours(value) -> str:
        if value is None:
            return "–"
        return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.3g}"
    rows = [[c["claim"], c["paper"], ours(c["ours"]), f"**{c['verdict']}**", c["basis"], c["detail"]]
            for c in metrics["claims"]]
    return markdown_table(rows, ["Claim", "Paper", "Ours", "Verdict", "Basis", "Detail"])


def differences(metrics: dict) -> list[str]:
    """Where our protocol or results depart from the paper's, as bullet points."""
    models = metrics["models"]
    items = [
        "**Validation protocol.** The paper splits its training data into train and validation sets without "
        "saying how; we use FER-2013's own splits: train on Training, select models, epochs and C on PublicTest "
        f"only, and report {metrics.get('report_split', REPORT_SPLIT)} once.",
        "**Ranges.** The paper gives ranges (\"56–58%\") without saying how they were obtained; we report the "
        "mean ± standard deviation over seeds and percentile-bootstrap 95% intervals over the test images.",
    ]
    baseline = models.get("baseline_cnn", {}).get("params")
    items.append(
        f"**Parameters of the baseline.** Table 1 as written has {table1_parameter_count():,} parameters "
        f"({table1_parameter_count(extra_conv=True):,} with its optional fourth convolution), not the "
        f"\"±1.0 M\" of Table 3; we build Table 1 exactly"
        + (f" ({baseline:,} parameters)." if baseline else ".")
    )
    model_b = models.get("model_b", {}).get("params")
    items.append(
        "**Model B's widths.** The paper lists its ingredients (four convolution blocks, BatchNorm, LeakyReLU, "
        "global average pooling, dropout, class weights) and \"±2.5 M\" parameters, not its layer widths; "
        + (f"ours has {model_b:,} parameters." if model_b else "ours are set out in notebook 04.")
    )
    weights = next((c for c in metrics["claims"] if c["claim"].startswith("Class weights")), None)
    if weights:
        items.append(f"**The class-weight claim** is measured as {weights['basis'].rsplit(',', 1)[0]}.")
    items.append("**Calibration.** HOG+SVM's scores are SVM decision values, not probabilities; their softmax is "
                 "shown for completeness, so its calibration error says little.")
    return items


# Results replaced after their test score had been seen: what, when, and why, so that a reader can weigh them.
REPLACED_RUNS: tuple[str, ...] = (
    "The baseline CNN was first trained for a fixed 20 epochs (PrivateTest accuracy seen, then replaced by the "
    "paper's protocol: early stopping on PublicTest, at most 100 epochs). The replacement follows the paper's "
    "protocol rather than the test score, but the first score had been seen.",
)

GRADCAM_FILE = "gradcam.json"


def write_gradcam_summary(
    reports_dir: str | Path,
    explained: Mapping[str, RunResult],
    figures: Mapping[str, str | Path],
    tables: Mapping[str, pd.DataFrame],
) -> Path:
    """Save what notebook 06 measured as <reports_dir>/gradcam.json: the runs it explained, its figures and tables.

    05_evaluation puts it into metrics.json and REPORT.md while those runs are still the report's (`load_gradcam`).
    """
    reports_dir = Path(reports_dir)
    summary = {
        "models": {name: {"key": r.key, "seed": r.seed} for name, r in explained.items()},
        "figures": {caption: Path(os.path.relpath(Path(f).resolve(), reports_dir.resolve())).as_posix()
                    for caption, f in figures.items()},
        "tables": {caption: _flat(df).to_dict("records") for caption, df in tables.items()},
    }
    path = reports_dir / GRADCAM_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(_clean(summary), indent=2, allow_nan=False) + "\n")
    return path


def load_gradcam(reports_dir: str | Path | None, models: Mapping[str, dict]) -> dict | None:
    """Notebook 06's summary, or None when there is none or it explained other runs than the report's models.

    models: metrics.json's "models"; 06 explains the lowest seed of each model, the first of its "per_seed".
    """
    path = Path(reports_dir) / GRADCAM_FILE if reports_dir is not None else None
    if path is None or not path.exists():
        return None
    summary = json.loads(path.read_text())
    for name, run in summary.get("models", {}).items():
        per_seed = models.get(name, {}).get("per_seed") or [{}]
        if per_seed[0].get("key") != run.get("key"):
            return None
    return summary if summary.get("models") else None


def gradcam_section(metrics: dict) -> list[str]:
    """REPORT.md's Grad-CAM section (the paper's Figure 2) from metrics["gradcam"], figure links relative to it."""
    summary = metrics.get("gradcam")
    parts = ["## Grad-CAM (the paper's Figure 2)", ""]
    if not summary:
        return parts + ["_Not measured for these results: run notebooks/06_gradcam.ipynb, then "
                        "notebooks/05_evaluation.ipynb (or `make report`)._", ""]
    runs = "; ".join(f"{_label(name)}, seed {run['seed']} (run `{run['key']}`)"
                     for name, run in summary["models"].items())
    parts += [f"Heatmaps of {runs} on PublicTest faces, measured in notebook 06. The paper's Figure 2 proper, "
              "heatmaps over single faces, is in that notebook's output: the project commits no image from FER-2013.",
              ""]
    for caption, figure in summary["figures"].items():
        parts += [f"![{caption}]({figure})", "", f"*{caption}*", ""]
    for caption, records in summary["tables"].items():
        # JSON keeps a count column with a blank cell as floats; convert_dtypes makes it whole numbers again
        parts += [f"### {caption}", "", dataframe_markdown(pd.DataFrame(records).convert_dtypes()), ""]
    return parts


def write_report_md(
    metrics: dict,
    tables: Mapping[str, pd.DataFrame],
    figures: Mapping[str, str | Path],
    path: str | Path,
) -> Path:
    """Write REPORT.md, a results section in the paper's order: comparison, per class, figures, claims, differences.

    tables: caption -> DataFrame (extra tables such as McNemar p-values or calibration, in order);
    figures: caption -> image file (linked relative to REPORT.md).
    """
    path = Path(path)
    split = metrics.get("report_split", REPORT_SPLIT)
    split_key = SPLIT_KEYS[split]
    data = metrics["data"]
    parts = ["# Results", ""]
    if banner(metrics):
        parts += [banner(metrics), ""]
    parts += [
        f"Generated from `metrics.json`: profile `{metrics['profile']}`, data `{data['source']}` ({data['form']}, "
        f"sha256 `{data['sha256'][:16]}`), commit `{metrics['git_commit'] or 'unknown'}`, {metrics['created']}. "
        f"Models were selected on PublicTest; every number below is on {split} unless it says otherwise.",
        "",
        "## Comparison of the models (the paper's Table 3)",
        "",
        "Ours beside the paper's. Each row says what it is: one seed, or the mean ± standard deviation over its "
        f"seeds. Intervals are percentile-bootstrap 95% intervals over the test faces ({N_BOOT:,} resamples, the "
        "same everywhere in this report, the README and the model cards). *Without twins*: the same split "
        "without the faces that have a byte-identical twin in Training.",
        "",
        comparison_table(metrics, split_key) or "_No results._",
        "",
        describe_comparison(metrics, split_key),
        "",
        describe_twins(metrics, split_key),
        "",
    ]
    variants = comparison_table(metrics, split_key, main=False)
    if variants:
        parts += ["### Variants and ablations", "", variants, ""]
    parts += ["## Per-class results (the paper's Table 2)", "", per_class_tables(metrics, split_key), ""]
    if figures:
        parts += ["## Figures", ""]
        for caption, figure in figures.items():
            link = Path(os.path.relpath(Path(figure).resolve(), path.parent.resolve())).as_posix()
            parts += [f"![{caption}]({link})", "", f"*{caption}*", ""]
    for caption, table in tables.items():
        parts += [f"## {caption}", "", dataframe_markdown(table), ""]
    calibration = calibration_frame(metrics, split_key)
    if not calibration.empty:
        parts += ["## Calibration before and after temperature scaling", "",
                  "Expected calibration error (15 bins) on " + split + ", before and after dividing each model's "
                  "logits by one temperature fitted on PublicTest (negative log-likelihood).", "",
                  dataframe_markdown(calibration), ""]
    check = metrics.get("precision_check")
    if check:
        low, high = check["difference_ci95"]
        parts += ["## bf16 against float32", "",
                  f"The baseline CNN, seed {check['seed']}, trained once in {check['precisions'][0]} and once in "
                  f"{check['precisions'][1]}: {check['split']} accuracy {100 * check['accuracy'][0]:.1f}% against "
                  f"{100 * check['accuracy'][1]:.1f}%, a difference of {100 * check['difference']:+.1f} points "
                  f"(paired bootstrap 95% CI {100 * low:+.1f} to {100 * high:+.1f}).", ""]
    parts += label_noise_section(metrics, split_key)
    parts += ["## FER-2013 in the field", "",
              "Published numbers on FER-2013 beside ours; theirs are as their sources report them.", "",
              field_table(metrics, split_key), ""]
    parts += gradcam_section(metrics)
    parts += ["## The paper's claims, tested", "", describe_claims(metrics), "", claims_table(metrics), "",
              "## Choices the paper leaves open", "",
              "Generated from the recipes and models the runs were trained with.", "",
              dataframe_markdown(open_choices(metrics["profile"] if metrics["profile"] in PROFILES else "full")), "",
              "## Runs replaced", "", *(f"- {item}" for item in REPLACED_RUNS), "",
              "## Differences from the paper", "", *(f"- {item}" for item in differences(metrics)), "",
              "## Provenance", "",
              "Packages: " + ", ".join(f"{k} {v}" for k, v in metrics["packages"].items() if v) + ".", ""]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(parts))
    return path


def readme_results_table(metrics: dict) -> str:
    """The README's results table: the main models on the report split, with the paper's accuracy beside ours."""
    split = metrics.get("report_split", REPORT_SPLIT)
    rows = []
    for name, entry in metrics["models"].items():
        block = entry.get(SPLIT_KEYS[split])
        if block is None or not is_main_model(name):
            continue
        rows.append([_label(name) + _seeds_label(entry),
                     f"{_pct(block)} ({_pct_interval(block['accuracy_ci95'])})", _dedup(entry, SPLIT_KEYS[split]),
                     _f1(block, "macro_f1"), _f1(block, "weighted_f1"),
                     _paper_range(entry.get("paper"), "accuracy"), _params(entry["params"]),
                     f"{_duration(entry['train_seconds'])} on {entry['device']}"])
    table = markdown_table(rows, [f"Model ({split})", "Accuracy (95% CI)", "Without twins", "Macro F1", "Weighted F1",
                                  "Paper's accuracy", "Parameters", "Training"])
    data = metrics["data"]
    note = (f"Profile `{metrics['profile']}`, {'FER-2013' if data['is_fer2013'] else SYNTHETIC_STAMP} "
            f"(`{data['source']}`, sha256 `{data['sha256'][:12]}`). *Without twins*: "
            f"{metrics.get('report_split', REPORT_SPLIT)} without the faces that have a byte-identical twin in "
            "Training. For scale: " + "; ".join(f"{what} {100 * acc:.4g}%" for what, acc, _, _ in FIELD_RESULTS)
            + " (sources in the report).")
    noise = metrics.get("label_noise")
    if noise:
        note += (f" Label noise: FER-2013's label equals the FER+ crowd's most-voted emotion on {noise['agreement']:.1%} "
                 f"of {noise['split']} faces, and answering the crowd's choice would score "
                 f"{noise['ceiling_plurality']:.1%}; the table's models score " + ", ".join(
                     f"{_label(n)} {100 * e[SPLIT_KEYS[split] + '_ferplus']['accuracy']:.1f}%"
                     for n, e in metrics["models"].items() if SPLIT_KEYS[split] + "_ferplus" in e and is_main_model(n))
                 + " against the crowd (notebook 08).")
    note += " Details, figures and the paper's claims tested: [reports/REPORT.md](reports/REPORT.md)."
    missing = metrics.get("missing") or []
    if missing:
        note += " Incomplete run, still to train: " + "; ".join(missing) + "."
    return f"{table}\n\n{note}"


def update_readme(readme_path: str | Path, metrics: dict) -> bool:
    """Replace the README's results block (between the results markers) with the table; True if it changed."""
    path = Path(readme_path)
    text = path.read_text()
    start, end = text.find(README_START), text.find(README_END)
    if start < 0 or end < start:
        raise ValueError(f"{path.name} has no '{README_START}' ... '{README_END}' block to update")
    new = f"{text[:start + len(README_START)]}\n{readme_results_table(metrics)}\n{text[end:]}"
    if new == text:
        return False
    path.write_text(new)
    return True


def readme_block(readme_path: str | Path) -> str | None:
    """The text between the README's results markers (stripped), or None without markers."""
    text = Path(readme_path).read_text()
    start, end = text.find(README_START), text.find(README_END)
    if start < 0 or end < start:
        return None
    return text[start + len(README_START):end].strip()
