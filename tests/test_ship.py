"""Shipping weights into models/: the copy, the model card, the refusals, and the weights committed in models/."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from safetensors import safe_open

from fer_helpers.core.config import CNNConfig
from fer_helpers.data.results import RunResult
from fer_helpers.data.synthetic import make_synthetic_fer
from fer_helpers.models.registry import shipped_files
from fer_helpers.orchestrate.cli import main
from fer_helpers.publish.predict import MODELS_DIR, default_weights, load_model
from fer_helpers.publish.ship import ShipError, model_card, ship
from fer_helpers.scoring.statistics import bootstrap_ci
from fer_helpers.train.inference import predict_logits
from fer_helpers.train.training import fit_cnn

TINY = CNNConfig(
    model="model_b",
    model_kwargs={"widths": (8, 16), "hidden": 16},
    lr=1e-3,
    max_epochs=1,
    batch_size=32,
    patience=None,
    seed=0,
)


@pytest.fixture(scope="module")
def data():
    return make_synthetic_fer(n_train=140, n_public=70, n_private=70, seed=0)


@pytest.fixture(scope="module")
def trained(data, tmp_path_factory) -> RunResult:
    return fit_cnn(data, TINY, tmp_path_factory.mktemp("runs"))


def test_ship_copies_the_weights_that_made_the_stored_predictions(trained, data, tmp_path):
    weights, card = ship(trained.run_dir, tmp_path)
    assert (weights.name, card.name) == ("model_b.safetensors", "model_b.md")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model_b.md", "model_b.safetensors"]  # no temporaries
    images, _ = data.split("PrivateTest")
    logits = predict_logits(load_model(weights), images)
    np.testing.assert_array_equal(logits.argmax(axis=1), trained.preds("PrivateTest"))


def test_model_card_states_the_results_numbers(trained):
    card = model_card(trained, "model_b.safetensors")
    for split in ("PublicTest", "PrivateTest"):
        m = trained.metrics[split]
        row = next(line for line in card.splitlines() if line.startswith(f"| {split} |"))
        assert f"{m['accuracy']:.1%}" in row and f"{m['macro_f1']:.3f}" in row and f"{m['weighted_f1']:.3f}" in row
        low, high = (float(v) for v in re.search(r"\(([\d.]+)–([\d.]+)\) \|\s*[\d.]+ \|$", row).groups())
        assert low <= m["macro_f1"] <= high
        acc_low, acc_high = bootstrap_ci(trained.labels[split], trained.preds(split))  # as metrics.json has it
        assert f"({acc_low:.1%}–{acc_high:.1%})" in row
    assert trained.data_sha256 in card
    assert f"Seed {trained.seed}" in card and trained.device in card
    assert f"{trained.params:,} parameters" in card
    stored = json.loads((trained.run_dir / "result.json").read_text())["git_commit"]
    assert f"trained at commit `{stored or 'not recorded'}`" in card


def test_ship_with_another_name_and_the_cli(trained, tmp_path, capsys):
    assert main(["ship", str(trained.run_dir), "--models-dir", str(tmp_path), "--name", "resnet_fer"]) == 0
    assert "resnet_fer.safetensors" in capsys.readouterr().out
    assert default_weights(tmp_path).name == "resnet_fer.safetensors"


def test_ship_refuses_what_is_not_a_cnn_result(trained, tmp_path, capsys):
    with pytest.raises(ShipError, match="no result.json"):
        ship(tmp_path, tmp_path / "models")
    no_weights = tmp_path / "hog_svm-0"
    no_weights.mkdir()
    for item in ("result.json", "predictions.npz"):
        (no_weights / item).write_bytes((trained.run_dir / item).read_bytes())
    with pytest.raises(ShipError, match="no weights.safetensors"):
        ship(no_weights, tmp_path / "models")
    assert main(["ship", str(no_weights), "--models-dir", str(tmp_path / "models")]) == 2
    assert "no weights.safetensors" in capsys.readouterr().err
    assert not (tmp_path / "models").exists() or not any((tmp_path / "models").iterdir())


def test_ship_refuses_weights_of_another_size(trained, tmp_path):
    other = tmp_path / "model_b-other"
    other.mkdir()
    for item in ("result.json", "predictions.npz", "weights.safetensors"):
        (other / item).write_bytes((trained.run_dir / item).read_bytes())
    meta = json.loads((other / "result.json").read_text())
    meta["params"] += 1
    (other / "result.json").write_text(json.dumps(meta))
    models = tmp_path / "models"
    models.mkdir()
    (models / "model_b.safetensors").write_bytes(b"previous")
    with pytest.raises(ShipError, match="parameters, but the result records"):
        ship(other, models)
    assert (models / "model_b.safetensors").read_bytes() == b"previous"  # untouched


# ------------------------------------------------------------------------------------ the committed weights
def _shipped() -> list:
    return [MODELS_DIR / name for name in shipped_files() if (MODELS_DIR / name).is_file()]


def test_committed_weights_load_and_have_a_model_card():
    shipped = _shipped()
    assert shipped, f"no weights in {MODELS_DIR}: predict and evaluate need one of {shipped_files()}"
    for path in shipped:
        assert path.stat().st_size <= 5_000_000
        model = load_model(path, use_torch=True)
        card = path.with_suffix(".md").read_text()
        assert f"{sum(p.numel() for p in model.parameters()):,} parameters" in card


def _card_accuracy(card: str, split: str) -> float:
    row = next(line for line in card.splitlines() if line.startswith(f"| {split} |"))
    return float(re.search(r"\| ([\d.]+)% \(", row).group(1)) / 100


def test_committed_weights_score_what_their_card_says_on_fer2013(real_data):
    for path in _shipped():
        card = path.with_suffix(".md").read_text()
        assert real_data.sha256 in card
        with safe_open(str(path), "pt") as f:
            config = json.loads(f.metadata()["config"])
        model = load_model(path, use_torch=True)
        for split in ("PublicTest", "PrivateTest"):
            images, labels = real_data.split(split)
            # float32, as the shipped runs were scored (bf16 autocast, where the CPU has it, moves a few faces)
            logits = predict_logits(model, images, tta=config.get("tta", "none"), bf16=False)
            accuracy = float((logits.argmax(axis=1) == labels).mean())
            assert accuracy == pytest.approx(_card_accuracy(card, split), abs=0.0006), (path.name, split)
