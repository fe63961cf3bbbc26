"""Training speed against the hardware: datasheet peaks, the measured CPU rate, and the floor beside saved runs."""

from __future__ import annotations

from dataclasses import replace

import pandas as pd
import pytest

from fer_helpers.core.hardware import device_peak_flops, measure_matmul_flops
from fer_helpers.data.results import RunResult
from fer_helpers.models.networks import count_flops
from fer_helpers.models.registry import build_model
from fer_helpers.train.speed import epoch_floor_seconds, speed_table


def test_device_peaks_from_the_datasheets():
    assert device_peak_flops("NVIDIA H100 80GB HBM3") == 989e12
    assert device_peak_flops("NVIDIA H100 PCIe") == 756e12  # the PCIe card is slower than the SXM one
    assert device_peak_flops("cpu (2 threads)") is None


def test_matmul_rate_is_measured():
    rate = measure_matmul_flops(size=128, repeats=2)
    assert 1e6 < rate < 1e15


def test_speed_table_compares_throughput_with_the_floor(tmp_path):
    n_train = 28_709
    result = RunResult(
        model="baseline_cnn",
        config={"model": "baseline_cnn", "model_kwargs": {}},
        key="k",
        run_dir=tmp_path,
        data_sha256="x",
        logits={},
        labels={},
        metrics={},
        seed=0,
        params=683_527,
        images_per_second=10_000.0,
        device="NVIDIA H100 80GB HBM3",
        history=pd.DataFrame({"epoch": [1, 2], "seconds": [3.0, 3.2]}),
    )
    cpu_run = replace(result, device="cpu (2 threads)")
    table = speed_table([result, cpu_run], n_train, cpu_peak_flops=50e9)
    flops = count_flops(build_model("baseline_cnn"))
    floor = 3 * flops * n_train / 989e12
    assert table.loc[0, "floor s/epoch"] == pytest.approx(floor) == epoch_floor_seconds(flops, n_train, 989e12)
    assert table.loc[0, "train s/epoch"] == pytest.approx(2.8709)
    assert table.loc[0, "share of peak"] == pytest.approx(floor / 2.8709)
    assert table.loc[0, "wall s/epoch"] == pytest.approx(3.1)
    assert table.loc[1, "peak source"].startswith("measured")
    assert table.loc[1, "floor s/epoch"] == pytest.approx(3 * flops * n_train / 50e9)
    assert table.loc[0, "share of peak"] < 1
