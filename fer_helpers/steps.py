"""The study's training steps, in one place, so notebooks and `fer-study train` ask for the same cached results.

Each step (`STEPS`) trains (or reloads from `study.run_dir`) one part of the study and returns its results: one
step per main CNN of the model registry, then HOG, the recipe steps, the ablation and the crowd-vote twins. The
notebooks call the same functions, so a GPU host can train everything with `fer-study train --profile full` and the
notebooks render it afterwards.
"""

from __future__ import annotations

import functools
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from .data import FERData, FERDataError
from .results import RunResult
from .study import Study, in_notebook, setup


def hog_svm_runs(study: Study, fresh: bool = False) -> dict[str, RunResult]:
    """The paper's HOG + linear SVM, without and with balanced class weights (C chosen on PublicTest)."""
    from .classical import fit_hog_svms, hog_svm_configs

    configs = hog_svm_configs(study.profile)
    return fit_hog_svms(study.data, configs, study.run_dir, fresh, n_jobs=study.profile.num_workers_hog)


def cnn_runs(study: Study, model: str, fresh: bool = False) -> list[RunResult]:
    """One of the registry's CNNs with its recipe at the profile's size, one run per profile seed."""
    from .registry import main_config
    from .training import fit_cnn

    return [
        fit_cnn(study.data, main_config(model, study.profile, seed), study.run_dir, fresh)
        for seed in study.profile.seeds
    ]


def recipe_step_runs(study: Study, fresh: bool = False) -> pd.DataFrame:
    """Model B's recipe turned into ours one change at a time (seed 0): the table of what each change bought.

    The steps train on `recipes.recipe_step_data`: all of the study's data unless the profile caps the side
    experiments (or, under smoke, every split of the steps).
    A profile with `step_epochs=0` trains none and gets an empty table. Every step is judged on PublicTest, never
    PrivateTest.
    """
    from .recipes import config_changes, recipe_step_configs, recipe_step_data
    from .training import fit_cnn

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

    All runs train on `side_data` (the profile's data, or a class-capped subset of its Training where the profile
    sets `side_train_per_class`) for the profile's `ablation_epochs`. The full Model B they are compared with comes
    first, under "model_b": on the profile's own data and epochs these are the runs of the "model_b" step, loaded
    from their cache; `fresh` retrains the ablations, not the reference.
    """
    from .recipes import MODEL_B_ABLATIONS, ablation_config, side_data
    from .training import fit_cnn

    data = side_data(study.data, study.profile)
    seeds = study.profile.seeds
    runs = {"model_b": [fit_cnn(data, ablation_config(study.profile, seed), study.run_dir) for seed in seeds]}
    for name, switches in MODEL_B_ABLATIONS.items():
        runs[name] = [
            fit_cnn(data, ablation_config(study.profile, seed, **switches), study.run_dir, fresh, name=name)
            for seed in seeds
        ]
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
    from . import data as fer_data
    from . import ferplus

    if study.synthetic:
        if not in_notebook():  # notebook 08 displays the warning itself, once
            print("!" * 78 + f"\n!! {SIMULATED_VOTES_WARNING}\n" + "!" * 78, file=sys.stderr)
        return ferplus.attach_votes(study.data, ferplus.synthetic_votes(study.data, seed=0))
    path = ferplus.find_ferplus(ferplus_path, data_path=study.full_data.source)
    if path is None:
        raise FERDataError(
            f"no FER+ crowd votes for {study.full_data.source}: the crowd-target runs and notebook 08 need them. Put "
            f"{' or '.join(ferplus.VOTE_FILE_NAMES)} (Microsoft's FER+ votes, MIT licence) into "
            f"{fer_data.DATA_DIR} or beside {Path(study.full_data.source).name}, or set "
            f"{ferplus.FERPLUS_ENV} (notebook 08: the ferplus_path parameter)."
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
    from .recipes import crowd_config
    from .registry import main_config
    from .training import fit_cnn, saved_cnn

    if fresh and not train:
        raise ValueError("crowd_runs: fresh=True retrains, train=False trains nothing; choose one")
    data = crowd_data(study, ferplus_path)
    seed = study.profile.seeds[0]
    runs = {}
    for model in study.profile.crowd_models:
        config = main_config(model, study.profile, seed)
        if train:
            pair = {
                "labels": fit_cnn(study.data, config, study.run_dir),
                "crowd": fit_cnn(data, crowd_config(config), study.run_dir, fresh),
            }
        else:
            pair = {
                "labels": saved_cnn(study.data, config, study.run_dir),
                "crowd": saved_cnn(data, crowd_config(config), study.run_dir),
            }
        if all(pair.values()):
            runs[model] = pair
    return runs


def hog_variant_runs(study: Study, fresh: bool = False) -> dict[str, RunResult]:
    """The HOG extension variants the profile names (`hog_variants`): finer and several cells, PCA, a kernel."""
    from .classical import fit_hog_variant

    return {
        name: fit_hog_variant(study.data, name, study.run_dir, fresh, n_jobs=study.profile.num_workers_hog)
        for name in study.profile.hog_variants
    }


def training_steps() -> dict[str, Callable[[Study, bool], object]]:
    """The steps of `fer-study train` in order: HOG, one per CNN of the registry's main comparison, then the side
    experiments. A model registered later gets its step too."""
    from . import registry

    cnns = {
        name: functools.partial(_cnn_step, model=name)
        for name, spec in registry.MODELS.items()
        if spec.is_cnn and spec.main
    }
    return {
        "hog_svm": hog_svm_runs,
        "hog_variants": hog_variant_runs,
        **cnns,
        "recipe_steps": recipe_step_runs,
        "ablation": ablation_runs,
        "crowd": crowd_runs,
    }


def _cnn_step(study: Study, fresh: bool = False, *, model: str) -> list[RunResult]:
    return cnn_runs(study, model, fresh)


def votes_at_hand(study: Study) -> bool:
    """Whether the crowd step can run: synthetic faces (votes are simulated) or FER+ votes found for FER-2013."""
    from .ferplus import find_ferplus

    return study.synthetic or find_ferplus(None, data_path=study.full_data.source) is not None


def train_all(
    profile: str = "full",
    data_path: str | Path | None = None,
    run_dir: str | Path | None = None,
    fresh: bool = False,
    only: list[str] | None = None,
) -> dict[str, float]:
    """Run the chosen training steps (all by default) of a profile; returns the seconds each step took."""
    steps = training_steps()
    unknown = set(only or ()) - set(steps)
    if unknown:
        raise ValueError(f"unknown training step(s) {sorted(unknown)}; choose from {list(steps)}")
    study = setup(profile, data_path, run_dir)
    print(
        f"Training profile {study.profile.name!r} on {study.data.form} data ({len(study.data):,} faces, "
        f"sha256 {study.data.sha256[:12]}) into {study.run_dir}",
        flush=True,
    )
    seconds = {}
    for name, step in steps.items():
        if only and name not in only:
            continue
        if name == "crowd" and not only and not votes_at_hand(study):
            print(
                "== crowd skipped: no FER+ crowd votes beside FER-2013 (notebook 08 says where to put them) ==",
                flush=True,
            )
            continue
        print(f"== {name} ({study.profile.name}) ==", flush=True)
        start = time.perf_counter()
        step(study, fresh)
        seconds[name] = time.perf_counter() - start
        print(f"== {name} done in {seconds[name]:.1f} s ==", flush=True)
    print("\n".join(f"{name:>14}: {s:8.1f} s" for name, s in seconds.items()))
    print(f"{'total':>14}: {sum(seconds.values()):8.1f} s; results in {study.run_dir}")
    return seconds
