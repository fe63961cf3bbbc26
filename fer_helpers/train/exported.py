"""The exported model: a shipped CNN written as ONNX (with torch, once), and run by ONNX Runtime without torch.

`export_onnx` writes `<weights>.onnx` beside a weights file: a float32 graph from faces (N,1,48,48) in [0,1] to
logits (N,7), with what a reader needs in its metadata (model, label, class names, input scaling, the test-time
augmentation it was evaluated with, and the SHA-256 of the weights it was exported from). `ExportedModel` runs such
a file with ONNX Runtime on the CPU; importing this module, or running a model with it, never imports torch, which
is what lets `fer-study predict` answer in about a second instead of loading torch for several. `check_export`
compares the two on faces: the largest difference in logits and how often the predicted classes agree.

An ONNX file is used only while it matches its weights: `current_onnx` checks the recorded SHA-256, so a newer ship
of the weights is never answered by an older export.

int8 (`quantize_int8`): ONNX Runtime's static quantisation of the float32 file, written beside it as
`<weights>.int8.onnx` with the same metadata. QDQ format, one scale per tensor, 7-bit weights (reduce_range) and
uint8 activations whose ranges are measured (MinMax) on `calibration_sample`: 1,000 Training faces, stratified by
class, seed 0. Measured on Model B (PrivateTest, 2-core AMD EPYC with AVX2 and no VNNI): 66.5% against 66.2% in
float32, the same class on 95.5% of the faces, about twice as fast and a quarter of the size; without reduce_range
the u8*s8 products saturate on such a CPU and per-channel scales lost 2.8 points. `current_onnx` prefers the int8
file where it is current, unless asked for float32.

Calibrated probabilities (`calibrate`): the temperature T fitted on PublicTest logits
(`fer_helpers.scoring.metrics.fit_temperature`) is stored in both files' metadata, and `ExportedModel.probs` is
softmax(logits / T); the predicted class does not change.
`export_model` does all of it for one weights file and returns what it measured.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from fer_helpers.core.files import atomic_path
from fer_helpers.data.classes import CLASS_NAMES, IMAGE_SIZE

if TYPE_CHECKING:
    from fer_helpers.data.classes import FERData

ONNX_SUFFIX = ".onnx"
INT8_SUFFIX = ".int8.onnx"
INPUT_NAME, OUTPUT_NAME = "faces", "logits"
INPUT_SCALING = "float32 (N,1,48,48): uint8 pixels / 255"
BATCH_SIZE = 512
ONNX_TTA = ("none",)  # the test-time augmentations the ONNX path reproduces; weights with another run with torch
TEMPERATURE_SPLIT, CHECK_SPLIT = "PublicTest", "PrivateTest"  # the temperature is fitted on one, reported on the other
CALIBRATION_FACES, CALIBRATION_SEED = 1000, 0  # the int8 calibration sample of Training faces
QUANT_FORMATS = ("QDQ", "QOperator")


class ExportError(ValueError):
    """Weights that cannot be exported, or an ONNX file that cannot be used; the message names the file."""


def onnx_file(weights: str | Path) -> Path:
    """Where the ONNX export of a weights file lies: beside it, with the same name."""
    return Path(weights).with_suffix(ONNX_SUFFIX)


def int8_file(weights: str | Path) -> Path:
    """Where the int8 copy of a weights file's export lies: beside it, `<name>.int8.onnx`."""
    return Path(weights).with_suffix(INT8_SUFFIX)


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
    """A CNN exported by `export_onnx` (float32) or `quantize_int8` (int8), run by ONNX Runtime on the CPU (no
    torch); its probabilities are divided by the temperature its metadata records (1 where none)."""

    def __init__(self, path: str | Path, threads: int | None = None):
        import onnxruntime

        self.path = Path(path)
        options = onnxruntime.SessionOptions()
        options.log_severity_level = 3  # errors only: its warnings about unused initializers are not the user's
        if threads is not None:  # default: ONNX Runtime's, one per physical core
            options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
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
        self.temperature = float(self.metadata.get("temperature", 1.0))
        if not self.temperature > 0:
            raise ExportError(f"{self.path}: temperature {self.temperature} in its metadata is not positive")

    @property
    def precision(self) -> str:
        """ "int8" for a quantised file, "float32" otherwise."""
        return "int8" if "quantization" in self.metadata else "float32"

    @property
    def calibrated(self) -> bool:
        """Whether a temperature was fitted and is applied to the probabilities."""
        return "temperature" in self.metadata

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

    def probs(self, images: np.ndarray, calibrated: bool = True) -> np.ndarray:
        """Class probabilities (N,7) float64 of faces (N,48,48) uint8: softmax(logits / temperature), or of the raw
        logits with calibrated=False."""
        return _softmax(self.logits(images) / (self.temperature if calibrated else 1.0))


