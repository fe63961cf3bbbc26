"""How long a plan's runs take on a machine, before any is started.

A run's time (`estimate_seconds`) is its training FLOPs (3x the forward FLOPs per training image, 1x per evaluated
image, from `networks.count_flops`) over the rate one job gets, or its steps times the host time of one step
(`STEP_SECONDS`: small nets are launch-bound on a GPU), whichever is longer, plus a fixed start-up and evaluation
overhead (`OVERHEAD_SECONDS`). The rate is measured wherever a measurement exists (`measured_rates`): saved runs of
the same model trained on the same kind of machine (each run records its `hardware.machine_kind`), else
`make bench`'s entry for this kind of machine in reports/benchmarks.json at the precision "auto" trains in here.
Only without either does it fall back on the device's peak times `SOLO_EFFICIENCY` for one job, growing with the
number of jobs up to `MAX_EFFICIENCY` in all (on a CPU, jobs share the cores and the total does not grow):
assumptions for networks this small (48x48 faces, batch 128), stated here to be replaced by the first measurement.
`simulate` lays the runs out on the jobs' slots, and `format_plan` prints the plan with each run's estimate."""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fer_helpers.core.hardware import GPU_PEAK_FLOPS, device_peak_flops
from fer_helpers.core.paths import REPO
from fer_helpers.data.results import RESULT_FILE
from fer_helpers.train.plan import PlannedRun
from fer_helpers.train.speed import TRAIN_FLOPS_PER_FORWARD

SOLO_EFFICIENCY = 0.05  # share of the bf16 rate one small-CNN training job reaches alone (assumed, see above)


MAX_EFFICIENCY = 0.20  # share all concurrent jobs reach together (assumed)


OVERHEAD_SECONDS = {"cuda": 30.0, "cpu": 10.0}  # process start, data onto the device, final evaluation, saving


# Host time per training step on a GPU (Python, Lightning, kernel launches; assumed, to be checked): a small net at
# batch 128 is launch-bound, so a run takes at least steps x this, whatever its FLOPs. On a CPU compute dominates.
STEP_SECONDS = {"cuda": 0.004, "cpu": 0.0}


BENCHMARKS = REPO / "reports" / "benchmarks.json"  # `make bench`: training images/s per kind of machine


@dataclass(frozen=True)
class Device:
    """Where a plan runs: the kind ("cuda" or "cpu"), its name (`hardware.machine_kind`), its bf16 (GPU) or
    measured float32 (CPU) FLOP rate, and whether "auto" trains in bf16 there."""

    kind: str
    name: str
    peak_flops: float
    bf16: bool = True

    @classmethod
    def here(cls) -> Device:
        import torch

        from fer_helpers.core.hardware import cpu_bf16_in_use, measure_matmul_flops, this_machine

        if torch.cuda.is_available():
            name = torch.cuda.get_device_name(0)
            return cls("cuda", name, device_peak_flops(name) or measure_matmul_flops("cuda", size=4096))
        return cls("cpu", this_machine(), measure_matmul_flops("cpu"), bf16=cpu_bf16_in_use())

    @classmethod
    def target(cls, name: str) -> Device:
        """A GPU named by `--target` (h100, h200), at its datasheet bf16 peak (`hardware.GPU_PEAK_FLOPS`)."""
        known = {gpu.lower(): gpu for gpu in GPU_PEAK_FLOPS if " " not in gpu}
        if name.lower() not in known:
            raise ValueError(f"unknown target {name!r}; choose one of {sorted(known)}")
        gpu = f"NVIDIA {known[name.lower()]}"
        return cls("cuda", gpu, GPU_PEAK_FLOPS[known[name.lower()]])

    def job_rate(self, jobs: int) -> float:
        """Effective training FLOP/s of one of `jobs` concurrent jobs, without a measurement (see the docstring)."""
        if self.kind == "cpu":
            return self.peak_flops * SOLO_EFFICIENCY / jobs
        return self.peak_flops * min(SOLO_EFFICIENCY * jobs, MAX_EFFICIENCY) / jobs


