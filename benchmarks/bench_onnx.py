"""How fast the shipped Model B and the small shipped CNNs (its distilled student `model_b_distilled` and the
baseline CNN, where shipped) classify faces through ONNX Runtime (float32 and int8) and torch (float32), and what one
photo costs from a cold start with each ONNX file of Model B. Targets: 1,500 faces/s within one accuracy point of the shipped model, and one photo in under 1 s and
300 MB.

Faces/s: FER-2013's PrivateTest faces, batch 256, 2 threads, the median of 3 timed passes over all of them after a
warm-up batch (the uint8 -> float32 conversion included); accuracy beside each, and for the small CNNs the share of
faces on which they answer as Model B's float32 file does. Their int8 files are also timed as two sessions of one
thread each, on half the faces each at once (`onnx_int8_2x1`). Keys of their numbers start with the model's name. Cold start: `fer-study predict` on
scikit-image's astronaut saved as a PNG, each run its own process (wall time and peak resident memory from the
finished child's rusage, what /usr/bin/time -v reports), 3 runs each with the int8 file and with --float32.
Needs FER-2013 (FER2013_PATH or data/) and `fer-study export` run on models/.
Usage: python benchmarks/bench_onnx.py [--no-cold-start]
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPEATS = 3
BATCH = 256
THREADS = 2
MODEL = "model_b"
SMALL = ("model_b_distilled", "baseline_cnn")  # measured beside Model B where shipped


def _faces_per_second(logits_of, faces) -> tuple[float, list[float], object]:
    logits_of(faces[:BATCH])  # warm-up: session and kernels
    times, logits = [], None
    for _ in range(REPEATS):
        start = time.perf_counter()
        logits = logits_of(faces)
        times.append(time.perf_counter() - start)
    return len(faces) / statistics.median(times), times, logits


def _cold_start(args: list[str], cwd: Path) -> tuple[float, float, int]:
    """Wall seconds, peak resident MB (from /usr/bin/time -v: a child's own rusage would inherit this process's
    peak across fork and exec) and exit status of `python -m fer_helpers args` in cwd."""
    start = time.perf_counter()
    done = subprocess.run(
        ["/usr/bin/time", "-v", sys.executable, "-m", "fer_helpers", *args],
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    wall = time.perf_counter() - start
    peak = next(line for line in done.stderr.splitlines() if "Maximum resident set size" in line)
    return wall, int(peak.split(":")[1]) / 1024, done.returncode


def _runtimes(model: str) -> dict:
    """Each runtime of a shipped model's files, as a function from faces to logits."""
    from concurrent.futures import ThreadPoolExecutor

    import numpy as np

    from fer_helpers.core.paths import MODELS_DIR
    from fer_helpers.train.exported import ExportedModel, current_onnx
    from fer_helpers.train.inference import predict_logits
    from fer_helpers.train.weights import load_weights

    weights = MODELS_DIR / f"{model}.safetensors"
    int8, float32 = current_onnx(weights), current_onnx(weights, int8=False)
    if int8 is None or int8.precision != "int8" or float32 is None:
        raise SystemExit(f"no current float32 and int8 exports of {weights}: run `fer-study export`")
    onnx_float32, onnx_int8 = ExportedModel(float32.path, threads=THREADS), ExportedModel(int8.path, threads=THREADS)
    torch_model = load_weights(weights).float().eval()
    runtimes = {
        "onnx_float32": lambda x: onnx_float32.logits(x, batch_size=BATCH),
        "onnx_int8": lambda x: onnx_int8.logits(x, batch_size=BATCH),
        "torch_float32": lambda x: predict_logits(torch_model, x, batch_size=BATCH, bf16=False),
    }
    if model != MODEL:  # ONNX Runtime releases the GIL, so two one-thread sessions run side by side
        singles = [ExportedModel(int8.path, threads=1) for _ in range(THREADS)]
        pool = ThreadPoolExecutor(THREADS)

        def split(x):
            halves = np.array_split(np.arange(len(x)), THREADS)
            parts = pool.map(lambda pair: pair[0].logits(x[pair[1]], batch_size=BATCH), zip(singles, halves))
            return np.concatenate(list(parts))

        runtimes["onnx_int8_2x1"] = split
    return runtimes


def run(repeats: int = REPEATS, cold: bool = True) -> dict:
    """Faces/s and PrivateTest accuracy per runtime of Model B and of the small CNNs where shipped (with their
    agreement with Model B), then predict's cold start with each ONNX file (unless cold is False)."""
    import torch

    from fer_helpers.core.paths import MODELS_DIR
    from fer_helpers.data.fer2013 import find_fer2013, load_fer2013

    path = find_fer2013(os.environ.get("FER2013_PATH"))
    if path is None:
        raise SystemExit("FER-2013 not found (set FER2013_PATH)")
    faces, labels = load_fer2013(path).split("PrivateTest")
    torch.set_num_threads(THREADS)
    results: dict = {"model": MODEL, "faces": len(faces), "batch": BATCH, "threads": THREADS, "repeats": repeats}
    models = [MODEL] + [model for model in SMALL if (MODELS_DIR / f"{model}.safetensors").is_file()]
    reference = None
    for model in models:
        prefix = "" if model == MODEL else f"{model}_"
        for name, logits_of in _runtimes(model).items():
            rate, times, logits = _faces_per_second(logits_of, faces)
            results[f"{prefix}{name}_faces_per_second"] = round(rate, 1)
            results[f"{prefix}{name}_pass_seconds"] = [round(t, 2) for t in times]
            results[f"{prefix}{name}_accuracy"] = round(float((logits.argmax(axis=1) == labels).mean()), 4)
            if model == MODEL and name == "onnx_float32":
                reference = logits.argmax(axis=1)
            elif model != MODEL:
                results[f"{prefix}{name}_agreement"] = round(float((logits.argmax(axis=1) == reference).mean()), 4)
    return results | (cold_start(repeats) if cold else {})


def cold_start(repeats: int = REPEATS) -> dict:
    """`fer-study predict` on one photo from a cold start, with the int8 file and with --float32: wall seconds and
    peak MB of each run."""
    results: dict = {}
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        photo = folder / "astronaut.png"
        from PIL import Image
        from skimage import data

        Image.fromarray(data.astronaut()).save(photo)
        for name, extra in (("int8", []), ("float32", ["--float32"])):
            runs = [
                _cold_start(["predict", str(photo), "--out", str(folder / "out"), *extra], folder)
                for _ in range(repeats)
            ]
            assert all(status == 0 for *_, status in runs), f"predict {name}: exit status {runs}"
            results[f"predict_cold_{name}_seconds"] = [round(r[0], 2) for r in runs]
            results[f"predict_cold_{name}_mb"] = [round(r[1], 1) for r in runs]
    return results


if __name__ == "__main__":
    for key, value in run(cold="--no-cold-start" not in sys.argv).items():
        print(f"{key:36s} {value}")
