"""metrics.json: every headline number of a run folder with its provenance, the input of REPORT.md and the README.

It gathers the saved results (`collect_results`), scores each model on each test split with intervals,
calibration and per-class numbers (`model_entry`), checks the paper's claims, and takes in what notebook 06
measured with Grad-CAM (gradcam.json, while it still describes the report's runs).
"""

from __future__ import annotations

import json
import math
import platform
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

import numpy as np
import pandas as pd

from fer_helpers.analysis.claims import NEAR_FREE_COLUMNS, TWIN_FREE_COLUMNS, check_paper_claims
from fer_helpers.analysis.fer_package import load_result as fer_package_result
from fer_helpers.analysis.tta import CHOICE_SPLIT as TTA_CHOICE_SPLIT
from fer_helpers.analysis.tta import TTA_ORDER, tta_candidates, tta_runs
from fer_helpers.core.files import atomic_write_text, relative_link
from fer_helpers.core.hardware import PRECISION_NAMES
from fer_helpers.core.markdown import index_as_columns
from fer_helpers.core.paper import PAPER_RESULTS, REPORT_SPLIT
from fer_helpers.core.paths import METRICS_SCHEMA, REPO
from fer_helpers.core.profiles import Profile
from fer_helpers.data.fer2013 import (
    CLASS_NAMES,
    NEAR_DUPLICATE_SHIFT,
    NEAR_DUPLICATE_THRESHOLD,
    near_duplicate_counts,
    near_duplicates,
    twin_mask,
)
from fer_helpers.data.results import RunResult, find_results, git_commit
from fer_helpers.models import registry
from fer_helpers.models.recipes import INFERENCE_TARGET
from fer_helpers.scoring.metrics import (
    classification_metrics,
    expected_calibration_error,
    fit_temperature,
    per_class_report,
    softmax,
)
from fer_helpers.scoring.runs import MIX_NAME, MIX_SPLIT, best_mix, by_seed, cnn_pool, ensemble_result
from fer_helpers.scoring.statistics import BOOT_SEED, METRICS, N_BOOT, bootstrap_ci, per_class_f1_ci
from fer_helpers.train.inference import TTA_VIEWS

SPLIT_KEYS = {"PublicTest": "public_test", "PrivateTest": "private_test"}
PAPER_MODELS = tuple(PAPER_RESULTS)
PACKAGES = ("numpy", "pandas", "scipy", "scikit-learn", "scikit-image", "torch", "lightning", "matplotlib")
PRECISION_CHECK = ("baseline_cnn", "baseline_cnn_bf16")  # the float32 run and its bf16 twin (same recipe, seed)
METRICS_FILE = "metrics.json"  # in a run's reports folder (the committed one: reports/)
GRADCAM_FILE = "gradcam.json"


# ---- the runs ----------------------------------------------------------------------------------------------------


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
    return {m: by_seed(grouped[m].values()) for m in order}


def missing_models(results_by_model: Mapping[str, list]) -> dict[str, str]:
    """The study's main models absent from a run folder, each with the notebook that trains it."""
    return {m: nb for m, nb in registry.notebooks().items() if not results_by_model.get(m)}


