"""A run folder as a static site: its executed notebooks, its REPORT.md and the study's README and docs/ pages as
HTML pages, with an index.

`build_book` reads ``<run_dir>/executed/*.ipynb`` (what a report run executed) and the REPORT.md the run wrote,
and writes ``<run_dir>/book/``: ``index.html``, one page per notebook (nbconvert's lab template, figures embedded),
``report/index.html`` beside a copy of the report's figures and tables, and ``docs/<name>.html`` for README.md and
each page under docs/. Links between notebooks (``.ipynb``), to REPORT.md and between the README and docs/ pages
point at their pages; a docs page's link to any other file of the repository points at it in the public
repository (pyproject.toml's address), since the site carries no copy of it. The site is built where the run is, inside the ignored run folder: the
figures of a FER-2013 run show single faces of FER-2013, which are never committed or published.
"""

from __future__ import annotations

import html
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from fer_helpers.core import paths
from fer_helpers.core.colab import repository_url
from fer_helpers.core.files import atomic_write_text, relative_link
from fer_helpers.data.fer2013 import SYNTHETIC_STAMP

BOOK_DIR = "book"  # the site's folder inside a run folder
REPORT_NAME = "REPORT.md"
_LINK = re.compile(r'(href|src)="([^"#?:]+?)(\.ipynb|\.md)(#[^"]*)?"')
_STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;line-height:1.5}"
    "img{max-width:100%}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.2rem .5rem}"
    ".stamp{background:#fee;border:2px solid #c00;padding:.5rem;font-weight:bold}"
)


class BookError(ValueError):
    """A run folder that cannot become a site; the message says what is missing and how to make it."""


@dataclass(frozen=True)
class Book:
    """What build_book wrote: the index page, the notebook pages and the report page (None: no REPORT.md)."""

    index: Path
    notebooks: tuple[Path, ...]
    report: Path | None
    docs: tuple[Path, ...] = ()


def study_pages(repo: Path | None = None) -> list[Path]:
    """The study's own pages a site carries: README.md, then each Markdown page under docs/."""
    repo = repo or paths.REPO
    return [repo / "README.md", *sorted((repo / "docs").glob("*.md"))]


def find_report(run_dir: Path) -> Path | None:
    """The REPORT.md a run wrote: in the run folder's reports/, or the repository's for runs/full (None: none)."""
    places = [run_dir / "reports" / REPORT_NAME, run_dir / REPORT_NAME]
    if run_dir.resolve() == (paths.REPO / "runs" / "full").resolve():
        places.append(paths.REPO / "reports" / REPORT_NAME)
    return next((path for path in places if path.is_file()), None)


def build_book(
    run_dir: str | Path,
    report: str | Path | None = None,
    docs: list[Path] | None = None,
    repo: Path | None = None,
) -> Book:
    """Write <run_dir>/book/ from the run's executed notebooks, its REPORT.md (or the one given) and the study's
    pages (docs: Markdown files of the repository at repo; by default `study_pages`); returns it."""
    from nbconvert import HTMLExporter

    run_dir = Path(run_dir)
    notebooks = sorted((run_dir / "executed").glob("*.ipynb"))
    if not notebooks:
        raise BookError(
            f"{run_dir / 'executed'}: no executed notebooks; run `fer-study report` (with --run-dir {run_dir}) first"
        )
    report_md = Path(report) if report is not None else find_report(run_dir)
    if report_md is not None and not report_md.is_file():
        raise BookError(f"{report_md}: no such report")
    site = run_dir / BOOK_DIR
    if site.exists():
        shutil.rmtree(site)
    pages = {path.stem: site / "notebooks" / f"{path.stem}.html" for path in notebooks}
    exporter = HTMLExporter(template_name="lab", embed_images=True)
    titles = {}
    for path in notebooks:
        body, _ = exporter.from_filename(str(path))
        titles[path.stem] = _title(body) or path.stem
        atomic_write_text(pages[path.stem], _relink(body, pages, site, pages[path.stem]))
    report_page = None
    if report_md is not None:
        report_page = site / "report" / "index.html"
        _copy_report_files(report_md.parent, report_page.parent)
        body = _markdown(report_md.read_text(encoding="utf-8"))
        atomic_write_text(report_page, _page("Report", _relink(body, pages, site, report_page), _stamp(run_dir)))
    repo = repo or paths.REPO
    sources = study_pages(repo) if docs is None else list(docs)
    doc_pages = {source.resolve(): site / "docs" / f"{source.stem}.html" for source in sources}
    targets = {**doc_pages, **({report_md.resolve(): report_page} if report_page is not None else {})}
    doc_titles = {}
    for source, page in zip(sources, doc_pages.values()):
        body = _markdown(source.read_text(encoding="utf-8"))
        doc_titles[page] = _title(body) or source.stem
        body = _relink_doc(body, source, repo, targets, pages, page)
        atomic_write_text(page, _page(doc_titles[page], body, _stamp(run_dir), heading=False))
    index = site / "index.html"
    body = _index_body(titles, report_page, doc_titles, site)
    atomic_write_text(index, _page(f"The study: {run_dir.name}", body, _stamp(run_dir)))
    return Book(index=index, notebooks=tuple(pages.values()), report=report_page, docs=tuple(doc_pages.values()))


