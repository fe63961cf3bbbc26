"""The one plan of runs: its value order, its steps, and every driver reading it."""

from __future__ import annotations

import itertools

import pytest

from fer_helpers.core.profiles import get_profile
from fer_helpers.models.recipes import MODEL_B_ABLATIONS
from fer_helpers.train.plan import PlannedRun, main_cnns, plan_runs, plan_steps, step_runs


def test_the_full_plan_trains_what_the_study_lacks_in_the_campaign_order():
    ids = [r.id for r in plan_runs("full")]
    assert len(ids) == len(set(ids))
    assert ids[:3] == ["resnet_fer/seed0", "model_b/seed0", "baseline_cnn/seed0"]  # every main CNN once, ours first
    ablation0 = [f"{name}/seed0" for name in MODEL_B_ABLATIONS]
    assert ids[3:9] == ablation0  # one seed of the ablation, before anything else
    assert ids[9:11] == ["baseline_cnn_crowd/seed0", "model_b_crowd/seed0"]
    assert ids[11:13] == ["resnet_fer/seed1", "resnet_fer/seed2"]  # our other seeds, before the others' seeds
    later = [i for i, r in enumerate(plan_runs("full")) if r.step == "ablation" and r.seed != 0]
    assert min(later) > ids.index("baseline_cnn/seed2")
    ablation = [r for r in plan_runs("full") if r.step == "ablation"]
    assert [r.seed for r in ablation] == sorted(r.seed for r in ablation) and len(ablation) == 18
    steps = [step for step, _ in itertools.groupby(r.step for r in plan_runs("full"))]
    assert steps == [
        *("resnet_fer", "model_b", "baseline_cnn", "ablation", "crowd"),
        *("resnet_fer", "model_b", "baseline_cnn", "ablation"),
        *("precision_check", "probe", "recipe_steps", "hog_svm", "hog_variants"),
    ]


def test_the_plan_checks_bf16_on_the_baseline_apart_from_its_float32_run():
    plan = {r.id: r for r in plan_runs("full")}
    check, float32 = plan["baseline_cnn_bf16/seed0"], plan["baseline_cnn/seed0"]
    assert check.step == "precision_check"
    assert check.config.precision == "bf16-mixed" and check.config.experiment() == float32.config.experiment()
    assert check.name != float32.name  # so it never replaces, nor is loaded as, the float32 run


def test_weights_travel_back_only_for_the_main_models():
    keep = {r.name for r in plan_runs("full") if r.keep_weights}
    assert keep == set(main_cnns()) == {"resnet_fer", "model_b", "baseline_cnn"}
    assert not any(r.keep_weights for r in plan_runs("full") if r.step in ("ablation", "recipe_steps", "crowd"))


def test_a_profile_with_capped_side_data_plans_its_own_ablation_reference():
    side = [r for r in plan_runs("classroom") if r.step == "ablation" and r.name == "model_b"]
    assert side and all(r.faces == "side" for r in side)
    assert not any(r.step == "ablation" and r.name == "model_b" for r in plan_runs("full"))


def test_each_run_says_which_faces_it_trains_on(synth):
    profile = get_profile("smoke")
    plan = plan_runs(profile)
    assert {r.faces for r in plan} == {"all", "side", "steps", "crowd"}
    steps = next(r for r in plan if r.faces == "steps")
    assert len(steps.train_data(synth, profile)) < len(synth)  # the recipe steps' capped faces
    assert steps.data_sha256(synth, profile) != synth.sha256
    crowd = next(r for r in plan if r.faces == "crowd")
    with pytest.raises(ValueError, match="votes"):
        crowd.train_data(synth, profile)
    assert crowd.data_sha256(synth, profile) == synth.sha256
    with pytest.raises(ValueError, match="faces"):
        PlannedRun("x", "model_b", "model_b", None, faces="some")


def test_steps_are_the_plans_own_and_unknown_ones_are_refused():
    steps = plan_steps("full")
    assert steps[:5] == ["hog_svm", "hog_variants", "resnet_fer", "model_b", "baseline_cnn"]
    assert {"ablation", "crowd", "precision_check", "probe", "recipe_steps"} <= set(steps)
    assert [r.seed for r in step_runs("full", "model_b")] == [0, 1, 2]
    assert step_runs("classroom", "hog_variants") == []  # a step the lesson plans no run of: none, not an error
    with pytest.raises(ValueError, match="unknown step"):
        step_runs("full", "transformer")


def test_a_hog_variant_is_found_where_its_fit_saves_it(synth, tmp_path):
    from fer_helpers.orchestrate.schedule import result_dirs

    profile = get_profile("smoke")
    small = synth.subsample(20, 10, seed=0)  # so few faces that the variant's PCA is cut down to fit them
    run = next(r for r in plan_runs(profile) if r.name == "hog_multiscale")
    assert run.key_on(small, profile) != run.key(small.sha256)
    result = run.train(small, profile, tmp_path, n_jobs=1)
    assert result.run_dir == result_dirs([run], small, profile, tmp_path)[run.id]
