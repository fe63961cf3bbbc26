"""Synthetic 48x48 faces whose seven expressions are drawn from facial action units (the embedded default data).

Each face is drawn in a canonical, upright frame laid out like FER-2013's roughly aligned faces (eyes near row 18,
mouth near row 37), then moved by a small random pose (shift, scale, aspect, in-plane rotation) onto a cluttered
background, lit, blurred and made noisy. An expression is a set of action units (brows raised or lowered, eyes
widened or narrowed, lip corners up or down, mouth open, nose wrinkled, ...) at a random intensity on top of each
person's own resting face, so weak expressions look neutral and Fear resembles Surprise, Disgust resembles Angry.
Because the generator knows where each expression acts, every image carries the region that decides its class.

FERData.extras of the result:
- "region_masks": (7,48,48) bool, where each expression changes the canonical face (Neutral: all of them);
- "regions": face_regions(), the canonical eyes-and-brows, nose and mouth boxes;
- "decisive_masks": (N,288) uint8, each image's deciding region in its own posed frame, packed with np.packbits
  (unpack with decisive_mask(data, index) or decisive_masks(data));
- "transforms": (N,2,3) float32, the affine taking canonical (x, y, 1) to the image's (x, y) (column, row);
- "intensity": (N,) float32, how strongly each face shows its expression (0.35 to 1.2; Neutral faces have none);
- "generator": the version and arguments that the checksum covers.
"""

from __future__ import annotations

import hashlib
import json
from functools import lru_cache

import numpy as np

from fer_helpers.data.fer2013 import CLASS_NAMES, FER2013_COUNTS, IMAGE_SIZE, NUM_CLASSES, SPLITS, FERData

GENERATOR_VERSION = "1"
CENTER_X = (IMAGE_SIZE - 1) / 2  # the face's vertical midline in the canonical frame
_HALF = IMAGE_SIZE // 2
_CHUNK = 512  # images rendered at once: large enough for numpy, small enough to stay in cache

# Canonical regions as (first row, last row, first column, last column), inclusive, on the 48x48 frame.
# They follow the mean FER-2013 face: eyes centred near row 17.5, nose tip near row 28, mouth near row 37.5.
REGION_BOXES: dict[str, tuple[int, int, int, int]] = {
    "eyes": (8, 21, 4, 43),  # eyes and brows
    "nose": (22, 31, 16, 31),
    "mouth": (32, 44, 11, 36),
}

# Action units, in pixels of the canonical frame where they move something (FACS numbers in brackets).
ACTION_UNITS: dict[str, str] = {
    "brow_raise": "both brows up (+, AU1+2) or down (-, AU4)",
    "inner_brow_raise": "inner brow ends up (+, AU1) or down into a V (-, AU4)",
    "brow_knit": "inner brow ends drawn together, with vertical frown lines (AU4)",
    "upper_lid": "upper lid raised to widen the eye (+, AU5) or lowered (-, AU7/43)",
    "lower_lid": "lower lid raised, narrowing the eye from below (AU6/7)",
    "cheek_raise": "cheeks lifted, furrow under the eye and crow's feet (AU6)",
    "nose_wrinkle": "creases across the nose, nostrils lifted (AU9)",
    "upper_lip_raise": "upper lip lifted, showing the upper teeth (AU10)",
    "lip_corner": "lip corners up (+, AU12) or down (-, AU15)",
    "lip_stretch": "mouth wider (+, AU20) or narrower and rounder (-, AU18/22)",
    "lip_press": "lips pressed thin (AU24)",
    "chin_raise": "lower lip pushed up, chin bunched (AU17)",
    "jaw_drop": "mouth opened (AU25/26/27)",
}

# Each expression at full intensity. A face adds intensity * prototype to its own resting face.
EXPRESSIONS: dict[str, dict[str, float]] = {
    "Angry": {
        "brow_raise": -1.6,
        "inner_brow_raise": -1.2,
        "brow_knit": 1.6,
        "upper_lid": -0.45,
        "lower_lid": 0.6,
        "lip_corner": -0.4,
        "lip_stretch": -1.6,
        "lip_press": 1.0,
        "chin_raise": 0.6,
        "nose_wrinkle": 0.2,
    },
    "Disgust": {
        "brow_raise": -1.1,
        "inner_brow_raise": -0.5,
        "brow_knit": 0.7,
        "upper_lid": -0.3,
        "lower_lid": 0.6,
        "cheek_raise": 0.4,
        "nose_wrinkle": 1.0,
        "upper_lip_raise": 1.6,
        "lip_corner": -0.9,
        "jaw_drop": 0.4,
    },
    "Fear": {
        "brow_raise": 1.6,
        "inner_brow_raise": 1.4,
        "brow_knit": 1.0,
        "upper_lid": 0.8,
        "lower_lid": 0.3,
        "lip_corner": -0.4,
        "lip_stretch": 2.6,
        "jaw_drop": 2.4,
    },
    "Happy": {
        "upper_lid": -0.2,
        "lower_lid": 0.7,
        "cheek_raise": 1.0,
        "lip_corner": 2.4,
        "lip_stretch": 2.2,
        "jaw_drop": 1.3,
    },
    "Sad": {
        "inner_brow_raise": 2.0,
        "brow_knit": 0.5,
        "upper_lid": -0.45,
        "lip_corner": -1.7,
        "lip_stretch": -0.5,
        "chin_raise": 1.0,
    },
    "Surprise": {"brow_raise": 3.0, "inner_brow_raise": 0.3, "upper_lid": 0.9, "lip_stretch": -2.6, "jaw_drop": 4.6},
    "Neutral": {},
}

