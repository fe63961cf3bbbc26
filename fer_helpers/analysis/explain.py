"""Explanation: Grad-CAM heatmaps of the CNNs, measured (heat on face regions, faithfulness, sanity checks)."""

from __future__ import annotations

import copy
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import torch
from pytorch_grad_cam import EigenCAM, GradCAM, GradCAMPlusPlus, ScoreCAM
from pytorch_grad_cam.metrics.road import ROADLeastRelevantFirst, ROADMostRelevantFirst
from pytorch_grad_cam.utils.model_targets import ClassifierOutputSoftmaxTarget, ClassifierOutputTarget
from scipy.ndimage import gaussian_filter
from scipy.stats import rankdata
from skimage.metrics import structural_similarity
from torch import nn

from fer_helpers.core.profiles import CamBudget, Profile, get_profile
from fer_helpers.data.fer2013 import CLASS_NAMES, IMAGE_SIZE, NUM_CLASSES
from fer_helpers.data.results import RunResult, find_results
from fer_helpers.scoring.statistics import difference_ci, mean_ci
from fer_helpers.train import inference
from fer_helpers.train.weights import load_weights

CAM_METHODS: dict[str, type] = {
    "gradcam": GradCAM,
    "gradcam++": GradCAMPlusPlus,
    "eigencam": EigenCAM,
    "scorecam": ScoreCAM,
}
ROAD_PERCENTILES: tuple[int, ...] = (10, 20, 30, 40, 50, 60, 70, 80, 90)
REST = "rest"
# "Lower eyes" (the paper's "mata bagian bawah" for Sad): the lowest third of the eyes-and-brows region,
# from the eye centres down to the lower lids, below the brows.
LOWER_EYES_FRACTION = 1 / 3
# The cheeks (the paper's "pipi"): beside the nose box, below the eyes and brows, above the mouth (rows, columns).
CHEEK_BOXES: tuple[tuple[int, int, int, int], ...] = ((22, 31, 4, 15), (22, 31, 32, 43))


def cam_budget(profile: str | Profile, **overrides) -> CamBudget:
    """The profile's budget of faces for Grad-CAM (`Profile.cam`), with some fields replaced (None values ignored)."""
    return replace(get_profile(profile).cam, **{k: v for k, v in overrides.items() if v is not None})


