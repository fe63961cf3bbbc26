"""Predicting on photos and evaluating labelled folders: reading, face finding, refusals, metrics and the CLI."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import png_header
from PIL import Image
from scipy.special import softmax
from skimage import data as skimage_data
from sklearn.metrics import f1_score

from fer_helpers.core.config import CNNConfig
from fer_helpers.data.fer2013 import CLASS_NAMES, IMAGE_SIZE
from fer_helpers.data.synthetic import make_synthetic_fer
from fer_helpers.orchestrate.cli import main
from fer_helpers.publish import predict
from fer_helpers.publish.predict import (
    CLASS_SYNONYMS,
    FACE_CROP_SIDE,
    MAX_PIXELS,
    WORK_SIDE,
    PredictError,
    default_weights,
    detect_faces,
    evaluate_folder,
    face_color,
    fer_class,
    load_model,
    load_photo,
    predict_image,
    prediction_table,
    prediction_text,
)
from fer_helpers.train.inference import predict_logits
from fer_helpers.train.weights import save_weights

ASTRONAUT_BOX = (177, 66, 97, 97)  # where OpenCV's cascade finds the face in skimage's astronaut (x, y, w, h)


@pytest.fixture(scope="module")
def model(weights):
    return load_model(weights)


@pytest.fixture(scope="module")
def nearest_mean(faces):
    """A linear nearest-class-mean classifier of the synthetic faces: untrained CNNs predict one class for all."""
    import torch
    from torch import nn

    images, labels = faces.split("Training")
    means = np.stack([(images[labels == c] / 255.0).mean(axis=0).ravel() for c in range(len(CLASS_NAMES))])
    linear = nn.Linear(IMAGE_SIZE * IMAGE_SIZE, len(CLASS_NAMES))
    with torch.no_grad():
        linear.weight.copy_(torch.from_numpy(means))
        linear.bias.copy_(torch.from_numpy(-0.5 * (means**2).sum(axis=1)))
    return nn.Sequential(nn.Flatten(), linear)


@pytest.fixture(scope="module")
def faces():
    """Synthetic 48x48 faces with FER-2013's classes."""
    return make_synthetic_fer(n_train=70, n_public=35, n_private=0, seed=0)


def _write_gray(path: Path, image: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), image)
    return path


def _astronaut(path: Path) -> Path:
    return _write_gray(path, cv2.cvtColor(skimage_data.astronaut(), cv2.COLOR_RGB2BGR))


# ---------------------------------------------------------------------------------------------- class names
@pytest.mark.parametrize(
    "name, expected",
    [
        ("anger", "Angry"),
        ("angry", "Angry"),
        ("mad", "Angry"),
        ("disgust", "Disgust"),
        ("disgusted", "Disgust"),
        ("fear", "Fear"),
        ("fearful", "Fear"),
        ("scared", "Fear"),
        ("happy", "Happy"),
        ("happiness", "Happy"),
        ("joy", "Happy"),
        ("sad", "Sad"),
        ("sadness", "Sad"),
        ("surprise", "Surprise"),
        ("surprised", "Surprise"),
        ("neutral", "Neutral"),
        ("calm", "Neutral"),
        ("HAPPINESS", "Happy"),
        ("Surprised", "Surprise"),
        (" Joy ", "Happy"),
        ("contempt", None),
        ("happyy", None),
        ("", None),
    ],
)
def test_class_synonyms(name, expected):
    assert fer_class(name) == expected


def test_every_fer_class_is_its_own_name_and_every_synonym_a_fer_class():
    assert all(fer_class(name) == name for name in CLASS_NAMES)
    assert set(CLASS_SYNONYMS.values()) == set(CLASS_NAMES)
    assert all(key == key.lower() for key in CLASS_SYNONYMS)