# How much resting faces differ between people, per action unit (standard deviation, pixels).
_PERSON_SPREAD = {
    "brow_raise": 0.5,
    "inner_brow_raise": 0.4,
    "brow_knit": 0.3,
    "upper_lid": 0.18,
    "lower_lid": 0.2,
    "cheek_raise": 0.15,
    "nose_wrinkle": 0.1,
    "upper_lip_raise": 0.15,
    "lip_corner": 0.4,
    "lip_stretch": 0.6,
    "lip_press": 0.15,
    "chin_raise": 0.15,
    "jaw_drop": 0.3,
}
# Action units that only act one way: a negative value would draw nothing sensible.
_ONE_SIDED = ("brow_knit", "cheek_raise", "nose_wrinkle", "upper_lip_raise", "lip_press", "chin_raise", "jaw_drop")


def face_regions() -> dict[str, np.ndarray]:
    """Eyes-and-brows, nose and mouth regions of the canonical 48x48 face frame, as disjoint boolean masks."""
    regions = {}
    for name, (r0, r1, c0, c1) in REGION_BOXES.items():
        mask = np.zeros((IMAGE_SIZE, IMAGE_SIZE), dtype=bool)
        mask[r0 : r1 + 1, c0 : c1 + 1] = True
        regions[name] = mask
    return regions


