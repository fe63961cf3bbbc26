"""Training recipes: the paper's settings, the Model B ablation switches, our recipe and the steps between them."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
from torch import nn

from fer_helpers.core.config import CNNConfig
from fer_helpers.core.profiles import PROFILES, get_profile
from fer_helpers.data.results import find_results
from fer_helpers.models.networks import ModelB, ResNetFER, count_params
from fer_helpers.models.recipes import (
    MODEL_B_ABLATIONS,
    MODEL_B_DEFAULTS,
    RECIPE_STEPS,
    baseline_config,
    config_changes,
    model_b_config,
    model_b_recipe,
    ours_config,
    recipe_step_configs,
    side_data,
)
from fer_helpers.models.registry import build_model
from fer_helpers.orchestrate.steps import recipe_step_runs
from fer_helpers.orchestrate.study import Study
from fer_helpers.train.training import fit_cnn


def _study(data, profile, run_dir) -> Study:
    return Study(profile=get_profile(profile), data=data, full_data=data, run_dir=run_dir, reports_dir=run_dir / "r")


def _model(config: CNNConfig) -> nn.Module:
    return build_model(config.model, **config.kwargs)


@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_every_profile_has_a_scale(profile):
    p = get_profile(profile)
    assert all(0 < p.width(m) <= 1 for m in ("model_b", "resnet_fer")) and p.step_epochs >= 0
    assert p.side_train_per_class is None or p.side_train_per_class > 0
    full_size = (p.width("model_b"), p.width("resnet_fer")) == (1.0, 1.0)
    scaled = (dict(model_b_config(p).model_kwargs), dict(ours_config(p).model_kwargs))
    assert (scaled == ({}, {})) == full_size


def test_classroom_widths():
    assert ModelB.scaled(1 / 3) == {"widths": (16, 32, 64, 117), "hidden": 85}
    assert dict(model_b_config("classroom").model_kwargs) == ModelB.scaled(0.5)
    assert ResNetFER.scaled(0.125) == {"width": 8} and dict(ours_config("classroom").model_kwargs) == {"width": 8}
    assert dict(baseline_config("classroom").model_kwargs) == {}


def test_side_data_caps_training_only(synth):
    capped = side_data(synth, get_profile("full", side_train_per_class=50))
    counts = capped.counts()
    assert counts["Training"].max() == 50
    for split in ("PublicTest", "PrivateTest"):
        assert counts[split].equals(synth.counts()[split])
    assert capped.sha256 != synth.sha256
    assert side_data(synth, "full") is synth  # no cap: the same data, so the same cached runs


@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_baseline_follows_the_paper(profile):
    config = baseline_config(profile, seed=3)
    p = get_profile(profile)
    assert (config.model, config.optimizer, config.lr, config.scheduler) == ("baseline_cnn", "adam", 1e-3, "none")
    assert config.hflip and config.rotate_deg > 0 and not config.class_weights
    assert config.max_epochs == p.epochs["baseline_cnn"] and config.patience == p.patience and config.seed == 3
    assert count_params(_model(config)) == 683_527  # Table 1 at every profile


def test_model_b_follows_the_paper():
    config = model_b_config("full", seed=1)
    assert (config.model, config.optimizer, config.lr, config.scheduler) == ("model_b", "adam", 5e-4, "plateau")
    assert config.plateau_factor == 0.5
    assert math.isclose(config.min_lr, 5e-4 / 2**7, rel_tol=0.01)  # the paper's floor, 3.9e-6
    assert config.class_weights and config.hflip and config.rotate_deg > 0
    assert config.max_epochs == PROFILES["full"].epochs["model_b"] and config.seed == 1
    assert 2_000_000 <= count_params(_model(config)) <= 3_000_000
    types = {type(m) for m in _model(config).modules()}
    assert {nn.BatchNorm2d, nn.LeakyReLU, nn.AdaptiveAvgPool2d, nn.Dropout} <= types


def test_cpu_profiles_shrink_the_models_but_not_the_recipe():
    small, full = model_b_config("smoke"), model_b_config("full")
    assert count_params(_model(small)) < count_params(_model(full)) / 8
    assert count_params(_model(ours_config("smoke"))) < count_params(_model(ours_config("full"))) / 8
    # The schedule too, where the profile is too short for the paper's plateau (the profile names it).
    assert config_changes(small, full).keys() <= {"model_kwargs", "max_epochs", "batch_size", "scheduler"}
    assert small.scheduler == get_profile("smoke").schedulers["model_b"]


@pytest.mark.parametrize("name", sorted(MODEL_B_ABLATIONS))
def test_each_ablation_changes_its_ingredient_only(name):
    switches = MODEL_B_ABLATIONS[name].switches
    default, ablated = model_b_config("smoke"), model_b_config("smoke", **switches)
    changed = config_changes(default, ablated)
    assert changed  # the switch applies
    (switch,) = switches
    if switch in ("batchnorm", "activation", "pooling", "dropout"):
        assert changed.keys() == {"model_kwargs"}
        assert changed["model_kwargs"][switch] == switches[switch]
    elif switch == "class_weights":
        assert changed == {"class_weights": False}
    else:
        assert changed == {"hflip": False, "rotate_deg": 0.0}


def test_ablated_architectures_lack_their_ingredient():
    def types(**switches):
        return {type(m) for m in _model(model_b_config("smoke", **switches)).modules()}

    assert nn.BatchNorm2d not in types(batchnorm=False)
    assert nn.LeakyReLU not in types(activation="relu")
    assert nn.AdaptiveAvgPool2d not in types(pooling="flatten")
    assert nn.Dropout not in types(dropout=0.0)


def test_unknown_switches_and_fields_are_errors():
    with pytest.raises(ValueError, match="switch"):
        model_b_config("smoke", batch_norm=False)
    with pytest.raises(TypeError):
        ours_config("smoke", learning_rate=0.1)
    with pytest.raises(ValueError, match="profile"):
        ours_config("huge")
    assert set(MODEL_B_DEFAULTS) >= {k for ablation in MODEL_B_ABLATIONS.values() for k in ablation.switches}


def test_ours_is_a_modern_recipe_under_five_million_parameters():
    config = ours_config("full", seed=2)
    assert (config.optimizer, config.nesterov, config.momentum) == ("sgd", True, 0.9)
    assert 0.05 <= config.lr <= 0.1 * config.batch_size / 128
    assert config.scheduler in ("onecycle", "cosine") and config.patience is None
    assert config.weight_decay == 5e-4 and 4 <= config.crop_pad <= 6 and 10 <= config.rotate_deg <= 15
    assert 0.25 <= config.erasing_p <= 0.5 and config.label_smoothing == 0.1 and config.tta == "flip_crop"
    assert config.max_epochs == PROFILES["full"].epochs["resnet_fer"] and config.seed == 2
    assert count_params(_model(config)) <= 5_000_000
    changed = ours_config("full", max_epochs=100, mixup_alpha=0.2)
    assert changed == replace(config, seed=0, max_epochs=100, mixup_alpha=0.2)


@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_recipe_steps_lead_from_model_b_to_ours(profile):
    steps = recipe_step_configs(profile, seed=0, max_epochs=None if get_profile(profile).step_epochs else 3)
    assert [step for step, _ in steps] == list(RECIPE_STEPS)
    assert len({step.name for step in RECIPE_STEPS}) == len(RECIPE_STEPS)
    epochs = get_profile(profile).step_epochs or 3
    assert all(config.max_epochs == epochs for _, config in steps)
    assert steps[0][1] == replace(model_b_config(profile), max_epochs=epochs)
    assert steps[-1][1] == replace(ours_config(profile), max_epochs=epochs)  # the steps cover every difference
    for (_, before), (step, after) in zip(steps, steps[1:]):
        changed = config_changes(before, after)
        assert changed and changed.keys() <= set(step.fields), step.name


def test_configs_round_trip_through_their_stored_form():
    for config in (baseline_config("full"), model_b_config("smoke", pooling="flatten"), ours_config("classroom")):
        assert CNNConfig.from_dict(config.to_dict()) == config
        hash(config)


@pytest.mark.trains
def test_our_recipe_trains_on_synthetic_faces(synth, tmp_path):
    data = synth.subsample(10, 5, seed=0)
    config = ours_config("smoke", seed=0, max_epochs=1, batch_size=16, accelerator="cpu")
    result = fit_cnn(data, config, tmp_path)
    assert result.model == "resnet_fer" and result.params == count_params(_model(config))
    for split in ("PublicTest", "PrivateTest"):
        assert result.logits[split].shape == (int((data.usage == split).sum()), 7)
    assert result.config["tta"] == "flip_crop" and len(result.history) == 1


@pytest.mark.trains
def test_recipe_steps_table_reports_public_test_under_their_own_names(synth, tmp_path):
    data = synth.subsample(8, 4, seed=0)
    table = recipe_step_runs(_study(data, "smoke", tmp_path))
    assert list(table.index) == [step.name for step in RECIPE_STEPS]
    assert table["accuracy"].between(0, 1).all() and table["gain (points)"].iloc[0] == 0
    assert table["change"].iloc[1].startswith("model=resnet_fer")
    saved = {r.model for r in find_results(tmp_path)}
    assert saved == {step.result_name for step in RECIPE_STEPS}  # never mistaken for model_b or resnet_fer runs


def test_a_profile_without_step_epochs_trains_no_recipe_steps(synth, tmp_path):
    no_steps = get_profile("smoke", step_epochs=0)
    assert recipe_step_configs(no_steps) == []
    table = recipe_step_runs(_study(synth, no_steps, tmp_path))
    assert table.empty and "accuracy" in table.columns
    assert not find_results(tmp_path)


def test_model_b_recipe_says_which_settings_are_the_papers():
    from fer_helpers.models.recipes import model_b_config, model_b_recipe

    table = model_b_recipe(model_b_config("full"))
    assert table.loc["lr", "value"] == 5e-4 and table.loc["min_lr", "value"] == 3.9e-6
    assert table.loc["lr", "from"].startswith("the paper") and table.loc["min_lr", "from"].startswith("the paper")
    # the paper gives neither the plateau's factor nor its patience
    assert table.loc["plateau_factor", "from"].startswith("ours")
    assert table.loc["plateau_patience", "from"].startswith("ours")
    assert table.loc["max_epochs", "value"] == 50


def test_the_ablation_trains_for_its_own_epochs_where_the_profile_sets_them():
    from fer_helpers.models.recipes import ablation_config
    from fer_helpers.train.plan import plan_runs

    full = get_profile("full")
    assert full.ablation_epochs is None and ablation_config(full, 1, batchnorm=False) == model_b_config(
        full, 1, batchnorm=False
    )
    short = get_profile("full", ablation_epochs=3)
    config = ablation_config(short, 0, dropout=0.0)
    assert config.max_epochs == 3 and config == replace(model_b_config(short, 0, dropout=0.0), max_epochs=3)
    # Its reference is then a Model B of its own, not the main run: the plan trains one per seed.
    references = [run for run in plan_runs(short) if run.id.startswith("model_b_side/")]
    assert [run.config.max_epochs for run in references] == [3] * len(short.seeds)
    assert not any(run.id.startswith("model_b_side/") for run in plan_runs(full))


def test_model_b_keeps_the_papers_plateau_unless_its_profile_is_too_short_for_one():
    assert model_b_config("full").scheduler == "plateau"
    assert model_b_recipe(model_b_config("full")).loc["scheduler", "from"].startswith("the paper")
    short = model_b_config("classroom")
    assert short.scheduler == "cosine" and short.min_lr == model_b_config("full").min_lr
    assert model_b_recipe(short).loc["scheduler", "from"].startswith("the profile")
    assert model_b_config("classroom", class_weights=False).scheduler == "cosine"  # the ablation's runs follow it
