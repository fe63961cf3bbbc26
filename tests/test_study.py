"""setup() validates parameters, finds FER-2013 or falls back loudly to synthetic faces, and labels what it saves."""

from __future__ import annotations

import dataclasses

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from fer_helpers.core.paths import PRECISION_ENV, REPO
from fer_helpers.core.profiles import get_profile
from fer_helpers.data.fer2013 import NUM_CLASSES, SPLITS, SYNTHETIC_STAMP, FERDataError
from fer_helpers.data.synthetic import make_synthetic_fer
from fer_helpers.orchestrate.study import SYNTHETIC_LABEL, default_run_dir, setup, synthetic_sizes

# A small profile (smoke's name, smaller caps) keeps the synthetic faces quick to generate.
TINY = get_profile("smoke", train_per_class=10, eval_per_class=5)


@pytest.fixture(scope="module")
def fer_csv_frame() -> pd.DataFrame:
    """Rows in the original fer2013.csv form: 3 synthetic faces per class and split."""
    faces = make_synthetic_fer(n_train=700, n_public=700, n_private=700, seed=1, imbalance=False)
    rows = []
    for split in SPLITS:
        for label in range(NUM_CLASSES):
            for i in np.flatnonzero((faces.usage == split) & (faces.labels == label))[:3]:
                rows.append({"emotion": label, "pixels": " ".join(map(str, faces.images[i].ravel())), "Usage": split})
    return pd.DataFrame(rows)


@pytest.fixture
def fer_csv(fer_csv_frame, tmp_path, monkeypatch):
    """A tiny fer2013.csv with its own parse cache."""
    monkeypatch.setenv("FER_CACHE_DIR", str(tmp_path / "cache"))
    path = tmp_path / "fer2013.csv"
    fer_csv_frame.to_csv(path, index=False)
    return path


@pytest.fixture
def synthetic_study(no_fer, tmp_path):
    return setup(TINY, run_dir=tmp_path / "run")


def test_setup_falls_back_to_synthetic_faces_loudly(no_fer, capsys):
    study = setup(TINY)
    assert study.synthetic and study.data.form == "synthetic"
    assert "SYNTHETIC FACES - NOT FER-2013 RESULTS" in capsys.readouterr().err
    # Sizes are scaled so that even Disgust fills the profile's caps.
    counts = study.data.counts()
    assert (counts["Training"] == 10).all() and (counts[["PublicTest", "PrivateTest"]] == 5).all().all()
    assert len(study.full_data) == sum(synthetic_sizes(TINY)) > len(study.data)
    assert study.run_dir == REPO / "runs" / "smoke-synthetic"
    assert study.reports_dir == study.run_dir / "reports"


def test_in_a_notebook_the_synthetic_warning_is_the_banner_alone(no_fer, capsys, monkeypatch):
    from fer_helpers.orchestrate import study as study_module

    monkeypatch.setattr(study_module, "in_notebook", lambda: True)
    study = setup(TINY)
    out, err = capsys.readouterr()
    assert "SYNTHETIC FACES" not in err and "synthetic faces" in out.splitlines()[0]
    assert "SYNTHETIC FACES - NOT FER-2013 RESULTS" in study.banner  # shown once, by the notebook


def test_synthetic_sizes_fill_caps_and_never_exceed_fer2013():
    assert synthetic_sizes(get_profile("smoke")) == (3951, 1282, 1306)
    assert synthetic_sizes(get_profile("full")) == (28709, 3589, 3589)
    assert synthetic_sizes(get_profile("classroom")) == (28709, 3589, 3589)


@pytest.mark.parametrize(
    "kwargs, error",
    [
        ({"profile": "huge"}, ValueError),
        ({"profile": 3}, TypeError),
        ({"profile": "smoke", "data_path": 5}, TypeError),
        ({"profile": "smoke", "run_dir": ["runs"]}, TypeError),
        ({"profile": "smoke", "fresh": "yes"}, TypeError),
        ({"profile": "smoke", "fresh": 1}, TypeError),
        ({"profile": "smoke", "train": None}, TypeError),
        ({"profile": "smoke", "ferplus_path": 3}, TypeError),
        ({"profile": "smoke", "n_images": 6}, ValueError),
        ({"profile": "smoke", "n_images": 70.0}, ValueError),
        ({"profile": "smoke", "n_images": True}, ValueError),
    ],
)
def test_setup_rejects_bad_parameters(kwargs, error, no_fer):
    with pytest.raises(error, match=list(kwargs)[-1] if len(kwargs) > 1 else None):
        setup(**kwargs)


def test_setup_rejects_a_mistyped_precision_before_reading_data(no_fer, monkeypatch):
    monkeypatch.setenv(PRECISION_ENV, "fp32")
    with pytest.raises(ValueError, match=f"{PRECISION_ENV}='fp32'"):
        setup("smoke")


def test_setup_accepts_every_notebooks_parameters(no_fer, tmp_path):
    study = setup("smoke", "synthetic", tmp_path, True, train=False, ferplus_path=str(tmp_path), n_images=7)
    assert study.profile.name == "smoke" and study.run_dir == tmp_path


