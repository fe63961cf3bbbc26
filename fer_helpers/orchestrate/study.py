"""The start of every notebook: profile, data (FER-2013 or, where absent, synthetic faces), run and report folders."""

from __future__ import annotations

import math
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from fer_helpers.core.hardware import forced_cpu_precision
from fer_helpers.core.markdown import dataframe_markdown, index_as_columns
from fer_helpers.core.paths import FER2013_ENV, PROFILE_ENV, REPO
from fer_helpers.core.profiles import PROFILES, Profile, get_profile
from fer_helpers.data.fer2013 import (
    FER2013_COUNTS,
    NUM_CLASSES,
    SPLITS,
    SYNTHETIC_STAMP,
    FERData,
    find_fer2013,
    load_fer2013,
)

if TYPE_CHECKING:
    from matplotlib.figure import Figure

SYNTHETIC_LABEL = "synthetic (not FER-2013)"
FIGURE_DPI = 120
SYNTHETIC = "synthetic"  # the data_path that asks for the synthetic faces even where FER-2013 is present


def default_run_dir(profile: str, synthetic: bool) -> Path:
    """runs/<profile> for FER-2013, runs/<profile>-synthetic for the synthetic faces."""
    return REPO / "runs" / (f"{profile}-synthetic" if synthetic else profile)


def synthetic_sizes(profile: Profile) -> tuple[int, int, int]:
    """Training/PublicTest/PrivateTest sizes of synthetic faces that fill the profile's caps in every class."""
    caps = (profile.train_per_class, profile.eval_per_class, profile.eval_per_class)
    sizes = []
    for split, cap in zip(SPLITS, caps):
        total = sum(FER2013_COUNTS[split])
        # The rarest class (Disgust) decides how many faces fill every class up to the cap.
        needed = total if cap is None else math.ceil(cap * total / min(FER2013_COUNTS[split]))
        sizes.append(min(total, needed))
    return tuple(sizes)


def synthetic_warning(reason: str) -> str:
    """The loud text printed wherever synthetic faces stand in for FER-2013."""
    rule = "!" * 78
    return (
        f"{rule}\n!! {SYNTHETIC_STAMP}\n!! {reason}\n"
        f"!! Every number, table and figure of this run comes from generated faces.\n"
        f"!! To use FER-2013: put the Kaggle zip into data/ or set {FER2013_ENV} (see data/README.md).\n{rule}"
    )


