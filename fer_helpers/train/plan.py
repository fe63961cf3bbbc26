"""The one plan of runs: every training run a profile holds, written once, in the order worth training them.

Every driver derives from `plan_runs`: the notebooks' steps (`steps`: one step's runs, trained in the notebook's
process), `fer-study train` (each run in turn in one process, or `--jobs` worker processes on a budget:
`schedule`), the campaign that trains the full profile on a CPU over many sittings (`campaign`), and the report's
list of what a run folder still lacks (`summary.missing_runs`). Adding a model to the registry (`registry.register`)
adds its runs here; adding an ablation variant is one entry of `recipes.MODEL_B_ABLATIONS` (read when the plan is
made, not when this module is imported).

Value order, for a machine that starts from the committed runs and may be stopped at any moment:

1. the first seed of every main CNN of the registry, the model that ships first (ours) first;
2. the ablation of Model B, one seed of every variant (its reference is Model B's own run where the profile trains
   the ablation on the same faces for as many epochs; otherwise a reference run of its own comes first);
3. the crowd-vote twins of notebook 08 (the profile's `crowd_models`, first seed);
4. the other seeds of the main CNNs, ours first;
5. the ablation's other seeds, one seed of every variant before the next seed;
6. the baseline's first seed once more in bf16 (the check that bf16 costs no accuracy);
7. a model's longer-schedule probe (`Profile.probes`: does a longer schedule pay, on PublicTest?);
8. the recipe steps of notebook 04's table;
9. the classical runs (HOG + SVM, the HOG variants): minutes on any CPU.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from fer_helpers.core.config import CNNConfig, result_name
from fer_helpers.core.profiles import PROFILES, Profile, get_profile
from fer_helpers.data.fer2013 import FERData
from fer_helpers.data.results import RunResult, run_key
from fer_helpers.models import recipes, registry
from fer_helpers.models.recipes import ablation_config, crowd_config, recipe_step_configs, recipe_step_data, side_data
from fer_helpers.train.classical import HogSvmConfig, HogVariantConfig, hog_svm_configs, hog_variant_config

# Which faces a run trains on: the profile's data, the side experiments' subset (`recipes.side_data`), the recipe
# steps' subset (`recipes.recipe_step_data`), or the profile's data with the FER+ crowd's votes attached.
FACES = ("all", "side", "steps", "crowd")
CLASSICAL_STEPS = ("hog_svm", "hog_variants")


@dataclass(frozen=True)
class PlannedRun:
    """One training run of the plan: what it trains, on which faces, and whether its weights travel back."""

    id: str  # unique in the plan, e.g. "model_b/seed1"
    step: str  # the `fer-study train --only` step it belongs to
    name: str  # result name (the run folder is <name>-<key>)
    config: Any  # CNNConfig, HogSvmConfig or HogVariantConfig
    faces: str = "all"  # one of FACES
    keep_weights: bool = False  # weights come back from a training host (the main CNNs)

    def __post_init__(self):
        if self.faces not in FACES:
            raise ValueError(f"run {self.id}: faces must be one of {FACES}, got {self.faces!r}")

    @property
    def cnn(self) -> bool:
        return isinstance(self.config, CNNConfig)

    @property
    def seed(self) -> int | None:
        return self.config.seed if self.cnn else None

    def key(self, data_sha256: str) -> str:
        """The run's cache key on faces with this checksum (the same key `training.fit_cnn` and the HOG fits use)."""
        settings = self.config.experiment() if self.cnn else self.config.to_dict()
        return run_key(self.name, settings, data_sha256)

    def key_on(self, data: FERData, profile: Profile) -> str:
        """The run's cache key on the profile's data: as `key`, with a HOG variant sized for its training faces as
        `classical.fit_hog_variant` sizes it (PCA and kernel no larger than the faces allow)."""
        if isinstance(self.config, HogVariantConfig):
            faces = self.train_data(data, profile)
            sized = self.config.sized_for(int((faces.usage == "Training").sum()), faces.images.shape[1:])
            return run_key(self.name, sized.to_dict(), faces.sha256)
        return self.key(self.data_sha256(data, profile))

    def data_sha256(self, data: FERData, profile: Profile) -> str:
        """The checksum of the faces this run trains on (crowd votes leave it unchanged; they are keyed apart)."""
        return data.sha256 if self.faces in ("all", "crowd") else self.train_data(data, profile).sha256

    def train_data(self, data: FERData, profile: Profile, crowd: FERData | None = None) -> FERData:
        """The faces this run trains on, from the profile's data (`crowd`: the same faces with votes attached)."""
        if self.faces == "side":
            return side_data(data, profile)
        if self.faces == "steps":
            return recipe_step_data(data, profile)
        if self.faces == "crowd":
            if crowd is None:
                raise ValueError(f"run {self.id} trains on the crowd's votes: pass the faces with votes attached")
            return crowd
        return data

    def train(
        self,
        data: FERData,
        profile: Profile,
        run_root: str | Path,
        fresh: bool = False,
        n_jobs: int = -1,
        crowd: FERData | None = None,
    ) -> RunResult:
        """Train (or load) this run into run_root, from the profile's data."""
        faces = self.train_data(data, profile, crowd)
        if self.cnn:
            from fer_helpers.train.training import fit_cnn

            return fit_cnn(faces, self.config, run_root, fresh, name=self.name)
        from fer_helpers.train.classical import fit_hog_svm, fit_hog_variant

        if isinstance(self.config, HogSvmConfig):
            return fit_hog_svm(faces, self.config, run_root, fresh, n_jobs=n_jobs)
        return fit_hog_variant(faces, self.config.name, run_root, fresh, n_jobs=n_jobs)