def _title(body: str) -> str | None:
    """The first heading of a page, as text."""
    found = re.search(r"<h1[^>]*>(.*?)</h1>", body, re.S)
    return html.unescape(re.sub(r"<[^>]+>", "", found.group(1))).replace("¶", "").strip() if found else None


def _relink(body: str, pages: dict[str, Path], site: Path, page: Path) -> str:
    """Links to notebooks (.ipynb) and to REPORT.md turned into links to their pages, relative to page."""

    def target(match: re.Match) -> str:
        attribute, stem, suffix, anchor = match.group(1), Path(match.group(2)).name, match.group(3), match.group(4)
        if suffix == ".ipynb" and stem in pages:
            destination = pages[stem]
        elif suffix == ".md" and stem == Path(REPORT_NAME).stem:
            destination = site / "report" / "index.html"
        else:
            return match.group(0)
        return f'{attribute}="{relative_link(destination, page.parent)}{anchor or ""}"'

    return _LINK.sub(target, body)


def _relink_doc(
    body: str, source: Path, repo: Path, targets: dict[Path, Path], notebooks: dict[str, Path], page: Path
) -> str:
    """A docs page's relative links: to a page of the site where the file has one (targets: source file to page;
    notebooks: executed notebooks by name), else to the file in the public repository."""

    def target(match: re.Match) -> str:
        attribute, link = match.group(1), html.unescape(match.group(2))
        path, _, anchor = link.partition("#")
        if not path or re.match(r"[a-z][a-z0-9+.-]*:", path):
            return match.group(0)  # an anchor of the page itself, or another site
        file = (source.parent / path).resolve()
        anchor = f"#{anchor}" if anchor else ""
        if file in targets:
            destination = relative_link(targets[file], page.parent) + anchor
        elif file.suffix == ".ipynb" and file.stem in notebooks:
            destination = relative_link(notebooks[file.stem], page.parent) + anchor
        elif file.is_relative_to(repo.resolve()):
            destination = f"{repository_url(repo / 'pyproject.toml')}/blob/main/{file.relative_to(repo.resolve()).as_posix()}{anchor}"
        else:
            raise BookError(f"{source}: the link {link} leaves the repository")
        return f'{attribute}="{html.escape(destination)}"'

    return re.sub(r'(href|src)="([^"]*)"', target, body)


def _copy_report_files(source: Path, dest: Path) -> None:
    """The report's figures and tables (every file under its folder but Markdown) beside its page."""
    for path in source.rglob("*"):
        if path.is_file() and path.suffix.lower() != ".md":
            (dest / path.relative_to(source)).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, dest / path.relative_to(source))


def heading_id(text: str) -> str:
    """A heading's anchor as GitHub makes it: its text in lower case, without punctuation, spaces as hyphens."""
    text = html.unescape(re.sub(r"<[^>]+>", "", text)).strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def _markdown(text: str) -> str:
    """Markdown as HTML (mistune, which nbconvert uses), with tables and GitHub's anchors on the headings."""
    import mistune

    class Renderer(mistune.HTMLRenderer):
        def __init__(self) -> None:
            super().__init__(escape=False)
            self.seen: dict[str, int] = {}

        def heading(self, text: str, level: int, **attrs) -> str:
            anchor = heading_id(text)
            count, self.seen[anchor] = self.seen.get(anchor, 0), self.seen.get(anchor, 0) + 1
            anchor = f"{anchor}-{count}" if count else anchor  # GitHub numbers a repeated heading's anchor
            return f'<h{level} id="{html.escape(anchor)}">{text}</h{level}>\n'

    return mistune.create_markdown(renderer=Renderer(), plugins=["table", "strikethrough"])(text)


def _stamp(run_dir: Path) -> str:
    """The synthetic-faces banner for a run on the synthetic faces (its folder ends in -synthetic), else nothing."""
    return f'<p class="stamp">{SYNTHETIC_STAMP}</p>' if run_dir.name.endswith("-synthetic") else ""


def _index_body(titles: dict[str, str], report_page: Path | None, doc_titles: dict[Path, str], site: Path) -> str:
    items = [
        f'<li><a href="notebooks/{html.escape(stem)}.html">{html.escape(stem)}</a>: {html.escape(title)}</li>'
        for stem, title in titles.items()
    ]
    report = '<p><a href="report/index.html">The report (REPORT.md)</a></p>' if report_page is not None else ""
    docs = [
        f'<li><a href="{html.escape(relative_link(page, site))}">{html.escape(title)}</a></li>'
        for page, title in doc_titles.items()
    ]
    about = f"<h2>The study: README and guides</h2><ul>{''.join(docs)}</ul>" if docs else ""
    return f"{report}<h2>Notebooks, as executed</h2><ul>{''.join(items)}</ul>{about}"


def _page(title: str, body: str, stamp: str, heading: bool = True) -> str:
    """An HTML page; heading=False where the body opens with its own title."""
    title_html = f"<h1>{html.escape(title)}</h1>" if heading else ""
    return (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        f"<style>{_STYLE}</style></head><body>{stamp}{title_html}{body}</body></html>\n"
    )
