"""Figures of the study: each function takes data or results and returns a matplotlib Figure."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from fer_helpers.data.features import HOG_DEFAULTS, hog_weight_cells
from fer_helpers.data.fer2013 import CLASS_NAMES, NUM_CLASSES
from fer_helpers.scoring.metrics import confident_mistakes, confusion, confusion_shares


def plot_class_counts(counts: pd.DataFrame, reference: pd.DataFrame | None = None) -> plt.Figure:
    """Share of each class in each split (bars, labelled with counts); a reference's shares as black ticks."""
    splits = list(counts.columns)
    fig, axes = plt.subplots(1, len(splits), figsize=(4.2 * len(splits), 3.6), sharey=True, squeeze=False)
    for ax, split in zip(axes[0], splits):
        shares = 100 * counts[split] / counts[split].sum()
        bars = ax.bar(counts.index, shares, color=sns.color_palette("deep", len(counts)))
        ax.bar_label(bars, labels=[f"{n:,}" for n in counts[split]], fontsize=7)
        if reference is not None:
            ax.scatter(
                reference.index,
                100 * reference[split] / reference[split].sum(),
                marker="_",
                s=400,
                color="black",
                label="FER-2013",
                zorder=3,
            )
            ax.legend(loc="upper left", fontsize=8)
        ax.set_title(f"{split} ({counts[split].sum():,} faces)")
        ax.tick_params(axis="x", rotation=45)
    axes[0, 0].set_ylabel("share of the split (%)")
    fig.tight_layout()
    return fig


def plot_example_faces(images: np.ndarray, labels: np.ndarray, per_class: int = 8, seed: int = 0) -> plt.Figure:
    """A grid of randomly chosen faces: one row per class, in FER-2013's class order."""
    rng = np.random.default_rng(seed)
    fig, axes = plt.subplots(NUM_CLASSES, per_class, figsize=(per_class * 0.9, NUM_CLASSES * 0.95))
    for c, name in enumerate(CLASS_NAMES):
        members = np.flatnonzero(labels == c)
        chosen = rng.choice(members, size=min(per_class, len(members)), replace=False)
        for j, ax in enumerate(axes[c]):
            if j < len(chosen):
                ax.imshow(images[chosen[j]], cmap="gray", vmin=0, vmax=255)
            ax.set_xticks([])
            ax.set_yticks([])
            ax.spines[:].set_visible(False)
        axes[c, 0].set_ylabel(name, rotation=0, ha="right", va="center", fontsize=9)
    fig.subplots_adjust(wspace=0.05, hspace=0.05)
    return fig


def plot_mean_faces(images: np.ndarray, labels: np.ndarray) -> plt.Figure:
    """The mean face of each class, and where it departs from the mean of all faces (brightness offset removed)."""
    overall = images.mean(axis=0)
    means = np.stack([images[labels == c].mean(axis=0) for c in range(NUM_CLASSES)])
    diffs = means - overall
    # Classes differ in overall brightness too; removing each class's offset leaves where the face itself changes.
    diffs -= diffs.mean(axis=(1, 2), keepdims=True)
    limit = np.abs(diffs).max()
    fig, axes = plt.subplots(2, NUM_CLASSES, figsize=(1.5 * NUM_CLASSES + 1, 3.4), layout="constrained")
    for c, name in enumerate(CLASS_NAMES):
        axes[0, c].imshow(means[c], cmap="gray", vmin=0, vmax=255)
        axes[0, c].set_title(name, fontsize=9)
        shown = axes[1, c].imshow(diffs[c], cmap="RdBu_r", vmin=-limit, vmax=limit)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    axes[0, 0].set_ylabel("mean")
    axes[1, 0].set_ylabel("mean - all\n(offset removed)")
    fig.colorbar(shown, ax=axes[1, -1], label="grey levels")
    return fig


def plot_pixel_histograms(images: np.ndarray, labels: np.ndarray) -> plt.Figure:
    """Distribution of pixel intensities per class (share of pixels per grey level), and of each face's brightness."""
    fig, (ax_pixels, ax_faces) = plt.subplots(1, 2, figsize=(10, 3.6))
    colors = sns.color_palette("deep", NUM_CLASSES)
    brightness = images.mean(axis=(1, 2))
    for c, name in enumerate(CLASS_NAMES):
        members = labels == c
        # bincount counts the uint8 levels exactly, without a float copy of every pixel.
        levels = np.bincount(images[members].ravel(), minlength=256)
        ax_pixels.stairs(levels / levels.sum(), np.arange(257), color=colors[c], label=name)
        ax_faces.hist(
            brightness[members], bins=np.arange(0, 257, 8), density=True, histtype="step", color=colors[c], label=name
        )
    ax_pixels.set(title="pixel intensities", xlabel="grey level", ylabel="share of pixels")
    ax_faces.set(title="mean brightness per face", xlabel="grey level", ylabel="density")
    ax_faces.legend(fontsize=8, ncols=2)
    fig.tight_layout()
    return fig


def plot_duplicate_groups(
    images: np.ndarray, duplicates: pd.DataFrame, max_groups: int = 6, max_copies: int = 3
) -> plt.Figure:
    """Groups of identical faces (rows of data.find_duplicates): one column per group, each copy's split and label."""
    groups = duplicates["group"].unique()[:max_groups]
    fig, axes = plt.subplots(
        max_copies, max(1, len(groups)), figsize=(1.7 * max(1, len(groups)), 1.9 * max_copies), squeeze=False
    )
    for j, group in enumerate(groups):
        members = duplicates[duplicates["group"] == group].head(max_copies)
        for i, (index, usage, class_name) in enumerate(members[["index", "usage", "class_name"]].to_numpy()):
            axes[i, j].imshow(images[index], cmap="gray", vmin=0, vmax=255)
            axes[i, j].set_title(f"{usage}\n{class_name}", fontsize=8)
    for ax in axes.flat:
        ax.axis("off")
    fig.tight_layout()
    return fig


