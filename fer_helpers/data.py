"""FER-2013 loading, validation and caching (Kaggle zip/folder, fer2013.csv, torchvision CSVs)."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

CLASS_NAMES: tuple[str, ...] = ("Angry", "Disgust", "Fear", "Happy", "Sad", "Surprise", "Neutral")
NUM_CLASSES = len(CLASS_NAMES)
SPLITS: tuple[str, ...] = ("Training", "PublicTest", "PrivateTest")
IMAGE_SIZE = 48
# The paper's (and FER-2013's) counts per class, Training / PublicTest / PrivateTest.
FER2013_COUNTS = {
    "Training": (3995, 436, 4097, 7215, 4830, 3171, 4965),
    "PublicTest": (467, 56, 496, 895, 653, 415, 607),
    "PrivateTest": (491, 55, 528, 879, 594, 416, 626),
}


class FERDataError(ValueError):
    """Bad or missing FER-2013 input; the message names the file and the row or entry."""


@dataclass(frozen=True, eq=False)
class FERData:
    """Faces with their labels and split: images (N,48,48) uint8, labels (N,) int64, usage (N,) str."""

    images: np.ndarray
    labels: np.ndarray
    usage: np.ndarray
    source: str  # the path it was read from, or "synthetic"
    sha256: str  # checksum of the source file(s); the cache and run keys use it
    form: str  # "kaggle-zip", "kaggle-folder", "fer2013-csv", "icml-csv", "torchvision-csv", "synthetic"
    ids: np.ndarray | None = None  # per-image name (file name or CSV row), for reports
    extras: dict = field(default_factory=dict)  # e.g. the synthetic generator's deciding-region masks

    @property
    def is_fer2013(self) -> bool:
        return self.form != "synthetic"

    @property
    def class_names(self) -> tuple[str, ...]:
        return CLASS_NAMES

    def __len__(self) -> int:
        return len(self.labels)

    def split(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """Images and labels of one split ('Training', 'PublicTest' or 'PrivateTest')."""
        if name not in SPLITS:
            raise ValueError(f"unknown split {name!r}; choose one of {SPLITS}")
        mask = self.usage == name
        return self.images[mask], self.labels[mask]
