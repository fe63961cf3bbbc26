"""Google Colab: each notebook's first cell gets the study there (clone, install beside Colab's own torch, FER-2013,
the profile) and does nothing anywhere else.

The cell (`setup_cell`) clones the repository named in pyproject.toml's [project.urls] Repository into
/content/fer-study and calls `prepare`, which, on Colab only:
1. installs the study with pip from its dependency ranges (pyproject.toml), constrained to the torch and torchvision
   already installed, so Colab's CUDA build is never replaced (the lock's exact pins are for local installs);
2. fetches FER-2013 as Kaggle allows, unless it is already there: with the Kaggle API and the user's own token
   (KAGGLE_USERNAME and KAGGLE_KEY, or ~/.kaggle/kaggle.json) it downloads the `KAGGLE_DATASET` zip into data/;
   without a token it asks for an upload of the zip;
3. sets the profile that the notebooks' profile = "auto" then runs (`PROFILE_ENV`): the lesson on FER-2013, the
   smoke profile on synthetic faces.
`python -m fer_helpers.core.colab` rewrites the README's badges and the notebooks' first cells after the
repository's address changes. This module imports nothing heavy: it runs before the study is installed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Mapping
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from fer_helpers.core.files import atomic_write_text, rewrite_between
from fer_helpers.core.paths import DATA_DIR, FER2013_ENV, PROFILE_ENV, REPO

COLAB_DIR = "/content/fer-study"  # where the first cell clones the study on Colab
KAGGLE_DATASET = "msambare/fer2013"  # FER-2013 as the Kaggle zip the study reads (train/ and test/, split prefixes)
FER2013_FILES = ("fer2013.zip", "fer2013.csv", "icml_face_data.csv", "train.csv")  # the forms data/ may hold
KEPT = ("torch", "torchvision")  # Colab's own builds, never replaced
BADGE = "https://colab.research.google.com/assets/colab-badge.svg"
README_MARKERS = ("<!-- colab:start -->", "<!-- colab:end -->")
CELL_TAG = "colab-setup"


def on_colab(modules: Mapping[str, object] = sys.modules) -> bool:
    """Whether this kernel runs on Google Colab (its google.colab module is loaded there)."""
    return "google.colab" in modules


def repository_url(pyproject: Path = REPO / "pyproject.toml") -> str:
    """The study's public repository, from pyproject.toml's [project.urls] Repository (the one place it is written)."""
    import tomllib

    url = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]["urls"]["Repository"]
    return url.rstrip("/").removesuffix(".git")


def colab_link(url: str, notebook: str, branch: str = "main") -> str:
    """Colab's address for a notebook of the repository at `url` (a GitHub address)."""
    path = url.split("github.com/", 1)[1]
    return f"https://colab.research.google.com/github/{path}/blob/{branch}/notebooks/{notebook}"


def badges(url: str, notebooks: list[str]) -> str:
    """The README's line of "Open in Colab" badges, one per notebook."""
    return " ".join(f"[![{Path(n).stem} in Colab]({BADGE})]({colab_link(url, n)})" for n in notebooks)


def setup_cell(url: str) -> str:
    """The source of every notebook's first cell: on Colab, clone the study and `prepare` it; elsewhere nothing."""
    return (
        "# On Google Colab: clone the study, install it beside Colab's torch, fetch FER-2013; elsewhere: nothing.\n"
        "import subprocess\n"
        "import sys\n"
        "from pathlib import Path\n"
        "\n"
        'if "google.colab" in sys.modules:\n'
        f'    if not Path("{COLAB_DIR}").is_dir():\n'
        f'        subprocess.run(["git", "clone", "-q", "{url}", "{COLAB_DIR}"], check=True)\n'
        f'    sys.path.insert(0, "{COLAB_DIR}")\n'
        "    from fer_helpers.core.colab import prepare\n"
        "\n"
        "    prepare()"
    )


def kept_versions() -> list[str]:
    """Pip constraints holding torch and torchvision at the versions installed here (e.g. "torch==2.8.0+cu126")."""
    kept = []
    for name in KEPT:
        try:
            kept.append(f"{name}=={version(name)}")
        except PackageNotFoundError:
            pass
    return kept


def install_command(repo: str | Path, constraints: str | Path) -> list[str]:
    """pip installing the study (editable, from its ranges) with the kept versions as constraints."""
    return [sys.executable, "-m", "pip", "install", "-q", "-c", str(constraints), "-e", str(repo)]


