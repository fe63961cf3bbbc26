"""A model off FER-2013's own faces: what its crop, light, class balance and face detector do to a CNN's answers.

FER-2013's faces are cropped by one detector, aligned and framed alike, lit like press photos, and come in its own
class balance. A camera changes each of these; this module measures what each change does to a trained model on
faces whose labels are known (notebook 09):

- **Crop and light** (`perturb`, `SWEEPS`): a face shifted, zoomed or turned inside its 48x48 frame (what a detector
  with another framing does), made brighter, darker, flatter or blurred. `perturbed_logits` scores every change in
  one pass of the model, and `sweep_table` gives each its accuracy with a bootstrap interval, its paired drop
  against the unchanged faces, the model's mean confidence, and the class the answers pile into.
- **Class priors** (`class_prior`, `shift_prior`): Bayes' rule moves a model's probabilities from the class balance
  it learned to another one; `recall_table` shows what that does to each class's recall.
  `lfw_faces` gives faces from news photographs, without emotion labels, to see where the answers go off FER-2013.
- **Detector misses** (`make_scenes`, `match_detections`): faces pasted at several sizes into larger images made
  from scikit-image's bundled sample photographs (`BACKGROUNDS`; none shows a face), so that a detector's misses
  can be counted against known boxes.

A model enters as a function from faces (N,48,48) uint8 to logits (N,7) (`logits_function`), so an ONNX export and
a torch model plug in alike.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from fer_helpers.core.boxes import box_iou
from fer_helpers.core.paths import REPO
from fer_helpers.data.fer2013 import CLASS_NAMES, IMAGE_SIZE, NUM_CLASSES
from fer_helpers.data.results import RESULT_FILE, SHIPPED_KEY, RunResult
from fer_helpers.scoring.metrics import softmax
from fer_helpers.scoring.statistics import bootstrap_ci, mean_ci, resample_counts

Logits = Callable[[np.ndarray], np.ndarray]  # faces (N,48,48) uint8 -> logits (N,7)

# Each change and its amounts, mildest first. shift: pixels, each face in a random direction; scale: zoom about the
# centre (above 1 a tighter crop, the face larger; below 1 a looser one, the border repeated); rotate: degrees,
# each face turned one way or the other at random; brightness: grey levels added; contrast: a factor about each
# face's mean; blur: the sigma of a Gaussian, in pixels.
SWEEPS: dict[str, tuple[float, ...]] = {
    "shift": (2, 4, 8),
    "scale": (0.7, 0.85, 1.15, 1.3),
    "rotate": (10, 20, 30),
    "brightness": (-64, 64),
    "contrast": (0.5, 1.5),
    "blur": (1, 2, 3),
}
UNCHANGED = "none"  # the change of the unchanged faces, amount 0
NEUTRAL = {"scale": 1.0, "contrast": 1.0}  # the amount of each change that changes nothing (0 where not named)
UNITS = {"shift": "px", "scale": "x", "rotate": "°", "brightness": "grey levels", "contrast": "x", "blur": "px"}
# scikit-image's bundled sample photographs that show no face (no download): backgrounds of the detector's scenes.
BACKGROUNDS = (
    "brick", "grass", "gravel", "coffee", "rocket", "coins", "moon", "page", "text", "hubble_deep_field",
    "immunohistochemistry", "cell",
)  # fmt: skip
SCENE_SHAPE = (480, 640)  # height, width of a scene: a webcam's frame
SCENE_SIDES = (24, 36, 48, 72, 108, 160)  # pixels of the faces pasted into each scene, one of each
ALL_FACES, MEAN_RECALL = "all faces (accuracy)", "mean over classes"  # the last two rows of a recall table
LFW_FACES = 100  # the images of scikit-image's LFW subset that are faces (the first ones)
MATCH_IOU = 0.5  # a detected box finds a pasted face when their intersection over union reaches this


def _check_faces(images: np.ndarray) -> np.ndarray:
    images = np.asarray(images)
    if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != (IMAGE_SIZE, IMAGE_SIZE):
        raise ValueError(f"expected faces (N,48,48) uint8, got {images.shape} {images.dtype}")
    return images


def logits_function(model) -> Logits:
    """The logits of a model: an ONNX export's (its `logits` method) or a torch model's, in float32."""
    if hasattr(model, "logits"):
        return model.logits
    from fer_helpers.train.inference import predict_logits

    return lambda faces: predict_logits(model, faces, bf16=False)


def source_run(weights: str | Path, runs_root: str | Path = REPO / "runs") -> RunResult | None:
    """The saved run (its logits on every test split) that a shipped weights file in models/ came from, found by
    the run key in the file's metadata under runs/<profile>/results/; None where that run is not kept."""
    from safetensors import safe_open

    try:
        with safe_open(str(weights), framework="np") as f:
            metadata = f.metadata() or {}
    except (OSError, ValueError):
        return None
    if not metadata.get("model") or not metadata.get(SHIPPED_KEY):
        return None
    for folder in sorted(Path(runs_root).glob(f"*/results/{metadata['model']}-{metadata[SHIPPED_KEY]}")):
        if (folder / RESULT_FILE).is_file():
            return RunResult.load(folder)
    return None


