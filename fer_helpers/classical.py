"""The classical pipeline: HOG, standardisation and a linear SVM (the paper's baseline), and stronger variants."""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

import numpy as np
import pandas as pd
from joblib import Parallel, delayed
from safetensors.numpy import save_file
from sklearn.decomposition import PCA
from sklearn.kernel_approximation import Nystroem
from sklearn.linear_model import RidgeClassifier
from sklearn.preprocessing import StandardScaler
from sklearn.svm import LinearSVC

from .data import SPLITS, FERData
from .features import cached_hog_features, hog_dim
from .metrics import classification_metrics
from .profiles import Profile
from .results import EVAL_SPLITS, RunResult, cached_run


@dataclass(frozen=True)
class HogSvmConfig:
    """The paper's HOG + one-vs-rest linear SVM; C is chosen on PublicTest from c_grid."""

    c_grid: tuple[float, ...] = (0.001, 0.01, 0.1, 1.0)
    class_weight: str | None = None  # None, or "balanced" against FER-2013's imbalance
    orientations: int = 9  # paper: 9 orientations, 8x8-pixel cells, 2x2-cell blocks
    pixels_per_cell: tuple[int, int] = (8, 8)
    cells_per_block: tuple[int, int] = (2, 2)
    block_norm: str = "L2-Hys"
    max_iter: int = 5000
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("pixels_per_cell", "cells_per_block"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        object.__setattr__(self, "c_grid", tuple(sorted(self.c_grid)))  # ascending: a tie goes to the smaller C
        if not self.c_grid:
            raise ValueError("c_grid is empty: give at least one C")
        if self.class_weight not in (None, "balanced"):
            raise ValueError(f"class_weight must be None or 'balanced', got {self.class_weight!r}")

    @classmethod
    def from_profile(cls, profile: Profile, **overrides) -> HogSvmConfig:
        """The configuration a run profile asks for (its C grid), with some fields replaced."""
        return cls(**({"c_grid": profile.hog_c_grid} | overrides))

    @classmethod
    def from_dict(cls, config: dict) -> HogSvmConfig:
        """Build from a plain dict; an unknown key is an error, not a silently ignored setting."""
        unknown = set(config) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(f"unknown HOG+SVM setting(s) {sorted(unknown)}; known: {[f.name for f in fields(cls)]}")
        return cls(**config)

    @property
    def model(self) -> str:
        return "hog_svm_balanced" if self.class_weight == "balanced" else "hog_svm"

    @property
    def hog_params(self) -> dict:
        return dict(orientations=self.orientations, pixels_per_cell=self.pixels_per_cell,
                    cells_per_block=self.cells_per_block, block_norm=self.block_norm)

    def to_dict(self) -> dict:
        return asdict(self)


def fit_hog_svm(
    data: FERData, config: dict | HogSvmConfig, run_root: str | Path, fresh: bool = False, *, n_jobs: int = -1
) -> RunResult:
    """HOG + StandardScaler + LinearSVC trained on Training, C chosen on PublicTest; cached in run_root.

    n_jobs: cores for the HOG extraction and for fitting several values of C at once (-1: all).
    """
    config = config if isinstance(config, HogSvmConfig) else HogSvmConfig.from_dict(config)

    def train(run_dir: Path, key: str) -> RunResult:
        features, hog_seconds = cached_hog_features(data.images, data.sha256, run_root, n_jobs=n_jobs,
                                                    **config.hog_params)
        x, y = _by_split(data, features)
        start, cpu_start = time.perf_counter(), time.process_time()
        scaler = StandardScaler().fit(x["Training"])
        x = {split: scaler.transform(x[split]) for split in SPLITS}
        scaling_seconds = time.perf_counter() - start

        def fit_one(c: float) -> tuple[LinearSVC, float, float]:
            begin, cpu_begin = time.perf_counter(), time.thread_time()  # liblinear runs in this one thread
            # dual="auto" solves the primal when there are more faces than HOG dimensions, as on FER-2013.
            svm = LinearSVC(C=c, class_weight=config.class_weight, dual="auto", max_iter=config.max_iter,
                            random_state=config.seed)
            svm.fit(x["Training"], y["Training"])
            return svm, time.perf_counter() - begin, time.thread_time() - cpu_begin

        # liblinear releases the GIL, so threads fit several values of C at once without copying the features.
        fitted = Parallel(n_jobs=n_jobs, backend="threading")(delayed(fit_one)(c) for c in config.c_grid)
        search_seconds, search_cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
        search = []
        for c, (svm, seconds, cpu_seconds) in zip(config.c_grid, fitted):
            public = classification_metrics(y["PublicTest"], svm.predict(x["PublicTest"]))
            search.append({"C": c, "public_accuracy": public["accuracy"], "public_macro_f1": public["macro_f1"],
                           "fit_seconds": seconds, "fit_cpu_seconds": cpu_seconds, "n_iter": int(np.max(svm.n_iter_))})
        best = int(np.argmax([row["public_accuracy"] for row in search]))  # first best: the smallest such C
        svm, fit_seconds, _ = fitted[best]
        logits = {split: svm.decision_function(x[split]).astype(np.float32) for split in EVAL_SPLITS}
        # What a new face needs: standardise its HOG with the Training statistics, then score with the SVM.
        run_dir.mkdir(parents=True, exist_ok=True)
        weights = {"scaler_mean": scaler.mean_, "scaler_scale": scaler.scale_, "coef": svm.coef_,
                   "intercept": svm.intercept_}
        # safetensors writes the raw buffer: liblinear's Fortran-ordered coef_ must become C-ordered first.
        save_file({k: np.ascontiguousarray(v) for k, v in weights.items()}, str(run_dir / "weights.safetensors"))
        n_train = len(y["Training"])
        return RunResult(
            model=config.model, config=config.to_dict(), key=key, run_dir=run_dir, data_sha256=data.sha256,
            logits=logits, labels={split: y[split] for split in EVAL_SPLITS},
            metrics={split: classification_metrics(y[split], logits[split].argmax(axis=1)) for split in EVAL_SPLITS},
            seed=config.seed, params=int(svm.coef_.size + svm.intercept_.size),
            train_seconds=scaling_seconds + fit_seconds, images_per_second=n_train / fit_seconds, device="cpu",
            history=pd.DataFrame(search),
            extra={"c_search": search, "chosen_C": config.c_grid[best], "hog_dim": int(features.shape[1]),
                   "hog_seconds": hog_seconds, "hog_images_per_second": len(features) / hog_seconds,
                   "search_seconds": search_seconds, "search_cpu_seconds": search_cpu_seconds, "n_train": n_train,
                   "converged": search[best]["n_iter"] < config.max_iter},
        )

    return cached_run(config.model, config.to_dict(), data.sha256, run_root, train, fresh=fresh)


def _by_split(data: FERData, features: np.ndarray) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    masks = {split: data.usage == split for split in SPLITS}
    return ({split: features[mask] for split, mask in masks.items()},
            {split: data.labels[mask] for split, mask in masks.items()})


# ---------------------------------------------------------------- beyond the paper: how far HOG can go


@dataclass(frozen=True)
class HogVariantConfig:
    """A stronger classical model: HOG at several cell sizes, PCA, an RBF kernel map, a linear classifier.

    Everything is fitted on Training; C is chosen on PublicTest. PCA and kernel sizes are clipped to what the
    number of training faces supports (see sized_for), so small profiles run the same variants, smaller.
    """

    name: str  # result name, "hog_extended..."
    cell_sizes: tuple[int, ...] = (8,)  # HOG cells of s x s pixels; several sizes are concatenated
    orientations: int = 9
    cells_per_block: tuple[int, int] = (2, 2)
    pca_components: int | None = None  # None: no PCA
    kernel_components: int | None = None  # Nystroem RBF features; None: stay linear
    gamma_scale: float = 1.0  # RBF gamma = gamma_scale / (dims * variance), scikit-learn's "scale" at 1
    classifier: str = "linear_svc"  # "linear_svc" (one-vs-rest, squared hinge) or "ridge" (least squares, alpha = 1/C)
    c_grid: tuple[float, ...] = (0.01, 0.1, 1.0)
    class_weight: str | None = None
    max_iter: int = 2000
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("cell_sizes", "cells_per_block"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        object.__setattr__(self, "c_grid", tuple(sorted(self.c_grid)))  # ascending: a tie goes to the smaller C
        if self.classifier not in ("linear_svc", "ridge"):
            raise ValueError(f"classifier must be 'linear_svc' or 'ridge', got {self.classifier!r}")
        if not self.c_grid or not self.cell_sizes:
            raise ValueError("c_grid and cell_sizes need at least one value each")
        if self.class_weight not in (None, "balanced"):
            raise ValueError(f"class_weight must be None or 'balanced', got {self.class_weight!r}")

    def sized_for(self, n_train: int, image_shape: tuple[int, int] = (48, 48)) -> HogVariantConfig:
        """This configuration with PCA and kernel sizes clipped to what the training faces allow."""
        dims = sum(hog_dim(image_shape, orientations=self.orientations, pixels_per_cell=(cells, cells),
                           cells_per_block=self.cells_per_block) for cells in self.cell_sizes)
        # At most a quarter as many PCA components as faces: with as many dimensions as faces any labelling is
        # linearly separable, and the SVM would fit noise (slowly).
        pca = None if self.pca_components is None else min(self.pca_components, max(1, n_train // 4), dims)
        kernel = None if self.kernel_components is None else min(self.kernel_components, n_train)
        return replace(self, pca_components=pca, kernel_components=kernel)

    def to_dict(self) -> dict:
        return asdict(self)


# The variants of the extension, from the paper's features to the strongest model; each isolates one step.
HOG_VARIANTS: dict[str, HogVariantConfig] = {
    config.name: config
    for config in (
        # Finer cells, linear: does resolution help a linear SVM?
        HogVariantConfig("hog_extended_fine", cell_sizes=(4,), pca_components=512, c_grid=(0.001, 0.01, 0.1, 1.0)),
        # Three scales together (4, 6 and 8 pixels), still linear.
        HogVariantConfig("hog_extended_multiscale", cell_sizes=(4, 6, 8), pca_components=512,
                         c_grid=(0.001, 0.01, 0.1, 1.0)),
        # The same features through an RBF kernel (Nystroem approximation) and a least-squares (ridge) classifier.
        # Kernel width: half of scikit-learn's "scale" did best on PublicTest among 0.5, 1 and 2 times it.
        HogVariantConfig("hog_extended", cell_sizes=(4, 6, 8), pca_components=256, kernel_components=4000,
                         gamma_scale=0.5, classifier="ridge", c_grid=(1.0, 10.0, 100.0, 1000.0)),
        # ... with balanced class weights, for the small classes.
        HogVariantConfig("hog_extended_balanced", cell_sizes=(4, 6, 8), pca_components=256, kernel_components=4000,
                         gamma_scale=0.5, classifier="ridge", c_grid=(1.0, 10.0, 100.0, 1000.0),
                         class_weight="balanced"),
    )
}


def hog_variant_config(name: str, **overrides) -> HogVariantConfig:
    """One of HOG_VARIANTS by name, optionally with some fields replaced."""
    if name not in HOG_VARIANTS:
        raise ValueError(f"unknown HOG variant {name!r}; choose one of {sorted(HOG_VARIANTS)}")
    return replace(HOG_VARIANTS[name], **overrides)


def fit_hog_variant(
    data: FERData, config: str | HogVariantConfig, run_root: str | Path, fresh: bool = False, *, n_jobs: int = -1
) -> RunResult:
    """Fit one extension variant on Training, choose C on PublicTest, store PublicTest/PrivateTest scores (cached)."""
    config = hog_variant_config(config) if isinstance(config, str) else config
    config = config.sized_for(int((data.usage == "Training").sum()), data.images.shape[1:])

    def train(run_dir: Path, key: str) -> RunResult:
        hog_seconds = 0.0
        blocks = []
        for cells in config.cell_sizes:
            block, seconds = cached_hog_features(
                data.images, data.sha256, run_root, n_jobs=n_jobs, orientations=config.orientations,
                pixels_per_cell=(cells, cells), cells_per_block=config.cells_per_block, block_norm="L2-Hys")
            blocks.append(block)
            hog_seconds += seconds
        x, y = _by_split(data, np.concatenate(blocks, axis=1))
        n_dims = x["Training"].shape[1]
        del blocks

        start, cpu_start = time.perf_counter(), time.process_time()
        transforms = [StandardScaler()]
        if config.pca_components is not None:
            transforms.append(PCA(config.pca_components, svd_solver="randomized", random_state=config.seed))
        x = _fit_transform(transforms, x)
        if config.kernel_components is not None:
            dims, variance = x["Training"].shape[1], float(x["Training"].var())
            transforms.append(Nystroem(gamma=config.gamma_scale / (dims * variance),
                                       n_components=config.kernel_components, random_state=config.seed))
            x = _fit_transform(transforms[-1:], x)
        transform_seconds = time.perf_counter() - start

        def fit_one(c: float):
            begin = time.perf_counter()
            model = _classifier(config, c).fit(x["Training"], y["Training"])
            return model, time.perf_counter() - begin

        fitted = Parallel(n_jobs=n_jobs, backend="threading")(delayed(fit_one)(c) for c in config.c_grid)
        search_seconds, search_cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
        search = []
        for c, (model, seconds) in zip(config.c_grid, fitted):
            public = classification_metrics(y["PublicTest"], model.predict(x["PublicTest"]))
            n_iter = getattr(model, "n_iter_", None)  # None for a direct (ridge) solve
            search.append({"C": c, "public_accuracy": public["accuracy"], "public_macro_f1": public["macro_f1"],
                           "fit_seconds": seconds, "n_iter": None if n_iter is None else int(np.max(n_iter))})
        best = int(np.argmax([row["public_accuracy"] for row in search]))
        model, fit_seconds = fitted[best]
        logits = {split: model.decision_function(x[split]).astype(np.float32) for split in EVAL_SPLITS}
        n_train = len(y["Training"])
        transform_params = sum(_fitted_size(step) for step in transforms)
        classifier_params = int(model.coef_.size + model.intercept_.size)
        return RunResult(
            model=config.name, config=config.to_dict(), key=key, run_dir=run_dir, data_sha256=data.sha256,
            logits=logits, labels={split: y[split] for split in EVAL_SPLITS},
            metrics={split: classification_metrics(y[split], logits[split].argmax(axis=1)) for split in EVAL_SPLITS},
            seed=config.seed, params=transform_params + classifier_params,
            train_seconds=transform_seconds + fit_seconds,
            images_per_second=n_train / (transform_seconds + fit_seconds),
            device="cpu", history=pd.DataFrame(search),
            extra={"c_search": search, "chosen_C": config.c_grid[best], "hog_dim": n_dims,
                   "hog_seconds": hog_seconds, "hog_images_per_second": len(data) / hog_seconds,
                   "transform_seconds": transform_seconds, "search_seconds": search_seconds,
                   "search_cpu_seconds": search_cpu_seconds,
                   "classifier_params": classifier_params, "n_train": n_train,
                   "converged": search[best]["n_iter"] is None or search[best]["n_iter"] < config.max_iter},
        )

    return cached_run(config.name, config.to_dict(), data.sha256, run_root, train, fresh=fresh)


def _fit_transform(transforms: list, x: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Fit each transform on Training in turn and apply it to every split."""
    for step in transforms:
        step.fit(x["Training"])
        x = {split: step.transform(features).astype(np.float32) for split, features in x.items()}
    return x


def _classifier(config: HogVariantConfig, c: float) -> LinearSVC | RidgeClassifier:
    if config.classifier == "ridge":
        # One least-squares fit per C on a few thousand kernel features: seconds, where an SVM takes many minutes.
        return RidgeClassifier(alpha=1.0 / c, class_weight=config.class_weight)
    return LinearSVC(C=c, class_weight=config.class_weight, dual="auto", max_iter=config.max_iter,
                     random_state=config.seed)


def _fitted_size(step) -> int:
    """How many learned numbers a fitted transform keeps (what it needs to transform a new face)."""
    arrays = {StandardScaler: ("mean_", "scale_"), PCA: ("components_", "mean_"),
              Nystroem: ("components_", "normalization_")}[type(step)]
    return int(sum(getattr(step, name).size for name in arrays))
