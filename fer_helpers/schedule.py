"""A profile's trainings as a plan: every run it needs, most valuable first, timed, and trained in parallel on a budget.

`fer-study train --profile full --plan` lists what the profile still lacks with an estimate of each run's time;
`fer-study train --profile full --budget-minutes 8 --jobs 4 --archive OUT` trains it: several runs at once, each
in its own process (one GPU or CPU is shared), each saved the moment it finishes (a killed command keeps what
finished; the same command again resumes), and no run started that its estimate says cannot finish inside the
budget. Before the real runs, a preflight takes every architecture of the plan through the whole path for a few
seconds (a one-epoch run on a few faces, in worker processes, saved, archived and read back), so that a broken
path costs seconds, not the budget.

Value order (`plan_runs`): our model's seed 0; its longer-schedule probe (how accuracy grows with epochs, chosen
on PublicTest); Model B's and the baseline's seeds; the baseline's seed 0 again in bf16 (the precision check); the
crowd-target twins of notebook 08 (their FER+ votes travel with the data); our other seeds; the recipe steps; the ablation, one seed of
each variant before the next seed; the classical runs last (they need no GPU and are usually saved already).

Time estimates (`estimate_seconds`): a run's training FLOPs (3x the forward FLOPs per training image, 1x per
evaluated image, from `count_flops`) over the rate one job gets, or its steps times the host time of one step
(`STEP_SECONDS`: small nets are launch-bound on a GPU), whichever is longer, plus a fixed start-up and evaluation
overhead.
The rate is measured where possible: from saved runs of the same model on the same kind of device (images/s
times FLOPs per image); otherwise the device's bf16 rate times `SOLO_EFFICIENCY` for one job, growing with the
number of jobs up to `MAX_EFFICIENCY` in all (on a CPU, jobs share the cores and the total does not grow).
These efficiencies are assumptions for networks this small (48x48 faces, batch 128, launch-bound kernels),
stated here to be checked against the first real GPU run, whose images/s every result records.
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

from .profiles import Profile, get_profile
from .results import RESULT_FILE, RunResult, result_dir, run_key
from .speed import TRAIN_FLOPS_PER_FORWARD

# Dense bf16 matrix rate measured on an H200 of the kind this study is lent (a large matrix product), FLOP/s.
TARGETS: dict[str, float] = {"h200": 790e12, "h100": 790e12}
SOLO_EFFICIENCY = 0.05  # share of the bf16 rate one small-CNN training job reaches alone (assumed, see above)
MAX_EFFICIENCY = 0.20  # share all concurrent jobs reach together (assumed)
OVERHEAD_SECONDS = {"cuda": 30.0, "cpu": 10.0}  # process start, data onto the device, final evaluation, saving
# Host time per training step on a GPU (Python, Lightning, kernel launches; assumed, to be checked): a small net at
# batch 128 is launch-bound, so a run takes at least steps x this, whatever its FLOPs. On a CPU compute dominates.
STEP_SECONDS = {"cuda": 0.004, "cpu": 0.0}
EVAL_IMAGES = 3589 * 2  # PublicTest + PrivateTest, evaluated once at the end (times the TTA views)
TTA_VIEWS = {"none": 1, "flip": 2, "flip_crop": 10}
# Steps of the plan that `fer-study train` has no one-at-a-time step for: asked for with --only, they train through
# the plan (`train_on_budget`).
PLAN_ONLY_STEPS = ("precision_check",)
WORKER_LOG_DIR = "logs"  # under the run folder: one log per run, kept when a run fails


@dataclass(frozen=True)
class PlannedRun:
    """One training run of a plan: what it trains, on which faces, and whether its weights travel back."""

    id: str  # unique in the plan, e.g. "model_b/seed1"
    step: str  # the `fer-study train --only` step it belongs to
    name: str  # result name (the run folder is <name>-<key>)
    config: Any  # CNNConfig, HogSvmConfig or HogVariantConfig
    side: bool = False  # trains on `recipes.side_data` (the ablation, the recipe steps)
    keep_weights: bool = False  # weights come back from a training host (our seeds, Model B, the baseline)

    @property
    def cnn(self) -> bool:
        from .config import CNNConfig

        return isinstance(self.config, CNNConfig)

    def key(self, data_sha256: str) -> str:
        """The run's cache key on data with this checksum (the same key `fit_cnn` and the HOG fits use)."""
        settings = self.config.experiment() if self.cnn else self.config.to_dict()
        return run_key(self.name, settings, data_sha256)

    def train(self, data, profile: Profile, run_root: str | Path, n_jobs: int = -1) -> RunResult:
        """Train (or load) this run into run_root on the profile's data (`data`: the profile's subsample)."""
        if self.cnn:
            from .recipes import side_data
            from .training import fit_cnn

            return fit_cnn(side_data(data, profile) if self.side else data, self.config, run_root, name=self.name)
        from .classical import HogSvmConfig, fit_hog_svm, fit_hog_variant

        if isinstance(self.config, HogSvmConfig):
            return fit_hog_svm(data, self.config, run_root, n_jobs=n_jobs)
        return fit_hog_variant(data, self.config.name, run_root, n_jobs=n_jobs)


