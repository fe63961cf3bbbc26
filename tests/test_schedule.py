"""The budgeted training command: the plan's order, the estimates, the budget cut-off, parallel workers, resuming."""

from __future__ import annotations

import re
import subprocess
import sys
import tarfile

import pytest

from fer_helpers import schedule
from fer_helpers.bundle import PART_LIMIT_BYTES
from fer_helpers.cli import main
from fer_helpers.config import EXECUTION_FIELDS, CNNConfig
from fer_helpers.profiles import get_profile
from fer_helpers.schedule import Device, PlannedRun, Slot, plan_runs, run_plan, simulate


def test_the_full_plan_puts_the_most_valuable_runs_first():
    ids = [r.id for r in plan_runs("full")]
    assert len(ids) == len(set(ids))
    assert ids[:2] == ["resnet_fer/seed0", "resnet_fer_120ep/seed0"]  # our model, then its longer schedule
    first = {
        step: min(i for i, r in enumerate(plan_runs("full")) if r.step == step)
        for step in ("model_b", "baseline_cnn", "recipe_steps", "ablation", "hog_svm")
    }
    assert ids.index("resnet_fer/seed1") > max(ids.index("model_b/seed2"), ids.index("baseline_cnn/seed2"))
    assert ids.index("resnet_fer/seed2") < first["recipe_steps"] < first["ablation"] < first["hog_svm"]
    assert ids.index("baseline_cnn_crowd/seed0") < ids.index("model_b_crowd/seed0") < ids.index("resnet_fer/seed1")
    ablation = [r for r in plan_runs("full") if r.step == "ablation"]
    seeds = [r.config.seed for r in ablation]
    assert seeds == sorted(seeds) and len(ablation) == 18  # one seed of every variant before the next seed


def test_the_plan_checks_bf16_on_the_baseline_apart_from_its_float32_run():
    plan = {r.id: r for r in plan_runs("full")}
    check, float32 = plan["baseline_cnn_bf16/seed0"], plan["baseline_cnn/seed0"]
    assert check.config.precision == "bf16-mixed" and check.config.experiment() == float32.config.experiment()
    assert check.name != float32.name  # so it never replaces, nor is loaded as, the float32 run
    ids = list(plan)
    assert ids.index("baseline_cnn/seed2") < ids.index("baseline_cnn_bf16/seed0") < ids.index("resnet_fer/seed1")


def test_weights_travel_back_only_for_the_models_worth_keeping():
    keep = {r.name for r in plan_runs("full") if r.keep_weights}
    assert keep == {"resnet_fer", "model_b", "baseline_cnn"}
    assert not any(r.keep_weights for r in plan_runs("full") if r.step in ("ablation", "recipe_steps"))


def test_a_profile_with_capped_side_data_plans_its_own_ablation_reference():
    side = [r for r in plan_runs("classroom") if r.step == "ablation" and r.name == "model_b"]
    assert side and all(r.side for r in side)


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
    assert gpu.job_rate(16) * 16 == pytest.approx(gpu.peak_flops * schedule.MAX_EFFICIENCY)
    assert cpu.job_rate(2) * 2 == pytest.approx(cpu.job_rate(1))
    with pytest.raises(ValueError, match="unknown target"):
        Device.target("tpu")


def test_plan_for_an_h200_ends_with_the_estimate_line(no_fer, tmp_path, capsys):
    assert (
        main(["train", "--profile", "smoke", "--run-dir", str(tmp_path), "--plan", "--target", "h200", "--jobs", "2"])
        == 0
    )
    out = capsys.readouterr().out.strip().splitlines()
    assert re.fullmatch(r"estimate: \d+ s for \d+ runs on H200 \(2 jobs\)", out[-1])
    assert not (tmp_path / "results").exists()  # --plan trains nothing


def test_target_without_plan_and_fresh_with_a_budget_are_refused(capsys):
    assert main(["train", "--profile", "smoke", "--target", "h200"]) == 2
    assert main(["train", "--profile", "smoke", "--jobs", "2", "--fresh"]) == 2


def test_only_takes_a_step_that_exists_only_in_the_plan_and_plans_it_alone(no_fer, tmp_path, capsys):
    from fer_helpers.steps import training_steps

    plan_steps = {r.step for r in plan_runs("full")}
    assert set(schedule.PLAN_ONLY_STEPS) <= plan_steps and not set(schedule.PLAN_ONLY_STEPS) & set(training_steps())
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
        "from fer_helpers.cli import main\n"
        f"assert main(['train', '--profile', 'smoke', '--data', 'synthetic', '--run-dir', {str(tmp_path)!r}, "
        "'--plan']) == 0\n"
        f"from fer_helpers.schedule import worker_main\nassert worker_main({spec!r}) == 0\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert list((tmp_path / "results").glob("baseline_cnn-*/result.json"))


def test_preflight_cuts_each_architecture_to_one_epoch_on_few_faces(synth):
    plan = plan_runs("full")
    runs = schedule.preflight_runs(plan)
    architectures = {(r.config.model, r.config.model_kwargs) for r in plan if r.cnn}
    assert {(r.config.model, r.config.model_kwargs) for r in runs} == architectures
    assert len(architectures) == 7  # 3 models and 4 architecture switches of the ablation
    assert {r.config.scheduler for r in runs} == {r.config.scheduler for r in plan if r.cnn}
    run, data, profile = schedule.preflight_variant(runs[0], synth, get_profile("full"))
    assert run.config.max_epochs == 1 and len(data) < len(synth) and profile.side_train_per_class is None


def test_measured_rates_read_a_slim_tree_of_result_files(tmp_path):
    """A training host has each saved run's result.json only: the rates must come from those files alone."""
    import shutil

    from fer_helpers.results import REPO

    for path in (REPO / "runs" / "full" / "results").glob("*/result.json"):
        (tmp_path / "results" / path.parent.name).mkdir(parents=True)
        shutil.copy(path, tmp_path / "results" / path.parent.name / "result.json")
    rates = schedule.measured_rates(tmp_path, Device("cpu", "cpu (2 threads)", 1e11))
    assert {"baseline_cnn", "model_b"} <= set(rates) and all(rate > 1e9 for rate in rates.values())
    assert schedule.measured_rates(tmp_path, Device.target("h200")) == {}  # no run of ours on an H200 yet