def missing_runs(results_by_model: Mapping[str, list], profile: Profile, votes: bool = False) -> list[str]:
    """What the profile's plan (`plan.plan_runs`) trains for the report that the run folder lacks: the main
    models and their seeds, the ablation, and with crowd `votes` at hand the crowd twins of notebook 08.

    Each item names what is missing and the notebook that trains it. The ablation is checked only where it trains
    on the profile's own data (no `side_train_per_class`); otherwise its results are not part of the report.
    """
    from fer_helpers.train.plan import plan_runs

    plan = plan_runs(profile)

    def lacking(name: str, step: str) -> tuple[list, list]:
        planned = sorted({run.seed for run in plan if run.step == step and run.name == name}, key=str)
        have = {r.seed for r in results_by_model.get(name, [])}
        return planned, [seed for seed in planned if seed not in have]

    def seeds(missing: list, planned: list) -> str:
        return f"seed{'s' if len(missing) > 1 else ''} {', '.join(map(str, missing))} of {', '.join(map(str, planned))}"

    items = [f"{registry.label(m)}: not trained (notebook {nb})" for m, nb in missing_models(results_by_model).items()]
    for model, notebook in registry.notebooks().items():
        planned, missing = lacking(model, model)
        if results_by_model.get(model) and missing and None not in planned:
            items.append(f"{registry.label(model)}: {seeds(missing, planned)} not trained (notebook {notebook})")
    if profile.side_train_per_class is None:
        variants = list(dict.fromkeys(r.name for r in plan if r.step == "ablation" and r.name != "model_b"))
        absent = [name for name in variants if not results_by_model.get(name)]
        if absent:
            what = "the ablation of Model B" if len(absent) == len(variants) else ", ".join(absent)
            items.append(f"{what}: not trained (notebook 07_ablation)")
        short = {name: lacking(name, "ablation") for name in variants if name not in absent}
        short = {name: pair for name, pair in short.items() if pair[1]}
        if short:  # the seeds beyond those every trained variant has
            planned = next(iter(short.values()))[0]
            missing = sorted({seed for _, lack in short.values() for seed in lack}, key=str)
            items.append(f"the ablation of Model B: {seeds(missing, planned)} not trained (notebook 07_ablation)")
    if votes:
        absent = [
            registry.label(r.config.model) for r in plan if r.step == "crowd" and not results_by_model.get(r.name)
        ]
        if absent:
            twins = f"the crowd twin{'s' if len(absent) > 1 else ''} of {' and '.join(absent)}"
            items.append(f"{twins}: not trained (notebook 08_label_noise)")
    return items


def package_versions() -> dict[str, str | None]:
    """Versions of Python and the scientific packages that produced the numbers."""
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


# ---- one model's entry -------------------------------------------------------------------------------------------


