"""Run every benchmarks/bench_*.py, print one table and write reports/benchmarks.json with the machine they ran on.

Usage: python benchmarks/run_all.py [load hog train ...]   (default: all). Real-data benchmarks read FER2013_PATH.
"""

from __future__ import annotations

import importlib.util
import json
import os
import platform
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
OUT = HERE.parent / "reports" / "benchmarks.json"


def machine() -> dict:
    """What the numbers were measured on."""
    import torch

    info = {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "processor": platform.processor() or platform.machine(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def load_module(path: Path):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main(names: list[str]) -> int:
    scripts = sorted(HERE.glob("bench_*.py"))
    if names:
        scripts = [s for s in scripts if s.stem.removeprefix("bench_") in names]
    previous = json.loads(OUT.read_text()) if OUT.exists() else {}
    results = dict(previous.get("results", {}))
    for script in scripts:
        name = script.stem.removeprefix("bench_")
        print(f"== {name} ==", flush=True)
        start = time.perf_counter()
        try:
            results[name] = load_module(script).run()
        except SystemExit as stop:  # a benchmark that needs data it cannot find says so and is skipped
            print(f"   skipped: {stop}")
            continue
        results[name]["wall_seconds"] = round(time.perf_counter() - start, 2)
    report = {
        "machine": machine(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "fer2013_path_set": bool(os.environ.get("FER2013_PATH")),
        "results": results,
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(report, indent=2, default=str) + "\n")
    print("\n| benchmark | measure | value |\n| --- | --- | --- |")
    for name, values in results.items():
        for key, value in values.items():
            if isinstance(value, (int, float)):
                print(f"| {name} | {key} | {value:,.3g} |")
    print(f"\nwritten to {OUT.relative_to(HERE.parent)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