def make_synthetic_fer(
    n_train: int = 28709, n_public: int = 3589, n_private: int = 3589, seed: int = 0, *, imbalance: bool = True
) -> FERData:
    """Synthetic faces in FER-2013's classes, splits and (with imbalance=True) class proportions."""
    sizes = {"Training": n_train, "PublicTest": n_public, "PrivateTest": n_private}
    if any(n < 0 for n in sizes.values()):
        raise ValueError(f"split sizes must be non-negative, got {sizes}")
    rng = np.random.default_rng(seed)
    labels, usage = [], []
    for split in SPLITS:
        counts = _class_counts(sizes[split], split, imbalance)
        labels.append(rng.permutation(np.repeat(np.arange(NUM_CLASSES), counts)))
        usage.append(np.full(sizes[split], split))
    labels_all = np.concatenate(labels).astype(np.int64)
    n = len(labels_all)

    params, intensity = _sample_faces(labels_all, rng)
    inverse = _random_inverse_poses(n, rng)
    canonical_masks = region_masks()
    images = np.empty((n, IMAGE_SIZE, IMAGE_SIZE), dtype=np.uint8)
    masks = np.empty((n, IMAGE_SIZE * IMAGE_SIZE // 8), dtype=np.uint8)
    for start in range(0, n, _CHUNK):
        part = slice(start, start + _CHUNK)
        face, alpha = _render_canonical({k: v[part] for k, v in params.items()})
        images[part] = _place_in_scene(face, alpha, inverse[part], rng)
        posed = _warp_masks(canonical_masks, labels_all[part], inverse[part])
        masks[part] = np.packbits(posed.reshape(len(posed), -1), axis=1)
    arguments = {"n_train": n_train, "n_public": n_public, "n_private": n_private, "seed": seed, "imbalance": imbalance}
    key = json.dumps(
        {"generator": "fer_helpers.data.synthetic", "version": GENERATOR_VERSION, **arguments}, sort_keys=True
    )
    return FERData(
        images=images,
        labels=labels_all,
        usage=np.concatenate(usage),
        source="synthetic",
        sha256=hashlib.sha256(key.encode()).hexdigest(),
        form="synthetic",
        ids=np.array([f"synthetic:{i}" for i in range(n)]),
        extras={
            "region_masks": region_masks(),
            "regions": face_regions(),
            "per_image": ("decisive_masks", "transforms", "intensity"),  # subsampled with the images
            "decisive_masks": masks,
            "transforms": _forward_transforms(inverse),
            "intensity": intensity.astype(np.float32),
            "generator": {"version": GENERATOR_VERSION, **arguments},
        },
    )


def decisive_masks(data: FERData) -> np.ndarray:
    """Per-image region that decides the label, (N,48,48) bool, in each image's own (posed) frame."""
    packed = data.extras["decisive_masks"]
    return np.unpackbits(packed, axis=1, count=IMAGE_SIZE * IMAGE_SIZE).reshape(-1, IMAGE_SIZE, IMAGE_SIZE) > 0


def decisive_mask(data: FERData, index: int) -> np.ndarray:
    """The region that decides image `index`'s label, (48,48) bool, in the image's own (posed) frame."""
    row = data.extras["decisive_masks"][index]
    return np.unpackbits(row, count=IMAGE_SIZE * IMAGE_SIZE).reshape(IMAGE_SIZE, IMAGE_SIZE) > 0


@lru_cache(maxsize=1)
def _region_masks_cached() -> np.ndarray:
    strong = _prototype_faces(1.3)
    neutral = strong[CLASS_NAMES.index("Neutral")]
    masks = np.abs(strong - neutral) > 0.04
    masks = _dilate(masks, 2)
    masks[CLASS_NAMES.index("Neutral")] = masks.any(axis=0)  # neutral is read from where the others act
    masks.setflags(write=False)
    return masks


def region_masks() -> np.ndarray:
    """Where each expression changes the canonical face, (7,48,48) bool; Neutral is the union of the others."""
    return _region_masks_cached().copy()


def _class_counts(n: int, split: str, imbalance: bool) -> np.ndarray:
    """Images per class for a split of n, by largest remainder (FER-2013 proportions or equal)."""
    weights = np.asarray(FER2013_COUNTS[split], dtype=float) if imbalance else np.ones(NUM_CLASSES)
    raw = n * weights / weights.sum()
    counts = np.floor(raw).astype(int)
    order = np.argsort(-(raw - counts), kind="stable")
    counts[order[: n - counts.sum()]] += 1
    return counts


def _sample_faces(labels: np.ndarray, rng: np.random.Generator) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """A random person and expression intensity per label: drawing parameters (N, 2) (left, right side)."""
    n = len(labels)

    def per_face(low: float, high: float) -> np.ndarray:
        return np.repeat(rng.uniform(low, high, (n, 1)), 2, axis=1).astype(np.float32)

    prototypes = np.array([[EXPRESSIONS[c].get(au, 0.0) for au in ACTION_UNITS] for c in CLASS_NAMES])
    intensity = rng.uniform(0.35, 1.2, n)
    # Each action unit of an expression varies around the prototype: people express the same emotion differently.
    mix = rng.uniform(0.6, 1.3, (n, len(ACTION_UNITS)))
    spread = np.array([_PERSON_SPREAD[au] for au in ACTION_UNITS])
    resting = rng.normal(0.0, 1.0, (n, len(ACTION_UNITS))) * spread
    units = resting + intensity[:, None] * mix * prototypes[labels]
    sides = units[:, None, :] + rng.normal(0.0, 0.12, (n, 2, len(ACTION_UNITS)))  # slight asymmetry
    params = {au: sides[:, :, k].astype(np.float32) for k, au in enumerate(ACTION_UNITS)}
    for au in _ONE_SIDED:
        np.maximum(params[au], 0.0, out=params[au])
    params |= {
        "face_width": per_face(18.0, 21.5),
        "jaw_taper": per_face(0.05, 0.35),
        "eye_x": per_face(8.3, 9.7),
        "eye_y": per_face(17.4, 18.8),
        "eye_size": per_face(3.2, 4.0),
        "gaze_x": per_face(-0.6, 0.6),
        "gaze_y": per_face(-0.3, 0.3),
        "iris": per_face(0.05, 0.35),
        "brow_dark": per_face(0.3, 0.75),
        "brow_width": per_face(0.7, 1.3),
        "mouth_y": per_face(36.7, 38.3),
        "lip_fullness": per_face(0.6, 1.3),
        "skin": per_face(0.3, 0.85),
        "hair": per_face(0.03, 0.75),
        "has_hair": np.repeat((rng.random((n, 1)) < 0.85), 2, axis=1).astype(np.float32),
        "hairline": per_face(-4.0, 6.0),
        "hair_curve": per_face(2.0, 10.0),
        "hair_side": per_face(0.0, 3.5),
    }
    return params, np.where(labels == CLASS_NAMES.index("Neutral"), 0.0, intensity)


def _random_inverse_poses(n: int, rng: np.random.Generator) -> np.ndarray:
    """Per image the affine (2,3) taking output pixel (x, y, 1) to canonical (x, y): pose jitter inverted."""
    scale = rng.uniform(0.92, 1.18, n)
    aspect = rng.uniform(0.93, 1.07, n)
    angle = np.deg2rad(np.clip(rng.normal(0.0, 6.0, n), -15.0, 15.0))
    shift = rng.uniform(-2.5, 2.5, (n, 2))
    cos, sin = np.cos(angle), np.sin(angle)
    forward = np.empty((n, 2, 2))
    forward[:, 0, 0], forward[:, 0, 1] = cos * scale * aspect, -sin * scale / aspect
    forward[:, 1, 0], forward[:, 1, 1] = sin * scale * aspect, cos * scale / aspect
    linear = np.linalg.inv(forward)
    center = np.array([CENTER_X, CENTER_X])
    offset = center - np.einsum("nij,nj->ni", linear, center + shift)
    return np.concatenate([linear, offset[:, :, None]], axis=2).astype(np.float32)


def _forward_transforms(inverse: np.ndarray) -> np.ndarray:
    """Invert (N,2,3) output-to-canonical affines into canonical-to-output ones."""
    linear = np.linalg.inv(inverse[:, :, :2].astype(np.float64))
    offset = -np.einsum("nij,nj->ni", linear, inverse[:, :, 2])
    return np.concatenate([linear, offset[:, :, None]], axis=2).astype(np.float32)


# ---------------------------------------------------------------------------------------------------------
# Drawing. The face is mirror-symmetric in layout, so it is drawn as two half-frames (left, right) that share
# the distance from the midline `dx`; each half has its own action-unit values, which gives slight asymmetry.
# Shapes are anti-aliased through their distance fields: coverage = clip(0.5 - distance, 0, 1).
# ---------------------------------------------------------------------------------------------------------


def _band(rows: tuple[int, int], cols: int) -> tuple[np.ndarray, np.ndarray]:
    """Grids of midline distance dx (1, 1, 1, cols) and row y (1, 1, rows, 1) for a band of the half-frame."""
    dx = (np.arange(cols, dtype=np.float32) + 0.5)[None, None, None, :]
    y = np.arange(rows[0], rows[1], dtype=np.float32)[None, None, :, None]
    return dx, y


def _stroke(along, across, start, end, centre, slope, half_width):
    """Coverage of a curved stroke: across = centre(along) for start <= along <= end, with round ends."""
    gap = np.abs(across - centre) / np.sqrt(1.0 + slope * slope)
    beyond = np.maximum(np.maximum(start - along, along - end), 0.0)
    return np.clip(half_width + 0.5 - np.sqrt(gap * gap + beyond * beyond), 0.0, 1.0)


def _ellipse(dx, y, cx, cy, ax, ay):
    """Coverage of a filled ellipse (approximate distance field, exact enough for small shapes)."""
    px, py = (dx - cx) / ax, (y - cy) / ay
    k0 = np.sqrt(px * px + py * py)
    k1 = np.sqrt(px * px / (ax * ax) + py * py / (ay * ay)) + 1e-6
    return np.clip(0.5 - k0 * (k0 - 1.0) / k1, 0.0, 1.0)


def _blob(dx, y, cx, cy, sx, sy):
    """A soft Gaussian bump of height 1, for shading."""
    return np.exp(-0.5 * (((dx - cx) / sx) ** 2 + ((y - cy) / sy) ** 2))


def _darken(face, rows, cols, amount):
    """Multiply a band of the half-frames by (1 - amount)."""
    face[:, :, rows[0] : rows[1], :cols] *= 1.0 - amount


def _paint(face, rows, cols, coverage, value):
    """Paint `value` over a band of the half-frames with the given coverage."""
    band = face[:, :, rows[0] : rows[1], :cols]
    band += coverage * (value - band)


def _render_canonical(p: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Draw upright faces: intensity and opacity, each (n,48,48) float32 in [0,1]."""
    p = {k: v[:, :, None, None] for k, v in p.items()}
    n = len(p["skin"])
    face = np.zeros((n, 2, IMAGE_SIZE, _HALF), dtype=np.float32)
    dx, y = _band((0, IMAGE_SIZE), _HALF)

    # Head: neck, then the face oval with a tapered jaw, shaded darker towards its rim.
    skin = p["skin"]
    neck = np.clip(9.5 - dx, 0.0, 1.0) * np.clip(y - 35.0, 0.0, 1.0)
    centre_y = 24.5
    below = np.clip((y - centre_y) / 22.0, 0.0, None)
    half_w = p["face_width"] * (1.0 - p["jaw_taper"] * below * below)
    half_h = np.where(y > centre_y, 22.5 + 0.35 * p["jaw_drop"], 24.0)
    oval = _ellipse(dx, y, 0.0, centre_y, half_w, half_h)
    radius2 = (dx / half_w) ** 2 + ((y - centre_y) / half_h) ** 2
    shaded = skin * (1.0 - 0.35 * np.clip(radius2, 0.0, 1.0) ** 3)
    face += neck * 0.7 * skin
    face += oval * (shaded - face)
    alpha = np.maximum(neck, oval)

    _draw_eyes(face, p)
    _draw_brows(face, p)
    _draw_nose_and_cheeks(face, p)
    _draw_mouth(face, p)

    # Hair: above a curved hairline and down the sides above the ears, inside a head slightly larger than the face.
    head = _ellipse(dx, y, 0.0, centre_y - 1.0, p["face_width"] + p["hair_side"], 27.0)
    above_line = np.clip(p["hairline"] + p["hair_curve"] * (dx / p["face_width"]) ** 2 - y + 0.5, 0.0, 1.0)
    sides = (1.0 - oval) * np.clip(23.0 - y, 0.0, 1.0)
    hair = head * np.maximum(above_line, sides) * p["has_hair"]
    face += hair * (p["hair"] - face)
    alpha = np.maximum(alpha, hair)
    return _join_halves(face), _join_halves(alpha)


def _join_halves(halves: np.ndarray) -> np.ndarray:
    """(n,2,48,24) left/right half-frames, both indexed outward from the midline, into (n,48,48)."""
    return np.concatenate([halves[:, 0, :, ::-1], halves[:, 1]], axis=2)


def _draw_eyes(face, p):
    rows, cols = (8, 27), 17
    dx, y = _band(rows, cols)
    ex, ey, hw = p["eye_x"], p["eye_y"], p["eye_size"]
    # Sockets: a soft shadow around each eye, as on the mean FER-2013 face.
    _darken(face, rows, cols, 0.22 * _blob(dx, y, ex, ey - 0.5, 4.5, 3.0))
    t = np.clip((dx - ex) / hw, -1.0, 1.0)
    lens = 1.0 - t * t
    upper_h = np.clip(1.9 + 1.6 * p["upper_lid"], 0.25, 4.5)
    lower_h = np.clip(1.3 - 0.8 * p["lower_lid"], 0.25, 2.5)
    upper = ey - upper_h * lens
    lower = ey + lower_h * lens
    inside_x = np.clip(hw + 0.5 - np.abs(dx - ex), 0.0, 1.0)
    opening = np.clip(0.5 + np.minimum(y - upper, lower - y), 0.0, 1.0) * inside_x
    iris = _ellipse(dx, y, ex + p["gaze_x"], ey + p["gaze_y"], 1.75, 1.75)
    sclera = 0.55 + 0.4 * p["skin"]
    _paint(face, rows, cols, opening, sclera + iris * (p["iris"] - sclera))
    # Lashes along the upper lid, reaching a little beyond the outer corner; a faint lower lid.
    slope = 2.0 * upper_h * t / hw
    lid = _stroke(dx, y, ex - hw - 0.3, ex + hw + 0.8, upper, slope, 0.45)
    _darken(face, rows, cols, 0.65 * lid)
    low = _stroke(dx, y, ex - hw, ex + hw, lower + 0.3, -2.0 * lower_h * t / hw, 0.3)
    _darken(face, rows, cols, 0.2 * low)
    # Raised cheeks: a furrow under the eye and crow's feet at the outer corner.
    cheek = p["cheek_raise"]
    furrow = _stroke(dx, y, ex - hw, ex + hw, ey + lower_h * lens + 1.6, -2.0 * lower_h * t / hw, 0.4)
    _darken(face, rows, cols, 0.3 * np.clip(cheek, 0.0, 1.5) * furrow)
    for rise in (-0.8, 0.8):
        crow = _stroke(dx, y, ex + hw + 0.8, ex + hw + 3.0, ey + rise * (dx - ex - hw) * 0.6, rise * 0.6, 0.3)
        _darken(face, rows, cols, 0.3 * np.clip(cheek - 0.3, 0.0, 1.0) * crow)


def _draw_brows(face, p):
    rows, cols = (2, 20), 19
    dx, y = _band(rows, cols)
    raise_ = p["brow_raise"]
    inner_x = np.clip(4.2 - 1.3 * p["brow_knit"], 1.3, None)
    outer_x = p["eye_x"] + 5.5
    base = p["eye_y"] - 5.0 - raise_
    inner_y = base - p["inner_brow_raise"]
    outer_y = base + 0.4
    arch = 0.8 + 0.35 * np.clip(raise_ - np.clip(p["inner_brow_raise"], 0.0, None), 0.0, None)
    span = outer_x - inner_x
    t = np.clip((dx - inner_x) / span, 0.0, 1.0)
    centre = inner_y + (outer_y - inner_y) * t - 4.0 * arch * t * (1.0 - t)
    slope = ((outer_y - inner_y) - 4.0 * arch * (1.0 - 2.0 * t)) / span
    brow = _stroke(dx, y, inner_x, outer_x, centre, slope, p["brow_width"] * (1.0 - 0.45 * t))
    _darken(face, rows, cols, p["brow_dark"] * brow)
    # Knitted brows fold the skin between them into vertical lines; raised brows fold the forehead.
    frown = _stroke(y, dx, inner_y + 1.0, p["eye_y"] - 1.0, 1.3, 0.0, 0.35)
    _darken(face, rows, cols, 0.35 * np.clip(p["brow_knit"] - 0.4, 0.0, 1.0) * frown)
    for lift in (3.0, 5.2):
        line = _stroke(dx, y, 0.0, outer_x - 1.0, base - lift - 0.04 * dx * dx / 4.0, -0.02 * dx, 0.3)
        _darken(face, rows, cols, 0.15 * np.clip(raise_ - 0.8, 0.0, 2.0) * line)


def _draw_nose_and_cheeks(face, p):
    rows, cols = (18, 40), 16
    dx, y = _band(rows, cols)
    wrinkle, lip_raise = p["nose_wrinkle"], p["upper_lip_raise"]
    # Bridge sides and the tip's highlight.
    side = _stroke(y, dx, 21.0, 26.5, 2.0 + 0.15 * (y - 21.0), 0.15, 0.5)
    _darken(face, rows, cols, 0.07 * side)
    _darken(face, rows, cols, -0.08 * _blob(dx, y, 0.0, 26.5, 1.8, 2.0))
    cheek = _blob(dx, y, p["eye_x"] + 0.5, p["eye_y"] + 6.5 - 0.8 * p["cheek_raise"], 3.5, 2.5)
    _darken(face, rows, cols, -0.13 * np.clip(p["cheek_raise"], 0.0, 1.5) * cheek)
    # Nostrils lift and flare when the nose wrinkles or the upper lip rises.
    lift = 0.7 * wrinkle + 0.4 * lip_raise
    nostril = _ellipse(dx, y, 2.6 + 0.3 * wrinkle, 29.0 - lift, 1.4 + 0.2 * wrinkle, 0.8)
    _darken(face, rows, cols, 0.45 * nostril)
    for height in (23.0, 24.8):
        crease = _stroke(dx, y, 0.8, 4.2, height - 0.5 * wrinkle - 0.45 * dx, -0.45, 0.35)
        _darken(face, rows, cols, 0.4 * np.clip(wrinkle, 0.0, 1.5) * crease)
    # Nasolabial folds, from beside the nostril wings around the mouth corners, deepened by smiling and by a
    # raised upper lip.
    top = 27.5 - lift
    reach = np.clip(7.3 + 0.8 * p["lip_stretch"], 3.5, 11.5) + 1.8 + 0.2 * p["lip_corner"]
    s = np.clip((y - top) / (37.5 - top), 0.0, 1.0)
    fold_x = 4.6 + (reach - 4.6) * (2.0 * s - s * s)
    fold = _stroke(y, dx, top, 37.0, fold_x, (reach - 4.6) * (2.0 - 2.0 * s) / (37.5 - top), 0.4)
    depth = 0.05 + 0.15 * np.clip(p["cheek_raise"], 0.0, 1.5) + 0.12 * lip_raise
    _darken(face, rows, cols, np.clip(depth, 0.0, 0.35) * fold)


def _draw_mouth(face, p):
    rows, cols = (28, 48), 16
    dx, y = _band(rows, cols)
    half_w = np.clip(7.3 + 0.8 * p["lip_stretch"], 3.5, 11.5)
    t = dx / half_w
    t2 = np.clip(t * t, 0.0, 1.0)
    round_ = np.sqrt(1.0 - t2)
    corner, lip_raise, jaw, chin = p["lip_corner"], p["upper_lip_raise"], p["jaw_drop"], p["chin_raise"]
    seam = p["mouth_y"] - corner * t2 - 0.5 * chin * round_
    upper = seam - 0.3 * jaw * round_ - 0.8 * lip_raise * np.sqrt(round_)
    lower = seam + 0.7 * jaw * round_
    inside_x = np.clip(half_w + 0.5 - dx, 0.0, 1.0)
    opening = np.clip(0.5 + np.minimum(y - upper, lower - y), 0.0, 1.0) * inside_x
    teeth_h = np.clip(0.5 * corner + 0.8 * lip_raise + 0.25 * p["lip_stretch"], 0.0, 2.0)
    teeth = np.clip(upper + teeth_h - y + 0.5, 0.0, 1.0)
    _paint(face, rows, cols, opening, 0.12 + 0.63 * teeth)
    # Lips: a darker upper lip, a lighter lower lip with a shadow beneath; pressing thins both.
    press = np.clip(p["lip_press"], 0.0, 1.0)
    upper_th = p["lip_fullness"] * (1.6 - 1.3 * press)
    lower_th = p["lip_fullness"] * (2.0 - 1.6 * press) + 0.5 * chin
    upper_lip = np.clip(0.5 + np.minimum(y - upper + upper_th, upper - y), 0.0, 1.0) * inside_x
    _darken(face, rows, cols, 0.2 * upper_lip)
    lower_lip = np.clip(0.5 + np.minimum(y - lower, lower + lower_th - y), 0.0, 1.0) * inside_x
    _darken(face, rows, cols, -0.06 * lower_lip)
    slope = -2.0 * corner * t / half_w
    shadow = _stroke(dx, y, 0.0, 0.75 * half_w, lower + lower_th + 0.7, slope, 0.5)
    _darken(face, rows, cols, (0.15 + 0.2 * chin) * shadow)
    seam_line = _stroke(dx, y, 0.0, half_w + 0.3, 0.5 * (upper + lower), slope, 0.45)
    _darken(face, rows, cols, (0.45 + 0.3 * press) * seam_line)


# ---------------------------------------------------------------------------------------------------------
# The scene: pose, background clutter, lighting, contrast, blur and noise, in the output frame.
# ---------------------------------------------------------------------------------------------------------


def _output_grid() -> tuple[np.ndarray, np.ndarray]:
    coords = np.arange(IMAGE_SIZE, dtype=np.float32)
    return coords[None, None, :], coords[None, :, None]


def _canonical_coordinates(inverse: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Where each output pixel comes from in the canonical frame: columns u and rows v, each (n,48,48)."""
    x, y = _output_grid()
    u = inverse[:, 0, 0, None, None] * x + inverse[:, 0, 1, None, None] * y + inverse[:, 0, 2, None, None]
    v = inverse[:, 1, 0, None, None] * x + inverse[:, 1, 1, None, None] * y + inverse[:, 1, 2, None, None]
    return u, v


def _place_in_scene(face, alpha, inverse, rng):
    """Pose the canonical faces onto cluttered backgrounds and degrade them like photographs: uint8 images."""
    n = len(face)
    u, v = _canonical_coordinates(inverse)
    # Bilinear sampling of premultiplied intensity and opacity together, as one complex array with a clear rim.
    size = IMAGE_SIZE + 2
    layer = np.zeros((n, size, size), dtype=np.complex64)
    layer.real[:, 1:-1, 1:-1] = face * alpha
    layer.imag[:, 1:-1, 1:-1] = alpha
    u = np.clip(u + 1.0, 0.0, size - 1.001)
    v = np.clip(v + 1.0, 0.0, size - 1.001)
    u0, v0 = np.floor(u), np.floor(v)
    fu, fv = u - u0, v - v0
    first = (np.arange(n, dtype=np.int32) * size * size)[:, None, None]
    index = first + v0.astype(np.int32) * size + u0.astype(np.int32)
    flat = layer.reshape(-1)
    corner = [np.take(flat, index + step) for step in (0, 1, size, size + 1)]
    top = corner[0] + fu * (corner[1] - corner[0])
    bottom = corner[2] + fu * (corner[3] - corner[2])
    sampled = top + fv * (bottom - top)

    image = sampled.real + (1.0 - sampled.imag) * _backgrounds(n, rng)
    x, y = _output_grid()
    # Light falling from one side, then a camera's contrast, softness and sensor noise.
    light = rng.normal(0.0, 0.012, (n, 2, 1, 1)).astype(np.float32)
    image *= 1.0 + light[:, 0] * (x - CENTER_X) + light[:, 1] * (y - CENTER_X)
    mean = image.mean(axis=(1, 2), keepdims=True)
    contrast = rng.uniform(0.6, 1.3, (n, 1, 1)).astype(np.float32)
    image = mean + contrast * (image - mean) + rng.normal(0.0, 0.06, (n, 1, 1)).astype(np.float32)
    softness = rng.uniform(0.0, 0.8, (n, 1, 1)).astype(np.float32)
    image += softness * (_blur3(image) - image)
    noise = rng.uniform(0.005, 0.03, (n, 1, 1)).astype(np.float32)
    image += noise * rng.standard_normal(image.shape, dtype=np.float32)
    return np.clip(np.rint(image * 255.0), 0, 255).astype(np.uint8)


def _backgrounds(n, rng):
    """Cluttered backgrounds: a base grey, coarse and fine smooth patterns and a few hard edges."""
    coarse = _upsample(rng.normal(0.0, 0.15, (n, 4, 4)).astype(np.float32))
    fine = _upsample(rng.normal(0.0, 0.08, (n, 12, 12)).astype(np.float32))
    background = rng.uniform(0.1, 0.9, (n, 1, 1)).astype(np.float32) + coarse + fine
    x, y = _output_grid()
    for _ in range(2):
        angle = rng.uniform(0.0, 2.0 * np.pi, (n, 1, 1)).astype(np.float32)
        offset = rng.uniform(-30.0, 30.0, (n, 1, 1)).astype(np.float32)
        step = rng.normal(0.0, 0.15, (n, 1, 1)).astype(np.float32)
        distance = np.cos(angle) * (x - CENTER_X) + np.sin(angle) * (y - CENTER_X) - offset
        background += step * np.clip(distance + 0.5, 0.0, 1.0)
    return background


@lru_cache(maxsize=4)
def _interpolation_matrix(cells: int) -> np.ndarray:
    """(48, cells) matrix that linearly interpolates `cells` values spread over the frame to 48 pixels."""
    positions = np.linspace(0.0, cells - 1.0, IMAGE_SIZE)
    lower = np.minimum(np.floor(positions).astype(int), cells - 2)
    frac = positions - lower
    matrix = np.zeros((IMAGE_SIZE, cells), dtype=np.float32)
    matrix[np.arange(IMAGE_SIZE), lower] = 1.0 - frac
    matrix[np.arange(IMAGE_SIZE), lower + 1] = frac
    return matrix


def _upsample(grid: np.ndarray) -> np.ndarray:
    matrix = _interpolation_matrix(grid.shape[-1])
    return matrix @ grid @ matrix.T


def _blur3(image: np.ndarray) -> np.ndarray:
    """Separable [1, 2, 1] / 4 blur with edge padding."""
    padded = np.pad(image, ((0, 0), (1, 1), (0, 0)), mode="edge")
    image = 0.25 * (padded[:, :-2] + 2.0 * padded[:, 1:-1] + padded[:, 2:])
    padded = np.pad(image, ((0, 0), (0, 0), (1, 1)), mode="edge")
    return 0.25 * (padded[:, :, :-2] + 2.0 * padded[:, :, 1:-1] + padded[:, :, 2:])


# ---------------------------------------------------------------------------------------------------------
# Deciding regions.
# ---------------------------------------------------------------------------------------------------------


def _prototype_faces(intensity: float) -> np.ndarray:
    """The average person showing each expression at the given intensity, upright: (7,48,48) float32."""

    def constant(value: float) -> np.ndarray:
        return np.full((NUM_CLASSES, 2), value, dtype=np.float32)

    params = {au: constant(0.0) for au in ACTION_UNITS}
    for k, name in enumerate(CLASS_NAMES):
        for au, value in EXPRESSIONS[name].items():
            params[au][k] = intensity * value
    params |= {
        "face_width": constant(19.7),
        "jaw_taper": constant(0.2),
        "eye_x": constant(9.0),
        "eye_y": constant(18.1),
        "eye_size": constant(3.6),
        "gaze_x": constant(0.0),
        "gaze_y": constant(0.0),
        "iris": constant(0.2),
        "brow_dark": constant(0.5),
        "brow_width": constant(1.0),
        "mouth_y": constant(37.5),
        "lip_fullness": constant(1.0),
        "skin": constant(0.6),
        "hair": constant(0.3),
        "has_hair": constant(0.0),
        "hairline": constant(4.0),
        "hair_curve": constant(6.0),
        "hair_side": constant(1.5),
    }
    face, _ = _render_canonical(params)
    return face


def _dilate(masks: np.ndarray, steps: int) -> np.ndarray:
    """Grow boolean masks (..., 48, 48) by `steps` pixels (8-neighbourhood)."""
    for _ in range(steps):
        grown = masks.copy()
        grown[..., 1:, :] |= masks[..., :-1, :]
        grown[..., :-1, :] |= masks[..., 1:, :]
        masks = grown.copy()
        grown[..., :, 1:] |= masks[..., :, :-1]
        grown[..., :, :-1] |= masks[..., :, 1:]
        masks = grown
    return masks


def _warp_masks(canonical: np.ndarray, labels: np.ndarray, inverse: np.ndarray) -> np.ndarray:
    """Each label's canonical mask (from (7,48,48)) moved into its image's posed frame, nearest neighbour."""
    u, v = _canonical_coordinates(inverse)
    col, row = np.rint(u).astype(np.int32), np.rint(v).astype(np.int32)
    inside = (col >= 0) & (col < IMAGE_SIZE) & (row >= 0) & (row < IMAGE_SIZE)
    pixel = np.clip(row, 0, IMAGE_SIZE - 1) * IMAGE_SIZE + np.clip(col, 0, IMAGE_SIZE - 1)
    index = labels[:, None, None].astype(np.int32) * (IMAGE_SIZE * IMAGE_SIZE) + pixel
    return np.take(canonical.reshape(-1), index) & inside