def plot_confusion_pair(counts: np.ndarray, title: str = "", class_names=CLASS_NAMES) -> plt.Figure:
    """A confusion matrix twice: image counts, and shares of each true class (rows sum to 1)."""
    counts = np.asarray(counts)
    shares = confusion_shares(counts, "true")
    fig, (ax_counts, ax_shares) = plt.subplots(1, 2, figsize=(12, 4.8))
    _confusion_heatmap(ax_counts, counts, None, class_names)
    _confusion_heatmap(ax_shares, shares, "true", class_names, vmax=None)
    ax_counts.set_title("counts")
    ax_shares.set_title("row-normalised (recall on the diagonal)")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_reliability_diagram(tables: dict[str, pd.DataFrame]) -> plt.Figure:
    """Accuracy against confidence per bin for each model (from metrics.reliability_table); the diagonal is perfect calibration."""
    fig, (ax_rel, ax_hist) = plt.subplots(1, 2, figsize=(11, 4.2))
    ax_rel.plot([0, 1], [0, 1], color="gray", linestyle="--", linewidth=1, label="perfectly calibrated")
    for (name, table), color in zip(tables.items(), sns.color_palette("deep", len(tables))):
        filled = table[table["count"] > 0]
        ax_rel.plot(filled["confidence"], filled["accuracy"], marker="o", color=color, label=name)
        centres = (table["bin_lower"] + table["bin_upper"]) / 2
        ax_hist.plot(centres, table["count"] / table["count"].sum(), marker=".", color=color, label=name)
    ax_rel.set(
        xlabel="confidence (top probability)", ylabel="accuracy", xlim=(0, 1), ylim=(0, 1), title="reliability diagram"
    )
    ax_rel.legend(fontsize=8)
    ax_hist.set(
        xlabel="confidence (top probability)",
        ylabel="share of images",
        xlim=(0, 1),
        title="how confident the models are",
    )
    fig.tight_layout()
    return fig


def plot_pvalue_matrix(p_values: pd.DataFrame, alpha: float = 0.05) -> plt.Figure:
    """Pairwise test p-values between models as a heatmap (log scale); cells below alpha are marked with *."""
    values = p_values.astype(float)
    shown = np.log10(values.clip(lower=1e-300))
    annot = values.map(lambda p: "" if np.isnan(p) else f"{p:.1g}{'*' if p < alpha else ''}")
    size = 1.2 + 1.1 * len(values)
    fig, ax = plt.subplots(figsize=(size + 1.5, size))
    sns.heatmap(
        shown,
        annot=annot,
        fmt="",
        cmap="viridis_r",
        vmin=np.log10(1e-6),
        vmax=0,
        square=True,
        ax=ax,
        cbar_kws={"label": "log10 p-value"},
        mask=values.isna(),
    )
    ax.set_title(f"McNemar tests between models (* p < {alpha})")
    ax.tick_params(axis="x", rotation=45)
    ax.tick_params(axis="y", rotation=0)
    fig.tight_layout()
    return fig


def plot_history(
    history: pd.DataFrame | dict[str, pd.DataFrame], title: str = "", patience: int | None = None
) -> plt.Figure:
    """Learning curves per epoch: loss and accuracy on Training (solid) and PublicTest (dashed), best epoch marked.

    `history` is a RunResult's history, or a dict of them (e.g. one per seed) drawn in one colour each. With the
    early-stopping `patience`, a run that ended that many epochs after its best one has those epochs shaded: the
    wait that stopped it.
    """
    runs = history if isinstance(history, dict) else {"": history}
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(11, 3.8))
    for (name, h), color in zip(runs.items(), sns.color_palette("deep", len(runs))):
        prefix = f"{name} " if name else ""
        for ax, metric in ((ax_loss, "loss"), (ax_acc, "acc")):
            ax.plot(h["epoch"], h[f"train_{metric}"], color=color, label=f"{prefix}Training")
            ax.plot(h["epoch"], h[f"val_{metric}"], color=color, linestyle="--", label=f"{prefix}PublicTest")
        best = h.loc[h["val_acc"].idxmax()]
        ax_acc.scatter(
            [best["epoch"]],
            [best["val_acc"]],
            color=color,
            marker="*",
            s=120,
            zorder=3,
            label=f"{prefix}best epoch {int(best['epoch'])}",
        )
        if patience is not None and h["epoch"].iloc[-1] - best["epoch"] >= patience:
            ax_acc.axvspan(
                best["epoch"],
                h["epoch"].iloc[-1],
                color=color,
                alpha=0.12,
                label=f"{prefix}{patience} epochs without a better one: stop",
            )
    ax_loss.set(xlabel="epoch", ylabel="cross-entropy", title="loss")
    ax_acc.set(xlabel="epoch", ylabel="accuracy", title="accuracy")
    for ax in (ax_loss, ax_acc):
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.grid(alpha=0.3)
    ax_acc.legend(fontsize=7, loc="lower right")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_recipe_steps(table: pd.DataFrame, title: str = "PublicTest accuracy after each step") -> plt.Figure:
    """The recipe-steps table as bars: accuracy after each cumulative change, with the gain of each step written in."""
    fig, ax = plt.subplots(figsize=(8, 0.45 * len(table) + 1.2))
    y = np.arange(len(table))[::-1]
    colors = ["tab:gray"] + ["tab:green" if g >= 0 else "tab:red" for g in table["gain (points)"].iloc[1:]]
    ax.barh(y, 100 * table["accuracy"], color=colors)
    for yi, acc, gain in zip(y, table["accuracy"], table["gain (points)"]):
        ax.text(
            100 * acc + 0.3,
            yi,
            f"{100 * acc:.1f}%" + (f" ({gain:+.1f})" if yi != y[0] else ""),
            va="center",
            fontsize=8,
        )
    ax.set_yticks(y, table.index)
    ax.set_xlim(0, min(100, 100 * table["accuracy"].max() + 12))
    ax.set(xlabel="PublicTest accuracy (%)", title=title)
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------------------------------------- Grad-CAM figures
CAM_OVERLAY_ALPHA = 0.45  # heatmap opacity over the face


