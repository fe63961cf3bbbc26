"""HOG + linear SVM: learns the synthetic faces, picks C on PublicTest, and reloads instead of refitting."""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import pytest

from fer_helpers.core.profiles import get_profile
from fer_helpers.data.fer2013 import NUM_CLASSES
from fer_helpers.train import classical
from fer_helpers.train.classical import HOG_VARIANTS, HogSvmConfig, fit_hog_svm, fit_hog_variant, hog_variant_config

pytestmark = pytest.mark.trains  # every test here fits HOG models (seconds each)
GRID = (0.0001, 0.001, 0.01)


@pytest.fixture(scope="module")
def run_root(tmp_path_factory):
    return tmp_path_factory.mktemp("runs")


@pytest.fixture(scope="module")
def result(synth, run_root):
    return fit_hog_svm(synth, HogSvmConfig(c_grid=GRID), run_root)


def test_beats_the_majority_class(synth, result):
    for split in ("PublicTest", "PrivateTest"):
        _, labels = synth.split(split)
        majority = np.bincount(labels, minlength=NUM_CLASSES).max() / len(labels)
        assert result.metrics[split]["accuracy"] > majority + 0.2, (split, result.metrics[split], majority)
        np.testing.assert_array_equal(result.labels[split], labels)
        assert result.logits[split].shape == (len(labels), NUM_CLASSES)
        assert result.logits[split].dtype == np.float32


def test_records_what_the_report_needs(result):
    assert result.model == "hog_svm" and result.device == "cpu" and result.seed == 0
    assert result.params == NUM_CLASSES * 900 + NUM_CLASSES  # one weight per HOG dimension and class, plus biases
    assert result.extra["hog_dim"] == 900
    assert result.train_seconds > 0 and result.images_per_second > 0 and result.extra["hog_images_per_second"] > 0
    assert list(result.history["C"]) == list(GRID)


def test_c_is_chosen_on_public_test(result):
    search = result.extra["c_search"]
    assert [row["C"] for row in search] == list(GRID)
    best = max(row["public_accuracy"] for row in search)
    chosen = next(row for row in search if row["C"] == result.extra["chosen_C"])
    assert chosen["public_accuracy"] == best
    assert result.metrics["PublicTest"]["accuracy"] == pytest.approx(best)
    # The values of C differ in PublicTest accuracy, so the choice matters.
    assert min(row["public_accuracy"] for row in search) < best


def test_private_test_plays_no_part_in_the_choice(synth, run_root, result):
    labels = synth.labels.copy()
    private = synth.usage == "PrivateTest"
    labels[private] = np.random.default_rng(0).permutation(labels[private])[::-1]
    scrambled = fit_hog_svm(
        dataclasses.replace(synth, labels=labels, sha256="1" * 64), HogSvmConfig(c_grid=GRID), run_root
    )
    assert scrambled.extra["chosen_C"] == result.extra["chosen_C"]
    assert scrambled.extra["c_search"][0]["public_accuracy"] == result.extra["c_search"][0]["public_accuracy"]
    np.testing.assert_allclose(scrambled.logits["PrivateTest"], result.logits["PrivateTest"], rtol=1e-5, atol=1e-5)


def test_public_test_labels_only_choose_c(synth, run_root, result):
    """At the chosen C, PublicTest's labels leave the model untouched: it is refitted on Training alone."""
    labels = synth.labels.copy()
    public = synth.usage == "PublicTest"
    labels[public] = np.random.default_rng(1).permutation(labels[public])
    scrambled = fit_hog_svm(
        dataclasses.replace(synth, labels=labels, sha256="2" * 64),
        HogSvmConfig(c_grid=(result.extra["chosen_C"],)),
        run_root,
    )
    np.testing.assert_array_equal(scrambled.logits["PrivateTest"], result.logits["PrivateTest"])


