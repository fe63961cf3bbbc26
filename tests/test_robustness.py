"""Crop and light changes, class priors and the detector's scenes of notebook 09, on small real arrays."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fer_helpers.analysis import robustness
from fer_helpers.core.boxes import box_iou
from fer_helpers.data.fer2013 import CLASS_NAMES, NUM_CLASSES
from fer_helpers.data.results import RunResult
from fer_helpers.data.synthetic import make_synthetic_fer

CHANGES = [(change, amount) for change, amounts in robustness.SWEEPS.items() for amount in amounts]


@pytest.fixture(scope="module")
def faces() -> tuple[np.ndarray, np.ndarray]:
    images, labels = make_synthetic_fer(n_train=14, n_public=42, n_private=14, seed=0).split("PublicTest")
    return images, labels


def mean_brightness_logits(images: np.ndarray) -> np.ndarray:
    """A tiny model: the class is the face's mean brightness in seven bands."""
    band = np.clip((images.reshape(len(images), -1).mean(axis=1) / 256 * NUM_CLASSES).astype(int), 0, NUM_CLASSES - 1)
    return np.eye(NUM_CLASSES, dtype=np.float32)[band] * 5


@pytest.mark.parametrize(("change", "amount"), CHANGES)
def test_every_change_keeps_the_faces_shape_and_leaves_its_input_alone(faces, change, amount):
    images = faces[0][:5]
    before = images.copy()
    out = robustness.perturb(images, change, amount)
    assert out.shape == images.shape and out.dtype == np.uint8
    assert np.array_equal(images, before), "the input faces were changed"
    assert not np.array_equal(out, images), "the change did nothing"
    assert np.array_equal(out, robustness.perturb(images, change, amount)), "the same seed gives the same faces"


def test_unchanged_is_a_copy_and_unknown_changes_and_wrong_faces_are_errors(faces):
    images = faces[0][:3]
    out = robustness.perturb(images, robustness.UNCHANGED, 0)
    assert np.array_equal(out, images) and out is not images
    with pytest.raises(ValueError, match="unknown change"):
        robustness.perturb(images, "zoom", 1.2)
    with pytest.raises(ValueError, match="uint8"):
        robustness.perturb(images.astype(np.float32), "blur", 1)


def test_a_shift_moves_a_dot_by_its_amount_and_a_tighter_crop_enlarges_the_face():
    dot = np.zeros((1, 48, 48), np.uint8)
    dot[0, 20:28, 20:28] = 255
    moved = robustness.perturb(dot, "shift", 6, seed=3)[0]
    centre = np.array(np.nonzero(moved > 127)).mean(axis=1)
    assert np.hypot(*(centre - 23.5)) == pytest.approx(6, abs=0.6)
    assert (robustness.perturb(dot, "scale", 1.5)[0] > 127).sum() > (dot[0] > 127).sum() * 2
    assert (robustness.perturb(dot, "scale", 0.5)[0] > 127).sum() < (dot[0] > 127).sum() / 2


def test_light_changes_clip_and_blur_smooths():
    flat = np.full((2, 48, 48), 250, np.uint8)
    assert robustness.perturb(flat, "brightness", 64).max() == 255
    noise = np.random.default_rng(0).integers(0, 256, (2, 48, 48), dtype=np.uint8)
    assert robustness.perturb(noise, "blur", 2).std() < noise.std() / 2
    assert robustness.perturb(noise, "contrast", 0.5).std() < noise.std() * 0.6


