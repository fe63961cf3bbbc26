"""The campaign: one at a time per run folder, each finished run committed with its numbers, runs trained in turn."""

from __future__ import annotations

import subprocess

import numpy as np
import pytest

from fer_helpers.core.config import CNNConfig
from fer_helpers.data.results import RunResult
from fer_helpers.orchestrate import campaign
from fer_helpers.orchestrate.cli import main
from fer_helpers.orchestrate.schedule import train_plan
from fer_helpers.train.plan import PlannedRun


def _saved_run(run_dir, seed=1) -> RunResult:
    labels = np.arange(14) % 7
    result = RunResult(
        model="model_b",
        config={"model": "model_b", "max_epochs": 50},
        key=run_dir.name.split("-")[-1],
        run_dir=run_dir,
        data_sha256="abc",
        logits={"PrivateTest": np.eye(7, dtype=np.float32)[labels]},
        labels={"PrivateTest": labels},
        metrics={"PublicTest": {"accuracy": 0.6}, "PrivateTest": {"accuracy": 0.6512, "macro_f1": 0.6421}},
        seed=seed,
        train_seconds=5.5 * 3600,
        extra={"precision": "32-true", "machine": "AMD EPYC, 2 cores, emulated bf16", "best_epoch": 44},
    )
    result.extra["stopped_epoch"] = 50
    result.save()
    return result


def _git(repo, *args) -> str:
    return subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, text=True).stdout


def test_a_finished_run_is_committed_alone_with_its_numbers_and_machine(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, "init", "-q")
    _git(repo, "config", "user.email", "study@example.org")
    _git(repo, "config", "user.name", "Study")
    (repo / "notes.txt").write_text("work in progress, not the campaign's\n")
    run_dir = repo / "runs" / "full" / "results" / "model_b-0123456789ab"
    _saved_run(run_dir)
    run = PlannedRun("model_b/seed1", "model_b", "model_b", CNNConfig(model="model_b", seed=1))

    assert campaign.record_run(run, run_dir, repo=repo, render=False) is True
    message = _git(repo, "log", "-1", "--format=%s").strip()
    assert message == (
        "Model B, seed 1 with the full profile on AMD EPYC, 2 cores, emulated bf16 in float32: PrivateTest 65.1%, "
        "macro F1 0.642, best PublicTest epoch 44 of 50, 5.5 h"
    )
    committed = set(_git(repo, "show", "--name-only", "--format=", "HEAD").split())
    assert committed == {f"runs/full/results/model_b-0123456789ab/{f}" for f in ("result.json", "predictions.npz")}
    assert "notes.txt" in _git(repo, "status", "--porcelain")  # someone else's work stays uncommitted
    assert campaign.record_run(run, run_dir, repo=repo, render=False) is False  # nothing new: no empty commit


def test_a_commit_that_cannot_be_made_leaves_the_run_saved_and_the_campaign_going(tmp_path, capsys):
    run_dir = tmp_path / "not-a-repo" / "results" / "model_b-0123456789ab"
    _saved_run(run_dir)
    run = PlannedRun("model_b/seed1", "model_b", "model_b", CNNConfig(model="model_b", seed=1))
    assert campaign.record_run(run, run_dir, repo=tmp_path / "not-a-repo", render=False) is False
    assert "git add failed" in capsys.readouterr().out
    assert (run_dir / "result.json").exists()


def test_only_one_training_command_trains_in_a_run_folder(tmp_path, capsys):
    first = campaign.single_training(tmp_path)
    with pytest.raises(campaign.CampaignError, match="already"):
        campaign.single_training(tmp_path)
    args = ["train", "--profile", "smoke", "--data", "synthetic", "--run-dir", str(tmp_path)]
    assert main(args) == 2 and "already" in capsys.readouterr().err  # refused before anything loads
    assert main([*args, "--plan", "--only", "precision_check"]) == 0  # a plan trains nothing: it may look
    first.close()
    campaign.single_training(tmp_path).close()  # free again once the first has stopped


def test_commit_is_for_the_full_profile_only(capsys):
    assert main(["train", "--profile", "smoke", "--data", "synthetic", "--commit"]) == 2
    assert "--profile full" in capsys.readouterr().err


@pytest.mark.trains
def test_one_job_trains_the_runs_in_turn_in_this_process_and_calls_back_after_each(no_fer, tmp_path, capsys):
    finished = []
    outcome = train_plan(
        "smoke",
        "synthetic",
        tmp_path,
        only=["baseline_cnn", "precision_check"],
        on_finish=lambda run, folder: finished.append((run.id, (folder / "result.json").exists())),
    )
    ids = ["baseline_cnn/seed0", "baseline_cnn_bf16/seed0"]
    assert [run.id for run, _ in outcome.finished] == ids
    assert finished == [(run_id, True) for run_id in ids]  # called once each, with the saved folder
    assert "preflight" not in capsys.readouterr().out  # in turn, in this process: no worker, no preflight
    again = train_plan("smoke", "synthetic", tmp_path, only=["baseline_cnn", "precision_check"])
    assert again is None  # everything saved: nothing left to plan
    out = capsys.readouterr().out
    assert "2 run(s) already saved" in out and "estimate: 0 s for 0 runs" in out
