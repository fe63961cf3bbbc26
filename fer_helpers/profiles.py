"""Run profiles: how much data, how many epochs and seeds each part of the study uses."""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace


@dataclass(frozen=True)
class Profile:
    """One run profile; every notebook and `fer-study train` read their sizes from here."""

    name: str
    train_per_class: int | None  # cap on Training images per class (None: all)
    eval_per_class: int | None  # cap on PublicTest/PrivateTest images per class (None: all)
    hog_c_grid: tuple[float, ...]  # LinearSVC C values tried on PublicTest
    baseline_max_epochs: int  # paper: 50-100 with early stopping
    model_b_max_epochs: int  # paper: 50
    ours_max_epochs: int
    seeds: tuple[int, ...]  # seeds for the CNNs (mean ± std over them)
    batch_size: int
    patience: int  # early stopping patience in epochs, on PublicTest
    num_workers_hog: int = -1  # joblib workers for HOG extraction (-1: all cores)
    model_b_width: float = 1.0  # multiplier of Model B's channel widths (1.0: the paper-size model)
    resnet_width: float = 1.0  # multiplier of ResNet-FER's width (1.0: 4.9 M parameters)
    step_epochs: int = 20  # epochs of each run of notebook 04's recipe-steps table (seed 0, PublicTest; 0: no table)
    side_train_per_class: int | None = None  # Training cap for the recipe steps and the ablation (None: as above)
    hog_variants: tuple[str, ...] = ()  # HOG extension variants fitted (names in classical.HOG_VARIANTS)
    ours_probe_epochs: int = 0  # our model's seed 0 once more at this many epochs: does a longer schedule pay? (0: no)
    crowd_models: tuple[str, ...] = ("baseline_cnn",)  # retrained on the FER+ crowd's votes (notebook 08; first seed)

    def to_dict(self) -> dict:
        return asdict(self)


PROFILES: dict[str, Profile] = {
    "smoke": Profile(
        name="smoke",
        train_per_class=60,
        eval_per_class=20,
        hog_c_grid=(0.01, 0.1),
        baseline_max_epochs=2,
        model_b_max_epochs=2,
        ours_max_epochs=2,
        seeds=(0,),
        batch_size=64,
        patience=2,
        model_b_width=0.125,
        resnet_width=0.125,
        step_epochs=1,
        hog_variants=("hog_multiscale", "hog_nystroem"),
        ours_probe_epochs=3,
        crowd_models=("baseline_cnn",),
    ),
    # Sized to run the whole study in about 15 minutes on a 2-core laptop CPU: all of FER-2013 for the main models
    # (the CNNs need it more than they need epochs), shrunken CNNs for a few epochs, the ablation on a class-capped
    # subset of Training, and no recipe-steps table (too short to tell the steps apart).
    "classroom": Profile(
        name="classroom",
        train_per_class=None,
        eval_per_class=None,
        hog_c_grid=(0.001, 0.01),
        baseline_max_epochs=3,
        model_b_max_epochs=4,
        ours_max_epochs=3,
        seeds=(0,),
        batch_size=128,
        patience=4,
        model_b_width=1 / 3,
        resnet_width=0.125,
        step_epochs=0,  # measured: one epoch per step left every step at 14-25% PublicTest accuracy, noise
        side_train_per_class=800,
        crowd_models=("baseline_cnn",),
    ),
    "full": Profile(
        name="full",
        train_per_class=None,
        eval_per_class=None,
        hog_c_grid=(0.0003, 0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0),
        baseline_max_epochs=100,
        model_b_max_epochs=50,
        ours_max_epochs=60,
        seeds=(0, 1, 2),
        batch_size=128,
        patience=10,
        hog_variants=("hog_fine_cells", "hog_multiscale", "hog_nystroem", "hog_nystroem_balanced"),
        ours_probe_epochs=120,
        crowd_models=("baseline_cnn", "model_b"),
    ),
}


def get_profile(name: str | Profile, **overrides) -> Profile:
    """Return the named profile, optionally with some fields replaced; unknown names or fields are errors."""
    if isinstance(name, Profile):
        profile = name
    else:
        if name not in PROFILES:
            raise ValueError(f"unknown profile {name!r}; choose one of {sorted(PROFILES)}")
        profile = PROFILES[name]
    known = {f.name for f in fields(Profile)}
    unknown = set(overrides) - known
    if unknown:
        raise ValueError(f"unknown profile field(s) {sorted(unknown)}; known: {sorted(known)}")
    return replace(profile, **overrides) if overrides else profile
