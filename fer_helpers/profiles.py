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
    ),
    "classroom": Profile(
        name="classroom",
        train_per_class=600,
        eval_per_class=None,
        hog_c_grid=(0.001, 0.01, 0.1, 1.0),
        baseline_max_epochs=12,
        model_b_max_epochs=10,
        ours_max_epochs=10,
        seeds=(0,),
        batch_size=128,
        patience=4,
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