def _plot_cam_overlay(
    ax: plt.Axes, image: np.ndarray, cam: np.ndarray | None, alpha: float = CAM_OVERLAY_ALPHA
) -> None:
    ax.imshow(image, cmap="gray", vmin=0, vmax=255 if image.dtype == np.uint8 else None)
    if cam is not None:
        ax.imshow(cam, cmap="jet", alpha=alpha, vmin=0, vmax=1)
    ax.set_xticks([])
    ax.set_yticks([])


def plot_cam_examples(
    images: np.ndarray, cams: np.ndarray, examples: pd.DataFrame, class_names: tuple[str, ...] = CLASS_NAMES
) -> plt.Figure:
    """Figure 2: the heatmap of a correct (top) and a wrong (bottom) prediction of every class, over the face."""
    fig, axes = plt.subplots(2, len(class_names), figsize=(1.7 * len(class_names), 4.2), squeeze=False)
    for row, outcome in enumerate(("correct", "wrong")):
        for col, name in enumerate(class_names):
            ax = axes[row, col]
            hit = examples[(examples["class"] == name) & (examples["outcome"] == outcome)]
            if hit.empty:
                ax.axis("off")
                ax.text(0.5, 0.5, f"no {outcome}\n{name}", ha="center", va="center", fontsize=8, transform=ax.transAxes)
                continue
            ex = hit.iloc[0]
            _plot_cam_overlay(ax, images[ex["index"]], cams[ex["index"]])
            ax.set_title(
                f"{name}\n→ {ex['predicted']} ({ex['confidence']:.2f})",
                fontsize=8,
                color="darkgreen" if outcome == "correct" else "firebrick",
            )
        axes[row, 0].set_ylabel(outcome, fontsize=10)
    fig.suptitle("Grad-CAM: true class → predicted (confidence)")
    fig.tight_layout()
    return fig


def plot_cam_class_means(
    mean_cams: np.ndarray, mean_faces: np.ndarray, class_names: tuple[str, ...] = CLASS_NAMES
) -> plt.Figure:
    """The mean heatmap of each class over that class's mean face."""
    fig, axes = plt.subplots(1, len(class_names), figsize=(1.7 * len(class_names), 2.2), squeeze=False)
    for c, (ax, name) in enumerate(zip(axes[0], class_names)):
        cam = None if np.isnan(mean_cams[c]).all() else mean_cams[c] / max(float(np.nanmax(mean_cams[c])), 1e-7)
        _plot_cam_overlay(ax, mean_faces[c], cam)
        ax.set_title(name, fontsize=9)
    fig.suptitle("Mean Grad-CAM per class (each scaled to its maximum)")
    fig.tight_layout()
    return fig


def plot_cam_regions(regions: dict[str, np.ndarray], background: np.ndarray | None = None) -> plt.Figure:
    """The face regions whose share of heat is measured, drawn on the 48x48 frame."""
    fig, ax = plt.subplots(figsize=(3.6, 3.6))
    shape = next(iter(regions.values())).shape
    ax.imshow(np.full(shape, 128, dtype=np.uint8) if background is None else background, cmap="gray", vmin=0, vmax=255)
    colors = sns.color_palette("Set1", len(regions))
    handles = []
    for (name, mask), color in zip(regions.items(), colors):
        overlay = np.zeros((*shape, 4))
        overlay[np.asarray(mask, dtype=bool)] = (*color, 0.5)
        ax.imshow(overlay)
        ax.contour(np.asarray(mask, dtype=float), levels=[0.5], colors=[color], linewidths=1.2)
        handles.append(
            plt.Rectangle((0, 0), 1, 1, color=color, alpha=0.6, label=f"{name} ({np.mean(mask):.0%} of frame)")
        )
    ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.02), fontsize=8, ncol=1, frameon=False)
    ax.set_xticks(range(0, shape[1] + 1, 8))
    ax.set_yticks(range(0, shape[0] + 1, 8))
    ax.tick_params(labelsize=7)
    ax.set_title("Face regions on the 48x48 frame")
    fig.tight_layout()
    return fig


def plot_cam_region_shares(table: pd.DataFrame, regions: list[str] | None = None) -> plt.Figure:
    """Share of heat in each face region per class (bars) against the region's share of the frame (dashed)."""
    area_row = "area (uniform heat)"
    regions = regions or [c for c in table.columns if c not in ("n", "data", "rest")]
    classes = [i for i in table.index if i != area_row]
    long = (
        table.loc[classes, regions]
        .rename_axis("class")
        .reset_index()
        .melt(id_vars="class", var_name="region", value_name="share")
    )
    fig, ax = plt.subplots(figsize=(9, 3.8))
    sns.barplot(data=long, x="class", y="share", hue="region", hue_order=regions, ax=ax, palette="Set1")
    if area_row in table.index:
        for region, color in zip(regions, sns.color_palette("Set1", len(regions))):
            ax.axhline(table.loc[area_row, region], color=color, linestyle="--", linewidth=1)
    ax.set_ylabel("share of heat")
    ax.set_xlabel("")
    ax.set_title("Where the heat lies (dashed: the region's share of the frame, i.e. uniform heat)")
    ax.legend(title="", fontsize=8)
    fig.tight_layout()
    return fig