def current_onnx(weights: str | Path, int8: bool = True) -> ExportedModel | None:
    """The ONNX export beside a weights file, loaded, if it was exported from exactly these weights and its
    test-time augmentation runs without torch; None otherwise. With int8, the int8 copy where it is current, else
    the float32 file; without, the float32 file only."""
    digest = None
    for path in (int8_file(weights), onnx_file(weights)) if int8 else (onnx_file(weights),):
        if not path.is_file():
            continue
        try:
            model = ExportedModel(path)
        except ExportError:
            continue
        digest = digest or file_sha256(weights)
        if model.metadata.get("weights_sha256") == digest and model.tta in ONNX_TTA:
            return model
    return None


def default_exported(models_dir: str | Path, int8: bool = True) -> ExportedModel | None:
    """The preferred exported model in models_dir (int8 where current, as in `current_onnx`), where every weights
    file there has a current export (otherwise the best weights may have none, and torch has to choose); None where
    any lacks one."""
    weights = sorted(Path(models_dir).glob("*.safetensors"))
    exported = [current_onnx(w, int8=int8) for w in weights]
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


def set_metadata(path: str | Path, entries: dict[str, str]) -> Path:
    """Add or replace metadata entries of an ONNX file (the file is replaced whole); returns its path."""
    import onnx

    path = Path(path)
    model = onnx.load(str(path))
    merged = {p.key: p.value for p in model.metadata_props} | {k: str(v) for k, v in entries.items()}
    del model.metadata_props[:]
    for key, value in merged.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    with atomic_path(path) as temporary:
        onnx.save(model, str(temporary))
    return path


# ---------------------------------------------------------------------------------------------- int8
def calibration_sample(
    images: np.ndarray, labels: np.ndarray, n: int = CALIBRATION_FACES, seed: int = CALIBRATION_SEED
) -> np.ndarray:
    """The indices (sorted) of n faces drawn stratified by class with a fixed seed: ceil(n / classes) of each class
    (all of a class that has fewer), the surplus dropped at random. Pass Training faces, never a reported split:
    `quantize_int8` measures its activation ranges on them."""
    labels = np.asarray(labels)
    if len(labels) != len(images):
        raise ValueError(f"{len(images)} faces for {len(labels)} labels")
    rng = np.random.default_rng(seed)
    classes = np.unique(labels)
    per_class = int(np.ceil(n / max(len(classes), 1)))
    picks = [
        rng.choice(members, size=min(per_class, len(members)), replace=False)
        for members in (np.flatnonzero(labels == label) for label in classes)
    ]
    index = np.concatenate(picks) if picks else np.zeros(0, np.int64)
    if len(index) > n:
        index = rng.choice(index, size=n, replace=False)
    return np.sort(index)


class _FaceReader:
    """onnxruntime.quantization's CalibrationDataReader over uint8 faces (N,48,48), in batches."""

    def __init__(self, faces: np.ndarray, batch_size: int):
        self.faces, self.batch_size, self.start = faces, batch_size, 0

    def get_next(self) -> dict | None:
        if self.start >= len(self.faces):
            return None
        batch = self.faces[self.start : self.start + self.batch_size]
        self.start += self.batch_size
        return {INPUT_NAME: batch[:, None].astype(np.float32) / 255.0}

    def rewind(self) -> None:
        self.start = 0


def quantize_int8(
    onnx_path: str | Path,
    calibration_faces: np.ndarray,
    out_path: str | Path,
    *,
    quant_format: str = "QDQ",
    per_channel: bool = False,
    reduce_range: bool = True,
    calibration: dict | None = None,
    batch_size: int = 100,
) -> Path:
    """Write an int8 copy of a float32 export, statically quantised by ONNX Runtime; returns out_path.

    calibration_faces: uint8 faces (N,48,48) on which the activation ranges are measured (MinMax), e.g. the
    Training faces `calibration_sample` picks. The defaults (QDQ, per-tensor, reduce_range) are the measured best
    on an AVX2 CPU without VNNI; see the module's docstring. The float32 file's metadata is copied, with a
    "quantization" entry (JSON: the settings, and calibration, what the faces were) added.
    """
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    if quant_format not in QUANT_FORMATS:
        raise ValueError(f"unknown quant_format {quant_format!r}; choose one of {QUANT_FORMATS}")
    faces = np.asarray(calibration_faces)
    if faces.dtype != np.uint8 or faces.shape[1:] != (IMAGE_SIZE, IMAGE_SIZE) or len(faces) == 0:
        raise ValueError(f"expected uint8 calibration faces (N,48,48), got {faces.shape} {faces.dtype}")
    onnx_path, out_path = Path(onnx_path), Path(out_path)
    source = ExportedModel(onnx_path)
    if "quantization" in source.metadata:
        raise ExportError(f"{onnx_path}: already quantised; pass the float32 export")
    with tempfile.TemporaryDirectory() as tmp:
        prepared, quantized = Path(tmp) / "prepared.onnx", Path(tmp) / "quantized.onnx"
        quant_pre_process(str(onnx_path), str(prepared), skip_symbolic_shape=False)  # as ONNX Runtime advises
        quantize_static(
            str(prepared),
            str(quantized),
            _FaceReader(faces, batch_size),
            quant_format=QuantFormat.QDQ if quant_format == "QDQ" else QuantFormat.QOperator,
            per_channel=per_channel,
            reduce_range=reduce_range,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=CalibrationMethod.MinMax,
        )
        settings = {
            "format": quant_format,
            "per_channel": per_channel,
            "reduce_range": reduce_range,
            "calibrate_method": "MinMax",
            "activations": "uint8",
            "weights": "int8",
            "source": onnx_path.name,
            "calibration": calibration or {"faces": int(len(faces))},
        }
        set_metadata(quantized, source.metadata | {"quantization": json.dumps(settings)})
        with atomic_path(out_path) as temporary:
            temporary.write_bytes(quantized.read_bytes())
    return out_path


