"""Every training run of the study, in one place, so notebooks and `fer-study train` ask for the same cached results.

Each `*_runs(study, fresh)` function trains (or reloads from `study.run_dir`) one part of the study and returns
its results; the notebooks call the same functions, so a GPU host can train everything with
`fer-study train --profile full` (or `python -m fer_helpers.train`) and the notebooks render it afterwards.
"""
from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

from .data import FERData, FERDataError
from .results import RunResult
from .study import Study, setup


def hog_svm_runs(study: Study, fresh: bool = False) -> dict[str, RunResult]:
    """The paper's HOG + linear SVM, without and with balanced class weights (C chosen on PublicTest)."""
    from .classical import HogSvmConfig, fit_hog_svm

    results = {}
    for class_weight in (None, "balanced"):
        config = HogSvmConfig.from_profile(study.profile, class_weight=class_weight)
        results[config.model] = fit_hog_svm(study.data, config, study.run_dir, fresh, n_jobs=study.profile.num_workers_hog)
    return results


def baseline_runs(study: Study, fresh: bool = False) -> list[RunResult]:
    """The paper's baseline CNN (Table 1), one run per profile seed."""
    from .recipes import baseline_config
    from .training import fit_cnn

    return [fit_cnn(study.data, baseline_config(study.profile, seed), study.run_dir, fresh)
            for seed in study.profile.seeds]


def model_b_runs(study: Study, fresh: bool = False) -> list[RunResult]:
    """The paper's tuned CNN (Model B), one run per profile seed."""
    from .recipes import model_b_config
    from .training import fit_cnn

    return [fit_cnn(study.data, model_b_config(study.profile, seed), study.run_dir, fresh)
            for seed in study.profile.seeds]


def recipe_step_runs(study: Study, fresh: bool = False):
    """Model B's recipe turned into ours one change at a time (seed 0): the table of what each change bought."""
    from .recipes import run_recipe_steps

    return run_recipe_steps(study.data, study.profile, study.run_dir, fresh=fresh)


def ours_runs(study: Study, fresh: bool = False) -> list[RunResult]:
    """Our model with its full recipe, one run per profile seed."""
    from .recipes import ours_config
    from .training import fit_cnn

    return [fit_cnn(study.data, ours_config(study.profile, seed), study.run_dir, fresh)
            for seed in study.profile.seeds]


def ablation_runs(study: Study, fresh: bool = False) -> dict[str, list[RunResult]]:
    """Model B with each ingredient removed in turn (MODEL_B_ABLATIONS), one run per profile seed.

    All runs train on `side_data` (the profile's data, or a class-capped subset of its Training where the profile
    sets `side_train_per_class`). The full Model B they are compared with comes first, under "model_b": on the
    profile's own data these are the runs of `model_b_runs`, loaded from their cache; `fresh` retrains the
    ablations, not the reference.
    """
    from .recipes import MODEL_B_ABLATIONS, model_b_config, side_data
    from .training import fit_cnn

    data = side_data(study.data, study.profile)
    seeds = study.profile.seeds
    runs = {"model_b": [fit_cnn(data, model_b_config(study.profile, seed), study.run_dir) for seed in seeds]}
    for name, switches in MODEL_B_ABLATIONS.items():
        runs[name] = [fit_cnn(data, model_b_config(study.profile, seed, **switches), study.run_dir, fresh, name=name)
                      for seed in seeds]
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
        print("!" * 78 + f"\n!! {SIMULATED_VOTES_WARNING}\n" + "!" * 78, file=sys.stderr)
        return ferplus.attach_votes(study.data, ferplus.synthetic_votes(study.data, seed=0))
    path = ferplus.find_ferplus(ferplus_path, data_path=study.full_data.source)
    if path is None:
        raise FERDataError(
            f"no FER+ crowd votes for {study.full_data.source}: the crowd-target runs and notebook 08 need them. Put "
            f"{' or '.join(ferplus.VOTE_FILE_NAMES)} (Microsoft's FER+ votes, MIT licence) into "
            f"{fer_data.DATA_DIR} or beside {Path(study.full_data.source).name}, or set "
            f"{ferplus.FERPLUS_ENV} (notebook 08: the ferplus_path parameter).")
    return ferplus.attach_votes(study.data, ferplus.read_votes(path))