def plot_cam_faithfulness(curves: dict) -> plt.Figure:
    """Mean deletion and insertion curves of each set of heatmaps (a dict name -> PerturbationCurves), AUC in the legend."""
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6), sharey=True)
    for name, c in curves.items():
        axes[0].plot(
            c.fractions, c.deletion.mean(axis=0), marker=".", label=f"{name} (AUC {c.deletion_auc.mean():.3f})"
        )
        axes[1].plot(
            c.fractions, c.insertion.mean(axis=0), marker=".", label=f"{name} (AUC {c.insertion_auc.mean():.3f})"
        )
    axes[0].set_title("Deletion: hottest pixels blurred first (lower is better)")
    axes[1].set_title("Insertion: hottest pixels restored first (higher is better)")
    for ax, verb in zip(axes, ("blurred", "restored")):
        ax.set_xlabel(f"fraction of pixels {verb}")
        ax.legend(fontsize=8)
    axes[0].set_ylabel("probability of the target class")
    fig.tight_layout()
    return fig


def plot_cam_side_by_side(images: np.ndarray, columns: dict[str, np.ndarray], n: int = 6) -> plt.Figure:
    """The first n faces (rows) with one heatmap per column, e.g. the trained model's and a randomised model's."""
    n = min(n, len(images))
    fig, axes = plt.subplots(n, len(columns) + 1, figsize=(1.6 * (len(columns) + 1), 1.6 * n), squeeze=False)
    for i in range(n):
        _plot_cam_overlay(axes[i, 0], images[i], None)
        for j, cams in enumerate(columns.values(), start=1):
            _plot_cam_overlay(axes[i, j], images[i], cams[i])
    for j, name in enumerate(["face", *columns]):
        axes[0, j].set_title(name, fontsize=8)
    fig.tight_layout()
    return fig


def plot_cam_randomization(check: pd.DataFrame) -> plt.Figure:
    """Cascading randomisation: similarity of the heatmaps to the trained model's as layers are re-initialised."""
    fig, ax = plt.subplots(figsize=(9, 3.6))
    x = np.arange(len(check))
    for metric in ("spearman", "ssim"):
        ax.errorbar(x, check[metric], yerr=check[f"{metric}_sd"], marker="o", capsize=3, label=metric)
    ax.axhline(0, color="gray", linewidth=0.8)
    ax.set_xticks(x, check["down_to"], rotation=60, ha="right", fontsize=7)
    ax.set_xlabel("re-initialised from the top down to layer")
    ax.set_ylabel("similarity to trained heatmap")
    ax.set_title("Model-randomisation sanity check (mean ± sd over faces)")
    ax.legend()
    fig.tight_layout()
    return fig


def plot_cam_peaks(images: np.ndarray, cams: np.ndarray, masks: np.ndarray, n: int = 8) -> plt.Figure:
    """Heatmaps with the deciding region outlined (white) and the heatmap's peak (x: green inside, red outside)."""
    n = min(n, len(images))
    fig, axes = plt.subplots(1, n, figsize=(1.7 * n, 2.0), squeeze=False)
    for i, ax in enumerate(axes[0]):
        _plot_cam_overlay(ax, images[i], cams[i])
        ax.contour(masks[i].astype(float), levels=[0.5], colors="white", linewidths=1)
        y, x = np.unravel_index(np.argmax(cams[i]), cams[i].shape)
        ax.plot(x, y, marker="x", markersize=9, mew=2.5, color="lime" if masks[i][y, x] else "red")
    fig.suptitle("Heatmap peak (x) against the region that decides the expression (outline)")
    fig.tight_layout()
    return fig


def plot_confusion_matrix(
    labels: np.ndarray, preds: np.ndarray, class_names=CLASS_NAMES, normalize: str | None = None, title: str = ""
) -> plt.Figure:
    """Confusion matrix of true (rows) against predicted (columns) classes: counts, or normalized as in scikit-learn.

    normalize: None (image counts), "true" (rows sum to 1: recall on the diagonal), "pred" (columns sum to 1:
    precision on the diagonal) or "all".
    """
    matrix = confusion(labels, preds, normalize, num_classes=len(class_names))
    fig, ax = plt.subplots(figsize=(6.2, 5.2))
    _confusion_heatmap(ax, matrix, normalize, class_names, vmin=0)
    ax.set_title(title or ("counts" if normalize is None else f"normalized ({normalize})"))
    fig.tight_layout()
    return fig


CONFUSION_LABELS = {
    None: "images",
    "true": "share of true class",
    "pred": "share of predicted class",
    "all": "share of all images",
}


def _confusion_heatmap(ax, values, normalize: str | None, class_names, vmin=None, vmax: float | None = 1) -> None:
    """One confusion matrix as an annotated heatmap: true classes in rows, predicted in columns; counts, or shares
    as `normalize` says (scikit-learn's None, "true", "pred" or "all")."""
    sns.heatmap(
        values,
        annot=True,
        fmt="d" if normalize is None else ".2f",
        cmap="Blues",
        square=True,
        vmin=vmin,
        vmax=None if normalize is None else vmax,
        cbar_kws={"label": CONFUSION_LABELS[normalize], "shrink": 0.8},
        xticklabels=class_names,
        yticklabels=class_names,
        ax=ax,
        annot_kws={"fontsize": 8},
    )
    ax.set(xlabel="predicted", ylabel="true")
    ax.tick_params(axis="x", rotation=45)
    ax.tick_params(axis="y", rotation=0)


