"""Distillation (`fer_helpers.train.distill`): the loss, the teacher's cached logits, mirrored faces taking the
mirrored answers, a tiny run on synthetic faces through the study's fit, its ship and export, and the plan untouched."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from fer_helpers.core.config import CNNConfig
from fer_helpers.models import registry
from fer_helpers.models.recipes import distilled_config
from fer_helpers.train import distill
from fer_helpers.train.distill import (
    DistillDataModule,
    DistillError,
    distillation_loss,
    epochs_for_minutes,
    fit_distilled,
    teacher_logits,
)

TINY = (4, 8)  # student widths small enough for a test


@pytest.fixture(scope="module")
def small(synth):
    return synth.subsample(40, 30, seed=0)


def test_loss_is_the_hard_loss_alone_at_share_one_and_zero_on_the_teachers_answers():
    logits = torch.randn(16, 7, generator=torch.Generator().manual_seed(0))
    labels = torch.randint(0, 7, (16,), generator=torch.Generator().manual_seed(1))
    assert distillation_loss(logits, logits.clone(), labels, hard_share=0.0).abs() < 1e-6
    assert torch.isclose(distillation_loss(logits, logits * 3, labels, hard_share=1.0), F.cross_entropy(logits, labels))
    assert distillation_loss(logits, -logits, labels, hard_share=0.0) > 0.1
    with pytest.raises(DistillError):
        distillation_loss(logits, logits, labels, temperature=0.0)


def test_teacher_logits_hold_both_views_and_are_cached(small, weights, tmp_path, monkeypatch):
    from fer_helpers.train.inference import predict_logits
    from fer_helpers.train.weights import load_weights

    logits = teacher_logits(small, weights, tmp_path)
    images = small.split("Training")[0]
    assert logits.shape == (2, len(images), 7) and logits.dtype == np.float32
    model = load_weights(weights).float()
    np.testing.assert_allclose(logits[0], predict_logits(model, images, bf16=False), atol=1e-5)
    np.testing.assert_allclose(logits[1], predict_logits(model, images[:, :, ::-1].copy(), bf16=False), atol=1e-5)
    monkeypatch.setattr(distill, "predict_logits", lambda *a, **k: pytest.fail("recomputed a cached teacher"))
    np.testing.assert_array_equal(teacher_logits(small, weights, tmp_path), logits)
    with pytest.raises(DistillError, match="no such teacher"):
        teacher_logits(small, tmp_path / "absent.safetensors", tmp_path)


def test_mirrored_faces_take_the_mirrored_answers(small):
    """Soft targets made from a face's own pixels: after augmentation each target must still match its face."""
    images = small.split("Training")[0]

    def answers(faces: np.ndarray) -> np.ndarray:  # (n,7): the first seven pixels of the top row
        return faces[:, 0, :7].astype(np.float32)

    teacher = np.stack([answers(images), answers(images[:, :, ::-1])])
    config = CNNConfig(model="model_b", hflip=True, rotate_deg=0.0, batch_size=32)
    module = DistillDataModule(small, config, teacher)
    module.setup()
    module.trainer = type("Training", (), {"training": True, "global_rank": 0, "world_size": 1})()
    mirrored = 0
    for batch in module.train_dataloader():
        x, labels, targets = module.on_after_batch_transfer(batch, 0)
        assert targets.shape == (len(labels), 7)
        np.testing.assert_allclose((x[:, 0, 0, :7] * 255).round().numpy(), targets.numpy())
        mirrored += int((targets != torch.as_tensor(answers(batch[0].numpy()))).any(dim=1).sum())
    assert mirrored > 0  # some faces were mirrored, and took the other view
    with pytest.raises(DistillError):
        DistillDataModule(small, config, teacher[:, :-1])