# ---------------------------------------------------------------------------------------------- weights
def test_default_weights_prefers_ours_then_model_b_then_the_baseline(tmp_path, weights):
    with pytest.raises(PredictError, match="fer-study train"):
        default_weights(tmp_path)
    (tmp_path / "baseline_cnn.safetensors").write_bytes(weights.read_bytes())
    assert default_weights(tmp_path).name == "baseline_cnn.safetensors"
    (tmp_path / "model_b.safetensors").write_bytes(weights.read_bytes())
    assert default_weights(tmp_path).name == "model_b.safetensors"
    (tmp_path / "resnet_fer.safetensors").write_bytes(weights.read_bytes())
    assert default_weights(tmp_path).name == "resnet_fer.safetensors"


def test_load_model_errors_name_the_file(tmp_path):
    with pytest.raises(PredictError, match="no such weights file"):
        load_model(tmp_path / "missing.safetensors")
    junk = tmp_path / "junk.safetensors"
    junk.write_text("not weights")
    with pytest.raises(PredictError, match="junk.safetensors: not usable weights"):
        load_model(junk)
    from fer_helpers.models.registry import build_model

    anonymous = save_weights(build_model("baseline_cnn"), tmp_path / "anonymous.safetensors")  # no config
    with pytest.raises(PredictError, match="does not name its model"):
        load_model(anonymous)


def test_weights_bring_their_test_time_augmentation(tmp_path, weights, faces):
    import torch

    from fer_helpers.models.registry import build_model

    assert load_model(weights).tta == "none"
    config = CNNConfig(model="model_b", model_kwargs={"widths": (8, 16), "hidden": 16}, tta="flip")
    torch.manual_seed(1)
    path = save_weights(build_model(config.model, **config.kwargs), tmp_path / "flip.safetensors", config)
    flip_model = load_model(path)
    assert flip_model.tta == "flip"
    crops = faces.split("PublicTest")[0][:3]
    for i, crop in enumerate(crops):
        _write_gray(tmp_path / "crops" / f"{i}.png", crop)
    predicted = np.stack(
        [predict_image(tmp_path / "crops" / f"{i}.png", flip_model, cam=False)[0].probs for i in range(len(crops))]
    )
    expected = softmax(predict_logits(flip_model, crops, tta="flip").astype(np.float64), axis=1)
    np.testing.assert_allclose(predicted, expected, atol=1e-6)


# ---------------------------------------------------------------------------------------------- reading photos
@pytest.mark.parametrize("kind", ["noise", "flat"])
def test_no_face_is_an_error(tmp_path, model, kind):
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (300, 400), dtype=np.uint8) if kind == "noise" else np.full((300, 400), 90, np.uint8)
    path = _write_gray(tmp_path / f"{kind}.png", image)
    with pytest.raises(PredictError, match=f"{kind}.png: no face found"):
        predict_image(path, model)


def test_text_named_jpg_is_unreadable(tmp_path, model):
    path = tmp_path / "holiday.jpg"
    path.write_text("these are not the pixels you are looking for")
    with pytest.raises(PredictError, match="holiday.jpg: not a readable image"):
        predict_image(path, model)


def test_missing_file_and_folder_are_errors(tmp_path, model):
    with pytest.raises(PredictError, match="nothing.png: no such file"):
        predict_image(tmp_path / "nothing.png", model)
    with pytest.raises(PredictError, match="not a file"):
        predict_image(tmp_path, model)


@pytest.mark.parametrize(
    "width, height, message",
    [
        (8000, 6000, "over the limit of 40 megapixels"),  # refused by our limit before any pixel is decoded
        (20000, 10000, "too large to decode safely"),  # refused by Pillow's own guard while opening
    ],
)
def test_huge_image_is_refused_before_decoding(tmp_path, model, width, height, message):
    path = png_header(tmp_path / "bomb.png", width, height)
    assert width * height > MAX_PIXELS
    with pytest.raises(PredictError, match=message):
        predict_image(path, model)


