"""HOG features: equal to scikit-image's per-image output, parallel or not, and cached on disk."""

from __future__ import annotations

import numpy as np
import pytest
from skimage.feature import hog

from fer_helpers.data import features
from fer_helpers.data.features import cached_hog_features, hog_dim, hog_features

PARAMETER_SETS = [
    dict(orientations=9, pixels_per_cell=(8, 8), cells_per_block=(2, 2), block_norm="L2-Hys"),
    dict(orientations=12, pixels_per_cell=(6, 6), cells_per_block=(3, 3), block_norm="L2"),
    dict(orientations=8, pixels_per_cell=(4, 4), cells_per_block=(1, 1), block_norm="L1-sqrt"),
    dict(orientations=9, pixels_per_cell=(16, 8), cells_per_block=(2, 3), block_norm="L1"),
]


@pytest.fixture(scope="module")
def faces(synth):
    return synth.images[:60]


def _reference(images, **params):
    return np.stack([hog(image / 255.0, feature_vector=True, **params) for image in images]).astype(np.float32)


@pytest.mark.parametrize("params", PARAMETER_SETS, ids=lambda p: f"{p['pixels_per_cell']}-{p['block_norm']}")
def test_equals_scikit_image_per_image(faces, params):
    out = hog_features(faces, n_jobs=1, **params)
    assert out.dtype == np.float32
    assert out.shape == (len(faces), hog_dim(faces.shape[1:], **{k: v for k, v in params.items() if k != "block_norm"}))
    np.testing.assert_array_equal(out, _reference(faces, **params))


def test_parallel_equals_serial(faces, monkeypatch):
    monkeypatch.setattr(features, "MIN_IMAGES_PER_WORKER", 10)  # force the worker processes on a small batch
    np.testing.assert_array_equal(hog_features(faces, n_jobs=2), hog_features(faces, n_jobs=1))


def test_paper_configuration_has_900_dimensions(faces):
    # 48x48 pixels, 8x8 cells -> 6x6 cells -> 5x5 blocks of 2x2 cells x 9 orientations.
    assert hog_dim() == 5 * 5 * 2 * 2 * 9 == 900
    assert hog_features(faces[:3], n_jobs=1).shape == (3, 900)


def test_input_not_mutated(faces):
    before = faces.copy()
    hog_features(faces, n_jobs=1)
    np.testing.assert_array_equal(faces, before)


def test_scaled_to_unit_range_first(faces):
    # Block normalisation adds a small epsilon, so the descriptor of image/255 (the paper's [0,1] pixels)
    # differs measurably from that of the raw grey levels.
    params = dict(orientations=9, pixels_per_cell=(8, 8), cells_per_block=(2, 2), block_norm="L1")
    out = hog_features(faces[:1], n_jobs=1, **params)[0]
    np.testing.assert_array_equal(out, hog(faces[0] / 255.0, feature_vector=True, **params).astype(np.float32))
    assert not np.array_equal(out, hog(faces[0].astype(float), feature_vector=True, **params).astype(np.float32))


@pytest.mark.parametrize("bad", [np.zeros((2, 48, 48), np.float32), np.zeros((48, 48), np.uint8)])
def test_rejects_non_uint8_batches(bad):
    with pytest.raises(ValueError, match="uint8"):
        hog_features(bad)


def test_cache_reuses_features_and_keys_on_content(faces, tmp_path, monkeypatch):
    first, seconds = cached_hog_features(faces, "sha-a", tmp_path, n_jobs=1)
    assert seconds > 0 and len(list((tmp_path / "features").glob("*.npz"))) == 1

    def refuse(*args, **kwargs):
        raise AssertionError("features were recomputed")

    monkeypatch.setattr(features, "hog_features", refuse)
    again, seconds_again = cached_hog_features(faces, "sha-a", tmp_path, n_jobs=1)
    np.testing.assert_array_equal(again, first)
    assert seconds_again == seconds
    monkeypatch.undo()

    cached_hog_features(faces[:-1], "sha-a", tmp_path, n_jobs=1)  # a subsample of the same data
    cached_hog_features(faces, "sha-b", tmp_path, n_jobs=1)
    cached_hog_features(faces, "sha-a", tmp_path, n_jobs=1, pixels_per_cell=(6, 6))
    assert len(list((tmp_path / "features").glob("*.npz"))) == 4


def test_cache_treats_explicit_defaults_as_defaults(faces, tmp_path):
    cached_hog_features(faces, "sha-a", tmp_path, n_jobs=1)
    cached_hog_features(faces, "sha-a", tmp_path, n_jobs=1, orientations=9, pixels_per_cell=(8, 8))
    assert len(list((tmp_path / "features").glob("*.npz"))) == 1
    with pytest.raises(ValueError, match="unknown HOG parameter"):
        cached_hog_features(faces, "sha-a", tmp_path, cell_size=4)
