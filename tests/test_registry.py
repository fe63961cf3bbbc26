"""The model registry: one entry is all a new model needs to be trained, reported, shipped and used by predict."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from fer_helpers.core.config import CNNConfig
from fer_helpers.core.profiles import Profile, get_profile
from fer_helpers.data.fer2013 import NUM_CLASSES
from fer_helpers.data.synthetic import make_synthetic_fer
from fer_helpers.models import registry
from fer_helpers.models.registry import ModelSpec
from fer_helpers.orchestrate import steps
from fer_helpers.orchestrate.study import Study
from fer_helpers.publish import predict, readme, report, summary
from fer_helpers.publish.ship import ship
from fer_helpers.train.plan import plan_runs, plan_steps


class TinyCNN(nn.Module):
    """Two convolutions and a linear layer: a model the study has never heard of."""

    def __init__(self, width: int = 8):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, width, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(4),
            nn.Conv2d(width, 2 * width, 3, padding=1),
            nn.ReLU(),
        )
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(2 * width, NUM_CLASSES))

    @property
    def target_layer(self) -> nn.Module:
        return self.features[-2]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def tiny_recipe(profile: Profile, seed: int = 0) -> CNNConfig:
    return CNNConfig(
        model="tiny_cnn",
        optimizer="adam",
        lr=3e-3,
        max_epochs=profile.epochs["baseline_cnn"],
        patience=None,
        batch_size=profile.batch_size,
        hflip=False,
        seed=seed,
    )


TINY = ModelSpec(
    "tiny_cnn",
    "Tiny CNN",
    "04_tuned_cnn",
    builder=TinyCNN,
    recipe=tiny_recipe,
    title="Tiny CNN (a test model)",
    ships=-1,
)


@pytest.fixture
def tiny_registered():
    registry.register(TINY)
    yield TINY
    registry.unregister(TINY.name)


def test_builtin_models_are_registered_once_with_their_facts():
    assert registry.cnn_names() == ("baseline_cnn", "model_b", "model_b_distilled", "resnet_fer")
    assert registry.shipped_files() == (
        "resnet_fer.safetensors",
        "model_b.safetensors",
        "baseline_cnn.safetensors",
        "model_b_distilled.safetensors",  # the fast option: answers only when asked for (--weights)
    )
    assert not registry.is_main("model_b_distilled")  # so no profile's plan trains it
    assert registry.notebooks()["baseline_cnn"] == "03_baseline_cnn"
    assert registry.label("model_b_ensemble") == "Model B ensemble"
    assert registry.label("baseline_cnn_crowd") == "Baseline CNN, crowd-trained"
    assert registry.label("model_b_no_bn") == "model_b_no_bn"  # an ablation run is no model of its own
    assert registry.is_main("resnet_fer") and not registry.is_main("hog_svm_balanced")
    assert not registry.is_main("resnet_fer_ensemble") and not registry.is_main("model_b_tta_flip")
    assert registry.label("model_b_tta_flip_crop") == "Model B with ten-view TTA"
    for name in registry.cnn_names():
        config = registry.main_config(name, "smoke")
        assert config.model == name and isinstance(registry.build_model(name, **config.kwargs), nn.Module)


def test_register_refuses_half_a_model_and_a_second_entry():
    with pytest.raises(ValueError, match="needs both a builder and a recipe"):
        registry.register(ModelSpec("half", "Half", "04_tuned_cnn", builder=TinyCNN))
    with pytest.raises(ValueError, match="registered already"):
        registry.register(ModelSpec("model_b", "Model B again", "04_tuned_cnn"))
    with pytest.raises(ValueError, match="unknown model 'nope'"):
        registry.build_model("nope")


@pytest.mark.trains
def test_a_registered_model_goes_through_training_report_ship_and_predict(tiny_registered, tmp_path):
    data = make_synthetic_fer(n_train=700, n_public=140, n_private=140, seed=0)
    profile = get_profile("smoke", epochs={"baseline_cnn": 2})
    study = Study(profile=profile, data=data, full_data=data, run_dir=tmp_path / "run", reports_dir=tmp_path / "r")

    # planning: the plan holds it (first: it ships first), `fer-study train` has a step for it, the report misses it
    assert "tiny_cnn" in plan_steps(profile) and plan_runs(profile)[0].id == "tiny_cnn/seed0"
    assert "Tiny CNN: not trained (notebook 04_tuned_cnn)" in summary.missing_runs({}, profile)
    [run] = steps.cnn_runs(study, "tiny_cnn")
    assert run.model == "tiny_cnn" and run.weights_path.is_file()

    # evaluation and the report: a row of the main comparison under its label
    metrics = summary.build_metrics(study.run_dir, study)
    entry = metrics["models"]["tiny_cnn"]
    assert 0 <= entry["private_test"]["accuracy"] <= 1
    assert "Tiny CNN" in report.comparison_table(metrics) and "Tiny CNN" in readme.readme_results_table(metrics)

    # shipping: its card has its title; predict prefers it (ships=-1) and explains its target layer
    weights, card = ship(run.run_dir, models_dir=tmp_path / "models", data=data)
    assert weights.name == "tiny_cnn.safetensors" and card.read_text().startswith("# Tiny CNN (a test model)")
    assert predict.default_weights(tmp_path / "models") == weights
    model = predict.load_model(weights)
    assert isinstance(model, TinyCNN)
    face = data.split("PrivateTest")[0][0]
    Image.fromarray(face).save(tmp_path / "face.png")
    [prediction] = predict.predict_image(tmp_path / "face.png", model)
    np.testing.assert_allclose(prediction.probs.sum(), 1.0, atol=1e-5)
    assert prediction.cam.shape == face.shape and np.isfinite(prediction.cam).all()
