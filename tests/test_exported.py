"""The ONNX export of a CNN: the same logits as torch, used only while it matches its weights, and run without torch."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from fer_helpers.core.config import CNNConfig
from fer_helpers.data.fer2013 import CLASS_NAMES
from fer_helpers.data.synthetic import make_synthetic_fer
from fer_helpers.orchestrate.cli import main
from fer_helpers.publish import predict
from fer_helpers.train import exported


@pytest.fixture(scope="module")
def faces():
    return make_synthetic_fer(n_train=7, n_public=7, n_private=140, seed=1).split("PrivateTest")[0]


def _weights(path: Path, model: str, seed: int) -> Path:
    import torch

    from fer_helpers.models.registry import build_model
    from fer_helpers.train.weights import save_weights

    kwargs = {"widths": (8, 16), "hidden": 16} if model == "model_b" else {}
    config = CNNConfig(model=model, model_kwargs=kwargs)
    torch.manual_seed(seed)
    return save_weights(build_model(config.model, **config.kwargs), path, config)


@pytest.fixture(scope="module")
def shipped(tmp_path_factory) -> Path:
    """A models/ folder with a small Model B and its ONNX export."""
    folder = tmp_path_factory.mktemp("models")
    weights = _weights(folder / "model_b.safetensors", "model_b", seed=0)
    exported.export_onnx(weights)
    return folder


def test_the_export_gives_torchs_logits_and_says_what_it_is(shipped, faces):
    weights = shipped / "model_b.safetensors"
    check = exported.check_export(exported.onnx_file(weights), weights, faces)
    assert check["n"] == len(faces) and check["max_abs_logit_difference"] < 1e-4 and check["argmax_agreement"] == 1.0
    model = exported.current_onnx(weights)
    assert model is not None and model.label == "Model B" and model.weights_file == weights
    assert model.metadata["class_names"] == '["' + '", "'.join(CLASS_NAMES) + '"]'
    assert model.metadata["weights_sha256"] == exported.file_sha256(weights) and model.tta == "none"
    probs = model.probs(faces[:5])
    assert probs.shape == (5, 7) and np.allclose(probs.sum(axis=1), 1)
    assert model.logits(faces[:0]).shape == (0, 7)


def test_an_export_of_other_weights_is_not_used(shipped, tmp_path):
    weights = tmp_path / "model_b.safetensors"
    shutil.copy(shipped / "model_b.onnx", tmp_path / "model_b.onnx")
    _weights(weights, "model_b", seed=1)  # shipped anew after the export
    assert exported.current_onnx(weights) is None
    assert not isinstance(predict.load_model(weights), exported.ExportedModel)  # torch answers
    (tmp_path / "model_b.onnx").write_bytes(b"not onnx")
    assert exported.current_onnx(weights) is None


def test_the_default_is_exported_only_where_every_shipped_file_is(shipped, tmp_path):
    folder = tmp_path / "models"
    shutil.copytree(shipped, folder)
    assert exported.default_exported(folder).label == "Model B"
    _weights(folder / "baseline_cnn.safetensors", "baseline_cnn", seed=0)  # shipped, not exported
    assert exported.default_exported(folder) is None
    exported.export_onnx(folder / "baseline_cnn.safetensors")
    assert exported.default_exported(folder).label == "Model B"  # the registry's preference, kept in the export


def test_load_model_answers_with_the_export_and_with_torch_to_explain(shipped, faces, tmp_path):
    weights = shipped / "model_b.safetensors"
    onnx_model, torch_model = predict.load_model(weights), predict.load_model(weights, use_torch=True)
    assert isinstance(onnx_model, exported.ExportedModel) and not isinstance(torch_model, exported.ExportedModel)
    from fer_helpers.train.inference import predict_probs

    assert np.allclose(onnx_model.probs(faces), predict_probs(torch_model, faces, bf16=False), atol=1e-5)
    assert "; ONNX Runtime)" in predict.model_line(onnx_model) and "; torch)" in predict.model_line(torch_model)
    path = tmp_path / "face.png"
    cv2.imwrite(str(path), faces[0])
    [p] = predict.predict_image(path, onnx_model, cam=True)  # Grad-CAM through the torch model
    assert p.cam is not None and p.cam.shape == (48, 48)


def test_predicting_with_an_export_does_not_import_torch(shipped, faces, tmp_path):
    face = tmp_path / "face.png"
    cv2.imwrite(str(face), faces[0])
    weights = shipped / "model_b.safetensors"
    code = (
        "import sys\n"
        "from fer_helpers.orchestrate.cli import main\n"
        f"assert main(['predict', {str(face)!r}, '--weights', {str(weights)!r}, '--out', {str(tmp_path)!r}]) == 0\n"
        f"assert main(['evaluate', {str(tmp_path / 'faces')!r}, '--weights', {str(weights)!r}]) == 0\n"
        "loaded = [m for m in ('torch', 'lightning', 'sklearn.linear_model') if m in sys.modules]\n"
        "assert not loaded, loaded\n"
    )
    for i, label in enumerate((3, 4)):
        target = tmp_path / "faces" / CLASS_NAMES[label].lower() / f"{i}.png"
        target.parent.mkdir(parents=True)
        cv2.imwrite(str(target), faces[i])
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.startswith(f"Model: {weights} (no saved run beside it gives its test accuracy; ONNX Runtime)")
    assert (tmp_path / "face_emotions.png").is_file()


def test_the_export_command_writes_and_checks_each_file(shipped, tmp_path, capsys):
    weights = tmp_path / "model_b.safetensors"
    shutil.copy(shipped / "model_b.safetensors", weights)
    assert main(["export", str(weights), "--data", "synthetic"]) == 0
    out = capsys.readouterr().out
    assert f"Wrote {tmp_path / 'model_b.onnx'}" in out and "PrivateTest faces of the synthetic set" in out
    assert "the same class on 100.00% of them" in out
    assert exported.current_onnx(weights) is not None
    assert main(["export", str(tmp_path / "missing.safetensors")]) == 2