def _warp(images: np.ndarray, matrices: np.ndarray) -> np.ndarray:
    size = (IMAGE_SIZE, IMAGE_SIZE)
    return np.stack(
        [
            cv2.warpAffine(face, m, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
            for face, m in zip(images, matrices)
        ]
    ).reshape(images.shape)


def perturb(images: np.ndarray, change: str, amount: float, seed: int = 0) -> np.ndarray:
    """New faces (N,48,48) uint8: the faces with one change of `SWEEPS` (or `UNCHANGED`) at one amount.

    Shifts and rotations draw each face's direction from `seed`, so the same call gives the same faces."""
    images = _check_faces(images)
    if change == UNCHANGED:
        return images.copy()
    if change not in SWEEPS:
        raise ValueError(f"unknown change {change!r}; choose one of {[UNCHANGED, *SWEEPS]}")
    rng = np.random.default_rng(seed)
    centre = ((IMAGE_SIZE - 1) / 2, (IMAGE_SIZE - 1) / 2)
    n = len(images)
    if change == "shift":
        angle = rng.uniform(0, 2 * np.pi, n)
        matrices = np.zeros((n, 2, 3))
        matrices[:, 0, 0] = matrices[:, 1, 1] = 1
        matrices[:, 0, 2], matrices[:, 1, 2] = amount * np.cos(angle), amount * np.sin(angle)
        return _warp(images, matrices)
    if change == "scale":
        return _warp(images, np.repeat(cv2.getRotationMatrix2D(centre, 0, amount)[None], n, axis=0))
    if change == "rotate":
        signs = rng.choice((-1.0, 1.0), n)
        return _warp(images, np.stack([cv2.getRotationMatrix2D(centre, amount * s, 1.0) for s in signs]))
    pixels = images.astype(np.float64)
    if change == "brightness":
        out = pixels + amount
    elif change == "contrast":
        mean = pixels.mean(axis=(1, 2), keepdims=True)
        out = mean + (pixels - mean) * amount
    else:  # blur
        out = np.stack([cv2.GaussianBlur(f, (0, 0), amount, borderType=cv2.BORDER_REPLICATE) for f in pixels])
    return np.clip(np.round(out), 0, 255).astype(np.uint8).reshape(images.shape)


def perturbed_logits(
    logits: Logits, images: np.ndarray, sweeps: Mapping[str, tuple[float, ...]] = SWEEPS, seed: int = 0
) -> dict[tuple[str, float], np.ndarray]:
    """The model's logits of the unchanged faces, key (`UNCHANGED`, 0), and of every change and amount of sweeps,
    all scored in one call of the model."""
    changes = [(UNCHANGED, 0.0)] + [(change, float(a)) for change, amounts in sweeps.items() for a in amounts]
    faces = np.concatenate([perturb(images, change, amount, seed) for change, amount in changes])
    scores = np.asarray(logits(faces))
    return dict(zip(changes, np.split(scores, len(changes))))


def sweep_table(
    logits_by_change: Mapping[tuple[str, float], np.ndarray], labels: np.ndarray, temperature: float = 1.0
) -> pd.DataFrame:
    """One row per change and amount: accuracy with its 95% bootstrap interval, the drop in points against the
    unchanged faces with its paired interval, the mean top probability (at this temperature) and its excess over
    the accuracy, and the class predicted most often with its share of the faces."""
    labels = np.asarray(labels)
    base = logits_by_change[(UNCHANGED, 0.0)].argmax(axis=1)
    rows = []
    for (change, amount), scores in logits_by_change.items():
        preds = scores.argmax(axis=1)
        accuracy = float((preds == labels).mean())
        low, high = bootstrap_ci(labels, preds)
        drop_low, drop_high = bootstrap_ci(labels, base, minus=preds)
        confidence = float(softmax(scores, temperature).max(axis=1).mean())
        counts = np.bincount(preds, minlength=NUM_CLASSES)
        rows.append(
            {
                "change": change,
                "amount": amount,
                "accuracy": accuracy,
                "accuracy_low": low,
                "accuracy_high": high,
                "drop_points": 100 * (float((base == labels).mean()) - accuracy),
                "drop_low": 100 * drop_low,
                "drop_high": 100 * drop_high,
                "confidence": confidence,
                "overconfidence": confidence - accuracy,
                "top_class": CLASS_NAMES[int(counts.argmax())],
                "top_share": float(counts.max() / len(preds)),
            }
        )
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------------------------- class priors
def class_prior(labels: np.ndarray, num_classes: int = NUM_CLASSES) -> np.ndarray:
    """The share of each class among labels (num_classes,), in FER-2013's class order."""
    counts = np.bincount(np.asarray(labels), minlength=num_classes).astype(np.float64)
    return counts / counts.sum()


def shift_prior(probs: np.ndarray, to_prior: np.ndarray, from_prior: np.ndarray) -> np.ndarray:
    """Probabilities (N,C) moved by Bayes' rule from the class balance the model learned (from_prior) to another
    (to_prior): each multiplied by to_prior / from_prior, then each row renormalised. A uniform to_prior divides by
    the learned prior."""
    probs, to_prior, from_prior = (np.asarray(a, dtype=np.float64) for a in (probs, to_prior, from_prior))
    if probs.ndim != 2 or to_prior.shape != (probs.shape[1],) or from_prior.shape != to_prior.shape:
        raise ValueError(f"need probs (N,C) and two priors (C,): {probs.shape}, {to_prior.shape}, {from_prior.shape}")
    if (from_prior <= 0).any():
        raise ValueError("the learned prior must give every class a share above 0")
    moved = probs * (to_prior / from_prior)
    return moved / moved.sum(axis=1, keepdims=True)


def recall_table(labels: np.ndarray, preds_by_name: Mapping[str, np.ndarray]) -> pd.DataFrame:
    """Each class's recall (the accuracy on its faces) for each set of predictions, then the accuracy on all faces
    and the mean recall over the classes, each with a 95% bootstrap interval: columns name, class, value, low, high."""
    labels = np.asarray(labels)
    present = [c for c in range(NUM_CLASSES) if (labels == c).any()]
    members = np.stack([labels == c for c in present], axis=1).astype(np.float64)  # (N, classes present)
    counts = resample_counts(len(labels))
    totals = counts @ members
    rows = []
    for name, preds in preds_by_name.items():
        right = (np.asarray(preds) == labels).astype(np.float64)
        for c in present:
            value, low, high = mean_ci(right[labels == c])
            rows.append({"name": name, "class": CLASS_NAMES[c], "value": value, "low": low, "high": high})
        low, high = bootstrap_ci(labels, preds)
        rows.append({"name": name, "class": ALL_FACES, "value": right.mean(), "low": low, "high": high})
        with np.errstate(invalid="ignore", divide="ignore"):
            resampled = np.nanmean((counts @ (members * right[:, None])) / totals, axis=1)
        low, high = np.percentile(resampled, [2.5, 97.5])
        value = float(np.mean([right[labels == c].mean() for c in present]))
        rows.append({"name": name, "class": MEAN_RECALL, "value": value, "low": float(low), "high": float(high)})
    return pd.DataFrame(rows)


def lfw_faces() -> np.ndarray:
    """The faces of scikit-image's bundled subset of Labeled Faces in the Wild (news photographs of public figures;
    its first 100 images are faces of 25x25 pixels, the rest are not), enlarged to (N,48,48) uint8. They carry no
    emotion labels: they show where a model's answers go, not whether they are right."""
    import skimage.data

    small = np.round(np.asarray(skimage.data.lfw_subset()[:LFW_FACES]) * 255).astype(np.uint8)
    return np.stack([cv2.resize(face, (IMAGE_SIZE, IMAGE_SIZE), interpolation=cv2.INTER_CUBIC) for face in small])


# ---------------------------------------------------------------------------------------------- detector misses
@dataclass(frozen=True)
class Scene:
    """A grey image with faces pasted into it: where each face lies (x, y, width, height) and which it is."""

    image: np.ndarray  # (H, W) uint8
    boxes: np.ndarray  # (K, 4) int
    faces: np.ndarray  # (K,) index into the faces pasted


def background(name: str, shape: tuple[int, int] = SCENE_SHAPE) -> np.ndarray:
    """One of scikit-image's bundled sample photographs as a grey image of this (height, width): scaled to cover
    it, then cut from the centre."""
    import skimage.data

    image = np.asarray(getattr(skimage.data, name)())
    if image.dtype == bool:
        image = image.astype(np.uint8) * 255
    if image.ndim == 3:
        image = cv2.cvtColor(image[..., :3].astype(np.uint8), cv2.COLOR_RGB2GRAY)
    height, width = shape
    zoom = max(height / image.shape[0], width / image.shape[1])
    size = (max(width, round(image.shape[1] * zoom)), max(height, round(image.shape[0] * zoom)))
    image = cv2.resize(image.astype(np.uint8), size, interpolation=cv2.INTER_AREA if zoom < 1 else cv2.INTER_CUBIC)
    top, left = (image.shape[0] - height) // 2, (image.shape[1] - width) // 2
    return np.ascontiguousarray(image[top : top + height, left : left + width])


def make_scenes(
    images: np.ndarray,
    n_scenes: int,
    sides: tuple[int, ...] = SCENE_SIDES,
    backgrounds: tuple[str, ...] = BACKGROUNDS,
    seed: int = 0,
) -> list[Scene]:
    """Scenes of `SCENE_SHAPE`, each with one face of every side in sides (enlarged or reduced from 48x48, pasted
    in its own cell of a grid, at a random place inside it); the faces are used in order, the backgrounds in turn
    (each mirrored on its second use, and so on)."""
    images = _check_faces(images)
    if n_scenes * len(sides) > len(images):
        raise ValueError(
            f"{n_scenes} scenes of {len(sides)} faces need {n_scenes * len(sides)} faces, got {len(images)}"
        )
    rng = np.random.default_rng(seed)
    height, width = SCENE_SHAPE
    columns = int(np.ceil(len(sides) / 2))
    cell_h, cell_w = height // 2, width // columns
    if max(sides) > min(cell_h, cell_w):
        raise ValueError(f"a face of {max(sides)} px does not fit a cell of {cell_w}x{cell_h} px")
    scenes, plain = [], {}
    for number in range(n_scenes):
        name = backgrounds[number % len(backgrounds)]
        plain.setdefault(name, background(name))
        image = plain[name] if (number // len(backgrounds)) % 2 == 0 else plain[name][:, ::-1]
        image = image.copy()
        boxes, faces = [], []
        for cell, side in enumerate(rng.permutation(np.asarray(sides))):
            index = number * len(sides) + cell
            top = (cell // columns) * cell_h + int(rng.integers(0, cell_h - side + 1))
            left = (cell % columns) * cell_w + int(rng.integers(0, cell_w - side + 1))
            interpolation = cv2.INTER_CUBIC if side > IMAGE_SIZE else cv2.INTER_AREA
            image[top : top + side, left : left + side] = cv2.resize(
                images[index], (side, side), interpolation=interpolation
            )
            boxes.append((left, top, side, side))
            faces.append(index)
        scenes.append(Scene(image=image, boxes=np.array(boxes, dtype=np.int64), faces=np.array(faces)))
    return scenes


def match_detections(scene: Scene, found: np.ndarray, min_iou: float = MATCH_IOU) -> tuple[pd.DataFrame, int]:
    """Which pasted faces a detector's boxes (K,4) found, each box used once, best overlap first: one row per face
    (face, side, found, iou, the box) and the number of boxes that found no face (false detections)."""
    found = np.asarray(found, dtype=np.int64).reshape(-1, 4)
    iou = box_iou(scene.boxes, found)
    matched = np.full(len(scene.boxes), -1)
    for flat in np.argsort(-iou, axis=None):
        face, box = np.unravel_index(flat, iou.shape)
        if iou[face, box] < min_iou:
            break
        if matched[face] < 0 and box not in matched:
            matched[face] = box
    rows = [
        {
            "face": int(scene.faces[i]),
            "side": int(scene.boxes[i, 2]),
            "found": bool(matched[i] >= 0),
            "iou": float(iou[i, matched[i]]) if matched[i] >= 0 else 0.0,
            "box": tuple(int(v) for v in found[matched[i]]) if matched[i] >= 0 else None,
        }
        for i in range(len(scene.boxes))
    ]
    return pd.DataFrame(rows), int(len(found) - (matched >= 0).sum())


def detection_table(rows: pd.DataFrame) -> pd.DataFrame:
    """Per pasted side: faces, faces found, and the share found with its 95% bootstrap interval."""
    out = []
    for side, group in rows.groupby("side"):
        share, low, high = mean_ci(group["found"].to_numpy(dtype=np.float64))
        out.append({"side": int(side), "faces": len(group), "found": int(group["found"].sum()),
                    "recall": share, "recall_low": low, "recall_high": high})  # fmt: skip
    return pd.DataFrame(out)