def crowd_runs(
    study: Study, fresh: bool = False, ferplus_path: str | Path | None = None
) -> dict[str, dict[str, RunResult]]:
    """The profile's `crowd_models` trained on the crowd's vote distributions, each beside its label twin (first seed).

    Returns {model: {"labels": run, "crowd": run}}. The label twin is the study's own run of that model (the same
    configuration, so the same cached result as notebooks 03/04); it is trained here only when the run folder lacks
    it, and `fresh` retrains the crowd runs, not the twins.
    """
    from .recipes import crowd_config, main_config
    from .training import fit_cnn

    data = crowd_data(study, ferplus_path)
    seed = study.profile.seeds[0]
    runs = {}
    for model in study.profile.crowd_models:
        config = main_config(model, study.profile, seed)
        runs[model] = {"labels": fit_cnn(study.data, config, study.run_dir),
                       "crowd": fit_cnn(data, crowd_config(config), study.run_dir, fresh)}
    return runs


def hog_variant_runs(study: Study, fresh: bool = False) -> dict[str, RunResult]:
    """The HOG extension variants the profile names (`hog_variants`): finer and several cells, PCA, a kernel."""
    from .classical import fit_hog_variant

    return {name: fit_hog_variant(study.data, name, study.run_dir, fresh, n_jobs=study.profile.num_workers_hog)
            for name in study.profile.hog_variants}


STEPS: dict[str, Callable[[Study, bool], object]] = {
    "hog_svm": hog_svm_runs,
    "hog_variants": hog_variant_runs,
    "baseline_cnn": baseline_runs,
    "model_b": model_b_runs,
    "recipe_steps": recipe_step_runs,
    "ours": ours_runs,
    "ablation": ablation_runs,
    "crowd": crowd_runs,
}


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
    unknown = set(only or ()) - set(STEPS)
    if unknown:
        raise ValueError(f"unknown training step(s) {sorted(unknown)}; choose from {list(STEPS)}")
    study = setup(profile, data_path, run_dir)
    print(f"Training profile {study.profile.name!r} on {study.data.form} data ({len(study.data):,} faces, "
          f"sha256 {study.data.sha256[:12]}) into {study.run_dir}", flush=True)
    seconds = {}
    for name, step in STEPS.items():
        if only and name not in only:
            continue
        if name == "crowd" and not only and not votes_at_hand(study):
            print("== crowd skipped: no FER+ crowd votes beside FER-2013 (notebook 08 says where to put them) ==",
                  flush=True)
            continue
        print(f"== {name} ({study.profile.name}) ==", flush=True)
        start = time.perf_counter()
        step(study, fresh)
        seconds[name] = time.perf_counter() - start
        print(f"== {name} done in {seconds[name]:.1f} s ==", flush=True)
    print("\n".join(f"{name:>14}: {s:8.1f} s" for name, s in seconds.items()))
    print(f"{'total':>14}: {sum(seconds.values()):8.1f} s; results in {study.run_dir}")
    return seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fer_helpers.train", description=train_all.__doc__)
    parser.add_argument("--profile", default="full", help="smoke, classroom or full")
    parser.add_argument("--data", default=None, help="FER-2013 path (default: FER2013_PATH, then data/)")
    parser.add_argument("--run-dir", default=None, help="run folder (default: runs/<profile>)")
    parser.add_argument("--fresh", action="store_true", help="retrain even when a cached result exists")
    parser.add_argument("--only", nargs="+", choices=list(STEPS), help="train only these steps")
    args = parser.parse_args(argv)
    train_all(args.profile, args.data, args.run_dir, args.fresh, args.only)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
