"""Grad-CAM heatmaps and their measurements: shapes, invariants, hand computations, and the synthetic faces' truth."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch
from pytorch_grad_cam.metrics.road import ROADCombined
from pytorch_grad_cam.utils.model_targets import ClassifierOutputSoftmaxTarget
from torch import nn

from fer_helpers.analysis import explain
from fer_helpers.core.profiles import get_profile
from fer_helpers.data.fer2013 import CLASS_NAMES, NUM_CLASSES
from fer_helpers.data.synthetic import decisive_masks, face_regions, make_synthetic_fer
from fer_helpers.models.registry import build_model
from fer_helpers.train.inference import images_to_tensor

SIZE = 48


class TinyCNN(nn.Module):
    """Conv-BN-ReLU blocks with max-pooling after the first `pools`, global average pooling and a linear layer."""

    def __init__(self, widths: tuple[int, ...] = (8, 16, 32, 64), pools: int = 2):
        super().__init__()
        layers: list[nn.Module] = []
        in_ch = 1
        for k, width in enumerate(widths):
            layers += [nn.Conv2d(in_ch, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU(inplace=True)]
            if k < pools:
                layers.append(nn.MaxPool2d(2))
            in_ch = width
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(in_ch, NUM_CLASSES))

    @property
    def target_layer(self) -> nn.Module:
        return [m for m in self.features if isinstance(m, nn.Conv2d)][-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


class PatchModel(nn.Module):
    """Class 0's logit is 40 x the mean contrast |x - 0.5| inside one patch, the others 0: its true map is the patch."""

    def __init__(self, patch: np.ndarray):
        super().__init__()
        self.register_buffer("patch", torch.from_numpy(patch.astype(np.float32) / patch.sum()))
        self.scale = nn.Parameter(torch.tensor(40.0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        score = self.scale * ((x[:, 0] - 0.5).abs() * self.patch).sum(dim=(1, 2))
        return torch.cat([score[:, None], torch.zeros(len(x), NUM_CLASSES - 1, device=x.device)], dim=1)


@pytest.fixture(scope="module")
def faces() -> np.ndarray:
    return make_synthetic_fer(n_train=0, n_public=24, n_private=0, seed=3).images


@pytest.fixture(scope="module")
def tiny() -> TinyCNN:
    torch.manual_seed(0)
    return TinyCNN()


def _blob(center: tuple[float, float], sigma: float) -> np.ndarray:
    y, x = np.mgrid[:SIZE, :SIZE]
    return np.exp(-((y - center[0]) ** 2 + (x - center[1]) ** 2) / (2 * sigma**2)).astype(np.float32)


def _centre(mask: np.ndarray) -> tuple[float, float]:
    rows, cols = np.nonzero(mask)
    return rows.mean(), cols.mean()


# ------------------------------------------------------------------------------------------------ heatmaps
@pytest.mark.parametrize("method", sorted(explain.CAM_METHODS))
def test_gradcam_shape_range_and_no_side_effects(tiny, faces, method):
    images = faces[:3]
    before = images.copy()
    tiny.train()
    cams = explain.gradcam(tiny, images, method=method)
    assert cams.shape == (3, SIZE, SIZE) and cams.dtype == np.float32
    assert np.isfinite(cams).all() and cams.min() >= 0.0 and cams.max() <= 1.0
    assert cams.reshape(3, -1).max(axis=1).max() > 0.99  # scaled per face to a peak of 1
    np.testing.assert_array_equal(images, before)
    assert tiny.training, "the model's training flag must come back"
    assert all(m.inplace for m in tiny.modules() if isinstance(m, nn.ReLU))


def test_gradcam_default_target_is_the_prediction(tiny, faces):
    preds = explain.predict_probs(tiny, faces).argmax(axis=1)
    np.testing.assert_allclose(explain.gradcam(tiny, faces), explain.gradcam(tiny, faces, preds), atol=1e-6)
    other = (preds + 1) % NUM_CLASSES
    assert not np.allclose(explain.gradcam(tiny, faces, other), explain.gradcam(tiny, faces, preds), atol=1e-3)


def test_gradcam_does_not_depend_on_batching(tiny, faces):
    np.testing.assert_allclose(
        explain.gradcam(tiny, faces, batch_size=5), explain.gradcam(tiny, faces, batch_size=64), atol=1e-5
    )


def test_gradcam_ignores_in_place_activations():
    """The baseline CNN's in-place ReLU follows its target conv: the map must equal that of an out-of-place copy."""
    torch.manual_seed(1)
    model = build_model("baseline_cnn").eval()
    images = np.random.default_rng(0).integers(0, 256, (5, SIZE, SIZE), dtype=np.uint8)
    cams = explain.gradcam(model, images)
    for m in model.modules():
        if isinstance(m, nn.ReLU):
            m.inplace = False
    np.testing.assert_allclose(cams, explain.gradcam(model, images), atol=1e-5)


def test_gradcam_rejects_bad_input(tiny, faces):
    with pytest.raises(ValueError, match="unknown CAM method"):
        explain.gradcam(tiny, faces, method="saliency")
    with pytest.raises(ValueError, match="one target class per image"):
        explain.gradcam(tiny, faces, target_classes=[0, 1])
    with pytest.raises(ValueError, match="uint8"):
        explain.gradcam(tiny, faces.astype(np.float32))


def test_random_cams_are_smooth_maps_in_unit_range():
    maps = explain.random_cams(10, grid=6, seed=1)
    assert maps.shape == (10, SIZE, SIZE)
    assert maps.min() == 0.0 and np.allclose(maps.max(axis=(1, 2)), 1.0)
    np.testing.assert_array_equal(maps, explain.random_cams(10, grid=6, seed=1))
    assert np.abs(np.diff(maps, axis=2)).max() < 0.5  # bilinear upsampling: no jumps between neighbours


# ------------------------------------------------------------------------------------------------ regions
def test_region_shares_by_hand():
    regions = {"top": np.zeros((4, 4), bool), "corner": np.zeros((4, 4), bool)}
    regions["top"][0] = True
    regions["corner"][3, 3] = True
    cams = np.zeros((2, 4, 4), np.float32)
    cams[0, 0, :2] = 1.0  # 2 units on top
    cams[0, 3, 3] = 2.0  # 2 units in the corner
    cams[0, 2, 1] = 4.0  # 4 units elsewhere
    shares = explain.region_shares(cams, regions)
    assert list(shares.columns) == ["top", "corner", "rest"]
    np.testing.assert_allclose(shares.iloc[0], [0.25, 0.25, 0.5])
    assert shares.iloc[1].isna().all(), "an all-zero map has no shares"


def test_mouth_blob_puts_most_heat_on_the_mouth():
    regions = face_regions()
    cams = np.stack([_blob(_centre(regions["mouth"]), 2.5), _blob(_centre(regions["eyes"]), 2.5)])
    shares = explain.region_shares(cams, regions)
    np.testing.assert_allclose(shares.sum(axis=1), 1.0)
    assert shares.loc[0, "mouth"] > 0.8 and shares.loc[1, "eyes"] > 0.8
    area = explain.region_area_shares(regions)
    np.testing.assert_allclose(area["mouth"], regions["mouth"].mean())
    np.testing.assert_allclose(area.sum(), 1.0)


def test_region_shares_rejects_overlap():
    regions = face_regions()
    regions["lower eyes"] = explain.lower_part(regions["eyes"], 1 / 3)
    with pytest.raises(ValueError, match="overlap"):
        explain.region_shares(np.ones((1, SIZE, SIZE)), regions)


def test_lower_part_keeps_the_lowest_rows():
    mask = np.zeros((10, 10), bool)
    mask[2:8, 1:5] = True  # rows 2..7
    lower = explain.lower_part(mask, 1 / 3)
    assert np.flatnonzero(lower.any(axis=1)).tolist() == [6, 7]
    assert (lower <= mask).all()


def test_region_shares_by_class_and_mean_cam():
    regions = face_regions()
    mouth, eyes = _blob(_centre(regions["mouth"]), 2.0), _blob(_centre(regions["eyes"]), 2.0)
    cams = np.stack([mouth, mouth, eyes, np.zeros_like(eyes)])
    labels = np.array([3, 3, 4, 4])  # Happy, Happy, Sad, Sad with a blank map
    table = explain.region_shares_by_class(cams, labels, regions)
    assert list(table.index) == ["Happy", "Sad", "all", "area (uniform heat)"]
    assert list(table.columns) == ["eyes", "nose", "mouth", "rest", "n", "blank"]
    assert table.loc["Happy", "mouth"] > 0.8 and table.loc["Sad", "eyes"] > 0.8  # the blank map is left out
    assert table.loc["Happy", "n"] == 2 and table.loc["Sad", "blank"] == 0.5 and table.loc["all", "blank"] == 0.25
    means = explain.mean_cam_by_class(cams, labels)
    assert means.shape == (NUM_CLASSES, SIZE, SIZE)
    np.testing.assert_allclose(means[3], mouth)
    np.testing.assert_allclose(means[4], eyes / 2)
    assert np.isnan(means[0]).all()


def test_peak_in_region_on_constructed_maps():
    cams = np.zeros((3, SIZE, SIZE), np.float32)
    cams[0, 10, 10] = 1.0
    cams[1, 40, 5] = 1.0
    cams[2, 30, 30] = 1.0
    mask = np.zeros((SIZE, SIZE), bool)
    mask[5:15, 5:15] = True
    np.testing.assert_array_equal(explain.peak_in_region(cams, mask), [True, False, False])
    per_image = np.stack([mask, mask, np.roll(mask, 20, axis=(0, 1))])  # the third mask covers (30, 30)
    np.testing.assert_array_equal(explain.peak_in_region(cams, per_image), [True, False, True])
    table = explain.peak_table(cams, per_image, np.array([0, 0, 1]))
    assert table.loc["Angry", "peak_in_region"] == 0.5 and table.loc["all", "n"] == 3
    np.testing.assert_allclose(table.loc["all", "chance"], 100 / SIZE**2)
    assert table.loc["all", "blank"] == 0
    cams[2] = 0.0
    assert explain.peak_table(cams, per_image, np.array([0, 0, 1])).loc["Disgust", "blank"] == 1


def test_paper_claims_measure_a_sad_lower_eye_focus():
    regions = face_regions()
    lower = explain.lower_part(regions["eyes"], explain.LOWER_EYES_FRACTION)
    labels = np.repeat(np.arange(NUM_CLASSES), 6)
    rng = np.random.default_rng(0)
    mouth = _blob(_centre(regions["mouth"]), 2.0)
    cams = np.stack([mouth * rng.uniform(0.8, 1.2) for _ in labels])
    sad = labels == CLASS_NAMES.index("Sad")
    cams[sad] = _blob(_centre(lower), 1.5)
    claims = explain.paper_claims(cams, labels, regions)
    assert list(claims.columns) == [
        "claim",
        "measured",
        "ci_low",
        "ci_high",
        "reference",
        "against",
        "area",
        "ratio",
        "holds",
    ]
    assert (claims["ci_low"] <= claims["measured"]).all()
    assert claims["holds"].iloc[0] and claims["holds"].iloc[1]  # every map lies on the eyes or the mouth
    assert not claims["holds"].iloc[2]  # and none on the cheeks
    sad_rows = claims[claims["claim"].str.startswith("Sad")]
    assert sad_rows["holds"].all() and (sad_rows["measured"] > 0.5).all()
    centred = np.stack([np.roll(_blob((24, 24), 6.0), rng.integers(-2, 3, 2), axis=(0, 1)) for _ in labels])
    assert not explain.paper_claims(centred, labels, regions)["holds"].iloc[3:].any()  # Sad like every class
    cams[sad] = 0.0  # blank maps: no evidence either way
    assert explain.paper_claims(cams, labels, regions)["holds"].iloc[3:].isna().all()


def test_a_centre_blob_beats_uniform_heat_but_not_the_centre_biased_reference():
    """The reason for the reference: a heatmap that only prefers the middle of the frame must not 'hold'."""
    regions = face_regions()
    blob = _blob((24, 24), 9.0)
    rng = np.random.default_rng(1)
    cams = np.stack([np.roll(blob, rng.integers(-2, 3, 2), axis=(0, 1)) for _ in range(70)])
    labels = np.repeat(np.arange(NUM_CLASSES), 10)
    claims = explain.paper_claims(cams, labels, regions)
    nose_heavy = claims.iloc[0]
    assert nose_heavy["measured"] > nose_heavy["area"] * 0.5  # plenty of heat
    assert not claims["holds"].iloc[:3].any()
    centre = explain.centre_bias_map(cams)
    assert centre.sum() == pytest.approx(1.0) and np.unravel_index(centre.argmax(), centre.shape) == (24, 24)


def test_independent_claims_are_ratios_to_references_not_fitted_to_the_maps():
    regions = face_regions()
    labels = np.repeat(np.arange(NUM_CLASSES), 8)
    rng = np.random.default_rng(0)
    eyes_mouth = _blob(_centre(regions["mouth"]), 2.0) + _blob(_centre(regions["eyes"]), 2.0)
    cams = np.stack([eyes_mouth * rng.uniform(0.8, 1.2) for _ in labels])
    flat = np.ones_like(cams)
    table = explain.independent_claims(cams, labels, regions, {"flat maps": flat, "the same maps": cams.copy()})
    assert {explain.UNIFORM, "flat maps", "the same maps", explain.CENTRE_BIAS} == set(table["reference"])
    assert not table.loc[table["reference"] == explain.CENTRE_BIAS, "independent"].any()
    row = table[(table["claim"] == "heat on eyes + mouth, all faces") & (table["reference"] == "flat maps")].iloc[0]
    assert row["ratio"] == pytest.approx(row["measured"] / row["reference_share"])
    assert row["ratio_ci_low"] <= row["ratio"] <= row["ratio_ci_high"] and row["holds"]
    uniform = table[(table["claim"] == "heat on eyes + mouth, all faces") & (table["reference"] == explain.UNIFORM)]
    assert uniform["ratio"].iloc[0] == pytest.approx(row["ratio"])  # flat maps give each region its area
    same = table[table["reference"] == "the same maps"]
    assert np.allclose(same["ratio"].dropna(), 1.0) and not same["holds"].fillna(False).any()  # nothing beats itself
    outside = table[(table["claim"] == explain.OUTSIDE) & (table["reference"] == explain.UNIFORM)].iloc[0]
    assert outside["ratio_ci_high"] < 1 and outside["holds"]  # little heat outside the face: "ignores the background"


def test_the_weakest_class_is_chosen_on_other_faces_than_it_is_tested_on():
    regions = face_regions()
    labels = np.repeat(np.arange(NUM_CLASSES), 10)
    on_face = _blob(_centre(regions["mouth"]), 2.0) + _blob(_centre(regions["eyes"]), 2.0)
    elsewhere = _blob((44, 4), 2.0)
    cams = np.stack([on_face for _ in labels])
    faces = np.arange(len(labels))
    cams[(labels == CLASS_NAMES.index("Angry")) & (faces % 2 == 0)] = elsewhere  # weak where it is chosen ...
    cams[(labels == CLASS_NAMES.index("Fear")) & (faces % 2 == 1)] = elsewhere  # ... another weak where it is tested
    table = explain.independent_claims(cams, labels, regions, {})
    weakest = table[table["claim"].str.startswith("heat on eyes + mouth, weakest class")]
    assert weakest["claim"].iloc[0] == "heat on eyes + mouth, weakest class (Angry, chosen on other faces)"
    assert weakest["n"].iloc[0] == 5 and weakest["holds"].iloc[0]  # Angry's other faces are on the face
    blob = explain.paper_claims(cams, labels, regions)  # the comparison against the centre-biased blob: the same rule
    chosen = blob[blob["claim"].str.startswith("heat on eyes + mouth, weakest class")]["claim"]
    assert chosen.iloc[0] == "heat on eyes + mouth, weakest class (Angry, chosen on other faces)"


def test_pick_examples_takes_the_most_confident():
    labels = np.array([0, 0, 0, 1])
    probs = np.full((4, NUM_CLASSES), 0.01)
    probs[0, 0], probs[1, 0], probs[2, 3], probs[3, 1] = 0.6, 0.9, 0.7, 0.5
    ex = explain.pick_examples(labels, probs)
    assert ex[["class", "outcome", "index"]].values.tolist() == [
        ["Angry", "correct", 1],
        ["Angry", "wrong", 2],
        ["Disgust", "correct", 3],
    ]
    assert ex.loc[1, "predicted"] == "Happy"


def test_sample_per_class_is_stratified():
    labels = np.repeat(np.arange(NUM_CLASSES), [50, 3, 50, 50, 50, 50, 50])
    idx = explain.sample_per_class(labels, 70, seed=0)
    counts = np.bincount(labels[idx], minlength=NUM_CLASSES)
    assert counts.tolist() == [10, 3, 10, 10, 10, 10, 10]
    assert (np.diff(idx) > 0).all()


# ------------------------------------------------------------------------------------------------ faithfulness
@pytest.mark.filterwarnings("ignore:__array_wrap__:DeprecationWarning")  # inside the library's ROAD imputer
def test_road_scores_match_the_library_and_are_reproducible(tiny, faces):
    images = faces[:4]
    cams = explain.gradcam(tiny, images)
    targets = explain.predict_probs(tiny, images).argmax(axis=1)
    road = explain.road_scores(tiny, images, cams, targets, percentiles=(20, 80), seed=5)
    assert road.morf.shape == road.lerf.shape == (4, 2)
    assert np.isfinite(road.morf).all() and np.isfinite(road.lerf).all()
    np.testing.assert_allclose(road.removed, [0.8, 0.2])
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(5)
        x = images_to_tensor(images)
        tiny.eval()
        expected = ROADCombined(percentiles=[20, 80])(
            x, cams, [ClassifierOutputSoftmaxTarget(int(t)) for t in targets], tiny
        )
    np.testing.assert_allclose(road.combined, expected, atol=1e-5)
    again = explain.road_scores(tiny, images, cams, targets, percentiles=(20, 80), seed=5)
    np.testing.assert_array_equal(road.morf, again.morf)


def test_deletion_insertion_curves_by_construction():
    patch = np.zeros((SIZE, SIZE), bool)
    patch[30:40, 12:36] = True
    model = PatchModel(patch)
    images = np.random.default_rng(0).integers(0, 256, (8, SIZE, SIZE), dtype=np.uint8)  # blurring flattens noise
    targets = np.zeros(8, dtype=np.int64)
    truth = np.broadcast_to(patch.astype(np.float32), images.shape).copy()
    curves = explain.deletion_insertion(model, images, truth, targets, steps=8)
    assert curves.deletion.shape == curves.insertion.shape == (8, 9)
    np.testing.assert_allclose(curves.fractions, np.linspace(0, 1, 9))
    probs = explain.predict_probs(model, images)[:, 0]
    np.testing.assert_allclose(curves.deletion[:, 0], probs, atol=1e-5)  # nothing deleted yet
    np.testing.assert_allclose(curves.insertion[:, -1], probs, atol=1e-5)  # everything restored
    np.testing.assert_allclose(curves.deletion[:, -1], curves.insertion[:, 0], atol=1e-5)  # both: the blurred face
    # The patch is 10% of the frame: once it is gone (step 1 of 8 deletes 12.5%), the model's evidence is gone.
    np.testing.assert_allclose(curves.deletion[:, 1:], curves.deletion[:, -1:].repeat(8, axis=1), atol=1e-5)
    rand = explain.deletion_insertion(model, images, explain.random_cams(8, seed=0), targets, steps=8)
    assert (curves.deletion_auc < rand.deletion_auc).mean() >= 0.75
    assert (curves.insertion_auc > rand.insertion_auc).mean() >= 0.75


def test_faithfulness_table_compares_maps(tiny, faces):
    images = faces[:4]
    targets = explain.predict_probs(tiny, images).argmax(axis=1)
    maps = {"Grad-CAM": explain.gradcam(tiny, images, targets), "random": explain.random_cams(4)}
    table, curves = explain.faithfulness_table(tiny, images, targets, maps, steps=4, n_road=2, percentiles=(50,))
    assert list(table.index) == ["Grad-CAM", "random"] and set(curves) == set(maps)
    assert {"deletion_auc", "insertion_auc", "road_morf", "road_lerf", "road_combined"} <= set(table.columns)
    assert np.isfinite(table.to_numpy()).all()
    no_road, _ = explain.faithfulness_table(tiny, images, targets, maps, steps=4, n_road=0)
    assert list(no_road.columns) == ["deletion_auc", "insertion_auc"]


# ------------------------------------------------------------------------------------------------ sanity check
def test_randomized_copy_leaves_the_model_alone(tiny):
    before = {k: v.clone() for k, v in tiny.state_dict().items()}
    top = explain.randomized_copy(tiny, n_layers=1, seed=0)
    for k, v in tiny.state_dict().items():
        torch.testing.assert_close(v, before[k])
    changed = [k for k, v in top.state_dict().items() if not torch.equal(v, before[k])]
    assert changed and all(k.startswith("classifier.2") for k in changed)
    names = [name for name, _ in explain.parameter_layers(tiny)]
    assert names[-1] == "classifier.2" and names[0] == "features.0"


def test_cam_similarity_by_hand():
    a = explain.random_cams(3, seed=0)
    same = explain.cam_similarity(a, a)
    np.testing.assert_allclose(same[["spearman", "ssim"]].to_numpy(), 1.0, atol=1e-6)
    flipped = explain.cam_similarity(a, 1.0 - a)
    np.testing.assert_allclose(flipped["spearman"], -1.0, atol=1e-6)
    flat = explain.cam_similarity(a, np.zeros_like(a))
    assert (flat["spearman"] == 0).all()


def test_randomization_check_destroys_the_heatmaps(tiny, faces):
    images = faces[:4]
    check = explain.randomization_check(tiny, images, cascade=True, seed=1)
    n_layers = len(explain.parameter_layers(tiny))
    assert check["layers_randomized"].tolist() == list(range(n_layers + 1))
    assert check["down_to"].iloc[1] == "classifier.2 (Linear)"
    assert check.loc[0, "spearman"] == pytest.approx(1.0) and check.loc[0, "ssim"] == pytest.approx(1.0)
    full = check.iloc[-1]
    assert full["spearman"] < 0.9 and full["ssim"] < 0.9
    once = explain.randomization_check(tiny, images, cascade=False, seed=1)
    assert len(once) == 2
    np.testing.assert_allclose(
        once.iloc[-1][["spearman", "ssim"]].astype(float), full[["spearman", "ssim"]].astype(float)
    )


def test_randomization_check_on_model_b(faces):
    torch.manual_seed(0)
    model = build_model("model_b", widths=(8, 8, 16, 16), hidden=16)
    check = explain.randomization_check(model, faces[:4], cascade=False, seed=1)
    assert check["spearman"].iloc[-1] < check["spearman"].iloc[0] and check["ssim"].iloc[-1] < check["ssim"].iloc[0]


# ------------------------------------------------------------------------------------------------ synthetic truth
@pytest.mark.trains
def test_trained_cnn_looks_at_the_deciding_region():
    """On synthetic faces, a briefly trained CNN's heatmap peaks inside the region that decides the label
    more often than a randomly placed peak would (the region's share of the frame)."""
    data = make_synthetic_fer(n_train=1050, n_public=350, n_private=0, seed=0, imbalance=False)
    images, labels = data.split("Training")
    test_images, test_labels = data.split("PublicTest")
    masks = decisive_masks(data)[data.usage == "PublicTest"]
    torch.manual_seed(0)
    model = TinyCNN(pools=2)
    x, y = images_to_tensor(images), torch.from_numpy(labels)
    epochs, batch = 10, 32
    opt = torch.optim.Adam(model.parameters(), lr=5e-3)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=5e-3, total_steps=epochs * -(-len(x) // batch))
    model.train()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # convolutions this small gain nothing from threads and lose much on a busy machine
    try:
        for _ in range(epochs):
            for idx in torch.randperm(len(x)).split(batch):
                loss = nn.functional.cross_entropy(model(x[idx]), y[idx])
                opt.zero_grad()
                loss.backward()
                opt.step()
                sched.step()
    finally:
        torch.set_num_threads(threads)
    accuracy = (explain.predict_probs(model, test_images).argmax(axis=1) == test_labels).mean()
    assert accuracy > 0.3, f"the CNN did not learn (accuracy {accuracy:.2f})"
    table = explain.peak_table(explain.gradcam(model, test_images, test_labels), masks, test_labels)
    overall = table.loc["all"]
    assert overall["peak_in_region"] > overall["chance"] + 0.15, table


def test_load_trained_reports_missing_results(tmp_path):
    assert explain.load_trained(tmp_path, "model_b") is None


def test_cam_budget_profiles():
    assert explain.cam_budget("smoke").n_images < explain.cam_budget("full").n_images
    derived = replace(get_profile("full"), name="mine", seeds=(0,))  # a user's own profile keeps full's budget
    assert explain.cam_budget(derived) == explain.cam_budget("full")
    assert explain.cam_budget("full", n_images=12).n_images == 12
    assert explain.cam_budget("full", n_images=None) == explain.cam_budget("full")
    with pytest.raises(ValueError, match="unknown profile"):
        explain.cam_budget("huge")
    assert isinstance(explain.region_shares(np.ones((1, SIZE, SIZE)), {}), pd.DataFrame)
