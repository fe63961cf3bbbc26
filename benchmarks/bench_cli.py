"""How fast `fer-study` answers a mistake (a missing file, a folder for a file, an unknown option or profile), and
what one real prediction costs beside it. Target for the mistakes: under 1 s of wall time and 150 MB of memory.

Each command runs as its own process, as a user starts it; wall time and the process's peak resident memory
(`getrusage` of the finished child) are taken over REPEATS runs, the slowest and largest reported.
Usage: python benchmarks/bench_cli.py
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPEATS = 3
MISTAKES = {  # name: arguments, run in an empty temporary folder
    "predict_missing_file": ["predict", "astronuat.jpg"],
    "predict_empty_folder": ["predict", "."],
    "predict_unknown_option": ["predict", "photo.jpg", "--weigths", "w.safetensors"],
    "evaluate_missing_folder": ["evaluate", "my_faces"],
    "report_unknown_profile": ["report", "--profile", "clasroom"],
    "data_check_missing_file": ["data", "check", "fer2013.zip"],
}


def _measure(args: list[str], cwd: Path) -> tuple[float, float, int]:
    """Wall seconds, peak resident MB and exit status of `python -m fer_helpers args` in cwd."""
    start = time.perf_counter()
    child = subprocess.Popen(
        [sys.executable, "-m", "fer_helpers", *args], cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    return time.perf_counter() - start, usage.ru_maxrss / 1024, child.returncode


def run(repeats: int = REPEATS, predict: bool = True) -> dict:
    """Per mistake: the slowest wall time (s) and largest peak memory (MB) over repeats; then, with predict, one
    photo's prediction by the shipped model (twice)."""
    results: dict = {"repeats": repeats}
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        for name, args in MISTAKES.items():
            runs = [_measure(args, folder) for _ in range(repeats)]
            assert all(status == 2 for *_, status in runs), f"{name}: expected exit status 2, got {runs}"
            results[f"{name}_seconds"] = round(max(r[0] for r in runs), 3)
            results[f"{name}_mb"] = round(max(r[1] for r in runs), 1)
        if not predict:
            return results
        photo = _astronaut(folder / "astronaut.png")
        runs = [_measure(["predict", str(photo), "--no-cam", "--out", str(folder / "out")], folder) for _ in range(2)]
        assert all(status == 0 for *_, status in runs), f"predict: exit status {runs}"
        results["predict_one_photo_seconds"] = round(max(r[0] for r in runs), 2)
        results["predict_one_photo_mb"] = round(max(r[1] for r in runs), 1)
    return results


def _astronaut(path: Path) -> Path:
    import numpy as np
    from PIL import Image
    from skimage import data

    Image.fromarray(np.asarray(data.astronaut())).save(path)
    return path


if __name__ == "__main__":
    for key, value in run().items():
        print(f"{key:36s} {value}")
