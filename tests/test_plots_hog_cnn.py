"""The figures of notebooks 02 and 03: the SVM's weights over HOG cells, the most confident mistakes, the first
convolution's kernels."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest
from skimage.feature import hog

from fer_helpers.analysis import plots
from fer_helpers.data import features
from fer_helpers.data.features import hog_dim
from fer_helpers.scoring import metrics


def _one_weight(block: tuple[int, int], cell: tuple[int, int], orientation: int, value: float = 1.0) -> np.ndarray:
    coef = np.zeros((5, 5, 2, 2, 9))
    coef[(*block, *cell, orientation)] = value
    return coef.reshape(1, -1)


def test_hog_layout_is_blocks_cells_orientations():
    face = np.random.default_rng(0).random((48, 48))
    blocks = hog(face, orientations=9, pixels_per_cell=(8, 8), cells_per_block=(2, 2), feature_vector=False)
    assert blocks.shape == (5, 5, 2, 2, 9)
    flat = hog(face, orientations=9, pixels_per_cell=(8, 8), cells_per_block=(2, 2), feature_vector=True)
    np.testing.assert_array_equal(blocks.ravel(), flat)


@pytest.mark.parametrize(
    ("block", "cell", "expected"), [((0, 0), (0, 0), (0, 0)), ((0, 0), (1, 1), (1, 1)), ((4, 2), (1, 0), (5, 2))]
)
def test_a_weight_lands_on_its_cell(block, cell, expected):
    grid = features.hog_weight_cells(_one_weight(block, cell, orientation=3))
    assert grid.shape == (1, 6, 6)
    assert grid[(0, *expected)] == 1.0 and grid.sum() == 1.0


def test_only_positive_weight_counts_and_its_total_is_kept():
    rng = np.random.default_rng(1)
    coef = rng.normal(size=(7, hog_dim()))
    before = coef.copy()
    grid = features.hog_weight_cells(coef)
    np.testing.assert_array_equal(coef, before)  # the input is not changed
    assert grid.shape == (7, 6, 6)
    np.testing.assert_allclose(grid.sum(axis=(1, 2)), np.clip(coef, 0, None).sum(axis=1))
    assert features.hog_weight_cells(-np.abs(coef)).sum() == 0.0


def test_weights_that_do_not_fit_the_layout_are_refused():
    with pytest.raises(ValueError, match="do not fit"):
        features.hog_weight_cells(np.ones((7, 100)))


def test_svm_weight_map_has_a_panel_per_class():
    fig = plots.plot_svm_weight_map(np.random.default_rng(2).normal(size=(7, 900)), background=np.zeros((48, 48)))
    assert len(fig.axes) == 7
    plt.close(fig)


def test_confident_mistakes_are_wrong_and_sorted_by_confidence():
    labels = np.array([0, 0, 0, 0, 1, 1])
    probs = np.array(
        [
            [0.9, 0.1],  # right
            [0.4, 0.6],  # wrong, 0.6
            [0.2, 0.8],  # wrong, 0.8
            [0.45, 0.55],  # wrong, 0.55
            [0.7, 0.3],  # wrong, 0.7
            [0.1, 0.9],  # right
        ]
    )
    chosen = metrics.confident_mistakes(labels, probs, per_class=2)
    np.testing.assert_array_equal(chosen[0], [2, 1])
    np.testing.assert_array_equal(chosen[1], [4])


def test_confident_mistakes_figure_has_a_row_per_class():
    rng = np.random.default_rng(3)
    images = rng.integers(0, 256, size=(40, 48, 48), dtype=np.uint8)
    labels = np.arange(40) % 7
    probs = rng.dirichlet(np.ones(7), size=40)
    fig = plots.plot_confident_mistakes(images, labels, probs, per_class=3)
    assert len(fig.axes) == 21
    plt.close(fig)


def test_conv_filters_draws_every_kernel_and_refuses_colour_kernels():
    fig = plots.plot_conv_filters(np.random.default_rng(4).normal(size=(32, 1, 3, 3)))
    assert sum(bool(ax.images) for ax in fig.axes) == 32
    plt.close(fig)
    with pytest.raises(ValueError, match="out_channels, 1"):
        plots.plot_conv_filters(np.zeros((8, 3, 3, 3)))