def plan_runs(profile: str | Profile) -> list[PlannedRun]:
    """Every run the profile's `fer-study train` makes, most valuable first (see the module docstring)."""
    from .classical import hog_svm_configs, hog_variant_config
    from .config import result_name
    from .recipes import (
        MODEL_B_ABLATIONS,
        ablation_config,
        baseline_config,
        crowd_config,
        model_b_config,
        ours_config,
        recipe_step_configs,
    )
    from .registry import main_config

    profile = get_profile(profile)
    first, *later = profile.seeds
    runs = [
        PlannedRun(
            f"resnet_fer/seed{first}", "resnet_fer", "resnet_fer", ours_config(profile, first), keep_weights=True
        )
    ]
    if profile.ours_probe_epochs:
        epochs = profile.ours_probe_epochs
        runs.append(
            PlannedRun(
                f"resnet_fer_{epochs}ep/seed{first}",
                "resnet_fer",
                f"resnet_fer_{epochs}ep",
                ours_config(profile, first, max_epochs=epochs),
            )
        )
    for seed in profile.seeds:
        runs.append(
            PlannedRun(f"model_b/seed{seed}", "model_b", "model_b", model_b_config(profile, seed), keep_weights=True)
        )
        runs.append(
            PlannedRun(
                f"baseline_cnn/seed{seed}",
                "baseline_cnn",
                "baseline_cnn",
                baseline_config(profile, seed),
                keep_weights=True,
            )
        )
    # The paper's baseline, seed 0, once more in bf16 mixed precision: the check that bf16 costs no accuracy (its
    # own name keeps it apart from the float32 run of the same recipe, which has the same key).
    runs.append(
        PlannedRun(
            f"baseline_cnn_bf16/seed{first}",
            "precision_check",
            "baseline_cnn_bf16",
            replace(baseline_config(profile, first), precision="bf16-mixed"),
        )
    )
    for model in profile.crowd_models:  # notebook 08: the same recipes trained on the FER+ crowd's votes
        config = crowd_config(main_config(model, profile, first))
        runs.append(PlannedRun(f"{result_name(config)}/seed{first}", "crowd", result_name(config), config))
    runs += [
        PlannedRun(f"resnet_fer/seed{seed}", "resnet_fer", "resnet_fer", ours_config(profile, seed), keep_weights=True)
        for seed in later
    ]
    runs += [
        PlannedRun(f"{step.result_name}/seed{first}", "recipe_steps", step.result_name, config, side=True)
        for step, config in recipe_step_configs(profile, first)
    ]
    # The ablation's reference is the main Model B run where it trains on the same faces for as many epochs.
    side_is_main = profile.side_train_per_class is None and ablation_config(profile) == model_b_config(profile)
    for seed in profile.seeds:
        if not side_is_main:  # the ablation's reference: Model B on the side data, not the main run
            runs.append(
                PlannedRun(f"model_b_side/seed{seed}", "ablation", "model_b", ablation_config(profile, seed), side=True)
            )
        runs += [
            PlannedRun(f"{name}/seed{seed}", "ablation", name, ablation_config(profile, seed, **switches), side=True)
            for name, switches in MODEL_B_ABLATIONS.items()
        ]
    runs += [PlannedRun(config.model, "hog_svm", config.model, config) for config in hog_svm_configs(profile)]
    runs += [PlannedRun(name, "hog_variants", name, hog_variant_config(name)) for name in profile.hog_variants]
    return runs


# ---------------------------------------------------------------- estimates


