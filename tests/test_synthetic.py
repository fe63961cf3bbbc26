"""The embedded synthetic faces: format, splits, determinism, deciding regions, speed and learnability."""

from __future__ import annotations

import numpy as np
import pytest
from skimage.feature import hog
from sklearn.svm import LinearSVC

from fer_helpers.data.fer2013 import CLASS_NAMES, FER2013_COUNTS, IMAGE_SIZE, NUM_CLASSES, SPLITS
from fer_helpers.data.synthetic import decisive_mask, decisive_masks, face_regions, make_synthetic_fer, region_masks


def test_format(synth):
    n = 1400 + 350 + 350
    assert synth.images.shape == (n, IMAGE_SIZE, IMAGE_SIZE) and synth.images.dtype == np.uint8
    assert synth.labels.shape == (n,) and synth.labels.dtype == np.int64
    assert set(np.unique(synth.labels)) == set(range(NUM_CLASSES))
    assert synth.form == "synthetic" and synth.source == "synthetic" and not synth.is_fer2013
    assert len(synth.sha256) == 64 and int(synth.sha256, 16) >= 0
    assert list(synth.ids[:2]) == ["synthetic:0", "synthetic:1"] and len(set(synth.ids)) == n
    # Photographs, not flat drawings: every image spans a good part of the grey range.
    spread = synth.images.reshape(n, -1).astype(float).std(axis=1)
    assert spread.min() > 5 and np.median(spread) > 20


@pytest.mark.parametrize("sizes", [(350, 350, 70), (0, 7, 20), (50, 0, 3)])
@pytest.mark.parametrize("imbalance", [True, False])
def test_split_sizes_and_class_proportions(sizes, imbalance):
    data = make_synthetic_fer(*sizes, seed=1, imbalance=imbalance)
    for split, n in zip(SPLITS, sizes):
        images, labels = data.split(split)
        assert len(images) == n
        counts = np.bincount(labels, minlength=NUM_CLASSES)
        weights = np.asarray(FER2013_COUNTS[split], float) if imbalance else np.ones(NUM_CLASSES)
        assert np.all(np.abs(counts - n * weights / weights.sum()) < 1.0)


def test_deterministic_for_a_seed_and_different_across_seeds():
    a = make_synthetic_fer(60, 10, 10, seed=3)
    b = make_synthetic_fer(60, 10, 10, seed=3)
    c = make_synthetic_fer(60, 10, 10, seed=4)
    assert np.array_equal(a.images, b.images) and np.array_equal(a.labels, b.labels)
    assert np.array_equal(a.extras["decisive_masks"], b.extras["decisive_masks"])
    assert a.sha256 == b.sha256 != c.sha256
    assert np.mean(a.images != c.images) > 0.5
    assert make_synthetic_fer(60, 10, 11, seed=3).sha256 != a.sha256
    assert make_synthetic_fer(60, 10, 10, seed=3, imbalance=False).sha256 != a.sha256


def test_face_regions_are_disjoint_and_ordered_top_to_bottom():
    regions = face_regions()
    assert list(regions) == ["eyes", "nose", "mouth"]
    for mask in regions.values():
        assert mask.shape == (IMAGE_SIZE, IMAGE_SIZE) and mask.dtype == bool and 30 < mask.sum() < 800
    assert sum(mask.astype(int) for mask in regions.values()).max() == 1
    rows = [np.nonzero(mask)[0].mean() for mask in regions.values()]
    assert rows == sorted(rows) and 12 < rows[0] < 18 and 34 < rows[2] < 42


def test_region_masks_per_class(synth):
    masks = synth.extras["region_masks"]
    assert masks.shape == (NUM_CLASSES, IMAGE_SIZE, IMAGE_SIZE) and masks.dtype == bool
    area = masks.mean(axis=(1, 2))
    assert np.all(area > 0.05) and np.all(area[:-1] < 0.6)
    assert np.array_equal(masks[CLASS_NAMES.index("Neutral")], masks[:-1].any(axis=0))
    regions = face_regions()
    for name, region in [("Angry", "eyes"), ("Disgust", "nose"), ("Happy", "mouth"), ("Surprise", "mouth")]:
        assert masks[CLASS_NAMES.index(name)][regions[region]].mean() > 0.3, (name, region)
    # The confusable pairs act partly in the same place.
    for first, second in [("Fear", "Surprise"), ("Angry", "Disgust")]:
        assert (masks[CLASS_NAMES.index(first)] & masks[CLASS_NAMES.index(second)] & regions["eyes"]).sum() > 50


