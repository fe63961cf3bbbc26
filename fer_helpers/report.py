"""REPORT.md: the study's results section, written from metrics.json in the paper's order, in tables and prose."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from . import registry
from .claims import (
    ABLATION_SPLIT,
    CLAIM_COLUMNS,
    CLASS_WEIGHTS_UNTESTED,
    FIELD_RESULTS,
    NO_CLASS_WEIGHTS,
    PAPER_TABLE2,
    REPORT_SPLIT,
    VERDICT_ORDER,
    paper_figure,
    table1_parameter_count,
)
from .data import CLASS_NAMES, SYNTHETIC_STAMP
from .ferplus import target_change
from .files import atomic_write_text, relative_link
from .markdown import (
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
from .profiles import PROFILES
from .recipes import open_choices
from .statistics import METRICS, N_BOOT
from .summary import PRECISION_NAMES, SPLIT_KEYS

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
    """The paper's claims with our numbers and verdicts, as a table."""
    return pd.DataFrame(metrics["claims"], columns=CLAIM_COLUMNS)


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
    """How many of the paper's claims got each verdict (VERDICT_ORDER first, then the untestable ones)."""
    counts = claims_frame(metrics)["verdict"].value_counts()
    order = [v for v in VERDICT_ORDER if v in counts] + sorted(v for v in counts.index if v not in VERDICT_ORDER)
    return (
        f"Of the paper's {int(counts.sum())} claims checked here: "
        + "; ".join(f"{v}: {int(counts[v])}" for v in order)
        + "."
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
    """The paper's Table 3 with ours beside it (main models), or the same columns for variants and ablations."""
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
        if block is None or registry.is_main(name) != main:
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
                format_duration(entry["train_seconds"]),
                format_rate(entry["images_per_second"]),
                entry["device"],
            ]
        )
    return markdown_table(rows, header) if rows else ""


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
    for name, entry in metrics["models"].items():
        block, dedup = entry.get(split_key), entry.get(f"{split_key}_dedup")
        if block is None or dedup is None or not registry.is_main(name):
            continue
        changes.append(
            f"{registry.label(name)} {100 * block['accuracy']:.1f}% → {100 * dedup['accuracy']:.1f}% "
            f"({100 * (dedup['accuracy'] - block['accuracy']):+.1f} points; macro F1 "
            f"{block['macro_f1']:.3f} → {dedup['macro_f1']:.3f})"
        )
    text = text + " " + "; ".join(changes) + "." if changes else text
    public = metrics.get("twins", {}).get("public_test")
    if split_key == "private_test" and public and public["n"]:
        text += (
            f" PublicTest, where models and hyper-parameters are chosen, has {public['n']:,} such faces "
            f"({public['n'] / max(public['of'], 1):.1%}); choices were made on it whole, as in the paper and the "
            "field, and metrics.json gives every PublicTest number without them too (public_test_dedup)."
        )
    return text


# Notebook 08's figures that REPORT.md's label-noise section shows where they lie in reports/figures: name -> caption
LABEL_NOISE_FIGURES = {
    "noise_ceiling": "Where the models, the paper and the field sit under the ceilings label noise puts on accuracy "
    "(notebook 08)",
    "crowd_label_confusion": "FER-2013's label against the FER+ crowd's plurality (notebook 08)",
}


def label_noise_section(
    metrics: dict, split_key: str = "private_test", report_dir: str | Path | None = None
) -> list[str]:
    """REPORT.md's label-noise section: how often FER-2013's label is the crowd's, and every model on both; with
    notebook 08's figures (`LABEL_NOISE_FIGURES`) where report_dir/figures holds them."""
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
        f"A predictor that answered each face's most-voted emotion would score {noise['ceiling_plurality']:.1%} "
        f"against FER-2013's labels; one crowd vote drawn at random agrees with the label "
        f"{noise['ceiling_label_draw']:.1%} of the time. Notebook 08 shows the reasoning and trains on the votes.",
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
            "model": registry.label(name),
            "temperature (fitted on PublicTest)": e[split_key]["temperature"],
            "ECE": e[split_key]["ece"],
            "ECE after temperature scaling": e[split_key]["ece_temperature_scaled"],
        }
        for name, e in metrics["models"].items()
        if split_key in e and "temperature" in e[split_key]
    ]
    return pd.DataFrame(rows).set_index("model") if rows else pd.DataFrame()


def field_table(metrics: dict, split_key: str = "private_test") -> str:
    """The field's numbers on FER-2013 (human, the 2013 winner, the best single network) beside ours."""
    rows = [
        [what, f"{100 * accuracy:.4g}%", MISSING, source, measured]
        for what, accuracy, source, measured in FIELD_RESULTS
    ]
    for name, entry in metrics["models"].items():
        block = entry.get(split_key)
        if block is None or not registry.is_main(name):
            continue
        rows.append(
            [
                f"{registry.label(name)}{format_seeds(entry)}",
                format_pct(block),
                format_without_twins(entry, split_key),
                "this study",
                f"{metrics.get('report_split', REPORT_SPLIT)}, {metrics['profile']} profile",
            ]
        )
    return markdown_table(
        sorted(rows, key=lambda r: float(r[1].split("%")[0].split(" ")[0])),
        ["Who", "Accuracy", "Without twins", "Source", "Measured on"],
    )


def claims_table(metrics: dict) -> str:
    """The paper's claims with our numbers and verdicts, in Markdown."""

    def ours(value) -> str:
        if value is None:
            return MISSING
        return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.3g}"

    rows = [
        [c["claim"], c["paper"], ours(c["ours"]), f"**{c['verdict']}**", c["basis"], c["detail"]]
        for c in metrics["claims"]
    ]
    return markdown_table(rows, ["Claim", "Paper", "Ours", "Verdict", "Basis", "Detail"])


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
        "seeds; its training time and speeds are its fastest seed's (metrics.json keeps every seed's). Intervals are "
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
    parts += ["## Per-class results (the paper's Table 2)", "", per_class_tables(metrics, split_key), ""]
    if figures:
        parts += ["## Figures", ""]
        for caption, figure in figures.items():
            parts += [f"![{caption}]({relative_link(figure, path.parent)})", "", f"*{caption}*", ""]
    for caption, table in tables.items():
        parts += [f"## {caption}", "", dataframe_markdown(table), ""]
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
        "## FER-2013 in the field",
        "",
        "Published numbers on FER-2013 beside ours; theirs are as their sources report them.",
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
