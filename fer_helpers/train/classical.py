"""The classical pipeline: HOG, standardisation and a linear SVM (the paper's baseline), and stronger variants.

Every HOG model is a scikit-learn `Pipeline` (scaler, optional PCA and Nyström features, classifier) on cached HOG
features. Its transformers are fitted on Training; C is chosen on PublicTest (`cross_validate` over a
`PredefinedSplit`: fitted on Training alone, scored on PublicTest), and the model kept is the one fitted at that C.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

import numpy as np
import pandas as pd
from joblib import Parallel, delayed, effective_n_jobs, parallel_config
from safetensors.numpy import save_file
from sklearn.base import BaseEstimator, TransformerMixin, clone
from sklearn.decomposition import PCA
from sklearn.exceptions import ConvergenceWarning
from sklearn.frozen import FrozenEstimator
from sklearn.kernel_approximation import Nystroem
from sklearn.linear_model import RidgeClassifier
from sklearn.metrics import f1_score, make_scorer
from sklearn.model_selection import PredefinedSplit, cross_validate
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import LinearSVC

from fer_helpers.core.profiles import Profile
from fer_helpers.data.features import HOG_DEFAULTS, cached_hog_features, hog_dim
from fer_helpers.data.fer2013 import NUM_CLASSES, SPLITS, FERData
from fer_helpers.data.results import EVAL_SPLITS, RunResult, cached_run, saved_run
from fer_helpers.scoring.runs import scored_run

# What the C search records for each C on PublicTest; the choice is by accuracy. Macro F1 over all seven classes,
# as in metrics.classification_metrics.
SEARCH_SCORING = {
    "accuracy": "accuracy",
    "macro_f1": make_scorer(f1_score, average="macro", labels=list(range(NUM_CLASSES)), zero_division=0),
}
# liblinear's two solvers reach the same optimum at different costs. Dual coordinate descent needs few passes over
# the faces when C is small (its multipliers are boxed in [0, C]) and more as C grows; the primal Newton solver
# costs about the same at any C. Measured on FER-2013 (28,709 Training faces x 900 HOG dimensions, one core,
# without / with balanced class weights), dual against primal: C = 0.0001 12-14 s against 55-59 s, C = 0.001 33 s
# against 73-93 s, C = 0.01 255 s against 128-165 s, each pair with the same PublicTest accuracy. The dual is used
# while C times the number of training faces stays at or below this.
DUAL_MAX_C_TIMES_FACES = 50.0


def linear_svc_dual(c: float, n_train: int) -> bool:
    """Whether LinearSVC solves the dual (fast at small C) rather than the primal, for this C and training set."""
    return c * n_train <= DUAL_MAX_C_TIMES_FACES


def _check_common(config: HogSvmConfig | HogVariantConfig, tuple_fields: tuple[str, ...]) -> None:
    """Turn list fields into tuples (a config read from JSON has lists), sort the C grid and check class weights."""
    for name in tuple_fields:
        object.__setattr__(config, name, tuple(getattr(config, name)))
    object.__setattr__(config, "c_grid", tuple(sorted(config.c_grid)))  # ascending: a tie goes to the smaller C
    if not config.c_grid:
        raise ValueError("c_grid is empty: give at least one C")
    if config.class_weight not in (None, "balanced"):
        raise ValueError(f"class_weight must be None or 'balanced', got {config.class_weight!r}")


@dataclass(frozen=True)
class HogSvmConfig:
    """The paper's HOG + one-vs-rest linear SVM; C is chosen on PublicTest from c_grid."""

    c_grid: tuple[float, ...] = (0.001, 0.01, 0.1, 1.0)
    class_weight: str | None = None  # None, or "balanced" against FER-2013's imbalance
    orientations: int = HOG_DEFAULTS["orientations"]  # the paper's HOG (features.HOG_DEFAULTS)
    pixels_per_cell: tuple[int, int] = HOG_DEFAULTS["pixels_per_cell"]
    cells_per_block: tuple[int, int] = HOG_DEFAULTS["cells_per_block"]
    block_norm: str = HOG_DEFAULTS["block_norm"]
    max_iter: int = 5000
    seed: int = 0

    def __post_init__(self) -> None:
        _check_common(self, ("pixels_per_cell", "cells_per_block"))

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
        return dict(
            orientations=self.orientations,
            pixels_per_cell=self.pixels_per_cell,
            cells_per_block=self.cells_per_block,
            block_norm=self.block_norm,
        )

    @property
    def hog_param_sets(self) -> list[dict]:
        """The HOG settings whose features are concatenated: here, the paper's one."""
        return [self.hog_params]

    def pipeline(self) -> Pipeline:
        """The model before fitting: standardisation, then a one-vs-rest linear SVM (C set by the search)."""
        return Pipeline([("scaler", StandardScaler()), ("clf", _classifier("linear_svc", self))])

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
        model, result = _fit_hog_model(data, config, run_root, run_dir, key, n_jobs=n_jobs, count_transforms=False)
        # What a new face needs: standardise its HOG with the Training statistics, then score with the SVM.
        scaler, svm = model["scaler"], model["clf"]
        weights = {
            "scaler_mean": scaler.mean_,
            "scaler_scale": scaler.scale_,
            "coef": svm.coef_,
            "intercept": svm.intercept_,
        }
        run_dir.mkdir(parents=True, exist_ok=True)
        # safetensors writes the raw buffer: liblinear's Fortran-ordered coef_ must become C-ordered first.
        save_file({k: np.ascontiguousarray(v) for k, v in weights.items()}, str(run_dir / "weights.safetensors"))
        return result

    return cached_run(config.model, config.to_dict(), data.sha256, run_root, train, fresh=fresh)


