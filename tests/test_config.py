"""A CNN run's configuration: validation, the JSON round trip, the cache key, and what "auto" precision means."""

from __future__ import annotations

import json

import pytest

from fer_helpers.core import hardware
from fer_helpers.core.config import EXECUTION_FIELDS, CNNConfig, result_name
from fer_helpers.core.hardware import resolve_precision
from fer_helpers.core.paths import PRECISION_ENV


def test_config_is_hashable_and_round_trips_through_json():
    config = CNNConfig(model="model_b", model_kwargs={"widths": [8, 16], "dropout": 0.2})
    assert config.model_kwargs == (("dropout", 0.2), ("widths", (8, 16)))
    assert hash(config) == hash(CNNConfig(model="model_b", model_kwargs={"dropout": 0.2, "widths": (8, 16)}))
    settings = json.loads(json.dumps(config.to_dict()))
    assert settings["model_kwargs"] == {"dropout": 0.2, "widths": [8, 16]}
    assert CNNConfig.from_dict(settings) == config


@pytest.mark.parametrize(
    "bad",
    [
        dict(optimizer="rmsprop"),
        dict(scheduler="step"),
        dict(tta="ten_crop"),
        dict(patience=0),
        dict(lr=0.0),
        dict(erasing_p=1.5),
        dict(channels_last="yes"),
        dict(crop_pad=-1),
    ],
)
def test_config_rejects_unknown_or_impossible_settings(bad):
    with pytest.raises(ValueError):
        CNNConfig(**bad)


def test_from_dict_rejects_unknown_fields():
    with pytest.raises(ValueError, match="unknown"):
        CNNConfig.from_dict({**CNNConfig().to_dict(), "epochs": 3})


@pytest.mark.parametrize(
    "field, value",
    [
        ("precision", "bf16-mixed"),
        ("channels_last", False),
        ("compile", True),
        ("accelerator", "gpu"),
        ("devices", 4),
        ("strategy", "ddp"),
        ("num_nodes", 2),
    ],
)
def test_the_experiment_leaves_out_where_it_ran(field, value):
    assert field in EXECUTION_FIELDS
    assert CNNConfig(**{field: value}).experiment() == CNNConfig().experiment()


def test_the_experiment_holds_the_recipe_and_the_default_targets_stay_out():
    assert CNNConfig(seed=1).experiment() != CNNConfig().experiment()
    assert "targets" not in CNNConfig().experiment()  # keys from before the field stay as they were
    crowd = CNNConfig(model="model_b", targets="crowd")
    assert crowd.experiment()["targets"] == "crowd" and result_name(crowd) == "model_b_crowd"


def test_auto_precision_on_this_cpu_follows_its_bf16_support():
    expected = "bf16-mixed" if hardware.cpu_has_native_bf16() else "32-true"
    assert resolve_precision(CNNConfig(accelerator="cpu")) == expected
    assert resolve_precision(CNNConfig(precision="bf16-mixed")) == "bf16-mixed"


def test_auto_precision_is_float32_on_a_cpu_without_native_bf16(monkeypatch):
    monkeypatch.setattr(hardware, "uses_cuda", lambda config: False)
    monkeypatch.setattr(hardware, "cpu_has_native_bf16", lambda: False)
    assert resolve_precision(CNNConfig()) == "32-true"
    monkeypatch.setattr(hardware, "cpu_has_native_bf16", lambda: True)
    assert resolve_precision(CNNConfig()) == "bf16-mixed"
    assert resolve_precision(CNNConfig(precision="32-true")) == "32-true"


def test_the_precision_variable_forces_float32_on_a_cpu_with_native_bf16(monkeypatch):
    monkeypatch.setattr(hardware, "uses_cuda", lambda config: False)
    monkeypatch.setattr(hardware, "cpu_has_native_bf16", lambda: True)
    monkeypatch.setenv(PRECISION_ENV, "32-true")  # the stand-in for a laptop without bf16
    assert resolve_precision(CNNConfig()) == "32-true" and not hardware.cpu_bf16_in_use()
    assert resolve_precision(CNNConfig(precision="bf16-mixed")) == "bf16-mixed"  # a run's own precision stays
    monkeypatch.setattr(hardware, "cpu_has_native_bf16", lambda: False)
    monkeypatch.setenv(PRECISION_ENV, "bf16-mixed")
    assert resolve_precision(CNNConfig()) == "bf16-mixed" and hardware.cpu_bf16_in_use()
    monkeypatch.setenv(PRECISION_ENV, "float16")
    with pytest.raises(ValueError, match=f"{PRECISION_ENV}='float16': choose one of 32-true, bf16-mixed"):
        resolve_precision(CNNConfig())
    monkeypatch.setenv(PRECISION_ENV, "")
    assert resolve_precision(CNNConfig()) == "32-true"
