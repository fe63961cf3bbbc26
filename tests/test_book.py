"""fer-study book: a run folder's executed notebooks, REPORT.md and the study's README and docs/ pages as a static site
whose links and figures resolve."""

from __future__ import annotations

import base64
import importlib.util
import io
import os
import re
import sys
from pathlib import Path

import nbformat
import numpy as np
import pytest
from PIL import Image

from fer_helpers.core.colab import repository_url
from fer_helpers.data.fer2013 import SYNTHETIC_STAMP
from fer_helpers.orchestrate.cli import main
from fer_helpers.publish.book import BookError, build_book, heading_id, study_pages

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "book_check.py"


def png() -> bytes:
    out = io.BytesIO()
    Image.fromarray(np.arange(64, dtype=np.uint8).reshape(8, 8)).save(out, format="PNG")
    return out.getvalue()


def run_folder(root: Path, name: str = "smoke-synthetic") -> Path:
    """A run folder as a report run leaves it: two executed notebooks (one with a figure) and reports/REPORT.md."""
    run_dir = root / name
    (run_dir / "executed").mkdir(parents=True)
    first = nbformat.v4.new_notebook()
    first.cells = [
        nbformat.v4.new_markdown_cell("# Data exploration\n\nNext: [the SVM](02_hog_svm.ipynb#The-SVM)."),
        nbformat.v4.new_code_cell("plot()"),
    ]
    first.cells[1].outputs = [
        nbformat.v4.new_output("display_data", data={"image/png": base64.b64encode(png()).decode()})
    ]
    second = nbformat.v4.new_notebook()
    second.cells = [nbformat.v4.new_markdown_cell("# HOG + SVM\n\n## The SVM\n\nSee [the report](REPORT.md).")]
    nbformat.write(first, run_dir / "executed" / "01_data_exploration.ipynb")
    nbformat.write(second, run_dir / "executed" / "02_hog_svm.ipynb")
    (run_dir / "reports" / "figures").mkdir(parents=True)
    (run_dir / "reports" / "figures" / "confusion.png").write_bytes(png())
    (run_dir / "reports" / "REPORT.md").write_text(
        "# Results\n\n| model | accuracy |\n| --- | --- |\n| HOG | 40% |\n\n![Confusion](figures/confusion.png)\n\n"
        "Made by [notebook 01](../executed/01_data_exploration.ipynb).\n",
        encoding="utf-8",
    )
    return run_dir