def test_large_jpeg_is_decoded_small_and_boxes_are_in_original_pixels(tmp_path, model):
    """A 48-megapixel JPEG passes (decoded at 1/4 scale); the face is found and reported where it is."""
    canvas = np.full((6000, 8000), 120, np.uint8)
    face = cv2.resize(
        cv2.cvtColor(skimage_data.astronaut(), cv2.COLOR_RGB2GRAY), None, fx=5, fy=5, interpolation=cv2.INTER_LINEAR
    )  # back to its own size once the photo is brought to 1600 px
    canvas[1000 : 1000 + face.shape[0], 2000 : 2000 + face.shape[1]] = face
    path = _write_gray(tmp_path / "large.jpg", canvas)
    photo = load_photo(path)
    assert photo.size == (8000, 6000) and max(photo.gray.shape) == WORK_SIDE
    [p] = predict_image(path, model, cam=False)
    expected = np.array([2000 + 5 * ASTRONAUT_BOX[0], 1000 + 5 * ASTRONAUT_BOX[1], 5 * ASTRONAUT_BOX[2]])
    assert np.allclose(np.array(p.box[:3]), expected, rtol=0.06), p.box


FACE_FREE_PICTURES = (
    "coffee",
    "chelsea",
    "rocket",
    "hubble_deep_field",
    "immunohistochemistry",
    "coins",
    "page",
    "text",
    "moon",
    "horse",
    "grass",
    "gravel",
    "brick",
    "colorwheel",
    "retina",
    "cat",
    "logo",
    "clock",
)


def test_few_false_faces_in_large_face_free_pictures():
    """scikit-image's 18 face-free pictures at 2400 pixels: 4 false faces in all (OpenCV's default cascade at
    1600 pixels with 5 neighbours finds 37 there)."""
    false_faces = {}
    for name in FACE_FREE_PICTURES:
        image = getattr(skimage_data, name)()
        gray = image if image.ndim == 2 else cv2.cvtColor(np.ascontiguousarray(image[..., :3]), cv2.COLOR_RGB2GRAY)
        if gray.dtype != np.uint8:
            gray = cv2.normalize(gray.astype(np.float64), None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)
        scale = 2400 / max(gray.shape)
        large = cv2.resize(
            gray, (round(gray.shape[1] * scale), round(gray.shape[0] * scale)), interpolation=cv2.INTER_CUBIC
        )
        false_faces[name] = len(detect_faces(large))
    assert sum(false_faces.values()) <= 6, false_faces


def test_exif_orientation_turns_the_photo_upright(tmp_path, model):
    upright = np.pad(skimage_data.astronaut(), ((0, 0), (0, 88), (0, 0)), mode="edge")  # 600 wide, 512 high
    stored = np.ascontiguousarray(np.rot90(upright))  # what a camera held sideways stores
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    path = tmp_path / "sideways.jpg"
    Image.fromarray(stored).save(path, exif=exif, quality=95)
    photo = load_photo(path)
    assert photo.size == (600, 512) and photo.rgb.shape == (512, 600, 3)
    [p] = predict_image(path, model, cam=False)
    assert np.allclose(p.box, ASTRONAUT_BOX, atol=6)


def test_sixteen_bit_png_is_scaled_not_clipped(tmp_path):
    ramp = np.tile(np.linspace(0, 65535, 256).astype(np.uint16), (40, 1))
    photo = load_photo(_write_gray(tmp_path / "ramp16.png", ramp))
    assert photo.gray.shape == (40, 256)
    assert np.abs(photo.gray[0].astype(int) - np.round(ramp[0] / 257)).max() <= 1