def plot_hog_faces(
    images: np.ndarray,
    labels: np.ndarray,
    cell_sizes: tuple[int, ...] = (HOG_DEFAULTS["pixels_per_cell"][0], 4),
    orientations: int = HOG_DEFAULTS["orientations"],
    class_names=CLASS_NAMES,
) -> plt.Figure:
    """Faces (top row) and their HOG cells drawn as oriented gradient stars, one row per cell size."""
    from skimage.feature import hog

    fig, axes = plt.subplots(
        1 + len(cell_sizes), len(images), figsize=(1.7 * len(images), 1.8 * (1 + len(cell_sizes))), squeeze=False
    )
    for j, (image, label) in enumerate(zip(images, labels)):
        axes[0, j].imshow(image, cmap="gray", vmin=0, vmax=255)
        axes[0, j].set_title(class_names[label], fontsize=9)
        for i, cells in enumerate(cell_sizes, start=1):
            _, drawing = hog(
                image / 255.0,
                orientations=orientations,
                pixels_per_cell=(cells, cells),
                cells_per_block=HOG_DEFAULTS["cells_per_block"],
                block_norm=HOG_DEFAULTS["block_norm"],
                visualize=True,
            )
            axes[i, j].imshow(drawing, cmap="magma")
    for i, cells in enumerate(cell_sizes, start=1):
        axes[i, 0].set_ylabel(f"HOG {cells}x{cells}", fontsize=9)
    axes[0, 0].set_ylabel("face", fontsize=9)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    return fig


def plot_hog_c_search(searches: dict[str, pd.DataFrame], chosen: dict[str, float] | None = None) -> plt.Figure:
    """PublicTest accuracy and macro F1 against the SVM's C (log scale), one line per model; chosen C circled."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6), sharex=True)
    for name, search in searches.items():
        for ax, column in zip(axes, ("public_accuracy", "public_macro_f1")):
            (line,) = ax.plot(search["C"], search[column], marker="o", label=name)
            if chosen and name in chosen:
                at = search[search["C"] == chosen[name]]
                ax.scatter(at["C"], at[column], s=160, facecolors="none", edgecolors=line.get_color(), linewidths=2)
    for ax, title in zip(axes, ("PublicTest accuracy", "PublicTest macro F1")):
        ax.set_xscale("log")
        ax.set(xlabel="C (inverse regularisation)", title=title)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------------------------------------- ablation figures
def plot_ablation_deltas(table: pd.DataFrame, splits: tuple[str, ...] = ("PublicTest", "PrivateTest")) -> plt.Figure:
    """Change of accuracy and macro F1 from the full model per ablation, in points with paired 95% intervals.

    `table` is claims.ablation_table's; left of zero the removed ingredient had helped.
    """
    variants = table[table["delta_accuracy"].notna()]
    names = list(dict.fromkeys(variants.index.get_level_values("model")))
    fig, axes = plt.subplots(1, 2, figsize=(10, 0.5 * len(names) + 1.8), sharey=True)
    y = np.arange(len(names))[::-1]
    for ax, metric, label in zip(axes, ("accuracy", "macro_f1"), ("accuracy", "macro F1")):
        for i, split in enumerate(splits):
            rows = variants.xs(split, level="split").reindex(names)
            delta = rows[f"delta_{metric}"].to_numpy(float)
            ci = np.array([list(c) for c in rows[f"delta_{metric}_ci95"]], dtype=float)
            ax.errorbar(
                delta,
                y + 0.15 * (1 - 2 * i),
                xerr=[delta - ci[:, 0], ci[:, 1] - delta],
                fmt="o" if i == 0 else "s",
                color=f"C{i}",
                mfc=None if i == 0 else "white",
                capsize=3,
                label=split,
            )
        ax.axvline(0, color="black", lw=0.8)
        ax.set_xlabel(f"Δ {label} vs full model (points)")
        ax.grid(axis="x", alpha=0.3)
    axes[0].set_yticks(y, [variants.loc[(n, splits[0]), "change"] for n in names])
    axes[0].legend(fontsize=8, loc="best")
    fig.suptitle("Each ingredient removed in turn (95% paired bootstrap intervals): left of 0, it had helped")
    fig.tight_layout()
    return fig


def plot_vote_entropy(entropy: np.ndarray, usage: np.ndarray) -> plt.Figure:
    """Histogram of each face's crowd vote entropy (bits; 0: unanimous) per split; faces without votes left out."""
    entropy, usage = np.asarray(entropy, dtype=float), np.asarray(usage)
    top = np.log2(NUM_CLASSES)
    bins = np.linspace(0, top, 29)
    fig, ax = plt.subplots(figsize=(7, 3.8))
    for split in dict.fromkeys(usage):
        values = entropy[(usage == split) & ~np.isnan(entropy)]
        if len(values):
            ax.hist(
                values,
                bins=bins,
                histtype="step",
                linewidth=1.6,
                density=True,
                label=f"{split} ({len(values):,} faces, median {np.median(values):.2f} bits)",
            )
    ax.axvline(top, color="gray", linestyle="--", linewidth=1)
    ax.annotate(
        "all seven classes equally",
        (top, 0.02),
        xycoords=("data", "axes fraction"),
        ha="right",
        va="bottom",
        fontsize=8,
        color="gray",
        rotation=90,
    )
    ax.set(
        xlabel="entropy of the crowd's emotion votes (bits)",
        ylabel="density",
        xlim=(0, top * 1.02),
        title="How much the crowd disagrees about each face",
    )
    ax.legend(fontsize=8, loc="upper right")
    fig.tight_layout()
    return fig


