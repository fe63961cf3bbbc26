"""Training recipes: the paper's baseline and Model B as it describes them, our model's, and the steps between.

Each recipe is a function of the run profile and the seed that returns a `CNNConfig` (the model's width at the
profile's size included); `training.fit_cnn` trains it, and the model registry (`registry`) names each model's recipe.
`RECIPE_STEPS` walks from Model B's recipe to ours one change at a time, so that a table can show what each
change bought on PublicTest.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import pandas as pd

from fer_helpers.core.config import CNNConfig
from fer_helpers.core.profiles import Profile, get_profile
from fer_helpers.data.fer2013 import FERData
from fer_helpers.models.networks import MODEL_B_HIDDEN, MODEL_B_WIDTHS, ModelB, ResNetFER

# Paper, section 3.1: Adam from 5e-4, the rate halved on a plateau of the validation loss down to 3.9e-6
# (= 5e-4 / 2**7: seven halvings in its 50 epochs).
MODEL_B_LR = 5e-4
MODEL_B_MIN_LR = 3.9e-6
ROTATE_DEG = 10.0  # the paper's "small rotations"; also the rotation of Khaireddin & Chen (2021)
OURS_LR_PER_128 = 0.1  # SGD peak learning rate for a batch of 128, scaled linearly with the batch size
ENSEMBLE_TARGET = 0.755  # what a seed ensemble of our model aims at on PrivateTest
INFERENCE_TARGET = 0.72  # what an ensemble or test-time augmentation aims at on PrivateTest now


# Model B's ingredients, each a switch for the ablation: four architecture switches and two training ones.
MODEL_B_DEFAULTS: dict[str, Any] = {
    "batchnorm": True,
    "activation": "leaky_relu",
    "pooling": "gap",
    "dropout": 0.5,
    "class_weights": True,
    "augment": True,
}


@dataclass(frozen=True)
class Ablation:
    """One variant of Model B's ablation: the ingredients it switches off, the change in words, and the paper's claim
    that it tests (None: a claim judged per class, as the class weights' are, or none of the paper's)."""

    switches: dict[str, Any]  # MODEL_B_DEFAULTS entries it replaces
    change: str  # the subject of a sentence: "removing BatchNorm costs ..."
    claim: str | None = None


# Each variant is a run "model_b_<...>"; adding one here adds it to the plan, the ablation table and its verdicts.
MODEL_B_ABLATIONS: dict[str, Ablation] = {
    "model_b_no_bn": Ablation({"batchnorm": False}, "removing BatchNorm", "Batch Normalization helps"),
    "model_b_relu": Ablation({"activation": "relu"}, "ReLU instead of LeakyReLU", "LeakyReLU helps (over ReLU)"),
    "model_b_flatten": Ablation(
        {"pooling": "flatten"},
        "flatten + dense instead of global average pooling",
        "Global Average Pooling helps (over flatten + dense)",
    ),
    "model_b_no_dropout": Ablation({"dropout": 0.0}, "removing dropout", "Dropout helps"),
    "model_b_no_class_weights": Ablation({"class_weights": False}, "removing the class weights"),
    "model_b_no_augment": Ablation({"augment": False}, "removing augmentation (flips and rotations)"),
}


@dataclass(frozen=True)
class RecipeStep:
    """One change on the way from Model B's recipe to ours: a name, why, and the CNNConfig fields it takes from ours."""

    slug: str  # the step's runs are saved as model "recipe_<slug>", apart from the study's main models
    name: str
    why: str
    fields: tuple[str, ...]

    @property
    def result_name(self) -> str:
        return f"recipe_{self.slug}"