def test_region_masks_are_not_shared_state():
    masks = region_masks()
    masks[:] = False
    assert region_masks().any()


def test_per_image_deciding_masks_follow_the_pose(synth):
    masks = decisive_masks(synth)
    n = len(synth)
    assert masks.shape == (n, IMAGE_SIZE, IMAGE_SIZE) and masks.dtype == bool
    assert masks.sum(axis=(1, 2)).min() > 20
    for index in (0, 7, n - 1):
        assert np.array_equal(decisive_mask(synth, index), masks[index])
    # The canonical mask's centre, moved by the image's pose, lands on the centre of the image's own mask.
    canonical = synth.extras["region_masks"][synth.labels]
    transforms = synth.extras["transforms"]
    assert transforms.shape == (n, 2, 3)
    for index in range(0, n, 97):
        rows, cols = np.nonzero(canonical[index])
        moved = transforms[index] @ np.stack([cols, rows, np.ones_like(rows)]).astype(np.float32)
        inside = (moved.min(axis=0) > -0.5) & (moved.max(axis=0) < IMAGE_SIZE - 0.5)
        rows_out, cols_out = np.nonzero(masks[index])
        assert abs(moved[0, inside].mean() - cols_out.mean()) < 1.0
        assert abs(moved[1, inside].mean() - rows_out.mean()) < 1.0


def _canonical_images(data) -> np.ndarray:
    """Each image sampled back into the canonical (unposed) frame, nearest neighbour."""
    rows, cols = np.mgrid[0:IMAGE_SIZE, 0:IMAGE_SIZE]
    t = data.extras["transforms"][:, :, :, None, None]
    x = t[:, 0, 0] * cols + t[:, 0, 1] * rows + t[:, 0, 2]
    y = t[:, 1, 0] * cols + t[:, 1, 1] * rows + t[:, 1, 2]
    x = np.clip(np.rint(x), 0, IMAGE_SIZE - 1).astype(int)
    y = np.clip(np.rint(y), 0, IMAGE_SIZE - 1).astype(int)
    return data.images[np.arange(len(data))[:, None, None], y, x].astype(np.float32)


def test_expressions_differ_from_neutral_mainly_inside_their_region():
    data = make_synthetic_fer(2800, 0, 0, seed=5, imbalance=False)
    faces = _canonical_images(data)
    faces = (faces - faces.mean(axis=(1, 2), keepdims=True)) / faces.std(axis=(1, 2), keepdims=True)
    means = np.stack([faces[data.labels == k].mean(axis=0) for k in range(NUM_CLASSES)])
    on_face = np.zeros((IMAGE_SIZE, IMAGE_SIZE), dtype=bool)
    on_face[6:46, 5:43] = True
    for k, name in enumerate(CLASS_NAMES[:-1]):
        change = np.abs(means[k] - means[-1])
        inside = data.extras["region_masks"][k] & on_face
        outside = ~data.extras["region_masks"][k] & on_face
        assert change[inside].mean() > 1.5 * change[outside].mean(), name


def _hog(images: np.ndarray) -> np.ndarray:
    return np.stack([hog(image, orientations=9, pixels_per_cell=(8, 8), cells_per_block=(2, 2)) for image in images])


def test_learnable_by_hog_and_linear_svm_but_not_trivially(synth):
    train_images, train_labels = synth.split("Training")
    test_images, test_labels = synth.split("PublicTest")
    svm = LinearSVC(C=0.01, random_state=0).fit(_hog(train_images), train_labels)
    accuracy = np.mean(svm.predict(_hog(test_images)) == test_labels)
    majority = np.bincount(test_labels).max() / len(test_labels)
    assert accuracy > majority + 0.15
    assert accuracy < 0.9