def _max_or_none(values: Sequence[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return float(max(present)) if present else None


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
        ", of the mean over seeds" if len(runs) > 1 else ""
    )
    if len(runs) > 1:
        block["std"] = {m: float(np.std([r[m] for r in per_run], ddof=1)) for m in METRICS}
    block["ece"] = float(np.mean([expected_calibration_error(softmax(r.logits[split][keep]), labels) for r in runs]))
    if all("PublicTest" in r.logits for r in runs):  # the temperature is fitted where models are chosen
        temperatures = [fit_temperature(r.logits["PublicTest"], r.labels["PublicTest"]) for r in runs]
        block["temperature"] = float(np.mean(temperatures))
        block["ece_temperature_scaled"] = float(
            np.mean(
                [
                    expected_calibration_error(softmax(r.logits[split][keep], t), labels)
                    for r, t in zip(runs, temperatures)
                ]
            )
        )
    reports = [per_class_report(labels, p) for p in preds]
    per_class = sum(reports[1:], reports[0]) / len(reports)
    f1_ci = per_class_f1_ci(labels, preds)
    block["per_class"] = {
        name: {k: float(v) for k, v in row.items()} | {"f1_ci95": list(map(float, f1_ci[i]))}
        for i, (name, row) in enumerate(per_class.iterrows())
    }
    return block


def crowd_votes(data) -> tuple[np.ndarray, str] | None:
    """FER+ crowd votes (N,10) aligned with the data and where they came from: FER+ for FER-2013 where found,
    votes simulated from the known expressions for synthetic faces; None for FER-2013 without FER+."""
    from fer_helpers.data.ferplus import find_ferplus, join_votes, read_votes, synthetic_votes

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


def model_entry(
    runs: Sequence[RunResult],
    twins: Mapping[str, np.ndarray] | None = None,
    crowd: np.ndarray | None = None,
    near: Mapping[str, np.ndarray] | None = None,
    n_train: int | None = None,
) -> dict:
    """One model's entry in metrics.json, from its runs (one per seed); `twins` marks, per split, the test faces
    with a byte-identical twin in Training, which the "<split>_dedup" blocks leave out; `near`, those with a
    near-duplicate there (data.near_duplicates, twins included), which the "<split>_dedup_near" blocks leave out;
    `crowd`, the FER+ crowd's plurality for each face of the report split (-1: none), which
    "private_test_ferplus" scores against; `n_train`, the Training faces an epoch goes through, which with each
    run's epochs gives the training images it processed (`train_images`; a classical model goes through them once)."""
    entry: dict = {}
    for split, key in SPLIT_KEYS.items():
        if all(split in r.logits for r in runs):
            entry[key] = _split_block(runs, split)
            if twins is not None and split in twins:
                entry[f"{key}_dedup"] = _split_block(runs, split, ~twins[split])
            if near is not None and split in near:
                entry[f"{key}_dedup_near"] = _split_block(runs, split, ~near[split])
    if crowd is not None and all(REPORT_SPLIT in r.logits for r in runs):
        entry[f"{SPLIT_KEYS[REPORT_SPLIT]}_ferplus"] = _crowd_block(runs, crowd)
    entry["seeds"] = [r.seed for r in runs]
    entry["per_seed"] = [
        {
            "seed": r.seed,
            "key": r.key,
            "train_seconds": r.train_seconds,
            "precision": r.extra.get("precision"),
            "device": r.device,
            "epochs": _epochs(r),
        }
        | {
            SPLIT_KEYS[s]: {m: r.metrics[s][m] for m in METRICS if m in r.metrics.get(s, {})}
            for s in SPLIT_KEYS
            if s in r.metrics
        }
        for r in runs
    ]
    entry["params"] = runs[0].params
    # One seed's cost, from its least-disturbed seed: a seed trained beside other work, or resumed after an
    # interruption, takes longer than the model costs. per_seed keeps every seed's time. Inference likewise.
    fastest = min(runs, key=lambda r: r.train_seconds)
    entry["train_seconds"] = float(fastest.train_seconds)
    entry["images_per_second"] = fastest.images_per_second
    if n_train is not None:  # the cost of that seed in training images (crowd runs train on the faces with votes)
        entry["train_images"] = _epochs(fastest) * int(fastest.extra.get("crowd_train_faces", n_train))
    if "precision" in fastest.extra:  # what that rate was trained in
        entry["precision"] = fastest.extra["precision"]
    inference = _max_or_none([r.extra.get("inference_images_per_second") for r in runs])
    if inference is not None:
        entry["inference_images_per_second"] = inference
    entry["device"] = runs[0].device
    seeds_by_precision: dict[str, list] = {}
    for r in runs:
        if "best_epoch" in r.extra:  # a CNN
            seeds_by_precision.setdefault(str(r.extra.get("precision", "32-true")), []).append(r.seed)
    if len(seeds_by_precision) > 1:
        entry["precision_note"] = "seeds trained in different precisions: " + ", ".join(
            f"{PRECISION_NAMES.get(precision, precision)} (seed{'s' if len(seeds) > 1 else ''} "
            f"{', '.join(map(str, sorted(seeds, key=str)))})"
            for precision, seeds in sorted(seeds_by_precision.items(), key=lambda item: min(map(str, item[1])))
        )
    model = runs[0].model
    entry["paper"] = (
        {k: list(v) if isinstance(v, tuple) else v for k, v in PAPER_RESULTS[model].items()}
        if model in PAPER_RESULTS
        else None
    )
    return entry


def _epochs(run: RunResult) -> int:
    """Epochs a run trained (a CNN's history; a classical model goes through its training faces once)."""
    return int(run.extra.get("stopped_epoch", 1))


def precision_check(results: Mapping[str, Sequence[RunResult]], split: str = REPORT_SPLIT) -> dict | None:
    """The bf16 twin of the float32 baseline against it on the same faces: the accuracy difference and its paired
    bootstrap interval, and the precision each ran in; None until both exist for one seed."""
    reference, twin = ({r.seed: r for r in results.get(name, [])} for name in PRECISION_CHECK)
    seed = next((s for s in sorted(twin, key=str) if s in reference), None)
    if seed is None:
        return None
    a, b = twin[seed], reference[seed]
    labels = a.labels[split]
    low, high = bootstrap_ci(labels, a.preds(split), minus=b.preds(split))
    if low <= 0 <= high:
        verdict = "the interval holds zero, so no accuracy cost of bf16 is found at this sample size"
    else:
        verdict = f"bf16 is {'less' if high < 0 else 'more'} accurate than float32 beyond the bootstrap's noise"
    return {
        "seed": seed,
        "split": split,
        "precisions": [a.extra.get("precision"), b.extra.get("precision")],
        "accuracy": [float(np.mean(a.preds(split) == labels)), float(np.mean(b.preds(split) == labels))],
        "difference": float(np.mean(a.preds(split) == labels) - np.mean(b.preds(split) == labels)),
        "difference_ci95": [low, high],
        "verdict": verdict,
    }


# ---- metrics.json ------------------------------------------------------------------------------------------------


def _json_safe(value):
    """The value as strict JSON takes it, recursively: NaN to None (JSON has no NaN), numpy scalars to Python
    numbers, tuples to lists, keys to strings."""
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return None if math.isnan(value) else float(value)
    return value


def _write_json(value, path: str | Path) -> Path:
    """Write a value as strict JSON (no NaN), indented, atomically."""
    return atomic_write_text(path, json.dumps(_json_safe(value), indent=2, allow_nan=False) + "\n")


def _crowd_training(results: Mapping[str, Sequence[RunResult]], votes: np.ndarray, usage: np.ndarray) -> list[dict]:
    """Each run trained on the crowd's votes beside its label twin of the same seed, on both splits and both label
    sets (ferplus.target_comparison), one row per model and split; [] when no crowd run has a twin."""
    from fer_helpers.core.config import CROWD_SUFFIX
    from fer_helpers.scoring.label_noise import target_comparison

    pairs = {}
    for name, runs in results.items():
        base = name.removesuffix(CROWD_SUFFIX)
        twins = {r.seed: r for r in results.get(base, [])} if base != name else {}
        crowd_run = next((r for r in runs if r.seed in twins), None)
        if crowd_run is not None:
            pairs[base] = {"labels": twins[crowd_run.seed], "crowd": crowd_run}
    if not pairs:
        return []
    table = target_comparison(pairs, votes, usage)
    return [
        {"model": model, "split": split, "seed": pairs[model]["crowd"].seed, **row}
        for (model, split), row in table.to_dict("index").items()
    ]


def _label_noise(data, results: Mapping[str, Sequence[RunResult]]) -> tuple[dict | None, np.ndarray | None]:
    """How often FER-2013's label is the crowd's on the report split, with the label-noise reference points (the
    vote-share regression fitted on Training among them), where the crowd moves the class boundaries, the
    crowd-trained runs against their label twins, and the crowd's plurality for each face of the report split;
    (None, None) without crowd votes."""
    votes = crowd_votes(data)
    if votes is None:
        return None, None
    from fer_helpers.data.ferplus import crowd_plurality
    from fer_helpers.scoring.label_noise import (
        NEUTRAL,
        agreement,
        boundary_shift,
        disagreement_toward,
        reference_points,
        vote_share_reference,
    )

    in_split = data.usage == REPORT_SPLIT
    crowd = crowd_plurality(votes[0][in_split])
    rate = agreement(data.labels, votes[0], data.usage).loc[(REPORT_SPLIT, "all")]
    points = reference_points(data.labels[in_split], votes[0][in_split])
    shares = vote_share_reference(data.labels, votes[0], data.usage, split=REPORT_SPLIT)
    shift = boundary_shift(data.labels[in_split], votes[0][in_split])
    neutral = CLASS_NAMES[NEUTRAL]
    label_noise = {
        "votes": votes[1],
        "split": REPORT_SPLIT,
        "agreement": float(rate["rate"]),
        "agreement_ci95": [float(rate["ci_low"]), float(rate["ci_high"])],
        "n": int(rate["n"]),
        "reference_n": points.n,
        "reference_plurality": points.plurality,
        "reference_label_draw": points.label_draw,
        "reference_vote_share": {
            "accuracy": shares.accuracy,
            "accuracy_ci95": list(shares.accuracy_ci95),
            "n": shares.n,
            "n_fit": shares.n_fit,
            "fit_split": shares.fit_split,
            "method": "multinomial logistic regression from the ten FER+ vote shares to the FER-2013 label",
        },
        "boundary_shift": {
            "toward": neutral,
            "to_toward": {c: float(shift.loc[c, f"to_{neutral}"]) for c in CLASS_NAMES},
            "label_share": float(shift.loc[neutral, "label_share"]),
            "plurality_share": float(shift.loc[neutral, "plurality_share"]),
            "disagreement": disagreement_toward(data.labels[in_split], votes[0][in_split]),
        },
        "crowd_training": _crowd_training(results, votes[0], data.usage),
    }
    return label_noise, crowd


def near_duplicate_summary(table: pd.DataFrame) -> dict:
    """metrics.json's record of one test split's near-duplicates in Training (data.near_duplicates): how many, per
    class, how many carry their match's label, and how they were found."""
    counts = near_duplicate_counts(table)
    return {
        "n": int(counts.loc["all", "near_duplicates"]),
        "of": int(counts.loc["all", "faces"]),
        "twins": int(counts.loc["all", "twins"]),
        "same_label": int(counts.loc["all", "same_label"]),
        "per_class": {c: int(counts.loc[c, "near_duplicates"]) for c in CLASS_NAMES},
        "class_sizes": {c: int(counts.loc[c, "faces"]) for c in CLASS_NAMES},
        "threshold": NEAR_DUPLICATE_THRESHOLD,
        "method": (
            "byte-identical, or the highest correlation of high-pass images (each less its Gaussian blur) over "
            f"shifts of up to {NEAR_DUPLICATE_SHIFT} pixels and a mirror image at or above the threshold, against "
            "the Training faces nearest in 16x16 thumbnails; a lower bound (copies at another scale are missed)"
        ),
    }


def mix_record(pool: Sequence[RunResult], chosen: Sequence[int]) -> dict:
    """metrics.json's record of the greedy mix: the candidates with their accuracy on the choosing split, and each
    step of the selection with the mix's accuracy there after it."""
    labels = pool[0].labels[MIX_SPLIT]
    total = np.zeros_like(pool[0].probs(MIX_SPLIT), dtype=np.float64)
    steps = []
    for i in chosen:
        total += pool[i].probs(MIX_SPLIT)
        steps.append({"added": pool[i].key, "accuracy": float(np.mean(total.argmax(axis=1) == labels))})
    return {
        "split": MIX_SPLIT,
        "method": "greedy forward selection with replacement (Caruana et al. 2004) over the CNN runs' PublicTest "
        "probabilities, mean softmax, stopped when PublicTest accuracy no longer rises; ties go to the first run "
        "by model name, then seed",
        "with_replacement": True,
        "pool": [
            {"model": r.model, "seed": r.seed, "key": r.key, "accuracy": float(np.mean(r.preds(MIX_SPLIT) == labels))}
            for r in pool
        ],
        "steps": steps,
    }


def build_metrics(
    run_root: str | Path,
    study,
    near_tables: Mapping[str, pd.DataFrame] | None = None,
    inference: bool = True,
    results: Mapping[str, list[RunResult]] | None = None,
) -> dict:
    """Every headline number of the run in metrics.json's shape (STUDY.md §2), with the paper's beside ours.

    Models with several seeds report their mean (and "std"). With `inference`, what inference adds, each an entry
    of its own beside the single models and marked "inference": every model with several seeds gets a seed
    ensemble, "<model>_ensemble"; each main CNN whose weights are at hand its test-time augmentation chosen on
    PublicTest (tta.tta_runs, "<model>_tta_<mode>", logits cached under <run_root>/inference/); and the CNN runs
    together the mix that greedy selection chooses on PublicTest (runs.best_mix, `MIX_NAME`). `near_tables`:
    data.near_duplicates of each test split, where the caller has them (found here otherwise); `results`: the run
    folder's `collect_results`, where the caller has them (read here otherwise).
    """
    data = study.data
    profile = getattr(study.profile, "name", study.profile)
    results = collect_results(run_root, data.sha256) if results is None else results
    twins = {split: twin_mask(data, split) for split in SPLIT_KEYS}
    n_train = int((data.usage == "Training").sum())
    if near_tables is None:
        near_tables = {split: near_duplicates(data, split) for split in SPLIT_KEYS}
    near = {split: table["near"].to_numpy() for split, table in near_tables.items()}
    label_noise, crowd = _label_noise(data, results)
    models: dict = {}
    tta = {run.model: run for run in tta_candidates(results)} if inference else {}
    decisions: list[dict] = []
    for name, runs in results.items():
        models[name] = model_entry(runs, twins, crowd, near, n_train)
        if inference and len(runs) > 1:
            ensemble = ensemble_result(runs)
            models[ensemble.model] = model_entry([ensemble], twins, crowd, near) | {
                "seeds": [r.seed for r in runs],
                "per_seed": [],
                "ensemble_of": name,
                "train_seconds": ensemble.train_seconds,
                "inference": {"method": "seed ensemble", "of": name, "members": [r.key for r in runs]},
            }
        if name in tta:
            measured, reported = tta_runs(tta[name], data, run_root, getattr(study.profile, "tta_modes", TTA_ORDER))
            decisions += [asdict(d) for d in measured]
            for run in reported:
                models[run.model] = model_entry([run], twins, crowd, near) | {
                    "inference": {
                        "method": "test-time augmentation",
                        "of": name,
                        "members": [tta[name].key],
                        "tta": run.extra["tta"],
                        "views": TTA_VIEWS[run.extra["tta"]],
                        "weights": tta[name].weights_path.name,
                        "chosen_on": TTA_CHOICE_SPLIT,
                    }
                }
    pool = cnn_pool(results) if inference else []
    mix_summary = None
    if pool:
        mix, chosen = best_mix(pool)
        members = [pool[i] for i in chosen]
        models[MIX_NAME] = model_entry([mix], twins, crowd, near) | {
            "seeds": [r.seed for r in members],
            "per_seed": [],
            "inference": {
                "method": "greedy mix",
                "of": sorted({r.model for r in members}, key=list(results).index),
                "members": [r.key for r in members],
                "chosen_on": MIX_SPLIT,
            },
        }
        mix_summary = mix_record(pool, chosen)
    gradcam = load_gradcam(getattr(study, "reports_dir", None), models)
    reports_dir = getattr(study, "reports_dir", None)
    # measured on the data, whatever the profile: the run's own record, else the study's committed one
    fer_package = (fer_package_result(reports_dir, data.sha256) if reports_dir is not None else None) or (
        fer_package_result(REPO / "reports", data.sha256)
    )
    claims, near_free = (
        check_paper_claims(
            results,
            REPORT_SPLIT,
            is_fer2013=data.is_fer2013,
            profile=study.profile,
            twins={REPORT_SPLIT: seen[REPORT_SPLIT]},
            gradcam=gradcam,
        )
        for seen in (twins, near)
    )
    claims[NEAR_FREE_COLUMNS] = near_free[TWIN_FREE_COLUMNS].to_numpy()
    return _json_safe(
        {
            "profile": profile,
            "paper_sizes": bool(getattr(study.profile, "paper_sizes", profile == "full")),
            "data": {
                "sha256": data.extras.get("source_sha256", data.sha256),
                "subset_sha256": data.sha256,
                "source": Path(data.source).name,
                "form": data.form,
                "is_fer2013": bool(data.is_fer2013),
                "subsample": data.extras.get("subsample"),
            },
            "git_commit": git_commit(),
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "packages": package_versions(),
            "report_split": REPORT_SPLIT,
            "twins": {
                SPLIT_KEYS[split]: {
                    "n": int(mask.sum()),
                    "of": int(len(mask)),
                    "per_class": {c: int(mask[data.split(split)[1] == i].sum()) for i, c in enumerate(CLASS_NAMES)},
                    "class_sizes": {c: int((data.split(split)[1] == i).sum()) for i, c in enumerate(CLASS_NAMES)},
                }
                for split, mask in twins.items()
            },
            "near_duplicates": {
                SPLIT_KEYS[split]: near_duplicate_summary(table) for split, table in near_tables.items()
            },
            "models": models,
            "label_noise": label_noise,
            "claims": claims.to_dict("records"),
            "precision_check": precision_check(results),
            "inference": ({"target": INFERENCE_TARGET, "tta": decisions, "mix": mix_summary} if inference else None),
            "missing": (
                missing_runs(results, study.profile, votes=label_noise is not None)
                if hasattr(study.profile, "seeds")
                else []
            ),
            "gradcam": gradcam,
            "fer_package": fer_package,
        }
    )


def check_metrics(metrics: dict) -> None:
    """Raise ValueError naming the first place where `metrics` breaks docs/metrics.schema.json (where it exists:
    an installed package without the repository's docs checks nothing)."""
    if not METRICS_SCHEMA.exists():
        return
    import jsonschema

    schema = json.loads(METRICS_SCHEMA.read_text(encoding="utf-8"))
    validator = jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())
    error = jsonschema.exceptions.best_match(validator.iter_errors(metrics))
    if error is not None:
        where = "/".join(map(str, error.absolute_path)) or "(top level)"
        raise ValueError(f"metrics.json does not follow {METRICS_SCHEMA.name} at {where}: {error.message}")