# Applied in order to Model B's recipe, the steps give our recipe; the values come from `ours_config`.
RECIPE_STEPS: tuple[RecipeStep, ...] = (
    RecipeStep(
        "model_b", "Model B recipe", "the paper's Model B as it trains it (Adam 5e-4, plateau, class weights)", ()
    ),
    RecipeStep(
        "resnet_fer", "ResNet-FER", "our residual network instead of Model B, same training", ("model", "model_kwargs")
    ),
    RecipeStep(
        "sgd_onecycle",
        "SGD Nesterov, one-cycle, weight decay",
        "a schedule that anneals over a fixed budget instead of waiting for plateaus",
        (
            "optimizer",
            "lr",
            "momentum",
            "nesterov",
            "weight_decay",
            "scheduler",
            "plateau_factor",
            "plateau_patience",
            "min_lr",
            "patience",
        ),
    ),
    RecipeStep(
        "no_class_weights", "no class weights", "train for accuracy on the natural class balance", ("class_weights",)
    ),
    RecipeStep("shifts", "random shifts", "random crops of the face padded by 4 pixels", ("crop_pad",)),
    RecipeStep("erasing", "random erasing", "hide a random patch in half of the faces", ("erasing_p",)),
    RecipeStep(
        "label_smoothing", "label smoothing", "soften the targets against FER-2013's label noise", ("label_smoothing",)
    ),
    RecipeStep("tta", "test-time augmentation", "average the logits of mirrored and shifted copies", ("tta",)),
)


def side_data(data: FERData, profile: str | Profile) -> FERData:
    """The faces of the side experiments (recipe steps, ablation): Training capped at the profile's
    `side_train_per_class` per class, the test splits whole; the profile's own data where it sets no cap."""
    cap = get_profile(profile).side_train_per_class
    return data if cap is None else data.subsample(cap, None, seed=0)


def recipe_step_data(data: FERData, profile: str | Profile) -> FERData:
    """The faces of the recipe steps: `side_data`, capped at the profile's `step_per_class` per class on every split
    where it sets one (the smoke profile, so that the steps only check the code, in seconds)."""
    profile = get_profile(profile)
    side = side_data(data, profile)
    cap = profile.step_per_class
    return side if cap is None else side.subsample(cap, cap, seed=0)


def baseline_config(profile: str | Profile, seed: int = 0, **changes: Any) -> CNNConfig:
    """The paper's baseline CNN: Adam lr 1e-3, flips and small rotations, early stopping on PublicTest."""
    profile = get_profile(profile)
    config = CNNConfig(
        model="baseline_cnn",
        optimizer="adam",
        lr=1e-3,
        scheduler="none",
        max_epochs=profile.epochs["baseline_cnn"],
        patience=profile.patience,
        batch_size=profile.batch_size,
        class_weights=False,
        hflip=True,
        rotate_deg=ROTATE_DEG,
        seed=seed,
    )
    return replace(config, **changes)


def model_b_config(profile: str | Profile, seed: int = 0, **ablation: Any) -> CNNConfig:
    """The paper's Model B recipe; keyword switches of MODEL_B_DEFAULTS turn single ingredients off for the ablation.

    Adam from 5e-4 with ReduceLROnPlateau (factor 0.5, patience 3, floor 3.9e-6), class weights, flips and
    rotations, dropout 0.5; all of the profile's epochs are trained (the paper ran its 50 and kept
    the best, epoch 21) and the best PublicTest epoch is kept.
    """
    unknown = set(ablation) - set(MODEL_B_DEFAULTS)
    if unknown:
        raise ValueError(f"unknown Model B switch(es) {sorted(unknown)}; known: {sorted(MODEL_B_DEFAULTS)}")
    switches = MODEL_B_DEFAULTS | ablation
    profile = get_profile(profile)
    architecture = {k: switches[k] for k in ("batchnorm", "activation", "pooling", "dropout")}
    changed = {k: v for k, v in architecture.items() if v != MODEL_B_DEFAULTS[k]}
    return CNNConfig(
        model="model_b",
        model_kwargs=ModelB.scaled(profile.width("model_b")) | changed,
        optimizer="adam",
        lr=MODEL_B_LR,
        scheduler=profile.schedulers.get("model_b", "plateau"),
        plateau_factor=0.5,
        plateau_patience=3,
        min_lr=MODEL_B_MIN_LR,
        max_epochs=profile.epochs["model_b"],
        patience=None,
        batch_size=profile.batch_size,
        class_weights=bool(switches["class_weights"]),
        hflip=bool(switches["augment"]),
        rotate_deg=ROTATE_DEG if switches["augment"] else 0.0,
        seed=seed,
    )


def ablation_config(profile: str | Profile, seed: int = 0, **ablation: Any) -> CNNConfig:
    """A run of the ablation: `model_b_config` with its switches, trained for the profile's `ablation_epochs`."""
    profile = get_profile(profile)
    config = model_b_config(profile, seed, **ablation)
    return config if profile.ablation_epochs is None else replace(config, max_epochs=profile.ablation_epochs)


