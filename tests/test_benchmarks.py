"""The benchmark runner's file and the table of docs/benchmarks.md it writes."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

from fer_helpers.core.files import between_markers

ROOT = Path(__file__).resolve().parents[1]


def _run_all():
    spec = importlib.util.spec_from_file_location("run_all", ROOT / "benchmarks" / "run_all.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _train(rate: float, bf16: float) -> dict:
    return {
        "data": "FER-2013",
        "torch_threads": 2,
        "batch_size": 128,
        "models": ["model_b"],
        "model_b_train_images_per_second": rate,
        "model_b_train_images_per_second_channels_first": rate / 2,
        "model_b_train_images_per_second_bf16": bf16,
        "model_b_inference_images_per_second": 10.0,
        "model_b_inference_images_per_second_bf16": 30.0,
    }


def test_machine_kinds_are_told_apart_by_processor_cores_and_bf16():
    run_all = _run_all()
    cpu = {"processor": "AMD EPYC", "cpu_count": 2, "bf16_native": True}
    assert run_all.machine_label(cpu) == "AMD EPYC, 2 cores, native bf16"
    assert run_all.machine_label(cpu | {"bf16_native": False}) == "AMD EPYC, 2 cores, emulated bf16"
    assert run_all.machine_label(cpu | {"gpu": "NVIDIA H200"}) == "NVIDIA H200"


def test_the_table_has_a_row_per_machine_and_model_with_the_bf16_ratio():
    run_all = _run_all()
    report = {
        "machines": {
            "slow": {"created": "2026-12-01T10:00:00", "results": {"train": _train(100.0, 10.0)}},
            "fast": {"created": "2026-12-02T10:00:00", "results": {"train": _train(160.0, 320.0)}},
            "hog only": {"created": "2026-12-02T10:00:00", "results": {"hog": {}}},
        }
    }
    rows = [
        line for line in run_all.benchmark_table(report).splitlines() if line.startswith("| slow") or "fast" in line
    ]
    assert rows[0] == "| slow | Model B | 100 | 50 | 10 | 0.10 | 10 | 30 |"
    assert rows[1] == "| fast | Model B | 160 | 80 | 320 | 2.00 | 10 | 30 |"
    assert "hog only" not in run_all.benchmark_table(report)


def test_the_page_table_is_the_one_the_committed_benchmarks_give():
    run_all = _run_all()
    text = run_all.PAGE.read_text(encoding="utf-8")
    bounds = between_markers(text, run_all.PAGE_START, run_all.PAGE_END)
    assert bounds is not None
    report = json.loads(run_all.OUT.read_text())
    assert text[bounds[0] : bounds[1]].strip() == run_all.benchmark_table(report).strip()


def test_the_command_line_benchmark_measures_every_mistake_as_answered_with_status_2():
    run_all = _run_all()
    bench_cli = run_all.load_module(ROOT / "benchmarks" / "bench_cli.py")
    results = bench_cli.run(repeats=1, predict=False)
    for name in bench_cli.MISTAKES:
        assert results[f"{name}_seconds"] > 0 and results[f"{name}_mb"] > 0
    assert "predict_one_photo_seconds" not in results
