"""Emotions of the faces in any photo, and accuracy on any folder of labelled face photos.

Reading (`load_photo`): any file Pillow reads, turned upright by its EXIF orientation, with transparent pixels
composited on white (whatever colour a transparent pixel stores is not part of the picture). As a guard against
decompression bombs, a photo that would decode to more than `MAX_PIXELS` (40 megapixels) is refused before its
pixels are decoded. A JPEG larger than needed is first decoded at a reduced scale (1/2, 1/4 or 1/8, Pillow's draft
mode), so a large camera JPEG passes while a 40+ megapixel PNG or TIFF does not. A photo whose longer side
exceeds `WORK_SIDE` pixels is then downscaled to it: faces end up 48x48 anyway, and memory grows with the pixel
count. Boxes are reported in pixels of the upright original.

Faces (`locate_faces`): a photo of at most `FACE_CROP_SIDE` (64) pixels on both sides is taken to be a face crop
already, as FER-2013's 48x48 images are, and classified whole (resized to 48x48 if needed). A larger photo goes
through OpenCV's bundled frontal-face Haar cascade (`CASCADE_FILE`), run on a copy of at most `DETECT_SIDE`
pixels; each face is cut out of the working photo square around its box, converted to grayscale and resized to
48x48, the form the models were trained on.

Models (`load_model`): the ONNX export beside the weights (`fer-study export`) where it matches them, its int8 copy
unless float32 is asked for, run by ONNX Runtime without importing torch; otherwise, and for Grad-CAM, the torch
model. Probabilities are calibrated: divided by the temperature the export records (fitted on PublicTest), which
the torch model borrows from the export where there is one. This module imports torch only when it has to.

Folders (`evaluate_folder`): one sub-folder per class, named by FER-2013's class or a synonym (`CLASS_SYNONYMS`,
case-insensitive). Each image is converted as above; where several faces are found the largest counts, and where
none is found the whole image, resized to 48x48, is classified and counted under "no_face".
"""

from __future__ import annotations

import json
import math
import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Union

import cv2
import numpy as np
from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError
from safetensors import SafetensorError, safe_open

from fer_helpers.core.files import atomic_path
from fer_helpers.core.paths import MODELS_DIR, REPO
from fer_helpers.data.classes import CLASS_NAMES, IMAGE_SIZE
from fer_helpers.data.results import RESULT_FILE, SHIPPED_KEY
from fer_helpers.train.exported import ExportedModel, current_onnx, default_exported

if TYPE_CHECKING:
    import pandas as pd
    from torch import nn

Model = Union[ExportedModel, "nn.Module"]  # what answers: an ONNX export (no torch) or the torch model

FACE_CROP_SIDE = 64  # photos at most this many pixels on both sides are face crops: no detection
MAX_PIXELS = 40_000_000  # refused above this many decoded pixels (after JPEG draft decoding)
WORK_SIDE = 1600  # longer side, in pixels, that larger photos are downscaled to before detection
# Extra border around each detected box, as a fraction of its side. Zero, measured: on 600 FER-2013 faces
# (upscaled 4x, borders repeated) the cascade's box side is 0.99 of the frame (median; quartiles 0.92-1.05),
# centred, so FER-2013's framing is the cascade's box itself.
FACE_MARGIN = 0.0
# The cascade, its neighbour threshold and the side it searches at. Measured on 54 photos of 2400 pixels (scikit-
# image's face-free pictures with three FER-2013 PublicTest faces of 150, 250 and 400 pixels pasted into each) and
# the 18 bare pictures: OpenCV's `default` cascade at 1600 pixels with 5 neighbours finds 77% of the faces and
# 93 + 33 false faces; `alt2` at 1024 pixels with 3 neighbours finds 80% and 15 + 4 false faces. Its boxes frame
# FER-2013's faces as the default's do (side 0.96 of the frame against 0.97, on 600 PrivateTest faces).
CASCADE_FILE = "haarcascade_frontalface_alt2.xml"
MIN_NEIGHBORS = 3
DETECT_SIDE = 1024  # longer side, in pixels, of the copy the cascade searches (boxes are mapped back)
MIN_FACE_SIDE = 20  # pixels of that copy; the cascade's own window, smaller faces cannot be found
# Preferred first: ours, then Model B, then the paper's baseline CNN (`fer-study ship` puts them there).
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp")
ANNOTATED_SUFFIX = "_emotions.png"
MAX_FACE_PANELS = 6  # faces shown with heatmap and bars in an annotated photo (all are boxed)
# The annotated photo's layout, in pixels: the photo scaled to at most ANNOTATED_WIDTH wide; beside it, per face, a
# FACE_PANEL square of the face and its class probabilities as bars of at most BAR_WIDTH.
ANNOTATED_WIDTH, PANEL_WIDTH, PANEL_ROW, FACE_PANEL, BAR_WIDTH = 800, 330, 136, 112, 90
_TITLE = 24  # the file name's strip above the photo
_FONT, _FONT_SCALE = cv2.FONT_HERSHEY_SIMPLEX, 0.5
BACKGROUND = (255, 255, 255)  # what transparent pixels are composited on: white, as a viewer shows them
REPORTED_SPLIT = "PrivateTest"  # the split whose accuracy names the weights that answer