def plot_label_confusion(table: pd.DataFrame, title: str = "") -> plt.Figure:
    """FER-2013 label (rows) against the crowd's plurality (columns) from ferplus.label_confusion: counts, shares."""
    fig = plot_confusion_pair(table.to_numpy(), title=title, class_names=list(table.columns))
    counts, shares, counts_bar, shares_bar = fig.axes  # two heatmaps, then their colour bars
    for ax in (counts, shares):
        ax.set(xlabel=table.columns.name or "crowd plurality", ylabel=table.index.name or "FER-2013 label")
    shares.set_title("row-normalised (agreement with the crowd on the diagonal)")
    counts_bar.set_ylabel("faces")
    shares_bar.set_ylabel("share of the label's faces")
    return fig


def plot_reference_points(accuracies: pd.DataFrame, references: dict[str, float]) -> plt.Figure:
    """Accuracies against FER-2013's labels (dots, coloured by group) beside label-noise reference points (lines).

    `accuracies`: one row per model or reference, columns "accuracy" and "group" (e.g. "ours", "paper", "field"),
    optionally "low" and "high" for a range (drawn as a bar); `references`: name -> accuracy. A reference point is
    what a predictor built from the crowd's votes scores, not a bound: entries may sit on either side of it.
    """
    import textwrap

    rows = accuracies.sort_values("accuracy")
    groups = list(dict.fromkeys(rows["group"]))
    colors = dict(zip(groups, sns.color_palette("deep", len(groups))))
    fig, ax = plt.subplots(figsize=(12, max(3.0, 0.42 * len(rows) + 1.4)))
    y = np.arange(len(rows))
    for group in groups:
        mine = (rows["group"] == group).to_numpy()
        ax.scatter(rows["accuracy"].to_numpy(float)[mine] * 100, y[mine], color=colors[group], label=group, zorder=3)
    if {"low", "high"} <= set(rows.columns):
        for i, (low, high, group) in enumerate(zip(rows["low"], rows["high"], rows["group"])):
            if pd.notna(low) and pd.notna(high):
                ax.plot([100 * low, 100 * high], [i, i], color=colors[group], linewidth=5, alpha=0.4)
    for (name, value), style in zip(references.items(), ("--", ":", "-.", (0, (5, 1)))):
        ax.axvline(100 * value, color="black", linestyle=style, linewidth=1.2, label=f"{name}: {100 * value:.1f}%")
    ax.set_yticks(y, [textwrap.fill(str(name), 48) for name in rows.index], fontsize=8)
    right = 100 * max([*references.values(), *rows["accuracy"], *rows.get("high", pd.Series(dtype=float)).dropna()])
    ax.set_xlim(right=min(100.0, right + 3))
    ax.set(
        xlabel="accuracy against FER-2013's labels (%), on the split each entry names (this study's: PrivateTest)",
        ylim=(-0.7, len(rows) - 0.3),
        title="The models beside the label-noise reference points (not bounds)",
    )
    ax.grid(axis="x", alpha=0.3)
    ax.legend(
        fontsize=8,
        loc="upper left",
        bbox_to_anchor=(1.01, 1.0),
        title="reference points (lines), entries (dots)",
        title_fontsize=8,
    )
    fig.tight_layout()
    return fig


def plot_boundary_shift(shift: pd.DataFrame, toward: str = "Neutral", title: str = "") -> plt.Figure:
    """The crowd's class boundaries against FER-2013's, from ferplus.boundary_shift: left, the share of each label's
    faces whose crowd plurality is `toward` (95% Wilson intervals); right, each class's share of the labels and of
    the crowd's pluralities."""
    column = f"to_{toward}"
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 3.8))
    others = shift.drop(index=toward).sort_values(column)
    y = np.arange(len(others))
    errors = np.vstack([others[column] - others["ci_low"], others["ci_high"] - others[column]]) * 100
    left.barh(y, 100 * others[column], xerr=errors, color=sns.color_palette("deep")[0], capsize=3)
    left.set_yticks(y, [f"{c} ({n:,})" for c, n in zip(others.index, others["n"])])
    left.set(
        xlabel=f"share the crowd calls {toward} (%)",
        title=f"Faces of each FER-2013 label (with their count) that the crowd calls {toward}",
    )
    left.grid(axis="x", alpha=0.3)
    x = np.arange(len(shift))
    width = 0.4
    palette = sns.color_palette("deep")
    right.bar(x - width / 2, 100 * shift["label_share"], width, label="FER-2013's labels", color=palette[1])
    right.bar(x + width / 2, 100 * shift["plurality_share"], width, label="the crowd's pluralities", color=palette[2])
    right.set_xticks(x, shift.index, rotation=30, ha="right")
    right.set(ylabel="share of the faces (%)", title="Each class's share of the faces")
    right.legend(fontsize=8)
    right.grid(axis="y", alpha=0.3)
    left.title.set_fontsize(9)
    right.title.set_fontsize(9)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


# ---- figures of notebooks 02 and 03


