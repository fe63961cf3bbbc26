"""Hand-crafted features: Histograms of Oriented Gradients (HOG) of the faces, extracted in parallel."""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

import numpy as np
from joblib import Parallel, delayed, effective_n_jobs
from skimage.feature import hog

from fer_helpers.core.files import atomic_open

# Below this many images per worker, starting worker processes costs more than it saves.
MIN_IMAGES_PER_WORKER = 2000
# The paper's HOG: 9 orientations, 8x8-pixel cells, 2x2-cell blocks (normalisation unstated: scikit-image's default).
HOG_DEFAULTS = {"orientations": 9, "pixels_per_cell": (8, 8), "cells_per_block": (2, 2), "block_norm": "L2-Hys"}


def hog_features(
    images: np.ndarray,
    *,
    orientations: int = HOG_DEFAULTS["orientations"],
    pixels_per_cell: tuple[int, int] = HOG_DEFAULTS["pixels_per_cell"],
    cells_per_block: tuple[int, int] = HOG_DEFAULTS["cells_per_block"],
    n_jobs: int = -1,
    block_norm: str = HOG_DEFAULTS["block_norm"],
) -> np.ndarray:
    """HOG descriptor of each face (N,48,48) uint8, pixels scaled to [0,1] first: (N, D) float32."""
    images = np.asarray(images)
    if images.ndim != 3 or images.dtype != np.uint8:
        raise ValueError(f"expected uint8 images of shape (N, H, W), got {images.dtype} {images.shape}")
    params = dict(
        orientations=orientations,
        pixels_per_cell=tuple(pixels_per_cell),
        cells_per_block=tuple(cells_per_block),
        block_norm=block_norm,
    )
    n_workers = min(effective_n_jobs(n_jobs), os.cpu_count() or 1, max(1, len(images) // MIN_IMAGES_PER_WORKER))
    if n_workers == 1:
        return _hog_chunk(images, params)
    # skimage's hog holds the GIL for most of its (per-block Python) work, so processes beat threads;
    # a few chunks per worker balance the load without paying much per-task overhead.
    chunks = np.array_split(images, 4 * n_workers)
    parts = Parallel(n_jobs=n_workers)(delayed(_hog_chunk)(chunk, params) for chunk in chunks)
    return np.concatenate(parts)


def hog_dim(
    image_shape: tuple[int, int] = (48, 48),
    *,
    orientations: int = HOG_DEFAULTS["orientations"],
    pixels_per_cell: tuple[int, int] = HOG_DEFAULTS["pixels_per_cell"],
    cells_per_block: tuple[int, int] = HOG_DEFAULTS["cells_per_block"],
) -> int:
    """Length of the HOG descriptor of one image: blocks x cells per block x orientations."""
    _, blocks = hog_grid(image_shape, pixels_per_cell, cells_per_block)
    return int(np.prod(blocks) * np.prod(cells_per_block) * orientations)


def hog_grid(
    image_shape: tuple[int, int] = (48, 48),
    pixels_per_cell: tuple[int, int] = HOG_DEFAULTS["pixels_per_cell"],
    cells_per_block: tuple[int, int] = HOG_DEFAULTS["cells_per_block"],
) -> tuple[list[int], list[int]]:
    """HOG's cells and blocks along each axis of an image (rows, columns): a block slides one cell at a time."""
    cells = [size // cell for size, cell in zip(image_shape, pixels_per_cell)]
    return cells, [n - b + 1 for n, b in zip(cells, cells_per_block)]


def hog_weight_cells(
    coef: np.ndarray,
    image_shape: tuple[int, int] = (48, 48),
    orientations: int = HOG_DEFAULTS["orientations"],
    pixels_per_cell: tuple[int, int] = HOG_DEFAULTS["pixels_per_cell"],
    cells_per_block: tuple[int, int] = HOG_DEFAULTS["cells_per_block"],
) -> np.ndarray:
    """A linear classifier's weights on HOG laid back over the HOG cells: (classes, cell rows, cell columns).

    Each HOG dimension belongs to one block, one cell of that block and one orientation (scikit-image's layout:
    blocks × cells per block × orientations). Per class, the positive weights (evidence for the class) of every
    orientation and every block a cell takes part in are summed into that cell.
    """
    coef = np.atleast_2d(np.asarray(coef, dtype=np.float64))
    cells, blocks = hog_grid(image_shape, pixels_per_cell, cells_per_block)
    layout = (len(coef), *blocks, *cells_per_block, orientations)
    if coef.shape[1] != int(np.prod(layout[1:])):
        raise ValueError(f"{coef.shape[1]} weights per class do not fit HOG blocks × cells × orientations {layout[1:]}")
    weights = np.clip(coef, 0, None).reshape(layout).sum(axis=-1)
    grid = np.zeros((len(coef), *cells))
    for i in range(cells_per_block[0]):
        for j in range(cells_per_block[1]):
            grid[:, i : i + blocks[0], j : j + blocks[1]] += weights[:, :, :, i, j]
    return grid


def cached_hog_features(
    images: np.ndarray, data_sha256: str, run_root: str | Path, *, n_jobs: int = -1, **hog_params
) -> tuple[np.ndarray, float]:
    """HOG features of the images, computed once and kept in run_root/features/; also the seconds extraction took."""
    unknown = set(hog_params) - set(HOG_DEFAULTS)
    if unknown:
        raise ValueError(f"unknown HOG parameter(s) {sorted(unknown)}; known: {sorted(HOG_DEFAULTS)}")
    hog_params = {**HOG_DEFAULTS, **hog_params}
    images = np.ascontiguousarray(images)
    # The images' own digest joins the data checksum, so a subsample never reuses the full set's features.
    blob = json.dumps(
        {
            "data": data_sha256,
            "images": hashlib.sha256(images).hexdigest(),
            "shape": images.shape,
            "hog": {k: list(v) if isinstance(v, tuple) else v for k, v in sorted(hog_params.items())},
        },
        sort_keys=True,
    )
    path = Path(run_root) / "features" / f"hog-{hashlib.sha256(blob.encode()).hexdigest()[:16]}.npz"
    if path.exists():
        with np.load(path) as cached:
            return cached["features"], float(cached["seconds"])
    start = time.perf_counter()
    features = hog_features(images, n_jobs=n_jobs, **hog_params)
    seconds = time.perf_counter() - start
    with atomic_open(path) as f:  # a concurrent reader sees the whole file or none
        np.savez(f, features=features, seconds=seconds)
    return features, seconds


def _hog_chunk(images: np.ndarray, params: dict) -> np.ndarray:
    dim = hog_dim(
        images.shape[1:],
        orientations=params["orientations"],
        pixels_per_cell=params["pixels_per_cell"],
        cells_per_block=params["cells_per_block"],
    )
    out = np.empty((len(images), dim), dtype=np.float32)
    for i, image in enumerate(images):
        out[i] = hog(image / 255.0, feature_vector=True, **params)
    return out