# Folder names accepted for each FER-2013 class (lower case; a folder's name is compared case-insensitively).
CLASS_SYNONYMS: dict[str, str] = {
    "angry": "Angry",
    "anger": "Angry",
    "mad": "Angry",
    "disgust": "Disgust",
    "disgusted": "Disgust",
    "fear": "Fear",
    "fearful": "Fear",
    "scared": "Fear",
    "happy": "Happy",
    "happiness": "Happy",
    "joy": "Happy",
    "sad": "Sad",
    "sadness": "Sad",
    "surprise": "Surprise",
    "surprised": "Surprise",
    "neutral": "Neutral",
    "calm": "Neutral",
}


class PredictError(ValueError):
    """A photo, folder or weights file that cannot be used; the message names it."""


@dataclass(frozen=True, eq=False)
class Photo:
    """An upright photo as RGB and grayscale uint8, downscaled to at most WORK_SIDE pixels by `scale`."""

    path: Path
    rgb: np.ndarray  # (H, W, 3) uint8
    gray: np.ndarray  # (H, W) uint8
    scale: float  # pixels of rgb/gray per pixel of the upright original
    size: tuple[int, int]  # (width, height) of the upright original


@dataclass(frozen=True, eq=False)
class FacePrediction:
    """One face of a photo: where it is, the 48x48 face the model saw, its class probabilities and heatmap."""

    file: Path
    index: int  # faces are numbered left to right from 0
    box: tuple[int, int, int, int]  # x, y, width, height in pixels of the upright original
    face: np.ndarray  # (48, 48) uint8
    probs: np.ndarray  # (7,) in FER-2013's class order
    cam: np.ndarray | None  # (48, 48) in [0, 1]: Grad-CAM of the predicted class
    detected: bool  # False: the photo itself was the face crop
    annotated: Path | None = None  # the annotated PNG, once written

    @property
    def pred(self) -> int:
        """Index of the most probable class."""
        return int(np.argmax(self.probs))

    @property
    def label(self) -> str:
        """Name of the most probable class."""
        return CLASS_NAMES[self.pred]

    @property
    def prob(self) -> float:
        """Probability of the most probable class."""
        return float(self.probs[self.pred])


# ---------------------------------------------------------------------------------------------- weights
def default_weights(models_dir: str | Path | None = None) -> Path:
    """The best shipped weights in models_dir (default: the repository's models/), best first (`registry.shipped_files`)."""
    from fer_helpers.models import registry

    models_dir = Path(models_dir) if models_dir is not None else MODELS_DIR
    for name in registry.shipped_files():
        if (models_dir / name).is_file():
            return models_dir / name
    raise PredictError(
        f"no shipped weights in {models_dir} (looked for {', '.join(registry.shipped_files())}). Train with "
        "`fer-study train --profile full` and pass a run's weights with --weights "
        "runs/full/results/<model>-<key>/weights.safetensors, or ship it with `fer-study ship runs/full/results/<model>-<key>`."
    )