def sample_per_class(labels: np.ndarray, n_images: int, seed: int = 0) -> np.ndarray:
    """Indices of about n_images faces, the same number from every class (all of a class that has fewer), sorted."""
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    classes = np.unique(labels)
    per_class = max(1, n_images // max(1, len(classes)))
    picked = [rng.permutation(np.flatnonzero(labels == c))[:per_class] for c in classes]
    return np.sort(np.concatenate(picked)) if picked else np.empty(0, dtype=np.int64)


def load_trained(run_dir: str | Path, model: str, data_sha256: str | None = None) -> tuple[RunResult, nn.Module] | None:
    """The saved result of a model in a run folder (lowest seed, then newest; same data when data_sha256 is given)
    with its trained network, or None when there is none."""
    results = [
        r
        for r in find_results(run_dir, model)
        if r.weights_path is not None and (data_sha256 is None or r.data_sha256 == data_sha256)
    ]
    if not results:
        return None
    result = min(reversed(results), key=lambda r: r.seed if r.seed is not None else 0)
    return result, load_weights(result.weights_path)


def load_trained_seeds(
    run_dir: str | Path, model: str, data_sha256: str | None = None
) -> list[tuple[RunResult, nn.Module]]:
    """Every seed of a model saved in a run folder with its weights (newest of each seed), lowest seed first."""
    by_seed: dict = {}
    for r in find_results(run_dir, model):  # oldest first: a newer run of the same seed replaces it
        if r.weights_path is not None and (data_sha256 is None or r.data_sha256 == data_sha256):
            by_seed[r.seed] = r
    ordered = sorted(by_seed.values(), key=lambda r: r.seed if r.seed is not None else 0)
    return [(r, load_weights(r.weights_path)) for r in ordered]


# ---------------------------------------------------------------------------------------------- heatmaps
def gradcam(
    model: nn.Module,
    images: np.ndarray,
    target_classes: np.ndarray | None = None,
    method: str = "gradcam",
    batch_size: int = 64,
) -> np.ndarray:
    """Class activation maps of faces (N,48,48) uint8 for target_classes (None: the predicted class): (N,48,48) in [0,1]."""
    if method not in CAM_METHODS:
        raise ValueError(f"unknown CAM method {method!r}; choose one of {sorted(CAM_METHODS)}")
    x = inference.images_to_tensor(images)
    if target_classes is not None:
        target_classes = np.asarray(target_classes)
        if target_classes.shape != (len(x),):
            raise ValueError(f"need one target class per image: {target_classes.shape} for {len(x)} images")
    cams = np.empty((len(x), IMAGE_SIZE, IMAGE_SIZE), dtype=np.float32)
    with _explaining(model), torch.enable_grad():
        with CAM_METHODS[method](model=model, target_layers=[model.target_layer]) as cam:
            cam.batch_size = batch_size  # ScoreCAM's batch of masked copies; the other methods ignore it
            for start in range(0, len(x), batch_size):
                stop = start + batch_size
                targets = None
                if target_classes is not None:
                    targets = [ClassifierOutputTarget(int(c)) for c in target_classes[start:stop]]
                cams[start:stop] = cam(input_tensor=x[start:stop], targets=targets)
    return np.clip(cams, 0.0, 1.0)


def predict_probs(model: nn.Module, images: np.ndarray) -> np.ndarray:
    """Class probabilities (N,7) of faces (N,48,48) uint8 as the heatmaps and the deletion curves see the model:
    computed in float32 (no bf16 autocast), without test-time augmentation, on the model's device."""
    return inference.predict_probs(model, images, bf16=False)


def random_cams(n: int, grid: int = 6, seed: int = 0) -> np.ndarray:
    """Random heatmaps as smooth as a CAM: uniform noise on a grid x grid map, upsampled to (n,48,48), in [0,1]."""
    rng = np.random.default_rng(seed)
    coarse = rng.random((n, grid, grid), dtype=np.float32)
    maps = np.stack([cv2.resize(m, (IMAGE_SIZE, IMAGE_SIZE), interpolation=cv2.INTER_LINEAR) for m in coarse])
    lo = maps.min(axis=(1, 2), keepdims=True)
    hi = maps.max(axis=(1, 2), keepdims=True)
    return ((maps - lo) / np.maximum(hi - lo, 1e-7)).astype(np.float32)


@contextmanager
def _explaining(model: nn.Module) -> Iterator[nn.Module]:
    """Eval mode and no in-place activations while explaining; the model's own settings come back afterwards.

    An in-place ReLU right after the target convolution would overwrite the activations that the CAM
    library keeps; on the CPU they share memory with the layer's output, on a GPU they are a copy, so the
    heatmap would depend on the device.
    """
    was_training = model.training
    inplace = [m for m in model.modules() if getattr(m, "inplace", False) is True]
    model.eval()
    for m in inplace:
        m.inplace = False
    try:
        yield model
    finally:
        for m in inplace:
            m.inplace = True
        model.train(was_training)
        model.zero_grad(set_to_none=True)


def _device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


# ---------------------------------------------------------------------------------------------- regions
def region_shares(cams: np.ndarray, regions: dict[str, np.ndarray]) -> pd.DataFrame:
    """Share of each heatmap's total heat inside each (non-overlapping) region, plus the rest of the frame.

    One row per image, one column per region and "rest"; rows sum to 1 (NaN for an all-zero heatmap).
    """
    cams = _check_cams(cams)
    names = list(regions)
    masks = np.zeros((len(names), *cams.shape[1:]), dtype=bool)
    for i, name in enumerate(names):
        if np.shape(regions[name]) != cams.shape[1:]:
            raise ValueError(f"region {name!r} has shape {np.shape(regions[name])}, heatmaps {cams.shape[1:]}")
        masks[i] = regions[name]
    if (masks.sum(axis=0) > 1).any():
        raise ValueError("regions overlap; give non-overlapping regions (compare a sub-region on its own)")
    if REST in names:
        raise ValueError(f"{REST!r} is reserved for the part of the frame outside every region")
    rest = ~masks.any(axis=0)
    all_masks = np.concatenate([masks, rest[None]]).astype(np.float64)
    heat = np.einsum("nhw,rhw->nr", cams.astype(np.float64), all_masks)
    total = heat.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        shares = np.where(total > 0, heat / total, np.nan)
    return pd.DataFrame(shares, columns=[*names, REST])


def region_area_shares(regions: dict[str, np.ndarray]) -> pd.Series:
    """The share each region would get from a uniform heatmap: its fraction of the frame (the chance level)."""
    shape = next(iter(regions.values())).shape if regions else (IMAGE_SIZE, IMAGE_SIZE)
    return region_shares(np.ones((1, *shape), dtype=np.float32), regions).iloc[0]


def region_shares_by_class(
    cams: np.ndarray, labels: np.ndarray, regions: dict[str, np.ndarray], class_names: tuple[str, ...] = CLASS_NAMES
) -> pd.DataFrame:
    """Mean share of heat per region for each class, then over all images and for a uniform map (area).

    "blank" is the fraction of all-zero heatmaps (no positive evidence anywhere), left out of the shares.
    """
    shares = region_shares(cams, regions)
    labels = np.asarray(labels)
    blank = shares.iloc[:, 0].isna() if len(shares.columns) else pd.Series(False, index=shares.index)
    table = shares.groupby(labels).mean()
    table.index = [class_names[i] for i in table.index]
    table["n"] = shares.groupby(labels).size().to_numpy()
    table["blank"] = blank.groupby(labels).mean().to_numpy()
    table.loc["all"] = [*shares.mean().to_numpy(), len(labels), blank.mean()]
    table.loc["area (uniform heat)"] = [*region_area_shares(regions).to_numpy(), np.nan, np.nan]
    table.index.name = "class"
    return table


def lower_part(mask: np.ndarray, fraction: float = 0.5) -> np.ndarray:
    """The lowest `fraction` of a region's rows (e.g. the lower eyes within the eyes/brows region)."""
    mask = np.asarray(mask, dtype=bool)
    rows = np.flatnonzero(mask.any(axis=1))
    if len(rows) == 0:
        return mask.copy()
    first = rows[-1] + 1 - max(1, round(fraction * len(rows)))
    out = mask.copy()
    out[:first] = False
    return out


def mean_cam_by_class(cams: np.ndarray, labels: np.ndarray, num_classes: int = NUM_CLASSES) -> np.ndarray:
    """Mean heatmap of each class: (num_classes,48,48); NaN for a class without images."""
    cams = _check_cams(cams)
    labels = np.asarray(labels)
    out = np.full((num_classes, *cams.shape[1:]), np.nan, dtype=np.float32)
    for c in range(num_classes):
        if (labels == c).any():
            out[c] = cams[labels == c].mean(axis=0)
    return out


def peak_in_region(cams: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """Whether each heatmap's hottest pixel lies inside its mask: masks (N,48,48) per image, or one (48,48) for all."""
    cams = _check_cams(cams)
    masks = np.broadcast_to(np.asarray(masks, dtype=bool), cams.shape)
    flat_peak = cams.reshape(len(cams), -1).argmax(axis=1)
    return masks.reshape(len(cams), -1)[np.arange(len(cams)), flat_peak]


def peak_table(
    cams: np.ndarray, masks: np.ndarray, labels: np.ndarray, class_names: tuple[str, ...] = CLASS_NAMES
) -> pd.DataFrame:
    """How often the heatmap's peak falls inside each face's deciding region, per class and overall, against chance.

    Chance is the mask's share of the frame: where a peak placed at random would land inside. A blank (all-zero)
    heatmap points nowhere and counts as a miss; "blank" gives their fraction.
    """
    labels = np.asarray(labels)
    masks = np.asarray(masks, dtype=bool)
    frame = pd.DataFrame(
        {
            "label": labels,
            "hit": peak_in_region(cams, masks),
            "chance": masks.reshape(len(masks), -1).mean(axis=1),
            "blank": np.asarray(cams).reshape(len(labels), -1).max(axis=1) <= 0,
        }
    )
    table = frame.groupby("label").agg(
        n=("hit", "size"), peak_in_region=("hit", "mean"), chance=("chance", "mean"), blank=("blank", "mean")
    )
    table.index = [class_names[i] for i in table.index]
    table.loc["all"] = [len(frame), frame["hit"].mean(), frame["chance"].mean(), frame["blank"].mean()]
    table["n"] = table["n"].astype(int)
    table["lift"] = table["peak_in_region"] / table["chance"]
    table.index.name = "class"
    return table


def cheek_region(shape: tuple[int, int] = (IMAGE_SIZE, IMAGE_SIZE)) -> np.ndarray:
    """The cheeks the paper names: two boxes beside the nose, below the eyes and above the mouth (CHEEK_BOXES)."""
    mask = np.zeros(shape, dtype=bool)
    for r0, r1, c0, c1 in CHEEK_BOXES:
        mask[r0 : r1 + 1, c0 : c1 + 1] = True
    return mask


def centre_bias_map(cams: np.ndarray) -> np.ndarray:
    """A heatmap with the models' centre bias and no face in it: the 2-D Gaussian with the centroid and covariance
    of the mean (each map normalised to unit heat) of `cams`. A region's share of it is what the bias alone gives."""
    cams = _check_cams(cams)
    totals = cams.reshape(len(cams), -1).sum(axis=1)
    mean = (cams[totals > 0] / totals[totals > 0, None, None]).mean(axis=0)
    rows, cols = np.mgrid[: mean.shape[0], : mean.shape[1]]
    points = np.stack([rows.ravel(), cols.ravel()], axis=1).astype(np.float64)
    weights = mean.ravel() / mean.sum()
    centre = weights @ points
    spread = ((points - centre) * weights[:, None]).T @ (points - centre) + 1e-6 * np.eye(2)
    offsets = points - centre
    density = np.exp(-0.5 * np.einsum("ni,ij,nj->n", offsets, np.linalg.inv(spread), offsets))
    return (density / density.sum()).reshape(mean.shape).astype(np.float32)


def paper_claims(
    cams: np.ndarray,
    labels: np.ndarray,
    regions: dict[str, np.ndarray],
    eyes: str = "eyes",
    mouth: str = "mouth",
    class_names: tuple[str, ...] = CLASS_NAMES,
) -> pd.DataFrame:
    """The paper's Grad-CAM claims measured against a reference with the same centre bias, with intervals.

    Each region's share of heat (mean over faces, bootstrap 95% interval) is compared with the share the same
    region gets from `centre_bias_map` (a blob with the models' own centre bias), not with its share of the frame:
    every CNN's heat gathers in the middle, so uniform heat is too easy to beat. "Sad on the lower eyes" is also
    compared with the other classes' heat there (interval of the difference). A claim holds only when its
    interval lies above the reference; `area` (the uniform-heat share) is shown for comparison. The weakest class is
    chosen on the even-indexed faces and measured on the odd-indexed ones, as in `independent_claims`.
    """
    labels = np.asarray(labels)
    regions = dict(regions) | ({"cheeks": cheek_region(cams.shape[1:])} if "cheeks" not in regions else {})
    shares = region_shares(cams, regions)
    bias = region_shares(centre_bias_map(cams)[None], regions).iloc[0]
    area = region_area_shares(regions)
    eyes_mouth = (shares[eyes] + shares[mouth]).to_numpy()
    faces = np.arange(len(labels))
    by_class = pd.Series(eyes_mouth[faces % 2 == 0]).groupby(labels[faces % 2 == 0]).mean()
    weakest = int(by_class.idxmin()) if by_class.notna().any() else int(labels[0])
    lower = {"lower eyes": lower_part(regions[eyes], LOWER_EYES_FRACTION)}
    lower_share = region_shares(cams, lower)["lower eyes"].to_numpy()
    lower_bias = region_shares(centre_bias_map(cams)[None], lower)["lower eyes"].iloc[0]
    lower_area = region_area_shares(lower)["lower eyes"]
    sad = labels == class_names.index("Sad")
    centre = "a centre-biased blob (same centroid and spread as the mean heatmap)"
    rows = []
    for claim, values, reference, against, area_share in (
        ("heat on eyes + mouth, all faces", eyes_mouth, bias[eyes] + bias[mouth], centre, area[eyes] + area[mouth]),
        (
            f"heat on eyes + mouth, weakest class ({class_names[weakest]}, chosen on other faces)",
            eyes_mouth[(labels == weakest) & (faces % 2 == 1)],
            bias[eyes] + bias[mouth],
            centre,
            area[eyes] + area[mouth],
        ),
        ("heat on the cheeks, all faces", shares["cheeks"].to_numpy(), bias["cheeks"], centre, area["cheeks"]),
        ("Sad: heat on the lower eyes", lower_share[sad], lower_bias, centre, lower_area),
    ):
        measured, low, high = mean_ci(values)
        rows.append(
            {
                "claim": claim,
                "measured": measured,
                "ci_low": low,
                "ci_high": high,
                "reference": reference,
                "against": against,
                "area": area_share,
            }
        )
    measured, low, high = mean_ci(lower_share[sad])
    others = float(np.nanmean(lower_share[~sad])) if (~sad).any() else np.nan
    diff_low, diff_high = difference_ci(lower_share[sad], lower_share[~sad])
    rows.append(
        {
            "claim": "Sad: heat on the lower eyes",
            "measured": measured,
            "ci_low": others + diff_low,
            "ci_high": others + diff_high,
            "reference": others,
            "against": "the other classes' heat there (interval of the difference, shifted)",
            "area": lower_area,
        }
    )
    table = pd.DataFrame(rows)
    table["ratio"] = table["measured"] / table["reference"]
    known = table[["ci_low", "reference"]].notna().all(axis=1)
    table["holds"] = pd.Series(table["ci_low"] > table["reference"], dtype="boolean").where(known)
    return table


UNIFORM = "uniform heat (each region's share of the frame)"
CENTRE_BIAS = "a centre-biased blob fitted to the maps under test (for comparison only)"
# The claims independent_claims measures: (name, the per-face value it reads, more or less heat than the reference).
OUTSIDE = "heat outside eyes, cheeks, nose and mouth (background, hair, clothing), all faces"


def independent_claims(
    cams: np.ndarray,
    labels: np.ndarray,
    regions: dict[str, np.ndarray],
    references: dict[str, np.ndarray],
    eyes: str = "eyes",
    mouth: str = "mouth",
    nose: str = "nose",
    class_names: tuple[str, ...] = CLASS_NAMES,
) -> pd.DataFrame:
    """The paper's Grad-CAM claims, each as the ratio of a mean share of heat to the same share under a reference
    that is not derived from the maps under test: uniform heat (each region's share of the frame) and the maps of
    each `references` entry (name -> (N,48,48) maps of the same faces and classes, e.g. the same network with random
    weights). The centre-biased blob fitted to `cams` is shown too, marked as not independent.

    The ratio's 95% interval is a paired percentile bootstrap over the faces (both maps resampled together). A claim
    of more heat holds when the interval lies above 1; the claim that the background, hair and clothing are ignored
    holds when the heat outside the face's regions is below the reference (interval below 1). The weakest class is
    chosen on the even-indexed faces and measured on the odd-indexed ones, so that choosing it does not flatter the
    test. "heat on the nose" is not a claim of the paper; it is measured because the heat goes there.
    """
    from fer_helpers.scoring.statistics import resample_index

    labels = np.asarray(labels)
    regions = dict(regions) | ({"cheeks": cheek_region(cams.shape[1:])} if "cheeks" not in regions else {})
    lower = {"lower eyes": lower_part(regions[eyes], LOWER_EYES_FRACTION)}
    area = region_area_shares(regions)

    def values(maps: np.ndarray) -> dict[str, np.ndarray]:
        shares = region_shares(maps, regions)
        return {
            "eyes + mouth": (shares[eyes] + shares[mouth]).to_numpy(),
            "cheeks": shares["cheeks"].to_numpy(),
            "lower eyes": region_shares(maps, lower)["lower eyes"].to_numpy(),
            "outside": shares[REST].to_numpy(),
            "nose": shares[nose].to_numpy(),
        }

    uniform = {
        "eyes + mouth": area[eyes] + area[mouth],
        "cheeks": area["cheeks"],
        "lower eyes": region_area_shares(lower)["lower eyes"],
        "outside": area[REST],
        "nose": area[nose],
    }
    measured = values(cams)
    refs = {name: (values(maps), True) for name, maps in references.items()}
    refs[CENTRE_BIAS] = (values(np.repeat(centre_bias_map(cams)[None], len(cams), axis=0)), False)
    faces = np.arange(len(labels))
    chooser = pd.Series(measured["eyes + mouth"][faces % 2 == 0]).groupby(labels[faces % 2 == 0]).mean()
    weakest = int(chooser.idxmin()) if chooser.notna().any() else int(labels[0])
    sad = class_names.index("Sad")
    claims = (
        ("heat on eyes + mouth, all faces", "eyes + mouth", faces, 1),
        (
            f"heat on eyes + mouth, weakest class ({class_names[weakest]}, chosen on other faces)",
            "eyes + mouth",
            faces[(labels == weakest) & (faces % 2 == 1)],
            1,
        ),
        ("heat on the cheeks, all faces", "cheeks", faces, 1),
        ("Sad: heat on the lower eyes", "lower eyes", faces[labels == sad], 1),
        (OUTSIDE, "outside", faces, -1),
        ("heat on the nose, all faces (not a claim of the paper)", "nose", faces, 1),
    )
    rows = []
    for claim, key, mine, direction in claims:
        for reference, (ref_values, independent) in [(UNIFORM, (uniform, True)), *refs.items()]:
            a = measured[key][mine]
            b = np.full(len(mine), ref_values[key]) if np.isscalar(ref_values[key]) else ref_values[key][mine]
            kept = ~(np.isnan(a) | np.isnan(b))
            a, b = a[kept], b[kept]
            row = {"claim": claim, "reference": reference, "independent": independent, "n": int(len(a))}
            if len(a) == 0 or b.mean() <= 0:
                rows.append(row | {"measured": np.nan, "reference_share": np.nan, "ratio": np.nan,
                                   "ratio_ci_low": np.nan, "ratio_ci_high": np.nan, "holds": pd.NA})  # fmt: skip
                continue
            idx = resample_index(len(a))
            ratios = a[idx].mean(axis=1) / np.maximum(b[idx].mean(axis=1), 1e-12)
            low, high = np.percentile(ratios, [2.5, 97.5])
            holds = bool(low > 1) if direction > 0 else bool(high < 1)
            rows.append(
                row
                | {
                    "measured": float(a.mean()),
                    "reference_share": float(b.mean()),
                    "ratio": float(a.mean() / b.mean()),
                    "ratio_ci_low": float(low),
                    "ratio_ci_high": float(high),
                    "holds": holds,
                }
            )
    table = pd.DataFrame(rows)
    table["holds"] = table["holds"].astype("boolean")
    return table


def pick_examples(labels: np.ndarray, probs: np.ndarray, class_names: tuple[str, ...] = CLASS_NAMES) -> pd.DataFrame:
    """The most confident correct and the most confident wrong prediction of each true class (where there is one)."""
    labels = np.asarray(labels)
    preds = probs.argmax(axis=1)
    confidence = probs.max(axis=1)
    rows = []
    for c, name in enumerate(class_names):
        for outcome, hit in (("correct", True), ("wrong", False)):
            candidates = np.flatnonzero((labels == c) & ((preds == labels) == hit))
            if len(candidates):
                i = candidates[confidence[candidates].argmax()]
                rows.append(
                    {
                        "class": name,
                        "outcome": outcome,
                        "index": int(i),
                        "label": int(c),
                        "pred": int(preds[i]),
                        "predicted": class_names[preds[i]],
                        "confidence": float(confidence[i]),
                    }
                )
    return pd.DataFrame(rows, columns=["class", "outcome", "index", "label", "pred", "predicted", "confidence"])


def _check_cams(cams: np.ndarray) -> np.ndarray:
    cams = np.asarray(cams)
    if cams.ndim != 3:
        raise ValueError(f"expected heatmaps of shape (N, H, W), got {cams.shape}")
    return cams


# ---------------------------------------------------------------------------------------------- faithfulness
@dataclass
class RoadScores:
    """ROAD (Rong et al. 2022): change of the target-class probability when pixels are imputed, per image and level."""

    removed: np.ndarray  # (P,) fraction of pixels imputed at each level
    morf: np.ndarray  # (N,P) most relevant first: a faithful map makes this drop fast (very negative)
    lerf: np.ndarray  # (N,P) least relevant first: a faithful map keeps this near 0

    @property
    def combined(self) -> np.ndarray:
        """Per image (LeRF - MoRF) / 2 averaged over levels, as pytorch-grad-cam's ROADCombined: higher is more faithful."""
        return (self.lerf.mean(axis=1) - self.morf.mean(axis=1)) / 2

    def summary(self) -> dict[str, float]:
        return {
            "road_morf": float(self.morf.mean()),
            "road_lerf": float(self.lerf.mean()),
            "road_combined": float(self.combined.mean()),
        }


def road_scores(
    model: nn.Module,
    images: np.ndarray,
    cams: np.ndarray,
    targets: np.ndarray,
    percentiles: tuple[int, ...] = ROAD_PERCENTILES,
    batch_size: int = 64,
    seed: int = 0,
) -> RoadScores:
    """ROAD scores of heatmaps with pytorch-grad-cam's ROADMostRelevantFirst / ROADLeastRelevantFirst."""
    x = inference.images_to_tensor(images)
    cams = _check_cams(cams).astype(np.float32)
    targets = np.asarray(targets)
    device = _device(model)
    morf = np.empty((len(x), len(percentiles)), dtype=np.float32)
    lerf = np.empty_like(morf)
    # The imputer adds torch noise; a private generator state keeps the scores reproducible and the caller's RNG intact.
    with _explaining(model), torch.random.fork_rng(devices=[]), warnings.catch_warnings():
        torch.manual_seed(seed)
        # the imputer hands torch tensors to numpy functions, which NumPy 2 warns about once per call
        warnings.filterwarnings("ignore", message="__array_wrap__", category=DeprecationWarning)
        for start in range(0, len(x), batch_size):
            sl = slice(start, start + batch_size)
            batch = x[sl].to(device)
            target_fns = [ClassifierOutputSoftmaxTarget(int(t)) for t in targets[sl]]
            for out, metric in ((lerf, ROADLeastRelevantFirst), (morf, ROADMostRelevantFirst)):
                for j, p in enumerate(percentiles):
                    out[sl, j] = metric(percentile=p)(batch, cams[sl], target_fns, model)
    # A level p imputes the pixels above (MoRF) or below (LeRF) the map's p-th percentile.
    removed = 1.0 - np.asarray(percentiles, dtype=np.float64) / 100.0
    return RoadScores(removed=removed, morf=morf, lerf=lerf)


@dataclass
class PerturbationCurves:
    """Deletion and insertion curves (Petsiuk et al. 2018): target-class probability per image and step."""

    fractions: np.ndarray  # (S+1,) fraction of pixels deleted (deletion) or inserted (insertion)
    deletion: np.ndarray  # (N,S+1) probability as the hottest pixels are blurred away: faithful maps fall fast
    insertion: (
        np.ndarray
    )  # (N,S+1) probability as the hottest pixels are restored on a blurred face: faithful maps rise fast

    @property
    def deletion_auc(self) -> np.ndarray:
        """Area under each deletion curve (lower is more faithful)."""
        return np.trapezoid(self.deletion, self.fractions, axis=1)

    @property
    def insertion_auc(self) -> np.ndarray:
        """Area under each insertion curve (higher is more faithful)."""
        return np.trapezoid(self.insertion, self.fractions, axis=1)

    def summary(self) -> dict[str, float]:
        return {"deletion_auc": float(self.deletion_auc.mean()), "insertion_auc": float(self.insertion_auc.mean())}


def deletion_insertion(
    model: nn.Module,
    images: np.ndarray,
    cams: np.ndarray,
    targets: np.ndarray,
    steps: int = 16,
    blur_sigma: float = 5.0,
    batch_size: int = 256,
) -> PerturbationCurves:
    """Deletion and insertion curves of heatmaps, between each face and a blurred copy of it.

    pytorch-grad-cam has ROAD (imputation at a few levels) but no deletion/insertion curves; these are a
    few vectorised lines: every step of every image is one image of a batch.
    """
    x = inference.images_to_tensor(images)[:, 0].numpy()
    cams = _check_cams(cams)
    targets = np.asarray(targets)
    n, h, w = x.shape
    blurred = gaussian_filter(x, sigma=(0, blur_sigma, blur_sigma), mode="nearest")
    # rank 0 = hottest pixel; ties keep raster order so that equal maps give equal curves
    order = np.argsort(-cams.reshape(n, -1), axis=1, kind="stable")
    ranks = np.empty_like(order)
    np.put_along_axis(ranks, order, np.arange(h * w)[None].repeat(n, axis=0), axis=1)
    fractions = np.linspace(0.0, 1.0, steps + 1)
    counts = np.round(fractions * h * w).astype(np.int64)
    per_chunk = max(1, batch_size // (steps + 1))
    deletion = np.empty((n, steps + 1), dtype=np.float32)
    insertion = np.empty_like(deletion)
    device = _device(model)
    with _explaining(model), torch.no_grad():
        for start in range(0, n, per_chunk):
            sl = slice(start, start + per_chunk)
            chosen = (ranks[sl, None, :] < counts[None, :, None]).reshape(-1, steps + 1, h, w)
            xs, bs = x[sl, None], blurred[sl, None]
            for out, batch in ((deletion, np.where(chosen, bs, xs)), (insertion, np.where(chosen, xs, bs))):
                inputs = torch.from_numpy(batch.reshape(-1, 1, h, w).astype(np.float32)).to(device)
                probs = torch.softmax(model(inputs), dim=1).cpu().numpy().reshape(-1, steps + 1, NUM_CLASSES)
                out[sl] = np.take_along_axis(probs, targets[sl, None, None], axis=2)[..., 0]
    return PerturbationCurves(fractions=fractions, deletion=deletion, insertion=insertion)


def faithfulness_table(
    model: nn.Module,
    images: np.ndarray,
    targets: np.ndarray,
    maps: dict[str, np.ndarray],
    steps: int = 16,
    n_road: int | None = None,
    percentiles: tuple[int, ...] = ROAD_PERCENTILES,
) -> tuple[pd.DataFrame, dict[str, PerturbationCurves]]:
    """Deletion/insertion AUCs and ROAD scores (on the first n_road faces; None: all, 0: none) of several sets of
    heatmaps, e.g. Grad-CAM against random maps."""
    n_road = len(images) if n_road is None else min(n_road, len(images))
    rows, curves = {}, {}
    for name, cams in maps.items():
        curves[name] = deletion_insertion(model, images, cams, targets, steps=steps)
        rows[name] = curves[name].summary()
        if n_road > 0:
            road = road_scores(model, images[:n_road], cams[:n_road], targets[:n_road], percentiles=percentiles)
            rows[name] |= road.summary()
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.index.name = "heatmap"
    return table, curves


# ---------------------------------------------------------------------------------------------- sanity check
def parameter_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The layers that own weights and can re-initialise them, in the model's order (input first)."""
    return [
        (name, m)
        for name, m in model.named_modules()
        if hasattr(m, "reset_parameters") and any(True for _ in m.parameters(recurse=False))
    ]


def randomized_copy(model: nn.Module, n_layers: int | None = None, seed: int = 0) -> nn.Module:
    """A copy of the model whose top n_layers weight layers (None: all) are re-initialised; the model is untouched."""
    clone = copy.deepcopy(model)
    layers = parameter_layers(clone)
    n_layers = len(layers) if n_layers is None else n_layers
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        # top layer first: a cascade re-draws the same top layers at every depth
        for _, layer in reversed(layers[len(layers) - n_layers :]):
            layer.reset_parameters()
    return clone


def cam_similarity(cams_a: np.ndarray, cams_b: np.ndarray) -> pd.DataFrame:
    """Per-image Spearman rank correlation and SSIM between two sets of heatmaps (N,48,48) in [0,1].

    A flat map ranks no pixel above another: its rank correlation is taken as 0 with any other map, 1 with a flat one.
    """
    a, b = _check_cams(cams_a), _check_cams(cams_b)
    if a.shape != b.shape:
        raise ValueError(f"heatmap shapes differ: {a.shape} vs {b.shape}")
    ra = rankdata(a.reshape(len(a), -1), axis=1)
    rb = rankdata(b.reshape(len(b), -1), axis=1)
    ra -= ra.mean(axis=1, keepdims=True)
    rb -= rb.mean(axis=1, keepdims=True)
    norm = np.sqrt((ra**2).sum(axis=1) * (rb**2).sum(axis=1))
    flat_a, flat_b = (ra == 0).all(axis=1), (rb == 0).all(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        spearman = np.where(norm > 0, (ra * rb).sum(axis=1) / norm, np.where(flat_a & flat_b, 1.0, 0.0))
    ssim = np.array(
        [structural_similarity(x, y, data_range=1.0) for x, y in zip(a.astype(np.float64), b.astype(np.float64))]
    )
    return pd.DataFrame({"spearman": spearman, "ssim": ssim})


def randomization_check(
    model: nn.Module,
    images: np.ndarray,
    target_classes: np.ndarray | None = None,
    method: str = "gradcam",
    cascade: bool = True,
    seed: int = 0,
) -> pd.DataFrame:
    """Model-randomisation sanity check (Adebayo et al. 2018): how similar heatmaps stay as weights are re-initialised.

    Row 0 compares the model with itself; then the top 1, 2, ... weight layers are re-initialised (cascade)
    or all at once. Targets stay those of the trained model (its predictions when None). A heatmap that
    explains the model must change when the model is destroyed: low Spearman and SSIM.
    """
    if target_classes is None:
        target_classes = predict_probs(model, images).argmax(axis=1)
    original = gradcam(model, images, target_classes, method=method)
    layers = [f"{name} ({type(m).__name__})" for name, m in parameter_layers(model)]
    steps = range(1, len(layers) + 1) if cascade else [len(layers)]
    rows = []
    for k in [0, *steps]:
        cams = original if k == 0 else gradcam(randomized_copy(model, k, seed), images, target_classes, method=method)
        sim = cam_similarity(original, cams)
        rows.append(
            {
                "layers_randomized": k,
                "down_to": "none (trained model)" if k == 0 else layers[len(layers) - k],
                "spearman": sim["spearman"].mean(),
                "spearman_sd": sim["spearman"].std(ddof=0),
                "ssim": sim["ssim"].mean(),
                "ssim_sd": sim["ssim"].std(ddof=0),
            }
        )
    return pd.DataFrame(rows)
