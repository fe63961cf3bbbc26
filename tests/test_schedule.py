"""The budgeted training command: the plan's order, the estimates, the budget cut-off, parallel workers, resuming."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tarfile

import pytest

from fer_helpers.core.config import EXECUTION_FIELDS, CNNConfig
from fer_helpers.core.profiles import get_profile
from fer_helpers.orchestrate import estimate, schedule
from fer_helpers.orchestrate.cli import main
from fer_helpers.orchestrate.estimate import Device, Slot, estimate_seconds, simulate
from fer_helpers.orchestrate.schedule import run_plan
from fer_helpers.train.bundle import PART_LIMIT_BYTES
from fer_helpers.train.plan import PlannedRun, plan_runs


def test_the_cache_key_is_the_experiment_not_where_it_ran():
    plain = CNNConfig(model="model_b")
    elsewhere = CNNConfig(model="model_b", precision="bf16-mixed", compile=True, channels_last=False, devices=2)
    run = PlannedRun("x", "model_b", "model_b", plain)
    assert run.key("abc") == PlannedRun("x", "model_b", "model_b", elsewhere).key("abc")
    assert run.key("abc") != PlannedRun("x", "model_b", "model_b", CNNConfig(model="model_b", seed=1)).key("abc")
    assert set(EXECUTION_FIELDS) <= set(plain.to_dict())


def _slot(name: str, seconds: float) -> Slot:
    return Slot(PlannedRun(name, "model_b", name, CNNConfig()), seconds)


def test_simulate_fills_the_free_job_first_and_skips_what_cannot_finish():
    slots = simulate([_slot("a", 50), _slot("b", 30), _slot("c", 40), _slot("d", 100), _slot("e", 10)], 2, 90)
    starts = {s.run.id: s.start for s in slots}
    assert starts == {"a": 0, "b": 0, "c": 30, "d": None, "e": 50}  # d would end past 90 s; e still fits


def test_more_jobs_share_a_gpu_up_to_its_ceiling_and_a_cpu_not_at_all():
    gpu, cpu = Device.target("h200"), Device("cpu", "cpu", 1e11)
    assert gpu.job_rate(2) * 2 > gpu.job_rate(1)
    assert gpu.job_rate(16) * 16 == pytest.approx(gpu.peak_flops * estimate.MAX_EFFICIENCY)
    assert cpu.job_rate(2) * 2 == pytest.approx(cpu.job_rate(1))
    with pytest.raises(ValueError, match="unknown target"):
        Device.target("tpu")


def test_the_plan_on_a_cpu_estimates_in_the_precision_that_will_train(monkeypatch):
    import torch

    from fer_helpers.core import hardware
    from fer_helpers.core.paths import PRECISION_ENV

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(hardware, "measure_matmul_flops", lambda *args, **kwargs: 1e11)
    monkeypatch.setattr(hardware, "cpu_has_native_bf16", lambda: True)
    assert Device.here().bf16
    monkeypatch.setenv(PRECISION_ENV, "32-true")  # forced float32: float32's rates, not bf16's
    assert not Device.here().bf16


def test_plan_for_an_h200_ends_with_the_estimate_line(no_fer, tmp_path, capsys):
    assert (
        main(["train", "--profile", "smoke", "--run-dir", str(tmp_path), "--plan", "--target", "h200", "--jobs", "2"])
        == 0
    )
    out = capsys.readouterr().out.strip().splitlines()
    assert re.fullmatch(r"estimate: \d+ s for \d+ runs on NVIDIA H200 \(2 jobs\): [\d.]+ hours", out[-1])
    assert not (tmp_path / "results").exists()  # --plan trains nothing


def test_target_without_plan_and_fresh_with_a_budget_are_refused(capsys):
    assert main(["train", "--profile", "smoke", "--target", "h200"]) == 2
    assert main(["train", "--profile", "smoke", "--jobs", "2", "--fresh"]) == 2


def test_only_takes_any_step_of_the_plan_and_plans_it_alone(no_fer, tmp_path, capsys):
    args = ["train", "--profile", "smoke", "--run-dir", str(tmp_path), "--only", "precision_check", "--plan"]
    assert main(args) == 0
    rows = [line.split()[0] for line in capsys.readouterr().out.splitlines() if "/seed" in line]
    assert rows == ["baseline_cnn_bf16/seed0"]


def _python(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def test_run_plan_starts_no_run_past_the_budget_and_stops_an_overdue_one(tmp_path):
    runs = [PlannedRun(n, "model_b", n, CNNConfig()) for n in ("slow", "never")]
    commands = {"slow": _python("import time; time.sleep(60)"), "never": _python("pass")}
    outcome = run_plan(
        runs,
        {"slow": 0.5, "never": 5.0},
        lambda r: commands[r.id],
        jobs=1,
        budget_seconds=1.0,
        log_dir=tmp_path,
        grace_seconds=1.0,
    )
    assert [r.id for r in outcome.stopped] == ["slow"]
    assert [r.id for r in outcome.not_started] == ["never"]


def test_run_plan_reports_a_failed_run_with_its_log_and_goes_on(tmp_path):
    runs = [PlannedRun(n, "model_b", n, CNNConfig()) for n in ("bad", "good")]
    commands = {"bad": _python("raise SystemExit('no such layer')"), "good": _python("pass")}
    finished = []
    outcome = run_plan(
        runs,
        {"bad": 0.0, "good": 0.0},
        lambda r: commands[r.id],
        jobs=2,
        budget_seconds=None,
        log_dir=tmp_path,
        on_finish=lambda r: finished.append(r.id),
    )
    assert [r.id for r, _ in outcome.failed] == ["bad"] and "no such layer" in outcome.failed[0][1]
    assert finished == ["good"] and [r.id for r, _ in outcome.finished] == ["good"]


@pytest.mark.trains
def test_two_jobs_train_archive_and_resume_the_smoke_profile(no_fer, tmp_path, capsys):
    """The real command on synthetic faces: preflight, two workers, archive per finished run, then resume."""
    args = [
        "train",
        "--profile",
        "smoke",
        "--run-dir",
        str(tmp_path / "runs"),
        "--only",
        "baseline_cnn",
        "model_b",
        "--jobs",
        "2",
        "--archive",
        str(tmp_path / "out"),
    ]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "preflight passed" in out and "finished 2, failed 0" in out
    results = sorted(p.name.split("-")[0] for p in (tmp_path / "runs" / "results").iterdir())
    assert results == ["baseline_cnn", "model_b"]
    parts = sorted((tmp_path / "out").iterdir())
    assert [p.name for p in parts] == ["runs-00.tar.gz"] and parts[0].stat().st_size < PART_LIMIT_BYTES
    with tarfile.open(parts[0]) as tar:
        names = tar.getnames()
    assert sum(n.endswith("weights.safetensors") for n in names) == 2
    assert sum(n.endswith("predictions.npz") for n in names) == 2
    assert main(args) == 0  # everything saved: the second command plans nothing and trains nothing
    out = capsys.readouterr().out
    assert "2 run(s) already saved" in out and "estimate: 0 s for 0 runs" in out


@pytest.mark.trains
def test_the_training_path_runs_without_the_notebook_packages(no_fer, tmp_path):
    """A GPU host has no papermill or pytorch-grad-cam: planning and a worker's run must not need them."""
    blocked = ["papermill", "pytorch_grad_cam", "seaborn", "nbformat"]
    spec = {
        "id": "baseline_cnn/seed0",
        "profile": "smoke",
        "data": "synthetic",
        "run_root": str(tmp_path),
        "threads": 1,
        "preflight": True,
    }
    code = (
        f"import sys\nfor m in {blocked!r}: sys.modules[m] = None\n"
        "from fer_helpers.orchestrate.cli import main\n"
        f"assert main(['train', '--profile', 'smoke', '--data', 'synthetic', '--run-dir', {str(tmp_path)!r}, "
        "'--plan']) == 0\n"
        f"from fer_helpers.orchestrate.schedule import worker_main\nassert worker_main({spec!r}) == 0\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert list((tmp_path / "results").glob("baseline_cnn-*/result.json"))


def test_preflight_cuts_each_architecture_to_two_epochs_on_few_faces(synth):
    plan = plan_runs("full")
    runs = schedule.preflight_runs(plan)
    architectures = {(r.config.model, r.config.model_kwargs) for r in plan if r.cnn}
    assert {(r.config.model, r.config.model_kwargs) for r in runs} == architectures
    assert len(architectures) == 7  # 3 models and 4 architecture switches of the ablation
    assert {r.config.scheduler for r in runs} == {r.config.scheduler for r in plan if r.cnn}
    run, data, profile = schedule.preflight_variant(runs[0], synth, get_profile("full"))
    assert run.config.max_epochs == schedule.PREFLIGHT_EPOCHS and len(data) < len(synth)
    assert profile.side_train_per_class is None


def test_preflight_rates_come_from_the_last_epoch_and_replace_the_assumed_ones(synth, tmp_path):
    """A preflight run's last epoch times the model where the plan trains: its rate, not an assumed share of the
    device's peak, sizes the runs (a slower device than assumed means longer estimates)."""
    run = next(r for r in plan_runs("full") if r.cnn and r.config.model == "model_b")
    folder = tmp_path / "results" / f"{run.name}-0123456789ab"
    folder.mkdir(parents=True)
    (folder / "history.csv").write_text("epoch,seconds\n1,30.0\n2,4.0\n", encoding="utf-8")
    rates = schedule.preflight_rates([run], tmp_path, synth)
    n_train = int((synth.subsample(schedule.PREFLIGHT_TRAIN_PER_CLASS, 0, seed=0).usage == "Training").sum())
    forward = schedule.forward_flops(run.config.model, run.config.model_kwargs)
    assert rates == {"model_b": pytest.approx(schedule.TRAIN_FLOPS_PER_FORWARD * forward * n_train / 4.0)}
    device = Device.target("h100")
    assumed = estimate_seconds(run, 28_709, 7_178, device, 2)
    measured = estimate_seconds(run, 28_709, 7_178, device, 2, shared={"model_b": rates["model_b"] / 10})
    faster = estimate_seconds(run, 28_709, 7_178, device, 2, shared={"model_b": rates["model_b"] * 10})
    assert measured > faster and measured != assumed


def test_measured_rates_read_a_slim_tree_of_result_files(tmp_path):
    """A training host has each saved run's result.json only: the rates must come from those files alone."""
    import shutil

    from fer_helpers.core.paths import REPO

    for path in (REPO / "runs" / "full" / "results").glob("*/result.json"):
        (tmp_path / "results" / path.parent.name).mkdir(parents=True)
        shutil.copy(path, tmp_path / "results" / path.parent.name / "result.json")
    nowhere = tmp_path / "no-benchmarks.json"
    saved = {path.parent.name for path in (tmp_path / "results").glob("*/result.json")}
    machines = {
        json.loads((tmp_path / "results" / name / "result.json").read_text())["extra"].get("machine") for name in saved
    }
    kind = "AMD EPYC, 2 cores, emulated bf16"
    assert kind not in machines  # the committed runs predate the record of the machine: none counts for this kind
    assert estimate.measured_rates(tmp_path, Device("cpu", kind, 1e11, bf16=False), nowhere) == {}
    # a run trained on this kind of machine gives its model's rate
    result = tmp_path / "results" / sorted(n for n in saved if n.startswith("model_b-"))[0] / "result.json"
    meta = json.loads(result.read_text())
    meta["extra"]["machine"] = kind
    result.write_text(json.dumps(meta))
    rates = estimate.measured_rates(tmp_path, Device("cpu", kind, 1e11, bf16=False), nowhere)
    assert set(rates) == {"model_b"} and rates["model_b"] > 1e9
    assert estimate.measured_rates(tmp_path, Device.target("h200"), nowhere) == {}  # no run of ours on an H200 yet


def test_without_a_run_on_this_kind_of_machine_its_benchmark_gives_the_rates(tmp_path):
    bench = tmp_path / "benchmarks.json"
    kind = "Some CPU, 2 cores, native bf16"
    train = {"model_b_train_images_per_second": 100.0, "model_b_train_images_per_second_bf16": 200.0}
    bench.write_text(json.dumps({"machines": {kind: {"results": {"train": train}}}}))
    bf16 = estimate.measured_rates(tmp_path, Device("cpu", kind, 1e11, bf16=True), bench)
    float32 = estimate.measured_rates(tmp_path, Device("cpu", kind, 1e11, bf16=False), bench)
    assert bf16["model_b"] == pytest.approx(2 * float32["model_b"])  # the precision auto trains in here
    assert estimate.measured_rates(tmp_path, Device("cpu", "Other CPU, 2 cores, native bf16", 1e11), bench) == {}