def load_model(weights: str | Path | None = None, use_torch: bool = False, int8: bool = True) -> Model:
    """The trained CNN stored in a weights file (default: `default_weights()`): its current ONNX export where there
    is one (`fer_helpers.train.exported`; no torch), else, or with use_torch (Grad-CAM needs gradients), the torch model in
    eval mode on the CPU. With int8 (the default) the export's int8 copy answers where it is current.

    The torch model's `temperature` is the current export's (1 where there is none), and its `tta` the test-time
    augmentation it was evaluated with (from the file's configuration; "none" where it names none), which
    `predict_image` and `evaluate_folder` apply too.
    """
    if weights is None and not use_torch and (exported := default_exported(MODELS_DIR, int8=int8)) is not None:
        return exported
    path = Path(weights) if weights is not None else default_weights()
    if not path.is_file():
        raise PredictError(f"{path}: no such weights file")
    exported = current_onnx(path, int8=int8)
    if not use_torch and exported is not None:
        return exported
    from fer_helpers.train.weights import load_weights

    try:
        model = load_weights(path)
        with safe_open(str(path), framework="pt") as f:
            config = json.loads((f.metadata() or {}).get("config", "{}"))
    except (SafetensorError, ValueError, RuntimeError, KeyError) as err:
        raise PredictError(f"{path}: not usable weights ({err})") from err
    model.tta = config.get("tta", "none")
    model.temperature = exported.temperature if exported is not None else 1.0
    model.weights_file = path
    return model


def weights_result(path: str | Path) -> dict | None:
    """The saved run that a weights file came from (its result.json: metrics, seed, device), None where absent.

    A run's own weights lie in its folder beside result.json; a shipped file in models/ names its model and the
    run's key, whose folder is looked for under runs/*/results/.
    """
    path = Path(path)
    if (path.parent / RESULT_FILE).is_file():
        return json.loads((path.parent / RESULT_FILE).read_text(encoding="utf-8"))
    try:
        with safe_open(str(path), framework="np") as f:
            metadata = f.metadata() or {}
    except (SafetensorError, OSError, ValueError):
        return None
    if not metadata.get("model") or not metadata.get(SHIPPED_KEY):
        return None
    run = f"{metadata['model']}-{metadata[SHIPPED_KEY]}"
    found = sorted((REPO / "runs").glob(f"*/results/{run}/{RESULT_FILE}"))
    return json.loads(found[0].read_text(encoding="utf-8")) if found else None


def model_line(model: Model) -> str:
    """One line naming what answers: the weights file, the model, its accuracy on REPORTED_SPLIT, and whether ONNX
    Runtime or torch runs it."""
    path = getattr(model, "weights_file", None)
    if path is None:
        return f"Model: {type(model).__name__} (not loaded from a weights file)"
    shown = os.path.relpath(path) if Path(path).is_absolute() and _under_cwd(path) else str(path)
    runtime = f"ONNX Runtime, {model.precision}" if isinstance(model, ExportedModel) else "torch"
    temperature = getattr(model, "temperature", 1.0)
    if temperature != 1.0:
        runtime += f"; probabilities calibrated, temperature {temperature:.2f}"
    result = weights_result(path)
    if result is None:
        return f"Model: {shown} (no saved run beside it gives its test accuracy; {runtime})"
    name = result.get("model", "")
    if isinstance(model, ExportedModel):
        label = model.label
    else:
        from fer_helpers.models import registry

        label = registry.label(name) if name in registry.MODELS else name
    scores = result.get("metrics", {}).get(REPORTED_SPLIT)
    accuracy = f", {REPORTED_SPLIT} accuracy {scores['accuracy']:.1%}" if scores else ""
    return (
        f"Model: {label} from {shown}{accuracy} (run {name}-{result.get('key', '?')}, seed {result.get('seed')}; "
        f"{runtime})"
    )


def _under_cwd(path: str | Path) -> bool:
    return Path(path).resolve().is_relative_to(Path.cwd().resolve())


def class_probs(model: Model, faces: np.ndarray) -> np.ndarray:
    """Class probabilities (N,7) of faces (N,48,48) uint8, with the model's test-time augmentation if it has one."""
    if isinstance(model, ExportedModel):
        return model.probs(faces)
    from scipy.special import softmax

    from fer_helpers.train.inference import predict_logits

    logits = predict_logits(model, faces, tta=getattr(model, "tta", "none")).astype(np.float64)
    return softmax(logits / getattr(model, "temperature", 1.0), axis=1)


