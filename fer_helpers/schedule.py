"""The plan's runs trained on a machine: timed, then in turn in this process or in parallel on a budget.

`fer-study train --profile full --plan` lists what the profile still lacks (`plan.plan_runs`, most valuable first)
with an estimate of each run's time on this machine and the total. Without `--plan` the same command trains it:
one run after another in this process (`jobs=1`, the campaign on a CPU: every run saves its whole training state
after each epoch and resumes from it when the command is started again), or `--jobs N` runs at once, each in its
own process, each saved the moment it finishes, and none started that its estimate says cannot finish inside
`--budget-minutes` (a GPU lease). Before parallel runs, a preflight takes every architecture of the plan through
the whole path for a few seconds (a one-epoch run on a few faces, in worker processes, saved, archived and read
back), so that a broken path costs seconds, not the budget. `on_finish` hooks (`campaign`: commit and re-render)
run after each finished run.

Time estimates (`estimate_seconds`): a run's training FLOPs (3x the forward FLOPs per training image, 1x per
evaluated image, from `count_flops`) over the rate one job gets, or its steps times the host time of one step
(`STEP_SECONDS`: small nets are launch-bound on a GPU), whichever is longer, plus a fixed start-up and evaluation
overhead. The rate is measured wherever a measurement exists (`measured_rates`): saved runs of the same model
trained on the same kind of machine (each run records its `config.machine_kind`), else `make bench`'s entry for
this kind of machine in reports/benchmarks.json at the precision `auto` trains in here. Only without either does
it fall back on the device's peak times `SOLO_EFFICIENCY` for one job, growing with the number of jobs up to
`MAX_EFFICIENCY` in all (on a CPU, jobs share the cores and the total does not grow): assumptions for networks
this small (48x48 faces, batch 128), stated here to be replaced by the first measurement.
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from .plan import PlannedRun, plan_runs
from .profiles import Profile
from .results import REPO, RESULT_FILE, RunResult, epochs_done, result_dir
from .speed import GPU_PEAK_FLOPS, TRAIN_FLOPS_PER_FORWARD, device_peak_flops

SOLO_EFFICIENCY = 0.05  # share of the bf16 rate one small-CNN training job reaches alone (assumed, see above)
MAX_EFFICIENCY = 0.20  # share all concurrent jobs reach together (assumed)
OVERHEAD_SECONDS = {"cuda": 30.0, "cpu": 10.0}  # process start, data onto the device, final evaluation, saving
# Host time per training step on a GPU (Python, Lightning, kernel launches; assumed, to be checked): a small net at
# batch 128 is launch-bound, so a run takes at least steps x this, whatever its FLOPs. On a CPU compute dominates.
STEP_SECONDS = {"cuda": 0.004, "cpu": 0.0}
WORKER_LOG_DIR = "logs"  # under the run folder: one log per run, kept when a run fails
BENCHMARKS = REPO / "reports" / "benchmarks.json"  # `make bench`: training images/s per kind of machine


@dataclass(frozen=True)
class Device:
    """Where a plan runs: the kind ("cuda" or "cpu"), its name (`config.machine_kind`), its bf16 (GPU) or
    measured float32 (CPU) FLOP rate, and whether `auto` trains in bf16 there."""

    kind: str
    name: str
    peak_flops: float
    bf16: bool = True

    @classmethod
    def here(cls) -> Device:
        import torch

        from .config import cpu_has_native_bf16, this_machine
        from .speed import measure_matmul_flops

        if torch.cuda.is_available():
            name = torch.cuda.get_device_name(0)
            return cls("cuda", name, device_peak_flops(name) or measure_matmul_flops("cuda", size=4096))
        return cls("cpu", this_machine(), measure_matmul_flops("cpu"), bf16=cpu_has_native_bf16())

    @classmethod
    def target(cls, name: str) -> Device:
        """A GPU named by `--target` (h100, h200), at its datasheet bf16 peak (`speed.GPU_PEAK_FLOPS`)."""
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
    from .models import count_flops
    from .registry import build_model

    return count_flops(build_model(model, **dict(model_kwargs)))


def run_flops(run: PlannedRun, n_train: int, n_eval: int, epochs: int | None = None) -> float:
    """Training plus evaluation FLOPs of a CNN run at its most epochs (early stopping may end it sooner), or over
    `epochs` still to train: every epoch trains on n_train faces and scores PublicTest (about half of n_eval), and
    the end scores both test splits with the run's test-time views."""
    from .inference import TTA_VIEWS

    config = run.config
    forward = forward_flops(config.model, config.model_kwargs)
    per_epoch = TRAIN_FLOPS_PER_FORWARD * forward * n_train + forward * n_eval // 2
    epochs = config.max_epochs if epochs is None else epochs
    return epochs * per_epoch + forward * n_eval * TTA_VIEWS[config.tta]