DISTILLED_WIDTHS: tuple[int, ...] = (16, 32, 64, 128)  # a third of Model B's: 30 M multiply-adds per face, not 254 M
DISTILLED_LR = 3e-3  # AdamW's peak rate for a batch of 128, down a cosine to DISTILLED_MIN_LR


def distilled_config(
    profile: str | Profile, seed: int = 0, widths: tuple[int, ...] = DISTILLED_WIDTHS, max_epochs: int | None = None
) -> CNNConfig:
    """The student that `fer_helpers.train.distill` distils Model B into: Model B's architecture at `widths`, its dense
    layer as wide as the last block, dropout 0.2; AdamW with a cosine schedule over all epochs (Model B's by default),
    the best PublicTest epoch kept; Model B's augmentation (flips, rotations). No class weights: the teacher's answers
    already carry its class-weighted training."""
    profile = get_profile(profile)
    widths = tuple(int(w) for w in widths)
    if len(widths) < 1 or min(widths) < 1:
        raise ValueError(f"widths must be positive channel counts, got {widths}")
    return CNNConfig(
        model="model_b_distilled",
        model_kwargs={"widths": widths, "hidden": widths[-1], "dropout": 0.2},
        optimizer="adamw",
        lr=DISTILLED_LR * profile.batch_size / 128,
        weight_decay=0.01,
        scheduler="cosine",
        min_lr=1e-5,
        max_epochs=max_epochs or profile.epochs["model_b"],
        patience=None,
        batch_size=profile.batch_size,
        class_weights=False,
        hflip=True,
        rotate_deg=ROTATE_DEG,
        seed=seed,
    )


def ours_config(profile: str | Profile, seed: int = 0, **changes: Any) -> CNNConfig:
    """Our recipe: ResNet-FER, SGD Nesterov with a one-cycle schedule, shifts, erasing, label smoothing, TTA.

    Changes are CNNConfig fields to replace (e.g. max_epochs=100, mixup_alpha=0.2).
    """
    profile = get_profile(profile)
    config = CNNConfig(
        model="resnet_fer",
        model_kwargs=ResNetFER.scaled(profile.width("resnet_fer")),
        optimizer="sgd",
        lr=OURS_LR_PER_128 * profile.batch_size / 128,
        momentum=0.9,
        nesterov=True,
        weight_decay=5e-4,
        scheduler="onecycle",
        max_epochs=profile.epochs["resnet_fer"],
        patience=None,
        batch_size=profile.batch_size,
        class_weights=False,
        hflip=True,
        rotate_deg=ROTATE_DEG,
        crop_pad=4,
        erasing_p=0.5,
        label_smoothing=0.1,
        tta="flip_crop",
        seed=seed,
    )
    return replace(config, **changes)


def crowd_config(config: CNNConfig) -> CNNConfig:
    """A recipe's crowd-target twin: the same run trained on the FER+ vote distributions instead of the labels.

    Everything else (model, optimizer, schedule, epochs, class weights, augmentation, seed) stays, and validation
    stays against the FER-2013 labels; `training.fit_cnn` saves it as "<model>_crowd" (`config.result_name`).
    """
    return replace(config, targets="crowd")


def recipe_step_configs(
    profile: str | Profile, seed: int = 0, max_epochs: int | None = None
) -> list[tuple[RecipeStep, CNNConfig]]:
    """Each step of RECIPE_STEPS with its configuration: Model B's recipe plus every change up to that step.

    All steps train for the same number of epochs (default: the profile's step_epochs) so that they compare;
    with 0 epochs there are no steps.
    """
    profile = get_profile(profile)
    epochs = max_epochs if max_epochs is not None else profile.step_epochs
    if epochs == 0:  # a profile without the table
        return []
    ours = ours_config(profile, seed)
    config = model_b_config(profile, seed)
    steps = []
    for step in RECIPE_STEPS:
        config = replace(config, **{name: getattr(ours, name) for name in step.fields})
        steps.append((step, replace(config, max_epochs=epochs)))
    return steps