def test_search_scores_match_a_pipeline_fitted_by_hand(synth, run_root, result):
    from sklearn.metrics import accuracy_score, f1_score

    features = classical.cached_hog_features(synth.images, synth.sha256, run_root, n_jobs=1)[0]
    training, public = synth.usage == "Training", synth.usage == "PublicTest"
    pipeline = HogSvmConfig(c_grid=GRID).pipeline()
    unfitted = repr(pipeline.get_params())
    frozen = classical.fit_transformers(pipeline, features[training])
    assert repr(pipeline.get_params()) == unfitted and not hasattr(pipeline["scaler"], "mean_")  # input untouched
    row = next(row for row in result.extra["c_search"] if row["C"] == result.extra["chosen_C"])
    assert row["solver"] == ("dual" if classical.linear_svc_dual(row["C"], int(training.sum())) else "primal")
    svm = frozen.set_params(clf__C=row["C"], clf__dual=row["solver"] == "dual").fit(
        features[training], synth.labels[training]
    )
    preds = svm.predict(features[public])
    assert row["public_accuracy"] == accuracy_score(synth.labels[public], preds)
    assert row["public_macro_f1"] == pytest.approx(
        f1_score(synth.labels[public], preds, labels=range(NUM_CLASSES), average="macro", zero_division=0)
    )


def test_dual_fits_in_worker_processes_match_fits_in_turn(synth, run_root):
    """liblinear's dual draws from one generator per process: fitted side by side in workers, the models are those
    fitted one after another, and the CPU seconds count the workers' too."""
    features = classical.cached_hog_features(synth.images, synth.sha256, run_root, n_jobs=1)[0]
    pipeline = HogSvmConfig(c_grid=GRID).pipeline()
    n_train = int((synth.usage == "Training").sum())
    assert all(classical.linear_svc_dual(c, n_train) for c in GRID)  # the case that needs processes
    in_turn, fitted_in_turn, _ = classical.search_c_on_public_test(
        pipeline, GRID, features, synth.labels, synth.usage, n_jobs=1
    )
    side_by_side, fitted_side_by_side, cpu_seconds = classical.search_c_on_public_test(
        pipeline, GRID, features, synth.labels, synth.usage, n_jobs=2
    )
    for one, other in zip(fitted_in_turn, fitted_side_by_side):
        np.testing.assert_array_equal(one["clf"].coef_, other["clf"].coef_)
    drop = ("fit_seconds",)
    assert [{k: v for k, v in r.items() if k not in drop} for r in in_turn] == [
        {k: v for k, v in r.items() if k not in drop} for r in side_by_side
    ]
    assert cpu_seconds >= 0.5 * sum(row["fit_seconds"] for row in side_by_side)


def test_configurations_fitted_side_by_side_match_those_fitted_alone(synth, run_root, result, tmp_path):
    """The unweighted configuration is the module's `result` (fitted alone): side by side with the balanced one, in
    worker processes, it comes out the same, the balanced one as fitted alone too, and both are then saved."""
    configs = [HogSvmConfig(c_grid=GRID), HogSvmConfig(c_grid=GRID, class_weight="balanced")]
    side_by_side = classical.fit_hog_svms(synth, configs, tmp_path, n_jobs=2)
    balanced_alone = fit_hog_svm(synth, configs[1], tmp_path / "alone", n_jobs=1)
    assert list(side_by_side) == ["hog_svm", "hog_svm_balanced"]
    for alone in (result, balanced_alone):
        together = side_by_side[alone.model]
        assert not together.from_cache and together.extra["chosen_C"] == alone.extra["chosen_C"]
        for split in ("PublicTest", "PrivateTest"):
            np.testing.assert_array_equal(together.logits[split], alone.logits[split])
    again = classical.fit_hog_svms(synth, configs, tmp_path, n_jobs=2)
    assert all(r.from_cache for r in again.values())


def test_a_fit_stopped_at_max_iter_is_recorded_not_warned(synth, run_root):
    features = classical.cached_hog_features(synth.images, synth.sha256, run_root, n_jobs=1)[0]
    pipeline = dataclasses.replace(HogSvmConfig(c_grid=GRID), max_iter=1).pipeline()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a ConvergenceWarning would fail the search here
        rows, fitted, _ = classical.search_c_on_public_test(
            pipeline, GRID, features, synth.labels, synth.usage, n_jobs=1
        )
    assert [row["converged"] for row in rows] == [False] * len(GRID)
    assert all(model["clf"].n_iter_ == 1 for model in fitted)
    rows, _, _ = classical.search_c_on_public_test(
        HogSvmConfig(c_grid=GRID).pipeline(), GRID, features, synth.labels, synth.usage, n_jobs=1
    )
    assert all(row["converged"] for row in rows)