@dataclass(frozen=True)
class Device:
    """Where a plan runs: the kind ("cuda" or "cpu"), a name, and its bf16 (GPU) or measured (CPU) FLOP rate."""

    kind: str
    name: str
    peak_flops: float

    @classmethod
    def here(cls) -> Device:
        import torch

        from .speed import measure_matmul_flops

        if torch.cuda.is_available():
            name = torch.cuda.get_device_name(0)
            target = next((t for t in TARGETS if t in name.lower()), None)
            return cls("cuda", name, TARGETS[target] if target else measure_matmul_flops("cuda", size=4096))
        return cls("cpu", f"cpu ({torch.get_num_threads()} threads)", measure_matmul_flops("cpu"))

    @classmethod
    def target(cls, name: str) -> Device:
        if name not in TARGETS:
            raise ValueError(f"unknown target {name!r}; choose one of {sorted(TARGETS)}")
        return cls("cuda", name.upper(), TARGETS[name])

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


def run_flops(run: PlannedRun, n_train: int) -> float:
    """Training plus evaluation FLOPs of a CNN run at its most epochs (early stopping may end it sooner)."""
    config = run.config
    forward = forward_flops(config.model, config.model_kwargs)
    per_epoch = (
        TRAIN_FLOPS_PER_FORWARD * forward * n_train + forward * EVAL_IMAGES // 2
    )  # training steps, then PublicTest
    return config.max_epochs * per_epoch + forward * EVAL_IMAGES * TTA_VIEWS[config.tta]


def measured_rates(run_root: str | Path, device: Device) -> dict[str, float]:
    """Training FLOP/s per model measured by the runs saved under run_root on this kind of device (one job's).

    Reads only each run's result.json, which is all a slim tree carries.
    """
    from .config import CNNConfig

    rates: dict[str, float] = {}
    for path in sorted(Path(run_root).glob(f"results/*/{RESULT_FILE}")):
        meta = json.loads(path.read_text())
        config, rate, ran_on = meta.get("config", {}), meta.get("images_per_second"), meta.get("device", "")
        on_kind = ran_on.startswith("cpu") if device.kind == "cpu" else device.name.lower() in ran_on.lower()
        if not rate or not on_kind or "max_epochs" not in config:  # CNN runs only
            continue
        kwargs = CNNConfig(model=config["model"], model_kwargs=config.get("model_kwargs", {})).model_kwargs
        forward = forward_flops(config["model"], kwargs)
        rates[config["model"]] = max(rates.get(config["model"], 0.0), TRAIN_FLOPS_PER_FORWARD * forward * rate)
    return rates


