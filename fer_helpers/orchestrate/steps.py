"""The notebooks' training steps: each trains (or reloads from `Study.run_dir`) one step of the plan and returns
its results in the shape the notebook shows them.

The runs are the plan's (`plan.plan_runs`), so a notebook and `fer-study train` ask for the same cached results: a
GPU host or a CPU campaign trains everything with `fer-study train --profile full`, and the notebooks render it
afterwards.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

from fer_helpers.data.fer2013 import FERData, FERDataError
from fer_helpers.data.results import RunResult
from fer_helpers.orchestrate.study import Study, in_notebook
from fer_helpers.train.plan import PlannedRun, step_runs


def hog_svm_runs(study: Study, fresh: bool = False) -> dict[str, RunResult]:
    """The paper's HOG + linear SVM, without and with balanced class weights (C chosen on PublicTest)."""
    from fer_helpers.train.classical import fit_hog_svms, hog_svm_configs

    configs = hog_svm_configs(study.profile)
    return fit_hog_svms(study.data, configs, study.run_dir, fresh, n_jobs=study.profile.num_workers_hog)


def cnn_runs(study: Study, model: str, fresh: bool = False) -> list[RunResult]:
    """One of the registry's CNNs with its recipe at the profile's size, one run per profile seed."""
    return [_train(study, run, fresh) for run in step_runs(study.profile, model)]


def _train(study: Study, run: PlannedRun, fresh: bool = False, crowd: FERData | None = None) -> RunResult:
    return run.train(study.data, study.profile, study.run_dir, fresh, n_jobs=study.profile.num_workers_hog, crowd=crowd)


def recipe_step_runs(study: Study, fresh: bool = False) -> pd.DataFrame:
    """Model B's recipe turned into ours one change at a time (seed 0): the table of what each change bought.

    The steps train on `recipes.recipe_step_data`: all of the study's data unless the profile caps the side
    experiments (or, under smoke, every split of the steps).
    A profile with `step_epochs=0` trains none and gets an empty table. Every step is judged on PublicTest, never
    PrivateTest.
    """
    from fer_helpers.models.recipes import config_changes, recipe_step_configs, recipe_step_data
    from fer_helpers.train.training import fit_cnn

    data = recipe_step_data(study.data, study.profile)
    columns = ["change", "why", "accuracy", "gain (points)", "macro_f1", "params", "train_seconds"]
    configs = recipe_step_configs(study.profile, study.profile.seeds[0])
    if not configs:
        return pd.DataFrame(columns=columns, index=pd.Index([], name="step"))
    rows = []
    previous = None
    for step, config in configs:
        result = fit_cnn(data, config, study.run_dir, fresh=fresh, name=step.result_name)
        changes = config_changes(previous, config) if previous is not None else {}
        rows.append(
            {
                "step": step.name,
                "change": ", ".join(f"{k}={v}" for k, v in changes.items()) or "(starting point)",
                "why": step.why,
                "accuracy": result.metrics["PublicTest"]["accuracy"],
                "macro_f1": result.metrics["PublicTest"]["macro_f1"],
                "params": result.params,
                "train_seconds": result.train_seconds,
            }
        )
        previous = config
    table = pd.DataFrame(rows).set_index("step")
    table.insert(3, "gain (points)", 100 * table["accuracy"].diff().fillna(0.0))
    return table[columns]


def ablation_runs(study: Study, fresh: bool = False) -> dict[str, list[RunResult]]:
    """Model B with each ingredient removed in turn (MODEL_B_ABLATIONS), one run per profile seed.

    All runs train on `recipes.side_data` (the profile's data, or a class-capped subset of its Training where the profile
    sets `side_train_per_class`) for the profile's `ablation_epochs`, in plan order (one seed of every variant before
    the next seed). The full Model B they are compared with comes first, under "model_b": on the profile's own data
    and epochs these are the runs of the "model_b" step, loaded from their cache; `fresh` retrains the ablations,
    not the reference.
    """
    plan = step_runs(study.profile, "ablation")
    reference = [run for run in plan if run.name == "model_b"] or step_runs(study.profile, "model_b")
    runs = {"model_b": [_train(study, run) for run in reference]}
    for run in plan:
        if run.name != "model_b":
            runs.setdefault(run.name, []).append(_train(study, run, fresh))
    return runs