def test_broken_paths_are_errors_not_a_synthetic_fallback(no_fer, tmp_path, monkeypatch):
    with pytest.raises(FERDataError, match="missing.zip"):
        setup(TINY, data_path=tmp_path / "missing.zip")
    monkeypatch.setenv("FER2013_PATH", str(tmp_path / "elsewhere.zip"))
    with pytest.raises(FERDataError, match="FER2013_PATH"):
        setup(TINY)


def test_reports_dir_only_full_fer2013_writes_the_committed_reports(fer_csv, tmp_path):
    full = setup("full", data_path=fer_csv, run_dir=tmp_path / "run")
    assert not full.synthetic and full.data.form == "fer2013-csv"
    assert full.reports_dir == REPO / "reports"
    smoke = setup("smoke", data_path=str(fer_csv))
    assert smoke.run_dir == REPO / "runs" / "smoke"
    assert smoke.reports_dir == smoke.run_dir / "reports"
    assert REPO / "reports" not in smoke.figures_dir.parents


def test_setup_reads_fer2013_path_and_data_folder(fer_csv, monkeypatch, tmp_path):
    monkeypatch.setenv("FER2013_PATH", str(fer_csv))
    assert setup(TINY).data.source == str(fer_csv)
    monkeypatch.delenv("FER2013_PATH")
    from fer_helpers.core import paths

    monkeypatch.setattr(paths, "DATA_DIR", fer_csv.parent)
    study = setup(TINY, run_dir=tmp_path / "run")
    assert not study.synthetic and study.data.source == str(fer_csv)


def test_default_run_dirs():
    assert default_run_dir("full", synthetic=False) == REPO / "runs" / "full"
    assert default_run_dir("classroom", synthetic=True) == REPO / "runs" / "classroom-synthetic"


def _texts(fig) -> dict[str, str]:
    return {text.get_gid(): text.get_text() for text in fig.texts if text.get_gid()}


def test_synthetic_figures_are_stamped_once(synthetic_study):
    fig, ax = plt.subplots()
    ax.plot([0, 1], [0, 1])
    assert synthetic_study.stamp(fig) is fig
    path = synthetic_study.save_figure(fig, "line")
    synthetic_study.save_figure(fig, "line.png")
    plt.close(fig)
    assert path == synthetic_study.run_dir / "reports" / "figures" / "line.png" and path.stat().st_size > 0
    assert _texts(fig) == {"synthetic-stamp": SYNTHETIC_STAMP, "profile-note": "profile: smoke"}
    assert sum(text.get_gid() == "synthetic-stamp" for text in fig.texts) == 1


def test_full_fer2013_figures_are_not_stamped(fer_csv, tmp_path):
    study = setup("full", data_path=fer_csv)
    study = dataclasses.replace(study, reports_dir=tmp_path / "reports")  # keep the committed reports/ untouched
    fig, _ = plt.subplots()
    assert study.save_figure(fig, "empty").exists()
    plt.close(fig)
    assert _texts(fig) == {}


def test_synthetic_tables_say_so(synthetic_study):
    df = pd.DataFrame({"accuracy": [0.5, 0.25]}, index=pd.Index(["hog_svm", "baseline_cnn"], name="model"))
    shown = synthetic_study.save_table(df, "scores")
    assert list(df.columns) == ["accuracy"]  # the caller's table is not changed
    assert (shown["data"] == SYNTHETIC_LABEL).all()
    csv = pd.read_csv(synthetic_study.tables_dir / "scores.csv")
    assert list(csv.columns) == ["model", "accuracy", "data"] and csv["accuracy"].tolist() == [0.5, 0.25]
    markdown = (synthetic_study.tables_dir / "scores.md").read_text().splitlines()
    assert SYNTHETIC_STAMP in markdown[0] and "profile: smoke" in markdown[0]
    assert markdown[2] == "| model | accuracy | data |"
    assert markdown[4] == f"| hog_svm | 0.500 | {SYNTHETIC_LABEL} |"  # as REPORT.md prints numbers


def test_fer2013_tables_are_plain(fer_csv, tmp_path):
    study = setup("smoke", data_path=fer_csv, run_dir=tmp_path / "run")
    shown = study.save_table(pd.DataFrame({"n": [1, 2]}), "plain")
    assert list(shown.columns) == ["n"]
    assert pd.read_csv(study.tables_dir / "plain.csv").columns.tolist() == ["n"]
    assert SYNTHETIC_STAMP not in (study.tables_dir / "plain.md").read_text()


def test_banner_names_data_checksum_profile(synthetic_study, fer_csv, tmp_path):
    banner = synthetic_study.banner
    assert SYNTHETIC_STAMP in banner and synthetic_study.data.sha256[:16] in banner and "`smoke`" in banner
    real = setup("smoke", data_path=fer_csv, run_dir=tmp_path / "run").banner
    assert SYNTHETIC_STAMP not in real and "fer2013-csv" in real


def test_synthetic_can_be_asked_for_even_where_fer2013_is_present(fer_csv, monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("FER2013_PATH", str(fer_csv))
    study = setup(TINY, data_path="synthetic", run_dir=tmp_path / "run")
    assert study.synthetic and study.data.form == "synthetic"
    assert "asked for" in capsys.readouterr().err