def estimate_seconds(
    run: PlannedRun, n_train: int, device: Device, jobs: int, rates: dict[str, float] | None = None
) -> float:
    """Estimated wall-clock seconds of one run while `jobs` runs share the device."""
    overhead = OVERHEAD_SECONDS[device.kind]
    if not run.cnn:
        return overhead + 120.0  # HOG features and a linear model: about two minutes on a few cores
    measured = (rates or {}).get(run.config.model)
    rate = measured / jobs if measured and device.kind == "cpu" else measured or device.job_rate(jobs)
    if measured and device.kind == "cuda":
        rate = min(measured, device.peak_flops * MAX_EFFICIENCY / jobs)
    steps = run.config.max_epochs * max(1, n_train // run.config.batch_size)
    return overhead + max(run_flops(run, n_train) / rate, steps * STEP_SECONDS[device.kind])


@dataclass
class Slot:
    """A planned run with its estimate and, once simulated, when it starts."""

    run: PlannedRun
    seconds: float
    start: float | None = None
    steps: int = 0  # training steps at the most epochs (CNN runs)
    flops: float = 0.0  # training and evaluation FLOPs (CNN runs)

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
    lines = [
        f"{len(saved)} run(s) already saved: " + (", ".join(r.id for r in saved) or "none"),
        f"{'run':<40}{'step':<16}{'epochs':>7}{'steps':>8}{'PFLOP':>7}{'start s':>9}{'est. s':>9}",
    ]
    for slot in slots:
        start = "skip" if slot.start is None else f"{slot.start:.0f}"
        epochs = slot.run.config.max_epochs if slot.run.cnn else "-"
        lines.append(
            f"{slot.run.id:<40}{slot.run.step:<16}{epochs:>7}{slot.steps or '-':>8}"
            f"{slot.flops / 1e15:>7.2f}{start:>9}{slot.seconds:>9.0f}"
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
    lines.append(f"estimate: {total:.0f} s for {len(planned)} runs on {device.name} ({jobs} jobs)")
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
    from .recipes import side_data

    side_sha = side_data(data, profile).sha256
    return {run.id: result_dir(run_root, run.name, run.key(side_sha if run.side else data.sha256)) for run in runs}


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
            log = open(log_dir / f"{run.id.replace('/', '-')}.log", "w")
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
                tail = Path(log.name).read_text(errors="replace").strip().splitlines()[-15:]
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
    profile, data = study.profile, study.data
    plan = {r.id: r for r in plan_runs(profile)}
    run = plan[spec["id"]]
    if run.cnn and run.config.targets == "crowd":
        from .steps import crowd_data

        data = crowd_data(study)
    if spec.get("compile") and run.cnn:  # how it runs, not what it is: the key stays the same
        run = replace(run, config=replace(run.config, compile=True))
    if spec["preflight"]:
        run, data, profile = preflight_variant(run, data, profile)
    result = run.train(data, profile, spec["run_root"], n_jobs=max(1, spec["threads"]))
    print(f"saved {result.run_dir} (PublicTest accuracy {result.metrics['PublicTest']['accuracy']:.3f})")
    return 0


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


def train_on_budget(
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
) -> Outcome | None:
    """Plan the profile's missing runs, print the schedule, then (unless plan_only) preflight and train them."""
    from .study import setup

    study = setup(profile, data_path, run_dir)
    profile_obj, data, run_root = study.profile, study.data, Path(study.run_dir)
    plan = [r for r in plan_runs(profile_obj) if not only or r.step in only]
    if any(r.step == "crowd" for r in plan):
        from .steps import votes_at_hand

        if not votes_at_hand(study):
            print("no FER+ votes found (FERPLUS_PATH, data/, beside FER-2013): the crowd runs are left out", flush=True)
            plan = [r for r in plan if r.step != "crowd"]
    todo, saved = pending_runs(plan, data, profile_obj, run_root)
    device = Device.target(target) if target else Device.here()
    from .recipes import side_data

    rates = measured_rates(run_root, device)
    n_train = {
        False: int((data.usage == "Training").sum()),
        True: int((side_data(data, profile_obj).usage == "Training").sum()),
    }
    estimates = {r.id: estimate_seconds(r, n_train[r.side], device, jobs, rates) for r in todo}
    budget = None if budget_minutes is None else 60.0 * budget_minutes
    slots = simulate(
        [
            Slot(
                r,
                estimates[r.id],
                steps=r.config.max_epochs * (n_train[r.side] // r.config.batch_size),
                flops=run_flops(r, n_train[r.side]),
            )
            if r.cnn
            else Slot(r, estimates[r.id])
            for r in todo
        ],
        jobs,
        budget,
    )
    print(
        f"Plan for profile {profile_obj.name!r} on {data.form} data (sha256 {data.sha256[:12]}), "
        f"{jobs} job(s), budget {'none' if budget is None else f'{budget:.0f} s'}; rates measured for: "
        f"{', '.join(sorted(rates)) or 'none (assumed efficiencies)'}"
    )
    print(format_plan(slots, saved, device, jobs, budget), flush=True)
    if plan_only or not any(slot.start is not None for slot in slots):
        return None  # nothing to train, or nothing that fits the budget
    threads = default_threads(jobs)
    started = time.perf_counter()
    if preflight:
        check_path(preflight_runs(todo), profile_obj.name, data_path, jobs, threads, compile)
        print(f"preflight passed in {time.perf_counter() - started:.0f} s", flush=True)
    remaining = None if budget is None else budget - (time.perf_counter() - started)
    dirs = result_dirs(todo, data, profile_obj, run_root)
    finished_dirs: dict[Path, bool] = {}

    def archive_finished(run: PlannedRun) -> None:
        finished_dirs[dirs[run.id]] = run.keep_weights
        if archive is not None:
            from .bundle import pack_runs

            pack_runs(finished_dirs, archive)

    outcome = run_plan(
        todo,
        estimates,
        lambda run: worker_command(run, profile_obj.name, data_path, run_root, threads, False, compile),
        jobs,
        remaining,
        run_root / WORKER_LOG_DIR,
        on_finish=archive_finished,
    )
    print(summarise(outcome, dirs, device), flush=True)
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