def config_changes(before: CNNConfig, after: CNNConfig) -> dict[str, Any]:
    """The fields whose values differ between two configurations, with their new values."""
    old, new = before.to_dict(), after.to_dict()
    names = dict.fromkeys([*new, *old])  # to_dict leaves a default "targets" out: take it from the config then
    old = {name: old.get(name, getattr(before, name)) for name in names}
    new = {name: new.get(name, getattr(after, name)) for name in names}
    return {name: new[name] for name in new if new[name] != old[name]}


def open_choices(profile: str | Profile = "full") -> pd.DataFrame:
    """The choices the paper leaves open and what this study chose, read from the recipes and models themselves."""
    import inspect

    baseline, model_b = baseline_config(profile), model_b_config(profile)
    slope = inspect.signature(ModelB).parameters["negative_slope"].default
    widths = dict(model_b.model_kwargs).get("widths", MODEL_B_WIDTHS)
    rows = [
        (
            "validation split",
            "PublicTest (FER-2013's own); PrivateTest reported once",
            "the paper splits its training data 'stratified' without saying how",
        ),
        (
            "Model B's widths",
            "-".join(map(str, widths)) + ", two 3x3 convolutions per block",
            "the paper gives four blocks and about 2.5 M parameters",
        ),
        ("Model B's dense layer", f"{dict(model_b.model_kwargs).get('hidden', MODEL_B_HIDDEN)} units", "not given"),
        ("LeakyReLU slope", f"{slope:g}", "not given"),
        (
            "Model B's plateau schedule",
            f"factor {model_b.plateau_factor:g}, patience {model_b.plateau_patience} "
            f"epochs on PublicTest loss, floor {model_b.min_lr:g}",
            "the paper gives the start (5e-4) and the floor (about 3.9e-6) only",
        ),
        (
            "augmentation",
            f"horizontal flips, rotations up to {baseline.rotate_deg:g} degrees",
            "'flips and small rotations'",
        ),
        ("batch size", f"{baseline.batch_size}", "not given"),
        (
            "baseline's early stopping",
            f"patience {baseline.patience} epochs on PublicTest accuracy, at most {baseline.max_epochs} epochs",
            "'50-100 epochs with early stopping'",
        ),
        (
            "Model B's epochs",
            f"all {model_b.max_epochs}, the best PublicTest epoch kept",
            "50 epochs, best validation epoch 21",
        ),
        ("class weights", "scikit-learn's 'balanced' (n / (7 n_class)) on Training", "'class weights'"),
    ]
    return pd.DataFrame(rows, columns=["choice", "ours", "the paper"]).set_index("choice")


# Where each training setting of Model B's recipe comes from. The paper (its method and section 3.1) gives Adam, the
# starting rate, ReduceLROnPlateau on the validation loss with its last rate, class weights, flips and "minor
# rotations", and 50 epochs; it says only that the rate was lowered "gradually" when the validation loss had not
# improved "for several epochs", so the plateau's factor and patience are ours, as are the angle and the batch size.
MODEL_B_RECIPE_SOURCES: dict[str, str] = {
    "optimizer": "the paper",
    "lr": "the paper (its starting rate)",
    "scheduler": "the paper (ReduceLROnPlateau on the validation loss)",
    "plateau_factor": "ours (the paper: lowered 'gradually')",
    "plateau_patience": "ours (the paper: 'for several epochs')",
    "min_lr": "the paper (its last rate)",
    "class_weights": "the paper (class weights); the 'balanced' formula is ours",
    "hflip": "the paper (horizontal flips)",
    "rotate_deg": "ours (the paper: 'minor rotations')",
    "max_epochs": "the profile (the paper trains 50)",
    "batch_size": "the profile (the paper gives none)",
}


def model_b_recipe(config: CNNConfig) -> pd.DataFrame:
    """Model B's training settings in a configuration, each with where it comes from (MODEL_B_RECIPE_SOURCES)."""
    sources = dict(MODEL_B_RECIPE_SOURCES)
    if config.scheduler != "plateau":
        sources["scheduler"] = "the profile (too few epochs for the paper's ReduceLROnPlateau to lower the rate)"
    return pd.DataFrame(
        [(name, getattr(config, name), source) for name, source in sources.items()],
        columns=["setting", "value", "from"],
    ).set_index("setting")