@pytest.mark.trains
def test_a_tiny_distillation_trains_caches_and_keys_its_teacher_settings(small, weights, tmp_path):
    config = distilled_config("smoke", widths=TINY, max_epochs=2)
    result = fit_distilled(small, config, weights, tmp_path)
    assert result.model == "model_b_distilled" and not result.from_cache
    assert set(result.metrics) == {"PublicTest", "PrivateTest"}
    assert result.extra["distill"]["temperature"] == distill.TEMPERATURE
    assert result.extra["stopped_epoch"] == 2 and 1 <= result.extra["best_epoch"] <= 2
    assert (result.run_dir / "weights.safetensors").is_file()
    again = fit_distilled(small, config, weights, tmp_path)
    assert again.from_cache and again.key == result.key
    other = fit_distilled(
        small, distilled_config("smoke", widths=TINY, max_epochs=1), weights, tmp_path, hard_share=1.0
    )
    assert other.key != result.key


@pytest.mark.trains
def test_the_student_ships_exports_and_predicts(small, weights, tmp_path):
    from fer_helpers.publish.predict import load_model
    from fer_helpers.publish.ship import ship
    from fer_helpers.train.exported import ExportedModel, export_model
    from fer_helpers.train.inference import predict_logits
    from fer_helpers.train.weights import load_weights

    result = fit_distilled(small, distilled_config("smoke", widths=TINY, max_epochs=1), weights, tmp_path / "run")
    shipped, card = ship(result.run_dir, tmp_path / "models")
    assert (
        shipped.name == "model_b_distilled.safetensors" and "Distilled from `weights.safetensors`" in card.read_text()
    )
    summary = export_model(shipped, small)
    assert summary["torch_check"]["argmax_agreement"] == 1.0
    assert summary["torch_check"]["max_abs_logit_difference"] < 1e-4
    exported = load_model(shipped)
    assert isinstance(exported, ExportedModel) and exported.precision == "int8"
    assert exported.model_name == "model_b_distilled" and exported.preference == registry.get(exported.model_name).ships
    faces = small.split("PrivateTest")[0]
    torch_logits = predict_logits(load_weights(shipped).float(), faces, bf16=False)
    assert (ExportedModel(shipped.with_suffix(".onnx")).logits(faces).argmax(1) == torch_logits.argmax(1)).all()


def test_the_student_stays_out_of_every_plan():
    from fer_helpers.train.plan import plan_runs

    spec = registry.get("model_b_distilled")
    assert spec.ships is not None and not spec.main
    with_student = {name: [run.id for run in plan_runs(name)] for name in ("smoke", "classroom", "full")}
    order = dict(registry.MODELS)  # the registry's order is the study's: put it back as it was
    registry.unregister("model_b_distilled")
    try:
        without = {name: [run.id for run in plan_runs(name)] for name in ("smoke", "classroom", "full")}
    finally:
        registry.MODELS.clear()
        registry.MODELS.update(order)
    assert with_student == without
    assert not any("distilled" in run for runs in with_student.values() for run in runs)


def test_epochs_for_minutes_grows_with_the_budget():
    config = distilled_config("smoke", widths=TINY)
    few = epochs_for_minutes(config, 0.01, n_train=256, n_val=64, steps=2)
    many = epochs_for_minutes(config, 10.0, n_train=256, n_val=64, steps=2)
    assert few >= 1 and many > few


def test_cli_distill_checks_its_arguments(tmp_path, weights):
    from fer_helpers.orchestrate.cli import main

    assert main(["distill", "--epochs", "1", "--teacher", str(tmp_path / "absent.safetensors")]) == 2
    assert main(["distill", "--epochs", "1", "--teacher", str(weights), "--widths", "16,x"]) == 2
    assert main(["distill", "--teacher", str(weights)]) == 2  # neither --minutes nor --epochs


@pytest.mark.trains
def test_cli_distill_trains_on_synthetic_faces(tmp_path, weights, capsys):
    from fer_helpers.orchestrate.cli import main

    args = ["distill", "--data", "synthetic", "--profile", "smoke", "--run-dir", str(tmp_path), "--epochs", "1"]
    assert main([*args, "--teacher", str(weights), "--widths", "4,8"]) == 0
    out = capsys.readouterr().out
    assert "Trained" in out and "PrivateTest" in out
    assert list(tmp_path.glob("results/model_b_distilled-*/result.json"))
    assert list(tmp_path.glob("teacher-*.npz"))
