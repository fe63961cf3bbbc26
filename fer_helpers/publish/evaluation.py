"""The evaluation's tables and figures, one method each, and the report run's last step that writes them all.

Notebook 05 shows each table and figure in its place, after the models are trained (04); `write_report`, run by
`fer-study report` after the last notebook, computes them again from every saved result (Grad-CAM's, the ablation's
and the crowd's included) and writes metrics.json, REPORT.md, reports/tables and reports/figures, and under the full
profile on FER-2013 the README's results and lesson blocks. Nothing here trains.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from fer_helpers.analysis import cost, plots
from fer_helpers.analysis.claims import is_testable
from fer_helpers.core.paper import FIELD_FIGURE, FIELD_RESULTS, PAPER_RESULTS, REPORT_SPLIT
from fer_helpers.core.paths import REPO
from fer_helpers.data.fer2013 import near_duplicate_counts, near_duplicates
from fer_helpers.data.results import RunResult
from fer_helpers.models import registry
from fer_helpers.publish import report, summary
from fer_helpers.scoring.metrics import confusion, fit_temperature, reliability_table, softmax, top_confusions
from fer_helpers.scoring.runs import ensemble_result
from fer_helpers.scoring.statistics import p_value_matrix, pairwise_mcnemar

TOP_CONFUSIONS = 6  # mistakes listed per model


class NoResultsError(FileNotFoundError):
    """A run folder holds no saved result for its data: there is nothing to evaluate."""


@dataclass
class Evaluation:
    """Every saved result of one run folder, its metrics, and the tables and figures made from them so far.

    Each method computes one table or figure, saves it under the study's reports folder, returns it, and keeps it
    for REPORT.md (`tables` and `figures`, caption -> table or saved file, in the order they were made).
    """

    study: object  # orchestrate.study.Study (a layer above: not imported)
    results: dict[str, list[RunResult]]
    near_tables: dict[str, pd.DataFrame]
    metrics: dict
    split: str = REPORT_SPLIT
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    figures: dict[str, Path] = field(default_factory=dict)

    @property
    def split_key(self) -> str:
        return summary.SPLIT_KEYS[self.split]

    @property
    def main_results(self) -> dict[str, list[RunResult]]:
        """The study's main models (not variants or what inference adds), each with its seeds."""
        return {model: runs for model, runs in self.results.items() if registry.is_main(model)}

    def _figure(self, fig: Figure, caption: str, name: str) -> Figure:
        self.figures[caption] = self.study.save_figure(fig, name)
        return fig

    def comparison(self) -> pd.DataFrame:
        """The paper's Table 3: every model's accuracy, F1, parameters and speed, ours beside the paper's."""
        return self.study.save_table(report.comparison_frame(self.metrics, self.split_key), "comparison")

    def against_paper(self) -> Figure:
        """Our accuracy with its interval beside the paper's range for each of its models, and the field's lines."""
        models = [m for m in PAPER_RESULTS if m in self.metrics["models"]]
        frame = pd.DataFrame(
            {
                registry.label(m): {
                    "accuracy": self.metrics["models"][m][self.split_key]["accuracy"],
                    "ci_low": self.metrics["models"][m][self.split_key]["accuracy_ci95"][0],
                    "ci_high": self.metrics["models"][m][self.split_key]["accuracy_ci95"][1],
                    "paper_low": PAPER_RESULTS[m]["accuracy"][0],
                    "paper_high": PAPER_RESULTS[m]["accuracy"][1],
                }
                for m in models
            }
        ).T
        study = self.study
        comparable = is_testable("full", study.data.is_fer2013, study.profile)
        reason = (
            "synthetic faces"
            if not study.data.is_fer2013
            else f"the {study.profile.name} profile trains smaller models for fewer epochs"
        )
        lines = [f for f in FIELD_RESULTS if f.who in FIELD_FIGURE]  # the rest: the anchor audit
        fig = plots.plot_against_paper(frame, lines, comparable, note=reason, split=self.split)
        return self._figure(fig, f"Our {self.split} accuracy against the paper's ranges", "against_paper")

    def per_class(self) -> pd.DataFrame:
        """The paper's Table 2 in numbers: every model's F1 per class (Model B's full report: the table per_class_model_b)."""
        if "model_b" in self.metrics["models"]:
            self.study.save_table(report.per_class_frame(self.metrics, "model_b", self.split_key), "per_class_model_b")
        return self.study.save_table(report.per_class_frame(self.metrics, split_key=self.split_key), "per_class_f1")

    def confusions(self) -> list[Figure]:
        """The paper's Figure 1 for every main model: counts and row shares, summed over its seeds."""
        figures = []
        for model, runs in self.main_results.items():
            counts = sum(confusion(r.labels[self.split], r.preds(self.split)) for r in runs)
            seeds = f", summed over {len(runs)} seeds" if len(runs) > 1 else ""
            label = registry.label(model)
            fig = plots.plot_confusion_pair(counts, f"{label}, {self.split}{seeds}")
            figures.append(
                self._figure(fig, f"Confusion matrix of {label} on {self.split}{seeds}", f"confusion_{model}")
            )
        return figures

    def top_confusions(self) -> pd.DataFrame:
        """The most frequent mistakes of Model B and of each main model the paper does not have, over their seeds."""
        top = {
            model: top_confusions(
                np.concatenate([r.labels[self.split] for r in runs]),
                np.concatenate([r.preds(self.split) for r in runs]),
                k=TOP_CONFUSIONS,
            )
            for model, runs in self.main_results.items()
            if model == "model_b" or model not in PAPER_RESULTS
        }
        if not top:
            return pd.DataFrame()
        table = self.study.save_table(pd.concat(top, names=["model", "rank"]), "top_confusions")
        self.tables["Top confusions"] = table
        return table

    def predictions(self) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """The labels of the split and each main model's predictions (its lowest seed), with the seed ensemble of
        each model of ours that has several seeds: what the McNemar tests compare."""
        runs_by_model = self.main_results
        labels = next(iter(self.results.values()))[0].labels[self.split]
        preds = {model: runs[0].preds(self.split) for model, runs in runs_by_model.items()}
        for model, runs in runs_by_model.items():
            if model not in PAPER_RESULTS and len(runs) > 1:
                preds[f"{model}_ensemble"] = ensemble_result(runs).preds(self.split)
        return labels, preds

    def mcnemar(self) -> pd.DataFrame:
        """McNemar's test for every pair of `predictions`, with the matrix of p-values as a figure."""
        labels, preds = self.predictions()
        table = self.study.save_table(pairwise_mcnemar(labels, preds), "mcnemar")
        if len(preds) > 1:  # one model: no pair, no test
            self.tables[f"McNemar tests between models ({self.split})"] = table
            fig = plots.plot_pvalue_matrix(p_value_matrix(table))
            self._figure(fig, f"McNemar p-values between models on {self.split}", "mcnemar_pvalues")
        return table

    def calibration(self) -> pd.DataFrame:
        """Each main model's ECE before and after temperature scaling, its temperature, accuracy and mean confidence."""
        rows = {
            model: {
                "ece": entry[self.split_key]["ece"],
                "temperature": entry[self.split_key]["temperature"],
                "ece_after_temperature": entry[self.split_key]["ece_temperature_scaled"],
                "accuracy": entry[self.split_key]["accuracy"],
                "mean_confidence": float(
                    np.mean([r.probs(self.split).max(axis=1).mean() for r in self.results[model]])
                ),
            }
            for model, entry in self.metrics["models"].items()
            if model in self.main_results and "temperature" in entry.get(self.split_key, {})
        }
        table = self.study.save_table(pd.DataFrame(rows).T.rename_axis("model"), "calibration")
        if not table.empty:
            self.tables[f"Calibration ({self.split})"] = table
        return table

    def reliability(self) -> Figure | None:
        """Reliability diagrams of each main CNN's lowest seed, as trained and after its PublicTest temperature."""
        curves = {}
        for model, runs in self.main_results.items():
            if model == "hog_svm":
                continue
            run = runs[0]
            curves[model] = reliability_table(run.probs(self.split), run.labels[self.split])
            if "PublicTest" in run.logits:  # the temperature is fitted there
                t = fit_temperature(run.logits["PublicTest"], run.labels["PublicTest"])
                scaled = softmax(run.logits[self.split], t)
                curves[f"{model}, T = {t:.2f}"] = reliability_table(scaled, run.labels[self.split])
        if not curves:
            return None
        caption = (
            f"Reliability diagrams on {self.split} before and after temperature scaling (lowest seed of each model)"
        )
        return self._figure(plots.plot_reliability_diagram(curves), caption, "reliability")

    def seeds(self) -> pd.DataFrame:
        """Each multi-seed model's mean, standard deviation and every seed's value; empty where all have one seed."""
        table = report.seed_frame(self.metrics, self.split_key)
        if not table.empty:
            self.tables[f"Spread over seeds ({self.split})"] = self.study.save_table(table, "seeds")
        return table

    def near_duplicate_counts(self) -> pd.DataFrame:
        """Twins and near-duplicates of Training faces, by test split and class."""
        counts = pd.concat({s: near_duplicate_counts(t) for s, t in self.near_tables.items()}, names=["split"])
        return self.study.save_table(counts, "near_duplicates")

    def claims(self) -> pd.DataFrame:
        """The paper's claims, each with its number, ours and a verdict, on the whole split and without twins."""
        return self.study.save_table(report.claims_frame(self.metrics), "paper_claims")

    def compute(self) -> pd.DataFrame:
        """Each model's accuracy against its training cost, with the published anchors, as a table and a figure."""
        frame = cost.compute_frame(self.metrics, self.split_key)
        if frame.empty:
            return frame
        table = self.study.save_table(frame.drop(columns=["name", "main"]).set_index("model"), "accuracy_vs_compute")
        fig = plots.plot_accuracy_vs_compute(frame, cost.published_frame(), self.split)
        self._figure(fig, f"{self.split} accuracy against training time", "accuracy_vs_compute")
        return table

    def everything(self) -> Evaluation:
        """Make every table and figure, in REPORT.md's order; each figure is closed once saved."""
        import matplotlib.pyplot as plt

        steps = (
            self.comparison,
            self.against_paper,
            self.per_class,
            self.confusions,
            self.top_confusions,
            self.mcnemar,
            self.calibration,
            self.reliability,
            self.seeds,
            self.near_duplicate_counts,
            self.claims,
            self.compute,
        )
        for step in steps:
            step()
            plt.close("all")
        return self

    def write(self, readme: Path | None = REPO / "README.md") -> list[Path]:
        """Write metrics.json and REPORT.md into the reports folder; under the full profile on FER-2013 also the
        README's results and lesson blocks (`readme`: None leaves the README alone). Returns what changed."""
        from fer_helpers.publish import lesson
        from fer_helpers.publish import readme as readme_blocks

        reports = self.study.reports_dir
        written = [
            summary.write_metrics(self.metrics, reports / summary.METRICS_FILE),
            report.write_report_md(self.metrics, self.tables, self.figures, reports / "REPORT.md"),
        ]
        if readme is not None and self.study.profile.name == "full" and not self.study.synthetic:
            results_changed = readme_blocks.update_readme(readme, self.metrics)
            lesson_changed = lesson.refresh_readme_lesson(readme, self.metrics)  # its speed line reads this run
            if results_changed or lesson_changed:
                written.append(Path(readme))
        return written


def evaluate(study) -> Evaluation:
    """Every saved result of the study's run folder on its data, their near-duplicate tables and their metrics.

    Raises NoResultsError naming the notebooks to run when the folder holds no result for this data.
    """
    results = summary.collect_results(study.run_dir, study.data.sha256)
    if not results:
        notebooks = ", ".join(sorted(set(summary.missing_models(results).values())))
        raise NoResultsError(
            f"No saved results for this data in {study.run_dir}. Run notebooks {notebooks} first, with "
            f"profile={study.profile.name!r}."
        )
    near_tables = {split: near_duplicates(study.data, split) for split in summary.SPLIT_KEYS}
    metrics = summary.build_metrics(study.run_dir, study, near_tables=near_tables, results=results)
    return Evaluation(study=study, results=results, near_tables=near_tables, metrics=metrics)


def write_report(study, readme: Path | None = REPO / "README.md") -> list[Path]:
    """The report run's last step: every table and figure of the evaluation, then metrics.json, REPORT.md and (full
    profile on FER-2013) the README's blocks, from every result saved in the study's run folder."""
    return evaluate(study).everything().write(readme)