def test_second_call_loads_from_cache(synth, run_root, result, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("refitted instead of loading the cached result")

    monkeypatch.setattr(classical, "LinearSVC", refuse)
    again = fit_hog_svm(synth, {"c_grid": list(GRID)}, run_root)
    assert again.from_cache and not result.from_cache
    assert again.key == result.key
    for split in ("PublicTest", "PrivateTest"):
        np.testing.assert_array_equal(again.logits[split], result.logits[split])
    assert again.extra["c_search"] == result.extra["c_search"]


def test_refits_when_config_or_data_change(synth, run_root, result, monkeypatch):
    calls = []
    original = classical.cached_hog_features

    def counting(*args, **kwargs):
        calls.append(kwargs)
        return original(*args, **kwargs)

    monkeypatch.setattr(classical, "cached_hog_features", counting)
    feature_files = set((run_root / "features").glob("*.npz"))
    other_grid = fit_hog_svm(synth, HogSvmConfig(c_grid=GRID[1:]), run_root)
    balanced = fit_hog_svm(synth, HogSvmConfig(c_grid=GRID, class_weight="balanced"), run_root)
    other_data = fit_hog_svm(dataclasses.replace(synth, sha256="0" * 64), HogSvmConfig(c_grid=GRID), run_root)
    assert len(calls) == 3
    assert not any(r.from_cache for r in (other_grid, balanced, other_data))
    assert len({result.key, other_grid.key, balanced.key, other_data.key}) == 4
    assert balanced.model == "hog_svm_balanced"
    assert result.run_dir != balanced.run_dir
    # The other grid and the class weights reuse the features; the new checksum gets its own file.
    assert len(set((run_root / "features").glob("*.npz")) - feature_files) == 1


def test_fresh_refits(synth, run_root, result):
    again = fit_hog_svm(synth, HogSvmConfig(c_grid=GRID), run_root, fresh=True)
    assert not again.from_cache
    np.testing.assert_allclose(again.logits["PrivateTest"], result.logits["PrivateTest"], rtol=1e-5, atol=1e-5)


def test_config_from_profile_and_validation():
    full = get_profile("full")
    assert HogSvmConfig.from_profile(full).c_grid == full.hog_c_grid
    assert HogSvmConfig.from_profile(full, class_weight="balanced").model == "hog_svm_balanced"
    with pytest.raises(ValueError, match="unknown"):
        HogSvmConfig.from_dict({"c_grid": [1.0], "kernel": "rbf"})
    with pytest.raises(ValueError, match="class_weight"):
        HogSvmConfig(class_weight="inverse")
    with pytest.raises(ValueError, match="empty"):
        HogSvmConfig(c_grid=())


def test_stored_weights_reproduce_the_scores(synth, result):
    from safetensors.numpy import load_file

    from fer_helpers.data.features import hog_features

    weights = load_file(str(result.weights_path))
    images, _ = synth.split("PrivateTest")
    standardised = (hog_features(images, n_jobs=1) - weights["scaler_mean"]) / weights["scaler_scale"]
    scores = standardised @ weights["coef"].T + weights["intercept"]
    np.testing.assert_allclose(scores, result.logits["PrivateTest"], rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("name", sorted(HOG_VARIANTS))
def test_extension_variants_learn_and_choose_c_on_public_test(synth, run_root, result, name):
    variant = fit_hog_variant(synth, name, run_root)
    assert variant.model == name
    search = variant.extra["c_search"]
    chosen = next(row for row in search if row["C"] == variant.extra["chosen_C"])
    assert chosen["public_accuracy"] == max(row["public_accuracy"] for row in search)
    assert variant.metrics["PublicTest"]["accuracy"] == pytest.approx(chosen["public_accuracy"])
    # Finer cells, several scales and a kernel all see more of the face than the paper's 900 numbers.
    assert variant.extra["hog_dim"] > 900
    assert variant.metrics["PrivateTest"]["accuracy"] > result.metrics["PrivateTest"]["accuracy"] - 0.05
    again = fit_hog_variant(synth, name, run_root)
    assert again.from_cache
    np.testing.assert_array_equal(again.logits["PrivateTest"], variant.logits["PrivateTest"])


@pytest.mark.parametrize("name", sorted(HOG_VARIANTS))
def test_each_variant_is_the_pipeline_its_config_names(name):
    from sklearn.linear_model import RidgeClassifier
    from sklearn.svm import LinearSVC

    config = HOG_VARIANTS[name]
    pipeline = config.pipeline()
    expected = [
        "scaler",
        *["pca"] * (config.pca_components is not None),
        *["nystroem"] * (config.kernel_components is not None),
        "clf",
    ]
    assert [step for step, _ in pipeline.steps] == expected
    assert isinstance(pipeline["clf"], RidgeClassifier if config.classifier == "ridge" else LinearSVC)
    assert ("nystroem" in name) == (config.kernel_components is not None)  # the name says what the model is


def test_variant_sizes_follow_the_training_set():
    config = hog_variant_config("hog_nystroem")
    small = config.sized_for(n_train=2000)
    assert small.kernel_components == 2000 and small.pca_components == 256
    tiny = config.sized_for(n_train=100)
    assert tiny.pca_components == 25 and tiny.kernel_components == 100
    assert config.sized_for(n_train=10**6) == config
    with pytest.raises(ValueError, match="unknown HOG variant"):
        hog_variant_config("hog_rbf_exact")
    with pytest.raises(ValueError, match="classifier"):
        hog_variant_config("hog_nystroem", classifier="forest")


@pytest.mark.parametrize("normalize", [None, "true"])
def test_confusion_matrix_figure_shows_the_matrix(result, normalize):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import confusion_matrix

    from fer_helpers.analysis.plots import plot_confusion_matrix
    from fer_helpers.data.fer2013 import CLASS_NAMES

    labels, preds = result.labels["PrivateTest"], result.preds("PrivateTest")
    fig = plot_confusion_matrix(labels, preds, CLASS_NAMES, normalize=normalize)
    shown = fig.axes[0].collections[0].get_array().reshape(NUM_CLASSES, NUM_CLASSES)
    np.testing.assert_allclose(shown, confusion_matrix(labels, preds, labels=range(NUM_CLASSES), normalize=normalize))
    if normalize == "true":
        np.testing.assert_allclose(np.asarray(shown).sum(axis=1), 1.0)
    plt.close(fig)
    with pytest.raises(ValueError, match="normalize"):
        plot_confusion_matrix(labels, preds, CLASS_NAMES, normalize="rows")


def test_each_c_gets_the_faster_liblinear_solver():
    """Dual coordinate descent while C x faces is small (few passes), the primal Newton solver beyond."""
    limit = classical.DUAL_MAX_C_TIMES_FACES
    assert classical.linear_svc_dual(0.001, 28_709)  # FER-2013's Training at the C both profiles choose
    assert not classical.linear_svc_dual(0.01, 28_709)
    assert classical.linear_svc_dual(limit / 1000, 1000) and not classical.linear_svc_dual(2 * limit / 1000, 1000)


def test_the_chosen_model_is_the_one_the_search_fitted(synth, run_root, monkeypatch):
    """No second fit at the chosen C: one LinearSVC fit per C of the grid, and the kept model is the search's."""
    fits = []
    original = classical.LinearSVC.fit

    def counted(self, *args, **kwargs):
        fits.append(self.C)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(classical.LinearSVC, "fit", counted)
    # in this process, where the fits are counted (a worker process would fit its own LinearSVC)
    result = fit_hog_svm(synth, HogSvmConfig(c_grid=GRID), run_root / "counted", n_jobs=1)
    assert sorted(fits) == sorted(GRID)
    assert result.extra["chosen_C"] in GRID