def test_the_sweep_scores_every_change_in_one_call_and_its_table_says_what_moved(faces):
    images, labels = faces
    calls = []

    def model(x):
        calls.append(len(x))
        return mean_brightness_logits(x)

    scores = robustness.perturbed_logits(model, images)
    assert calls == [len(images) * (1 + len(CHANGES))]
    assert list(scores) == [(robustness.UNCHANGED, 0.0), *[(c, float(a)) for c, a in CHANGES]]
    table = robustness.sweep_table(scores, labels)
    assert len(table) == 1 + len(CHANGES)
    none = table.iloc[0]
    assert none["drop_points"] == 0 and none["drop_low"] == 0 and none["drop_high"] == 0
    for _, row in table.iterrows():
        preds = scores[(row["change"], row["amount"])].argmax(axis=1)
        assert row["accuracy"] == pytest.approx((preds == labels).mean())
        assert row["accuracy_low"] <= row["accuracy"] <= row["accuracy_high"]
        assert row["drop_low"] <= row["drop_points"] <= row["drop_high"]
        assert row["top_share"] == pytest.approx(np.bincount(preds).max() / len(preds))
    # this tiny model answers by brightness: darkening every face moves all its answers to the darker classes
    dark = table[(table["change"] == "brightness") & (table["amount"] < 0)].iloc[0]
    assert CLASS_NAMES.index(dark["top_class"]) <= CLASS_NAMES.index(none["top_class"])
    # a higher temperature lowers the confidence and leaves the accuracy as it was
    warm = robustness.sweep_table(scores, labels, temperature=3.0)
    assert (warm["confidence"] < table["confidence"]).all()
    assert np.array_equal(warm["accuracy"], table["accuracy"])


def test_a_prior_shift_divides_by_the_learned_prior_and_renormalises():
    probs = np.array([[0.5, 0.3, 0.2], [0.2, 0.2, 0.6]])
    learned = np.array([0.6, 0.3, 0.1])
    uniform = np.full(3, 1 / 3)
    moved = robustness.shift_prior(probs, uniform, learned)
    expected = probs / learned
    assert np.allclose(moved, expected / expected.sum(axis=1, keepdims=True))
    assert np.allclose(moved.sum(axis=1), 1)
    assert np.allclose(robustness.shift_prior(probs, learned, learned), probs)
    assert moved[0].argmax() == 2 and probs[0].argmax() == 0  # the rare class wins once its rarity is divided out
    with pytest.raises(ValueError, match="above 0"):
        robustness.shift_prior(probs, uniform, np.array([0.5, 0.5, 0.0]))
    with pytest.raises(ValueError, match="two priors"):
        robustness.shift_prior(probs, uniform[:2], learned)
    assert np.allclose(robustness.class_prior(np.array([0, 0, 1, 6])), [0.5, 0.25, 0, 0, 0, 0, 0.25])


def test_the_recall_table_gives_each_class_its_accuracy_with_an_interval():
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(NUM_CLASSES), 20)
    preds = np.where(rng.random(len(labels)) < 0.6, labels, (labels + 1) % NUM_CLASSES)
    table = robustness.recall_table(labels, {"model": preds, "always Happy": np.full_like(labels, 3)})
    model = table[table["name"] == "model"].set_index("class")
    for c, name in enumerate(CLASS_NAMES):
        assert model.loc[name, "value"] == pytest.approx((preds[labels == c] == c).mean())
    assert model.loc[robustness.ALL_FACES, "value"] == pytest.approx((preds == labels).mean())
    assert (model["low"] <= model["value"]).all() and (model["value"] <= model["high"]).all()
    happy = table[table["name"] == "always Happy"].set_index("class")
    assert happy.loc["Happy", "value"] == 1 and happy.loc["Sad", "value"] == 0
    assert happy.loc[robustness.MEAN_RECALL, "value"] == pytest.approx(1 / NUM_CLASSES)


def test_box_overlap():
    box = np.array([[10, 10, 20, 20]])
    assert box_iou(box, box)[0, 0] == 1
    assert box_iou(box, [[40, 40, 5, 5]])[0, 0] == 0
    assert box_iou(box, [[20, 10, 20, 20]])[0, 0] == pytest.approx(1 / 3)


