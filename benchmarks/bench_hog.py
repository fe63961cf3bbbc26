"""HOG extraction rate (images/s) on all of FER-2013, serial and in parallel, for the paper's and finer cells.

Run: FER2013_PATH=/path/to/fer2013.zip python benchmarks/bench_hog.py
"""

from __future__ import annotations

import os
import time

import numpy as np
from joblib import Parallel, delayed

from fer_helpers.data.features import hog_features
from fer_helpers.data.fer2013 import load_fer2013

CELLS = ((8, 8), (6, 6), (4, 4))  # the paper's 8x8 cells, then the finer ones of the extension


def _threaded(images: np.ndarray, n_jobs: int, **params) -> np.ndarray:
    """The same extraction with threads instead of processes: shows how much of hog holds the GIL."""
    chunks = np.array_split(images, 4 * n_jobs)
    parts = Parallel(n_jobs=n_jobs, backend="threading")(delayed(hog_features)(c, n_jobs=1, **params) for c in chunks)
    return np.concatenate(parts)


def run() -> dict:
    """Time HOG extraction of every FER-2013 face; returns {"n_images", "cores", "rows": [...]}, prints a table."""
    data = load_fer2013(os.environ.get("FER2013_PATH"))
    images = data.images
    cores = os.cpu_count() or 1
    rows = []
    for cells in CELLS:
        ways = [
            ("serial", 1, lambda cells=cells: hog_features(images, pixels_per_cell=cells, n_jobs=1)),
            (
                f"processes x{cores}",
                cores,
                lambda cells=cells: hog_features(images, pixels_per_cell=cells, n_jobs=cores),
            ),
            (f"threads x{cores}", cores, lambda cells=cells: _threaded(images, cores, pixels_per_cell=cells)),
        ]
        for how, workers, extract in ways:
            start = time.perf_counter()
            features = extract()
            seconds = time.perf_counter() - start
            rows.append(
                {
                    "pixels_per_cell": f"{cells[0]}x{cells[1]}",
                    "dims": features.shape[1],
                    "how": how,
                    "workers": workers,
                    "seconds": seconds,
                    "images_per_second": len(images) / seconds,
                }
            )
    print(f"HOG on {len(images):,} FER-2013 faces, {cores} cores, load average {os.getloadavg()[0]:.1f}")
    print(f"{'cells':>6} {'dims':>5} {'how':<14} {'seconds':>8} {'images/s':>9}")
    for row in rows:
        print(
            f"{row['pixels_per_cell']:>6} {row['dims']:>5} {row['how']:<14} {row['seconds']:8.1f} "
            f"{row['images_per_second']:9.0f}"
        )
    return {"n_images": len(images), "cores": cores, "rows": rows}


if __name__ == "__main__":
    run()
