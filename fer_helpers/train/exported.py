"""The exported model: a shipped CNN written as ONNX (with torch, once), and run by ONNX Runtime without torch.

`export_onnx` writes `<weights>.onnx` beside a weights file: a float32 graph from faces (N,1,48,48) in [0,1] to
logits (N,7), with what a reader needs in its metadata (model, label, class names, input scaling, the test-time
augmentation it was evaluated with, and the SHA-256 of the weights it was exported from). `ExportedModel` runs such
a file with ONNX Runtime on the CPU; importing this module, or running a model with it, never imports torch, which
is what lets `fer-study predict` answer in about a second instead of loading torch for several. `check_export`
compares the two on faces: the largest difference in logits and how often the predicted classes agree.

An ONNX file is used only while it matches its weights: `current_onnx` checks the recorded SHA-256, so a newer ship
of the weights is never answered by an older export.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
from pathlib import Path

import numpy as np

from fer_helpers.core.files import atomic_path
from fer_helpers.data.fer2013 import CLASS_NAMES, IMAGE_SIZE

ONNX_SUFFIX = ".onnx"
INPUT_NAME, OUTPUT_NAME = "faces", "logits"
INPUT_SCALING = "float32 (N,1,48,48): uint8 pixels / 255"
BATCH_SIZE = 512
ONNX_TTA = ("none",)  # the test-time augmentations the ONNX path reproduces; weights with another run with torch


class ExportError(ValueError):
    """Weights that cannot be exported, or an ONNX file that cannot be used; the message names the file."""


def onnx_file(weights: str | Path) -> Path:
    """Where the ONNX export of a weights file lies: beside it, with the same name."""
    return Path(weights).with_suffix(ONNX_SUFFIX)


def file_sha256(path: str | Path) -> str:
    """SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as source:
        for block in iter(lambda: source.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = logits.astype(np.float64) - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


class ExportedModel:
    """A CNN exported by `export_onnx`, run by ONNX Runtime on the CPU (no torch)."""

    def __init__(self, path: str | Path):
        import onnxruntime

        self.path = Path(path)
        options = onnxruntime.SessionOptions()
        options.log_severity_level = 3  # errors only: its warnings about unused initializers are not the user's
        try:
            self.session = onnxruntime.InferenceSession(
                str(self.path), sess_options=options, providers=["CPUExecutionProvider"]
            )
        except Exception as err:  # onnxruntime raises its own exception types for unreadable files
            raise ExportError(f"{self.path}: not a usable ONNX model ({type(err).__name__}: {err})") from err
        self.metadata = dict(self.session.get_modelmeta().custom_metadata_map)
        self.model_name = self.metadata.get("model", self.path.stem)
        self.label = self.metadata.get("label", self.model_name)
        self.tta = self.metadata.get("tta", "none")
        self.weights_file = self.path.with_name(self.metadata.get("weights_file", self.path.stem + ".safetensors"))

    @property
    def preference(self) -> int:
        """The registry's shipping rank of the model (lower is preferred), as recorded at export."""
        return int(self.metadata.get("preference", 1_000_000))

    def logits(self, images: np.ndarray, batch_size: int = BATCH_SIZE) -> np.ndarray:
        """Logits (N,7) float32 of faces (N,48,48) uint8."""
        images = np.asarray(images)
        if images.dtype != np.uint8 or images.shape[1:] != (IMAGE_SIZE, IMAGE_SIZE):
            raise ValueError(f"expected uint8 faces of shape (N,48,48), got {images.shape} {images.dtype}")
        out = [
            self.session.run(
                [OUTPUT_NAME], {INPUT_NAME: images[start : start + batch_size, None].astype(np.float32) / 255.0}
            )[0]
            for start in range(0, len(images), batch_size)
        ]
        return np.concatenate(out).astype(np.float32) if out else np.zeros((0, len(CLASS_NAMES)), np.float32)

    def probs(self, images: np.ndarray) -> np.ndarray:
        """Class probabilities (N,7) float64 of faces (N,48,48) uint8."""
        return _softmax(self.logits(images))


def current_onnx(weights: str | Path) -> ExportedModel | None:
    """The ONNX export beside a weights file, loaded, if it was exported from exactly these weights and its
    test-time augmentation runs without torch; None otherwise."""
    path = onnx_file(weights)
    if not path.is_file():
        return None
    try:
        model = ExportedModel(path)
    except ExportError:
        return None
    if model.metadata.get("weights_sha256") != file_sha256(weights) or model.tta not in ONNX_TTA:
        return None
    return model


def default_exported(models_dir: str | Path) -> ExportedModel | None:
    """The preferred exported model in models_dir, where every weights file there has a current export (otherwise
    the best weights may have none, and torch has to choose); None where any lacks one."""
    weights = sorted(Path(models_dir).glob("*.safetensors"))
    exported = [current_onnx(w) for w in weights]
    if not weights or any(model is None for model in exported):
        return None
    return min(exported, key=lambda model: model.preference)


def export_onnx(weights: str | Path) -> Path:
    """Write the ONNX export of a weights file beside it (replacing an older one whole); returns its path."""
    import torch
    from safetensors import safe_open

    from fer_helpers.models import registry
    from fer_helpers.train.weights import load_weights

    weights = Path(weights)
    try:
        model = load_weights(weights).float().eval()
        with safe_open(str(weights), framework="np") as f:
            stored = f.metadata() or {}
    except (ValueError, OSError, RuntimeError) as err:
        raise ExportError(f"{weights}: not exportable weights ({err})") from err
    name = stored.get("model", weights.stem)
    spec = registry.MODELS.get(name)
    metadata = {
        "model": name,
        "label": spec.label if spec else name,
        "preference": str(spec.ships if spec and spec.ships is not None else 1_000_000),
        "class_names": json.dumps(list(CLASS_NAMES)),
        "input": INPUT_SCALING,
        "tta": json.loads(stored.get("config", "{}")).get("tta", "none"),
        "weights_file": weights.name,
        "weights_sha256": file_sha256(weights),
        "run_key": stored.get("run_key", ""),
    }
    example = torch.rand(2, 1, IMAGE_SIZE, IMAGE_SIZE)
    with contextlib.redirect_stdout(io.StringIO()):  # the exporter's own progress lines
        program = torch.onnx.export(
            model,
            (example,),
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_shapes=({0: torch.export.Dim("batch")},),
            dynamo=True,
            external_data=False,
            verbose=False,
        )
    program.model.metadata_props.update(metadata)
    target = onnx_file(weights)
    with atomic_path(target) as temporary:
        program.save(str(temporary), external_data=False)
    return target


def check_export(path: str | Path, weights: str | Path, images: np.ndarray) -> dict:
    """The export against torch on faces (N,48,48) uint8: the largest absolute difference in logits (float32, no
    bf16 on either side) and the share of faces whose predicted class agrees."""
    from fer_helpers.train.inference import predict_logits
    from fer_helpers.train.weights import load_weights

    reference = predict_logits(load_weights(weights).float(), images, bf16=False)
    exported = ExportedModel(path).logits(images)
    return {
        "n": len(images),
        "max_abs_logit_difference": float(np.abs(reference - exported).max()) if len(images) else 0.0,
        "argmax_agreement": float((reference.argmax(axis=1) == exported.argmax(axis=1)).mean()) if len(images) else 1.0,
    }