def benchmark_rates(device: Device, benchmarks: str | Path = BENCHMARKS) -> dict[str, float]:
    """Training images/s per model that `make bench` measured on this kind of machine (its entry in
    reports/benchmarks.json), at the precision `auto` trains in here; empty where it has no entry."""
    path = Path(benchmarks)
    if not path.exists():
        return {}
    entry = json.loads(path.read_text(encoding="utf-8")).get("machines", {}).get(device.name, {})
    train = entry.get("results", {}).get("train", {})
    suffix = "_train_images_per_second" + ("_bf16" if device.bf16 else "")
    return {key.removesuffix(suffix): rate for key, rate in train.items() if key.endswith(suffix) and rate}


def measured_rates(run_root: str | Path, device: Device, benchmarks: str | Path = BENCHMARKS) -> dict[str, float]:
    """Training FLOP/s of one job per model on this kind of machine: from saved runs trained on it, else its benchmark.

    A saved run counts where it ran on the same kind of machine: on a CPU, its recorded `machine` (the processor,
    cores and bf16 support, `config.machine_kind`); on a GPU, the GPU's name. Reads only each run's result.json,
    which is all a slim tree carries.
    """
    from .config import CNNConfig
    from .registry import MODELS

    def flops(model: str, kwargs: Any, images_per_second: float) -> float:
        kwargs = CNNConfig(model=model, model_kwargs=kwargs or {}).model_kwargs
        return TRAIN_FLOPS_PER_FORWARD * forward_flops(model, kwargs) * images_per_second

    rates = {m: flops(m, {}, r) for m, r in benchmark_rates(device, benchmarks).items() if m in MODELS}
    from_runs: dict[str, float] = {}
    for path in sorted(Path(run_root).glob(f"results/*/{RESULT_FILE}")):
        meta = json.loads(path.read_text())
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
) -> float:
    """Estimated wall-clock seconds of one run (or of its `epochs` still to train) while `jobs` runs share the
    device."""
    overhead = OVERHEAD_SECONDS[device.kind]
    if not run.cnn:
        return overhead + 120.0  # HOG features and a linear model: about two minutes on a few cores
    measured = (rates or {}).get(run.config.model)
    rate = measured / jobs if measured and device.kind == "cpu" else measured or device.job_rate(jobs)
    if measured and device.kind == "cuda":
        rate = min(measured, device.peak_flops * MAX_EFFICIENCY / jobs)
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


# ---------------------------------------------------------------- running the plan


@dataclass
class Outcome:
    """What happened to each run of a scheduled command."""

    finished: list[tuple[PlannedRun, float]] = field(default_factory=list)  # with seconds taken
    failed: list[tuple[PlannedRun, str]] = field(default_factory=list)  # with the log's last lines
    not_started: list[PlannedRun] = field(default_factory=list)
    stopped: list[PlannedRun] = field(default_factory=list)  # killed at the hard deadline


def result_dirs(runs: list[PlannedRun], data, profile: Profile, run_root: str | Path) -> dict[str, Path]:
    """Where each run's result is (or will be) saved under run_root: its folder, by run id."""
    return {run.id: result_dir(run_root, run.name, run.key_on(data, profile)) for run in runs}


def pending_runs(plan: list[PlannedRun], data, profile: Profile, run_root: str | Path) -> tuple[list, list]:
    """The plan split into (runs still to train, runs already saved under run_root)."""
    dirs = result_dirs(plan, data, profile, run_root)
    todo, saved = [], []
    for run in plan:
        (saved if (dirs[run.id] / RESULT_FILE).exists() else todo).append(run)
    return todo, saved


