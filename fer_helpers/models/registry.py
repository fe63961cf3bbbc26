"""The study's models, one entry each.

Everything the study says about a model lives in its `ModelSpec`: its one name (run folders, cache keys, weights,
`fer-study train` steps), how tables and figures call it, the network and its training recipe at a profile's size,
the notebook that trains it and whether it ships in models/. Adding a model is one `register(ModelSpec(...))`:
`fer-study train`, the report, the model cards and `fer-study predict` read it from here. Grad-CAM explains the
network's `target_layer` property, which every CNN of the study defines.

    from fer_helpers.models.registry import ModelSpec, register
    register(ModelSpec("tiny_cnn", "Tiny CNN", notebook="04_tuned_cnn", builder=TinyCNN, recipe=tiny_config))
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

from fer_helpers.core.config import CNNConfig
from fer_helpers.core.profiles import Profile, get_profile
from fer_helpers.models.networks import BaselineCNN, ModelB, ResNetFER
from fer_helpers.models.recipes import baseline_config, distilled_config, model_b_config, ours_config


@dataclass(frozen=True)
class ModelSpec:
    """One model of the study. A CNN has a `builder` and a `recipe`; a classical model (HOG) has neither."""

    name: str  # the one name: run folders, cache keys, weights files, training steps, metrics.json
    label: str  # how tables and figures call it
    notebook: str  # the notebook that trains it, e.g. "03_baseline_cnn"
    builder: Callable[..., nn.Module] | None = None  # the network, from its architecture switches (`model_kwargs`)
    recipe: Callable[[Profile, int], CNNConfig] | None = None  # (profile, seed) -> its training, widths at that size
    title: str | None = None  # the heading of its model card (default: the label)
    ships: int | None = None  # shipped as models/<name>.safetensors; `fer-study predict` prefers the lowest number
    main: bool = True  # a row of the report's main comparison (False: a variant, reported apart)

    @property
    def is_cnn(self) -> bool:
        return self.builder is not None

    @property
    def shipped_file(self) -> str | None:
        return f"{self.name}.safetensors" if self.ships is not None else None


MODELS: dict[str, ModelSpec] = {}


def register(spec: ModelSpec, replace: bool = False) -> ModelSpec:
    """Add a model to the study (`replace` to redefine one); a CNN needs both a builder and a recipe."""
    if (spec.builder is None) != (spec.recipe is None):
        raise ValueError(f"model {spec.name!r}: a CNN needs both a builder and a recipe, a classical model neither")
    if spec.name in MODELS and not replace:
        raise ValueError(f"model {spec.name!r} is registered already; pass replace=True to redefine it")
    MODELS[spec.name] = spec
    return spec


def unregister(name: str) -> None:
    MODELS.pop(name, None)


def get(name: str) -> ModelSpec:
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of {sorted(MODELS)}")
    return MODELS[name]


def cnn_names() -> tuple[str, ...]:
    return tuple(name for name, spec in MODELS.items() if spec.is_cnn)


def build_model(name: str, **kwargs) -> nn.Module:
    """A fresh, randomly initialised CNN by name; kwargs are its architecture switches."""
    spec = get(name)
    if not spec.is_cnn:
        raise ValueError(f"{name!r} is not a CNN; choose one of {cnn_names()}")
    return spec.builder(**kwargs)


def main_config(name: str, profile: str | Profile, seed: int = 0) -> CNNConfig:
    """A CNN's training recipe at the profile's size, for one seed."""
    profile = get_profile(profile)
    spec = get(name)
    if spec.recipe is None:
        raise ValueError(f"no recipe for model {name!r}; choose one of {cnn_names()}")
    return spec.recipe(profile, seed)


# Runs of a registered model under another name: its seed ensemble, its crowd-vote twin, its bf16 precision check.
RUN_SUFFIXES = {
    "_ensemble": " ensemble",
    "_crowd": ", crowd-trained",
    "_bf16": " in bf16 (precision check)",
    "_tta_flip": " with flip TTA",
    "_tta_flip_crop": " with ten-view TTA",
}


def base_model(name: str) -> str:
    """The registered model a run name belongs to ("model_b_ensemble" -> "model_b"); the name itself otherwise."""
    for suffix in RUN_SUFFIXES:
        if name.endswith(suffix) and name.removesuffix(suffix) in MODELS:
            return name.removesuffix(suffix)
    return name


def label(name: str) -> str:
    """How tables and prose call a model or one of its runs (the run name itself when no model owns it)."""
    base = base_model(name)
    if base not in MODELS:
        return name
    return MODELS[base].label + RUN_SUFFIXES.get(name[len(base) :], "")


def is_main(name: str) -> bool:
    """Whether a model is a row of the report's main comparison, which holds single models: its seed ensemble and
    other inference additions sit beside it, in a table of their own."""
    return name in MODELS and MODELS[name].main


def notebooks() -> dict[str, str]:
    """The main models and the notebook that trains each."""
    return {name: spec.notebook for name, spec in MODELS.items() if spec.main}


def shipped_files() -> tuple[str, ...]:
    """The weights files `fer-study predict` looks for in models/, best first."""
    shipping = sorted((spec for spec in MODELS.values() if spec.ships is not None), key=lambda s: s.ships)
    return tuple(spec.shipped_file for spec in shipping)


for _spec in (
    ModelSpec("hog_svm", "HOG + SVM", "02_hog_svm"),
    ModelSpec("hog_svm_balanced", "HOG + SVM, balanced", "02_hog_svm", main=False),
    # HOG beyond the paper (classical.HOG_VARIANTS holds their settings)
    ModelSpec("hog_fine_cells", "HOG, 4-pixel cells + PCA + linear SVM", "02_hog_svm", main=False),
    ModelSpec("hog_multiscale", "HOG, three cell sizes + PCA + linear SVM", "02_hog_svm", main=False),
    ModelSpec("hog_nystroem", "HOG + Nyström RBF features + ridge (ours)", "02_hog_svm", main=False),
    ModelSpec("hog_nystroem_balanced", "HOG + Nyström RBF features + ridge, balanced", "02_hog_svm", main=False),
    ModelSpec(
        "baseline_cnn",
        "Baseline CNN",
        "03_baseline_cnn",
        BaselineCNN,
        baseline_config,
        title="Baseline CNN (the paper's Table 1)",
        ships=2,
    ),
    ModelSpec(
        "model_b", "Model B", "04_tuned_cnn", ModelB, model_b_config, title="Model B (the paper's tuned CNN)", ships=1
    ),
    # Model B distilled into a third of its widths by fer_helpers.train.distill (`fer-study distill`): a fast option of
    # predict (--weights), never its default; not in models/ (after 5 epochs, 60.8%: slower than the shipped
    # baseline CNN for 1.2 points more, docs/photos.md); not a main model, so no profile's plan trains it
    ModelSpec(
        "model_b_distilled",
        "Model B, distilled (fast)",
        "04_tuned_cnn",
        ModelB,
        distilled_config,
        title="Model B distilled into a small fast CNN",
        ships=3,
        main=False,
    ),
    ModelSpec(
        "resnet_fer",
        "ResNet-FER (ours)",
        "04_tuned_cnn",
        ResNetFER,
        ours_config,
        title="ResNet-FER (our model)",
        ships=0,
    ),
):
    register(_spec)