def has_fer2013(environ: Mapping[str, str] = os.environ, data_dir: Path = DATA_DIR) -> bool:
    """Whether FER-2013 is already where the study looks (FER2013_PATH, or a known file in data/)."""
    if environ.get(FER2013_ENV) and Path(environ[FER2013_ENV]).exists():
        return True
    return any((data_dir / name).exists() for name in FER2013_FILES)


def has_kaggle_token(environ: Mapping[str, str] = os.environ, home: Path | None = None) -> bool:
    """Whether the Kaggle API has the user's own token: KAGGLE_USERNAME and KAGGLE_KEY, or ~/.kaggle/kaggle.json."""
    if environ.get("KAGGLE_USERNAME") and environ.get("KAGGLE_KEY"):
        return True
    return ((home or Path.home()) / ".kaggle" / "kaggle.json").exists()


def kaggle_command(data_dir: Path = DATA_DIR) -> list[str]:
    """The Kaggle API's download of FER-2013's zip into data/ (data/fer2013.zip)."""
    return ["kaggle", "datasets", "download", "-d", KAGGLE_DATASET, "-p", str(data_dir)]


def _upload(data_dir: Path) -> bool:
    """Colab's upload box; the uploaded zip or CSV is saved into data/. True if one came."""
    from google.colab import files  # Colab only

    uploaded = files.upload()
    for name, content in uploaded.items():
        (data_dir / Path(name).name).write_bytes(content)
    return bool(uploaded)


def prepare(
    *,
    modules: Mapping[str, object] = sys.modules,
    environ: Mapping[str, str] | None = None,
    run: Callable[..., object] = subprocess.run,
    upload: Callable[[Path], bool] = _upload,
    repo: Path = REPO,
    data_dir: Path = DATA_DIR,
    home: Path | None = None,
) -> str | None:
    """On Colab: install the study, fetch FER-2013, set the profile; returns that profile. Elsewhere: None."""
    if not on_colab(modules):
        return None
    environ = os.environ if environ is None else environ
    constraints = repo / ".colab-constraints.txt"
    atomic_write_text(constraints, "\n".join(kept_versions()) + "\n")
    run(install_command(repo, constraints), check=True)
    data_dir.mkdir(parents=True, exist_ok=True)
    if not has_fer2013(environ, data_dir):
        if has_kaggle_token(environ, home):
            print(f"Downloading FER-2013 from Kaggle ({KAGGLE_DATASET}) with your token", flush=True)
            run(kaggle_command(data_dir), check=True)
        else:
            print(
                "No Kaggle token (KAGGLE_USERNAME and KAGGLE_KEY, or ~/.kaggle/kaggle.json): upload FER-2013's zip "
                "(from kaggle.com/datasets/" + KAGGLE_DATASET + "), or cancel for synthetic faces",
                flush=True,
            )
            upload(data_dir)
    profile = "classroom" if has_fer2013(environ, data_dir) else "smoke"
    environ.setdefault(PROFILE_ENV, profile)
    print(f"The study is ready; profile = 'auto' runs {environ[PROFILE_ENV]!r} ({PROFILE_ENV})", flush=True)
    return environ[PROFILE_ENV]


def write_links(url: str | None = None, repo: Path = REPO) -> list[Path]:
    """Rewrite the README's badges and every notebook's first cell for the repository's address; the changed files."""
    url = url or repository_url(repo / "pyproject.toml")
    notebooks = sorted((repo / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    changed = []
    if rewrite_between(repo / "README.md", *README_MARKERS, badges(url, [n.name for n in notebooks])):
        changed.append(repo / "README.md")
    for path in notebooks:
        notebook = json.loads(path.read_text(encoding="utf-8"))
        cell = {"cell_type": "code", "execution_count": None, "id": CELL_TAG, "metadata": {"tags": [CELL_TAG]}}
        cell |= {"outputs": [], "source": setup_cell(url).splitlines(keepends=True)}
        cells = [c for c in notebook["cells"] if CELL_TAG not in c.get("metadata", {}).get("tags", [])]
        first_code = next(i for i, c in enumerate(cells) if c["cell_type"] == "code")
        new = {**notebook, "cells": [*cells[:first_code], cell, *cells[first_code:]]}
        if new != notebook:
            atomic_write_text(path, json.dumps(new, indent=1, ensure_ascii=False) + "\n")
            changed.append(path)
    return changed


if __name__ == "__main__":
    for changed_path in write_links():
        print(f"rewrote {changed_path.relative_to(REPO)}")
