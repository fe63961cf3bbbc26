"""The full-profile numbers that notebook 02's text quotes are those of the committed full-data results.

The notebook's conclusions are written once, in prose, from the committed `runs/full/results/`; these tests
recompute every number they quote, so a retrained result cannot leave stale text behind.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
import numpy as np
import pytest

from fer_helpers.metrics import per_class_report
from fer_helpers.results import RunResult

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "runs" / "full" / "results"
NOTEBOOK = REPO / "notebooks" / "02_hog_svm.ipynb"
HOG_MODELS = (
    "hog_svm",
    "hog_svm_balanced",
    "hog_nystroem",
    "hog_nystroem_balanced",
    "hog_fine_cells",
    "hog_multiscale",
)


def _committed(model: str) -> RunResult:
    runs = sorted(RESULTS.glob(f"{model}-*"))
    if len(runs) != 1:
        pytest.skip(f"expected one committed full-profile result of {model}, found {len(runs)}")
    return RunResult.load(runs[0])


@pytest.fixture(scope="module")
def results() -> dict[str, RunResult]:
    return {model: _committed(model) for model in HOG_MODELS}


@pytest.fixture(scope="module")
def text() -> str:
    """Notebook 02's markdown, one string."""
    cells = nbformat.read(NOTEBOOK, as_version=4).cells
    return "\n".join(c.source for c in cells if c.cell_type == "markdown").replace("\n", " ")


def pct(value: float) -> str:
    return f"{value:.1%}"


def f1(value: float) -> str:
    return f"{value:.2f}"


def interval(ci: tuple[float, float]) -> str:
    return f"{ci[0] * 100:.1f}–{ci[1] * 100:.1f}%"


def _assert_quoted(text: str, quotes: list[str]) -> None:
    missing = [q for q in quotes if q not in text]
    assert not missing, f"notebook 02 no longer quotes its committed results: missing {missing}"


def _per_class(result: RunResult) -> pd.DataFrame:  # noqa: F821
    return per_class_report(result.labels["PrivateTest"], result.preds("PrivateTest"))


def test_c_search_text_matches_the_committed_grid(results, text):
    history = results["hog_svm"].history
    best = history.loc[history["public_accuracy"].idxmax()]
    balanced = results["hog_svm_balanced"]
    _assert_quoted(
        text,
        [
            f"between {pct(history['public_accuracy'].min())} and {pct(history['public_accuracy'].max())}",
            f"best at C = {best['C']:g}",
            f"from {f1(history['public_macro_f1'].min())} to {f1(history['public_macro_f1'].max())}",
            f"{pct(balanced.metrics['PublicTest']['accuracy'])} at the chosen C = {balanced.extra['chosen_C']:g}",
        ],
    )


def test_privatetest_text_matches_the_committed_results(results, text):
    quotes = []
    for model in ("hog_svm", "hog_svm_balanced"):
        private = results[model].metrics["PrivateTest"]
        quotes += [
            pct(private["accuracy"]),
            interval(private["accuracy_ci95"]),
            f1(private["macro_f1"]),
            f1(private["weighted_f1"]),
        ]
    _assert_quoted(text, quotes)


def test_per_class_text_matches_the_committed_predictions(results, text):
    plain, balanced = _per_class(results["hog_svm"]), _per_class(results["hog_svm_balanced"])
    assert plain.loc["Disgust", "recall"] == 0  # "never answers Disgust"
    _assert_quoted(
        text,
        [
            f"F1 {f1(plain.loc['Happy', 'f1'])}, recall {f1(plain.loc['Happy', 'recall'])}",
            f"Surprise (F1 {f1(plain.loc['Surprise', 'f1'])}",
            f"Neutral ({f1(plain.loc['Neutral', 'f1'])})",
            f"({plain.loc['Disgust', 'support']} PrivateTest faces)",
            f"from 0 to {f1(balanced.loc['Disgust', 'recall'])}",
            f"precision of {f1(balanced.loc['Disgust', 'precision'])} (F1 {f1(balanced.loc['Disgust', 'f1'])})",
            f"from {f1(plain.loc['Happy', 'recall'])} down to {f1(balanced.loc['Happy', 'recall'])}",
            f"({f1(plain.loc['Sad', 'f1'])} to {f1(balanced.loc['Sad', 'f1'])})",
        ],
    )


def test_confusion_text_matches_the_committed_predictions(results, text):
    result = results["hog_svm"]
    labels, preds = result.labels["PrivateTest"], result.preds("PrivateTest")
    names = ["Angry", "Disgust", "Fear", "Happy", "Sad", "Surprise", "Neutral"]

    def share(true: str, predicted: str) -> str:
        rows = labels == names.index(true)
        return f"{np.mean(preds[rows] == names.index(predicted)):.0%}"

    _assert_quoted(
        text,
        [
            f"{share('Angry', 'Happy')} of Angry",
            f"{share('Fear', 'Happy')} of Fear",
            f"{share('Sad', 'Happy')} of Sad",
            f"{share('Neutral', 'Happy')} of Neutral",
            f"Angry ({share('Disgust', 'Angry')})",
            f"Sad to Neutral ({share('Sad', 'Neutral')})",
        ],
    )


def test_conclusion_matches_the_committed_variants(results, text):
    extended, balanced = results["hog_nystroem"], results["hog_nystroem_balanced"]
    private = extended.metrics["PrivateTest"]
    plain_classes, extended_classes = _per_class(results["hog_svm"]), _per_class(extended)
    quotes = [
        f"{pct(results['hog_fine_cells'].metrics['PrivateTest']['accuracy'])} and "
        f"{pct(results['hog_multiscale'].metrics['PrivateTest']['accuracy'])} PrivateTest accuracy",
        f"**{pct(private['accuracy'])} PrivateTest accuracy** (95% interval {interval(private['accuracy_ci95'])}; "
        f"PublicTest {pct(extended.metrics['PublicTest']['accuracy'])}), macro F1 {f1(private['macro_f1'])} and "
        f"weighted F1 {f1(private['weighted_f1'])}",
        f"({pct(balanced.metrics['PrivateTest']['accuracy'])} and {f1(balanced.metrics['PrivateTest']['macro_f1'])} "
        f"against {pct(private['accuracy'])} and {f1(private['macro_f1'])})",
        f"Disgust (F1 {f1(_per_class(balanced).loc['Disgust', 'f1'])})",
        f"gets {f1(extended_classes.loc['Disgust', 'f1'])}",
    ]
    quotes += [
        f"{name}'s F1 rises from {f1(plain_classes.loc[name, 'f1'])} to {f1(extended_classes.loc[name, 'f1'])}"
        if name == "Fear"
        else f"{name}'s from {f1(plain_classes.loc[name, 'f1'])} to {f1(extended_classes.loc[name, 'f1'])}"
        for name in ("Fear", "Sad", "Angry")
    ]
    _assert_quoted(text, quotes)