@functools.cache
def forward_flops(model: str, model_kwargs: tuple) -> int:
    """Forward FLOPs of one face through the model with these architecture arguments."""
    from fer_helpers.models.networks import count_flops
    from fer_helpers.models.registry import build_model

    return count_flops(build_model(model, **dict(model_kwargs)))


def run_flops(run: PlannedRun, n_train: int, n_eval: int, epochs: int | None = None) -> float:
    """Training plus evaluation FLOPs of a CNN run at its most epochs (early stopping may end it sooner), or over
    `epochs` still to train: every epoch trains on n_train faces and scores PublicTest (about half of n_eval), and
    the end scores both test splits with the run's test-time views."""
    from fer_helpers.train.inference import TTA_VIEWS

    config = run.config
    forward = forward_flops(config.model, config.model_kwargs)
    per_epoch = TRAIN_FLOPS_PER_FORWARD * forward * n_train + forward * n_eval // 2
    epochs = config.max_epochs if epochs is None else epochs
    return epochs * per_epoch + forward * n_eval * TTA_VIEWS[config.tta]


def benchmark_rates(device: Device, benchmarks: str | Path = BENCHMARKS) -> dict[str, float]:
    """Training images/s per model that `make bench` measured on this kind of machine (its entry in
    reports/benchmarks.json), at the precision "auto" trains in here; empty where it has no entry."""
    path = Path(benchmarks)
    if not path.exists():
        return {}
    entry = json.loads(path.read_text(encoding="utf-8")).get("machines", {}).get(device.name, {})
    train = entry.get("results", {}).get("train", {})
    suffix = "_train_images_per_second" + ("_bf16" if device.bf16 else "")
    return {key.removesuffix(suffix): rate for key, rate in train.items() if key.endswith(suffix) and rate}


def measured_rates(run_root: str | Path, device: Device, benchmarks: str | Path = BENCHMARKS) -> dict[str, float]:
    """Training FLOP/s of one job per model on this kind of machine: from saved runs trained on it, else its benchmark.

    A saved run counts where it ran on the same kind of machine: on a CPU, its recorded machine (the processor,
    cores and bf16 support, `hardware.machine_kind`); on a GPU, the GPU's name. Reads only each run's result.json,
    which is all a slim tree carries.
    """
    from fer_helpers.core.config import CNNConfig
    from fer_helpers.models.registry import MODELS

    def flops(model: str, kwargs: Any, images_per_second: float) -> float:
        kwargs = CNNConfig(model=model, model_kwargs=kwargs or {}).model_kwargs
        return TRAIN_FLOPS_PER_FORWARD * forward_flops(model, kwargs) * images_per_second

    rates = {m: flops(m, {}, r) for m, r in benchmark_rates(device, benchmarks).items() if m in MODELS}
    from_runs: dict[str, float] = {}
    for path in sorted(Path(run_root).glob(f"results/*/{RESULT_FILE}")):
        meta = json.loads(path.read_text(encoding="utf-8"))
        config, rate = meta.get("config", {}), meta.get("images_per_second")
        ran_on = meta.get("extra", {}).get("machine", "") if device.kind == "cpu" else meta.get("device", "")
        same_kind = ran_on == device.name if device.kind == "cpu" else device.name.lower() in ran_on.lower()
        if not rate or not same_kind or "max_epochs" not in config:  # CNN runs only
            continue
        model = config["model"]
        from_runs[model] = max(from_runs.get(model, 0.0), flops(model, config.get("model_kwargs"), rate))
    return rates | from_runs