def write_metrics(metrics: dict, path: str | Path) -> Path:
    """Write metrics.json (strict JSON: no NaN), after checking it against its schema: nothing is written if not."""
    metrics = _json_safe(metrics)
    check_metrics(metrics)
    return _write_json(metrics, path)


# ---- what notebook 06 measured with Grad-CAM ---------------------------------------------------------------------


def write_gradcam_summary(
    reports_dir: str | Path,
    explained: Mapping[str, RunResult],
    figures: Mapping[str, str | Path],
    tables: Mapping[str, pd.DataFrame],
    facts: Mapping[str, object] | None = None,
) -> Path:
    """Save what notebook 06 measured as <reports_dir>/gradcam.json: the runs it explained, its figures and tables,
    and `facts` about the maps (such as the side of the map before upsampling, "grid").

    the report run's last step puts it into metrics.json and REPORT.md while those runs are still the report's (`load_gradcam`).
    """
    reports_dir = Path(reports_dir)
    summary = {
        "models": {name: {"key": r.key, "seed": r.seed} for name, r in explained.items()},
        "figures": {caption: relative_link(f, reports_dir) for caption, f in figures.items()},
        "tables": {caption: index_as_columns(df).to_dict("records") for caption, df in tables.items()},
        "facts": dict(facts or {}),
    }
    return _write_json(summary, reports_dir / GRADCAM_FILE)


def load_gradcam(reports_dir: str | Path | None, models: Mapping[str, dict]) -> dict | None:
    """Notebook 06's summary, or None when there is none or it explained other runs than the report's models.

    models: metrics.json's "models"; 06 explains the lowest seed of each model, the first of its "per_seed".
    """
    path = Path(reports_dir) / GRADCAM_FILE if reports_dir is not None else None
    if path is None or not path.exists():
        return None
    summary = json.loads(path.read_text(encoding="utf-8"))
    for name, run in summary.get("models", {}).items():
        per_seed = models.get(name, {}).get("per_seed") or [{}]
        if per_seed[0].get("key") != run.get("key"):
            return None
    return summary if summary.get("models") else None
