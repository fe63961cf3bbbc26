"""The chart of our accuracy against the paper's ranges (notebook 05)."""

from __future__ import annotations

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.patches import Rectangle

from fer_helpers.analysis import plots
from fer_helpers.core.paper import FIELD_FIGURE, FIELD_RESULTS, PAPER_RESULTS

matplotlib.use("Agg")

OURS = pd.DataFrame(
    {
        "accuracy": [0.38, 0.43, 0.57],
        "ci_low": [0.36, 0.41, 0.55],
        "ci_high": [0.40, 0.45, 0.59],
        "paper_low": [PAPER_RESULTS[m]["accuracy"][0] for m in ("hog_svm", "baseline_cnn", "model_b")],
        "paper_high": [PAPER_RESULTS[m]["accuracy"][1] for m in ("hog_svm", "baseline_cnn", "model_b")],
    },
    index=["HOG + SVM", "Baseline CNN", "Model B"],
)
FIELD_LINES = [f for f in FIELD_RESULTS if f.who in FIELD_FIGURE]  # what notebook 05 draws; the rest is a table


def _bands(ax) -> list[Rectangle]:
    return [p for p in ax.patches if isinstance(p, Rectangle)]


def test_paper_bands_points_and_field_lines_are_drawn():
    fig = plots.plot_against_paper(OURS, FIELD_LINES)
    ax = fig.axes[0]
    bands = _bands(ax)
    assert len(bands) == len(OURS)
    # Model B's band (the last row, drawn lowest) spans the paper's 56-58%; a range of one number stays visible
    model_b = min(bands, key=lambda r: r.get_y())
    assert np.isclose(model_b.get_x(), 56) and np.isclose(model_b.get_width(), 2)
    assert min(r.get_width() for r in bands) >= plots.PAPER_BAND_MIN_WIDTH
    point = ax.lines[0].get_xdata()  # the errorbar's points, in percent
    np.testing.assert_allclose(sorted(point), [38, 43, 57])
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "the paper's range" in labels
    assert sum(name in " ".join(labels) for name, *_ in FIELD_LINES) == len(FIELD_FIGURE)
    assert "not comparable" not in ax.get_title()
    matplotlib.pyplot.close(fig)


def test_numbers_not_comparable_with_the_paper_get_no_bands_and_say_so():
    fig = plots.plot_against_paper(OURS, FIELD_LINES, comparable=False, note="smoke profile")
    ax = fig.axes[0]
    assert _bands(ax) == []
    assert "not comparable" in ax.get_title() and "smoke profile" in ax.get_title()
    assert "the paper's range" not in [t.get_text() for t in ax.get_legend().get_texts()]
    matplotlib.pyplot.close(fig)


def test_every_anchor_says_how_it_was_measured_and_what_was_read():
    """The anchor audit: each row names its split, selection split and pretraining (or says it was not checked), in
    order of accuracy, and where something stays unchecked the row says what was read."""
    from fer_helpers.core.paper import NOT_CHECKED

    assert [f.accuracy for f in FIELD_RESULTS] == sorted(f.accuracy for f in FIELD_RESULTS)
    for f in FIELD_RESULTS:
        assert 0 < f.accuracy < 1 and f.source and f.checked and f.comparable, f.who
        assert all(field.strip() for field in (f.split, f.selected_on, f.pretraining)), f.who
        if NOT_CHECKED in (f.split, f.selected_on, f.pretraining, f.tta, f.params):
            assert "not" in f.checked or "no " in f.checked, f.who  # why it stays unchecked