def plot_svm_weight_map(
    coef: np.ndarray,
    background: np.ndarray | None = None,
    pixels_per_cell: tuple[int, int] = HOG_DEFAULTS["pixels_per_cell"],
    class_names=CLASS_NAMES,
    **hog_layout,
) -> plt.Figure:
    """Where a linear SVM on HOG finds evidence for each class: its positive weights summed per HOG cell, drawn over
    the face (e.g. the mean training face, `background`), one panel per class."""
    shape = background.shape if background is not None else hog_layout.pop("image_shape", (48, 48))
    grid = hog_weight_cells(coef, shape, pixels_per_cell=pixels_per_cell, **hog_layout)
    upsampled = np.kron(grid, np.ones(pixels_per_cell))
    fig, axes = plt.subplots(1, len(grid), figsize=(1.9 * len(grid), 2.4), squeeze=False)
    for ax, name, cells in zip(axes[0], class_names, upsampled):
        if background is not None:
            ax.imshow(background, cmap="gray")
        ax.imshow(cells, cmap="magma", alpha=0.6 if background is not None else 1.0, vmin=0, vmax=upsampled.max())
        ax.set_title(name, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle("Positive SVM weight per HOG cell (bright: evidence for the class)", fontsize=10)
    fig.tight_layout()
    return fig


def plot_confident_mistakes(
    images: np.ndarray, labels: np.ndarray, probs: np.ndarray, per_class: int = 4, class_names=CLASS_NAMES
) -> plt.Figure:
    """One row per true class: its misclassified faces the model was surest of, titled with the wrong answer and
    its probability."""
    chosen = confident_mistakes(labels, probs, per_class)
    fig, axes = plt.subplots(len(class_names), per_class, figsize=(1.35 * per_class + 0.9, 1.45 * len(class_names)))
    axes = np.asarray(axes).reshape(len(class_names), per_class)
    preds = np.asarray(probs).argmax(axis=1)
    for c, name in enumerate(class_names):
        for j, ax in enumerate(axes[c]):
            ax.set_xticks([])
            ax.set_yticks([])
            ax.spines[:].set_visible(False)
            if j < len(chosen[c]):
                i = chosen[c][j]
                ax.imshow(images[i], cmap="gray", vmin=0, vmax=255)
                ax.set_title(f"{class_names[preds[i]]} {probs[i, preds[i]]:.2f}", fontsize=7)
        axes[c, 0].set_ylabel(name, rotation=0, ha="right", va="center", fontsize=9)
    fig.suptitle("Most confident mistakes: true class (rows), predicted class and probability", fontsize=10)
    fig.tight_layout()
    return fig


def plot_conv_filters(weight: np.ndarray, ncols: int = 8) -> plt.Figure:
    """The kernels of a convolution on a grey image (out_channels, 1, k, k), each on its own symmetric colour
    scale (red: weighs brightness positively, blue: negatively)."""
    weight = np.asarray(weight, dtype=np.float64)
    if weight.ndim != 4 or weight.shape[1] != 1:
        raise ValueError(f"expected kernels of shape (out_channels, 1, k, k), got {weight.shape}")
    nrows = -(-len(weight) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(0.9 * ncols, 0.95 * nrows + 0.4), squeeze=False)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
        ax.spines[:].set_visible(False)
    for k, (ax, kernel) in enumerate(zip(axes.flat, weight[:, 0])):
        limit = np.abs(kernel).max() or 1.0
        ax.imshow(kernel, cmap="RdBu_r", vmin=-limit, vmax=limit)
        ax.set_title(str(k), fontsize=7)
    fig.suptitle(f"First convolution: {len(weight)} kernels of {weight.shape[2]}×{weight.shape[3]} pixels", fontsize=10)
    return fig


# ---- figures of notebooks 04 and 05
PAPER_BAND_MIN_WIDTH = 0.4  # points: a range of one number ("41%") is still drawn as a visible band


def plot_against_paper(
    ours: pd.DataFrame,
    field: tuple | list = (),
    comparable: bool = True,
    note: str = "",
    split: str = "PrivateTest",
) -> plt.Figure:
    """Our accuracy against the paper's: for each model, the paper's reported range as a grey band and ours with its
    95% interval as a point with an error bar; the field's results (name, accuracy) and chance as vertical lines.

    ours: one row per model (its label as the index) with columns accuracy, ci_low, ci_high, paper_low, paper_high
    (shares, not percent). Where our numbers cannot be held against the paper's (comparable=False: synthetic faces,
    a shrunken profile), the bands are left out and the title says so, with `note` as the reason.
    """
    fig, ax = plt.subplots(figsize=(8.5, 1.0 + 0.75 * len(ours)))
    y = np.arange(len(ours))[::-1]
    if comparable:
        low, high = 100 * ours["paper_low"].to_numpy(), 100 * ours["paper_high"].to_numpy()
        width = np.maximum(high - low, PAPER_BAND_MIN_WIDTH)
        ax.barh(y, width, left=(low + high - width) / 2, height=0.6, color="0.8", label="the paper's range")
    acc = 100 * ours["accuracy"].to_numpy()
    errors = [acc - 100 * ours["ci_low"].to_numpy(), 100 * ours["ci_high"].to_numpy() - acc]
    ax.errorbar(acc, y, xerr=errors, fmt="o", color="tab:blue", capsize=4, label="ours, with its 95% interval")
    lines = [("chance (1 in 7)", 1 / NUM_CLASSES), *((name, value) for name, value, *_ in field)]
    styles = ["--", ":", "-.", (0, (5, 1)), (0, (1, 3))]
    for (name, value), style, color in zip(lines, styles * 2, ["0.5", *sns.color_palette("dark", len(lines))]):
        ax.axvline(100 * value, linestyle=style, color=color, linewidth=1.2, label=f"{name}: {100 * value:.1f}%")
    ax.set_yticks(y, ours.index)
    ax.set_xlim(0, 100)
    ax.set_ylim(-0.7, len(ours) - 0.3)
    ax.set_xlabel(f"{split} accuracy (%)")
    title = f"{split} accuracy: ours against the paper's ranges"
    if not comparable:
        title = f"{split} accuracy: ours, not comparable with the paper's ranges" + (f" ({note})" if note else "")
    ax.set_title(title, fontsize=10)
    ax.grid(axis="x", alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    return fig


def plot_accuracy_vs_compute(frame: pd.DataFrame, published: pd.DataFrame | None = None, split: str = "") -> plt.Figure:
    """Accuracy (with its 95% interval) against training hours on a log axis, one point per model (`cost.
    compute_frame`); the main models filled and named, variants hollow; published anchors, whose hours their code
    does not state, as dashed lines at their accuracy."""
    fig, ax = plt.subplots(figsize=(8, 4.8))
    for _, row in frame.iterrows():
        err = [[row["accuracy"] - row["ci_low"]], [row["ci_high"] - row["accuracy"]]]
        color = "C0" if row["main"] else "C7"
        ax.errorbar(
            row["hours"], row["accuracy"], yerr=err, fmt="o", color=color, mfc=color if row["main"] else "white"
        )
        if row["main"]:  # variants are named in the table beside the figure
            ax.annotate(row["model"], (row["hours"], row["accuracy"]), textcoords="offset points", xytext=(6, 4))
    ax.set_xscale("log")
    for _, anchor in (published if published is not None else pd.DataFrame()).iterrows():
        ax.axhline(anchor["accuracy"], color="C3", ls="--", lw=1)
        ax.text(
            0.01,
            anchor["accuracy"] + 0.004,
            f"{anchor['who']}: {anchor['accuracy']:.1%} on {anchor['reported on']} (selected on "
            f"{anchor['selected on']}), {anchor['epochs']} epochs x {anchor['training crops (M)']:g} M training crops",
            transform=ax.get_yaxis_transform(),
            fontsize=7,
            color="C3",
        )
    ax.set_xlabel("training time of one seed (hours, log scale; device and precision in the table)")
    ax.set_ylabel(f"accuracy{f' ({split})' if split else ''}")
    ax.yaxis.set_major_formatter(plt.FuncFormatter(lambda v, _: f"{v:.0%}"))
    ax.set_title("Accuracy against training time (filled: the main models; hollow: variants)")
    ax.grid(alpha=0.3, which="both")
    fig.tight_layout()
    return fig


def plot_sweeps(table: pd.DataFrame, units: dict[str, str] | None = None) -> plt.Figure:
    """Accuracy (with its 95% interval) and mean confidence against the amount of each change, one panel per change
    (from robustness.sweep_table), each curve starting from the unchanged faces at the amount that changes nothing
    (`robustness.NEUTRAL`); their accuracy is also the dotted line in every panel."""
    from fer_helpers.analysis.robustness import NEUTRAL, UNCHANGED

    base = table[table["change"] == UNCHANGED].iloc[0]
    changes = [c for c in dict.fromkeys(table["change"]) if c != UNCHANGED]
    ncols = min(3, len(changes))
    nrows = int(np.ceil(len(changes) / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.2 * ncols, 3.2 * nrows), sharey=True, squeeze=False)
    for ax, change in zip(axes.ravel(), changes):
        start = base.to_frame().T.assign(change=change, amount=NEUTRAL.get(change, 0.0))
        rows = pd.concat([start, table[table["change"] == change]]).astype({"amount": float}).sort_values("amount")
        ax.errorbar(
            rows["amount"],
            rows["accuracy"],
            yerr=[rows["accuracy"] - rows["accuracy_low"], rows["accuracy_high"] - rows["accuracy"]],
            marker="o",
            capsize=3,
            label="accuracy (95% CI)",
        )
        ax.plot(rows["amount"], rows["confidence"], marker="s", linestyle="--", color="gray", label="mean confidence")
        ax.axhline(base["accuracy"], color="black", linestyle=":", linewidth=1, label="unchanged faces")
        ax.set(title=change, xlabel=(units or {}).get(change, ""), ylim=(0, 1))
    for ax in axes.ravel()[len(changes) :]:
        ax.set_visible(False)
    axes[0, 0].set_ylabel("share of faces")
    axes[0, 0].legend(fontsize=7, loc="lower left")
    fig.tight_layout()
    return fig


def plot_scene(image: np.ndarray, pasted: np.ndarray, found: np.ndarray) -> plt.Figure:
    """A grey scene with the boxes of the faces pasted into it (green) and those a detector found (red, dashed)."""
    fig, ax = plt.subplots(figsize=(8, 6))
    ax.imshow(image, cmap="gray", vmin=0, vmax=255)
    for boxes, color, style in ((pasted, "limegreen", "-"), (found, "red", "--")):
        for x, y, w, h in np.asarray(boxes).reshape(-1, 4):
            ax.add_patch(plt.Rectangle((x, y), w, h, fill=False, edgecolor=color, linestyle=style, linewidth=1.5))
    ax.set_axis_off()
    ax.set_title("pasted faces (green) and the detector's boxes (red, dashed)")
    fig.tight_layout()
    return fig


def plot_face_rows(rows: dict[str, np.ndarray]) -> plt.Figure:
    """Faces in rows, one row per name (each (K,48,48) uint8, the same K), the name at the row's left."""
    ncols = max(len(faces) for faces in rows.values())
    fig, axes = plt.subplots(len(rows), ncols, figsize=(1.1 * ncols + 1.4, 1.1 * len(rows)), squeeze=False)
    for ax_row, (name, faces) in zip(axes, rows.items()):
        for ax, face in zip(ax_row, faces):
            ax.imshow(face, cmap="gray", vmin=0, vmax=255)
        for ax in ax_row:
            ax.set_xticks([])
            ax.set_yticks([])
        ax_row[0].set_ylabel(name, rotation=0, ha="right", va="center", fontsize=8)
    fig.tight_layout()
    return fig
