"""The campaign: the full profile trained on the machine at hand, over as many sittings as it takes.

`make campaign` starts `fer-study train --profile full --commit` in the background at low priority. It trains the
plan's missing runs one after another, most valuable first (`plan.plan_runs`, `schedule.train_plan`); every CNN
run saves its whole training state after each epoch, so the same command started again (after a restart, the
next day, on the next sitting) resumes where it stopped, losing at most the epoch under way. After each finished
run, `record_run` re-renders reports/ from the saved runs (notebooks 05 and 06, which train nothing) and commits the
run's folder with the re-rendered report, in one commit whose message gives the run's numbers, the machine and
the precision it trained in. One training command at a time trains in a run folder (`single_training`).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import IO

from fer_helpers.core.hardware import PRECISION_NAMES
from fer_helpers.core.paths import REPO
from fer_helpers.data.results import RunResult
from fer_helpers.models.registry import label
from fer_helpers.train.plan import PlannedRun

LOCK_FILE = "train.lock"  # in the run folder's logs/: held while a training command trains there
RENDERED_NOTEBOOKS = ("05", "06")  # what re-renders reports/ from saved runs without training anything


class CampaignError(RuntimeError):
    """A training command cannot start: another one trains in the same run folder."""


def single_training(run_root: str | Path) -> IO:
    """Hold the run folder's training lock until the returned file is closed; CampaignError if another command
    holds it (two commands would train the same runs from the same checkpoints)."""
    path = Path(run_root) / "logs" / LOCK_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = open(path, "a+", encoding="utf-8")
    try:
        import fcntl
    except ImportError:  # Windows: no advisory locks; one command per folder is then the user's to keep
        return handle
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.seek(0)
        holder = handle.read().strip() or "another process"
        handle.close()
        raise CampaignError(
            f"a training command is running in {run_root} already ({holder}); a campaign resumes by itself"
        ) from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"pid {os.getpid()}\n")
    handle.flush()
    return handle


def run_message(run: PlannedRun, result: RunResult) -> str:
    """The commit message of a finished run: what it is, where and how it trained, what it scored."""
    private = result.metrics["PrivateTest"]
    what = f"{label(result.model)}" + (f", seed {run.seed}" if run.seed is not None else "")
    scores = f"PrivateTest {private['accuracy']:.1%}, macro F1 {private['macro_f1']:.3f}"
    if not run.cnn:
        return f"{what}: {scores}, fitted in {result.train_seconds / 60:.0f} minutes"
    extra = result.extra
    precision = PRECISION_NAMES.get(extra.get("precision"), extra.get("precision", "?"))
    machine = extra.get("machine") or result.device
    epochs = f"best PublicTest epoch {extra.get('best_epoch')} of {extra.get('stopped_epoch')}"
    return (
        f"{what} with the full profile on {machine} in {precision}: {scores}, {epochs}, "
        f"{result.train_seconds / 3600:.1f} h"
    )


def _git(repo: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True)


def record_run(run: PlannedRun, result_dir: Path, repo: str | Path = REPO, render: bool = True) -> bool:
    """Re-render reports/ from the saved runs, then commit the run's folder with it; True when a commit was made.

    A failed re-render still commits the run (the next one renders both); a failed commit (no git, no identity)
    is printed and the campaign goes on: the run stays saved in its folder either way.
    """
    repo = Path(repo)
    paths = [str(Path(result_dir).resolve().relative_to(repo.resolve()))]
    if render:
        command = [sys.executable, "-m", "fer_helpers", "report", "--profile", "full", "--notebooks"]
        done = subprocess.run([*command, *RENDERED_NOTEBOOKS], cwd=repo)
        if done.returncode == 0:
            paths += [p for p in ("reports", "README.md") if (repo / p).exists()]
        else:
            print(f"re-rendering reports/ failed (exit {done.returncode}); committing the run alone", flush=True)
    added = _git(repo, "add", "--", *paths)
    if added.returncode != 0:
        print(f"git add failed: {added.stderr.strip()}", flush=True)
        return False
    if _git(repo, "diff", "--cached", "--quiet", "--", *paths).returncode == 0:
        return False  # nothing new to commit (the run folder is ignored or unchanged)
    message = run_message(run, RunResult.load(result_dir))
    committed = _git(repo, "commit", "-q", "-m", message, "--", *paths)
    if committed.returncode != 0:
        print(f"git commit failed: {(committed.stderr or committed.stdout).strip()}", flush=True)
        return False
    print(f"committed: {message}", flush=True)
    return True