@pytest.mark.parametrize("mode", ["RGBA", "LA", "P"])
def test_transparent_pixels_are_composited_on_white(tmp_path, mode):
    """A face-like pattern stored in fully transparent pixels is not part of the picture: they read as white."""
    pattern = np.tile(np.linspace(0, 255, 64).astype(np.uint8), (64, 1))  # what the transparent pixels hold
    visible = np.zeros((64, 64), bool)
    visible[16:48, 16:48] = True  # an opaque black square in the middle
    gray = np.where(visible, 0, pattern).astype(np.uint8)
    alpha = np.where(visible, 255, 0).astype(np.uint8)
    path = tmp_path / f"transparent-{mode}.png"
    if mode == "P":  # a palette with one transparent entry
        image = Image.fromarray(np.where(visible, 0, 1).astype(np.uint8), mode="P")
        image.putpalette([0, 0, 0, 200, 50, 50])
        image.save(path, transparency=1)
    else:
        channels = [gray, gray, gray, alpha] if mode == "RGBA" else [gray, alpha]
        Image.fromarray(np.stack(channels, axis=-1), mode=mode).save(path)
    photo = load_photo(path)
    assert (photo.rgb[~visible] == 255).all() and (photo.rgb[visible] == 0).all()
    assert photo.gray.shape == (64, 64) and (photo.gray[~visible] == 255).all()


def test_an_opaque_image_is_read_as_stored(tmp_path):
    pattern = np.tile(np.linspace(0, 255, 64).astype(np.uint8), (64, 1))
    path = tmp_path / "opaque.png"
    Image.fromarray(np.stack([pattern] * 3 + [np.full_like(pattern, 255)], axis=-1), mode="RGBA").save(path)
    assert np.array_equal(load_photo(path).gray, pattern)


# ---------------------------------------------------------------------------------------------- predicting
def test_astronaut_has_one_face_and_an_annotated_png(tmp_path, model):
    path = _astronaut(tmp_path / "astronaut.png")
    predictions = predict_image(path, model, out_dir=tmp_path / "out")
    assert len(predictions) == 1
    [p] = predictions
    assert p.detected and p.index == 0 and np.allclose(p.box, ASTRONAUT_BOX, atol=4)
    assert p.face.shape == (IMAGE_SIZE, IMAGE_SIZE) and p.face.dtype == np.uint8
    assert p.probs.shape == (7,) and np.isclose(p.probs.sum(), 1) and p.label == CLASS_NAMES[p.probs.argmax()]
    assert p.cam.shape == (IMAGE_SIZE, IMAGE_SIZE) and 0 <= p.cam.min() and p.cam.max() <= 1
    assert p.annotated == tmp_path / "out" / "astronaut_emotions.png"
    with Image.open(p.annotated) as written:
        assert written.format == "PNG" and written.size[0] > 500
        drawn = np.asarray(written.convert("RGB"))
    # the box is drawn in face 0's colour, on the photo scaled by the same factor as the whole panel
    assert (drawn == face_color(0)).all(axis=2).sum() > 4 * 97
    table = prediction_table(predictions)
    assert list(table.columns) == ["file", "face", "box", "label", "prob"]
    assert table.iloc[0].tolist() == ["astronaut.png", 0, ",".join(map(str, p.box)), p.label, round(p.prob, 3)]


def test_the_printed_table_aligns_its_columns(tmp_path, model):
    path = _astronaut(tmp_path / "astronaut.png")
    predictions = predict_image(path, model, cam=False) * 2
    header, *lines = prediction_text(predictions).splitlines()
    assert header.split() == ["file", "face", "box", "label", "prob"] and len(lines) == 2
    assert lines[0] == lines[1] and lines[0].endswith(f"{predictions[0].prob:.3f}")
    assert len({line.index(predictions[0].label) for line in lines}) == 1 and header.index("label") == lines[0].index(
        predictions[0].label
    )


def test_without_cam_and_without_out_dir_nothing_is_explained_or_written(tmp_path, model):
    path = _astronaut(tmp_path / "astronaut.jpg")
    [p] = predict_image(path, model, cam=False)
    assert p.cam is None and p.annotated is None
    assert sorted(f.name for f in tmp_path.iterdir()) == ["astronaut.jpg"]