@lru_cache(maxsize=2)
def _torch_model(weights: Path) -> nn.Module:
    return load_model(weights, use_torch=True)


# ---------------------------------------------------------------------------------------------- photos and faces
def load_photo(path: str | Path, work_side: int = WORK_SIDE) -> Photo:
    """Read an image file of any format upright (EXIF), refusing bombs, downscaled to at most work_side pixels."""
    path = Path(path)
    if not path.exists():
        raise PredictError(f"{path}: no such file")
    if not path.is_file():
        raise PredictError(f"{path}: not a file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # our own, lower limit follows
            with Image.open(path) as image:
                stored = image.size
                if max(stored) > work_side:
                    shrink = work_side / max(stored)
                    image.draft("RGB", (math.ceil(stored[0] * shrink), math.ceil(stored[1] * shrink)))
                if image.size[0] * image.size[1] > MAX_PIXELS:
                    raise PredictError(
                        f"{path}: {stored[0]}x{stored[1]} pixels is over the limit of {MAX_PIXELS / 1e6:.0f} "
                        "megapixels; save a smaller copy"
                    )
                decoded_width = image.size[0]
                turned = image.getexif().get(ExifTags.Base.Orientation, 1) in (5, 6, 7, 8)  # a quarter turn
                upright = ImageOps.exif_transpose(image)
                rgb = np.asarray(_opaque(_eight_bit(upright)))
    except PredictError:
        raise
    except Image.DecompressionBombError as err:
        raise PredictError(f"{path}: too large to decode safely ({err})") from err
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise PredictError(f"{path}: not a readable image ({type(err).__name__}: {err})") from err
    size = (stored[1], stored[0]) if turned else stored
    return photo_from_rgb(path, rgb, size=size, scale=decoded_width / stored[0], work_side=work_side)


def photo_from_rgb(
    path: str | Path,
    rgb: np.ndarray,
    size: tuple[int, int] | None = None,
    scale: float = 1.0,
    work_side: int = WORK_SIDE,
) -> Photo:
    """A decoded RGB image (a photo, a video frame) as a `Photo`, downscaled to at most work_side pixels; size is the
    original's (width, height) and scale its pixels per original pixel as decoded (default: rgb is the original)."""
    size = size or (rgb.shape[1], rgb.shape[0])
    if max(rgb.shape[:2]) > work_side:
        shrink = work_side / max(rgb.shape[:2])
        new_size = (round(rgb.shape[1] * shrink), round(rgb.shape[0] * shrink))
        rgb = cv2.resize(rgb, new_size, interpolation=cv2.INTER_AREA)
        scale *= shrink
    rgb = np.ascontiguousarray(rgb)
    return Photo(path=Path(path), rgb=rgb, gray=cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY), scale=scale, size=size)


