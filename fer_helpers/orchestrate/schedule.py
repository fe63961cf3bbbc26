"""The plan's runs trained on a machine: timed, then in turn in this process or in parallel on a budget.

`fer-study train --profile full --plan` lists what the profile still lacks (`plan.plan_runs`, most valuable first)
with an estimate of each run's time on this machine and the total. Without `--plan` the same command trains it:
one run after another in this process (`jobs=1`, the campaign on a CPU: every run saves its whole training state
after each epoch and resumes from it when the command is started again), or `--jobs N` runs at once, each in its
own process, each saved the moment it finishes, and none started that its estimate says cannot finish inside
`--budget-minutes` (a GPU lease). Before parallel runs, a preflight takes every architecture of the plan through
the whole path for a few seconds (a one-epoch run on a few faces, in worker processes, saved, archived and read
back), so that a broken path costs seconds, not the budget. `run_plan` calls a hook after each finished run (the
campaign's commits the run and re-renders the reports).

Each run's time before it starts is `estimate`'s.
"""

from __future__ import annotations

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
import pandas as pd

from fer_helpers.core.profiles import Profile
from fer_helpers.data.results import HISTORY_FILE, RESULT_FILE, RunResult, epochs_done, result_dir
from fer_helpers.orchestrate.estimate import (
    Device,
    Slot,
    estimate_seconds,
    format_plan,
    forward_flops,
    measured_rates,
    run_flops,
    simulate,
)
from fer_helpers.train.plan import PlannedRun, plan_runs
from fer_helpers.train.speed import TRAIN_FLOPS_PER_FORWARD

# The preflight: every architecture of the plan for two epochs on a few faces per class; the first warms the device
# up (kernel choice, caches), the second times it.
PREFLIGHT_EPOCHS = 2
PREFLIGHT_TRAIN_PER_CLASS, PREFLIGHT_EVAL_PER_CLASS = 128, 8
WORKER_LOG_DIR = "logs"  # under the run folder: one log per run, kept when a run fails


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
    return [sys.executable, "-m", "fer_helpers.orchestrate.schedule", json.dumps(spec)]


def worker_main(spec: dict) -> int:
    """Train one run of the plan in this process (the scheduler's worker)."""
    import torch

    from fer_helpers.orchestrate.study import setup

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
    from fer_helpers.orchestrate.steps import crowd_data

    return crowd_data(study)


def preflight_variant(run: PlannedRun, data, profile: Profile):
    """The same run, cut to seconds: `PREFLIGHT_EPOCHS` epochs on a few faces per class (the path it takes is
    unchanged). The last epoch, after the first has warmed the device up, times the run's training rate."""
    small = data.subsample(PREFLIGHT_TRAIN_PER_CLASS, PREFLIGHT_EVAL_PER_CLASS, seed=0)
    if run.cnn:
        run = replace(run, config=replace(run.config, max_epochs=PREFLIGHT_EPOCHS, patience=None))
    profile = replace(profile, side_train_per_class=None)
    return run, small, profile


def preflight_rates(runs: list[PlannedRun], root: Path, data) -> dict[str, float]:
    """Training FLOP/s of one job per model while the preflight's jobs shared the device, from each preflight
    run's last epoch (its Training faces over its seconds): measured where the plan will train, not assumed."""
    n_train = int((data.subsample(PREFLIGHT_TRAIN_PER_CLASS, 0, seed=0).usage == "Training").sum())
    rates: dict[str, float] = {}
    for run in runs:
        if not run.cnn:
            continue
        found = sorted((root / "results").glob(f"{run.name}-*/{HISTORY_FILE}"))
        if not found:
            continue
        seconds = float(pd.read_csv(found[0])["seconds"].iloc[-1])
        flops = TRAIN_FLOPS_PER_FORWARD * forward_flops(run.config.model, run.config.model_kwargs) * n_train
        rates[run.config.model] = min(rates.get(run.config.model, float("inf")), flops / max(seconds, 1e-9))
    return rates


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