def hog_svm_configs(profile: Profile) -> list[HogSvmConfig]:
    """The paper's HOG + SVM at a profile's C grid, without and with balanced class weights."""
    return [HogSvmConfig.from_profile(profile, class_weight=class_weight) for class_weight in (None, "balanced")]


def fit_hog_svms(
    data: FERData, configs: list[HogSvmConfig], run_root: str | Path, fresh: bool = False, *, n_jobs: int = -1
) -> dict[str, RunResult]:
    """Several HOG + SVM configurations, each fitted (or loaded) as `fit_hog_svm` does it, by model name.

    Those still to fit run side by side, one worker process per configuration while the cores allow, each searching
    its C grid with the cores left to it: on two cores the two configurations' fits overlap instead of queueing
    behind each other (liblinear's dual solver fits one C per process at a time, see search_c_on_public_test).
    """
    cores = effective_n_jobs(n_jobs)
    todo = [c for c in configs if fresh or saved_run(c.model, c.to_dict(), data.sha256, run_root) is None]
    if len(todo) < 2 or cores < 2:
        return {c.model: fit_hog_svm(data, c, run_root, fresh, n_jobs=n_jobs) for c in configs}
    for params in {tuple(sorted(p.items())) for c in todo for p in c.hog_param_sets}:  # extracted once, then cached
        cached_hog_features(data.images, data.sha256, run_root, n_jobs=n_jobs, **dict(params))
    workers = min(len(todo), cores)
    with parallel_config(backend="loky", n_jobs=workers):
        fitted = Parallel()(
            delayed(fit_hog_svm)(data, c, run_root, fresh, n_jobs=max(1, cores // workers)) for c in todo
        )
    done = {c.model: result for c, result in zip(todo, fitted)}
    return {
        c.model: done[c.model] if c.model in done else fit_hog_svm(data, c, run_root, n_jobs=n_jobs) for c in configs
    }


# ---------------------------------------------------------------- beyond the paper: how far HOG can go


@dataclass(frozen=True)
class HogVariantConfig:
    """A stronger classical model: HOG at several cell sizes, PCA, optional Nyström RBF features, a linear classifier.

    Everything is fitted on Training; C is chosen on PublicTest. PCA and kernel sizes are clipped to what the
    number of training faces supports (see sized_for), so small profiles run the same variants, smaller.
    """

    name: str  # result name, saying what the variant changes: "hog_fine_cells", "hog_nystroem", ...
    cell_sizes: tuple[int, ...] = HOG_DEFAULTS["pixels_per_cell"][
        :1
    ]  # HOG cells of s x s pixels; several: concatenated
    orientations: int = HOG_DEFAULTS["orientations"]
    cells_per_block: tuple[int, int] = HOG_DEFAULTS["cells_per_block"]
    pca_components: int | None = None  # None: no PCA
    kernel_components: int | None = None  # Nystroem RBF features; None: stay linear
    gamma_scale: float = 1.0  # RBF gamma = gamma_scale / (dims * variance), scikit-learn's "scale" at 1
    classifier: str = "linear_svc"  # "linear_svc" (one-vs-rest, squared hinge) or "ridge" (least squares, alpha = 1/C)
    c_grid: tuple[float, ...] = (0.01, 0.1, 1.0)
    class_weight: str | None = None
    max_iter: int = 2000
    seed: int = 0

    def __post_init__(self) -> None:
        _check_common(self, ("cell_sizes", "cells_per_block"))
        if self.classifier not in ("linear_svc", "ridge"):
            raise ValueError(f"classifier must be 'linear_svc' or 'ridge', got {self.classifier!r}")
        if not self.cell_sizes:
            raise ValueError("cell_sizes is empty: give at least one HOG cell size")

    @property
    def model(self) -> str:
        return self.name

    @property
    def hog_param_sets(self) -> list[dict]:
        """The HOG settings whose features are concatenated: one per cell size."""
        return [
            dict(
                orientations=self.orientations,
                pixels_per_cell=(cells, cells),
                cells_per_block=self.cells_per_block,
                block_norm=HOG_DEFAULTS["block_norm"],
            )
            for cells in self.cell_sizes
        ]

    def sized_for(self, n_train: int, image_shape: tuple[int, int] = (48, 48)) -> HogVariantConfig:
        """This configuration with PCA and kernel sizes clipped to what the training faces allow."""
        dims = sum(
            hog_dim(
                image_shape,
                orientations=self.orientations,
                pixels_per_cell=(cells, cells),
                cells_per_block=self.cells_per_block,
            )
            for cells in self.cell_sizes
        )
        # At most a quarter as many PCA components as faces: with as many dimensions as faces any labelling is
        # linearly separable, and the SVM would fit noise (slowly).
        pca = None if self.pca_components is None else min(self.pca_components, max(1, n_train // 4), dims)
        kernel = None if self.kernel_components is None else min(self.kernel_components, n_train)
        return replace(self, pca_components=pca, kernel_components=kernel)

    def pipeline(self) -> Pipeline:
        """The model before fitting: standardisation, PCA, Nyström RBF features (each if asked for), classifier."""
        steps = [("scaler", StandardScaler())]
        if self.pca_components is not None:
            steps.append(("pca", PCA(self.pca_components, svd_solver="randomized", random_state=self.seed)))
        if self.kernel_components is not None:
            steps.append(("nystroem", ScaledNystroem(self.kernel_components, self.gamma_scale, self.seed)))
        return Pipeline([*steps, ("clf", _classifier(self.classifier, self))])

    def to_dict(self) -> dict:
        return asdict(self)


# The variants of the extension, from the paper's features to the strongest model; each isolates one step and is
# named for it. A renamed variant moves its saved runs with it: `python -m fer_helpers.data.migrate` (see migrate.py).
# Multi-scale HOG mapped to 4,000 Nyström features that approximate an RBF kernel, then a linear least-squares
# (ridge) classifier on them: not a kernel SVM, but a linear model of kernel features. Kernel width: half of
# scikit-learn's "scale" did best on PublicTest among 0.5, 1 and 2 times it.
_NYSTROEM = HogVariantConfig(
    "hog_nystroem",
    cell_sizes=(4, 6, 8),
    pca_components=256,
    kernel_components=4000,
    gamma_scale=0.5,
    classifier="ridge",
    c_grid=(1.0, 10.0, 100.0, 1000.0),
)
HOG_VARIANTS: dict[str, HogVariantConfig] = {
    config.name: config
    for config in (
        # Finer cells (4 pixels), PCA, linear SVM: does resolution help a linear SVM?
        HogVariantConfig("hog_fine_cells", cell_sizes=(4,), pca_components=512, c_grid=(0.001, 0.01, 0.1, 1.0)),
        # Three cell sizes together (4, 6 and 8 pixels), PCA, still a linear SVM.
        HogVariantConfig("hog_multiscale", cell_sizes=(4, 6, 8), pca_components=512, c_grid=(0.001, 0.01, 0.1, 1.0)),
        # The same features mapped to Nyström features that approximate an RBF kernel, then ridge (_NYSTROEM).
        _NYSTROEM,
        # ... with balanced class weights, for the small classes.
        replace(_NYSTROEM, name="hog_nystroem_balanced", class_weight="balanced"),
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
        return _fit_hog_model(data, config, run_root, run_dir, key, n_jobs=n_jobs, count_transforms=True)[1]

    return cached_run(config.model, config.to_dict(), data.sha256, run_root, train, fresh=fresh)


class ScaledNystroem(TransformerMixin, BaseEstimator):
    """Nyström approximation of RBF kernel features, gamma = gamma_scale / (dims * variance of the training input).

    At gamma_scale 1 this is the width SVC's gamma="scale" picks; Nystroem itself takes only a fixed gamma.
    """

    def __init__(self, n_components: int = 100, gamma_scale: float = 1.0, random_state: int | None = None):
        self.n_components = n_components
        self.gamma_scale = gamma_scale
        self.random_state = random_state

    def fit(self, x: np.ndarray, y: np.ndarray | None = None) -> ScaledNystroem:
        gamma = self.gamma_scale / (x.shape[1] * float(x.var()))
        self.nystroem_ = Nystroem(gamma=gamma, n_components=self.n_components, random_state=self.random_state).fit(x)
        return self

    def transform(self, x: np.ndarray) -> np.ndarray:
        return self.nystroem_.transform(x)


# ---------------------------------------------------------------- fitting: one C search for every HOG model


class _Frozen(FrozenEstimator):
    """A fitted transformer that fitting the pipeline leaves as it is; each clone is a new wrapper around it.

    FrozenEstimator's clone is the wrapper itself, and scikit-learn marks a pipeline's step while fitting it: the
    search's threads would then mark and unmark one shared wrapper at once.
    """

    def __sklearn_clone__(self) -> _Frozen:
        return _Frozen(self.estimator)


def fit_transformers(pipeline: Pipeline, x_train: np.ndarray) -> Pipeline:
    """The pipeline with its transformers (scaler, PCA, Nyström) fitted on Training and frozen; the classifier unfitted.

    The transformers do not depend on C: frozen, they are fitted once, and the C search fits only the classifier.
    Each step learns from the training faces as the steps before it transform them (as they will a new face).
    """
    *transformers, (name, classifier) = pipeline.steps
    steps = []
    for step_name, step in transformers:
        step = clone(step).fit(x_train)
        x_train = step.transform(x_train)
        steps.append((step_name, _Frozen(step)))
    return Pipeline([*steps, (name, clone(classifier))])


def search_c_on_public_test(
    pipeline: Pipeline,
    c_grid: tuple[float, ...],
    features: np.ndarray,
    labels: np.ndarray,
    usage: np.ndarray,
    *,
    n_jobs: int = -1,
) -> tuple[list[dict], list[Pipeline], float]:
    """The pipeline fitted on Training at each C, and its PublicTest accuracy and macro F1: one row and one model per C.

    PrivateTest plays no part. The fitted models are returned so that the chosen one needs no second fit, with the
    CPU seconds the search took in every thread and worker process.
    """
    param, values = _c_values(pipeline, c_grid)
    seen = usage != "PrivateTest"
    n_train = int((usage == "Training").sum())
    # One predefined split: fit on the Training faces (fold -1: never scored), score on PublicTest (fold 0).
    # GridSearchCV would discard the model fitted at each C, and its refit would learn from PublicTest as well.
    public_fold = PredefinedSplit(np.where(usage[seen] == "PublicTest", 0, -1))
    candidates = [
        clone(pipeline).set_params(**{param: value}, **_solver(pipeline, c, n_train))
        for c, value in zip(c_grid, values)
    ]
    x, y = features[seen], labels[seen]  # one copy, shared by the threads (or memory-mapped by the processes)
    # Threads where they can: liblinear's primal, ridge's solver and BLAS release the GIL, and threads share the
    # features instead of copying them. liblinear's dual solver, though, visits the faces in an order drawn from one
    # random generator of the whole process, which every LinearSVC fit reseeds: two dual fits in one process would
    # make each result depend on timing. A grid with dual fits runs them in worker processes instead, each with its
    # own generator: the same models as fitted in turn (tested), in the time of the slowest fit rather than the sum.
    dual = any(_solver_name(candidate) == "dual" for candidate in candidates)
    backend = "loky" if dual and len(candidates) > 1 and n_jobs != 1 else "threading"
    cpu_start = time.process_time()
    with parallel_config(backend=backend, n_jobs=n_jobs):
        runs = Parallel()(delayed(_fit_and_score)(candidate, x, y, public_fold) for candidate in candidates)
    # process_time counts this process's threads; a worker process counts its own fit (one at a time) itself.
    cpu_seconds = time.process_time() - cpu_start
    if backend == "loky":
        cpu_seconds += sum(run["cpu_seconds"] for run in runs)
    rows = [
        {
            "C": c,
            "public_accuracy": float(run["test_accuracy"][0]),
            "public_macro_f1": float(run["test_macro_f1"][0]),
            "fit_seconds": float(run["fit_time"][0]),
            "solver": _solver_name(candidate),
            "converged": _converged(run["estimator"][0]),
        }
        for c, candidate, run in zip(c_grid, candidates, runs)
    ]
    return rows, [run["estimator"][0] for run in runs], cpu_seconds


def _fit_and_score(candidate: Pipeline, x: np.ndarray, y: np.ndarray, public_fold: PredefinedSplit) -> dict:
    """One C of the search: fitted on Training, scored on PublicTest (in a worker thread or process)."""
    # A fit that stops at max_iter is recorded in its row ("converged"), not printed as a warning per fit; the
    # filter is set here because a worker process does not inherit the caller's.
    start = time.process_time()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        run = cross_validate(
            candidate, x, y, cv=public_fold, scoring=SEARCH_SCORING, return_estimator=True, error_score="raise"
        )
    return {**run, "cpu_seconds": time.process_time() - start}


def _n_iter(pipeline: Pipeline) -> int | None:
    """The iterations the fitted classifier's solver ran (its slowest class); None for a direct (ridge) solve."""
    n_iter = getattr(pipeline["clf"], "n_iter_", None)
    return None if n_iter is None else int(np.max(n_iter))


def _converged(pipeline: Pipeline) -> bool:
    """Whether the fitted classifier's solver stopped before its max_iter."""
    n_iter, max_iter = _n_iter(pipeline), getattr(pipeline["clf"], "max_iter", None)
    return n_iter is None or max_iter is None or n_iter < max_iter


def _solver_name(pipeline: Pipeline) -> str:
    """How the pipeline's classifier is solved, for the search's table."""
    clf = pipeline["clf"]
    return ("dual" if clf.dual else "primal") if isinstance(clf, LinearSVC) else "least squares"


def _solver(pipeline: Pipeline, c: float, n_train: int) -> dict:
    """The classifier's solver setting for this C, as a pipeline parameter: LinearSVC's dual or primal; ridge: none."""
    if isinstance(pipeline["clf"], LinearSVC):
        return {"clf__dual": linear_svc_dual(c, n_train)}
    return {}


def _fit_hog_model(
    data: FERData,
    config: HogSvmConfig | HogVariantConfig,
    run_root: str | Path,
    run_dir: Path,
    key: str,
    *,
    n_jobs: int,
    count_transforms: bool,
) -> tuple[Pipeline, RunResult]:
    """HOG features (cached), C chosen on PublicTest among pipelines fitted on Training; the chosen one and its result.

    count_transforms: the parameters include what the scaler, PCA and Nyström learned, not only the classifier's.
    """
    blocks, hog_seconds = [], 0.0
    for params in config.hog_param_sets:
        block, seconds = cached_hog_features(data.images, data.sha256, run_root, n_jobs=n_jobs, **params)
        blocks.append(block)
        hog_seconds += seconds
    features = np.concatenate(blocks, axis=1) if len(blocks) > 1 else blocks[0]
    del blocks
    training = data.usage == "Training"

    start, transform_cpu_start = time.perf_counter(), time.process_time()
    pipeline = fit_transformers(config.pipeline(), features[training])
    # The frozen transformers do not depend on C: every face is transformed once, and the search and the final fit
    # see only the classifier (one copy of the transformed faces instead of one per C fitted at once).
    transformers, classifier = pipeline[:-1], pipeline[-1:]
    hog_dims = features.shape[1]
    by_split = {split: data.usage == split for split in SPLITS}  # split by split, as the pipeline would see them
    transformed = {split: transformers.transform(features[mask]) for split, mask in by_split.items()}
    first = next(iter(transformed.values()))
    features = np.empty((len(features), first.shape[1]), dtype=first.dtype)
    for split, mask in by_split.items():
        features[mask] = transformed[split]
    del transformed
    transform_seconds, transform_cpu_seconds = time.perf_counter() - start, time.process_time() - transform_cpu_start
    search, fitted, fit_cpu_seconds = search_c_on_public_test(
        classifier, config.c_grid, features, data.labels, data.usage, n_jobs=n_jobs
    )
    search_seconds, search_cpu_seconds = time.perf_counter() - start, transform_cpu_seconds + fit_cpu_seconds
    best = int(np.argmax([row["public_accuracy"] for row in search]))  # the first best: the smallest such C
    # The search fitted each C on Training alone, as every model of the study learns: the chosen one is kept.
    classifier = fitted[best]
    train_seconds = transform_seconds + search[best]["fit_seconds"]
    model = Pipeline([*transformers.steps, *classifier.steps])

    logits = {
        split: classifier.decision_function(features[by_split[split]]).astype(np.float32) for split in EVAL_SPLITS
    }
    n_train = int(training.sum())
    classifier_params = _fitted_size(model["clf"])
    transform_params = sum(_fitted_size(step.estimator) for _, step in model.steps[:-1]) if count_transforms else 0
    facts = {
        "params": transform_params + classifier_params,
        "train_seconds": train_seconds,
        "images_per_second": n_train / train_seconds,
        "device": "cpu",
        "history": pd.DataFrame(search),
        "extra": {
            "c_search": search,
            "chosen_C": config.c_grid[best],
            "hog_dim": int(hog_dims),
            "hog_seconds": hog_seconds,
            "hog_images_per_second": len(features) / hog_seconds,
            "transform_seconds": transform_seconds,
            "search_seconds": search_seconds,
            "search_cpu_seconds": search_cpu_seconds,
            "classifier_params": classifier_params,
            "n_train": n_train,
            "n_iter": _n_iter(classifier),
            "converged": search[best]["converged"],
        },
    }
    return model, scored_run(config.model, config, key, run_dir, data, logits, **facts)


def _classifier(kind: str, config: HogSvmConfig | HogVariantConfig) -> LinearSVC | RidgeClassifier:
    """The last step of a HOG pipeline, at the first C of the grid (the search sets C)."""
    if kind == "ridge":
        # One least-squares fit per C on a few thousand kernel features: seconds, where an SVM takes many minutes.
        return RidgeClassifier(alpha=1.0 / config.c_grid[0], class_weight=config.class_weight)
    # The search sets C and the solver (linear_svc_dual); "auto" is scikit-learn's choice by the data's shape alone.
    return LinearSVC(
        C=config.c_grid[0],
        class_weight=config.class_weight,
        dual="auto",
        max_iter=config.max_iter,
        random_state=config.seed,
    )


def _c_values(pipeline: Pipeline, c_grid: tuple[float, ...]) -> tuple[str, list[float]]:
    """The classifier's setting that C stands for, and its value at each C: LinearSVC's C, or ridge's alpha = 1/C."""
    if isinstance(pipeline["clf"], RidgeClassifier):
        return "clf__alpha", [1.0 / c for c in c_grid]
    return "clf__C", list(c_grid)


def _fitted_size(step) -> int:
    """How many learned numbers a fitted pipeline step keeps (what it needs to transform or score a new face)."""
    if isinstance(step, ScaledNystroem):
        step = step.nystroem_
    arrays = {
        StandardScaler: ("mean_", "scale_"),
        PCA: ("components_", "mean_"),
        Nystroem: ("components_", "normalization_"),
        LinearSVC: ("coef_", "intercept_"),
        RidgeClassifier: ("coef_", "intercept_"),
    }[type(step)]
    return int(sum(getattr(step, name).size for name in arrays))