def _opaque(image: Image.Image) -> Image.Image:
    """The image as RGB, its transparent pixels (an alpha channel or a palette's transparent entry) on BACKGROUND."""
    if image.mode in ("RGBA", "LA", "PA") or (image.mode in ("P", "L", "RGB") and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (*BACKGROUND, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def _eight_bit(image: Image.Image) -> Image.Image:
    """16-bit and float images as 8-bit grayscale (Pillow's own conversion would clip them)."""
    if not (image.mode.startswith("I") or image.mode == "F"):
        return image
    values = np.asarray(image, dtype=np.float64)
    top = 65535.0 if image.mode.startswith("I;16") else max(float(values.max()), 1.0)
    return Image.fromarray(np.clip(np.round(values / top * 255), 0, 255).astype(np.uint8), mode="L")


@lru_cache(maxsize=1)
def _cascade() -> cv2.CascadeClassifier:
    cascade = cv2.CascadeClassifier(str(Path(cv2.data.haarcascades) / CASCADE_FILE))
    if cascade.empty():
        raise RuntimeError(f"OpenCV's {CASCADE_FILE} could not be loaded from {cv2.data.haarcascades}")
    return cascade


def detection_scale(shape: tuple[int, ...]) -> float:
    """Pixels of the copy the cascade searches per pixel of an image of this (height, width)."""
    return min(1.0, DETECT_SIDE / max(shape[:2]))


def detect_faces(gray: np.ndarray) -> np.ndarray:
    """Boxes (K,4) int (x, y, width, height) of frontal faces in a grayscale image, in its pixels, left to right."""
    scale = detection_scale(gray.shape)
    small = gray
    if scale < 1:
        size = (max(1, round(gray.shape[1] * scale)), max(1, round(gray.shape[0] * scale)))
        small = cv2.resize(gray, size, interpolation=cv2.INTER_AREA)
    boxes = _cascade().detectMultiScale(
        small, scaleFactor=1.1, minNeighbors=MIN_NEIGHBORS, minSize=(MIN_FACE_SIDE, MIN_FACE_SIDE)
    )
    boxes = np.round(np.asarray(boxes, dtype=np.float64).reshape(-1, 4) / scale).astype(np.int64)
    return boxes[np.argsort(boxes[:, 0], kind="stable")]


def crop_face(gray: np.ndarray, box: np.ndarray | tuple[int, int, int, int], margin: float = FACE_MARGIN) -> np.ndarray:
    """The square around a box, widened by margin on each side (edges repeated past the border), as 48x48 uint8."""
    x, y, w, h = (int(v) for v in box)
    side = max(1, round(max(w, h) * (1 + 2 * margin)))
    left, top = round(x + w / 2 - side / 2), round(y + h / 2 - side / 2)
    pad = max(0, -left, -top, left + side - gray.shape[1], top + side - gray.shape[0])
    padded = cv2.copyMakeBorder(gray, pad, pad, pad, pad, cv2.BORDER_REPLICATE) if pad else gray
    square = padded[top + pad : top + pad + side, left + pad : left + pad + side]
    return _resize_face(square)


def _resize_face(gray: np.ndarray) -> np.ndarray:
    if gray.shape == (IMAGE_SIZE, IMAGE_SIZE):
        return gray.copy()
    shrinking = min(gray.shape) > IMAGE_SIZE
    return cv2.resize(gray, (IMAGE_SIZE, IMAGE_SIZE), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)


def is_face_crop(photo: Photo) -> bool:
    """Whether a photo is small enough (at most FACE_CROP_SIDE pixels both ways) to be a face crop itself."""
    return max(photo.size) <= FACE_CROP_SIDE


def locate_faces(
    photo: Photo, detect: Callable[[np.ndarray], np.ndarray] | None = None
) -> tuple[np.ndarray, np.ndarray, bool]:
    """The photo's faces (K,48,48) uint8, their boxes (K,4) in original pixels, and whether they were detected
    (detect: grayscale image to boxes (K,4) x, y, width, height; `detect_faces` where None)."""
    if is_face_crop(photo):
        box = np.array([[0, 0, photo.size[0], photo.size[1]]], dtype=np.int64)
        return _resize_face(photo.gray)[None], box, False
    boxes = np.asarray((detect or detect_faces)(photo.gray), dtype=np.int64).reshape(-1, 4)
    faces = np.empty((0, IMAGE_SIZE, IMAGE_SIZE), np.uint8)
    if len(boxes):
        faces = np.stack([crop_face(photo.gray, b) for b in boxes])
    return faces, np.round(boxes / photo.scale).astype(np.int64), True


# ---------------------------------------------------------------------------------------------- one photo
def predict_image(
    path: str | Path,
    model: Model,
    *,
    cam: bool = True,
    out_dir: str | Path | None = None,
    method: str = "gradcam",
) -> list[FacePrediction]:
    """Classify every face of a photo; with out_dir, write the annotated photo there as <name>_emotions.png."""
    photo = load_photo(path)
    faces, boxes, detected = locate_faces(photo)
    if not len(faces):
        raise PredictError(
            f"{photo.path}: no face found ({photo.size[0]}x{photo.size[1]} pixels; the detector needs an upright, "
            f"frontal face of at least {math.ceil(MIN_FACE_SIDE / (photo.scale * detection_scale(photo.gray.shape)))} "
            "pixels)"
        )
    probs = class_probs(model, faces)
    preds = probs.argmax(axis=1)
    cams = [None] * len(faces)
    if cam:  # Grad-CAM needs the torch model's gradients
        from fer_helpers.analysis.explain import gradcam

        explained = _torch_model(model.weights_file) if isinstance(model, ExportedModel) else model
        cams = gradcam(explained, faces, target_classes=preds, method=method)
    predictions = [
        FacePrediction(
            file=photo.path,
            index=i,
            box=tuple(int(v) for v in boxes[i]),
            face=faces[i],
            probs=probs[i],
            cam=cams[i],
            detected=detected,
        )
        for i in range(len(faces))
    ]
    if out_dir is None:
        return predictions
    target = Path(out_dir) / f"{photo.path.stem}{ANNOTATED_SUFFIX}"
    target.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(target, keep_suffix=True) as temporary:
        if not cv2.imwrite(str(temporary), cv2.cvtColor(annotate(photo, predictions), cv2.COLOR_RGB2BGR)):
            raise PredictError(f"{target}: OpenCV could not write the annotated copy")
    return [replace(p, annotated=target) for p in predictions]


def face_color(index: int) -> tuple[int, int, int]:
    """A bright RGB colour for face or track number `index`, the same in photos, tables and videos."""
    hue = np.uint8((index * 47) % 180)  # spread over OpenCV's 0-179 hues
    return tuple(int(v) for v in cv2.cvtColor(np.array([[[hue, 220, 255]]], np.uint8), cv2.COLOR_HSV2RGB)[0, 0])


def draw_box(image: np.ndarray, box: tuple[int, int, int, int], label: str, color: tuple[int, int, int]) -> None:
    """Draw a face's box with its label on a filled strip above it, in place (`image` in the colour order of `color`)."""
    x, y, w, h = box
    cv2.rectangle(image, (x, y), (x + w, y + h), color, 2)
    (tw, th), base = cv2.getTextSize(label, _FONT, _FONT_SCALE, 1)
    top = max(0, y - th - base - 4)
    cv2.rectangle(image, (x - 1, top), (x + tw + 4, top + th + base + 4), color, cv2.FILLED)
    cv2.putText(image, label, (x + 2, top + th + 2), _FONT, _FONT_SCALE, (0, 0, 0), 1, cv2.LINE_AA)


def annotate(photo: Photo, predictions: list[FacePrediction]) -> np.ndarray:
    """The photo with numbered, labelled boxes; beside it each face (with its heatmap, if any) and its class
    probabilities as bars. An RGB image, drawn with OpenCV: no plotting library to import."""
    rows = predictions[:MAX_FACE_PANELS]
    height = max(PANEL_ROW * len(rows) + _TITLE, 360)
    side = min(height / photo.rgb.shape[0], ANNOTATED_WIDTH / photo.rgb.shape[1])
    shown = cv2.resize(
        photo.rgb, None, fx=side, fy=side, interpolation=cv2.INTER_AREA if side < 1 else cv2.INTER_LINEAR
    )
    canvas = np.full((max(height, shown.shape[0] + _TITLE), shown.shape[1] + PANEL_WIDTH, 3), 255, np.uint8)
    canvas[_TITLE : _TITLE + shown.shape[0], : shown.shape[1]] = shown
    title = photo.path.name
    if len(predictions) > MAX_FACE_PANELS:
        title += f"  ({len(predictions)} faces; details for faces 0-{MAX_FACE_PANELS - 1})"
    cv2.putText(canvas, title, (4, _TITLE - 8), _FONT, _FONT_SCALE, (0, 0, 0), 1, cv2.LINE_AA)
    for p in predictions:
        box = tuple(round(v * photo.scale * side) for v in p.box)
        draw_box(canvas[_TITLE:], box, f"{p.index}: {p.label} {p.prob:.0%}", face_color(p.index))
    for row, p in enumerate(rows):
        _draw_face_panel(canvas, p, x=shown.shape[1] + 8, y=_TITLE + row * PANEL_ROW)
    return canvas


def _draw_face_panel(canvas: np.ndarray, p: FacePrediction, x: int, y: int) -> None:
    """One face at `FACE_PANEL` pixels, its Grad-CAM blended over it where there is one, and its probabilities."""
    color = face_color(p.index)
    face = cv2.cvtColor(
        cv2.resize(p.face, (FACE_PANEL, FACE_PANEL), interpolation=cv2.INTER_NEAREST), cv2.COLOR_GRAY2RGB
    )
    if p.cam is not None:
        heat = cv2.applyColorMap(np.uint8(255 * np.clip(p.cam, 0, 1)), cv2.COLORMAP_JET)
        heat = cv2.resize(
            cv2.cvtColor(heat, cv2.COLOR_BGR2RGB), (FACE_PANEL, FACE_PANEL), interpolation=cv2.INTER_CUBIC
        )
        face = cv2.addWeighted(face, 0.6, heat, 0.4, 0)
    canvas[y + 16 : y + 16 + FACE_PANEL, x : x + FACE_PANEL] = face
    caption = f"face {p.index}" + (", Grad-CAM" if p.cam is not None else "")
    cv2.putText(canvas, caption, (x, y + 12), _FONT, _FONT_SCALE, color, 1, cv2.LINE_AA)
    bars_x, bar_h = x + FACE_PANEL + 70, FACE_PANEL // len(CLASS_NAMES)
    for c, (name, prob) in enumerate(zip(CLASS_NAMES, p.probs)):
        top = y + 16 + c * bar_h
        cv2.putText(canvas, name, (bars_x - 66, top + bar_h - 4), _FONT, 0.4, (60, 60, 60), 1, cv2.LINE_AA)
        width = round(BAR_WIDTH * float(prob))
        fill = color if c == p.pred else (190, 190, 190)
        cv2.rectangle(canvas, (bars_x, top + 2), (bars_x + width, top + bar_h - 2), fill, cv2.FILLED)
        cv2.putText(
            canvas, f"{prob:.0%}", (bars_x + width + 4, top + bar_h - 4), _FONT, 0.4, (60, 60, 60), 1, cv2.LINE_AA
        )


def prediction_rows(predictions: list[FacePrediction]) -> list[dict]:
    """One row per face: file, face index, box (x,y,w,h), top label and its probability."""
    return [
        {
            "file": p.file.name,
            "face": p.index,
            "box": ",".join(map(str, p.box)),
            "label": p.label,
            "prob": round(p.prob, 3),
        }
        for p in predictions
    ]


def prediction_text(predictions: list[FacePrediction]) -> str:
    """`prediction_rows` as the aligned text table `fer-study predict` prints (numbers right-aligned)."""
    rows = prediction_rows(predictions)
    columns = list(rows[0]) if rows else []
    cells = [[f"{r[c]:.3f}" if isinstance(r[c], float) else str(r[c]) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    right = [isinstance(rows[0][c], (int, float)) for c in columns] if rows else []
    return "\n".join(
        "  ".join(v.rjust(w) if r else v.ljust(w) for v, w, r in zip(line, widths, right)).rstrip()
        for line in [columns, *cells]
    )


def prediction_table(predictions: list[FacePrediction]) -> pd.DataFrame:
    """`prediction_rows` as a DataFrame, for a notebook."""
    import pandas as pd

    return pd.DataFrame(prediction_rows(predictions), columns=["file", "face", "box", "label", "prob"])


# ---------------------------------------------------------------------------------------------- a labelled folder
def fer_class(name: str) -> str | None:
    """FER-2013's class for a folder name or synonym (case-insensitive), None when unknown."""
    return CLASS_SYNONYMS.get(name.strip().lower())


def face_for_evaluation(photo: Photo) -> tuple[np.ndarray, str]:
    """The one 48x48 face of a labelled photo and how it was found: "crop", "detected" (largest) or "no_face"."""
    faces, boxes, detected = locate_faces(photo)
    if not detected:
        return faces[0], "crop"
    if len(faces):
        return faces[int(np.argmax(boxes[:, 2] * boxes[:, 3]))], "detected"
    return _resize_face(photo.gray), "no_face"


def _image_files(folder: Path) -> list[Path]:
    return sorted(
        f
        for f in folder.rglob("*")
        if f.is_file()
        and f.suffix.lower() in IMAGE_SUFFIXES
        and not any(part.startswith(".") for part in f.relative_to(folder).parts)
    )


def evaluate_folder(folder: str | Path, model: Model, drop_unknown: bool = False) -> dict:
    """Accuracy, macro F1 over the classes present and confusion matrix on a folder with one sub-folder per class."""
    from sklearn.metrics import f1_score, precision_recall_fscore_support

    from fer_helpers.scoring.metrics import confusion
    from fer_helpers.scoring.statistics import bootstrap_ci

    folder = Path(folder)
    if not folder.is_dir():
        raise PredictError(f"{folder}: no such folder")
    class_dirs = sorted(d for d in folder.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not class_dirs:
        raise PredictError(f"{folder}: no class sub-folders; expected one folder per class, e.g. {folder}/happy/")
    mapping = {d.name: fer_class(d.name) for d in class_dirs}
    unknown = sorted(name for name, cls in mapping.items() if cls is None)
    if unknown and not drop_unknown:
        raise PredictError(
            f"{folder}: unknown class folder(s) {unknown}; known names: {sorted(CLASS_SYNONYMS)}. "
            "Rename them, or leave them out with --drop-unknown."
        )
    files: list[Path] = []
    labels: list[int] = []
    dropped: dict[str, int] = {}
    for d in class_dirs:
        images = _image_files(d)
        if mapping[d.name] is None:
            dropped[d.name] = len(images)
            continue
        files += images
        labels += [CLASS_NAMES.index(mapping[d.name])] * len(images)
    if not files:
        raise PredictError(f"{folder}: no images ({', '.join(IMAGE_SUFFIXES)}) in the class folders")

    faces, found = zip(*(face_for_evaluation(load_photo(f)) for f in files))
    probs = class_probs(model, np.stack(faces))
    labels_arr, preds = np.asarray(labels, dtype=np.int64), probs.argmax(axis=1)
    present = sorted(set(labels))
    correct = int((labels_arr == preds).sum())
    precision, recall, f1, support = precision_recall_fscore_support(labels_arr, preds, labels=present, zero_division=0)
    counts = confusion(labels_arr, preds)[present]
    relative = [f.relative_to(folder).as_posix() for f in files]
    return {
        "folder": str(folder),
        "n": len(files),
        "accuracy": correct / len(files),
        "accuracy_ci95": list(bootstrap_ci(labels_arr, preds, "accuracy")),
        "macro_f1": float(f1_score(labels_arr, preds, labels=present, average="macro", zero_division=0)),
        "classes": [CLASS_NAMES[c] for c in present],
        "class_folders": mapping,
        "dropped": dropped,
        "no_face": int(sum(how == "no_face" for how in found)),
        "faces": {how: int(sum(h == how for h in found)) for how in ("crop", "detected", "no_face")},
        "per_class": {
            CLASS_NAMES[c]: {
                "n": int(support[i]),
                "precision": float(precision[i]),
                "recall": float(recall[i]),
                "f1": float(f1[i]),
            }
            for i, c in enumerate(present)
        },
        "confusion": {
            "rows": [CLASS_NAMES[c] for c in present],
            "columns": list(CLASS_NAMES),
            "counts": counts.tolist(),
        },
        "predictions": [
            {"file": rel, "true": CLASS_NAMES[t], "pred": CLASS_NAMES[p], "prob": float(pr[p]), "face": how}
            for rel, t, p, pr, how in zip(relative, labels_arr, preds, probs, found)
        ],
    }


def confusion_frame(result: dict) -> pd.DataFrame:
    """An evaluate_folder result's confusion matrix: rows the true classes present, columns all seven predicted."""
    import pandas as pd

    table = result["confusion"]
    return pd.DataFrame(
        table["counts"],
        index=pd.Index(table["rows"], name="true"),
        columns=pd.Index(table["columns"], name="predicted"),
    )


def evaluation_summary(result: dict) -> str:
    """The lines `fer-study evaluate` prints: counts, accuracy, macro F1 and the confusion matrix."""
    low, high = result["accuracy_ci95"]
    lines = [
        f"{result['folder']}: {result['n']} images, classes {', '.join(result['classes'])}",
        f"accuracy {result['accuracy']:.3f} (95% CI {low:.3f}-{high:.3f}), "
        f"macro F1 {result['macro_f1']:.3f} over the {len(result['classes'])} classes present",
        f"faces: {result['faces']['crop']} face crops, {result['faces']['detected']} detected, "
        f"{result['no_face']} without a face found (whole image used)",
    ]
    if result["dropped"]:
        lines.append("left out (unknown class): " + ", ".join(f"{k} ({n})" for k, n in result["dropped"].items()))
    lines += ["confusion matrix (rows: true, columns: predicted):", confusion_frame(result).to_string()]
    return "\n".join(lines)