def test_small_images_are_face_crops_classified_whole(tmp_path, model, faces, monkeypatch):
    detector_calls = []
    detect = predict.detect_faces
    monkeypatch.setattr(predict, "detect_faces", lambda gray: detector_calls.append(gray.shape) or detect(gray))
    face = faces.images[0]
    [p] = predict_image(_write_gray(tmp_path / "face.png", face), model)
    assert not p.detected and p.box == (0, 0, 48, 48)
    np.testing.assert_array_equal(p.face, face)  # a 48x48 grayscale face reaches the model unchanged
    np.testing.assert_allclose(p.probs, softmax(predict_logits(model, face[None])[0].astype(np.float64)), atol=1e-6)

    colour = cv2.cvtColor(cv2.resize(face, (FACE_CROP_SIDE, FACE_CROP_SIDE)), cv2.COLOR_GRAY2BGR)
    [p] = predict_image(_write_gray(tmp_path / "colour64.jpg", colour), model, cam=False)
    assert not p.detected and p.box == (0, 0, 64, 64)

    assert detector_calls == []

    just_larger = cv2.resize(face, (FACE_CROP_SIDE + 1, FACE_CROP_SIDE))
    with contextlib.suppress(PredictError):  # whether the cascade finds this face does not matter here
        predict_image(_write_gray(tmp_path / "face65.png", just_larger), model, cam=False)
    assert detector_calls == [(FACE_CROP_SIDE, FACE_CROP_SIDE + 1)]


def test_real_face_crop_is_classified_directly(tmp_path, model, real_data):
    images, _ = real_data.split("PrivateTest")
    path = _write_gray(tmp_path / "fer_face.png", images[0])
    [p] = predict_image(path, model, out_dir=tmp_path)
    np.testing.assert_array_equal(p.face, images[0])
    assert p.pred == int(predict_logits(model, images[:1]).argmax())
    assert p.annotated.is_file()


# ---------------------------------------------------------------------------------------------- folders
def _labelled_folder(root: Path, images: np.ndarray, labels: np.ndarray, names: dict[int, str]) -> Path:
    for i, (image, label) in enumerate(zip(images, labels)):
        if int(label) in names:
            _write_gray(root / names[int(label)] / f"{i:04d}.png", image)
    return root


def test_evaluate_folder_counts_and_metrics(tmp_path, nearest_mean, faces):
    model = nearest_mean
    images, labels = faces.split("Training")
    names = {0: "Mad", 3: "happiness", 6: "calm"}
    root = _labelled_folder(tmp_path / "faces", images, labels, names)
    (root / "calm" / "notes.txt").write_text("not an image: ignored")
    result = evaluate_folder(root, model)

    keep = np.isin(labels, list(names))
    assert result["n"] == keep.sum() and result["classes"] == ["Angry", "Happy", "Neutral"]
    assert result["class_folders"] == {"Mad": "Angry", "calm": "Neutral", "happiness": "Happy"}
    assert result["no_face"] == 0 and result["faces"]["crop"] == result["n"]
    expected_preds = predict_logits(model, images[keep]).argmax(axis=1)
    by_file = {int(Path(r["file"]).stem): r for r in result["predictions"]}
    assert [CLASS_NAMES.index(by_file[i]["pred"]) for i in np.flatnonzero(keep)] == expected_preds.tolist()
    assert result["accuracy"] == pytest.approx(float((expected_preds == labels[keep]).mean()))
    assert result["macro_f1"] == pytest.approx(
        f1_score(labels[keep], expected_preds, labels=[0, 3, 6], average="macro", zero_division=0)
    )
    assert len(set(expected_preds.tolist())) >= 3  # enough different predictions for the metrics to tell
    counts = np.array(result["confusion"]["counts"])
    assert result["confusion"]["rows"] == result["classes"] and counts.shape == (3, 7)
    assert counts.sum(axis=1).tolist() == [int((labels == c).sum()) for c in (0, 3, 6)]
    json.dumps(result)  # JSON-ready