# ---------------------------------------------------------------------------------------------- the whole export
def calibrate(model: ExportedModel, fit: tuple[np.ndarray, np.ndarray], check: tuple[np.ndarray, np.ndarray]) -> dict:
    """The temperature fitted on one split's (faces, labels) and the expected calibration error (15 bins) on another's
    before and after dividing the logits by it."""
    from fer_helpers.scoring.metrics import expected_calibration_error, fit_temperature

    temperature = fit_temperature(model.logits(fit[0]), fit[1])
    logits = model.logits(check[0])
    return {
        "temperature": temperature,
        "ece_before": expected_calibration_error(_softmax(logits), check[1]),
        "ece_after": expected_calibration_error(_softmax(logits / temperature), check[1]),
    }


def export_model(weights: str | Path, data: FERData, int8: bool = True) -> dict:
    """Export one weights file: float32 ONNX, checked against torch on CHECK_SPLIT; its temperature fitted on
    TEMPERATURE_SPLIT and stored; with int8, its int8 copy calibrated on `calibration_sample` of Training and checked
    against the float32 file on CHECK_SPLIT (accuracies, agreement; stored in its metadata). Returns the numbers."""
    weights = Path(weights)
    path = export_onnx(weights)
    faces, labels = data.split(CHECK_SPLIT)
    summary = {"weights": str(weights), "onnx": str(path), "data_sha256": data.sha256, "split": CHECK_SPLIT}
    summary["torch_check"] = check_export(path, weights, faces)
    model = ExportedModel(path)
    summary["calibration"] = calibrate(model, data.split(TEMPERATURE_SPLIT), (faces, labels))
    summary["calibration"] |= {"fitted_on": TEMPERATURE_SPLIT, "reported_on": CHECK_SPLIT}
    set_metadata(
        path,
        {"temperature": repr(summary["calibration"]["temperature"]), "calibration": json.dumps(summary["calibration"])},
    )
    float_logits = ExportedModel(path).logits(faces)
    summary["accuracy_float32"] = float((float_logits.argmax(axis=1) == labels).mean()) if len(labels) else 0.0
    if not int8:
        return summary
    train_faces, train_labels = data.split("Training")
    index = calibration_sample(train_faces, train_labels)
    sample = {
        "split": "Training",
        "faces": int(len(index)),
        "stratified": True,
        "seed": CALIBRATION_SEED,
        "indices_sha256": hashlib.sha256(index.astype(np.int64).tobytes()).hexdigest(),
        "data_sha256": data.sha256,
    }
    target = quantize_int8(path, train_faces[index], int8_file(weights), calibration=sample)
    quantized = ExportedModel(target)
    int8_logits = quantized.logits(faces)
    check = {
        "split": CHECK_SPLIT,
        "n": int(len(faces)),
        "accuracy_float32": summary["accuracy_float32"],
        "accuracy_int8": float((int8_logits.argmax(axis=1) == labels).mean()) if len(labels) else 0.0,
        "argmax_agreement": float((int8_logits.argmax(axis=1) == float_logits.argmax(axis=1)).mean())
        if len(labels)
        else 1.0,
        "max_abs_logit_difference": float(np.abs(int8_logits - float_logits).max()) if len(labels) else 0.0,
        "ece_after": _ece(int8_logits / quantized.temperature, labels),
    }
    settings = json.loads(quantized.metadata["quantization"]) | {"check": check}
    set_metadata(target, {"quantization": json.dumps(settings)})
    summary |= {"int8": str(target), "int8_check": check, "calibration_sample": sample}
    return summary


def _ece(logits: np.ndarray, labels: np.ndarray) -> float:
    from fer_helpers.scoring.metrics import expected_calibration_error

    return expected_calibration_error(_softmax(logits), labels) if len(labels) else 0.0