def test_scenes_hold_each_face_where_their_boxes_say_and_detections_are_matched(faces):
    images = faces[0]
    sides = robustness.SCENE_SIDES
    scenes = robustness.make_scenes(images, 3, backgrounds=("brick", "coins"))
    assert len(scenes) == 3
    for scene in scenes:
        assert scene.image.shape == robustness.SCENE_SHAPE and scene.image.dtype == np.uint8
        assert sorted(scene.boxes[:, 2]) == sorted(sides)
        iou = box_iou(scene.boxes, scene.boxes)
        assert np.allclose(iou, np.eye(len(sides))), "pasted faces overlap"
        x, y, w, h = scene.boxes[list(scene.boxes[:, 2]).index(48)]
        face = scene.faces[list(scene.boxes[:, 2]).index(48)]
        assert np.array_equal(scene.image[y : y + h, x : x + w], images[face])
    assert sorted(np.concatenate([s.faces for s in scenes])) == list(range(3 * len(sides)))

    scene = scenes[0]
    rows, false = robustness.match_detections(scene, scene.boxes)
    assert rows["found"].all() and false == 0 and np.allclose(rows["iou"], 1)
    extra = np.vstack([scene.boxes[1:] + [2, 2, 0, 0], [[0, 0, 10, 10]]])
    rows, false = robustness.match_detections(scene, extra)
    assert rows["found"].sum() == len(sides) - 1 - (rows["side"] < 10).sum() and false == 1
    assert not rows.set_index("side").loc[scene.boxes[0, 2], "found"]
    table = robustness.detection_table(pd.concat([robustness.match_detections(s, s.boxes[:3])[0] for s in scenes]))
    assert table["faces"].sum() == 3 * len(sides) and table["found"].sum() == 9
    with pytest.raises(ValueError, match="need"):
        robustness.make_scenes(images[:5], 1)


def test_the_source_run_of_shipped_weights_is_found_by_its_key(tmp_path):
    from safetensors.numpy import save_file

    weights = tmp_path / "model_b.safetensors"
    save_file({"w": np.zeros(2, np.float32)}, str(weights), metadata={"model": "model_b", "run_key": "abc123"})
    runs = tmp_path / "runs"
    assert robustness.source_run(weights, runs) is None
    logits = {"PublicTest": np.zeros((2, NUM_CLASSES), np.float32)}
    labels = {"PublicTest": np.array([0, 1])}
    run = RunResult("model_b", {}, "abc123", runs / "full" / "results" / "model_b-abc123", "sha", logits, labels, {})
    run.git_commit = "none"
    run.save()
    found = robustness.source_run(weights, runs)
    assert found is not None and found.key == "abc123" and np.array_equal(found.labels["PublicTest"], [0, 1])
    assert robustness.source_run(tmp_path / "missing.safetensors", runs) is None


def test_news_photo_faces_come_at_fer_size():
    lfw = robustness.lfw_faces()
    assert lfw.shape == (robustness.LFW_FACES, 48, 48) and lfw.dtype == np.uint8 and lfw.std() > 10


def test_the_figures_draw_a_sweep_a_scene_and_rows_of_faces(faces):
    import matplotlib.pyplot as plt

    from fer_helpers.analysis import plots

    images, labels = faces
    table = robustness.sweep_table(robustness.perturbed_logits(mean_brightness_logits, images), labels)
    scene = robustness.make_scenes(images, 1, backgrounds=("grass",))[0]
    figures = [
        plots.plot_sweeps(table, robustness.UNITS),
        plots.plot_scene(scene.image, scene.boxes, scene.boxes[:2]),
        plots.plot_face_rows({"unchanged": images[:3], "blur 3": robustness.perturb(images[:3], "blur", 3)}),
    ]
    assert [len([a for a in f.axes if a.get_visible()]) for f in figures] == [len(robustness.SWEEPS), 1, 6]
    assert len(figures[1].axes[0].patches) == len(scene.boxes) + 2
    for fig in figures:
        plt.close(fig)