def run_plan(
    runs: list[PlannedRun],
    estimates: dict[str, float],
    worker_args: Callable[[PlannedRun], list[str]],
    jobs: int,
    budget_seconds: float | None,
    log_dir: Path,
    on_finish: Callable[[PlannedRun], None] = lambda run: None,
    grace_seconds: float = 60.0,
) -> Outcome:
    """Train runs in worker processes, `jobs` at a time, in order; start none whose estimate overruns the budget.

    A run that has not finished `grace_seconds` after the budget is stopped (its process killed, nothing saved).
    `on_finish` is called in this process after each run that finished (e.g. to archive it at once).
    """
    log_dir.mkdir(parents=True, exist_ok=True)
    queue, outcome = list(runs), Outcome()
    active: dict[str, tuple[PlannedRun, subprocess.Popen, float, Any]] = {}
    started = time.perf_counter()
    while queue or active:
        elapsed = time.perf_counter() - started
        while queue and len(active) < jobs:
            fits = [r for r in queue if budget_seconds is None or elapsed + estimates[r.id] <= budget_seconds]
            if not fits:
                break
            run = fits[0]
            queue.remove(run)
            log = open(log_dir / f"{run.id.replace('/', '-')}.log", "w", encoding="utf-8")
            process = subprocess.Popen(worker_args(run), stdout=log, stderr=subprocess.STDOUT)
            active[run.id] = (run, process, time.perf_counter(), log)
            print(f"[{elapsed:6.0f} s] start  {run.id} (estimate {estimates[run.id]:.0f} s)", flush=True)
        if not active:
            break
        time.sleep(0.2)
        elapsed = time.perf_counter() - started
        for run_id, (run, process, t0, log) in list(active.items()):
            code = process.poll()
            overdue = budget_seconds is not None and elapsed > budget_seconds + grace_seconds
            if code is None and not overdue:
                continue
            if code is None:
                process.kill()
                process.wait()
                outcome.stopped.append(run)
                print(f"[{elapsed:6.0f} s] STOP   {run_id}: past the budget", flush=True)
            elif code == 0:
                outcome.finished.append((run, time.perf_counter() - t0))
                print(f"[{elapsed:6.0f} s] done   {run_id} in {time.perf_counter() - t0:.0f} s", flush=True)
                on_finish(run)
            else:
                log.flush()
                tail = Path(log.name).read_text(encoding="utf-8", errors="replace").strip().splitlines()[-15:]
                outcome.failed.append((run, "\n".join(tail)))
                print(
                    f"[{elapsed:6.0f} s] FAILED {run_id} (exit {code}); log {log.name}:\n  " + "\n  ".join(tail),
                    flush=True,
                )
            log.close()
            del active[run_id]
    outcome.not_started = queue
    return outcome


def worker_command(
    run: PlannedRun,
    profile: str,
    data_path: str | None,
    run_root: Path,
    threads: int,
    preflight: bool = False,
    compile: bool = False,
) -> list[str]:
    """The command line of the process that trains one planned run."""
    spec = {
        "id": run.id,
        "profile": profile,
        "data": data_path,
        "run_root": str(run_root),
        "threads": threads,
        "preflight": preflight,
        "compile": compile,
    }
    return [sys.executable, "-m", "fer_helpers.schedule", json.dumps(spec)]


def worker_main(spec: dict) -> int:
    """Train one run of the plan in this process (the scheduler's worker)."""
    import torch

    from .study import setup

    torch.set_num_threads(max(1, spec["threads"]))
    study = setup(spec["profile"], spec["data"], spec["run_root"])
    profile = study.profile
    run = {r.id: r for r in plan_runs(profile)}[spec["id"]]
    data = run_faces(study, run)
    if spec.get("compile") and run.cnn:  # how it runs, not what it is: the key stays the same
        run = replace(run, config=replace(run.config, compile=True))
    if spec["preflight"]:
        run, data, profile = preflight_variant(run, data, profile)
    result = run.train(data, profile, spec["run_root"], n_jobs=max(1, spec["threads"]), crowd=data)
    print(f"saved {result.run_dir} (PublicTest accuracy {result.metrics['PublicTest']['accuracy']:.3f})")
    return 0


def run_faces(study, run: PlannedRun):
    """The study's faces for a run: with the crowd's votes attached where it trains on them (`steps.crowd_data`)."""
    if run.faces != "crowd":
        return study.data
    from .steps import crowd_data

    return crowd_data(study)


def preflight_variant(run: PlannedRun, data, profile: Profile):
    """The same run, cut to seconds: one epoch on a few faces per class (the path it takes is unchanged)."""
    small = data.subsample(16, 8, seed=0)
    if run.cnn:
        run = replace(run, config=replace(run.config, max_epochs=1, patience=None))
    profile = replace(profile, side_train_per_class=None)
    return run, small, profile


def preflight_runs(plan: list[PlannedRun]) -> list[PlannedRun]:
    """One run of each distinct CNN architecture and training path in the plan (the preflight's runs)."""
    seen, chosen = set(), []
    for run in plan:
        if not run.cnn:
            continue
        signature = (
            run.config.model,
            run.config.model_kwargs,
            run.config.tta,
            run.config.scheduler,
            run.config.targets,
        )
        if signature not in seen:
            seen.add(signature)
            chosen.append(run)
    return chosen


