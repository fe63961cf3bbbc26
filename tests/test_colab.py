"""The notebooks' first cell on Google Colab, with Colab faked (no Colab here): nothing happens elsewhere; on Colab
the study is installed beside Colab's torch, FER-2013 comes from Kaggle with the user's token or an upload, and
the profile is set."""

from __future__ import annotations

import subprocess
import sys

import pytest

from fer_helpers.core import colab
from fer_helpers.core.paths import PROFILE_ENV, REPO


@pytest.fixture
def checkout(tmp_path):
    (tmp_path / "data").mkdir()
    return tmp_path


def _prepare(checkout, environ, uploaded=None, home=None):
    commands = []

    def upload(data_dir):
        if uploaded:
            (data_dir / uploaded).write_bytes(b"zip")
        return bool(uploaded)

    profile = colab.prepare(
        modules={"google.colab": object()},
        environ=environ,
        run=lambda command, check: commands.append(command),
        upload=upload,
        repo=checkout,
        data_dir=checkout / "data",
        home=home or checkout,
    )
    return profile, commands


def test_nothing_happens_outside_colab(checkout):
    environ = {}
    assert colab.prepare(modules={}, environ=environ, run=pytest.fail, upload=pytest.fail, repo=checkout) is None
    assert environ == {} and not (checkout / ".colab-constraints.txt").exists()


def test_colab_installs_beside_its_own_torch_and_downloads_with_a_kaggle_token(checkout):
    environ = {"KAGGLE_USERNAME": "student", "KAGGLE_KEY": "secret"}
    profile, commands = _prepare(checkout, environ)
    install, download = commands
    assert install[1:4] == ["-m", "pip", "install"] and install[-2:] == ["-e", str(checkout)]
    constraints = (checkout / ".colab-constraints.txt").read_text(encoding="utf-8").split()
    assert any(c.startswith("torch==") for c in constraints)  # the installed torch is held where it is
    assert download[:4] == ["kaggle", "datasets", "download", "-d"] and download[-1] == str(checkout / "data")
    assert profile == environ[PROFILE_ENV] == "smoke"  # the fake download wrote nothing: synthetic faces


def test_without_a_token_the_zip_is_uploaded_and_the_lesson_chosen(checkout):
    environ = {}
    profile, commands = _prepare(checkout, environ, uploaded="fer2013.zip")
    assert len(commands) == 1 and profile == environ[PROFILE_ENV] == "classroom"


def test_a_token_file_counts_and_data_already_there_is_not_fetched(checkout, tmp_path):
    (tmp_path / ".kaggle").mkdir()
    (tmp_path / ".kaggle" / "kaggle.json").write_text("{}", encoding="utf-8")
    assert colab.has_kaggle_token({}, tmp_path) and not colab.has_kaggle_token({}, tmp_path / "nobody")
    (checkout / "data" / "fer2013.csv").write_text("emotion,pixels,Usage\n", encoding="utf-8")
    profile, commands = _prepare(checkout, {PROFILE_ENV: "smoke"}, home=tmp_path)
    assert len(commands) == 1 and profile == "smoke"  # installed, nothing fetched, the teacher's choice kept


def test_auto_runs_the_profile_colab_set(monkeypatch):
    from fer_helpers.orchestrate.study import resolve_profile

    monkeypatch.setenv(PROFILE_ENV, "smoke")
    assert resolve_profile("auto", None)[0] == "smoke" and resolve_profile("full")[0] == "full"


def test_the_cell_and_badges_come_from_one_address(tmp_path):
    url = colab.repository_url()
    assert url == colab.repository_url(REPO / "pyproject.toml") and url.startswith("https://github.com/")
    cell = colab.setup_cell(url)
    assert f'"{url}"' in cell and len(cell.splitlines()) <= 12
    compile(cell, "<colab cell>", "exec")  # the notebooks' ruff check lints it as it stands in each notebook
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    notebooks = sorted(p.name for p in (REPO / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    assert colab.badges(url, notebooks) in readme
    assert colab.colab_link(url, "01_x.ipynb").endswith("/blob/main/notebooks/01_x.ipynb")


def test_the_cell_does_nothing_here_and_imports_nothing_heavy():
    code = (
        colab.setup_cell("https://github.com/OWNER/REPOSITORY")
        + "\nprint(sorted(m for m in sys.modules if m in ('torch', 'numpy', 'fer_helpers')))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, encoding="utf-8", timeout=60)
    assert result.returncode == 0 and result.stdout.strip() == "[]", result.stderr
    probe = (
        "import sys, fer_helpers.core.colab; print(sorted(m for m in ('torch', 'numpy', 'pandas') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert result.stdout.strip() == "[]", result.stderr