def _cnn_run(step: str, config: CNNConfig, name: str | None = None, **fields: Any) -> PlannedRun:
    name = name or result_name(config)
    return PlannedRun(f"{name}/seed{config.seed}", step, name, config, **fields)


def main_cnns() -> list[str]:
    """The registry's main CNNs, the one that ships first (ours) first, then in registration order."""
    cnns = [name for name, spec in registry.MODELS.items() if spec.is_cnn and spec.main]
    rank = {name: registry.MODELS[name].ships for name in cnns}
    return sorted(cnns, key=lambda name: (rank[name] is None, rank[name] if rank[name] is not None else 0))


def ablation_reference_is_main(profile: Profile) -> bool:
    """Whether the ablation's reference is Model B's own run (same faces, same epochs) rather than a run of its own."""
    from fer_helpers.models.recipes import model_b_config

    return profile.side_train_per_class is None and ablation_config(profile) == model_b_config(profile)


def _ablation(profile: Profile, seed: int) -> list[PlannedRun]:
    runs = []
    if not ablation_reference_is_main(profile):
        runs.append(
            PlannedRun(f"model_b_side/seed{seed}", "ablation", "model_b", ablation_config(profile, seed), faces="side")
        )
    runs += [
        _cnn_run("ablation", ablation_config(profile, seed, **ablation.switches), name, faces="side")
        for name, ablation in recipes.MODEL_B_ABLATIONS.items()
    ]
    return runs


def plan_runs(profile: str | Profile) -> list[PlannedRun]:
    """Every run the profile holds, most valuable first (the module docstring gives the order and why)."""
    profile = get_profile(profile)
    first, *later = profile.seeds
    cnns = main_cnns()

    def main(model: str, seed: int) -> PlannedRun:
        return _cnn_run(model, registry.main_config(model, profile, seed), keep_weights=True)

    runs = [main(model, first) for model in cnns]
    runs += _ablation(profile, first)
    runs += [
        _cnn_run("crowd", crowd_config(registry.main_config(model, profile, first)), faces="crowd")
        for model in profile.crowd_models
    ]
    runs += [main(model, seed) for model in cnns for seed in later]
    for seed in later:
        runs += _ablation(profile, seed)
    if "baseline_cnn" in cnns:
        # The paper's baseline, first seed, once more in bf16 mixed precision: the check that bf16 costs no accuracy
        # (its own name keeps it apart from the float32 run of the same recipe, which has the same key).
        bf16 = replace(registry.main_config("baseline_cnn", profile, first), precision="bf16-mixed")
        runs.append(_cnn_run("precision_check", bf16, "baseline_cnn_bf16"))
    for model, epochs in profile.probes.items():
        config = replace(registry.main_config(model, profile, first), max_epochs=epochs)
        runs.append(_cnn_run("probe", config, f"{model}_{epochs}ep"))
    runs += [
        _cnn_run("recipe_steps", config, step.result_name, faces="steps")
        for step, config in recipe_step_configs(profile, first)
    ]
    runs += [PlannedRun(config.model, "hog_svm", config.model, config) for config in hog_svm_configs(profile)]
    runs += [PlannedRun(name, "hog_variants", name, hog_variant_config(name)) for name in profile.hog_variants]
    return runs


def plan_steps(profile: str | Profile = "full") -> list[str]:
    """The steps of the plan (`fer-study train --only` choices), in the order a whole-step run trains them:
    the classical models, the main CNNs, then the side experiments."""
    seen = dict.fromkeys(run.step for run in plan_runs(profile))
    order = [*CLASSICAL_STEPS, *main_cnns()]
    return [step for step in order if step in seen] + [step for step in seen if step not in order]


def known_steps() -> list[str]:
    """Every step some profile plans (a profile may plan none of a step's runs: the lesson fits no HOG variant)."""
    return list(dict.fromkeys(step for name in PROFILES for step in plan_steps(name)))


def step_runs(profile: str | Profile, step: str) -> list[PlannedRun]:
    """The plan's runs of one step, in plan order: none where this profile plans none of a known step."""
    runs = [run for run in plan_runs(profile) if run.step == step]
    if not runs and step not in known_steps():
        raise ValueError(f"unknown step {step!r}; choose from {known_steps()}")
    return runs