@pytest.fixture(scope="module")
def book_check():
    spec = importlib.util.spec_from_file_location("book_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop("lab_check", None)


def test_book_pages_links_and_figures_resolve(tmp_path: Path, book_check) -> None:
    run_dir = run_folder(tmp_path)
    before = sorted(path.read_bytes() for path in run_dir.rglob("*") if path.is_file())
    book = build_book(run_dir, docs=[])
    site = run_dir / "book"
    assert book.index == site / "index.html" and book.report == site / "report" / "index.html"
    pages = sorted(site.rglob("*.html"))
    assert len(pages) == 4
    index = book.index.read_text(encoding="utf-8")
    assert SYNTHETIC_STAMP in index and "Data exploration" in index and "HOG + SVM" in index
    report = book.report.read_text(encoding="utf-8")
    assert "<table>" in report and 'src="figures/confusion.png"' in report and SYNTHETIC_STAMP in report
    assert (site / "report" / "figures" / "confusion.png").read_bytes() == png()
    assert 'href="../notebooks/01_data_exploration.html"' in report
    first = (site / "notebooks" / "01_data_exploration.html").read_text(encoding="utf-8")
    assert 'href="02_hog_svm.html#The-SVM"' in first and "data:image/png;base64" in first
    for page in pages:  # every local link of every page resolves, anchors included
        for href in re.findall(r'<a[^>]*\bhref="([^"]+)"', page.read_text(encoding="utf-8")):
            assert book_check.link_problem(page, href, site) is None, (page, href)
    assert book_check.link_problem(site / "index.html", "nowhere.html", site) == "nowhere.html: no such file"
    assert "no #nope" in book_check.link_problem(site / "index.html", "report/index.html#nope", site)
    assert book_check.link_problem(site / "index.html", "../executed/x.ipynb", site).endswith("leaves the site")
    relative = Path(os.path.relpath(site / "notebooks" / "02_hog_svm.html"))  # a page named from the working folder
    assert book_check.link_problem(relative, "#The-SVM", site) is None
    assert "no #Nope" in book_check.link_problem(relative, "#Nope", site)
    assert sorted(path.read_bytes() for path in run_dir.rglob("*") if path.is_file() and site not in path.parents) == (
        before
    )  # the run folder itself is left as it was
    build_book(run_dir, docs=[])  # a second build replaces the first
    assert sorted(site.rglob("*.html")) == pages


def test_a_fer2013_run_has_no_stamp_and_missing_notebooks_are_named(tmp_path: Path, capsys) -> None:
    run_dir = run_folder(tmp_path, "classroom")
    assert SYNTHETIC_STAMP not in build_book(run_dir).index.read_text(encoding="utf-8")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(BookError, match="no executed notebooks; run `fer-study report`"):
        build_book(empty)
    assert main(["book", str(empty)]) == 2
    assert "no executed notebooks" in capsys.readouterr().err
    assert main(["book", str(run_dir)]) == 0
    assert "2 notebook page(s) and the report" in capsys.readouterr().out


def _local_links(page: Path) -> list[str]:
    return re.findall(r'<a[^>]*\bhref="([^"]+)"', page.read_text(encoding="utf-8"))


def test_the_study_pages_link_to_each_other_and_to_the_repository(tmp_path: Path, book_check) -> None:
    repo = tmp_path / "repo"
    (repo / "docs").mkdir(parents=True)
    (repo / "pyproject.toml").write_text('[project.urls]\nRepository = "https://github.com/o/r"\n', encoding="utf-8")
    (repo / "README.md").write_text(
        "# The study\n\nSee [the guide](docs/guide.md#a-section), [the data](data/README.md) and "
        "[below](#without-make).\n\n## Without `make`\n\nText.\n",
        encoding="utf-8",
    )
    (repo / "docs" / "guide.md").write_text(
        "# Guide\n\n## A section\n\nBack to [the README](../README.md#without-make); "
        "[notebook 01](../notebooks/01_data_exploration.ipynb).\n",
        encoding="utf-8",
    )
    run_dir = run_folder(tmp_path)
    book = build_book(run_dir, docs=study_pages(repo), repo=repo)
    site = run_dir / "book"
    assert book.docs == (site / "docs" / "README.html", site / "docs" / "guide.html")
    readme, guide = (page.read_text(encoding="utf-8") for page in book.docs)
    assert 'href="guide.html#a-section"' in readme and 'href="#without-make"' in readme
    assert 'href="https://github.com/o/r/blob/main/data/README.md"' in readme  # not in the site: the repository's
    assert 'href="README.html#without-make"' in guide and 'href="../notebooks/01_data_exploration.html"' in guide
    index = book.index.read_text(encoding="utf-8")
    assert 'href="docs/README.html">The study</a>' in index and 'href="docs/guide.html">Guide</a>' in index
    for page in sorted(site.rglob("*.html")):
        for href in _local_links(page):
            assert book_check.link_problem(page, href, site) is None, (page, href)
    assert heading_id("Short GPU time: a plan, a budget, several runs at once") == (
        "short-gpu-time-a-plan-a-budget-several-runs-at-once"
    )
    assert heading_id("FER+ crowd votes (notebook 08)") == "fer-crowd-votes-notebook-08"  # as GitHub makes them


def test_the_repository_readme_and_docs_become_pages_whose_links_resolve(tmp_path: Path, book_check) -> None:
    """The real README and docs/ pages: each becomes a page, and each of their local links and anchors resolves."""
    book = build_book(run_folder(tmp_path))
    site = tmp_path / "smoke-synthetic" / "book"
    assert [page.stem for page in book.docs] == [source.stem for source in study_pages()]
    assert {"README", "training", "data", "benchmarks"} <= {page.stem for page in book.docs}
    problems = [
        f"{page.name}: {problem}"
        for page in book.docs
        for href in _local_links(page)
        if (problem := book_check.link_problem(page, href, site))
    ]
    assert not problems, problems
    remote = {href for page in book.docs for href in _local_links(page) if href.startswith(repository_url())}
    assert f"{repository_url()}/blob/main/data/README.md" in remote