SIMULATED_VOTES_WARNING = (
    "SIMULATED CROWD VOTES - NOT FER+: the synthetic faces have no FER+ votes, so ten stand-in annotators per face "
    "were drawn from a noise model (ferplus.synthetic_votes); every label-noise number of this run describes that "
    "model, not FER-2013's labels."
)


def crowd_data(study: Study, ferplus_path: str | Path | None = None) -> FERData:
    """The study's faces with crowd votes attached: FER+ on FER-2013, simulated votes (said loudly) on synthetic faces.

    FER+ is looked for by `ferplus.find_ferplus` (ferplus_path, FERPLUS_PATH, data/, beside FER-2013); on FER-2013
    without it, a FERDataError says where to put it.
    """
    from fer_helpers.core import paths
    from fer_helpers.data import ferplus

    if study.synthetic:
        if not in_notebook():  # notebook 08 displays the warning itself, once
            print("!" * 78 + f"\n!! {SIMULATED_VOTES_WARNING}\n" + "!" * 78, file=sys.stderr)
        return ferplus.attach_votes(study.data, ferplus.synthetic_votes(study.data, seed=0))
    path = ferplus.find_ferplus(ferplus_path, data_path=study.full_data.source)
    if path is None:
        raise FERDataError(
            f"no FER+ crowd votes for {study.full_data.source}: the crowd-target runs and notebook 08 need them. Put "
            f"{' or '.join(ferplus.VOTE_FILE_NAMES)} (Microsoft's FER+ votes, MIT licence) into "
            f"{paths.DATA_DIR} or beside {Path(study.full_data.source).name}, or set "
            f"{paths.FERPLUS_ENV} (notebook 08: the ferplus_path parameter)."
        )
    return ferplus.attach_votes(study.data, ferplus.read_votes(path))


def crowd_runs(
    study: Study, fresh: bool = False, ferplus_path: str | Path | None = None, train: bool = True
) -> dict[str, dict[str, RunResult]]:
    """The profile's `crowd_models` trained on the crowd's vote distributions, each beside its label twin (first seed).

    Returns {model: {"labels": run, "crowd": run}}. The label twin is the study's own run of that model (the same
    configuration, so the same cached result as notebooks 03/04); it is trained here only when the run folder lacks
    it, and `fresh` retrains the crowd runs, not the twins. With `train=False` nothing is trained: only the pairs
    whose two runs are saved in the run folder are returned (a laptop rendering a GPU run's results).
    """
    from fer_helpers.train.training import saved_cnn

    if fresh and not train:
        raise ValueError("crowd_runs: fresh=True retrains, train=False trains nothing; choose one")
    data = crowd_data(study, ferplus_path)
    runs = {}
    for run in step_runs(study.profile, "crowd"):
        twin = next(r for r in step_runs(study.profile, run.config.model) if r.seed == run.seed)
        if train:
            pair = {"labels": _train(study, twin), "crowd": _train(study, run, fresh, crowd=data)}
        else:
            pair = {
                "labels": saved_cnn(study.data, twin.config, study.run_dir, name=twin.name),
                "crowd": saved_cnn(data, run.config, study.run_dir, name=run.name),
            }
        if all(pair.values()):
            runs[run.config.model] = pair
    return runs


def hog_variant_runs(study: Study, fresh: bool = False) -> dict[str, RunResult]:
    """The HOG extension variants the profile names (`hog_variants`): finer and several cells, PCA, a kernel."""
    return {run.name: _train(study, run, fresh) for run in step_runs(study.profile, "hog_variants")}


def votes_at_hand(study: Study) -> bool:
    """Whether the crowd step can run: synthetic faces (votes are simulated) or FER+ votes found for FER-2013."""
    from fer_helpers.data.ferplus import find_ferplus

    return study.synthetic or find_ferplus(None, data_path=study.full_data.source) is not None
