"""The ONNX export of a CNN: the same logits as torch, used only while it matches its weights, and run without torch."""

from __future__ import annotations

import json
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
from fer_helpers.publish import predict, ship
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
    assert "; ONNX Runtime, float32)" in predict.model_line(onnx_model) and "; torch)" in predict.model_line(
        torch_model
    )
    path = tmp_path / "face.png"
    cv2.imwrite(str(path), faces[0])
    [p] = predict.predict_image(path, onnx_model, cam=True)  # Grad-CAM through the torch model
    assert p.cam is not None and p.cam.shape == (48, 48)


def test_predicting_with_an_export_does_not_import_torch(shipped, faces, tmp_path):
    """Nor, for a photo, pandas or matplotlib: the cold start of `fer-study predict` is the imports it makes."""
    face = tmp_path / "face.png"
    cv2.imwrite(str(face), faces[0])
    weights = shipped / "model_b.safetensors"
    code = (
        "import sys\n"
        "from fer_helpers.orchestrate.cli import main\n"
        f"assert main(['predict', {str(face)!r}, '--weights', {str(weights)!r}, '--out', {str(tmp_path)!r}]) == 0\n"
        "heavy = [m for m in ('torch', 'lightning', 'pandas', 'matplotlib') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
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
    assert done.stdout.startswith(
        f"Model: {weights} (no saved run beside it gives its test accuracy; ONNX Runtime, float32)"
    )
    assert (tmp_path / "face_emotions.png").is_file()


def test_the_export_command_writes_and_checks_each_file(shipped, tmp_path, capsys):
    weights = tmp_path / "model_b.safetensors"
    shutil.copy(shipped / "model_b.safetensors", weights)
    card = weights.with_suffix(".md")
    card.write_text("# Model B\n\n## Metrics\n\nnumbers\n\n## Limits\n\n- limits\n", encoding="utf-8")
    assert main(["export", str(weights), "--data", "synthetic"]) == 0
    out = capsys.readouterr().out
    assert f"Wrote {tmp_path / 'model_b.onnx'}" in out and "PrivateTest faces of the synthetic set" in out
    assert "the same class on 100.00% of them" in out and f"Wrote {tmp_path / 'model_b.int8.onnx'}" in out
    model = exported.current_onnx(weights)
    assert model is not None and model.precision == "int8" and model.calibrated
    assert exported.current_onnx(weights, int8=False).precision == "float32"
    text = card.read_text(encoding="utf-8")
    assert text.count(ship.EXPORT_HEADING) == 1 and text.index(ship.EXPORT_HEADING) < text.index("## Limits")
    assert f"T = {model.temperature:.3f}" in text and "int8" in text
    assert main(["export", str(weights), "--data", "synthetic", "--no-int8"]) == 0  # the section is replaced
    assert card.read_text(encoding="utf-8").count(ship.EXPORT_HEADING) == 1
    assert main(["export", str(tmp_path / "missing.safetensors")]) == 2


def test_the_calibration_sample_is_stratified_and_reproducible():
    labels = np.repeat(np.arange(7), [400, 10, 300, 500, 200, 150, 300])
    images = np.zeros((len(labels), 48, 48), np.uint8)
    index = exported.calibration_sample(images, labels, n=100, seed=0)
    assert len(index) == 100 and len(set(index)) == 100 and (np.diff(index) > 0).all()
    counts = np.bincount(labels[index], minlength=7)
    assert counts[1] <= 10 and counts.max() <= 15 and counts.min() >= 5  # ceil(100/7) = 15 each, less the surplus
    assert np.array_equal(index, exported.calibration_sample(images, labels, n=100, seed=0))
    assert not np.array_equal(index, exported.calibration_sample(images, labels, n=100, seed=1))
    assert len(exported.calibration_sample(images[:50], labels[:50], n=100)) == 50  # fewer faces than asked: all
    with pytest.raises(ValueError, match="labels"):
        exported.calibration_sample(images, labels[:5])


def test_int8_agrees_with_float32_and_is_preferred_while_current(shipped, faces, tmp_path):
    folder = tmp_path / "models"
    shutil.copytree(shipped, folder)
    weights = folder / "model_b.safetensors"
    float_model = exported.ExportedModel(exported.onnx_file(weights))
    target = exported.quantize_int8(float_model.path, faces[:70], exported.int8_file(weights))
    assert target == folder / "model_b.int8.onnx" and target.stat().st_size < float_model.path.stat().st_size
    model = exported.current_onnx(weights)
    assert model.path == target and model.precision == "int8" and float_model.precision == "float32"
    assert model.metadata["weights_sha256"] == float_model.metadata["weights_sha256"]
    assert json.loads(model.metadata["quantization"])["reduce_range"] is True
    random_faces = np.random.default_rng(0).integers(0, 256, (64, 48, 48), dtype=np.uint8)
    ref, got = float_model.logits(random_faces), model.logits(random_faces)
    assert np.abs(ref - got).max() < 0.05 * np.abs(ref).max() + 1e-3
    assert exported.default_exported(folder).precision == "int8"
    assert exported.default_exported(folder, int8=False).precision == "float32"
    assert isinstance(predict.load_model(weights, int8=False), exported.ExportedModel)
    assert predict.load_model(weights).precision == "int8"
    with pytest.raises(exported.ExportError, match="already quantised"):
        exported.quantize_int8(target, faces[:10], tmp_path / "twice.onnx")
    with pytest.raises(ValueError, match="uint8 calibration faces"):
        exported.quantize_int8(float_model.path, faces[:10].astype(np.float32), tmp_path / "x.onnx")
    _weights(weights, "model_b", seed=1)  # shipped anew: neither export is current
    assert exported.current_onnx(weights) is None


def test_the_temperature_divides_the_logits_before_the_softmax(shipped, faces, tmp_path):
    shutil.copytree(shipped, tmp_path / "models")
    weights = tmp_path / "models" / "model_b.safetensors"
    path = exported.onnx_file(weights)
    plain = exported.ExportedModel(path)
    assert plain.temperature == 1.0 and not plain.calibrated
    exported.set_metadata(path, {"temperature": "2.5"})
    model = exported.ExportedModel(path)
    logits = model.logits(faces[:20]).astype(np.float64)
    expected = np.exp(logits / 2.5) / np.exp(logits / 2.5).sum(axis=1, keepdims=True)
    assert model.calibrated and np.allclose(model.probs(faces[:20]), expected)
    assert np.allclose(model.probs(faces[:20], calibrated=False), plain.probs(faces[:20]))
    assert "probabilities calibrated, temperature 2.50" in predict.model_line(predict.load_model(weights))
    torch_model = predict.load_model(weights, use_torch=True)  # borrows the export's temperature
    assert torch_model.temperature == 2.5
    assert np.allclose(predict.class_probs(torch_model, faces[:20]), expected, atol=1e-5)
    exported.set_metadata(path, {"temperature": "0"})
    assert exported.current_onnx(weights) is None  # an unusable temperature: the file is not used


def test_export_model_fits_the_temperature_and_checks_int8(shipped, tmp_path):
    shutil.copytree(shipped, tmp_path / "models")
    weights = tmp_path / "models" / "model_b.safetensors"
    data = make_synthetic_fer(n_train=140, n_public=140, n_private=140, seed=2)
    summary = exported.export_model(weights, data)
    cal, check = summary["calibration"], summary["int8_check"]
    assert cal["fitted_on"] == "PublicTest" and cal["temperature"] > 0
    assert cal["ece_after"] <= cal["ece_before"] + 0.05 and check["n"] == 140
    assert summary["calibration_sample"]["faces"] == 140 and summary["calibration_sample"]["split"] == "Training"
    for precision in ("int8", "float32"):
        model = exported.current_onnx(weights, int8=precision == "int8")
        assert model.precision == precision and model.temperature == pytest.approx(cal["temperature"])
    stored = json.loads(exported.current_onnx(weights).metadata["quantization"])
    assert stored["check"] == check and stored["calibration"]["seed"] == 0


def test_the_committed_int8_exports_match_their_weights():
    """models/ holds the int8 copies: each is current (exported from the shipped weights) and says what it measured."""
    for weights in sorted(predict.MODELS_DIR.glob("*.safetensors")):
        path = exported.int8_file(weights)
        if not path.is_file():
            continue
        model = exported.ExportedModel(path)
        assert model.metadata["weights_sha256"] == exported.file_sha256(weights), f"{path}: run `fer-study export`"
        check = json.loads(model.metadata["quantization"])["check"]
        assert model.calibrated and check["accuracy_int8"] >= check["accuracy_float32"] - 0.01, path
        card = weights.with_suffix(".md").read_text(encoding="utf-8")
        assert f"T = {model.temperature:.3f}" in card and f"accuracy {check['accuracy_int8']:.2%}" in card
