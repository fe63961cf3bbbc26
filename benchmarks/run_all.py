"""Run every benchmarks/bench_*.py, print one table and write reports/benchmarks.json with the machine they ran on.

The file keeps one entry per kind of machine (its processor or GPU, core count and whether it computes bf16
natively), so that measuring on a second kind adds to the first instead of replacing it; on the same kind, the
benchmarks run now replace their earlier numbers and the others are kept. The benchmark table of docs/benchmarks.md
(between its benchmarks markers) is rewritten from the file.
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

from fer_helpers.core.files import atomic_write_text, rewrite_between
from fer_helpers.models import registry

HERE = Path(__file__).resolve().parent
OUT = HERE.parent / "reports" / "benchmarks.json"
PAGE = HERE.parent / "docs" / "benchmarks.md"  # the page whose table the file rewrites
PAGE_START, PAGE_END = "<!-- benchmarks:start -->", "<!-- benchmarks:end -->"


def machine() -> dict:
    """What the numbers were measured on."""
    import torch

    from fer_helpers.core.hardware import cpu_has_native_bf16, cpu_model

    info = {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "processor": cpu_model(),
        "bf16_native": cpu_has_native_bf16(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def machine_label(info: dict) -> str:
    """The kind of machine an entry of the file stands for: its GPU, or its processor, cores and bf16."""
    from fer_helpers.core.hardware import machine_kind

    return machine_kind(info["processor"], info["cpu_count"], info.get("bf16_native", False), info.get("gpu"))


def benchmark_table(report: dict) -> str:
    """The benchmarks page's table: CNN training and inference images/s per machine kind, model, precision and layout."""
    lines = [
        "| machine | model | train img/s, float32 | channels-first | bf16 | bf16 / float32 | "
        "inference img/s, float32 | bf16 |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    notes = []
    for label, entry in report["machines"].items():
        train = entry["results"].get("train")
        if not train:
            continue
        for model in train["models"]:
            rate = train[f"{model}_train_images_per_second"]
            bf16 = train[f"{model}_train_images_per_second_bf16"]
            lines.append(
                f"| {label} | {registry.label(model)} | {rate:,.0f} | "
                f"{train[f'{model}_train_images_per_second_channels_first']:,.0f} | {bf16:,.0f} | "
                f"{bf16 / rate:.2f} | {train[f'{model}_inference_images_per_second']:,.0f} | "
                f"{train[f'{model}_inference_images_per_second_bf16']:,.0f} |"
            )
        notes.append(
            f"{label}: measured {train.get('measured', entry['created'])[:10]}, {train['torch_threads']} threads, {train['data']} faces, "
            f"batch {train['batch_size']}"
        )
    return "\n".join(lines) + "\n\n" + "; ".join(notes) + "."


def load_module(path: Path):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main(names: list[str]) -> int:
    scripts = sorted(HERE.glob("bench_*.py"))
    if names:
        scripts = [s for s in scripts if s.stem.removeprefix("bench_") in names]
    report = json.loads(OUT.read_text(encoding="utf-8")) if OUT.exists() else {"machines": {}}
    here = machine()
    label = machine_label(here)
    results = dict(report["machines"].get(label, {}).get("results", {}))
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
        results[name]["measured"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")  # the entry's own date is its latest's
    report["machines"][label] = {
        "machine": here,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "fer2013_path_set": bool(os.environ.get("FER2013_PATH")),
        "results": results,
    }
    atomic_write_text(OUT, json.dumps(report, indent=2, default=str) + "\n")
    rewrite_between(PAGE, PAGE_START, PAGE_END, benchmark_table(report))
    print("\n| benchmark | measure | value |\n| --- | --- | --- |")
    for name, values in results.items():
        for key, value in values.items():
            if isinstance(value, (int, float)):
                print(f"| {name} | {key} | {value:,.3g} |")
    print(f"\nwritten to {OUT.relative_to(HERE.parent)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