def test_unknown_class_is_an_error_unless_dropped(tmp_path, model, faces):
    images, labels = faces.split("Training")
    root = _labelled_folder(tmp_path / "faces", images, labels, {3: "joy", 4: "contempt"})
    with pytest.raises(PredictError, match=r"unknown class folder\(s\) \['contempt'\]") as refused:
        evaluate_folder(root, model)
    assert str(refused.value).endswith("leave them out with --drop-unknown.")  # no Python names
    assert "drop_unknown" not in str(refused.value)
    result = evaluate_folder(root, model, drop_unknown=True)
    assert result["dropped"] == {"contempt": int((labels == 4).sum())}
    assert result["n"] == int((labels == 3).sum()) and result["classes"] == ["Happy"]


def test_large_image_without_a_face_counts_as_no_face(tmp_path, model, faces):
    root = tmp_path / "faces"
    _write_gray(root / "sad" / "face.png", faces.images[0])
    _write_gray(root / "sad" / "wall.jpg", np.full((300, 400), 200, np.uint8))
    _astronaut(root / "happy" / "astronaut.jpg")
    result = evaluate_folder(root, model)
    assert result["faces"] == {"crop": 1, "detected": 1, "no_face": 1} and result["no_face"] == 1
    assert {r["file"]: r["face"] for r in result["predictions"]}["sad/wall.jpg"] == "no_face"


def test_bad_folders_are_errors(tmp_path, model):
    with pytest.raises(PredictError, match="no such folder"):
        evaluate_folder(tmp_path / "missing", model)
    with pytest.raises(PredictError, match="no class sub-folders"):
        evaluate_folder(tmp_path, model)
    (tmp_path / "happy").mkdir()
    with pytest.raises(PredictError, match="no images"):
        evaluate_folder(tmp_path, model)
    (tmp_path / "happy" / "broken.png").write_bytes(b"\x89PNG broken")
    with pytest.raises(PredictError, match="broken.png: not a readable image"):
        evaluate_folder(tmp_path, model)


def test_evaluate_real_faces_named_by_synonyms(tmp_path, model, real_data):
    images, labels = real_data.split("PublicTest")
    picked = np.concatenate([np.flatnonzero(labels == c)[:4] for c in (3, 4, 5)])
    root = _labelled_folder(
        tmp_path / "real", images[picked], labels[picked], {3: "happiness", 4: "Sadness", 5: "surprised"}
    )
    result = evaluate_folder(root, model)
    assert result["n"] == 12 and result["classes"] == ["Happy", "Sad", "Surprise"] and result["no_face"] == 0
    expected = predict_logits(model, images[picked]).argmax(axis=1)
    assert [CLASS_NAMES.index(r["pred"]) for r in result["predictions"]] == expected.tolist()  # files sort by class
    assert np.array(result["confusion"]["counts"]).sum(axis=1).tolist() == [4, 4, 4]


