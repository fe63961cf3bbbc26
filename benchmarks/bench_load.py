"""How long loading all of FER-2013 takes: cold (empty cache) and cached. Targets: <= 5 s cold, <= 0.5 s cached.

Wall-clock seconds are the target's measure; CPU seconds (all threads of this process) are shown beside them
because on a shared machine they vary less than wall-clock time.
Usage: FER2013_PATH=path/to/fer2013.zip python benchmarks/bench_load.py
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

from fer_helpers.data.fer2013 import load_fer2013

REPEATS = 3


def _timed_load(path: Path, cache_dir: Path) -> tuple[float, float, int]:
    start, start_cpu = time.perf_counter(), time.process_time()
    data = load_fer2013(path, cache_dir=cache_dir)
    return time.perf_counter() - start, time.process_time() - start_cpu, len(data)


def run(path: str | os.PathLike | None = None, repeats: int = REPEATS) -> dict:
    """Seconds per cold and per cached load of the data at path (default FER2013_PATH), `repeats` times each."""
    path = Path(path or os.environ["FER2013_PATH"])
    cold, cached = [], []
    for _ in range(repeats):
        with tempfile.TemporaryDirectory() as cache_dir:
            *seconds, n_images = _timed_load(path, Path(cache_dir))
            cold.append(seconds)
    with tempfile.TemporaryDirectory() as cache_dir:
        _timed_load(path, Path(cache_dir))
        for _ in range(repeats):
            cached.append(_timed_load(path, Path(cache_dir))[:2])
    return {
        "path": str(path),
        "n_images": n_images,
        "cpu_count": os.cpu_count(),
        "cold_seconds": [wall for wall, _ in cold],
        "cold_cpu_seconds": [cpu for _, cpu in cold],
        "cached_seconds": [wall for wall, _ in cached],
        "cached_cpu_seconds": [cpu for _, cpu in cached],
    }


def main() -> None:
    if not os.environ.get("FER2013_PATH"):
        sys.exit("set FER2013_PATH to FER-2013 (e.g. the Kaggle fer2013.zip) to run this benchmark")
    result = run()
    print(f"{result['path']}: {result['n_images']} images, {result['cpu_count']} CPUs")
    runs = len(result["cold_seconds"])
    print(f"{'load':<12}" + "".join(f"{f'run {k + 1}':>9}" for k in range(runs)) + f"{'best':>9}")
    for name in ("cold", "cold_cpu", "cached", "cached_cpu"):
        times = result[f"{name}_seconds"]
        print(f"{name.replace('_', ' '):<12}" + "".join(f"{t:>8.2f}s" for t in times) + f"{min(times):>8.2f}s")


if __name__ == "__main__":
    main()