def estimate_seconds(
    run: PlannedRun,
    n_train: int,
    n_eval: int,
    device: Device,
    jobs: int,
    rates: dict[str, float] | None = None,
    epochs: int | None = None,
    shared: dict[str, float] | None = None,
) -> float:
    """Estimated wall-clock seconds of one run (or of its `epochs` still to train) while `jobs` runs share the
    device. `rates` are FLOP/s of one job alone (saved runs, benchmarks); `shared`, FLOP/s of one job measured while
    `jobs` jobs shared the device (the preflight's), used as they are and first."""
    overhead = OVERHEAD_SECONDS[device.kind]
    if not run.cnn:
        return overhead + 120.0  # HOG features and a linear model: about two minutes on a few cores
    measured = (rates or {}).get(run.config.model)
    rate = measured / jobs if measured and device.kind == "cpu" else measured or device.job_rate(jobs)
    if measured and device.kind == "cuda":
        rate = min(measured, device.peak_flops * MAX_EFFICIENCY / jobs)
    rate = (shared or {}).get(run.config.model) or rate
    epochs = run.config.max_epochs if epochs is None else epochs
    steps = epochs * max(1, n_train // run.config.batch_size)
    return overhead + max(run_flops(run, n_train, n_eval, epochs) / rate, steps * STEP_SECONDS[device.kind])


@dataclass
class Slot:
    """A planned run with its estimate and, once simulated, when it starts."""

    run: PlannedRun
    seconds: float
    start: float | None = None
    steps: int = 0  # training steps still to take (CNN runs)
    flops: float = 0.0  # training and evaluation FLOPs still to spend (CNN runs)
    epochs_done: int = 0  # epochs an unfinished run has saved already (it resumes after them)

    @property
    def end(self) -> float | None:
        return None if self.start is None else self.start + self.seconds


def simulate(slots: list[Slot], jobs: int, budget_seconds: float | None) -> list[Slot]:
    """Give each run a start time as the scheduler would: value order, `jobs` at once, none past the budget."""
    free = [0.0] * jobs
    for slot in slots:
        lane = min(range(jobs), key=free.__getitem__)
        if budget_seconds is not None and free[lane] + slot.seconds > budget_seconds:
            continue  # would not finish in time: skipped, a later, shorter run may still fit
        slot.start = free[lane]
        free[lane] = slot.end
    return slots


def format_plan(
    slots: list[Slot], saved: list[PlannedRun], device: Device, jobs: int, budget_seconds: float | None
) -> str:
    """The schedule as text, ending with the line `estimate: <seconds> s for <n> runs on <device>`."""
    precision = "bf16 mixed" if device.bf16 else "float32"
    lines = [
        f"{len(saved)} run(s) already saved: " + (", ".join(r.id for r in saved) or "none"),
        f"on {device.name}: CNNs train in {precision} (precision auto)",
        f"{'run':<40}{'step':<17}{'epochs':>7}{'steps':>8}{'PFLOP':>7}{'start s':>9}{'est. s':>9}{'est. h':>8}",
    ]
    for slot in slots:
        start = "skip" if slot.start is None else f"{slot.start:.0f}"
        epochs = "-"
        if slot.run.cnn:
            epochs = (
                f"{slot.epochs_done}/{slot.run.config.max_epochs}" if slot.epochs_done else slot.run.config.max_epochs
            )
        lines.append(
            f"{slot.run.id:<40}{slot.run.step:<17}{epochs:>7}{slot.steps or '-':>8}"
            f"{slot.flops / 1e15:>7.2f}{start:>9}{slot.seconds:>9.0f}{slot.seconds / 3600:>8.1f}"
        )
    planned = [s for s in slots if s.start is not None]
    lines.append(
        f"{sum(s.steps for s in planned):,} training steps and {sum(s.flops for s in planned) / 1e15:.1f} "
        f"PFLOP in the budget, of {sum(s.steps for s in slots):,} and {sum(s.flops for s in slots) / 1e15:.1f} "
        "planned"
    )
    skipped = [s.run.id for s in slots if s.start is None]
    if skipped:
        lines.append(f"not in the budget of {budget_seconds:.0f} s ({len(skipped)}): " + ", ".join(skipped))
    total = max((s.end for s in planned), default=0.0)
    lines.append(
        f"estimate: {total:.0f} s for {len(planned)} runs on {device.name} ({jobs} jobs): {total / 3600:.1f} hours"
    )
    return "\n".join(lines)