def default_threads(jobs: int) -> int:
    """CPU threads for each of `jobs` workers: the machine's cores shared out."""
    return max(1, (os.cpu_count() or 1) // jobs)


def train_plan(
    profile: str,
    data_path: str | None = None,
    run_dir: str | Path | None = None,
    *,
    jobs: int = 1,
    budget_minutes: float | None = None,
    only: list[str] | None = None,
    archive: str | Path | None = None,
    target: str | None = None,
    plan_only: bool = False,
    preflight: bool = True,
    compile: bool = False,
    fresh: bool = False,
    on_finish: Callable[[PlannedRun, Path], None] | None = None,
) -> Outcome | None:
    """Plan the profile's missing runs and print the schedule; then (unless plan_only) train them.

    One job with neither a budget nor an archive trains the runs one after another in this process (the campaign:
    each resumes from its last epoch when started again); otherwise `jobs` worker processes share the budget, after
    a preflight. `fresh` (one job only) retrains runs that are saved already. `on_finish(run, result folder)` is
    called after each run that finished.
    """
    from .study import setup

    in_process = jobs == 1 and budget_minutes is None and archive is None
    if fresh and not in_process:
        raise ValueError("fresh retrains one run at a time: it does not go with --jobs, --budget-minutes or --archive")
    study = setup(profile, data_path, run_dir)
    profile_obj, data, run_root = study.profile, study.data, Path(study.run_dir)
    plan = [r for r in plan_runs(profile_obj) if not only or r.step in only]
    if any(r.faces == "crowd" for r in plan):
        from .steps import votes_at_hand

        if not votes_at_hand(study):
            print("no FER+ votes found (FERPLUS_PATH, data/, beside FER-2013): the crowd runs are left out", flush=True)
            plan = [r for r in plan if r.faces != "crowd"]
    todo, saved = (plan, []) if fresh else pending_runs(plan, data, profile_obj, run_root)
    dirs = result_dirs(todo, data, profile_obj, run_root)
    device = Device.target(target) if target else Device.here()
    rates = measured_rates(run_root, device)
    n_eval = int(np.isin(data.usage, ["PublicTest", "PrivateTest"]).sum())
    slots = []
    for run in todo:
        if not run.cnn:
            slots.append(Slot(run, estimate_seconds(run, 0, n_eval, device, jobs)))
            continue
        n_train = int((run.train_data(data, profile_obj, crowd=data).usage == "Training").sum())
        done = 0 if fresh else epochs_done(dirs[run.id], run.key_on(data, profile_obj))
        left = max(0, run.config.max_epochs - done)
        slots.append(
            Slot(
                run,
                estimate_seconds(run, n_train, n_eval, device, jobs, rates, epochs=left),
                steps=left * (n_train // run.config.batch_size),
                flops=run_flops(run, n_train, n_eval, left),
                epochs_done=done,
            )
        )
    budget = None if budget_minutes is None else 60.0 * budget_minutes
    slots = simulate(slots, jobs, budget)
    print(
        f"Plan for profile {profile_obj.name!r} on {data.form} data (sha256 {data.sha256[:12]}), "
        f"{jobs} job(s), budget {'none' if budget is None else f'{budget:.0f} s'}; rates measured on this kind of "
        f"machine for: {', '.join(sorted(rates)) or 'none (assumed efficiencies)'}"
    )
    print(format_plan(slots, saved, device, jobs, budget), flush=True)
    if plan_only or not any(slot.start is not None for slot in slots):
        return None  # nothing to train, or nothing that fits the budget
    if in_process:
        outcome = train_in_turn(study, todo, dirs, fresh, on_finish)
        print(summarise(outcome, dirs, device), flush=True)
        return outcome
    threads = default_threads(jobs)
    # The workers load the very faces this process planned with, wherever they would look by themselves.
    from .study import SYNTHETIC

    data_path = SYNTHETIC if study.synthetic else str(study.full_data.source)
    started = time.perf_counter()
    if preflight:
        check_path(preflight_runs(todo), profile_obj.name, data_path, jobs, threads, compile)
        print(f"preflight passed in {time.perf_counter() - started:.0f} s", flush=True)
    remaining = None if budget is None else budget - (time.perf_counter() - started)
    finished_dirs: dict[Path, bool] = {}

    def after(run: PlannedRun) -> None:
        finished_dirs[dirs[run.id]] = run.keep_weights
        if archive is not None:
            from .bundle import pack_runs

            pack_runs(finished_dirs, archive)
        if on_finish is not None:
            on_finish(run, dirs[run.id])

    outcome = run_plan(
        todo,
        {slot.run.id: slot.seconds for slot in slots},
        lambda run: worker_command(run, profile_obj.name, data_path, run_root, threads, False, compile),
        jobs,
        remaining,
        run_root / WORKER_LOG_DIR,
        on_finish=after,
    )
    print(summarise(outcome, dirs, device), flush=True)
    return outcome


def train_in_turn(
    study,
    runs: list[PlannedRun],
    dirs: dict[str, Path],
    fresh: bool = False,
    on_finish: Callable[[PlannedRun, Path], None] | None = None,
) -> Outcome:
    """Train the runs one after another in this process, in plan order; a run that fails is reported and skipped."""
    import traceback

    outcome = Outcome()
    crowd = None
    for i, run in enumerate(runs):
        print(f"== {run.id} ({run.step}, {i + 1} of {len(runs)}) ==", flush=True)
        started = time.perf_counter()
        try:
            if run.faces == "crowd" and crowd is None:
                crowd = run_faces(study, run)
            run.train(study.data, study.profile, study.run_dir, fresh, crowd=crowd)
        except Exception:  # noqa: BLE001 - one broken run must not stop the runs after it
            tail = traceback.format_exc().strip().splitlines()[-15:]
            outcome.failed.append((run, "\n".join(tail)))
            print(f"FAILED {run.id}:\n  " + "\n  ".join(tail), flush=True)
            continue
        seconds = time.perf_counter() - started
        outcome.finished.append((run, seconds))
        print(f"== {run.id} done in {seconds:.0f} s ==", flush=True)
        if on_finish is not None:
            on_finish(run, dirs[run.id])
    return outcome


def check_path(
    runs: list[PlannedRun], profile: str, data_path: str | None, jobs: int, threads: int, compile: bool = False
) -> None:
    """The preflight: train each run cut to seconds in worker processes, archive them and read them back.

    Raises RuntimeError naming the run and its log's last lines at the first failure.
    """
    import tempfile

    from .bundle import pack_runs, unpack_runs

    with tempfile.TemporaryDirectory(prefix="preflight-") as tmp:
        root = Path(tmp) / "runs"
        print(
            f"preflight: {len(runs)} run(s), one epoch on a few faces each: " + ", ".join(r.id for r in runs),
            flush=True,
        )
        outcome = run_plan(
            runs,
            {r.id: 0.0 for r in runs},
            lambda run: worker_command(run, profile, data_path, root, threads, preflight=True, compile=compile),
            jobs,
            None,
            Path(tmp) / "logs",
        )
        if outcome.failed:
            run, tail = outcome.failed[0]
            raise RuntimeError(f"preflight failed on {run.id}; nothing was trained. Its log ends:\n{tail}")
        dirs = {p: True for p in (root / "results").iterdir() if p.is_dir()}
        parts = pack_runs(dirs, Path(tmp) / "out")
        added = unpack_runs(parts, Path(tmp) / "back").added
        if len(added) != len(dirs):
            raise RuntimeError(f"preflight: {len(dirs)} runs archived but {len(added)} read back")


def summarise(outcome: Outcome, dirs: dict[str, Path], device: Device) -> str:
    """What the command trained, with each run's training images/s and its share of the device's rate.

    dirs: each run's result folder, by run id (`result_dirs`).
    """
    lines = [
        f"finished {len(outcome.finished)}, failed {len(outcome.failed)}, stopped {len(outcome.stopped)}, "
        f"not started {len(outcome.not_started)}"
    ]
    for run, seconds in outcome.finished:
        line = f"  {run.id:<40} {seconds:7.0f} s"
        if run.cnn:
            result = RunResult.load(dirs[run.id]) if (dirs[run.id] / RESULT_FILE).exists() else None
            if result is not None and result.images_per_second:
                flops = (
                    TRAIN_FLOPS_PER_FORWARD
                    * forward_flops(run.config.model, run.config.model_kwargs)
                    * result.images_per_second
                )
                line += (
                    f"  {result.images_per_second:9,.0f} train img/s  {flops / 1e12:7.2f} TFLOP/s "
                    f"({flops / device.peak_flops:.1%} of {device.peak_flops / 1e12:.2f})  "
                    f"PublicTest {result.metrics['PublicTest']['accuracy']:.1%}"
                )
        lines.append(line)
    lines += [f"  FAILED {run.id}" for run, _ in outcome.failed]
    lines += [f"  stopped {run.id}" for run in outcome.stopped]
    if outcome.not_started:
        lines.append("  not started (budget): " + ", ".join(r.id for r in outcome.not_started))
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(worker_main(json.loads(sys.argv[1])))