@dataclass
class Study:
    """One notebook's view of a run: its profile, data, and where results, figures and tables go."""

    profile: Profile
    data: FERData  # subsampled per profile: what the models see
    full_data: FERData  # everything that was loaded, for the data exploration
    run_dir: Path
    reports_dir: Path

    @property
    def synthetic(self) -> bool:
        return not self.data.is_fer2013

    @property
    def figures_dir(self) -> Path:
        return self.reports_dir / "figures"

    @property
    def tables_dir(self) -> Path:
        return self.reports_dir / "tables"

    @property
    def banner(self) -> str:
        """Markdown for the top of a notebook: which data, checksum and profile, and a warning on synthetic faces."""
        counts = ", ".join(f"{split} {int((self.data.usage == split).sum()):,}" for split in SPLITS)
        caps = f"up to {self.profile.train_per_class or 'all'} training and {self.profile.eval_per_class or 'all'} "
        facts = (
            f"**Profile** `{self.profile.name}` ({caps}evaluation faces per class): {counts}.  \n"
            f"**Data** {'synthetic faces' if self.synthetic else f'{self.data.form} `{Path(self.data.source).name}`'}, "
            f"sha256 `{self.data.sha256[:16]}`, "
            f"{len(self.full_data):,} faces loaded.  \n"
            f"**Run folder** `{_display_path(self.run_dir)}`; "
            f"figures and tables in `{_display_path(self.reports_dir)}`."
        )
        if not self.synthetic:
            return facts
        return (
            f'<div style="border:3px solid red;padding:8px;color:red;font-size:1.3em;font-weight:bold">'
            f"{SYNTHETIC_STAMP}</div>\n\n"
            f"No FER-2013 was found, so this run uses the project's **synthetic faces**. "
            f"Every number, table and figure below describes them, **not FER-2013**, and must not be compared "
            f"with the paper. To use FER-2013, put the Kaggle zip into `data/` or set `{FER2013_ENV}` "
            f"(see `data/README.md`).\n\n{facts}"
        )

    def stamp(self, fig: Figure) -> Figure:
        """Mark a figure: a big red warning on synthetic faces, a small note naming a profile whose sizes are not the
        paper's."""
        if self.synthetic and not _has_artist(fig, "synthetic-stamp"):
            width_pt = fig.get_figwidth() * 72
            fig.text(
                0.5,
                0.5,
                SYNTHETIC_STAMP,
                gid="synthetic-stamp",
                color="red",
                alpha=0.45,
                fontweight="bold",
                fontsize=max(8.0, min(36.0, width_pt / (0.75 * len(SYNTHETIC_STAMP)))),  # fits the width
                rotation=12,
                ha="center",
                va="center",
                zorder=1000,
            )
        if not self.profile.paper_sizes and not _has_artist(fig, "profile-note"):
            fig.text(
                0.995,
                0.005,
                f"profile: {self.profile.name}",
                gid="profile-note",
                color="dimgray",
                fontsize=8,
                ha="right",
                va="bottom",
                zorder=1000,
            )
        return fig

    def save_figure(self, fig: Figure, name: str) -> Path:
        """Stamp a figure and save it as <reports_dir>/figures/<name>.png."""
        self.stamp(fig)
        self.figures_dir.mkdir(parents=True, exist_ok=True)
        path = self.figures_dir / f"{Path(name).stem}.png"
        fig.savefig(path, dpi=FIGURE_DPI, bbox_inches="tight")
        return path

    def exercise_dir(self, notebook: str) -> Path:
        """Where a notebook's exercises save what they train and write: <run_dir>/exercises/<notebook>, apart from
        the results the report and the later notebooks read (<run_dir>/results, the reports folder)."""
        path = self.run_dir / "exercises" / notebook
        path.mkdir(parents=True, exist_ok=True)
        return path

    def save_table(self, df: pd.DataFrame, name: str) -> pd.DataFrame:
        """Save a table as reports/tables/<name>.csv and .md (labelled when synthetic); returns it for display."""
        table = df.copy()
        if self.synthetic:
            table["data"] = SYNTHETIC_LABEL
        flat = index_as_columns(table)
        self.tables_dir.mkdir(parents=True, exist_ok=True)
        stem = Path(name).stem
        flat.to_csv(self.tables_dir / f"{stem}.csv", index=False)
        header = []
        if self.synthetic:
            header.append(f"**{SYNTHETIC_STAMP}**")
        if not self.profile.paper_sizes:
            header.append(f"_profile: {self.profile.name}_")
        lines = ([" · ".join(header), ""] if header else []) + [dataframe_markdown(flat)]
        (self.tables_dir / f"{stem}.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
        return table


AUTO = "auto"  # the profile that fits the machine and the data (`resolve_profile`)


def resolve_profile(profile: str | Profile, data_path: str | Path | None = None) -> tuple[str | Profile, str]:
    """The profile to run and why: "auto" is the lesson (classroom) on FER-2013, on a CPU or a GPU alike, and smoke
    on synthetic faces; any other profile is itself. The full study is only ever run when asked for by name: a
    class on a GPU must never start hours of training by accident."""
    if profile != AUTO:
        return profile, "chosen"
    if os.environ.get(PROFILE_ENV) in PROFILES:  # set by Colab's first cell (`colab.prepare`)
        return os.environ[PROFILE_ENV], f"auto: {PROFILE_ENV}"
    if data_path == SYNTHETIC or find_fer2013(data_path) is None:
        return "smoke", "auto: no FER-2013 found, so synthetic faces"
    return "classroom", "auto: FER-2013, so the lesson; profile='full' (asked for by name) re-renders the full study"


def setup(
    profile: str | Profile = AUTO,
    data_path: str | Path | None = None,
    run_dir: str | Path | None = None,
    fresh: bool = False,
    *,
    train: bool = True,
    ferplus_path: str | Path | None = None,
    n_images: int | None = None,
) -> Study:
    """Validate a notebook's parameters, load FER-2013 (or synthetic faces where there is none) and subsample it.

    Every parameter of a notebook's parameters cell comes here, so that a wrong type is an error before anything
    runs, and the notebook shows no checks of its own: `fresh` and `train` are switches, `ferplus_path` a path
    (notebook 08), `n_images` the faces Grad-CAM explains (notebook 06; at least one per class). The first line
    printed says which profile and data the run uses and how to choose others.
    """
    if not isinstance(profile, (str, Profile)):
        raise TypeError(f"profile must be a profile name (str), not {type(profile).__name__}")
    for name, value in (("data_path", data_path), ("run_dir", run_dir), ("ferplus_path", ferplus_path)):
        if value is not None and not isinstance(value, (str, os.PathLike)):
            raise TypeError(f"{name} must be a path (str) or None, not {type(value).__name__}")
    for name, value in (("fresh", fresh), ("train", train)):
        if not isinstance(value, bool):
            raise TypeError(f"{name} must be True or False, not {value!r}")
    if n_images is not None and (isinstance(n_images, bool) or not isinstance(n_images, int) or n_images < NUM_CLASSES):
        raise ValueError(f"n_images must be None or an integer of at least {NUM_CLASSES}, not {n_images!r}")
    forced_cpu_precision()  # a mistyped FER_STUDY_PRECISION stops here, before any data is read
    profile, why = resolve_profile(profile, data_path)
    profile = get_profile(profile)
    forced = data_path == SYNTHETIC
    path = None if forced else find_fer2013(data_path)
    if path is None:
        from fer_helpers.data.synthetic import make_synthetic_fer

        reason = (
            "Synthetic faces were asked for (data_path='synthetic')."
            if forced
            else f"No FER-2013 found (no data path, no ${FER2013_ENV}, nothing in data/)."
        )
        if not in_notebook():  # a notebook shows the same warning once, in the banner it displays next
            print(synthetic_warning(reason), file=sys.stderr)
        n_train, n_public, n_private = synthetic_sizes(profile)
        full_data = make_synthetic_fer(n_train=n_train, n_public=n_public, n_private=n_private, seed=0)
    else:
        full_data = load_fer2013(path)
    synthetic = not full_data.is_fer2013
    data = full_data.subsample(profile.train_per_class, profile.eval_per_class, seed=0)
    run_dir = Path(run_dir).expanduser() if run_dir is not None else default_run_dir(profile.name, synthetic)
    # Only the study's own full profile on FER-2013 writes the committed reports/; any other run keeps its own.
    reports_dir = REPO / "reports" if profile == PROFILES["full"] and not synthetic else run_dir / "reports"
    source = "synthetic faces" if synthetic else Path(full_data.source).name
    print(
        f"Profile {profile.name} ({why}) on {source}. To change: profile = 'smoke' | 'classroom' | 'full' and "
        f"data_path in the parameters cell (or PROFILE=… / FER2013_PATH for make report).",
        flush=True,
    )
    return Study(profile=profile, data=data, full_data=full_data, run_dir=run_dir, reports_dir=reports_dir)


def in_notebook() -> bool:
    """Whether this runs in a Jupyter kernel (JupyterLab, papermill), where the study's banner is displayed."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    return type(shell).__name__ == "ZMQInteractiveShell"


def _display_path(path: Path) -> str:
    """A path relative to the repository when it lies inside it (outputs then name no machine's folders)."""
    try:
        return str(Path(path).resolve().relative_to(REPO))
    except ValueError:
        return str(path)


def _has_artist(fig, gid: str) -> bool:
    return any(text.get_gid() == gid for text in fig.texts)
