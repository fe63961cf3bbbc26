"""Training speed against the hardware: the floor that a model's FLOPs and a device's peak allow, beside the
throughput that saved runs measured.

A training step costs about three forward passes (`TRAIN_FLOPS_PER_FORWARD`); at a device's peak rate, a model's
forward FLOPs per face (`networks.count_flops`) give the fastest an epoch can be (`epoch_floor_seconds`). Peaks are
the datasheet bf16 figures of known GPUs (`hardware.GPU_PEAK_FLOPS`), or a matrix-multiply rate measured on the CPU at hand
(`hardware.measure_matmul_flops`).
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from fer_helpers.core.hardware import device_peak_flops
from fer_helpers.data.results import RunResult
from fer_helpers.models.networks import count_flops
from fer_helpers.models.registry import build_model

TRAIN_FLOPS_PER_FORWARD = 3  # a training step is about a forward pass plus a backward pass of twice its cost


def epoch_floor_seconds(flops_per_image: int, n_images: int, peak_flops: float) -> float:
    """The fastest a training epoch can be: training FLOPs (3x forward) of every image at the device's peak."""
    return TRAIN_FLOPS_PER_FORWARD * flops_per_image * n_images / peak_flops


def speed_table(results: Sequence[RunResult], n_train: int, cpu_peak_flops: float | None = None) -> pd.DataFrame:
    """Measured training speed of saved runs beside the floor that their FLOPs and the device's peak allow.

    The peak is the datasheet bf16 figure for a known GPU, else `cpu_peak_flops` for a CPU run (e.g. from
    `hardware.measure_matmul_flops`), else unknown (no floor).
    """
    rows = []
    for r in results:
        flops = count_flops(build_model(r.config["model"], **r.config.get("model_kwargs", {})))
        peak = device_peak_flops(r.device)
        source = "datasheet bf16"
        if peak is None and r.device.startswith("cpu") and cpu_peak_flops is not None:
            peak, source = cpu_peak_flops, "measured fp32 matmul here"
        train_epoch = n_train / r.images_per_second if r.images_per_second else float("nan")
        floor = epoch_floor_seconds(flops, n_train, peak) if peak else float("nan")
        rows.append(
            {
                "model": r.model,
                "seed": r.seed,
                "device": r.device,
                "params": r.params,
                "forward MFLOP/image": flops / 1e6,
                "train images/s": r.images_per_second,
                "train s/epoch": train_epoch,
                "wall s/epoch": float(r.history["seconds"].mean()) if r.history is not None else float("nan"),
                "peak TFLOP/s": peak / 1e12 if peak else float("nan"),
                "peak source": source if peak else "unknown",
                "floor s/epoch": floor,
                "share of peak": floor / train_epoch,
            }
        )
    return pd.DataFrame(rows)