def _reestimate(run: PlannedRun, size: tuple[int, int, int], device, jobs: int, shared: dict[str, float]) -> float:
    n_train, n_eval, epochs = size
    return estimate_seconds(run, n_train, n_eval, device, jobs, epochs=epochs, shared=shared)


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
    from fer_helpers.orchestrate.study import setup

    in_process = jobs == 1 and budget_minutes is None and archive is None
    if fresh and not in_process:
        raise ValueError("fresh retrains one run at a time: it does not go with --jobs, --budget-minutes or --archive")
    study = setup(profile, data_path, run_dir)
    profile_obj, data, run_root = study.profile, study.data, Path(study.run_dir)
    plan = [r for r in plan_runs(profile_obj) if not only or r.step in only]
    if any(r.faces == "crowd" for r in plan):
        from fer_helpers.orchestrate.steps import votes_at_hand

        if not votes_at_hand(study):
            print("no FER+ votes found (FERPLUS_PATH, data/, beside FER-2013): the crowd runs are left out", flush=True)
            plan = [r for r in plan if r.faces != "crowd"]
    todo, saved = (plan, []) if fresh else pending_runs(plan, data, profile_obj, run_root)
    dirs = result_dirs(todo, data, profile_obj, run_root)
    device = Device.target(target) if target else Device.here()
    rates = measured_rates(run_root, device)
    n_eval = int(np.isin(data.usage, ["PublicTest", "PrivateTest"]).sum())
    slots, sizes = [], {}
    for run in todo:
        if not run.cnn:
            slots.append(Slot(run, estimate_seconds(run, 0, n_eval, device, jobs)))
            continue
        n_train = int((run.train_data(data, profile_obj, crowd=data).usage == "Training").sum())
        done = 0 if fresh else epochs_done(dirs[run.id], run.key_on(data, profile_obj))
        left = max(0, run.config.max_epochs - done)
        sizes[run.id] = (n_train, n_eval, left)
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
    from fer_helpers.orchestrate.study import SYNTHETIC

    data_path = SYNTHETIC if study.synthetic else str(study.full_data.source)
    started = time.perf_counter()
    estimates, shared = {slot.run.id: slot.seconds for slot in slots}, {}
    if preflight:
        shared = check_path(preflight_runs(todo), profile_obj.name, data_path, jobs, threads, compile, data)
        print(f"preflight passed in {time.perf_counter() - started:.0f} s", flush=True)
        if shared:  # the rates measured just now, with the jobs sharing the device, replace the assumed ones
            slots = [
                replace(slot, seconds=_reestimate(slot.run, sizes[slot.run.id], device, jobs, shared))
                if slot.run.cnn and slot.run.config.model in shared
                else slot
                for slot in slots
            ]
            estimates = {slot.run.id: slot.seconds for slot in slots}
            rates_text = ", ".join(f"{model} {rate / 1e12:.2f} TFLOP/s" for model, rate in sorted(shared.items()))
            print(f"preflight rates per job with {jobs} job(s): {rates_text}", flush=True)
    remaining = None if budget is None else budget - (time.perf_counter() - started)
    if shared:
        print(
            format_plan(
                simulate([replace(s, start=None) for s in slots], jobs, remaining), saved, device, jobs, remaining
            ),
            flush=True,
        )
    finished_dirs: dict[Path, bool] = {}

    def after(run: PlannedRun) -> None:
        finished_dirs[dirs[run.id]] = run.keep_weights
        if archive is not None:
            from fer_helpers.train.bundle import pack_runs

            pack_runs(finished_dirs, archive)
        if on_finish is not None:
            on_finish(run, dirs[run.id])

    outcome = run_plan(
        todo,
        estimates,
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
    runs: list[PlannedRun],
    profile: str,
    data_path: str | None,
    jobs: int,
    threads: int,
    compile: bool = False,
    data=None,
) -> dict[str, float]:
    """The preflight: train each run cut to seconds in worker processes, archive them and read them back; return
    the training rate each model reached there (`preflight_rates`, with `data` the faces the plan trains on).

    Raises RuntimeError naming the run and its log's last lines at the first failure.
    """
    import tempfile

    from fer_helpers.train.bundle import pack_runs, unpack_runs

    with tempfile.TemporaryDirectory(prefix="preflight-") as tmp:
        root = Path(tmp) / "runs"
        print(
            f"preflight: {len(runs)} run(s), {PREFLIGHT_EPOCHS} epochs on a few faces each: "
            + ", ".join(r.id for r in runs),
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
        return {} if data is None else preflight_rates(runs, root, data)


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