# ---------------------------------------------------------------------------------------------- command line
def test_cli_predict_prints_the_table_and_writes_pngs(tmp_path, weights, capsys):
    photo = _astronaut(tmp_path / "astronaut.png")
    assert main(["predict", str(photo), "--weights", str(weights), "--out", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"Model: {weights} (no saved run beside it gives its test accuracy; torch)\n")
    assert "astronaut.png" in out and all(column in out for column in ("face", "box", "label", "prob"))
    assert (tmp_path / "out" / "astronaut_emotions.png").is_file()


def test_cli_predict_user_errors_exit_2(tmp_path, weights, faces, capsys, monkeypatch):
    noise = _write_gray(tmp_path / "noise.png", np.random.default_rng(0).integers(0, 256, (300, 400), dtype=np.uint8))
    face = _write_gray(tmp_path / "face.png", faces.images[0])
    assert main(["predict", str(noise), str(face), "--weights", str(weights), "--no-cam", "--out", str(tmp_path)]) == 2
    captured = capsys.readouterr()
    assert "noise.png: no face found" in captured.err and "face.png" in captured.out  # the good one still ran
    assert main(["predict", str(face), "--weights", str(tmp_path / "none.safetensors")]) == 2
    assert "no such weights file" in capsys.readouterr().err
    monkeypatch.setattr(predict, "MODELS_DIR", tmp_path / "models")
    assert main(["predict", str(face)]) == 2
    assert "fer-study train" in capsys.readouterr().err


def test_the_first_line_names_the_weights_and_their_test_accuracy(tmp_path, weights, faces, capsys):
    run = tmp_path / "runs" / "smoke" / "results" / "model_b-0123456789ab"
    run.mkdir(parents=True)
    run_weights = run / "weights.safetensors"
    run_weights.write_bytes(weights.read_bytes())
    result = {"model": "model_b", "key": "0123456789ab", "seed": 1, "metrics": {"PrivateTest": {"accuracy": 0.6234}}}
    (run / "result.json").write_text(json.dumps(result))
    face = _write_gray(tmp_path / "face.png", faces.images[0])
    assert main(["predict", str(face), "--weights", str(run_weights), "--no-cam", "--out", str(tmp_path)]) == 0
    first = capsys.readouterr().out.splitlines()[0]
    assert first == (
        f"Model: Model B from {run_weights}, PrivateTest accuracy 62.3% (run model_b-0123456789ab, seed 1; torch)"
    )
    images, labels = faces.split("Training")
    root = _labelled_folder(tmp_path / "faces", images, labels, {3: "happy"})
    assert main(["evaluate", str(root), "--weights", str(run_weights)]) == 0
    assert capsys.readouterr().out.splitlines()[0] == first


def test_shipped_weights_find_their_run_by_its_key():
    """models/ holds Model B, whose run (named by the file's key) is committed under runs/full/results/."""
    shipped = predict.MODELS_DIR / "model_b.safetensors"
    result = predict.weights_result(shipped)
    assert result is not None and result["model"] == "model_b"
    line = predict.model_line(load_model(shipped))
    assert line.startswith("Model: Model B from ")
    assert f"PrivateTest accuracy {result['metrics']['PrivateTest']['accuracy']:.1%}" in line


def test_predicting_does_not_import_the_training_stack(tmp_path, weights, faces):
    """`fer-study predict` (module and command) runs without Lightning, torchmetrics or papermill."""
    face = _write_gray(tmp_path / "face.png", faces.images[0])
    code = (
        "import sys\n"
        "def loaded(): return [m for m in ('lightning', 'pytorch_lightning', 'torchmetrics', 'papermill') "
        "if m in sys.modules]\n"
        "import fer_helpers.publish.predict\n"
        "assert not loaded(), f'importing fer_helpers.publish.predict loads {loaded()}'\n"
        "from fer_helpers.orchestrate.cli import main\n"
        f"assert main(['predict', {str(face)!r}, '--weights', {str(weights)!r}, '--out', {str(tmp_path)!r}]) == 0\n"
        "assert not loaded(), f'fer-study predict loads {loaded()}'\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert (tmp_path / "face_emotions.png").is_file()


def test_cli_evaluate(tmp_path, weights, faces, capsys):
    images, labels = faces.split("Training")
    root = _labelled_folder(tmp_path / "faces", images, labels, {3: "Happy", 4: "contempt"})
    assert main(["evaluate", str(root), "--weights", str(weights)]) == 2
    assert "contempt" in capsys.readouterr().err
    report = tmp_path / "report" / "eval.json"
    assert main(["evaluate", str(root), "--weights", str(weights), "--drop-unknown", "--json", str(report)]) == 0
    out = capsys.readouterr().out
    assert "accuracy" in out and "macro F1" in out and "confusion matrix" in out
    saved = json.loads(report.read_text())
    assert saved["n"] == int((labels == 3).sum()) and saved["dropped"] == {"contempt": int((labels == 4).sum())}
