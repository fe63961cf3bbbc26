"""Check a site that `fer-study book` built, in headless Chromium: every page loads, every figure shows, no broken link.

    .venv/bin/python scripts/book_check.py runs/smoke-synthetic          # the run folder (its book/) or the site

Every HTML page under the site is opened from disk (file://). A page fails when it does not finish loading, when an
<img> has no pixels (naturalWidth 0: a missing or broken figure), or when a local link (href or src, relative) names
a file that is not there or an #anchor that the target page does not have. Links to other sites are counted, not
followed (the check runs offline). Writes <site>/../book-check.json; the exit status is 1 when anything failed.
Chromium, chromedriver and selenium come as for scripts/lab_check.py (installed when absent).
"""

from __future__ import annotations

import argparse
import html
import json
import re
import sys
import time
from pathlib import Path
from urllib.parse import unquote, urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent))
from lab_check import ensure_chromium, ensure_selenium, headless_chromium  # noqa: E402

PAGE_TIMEOUT_S = 60
_PAGE_FACTS = """
return {
  ready: document.readyState,
  images: Array.from(document.images).map(i => [i.getAttribute('src') || '', i.complete, i.naturalWidth]),
  links: Array.from(document.querySelectorAll('a[href]')).map(a => a.getAttribute('href')),
};
"""


def anchors_of(page: Path) -> set[str]:
    """The ids and names an HTML page defines (the targets of #anchor links)."""
    text = page.read_text(encoding="utf-8", errors="replace")
    return {html.unescape(anchor) for anchor in re.findall(r'\b(?:id|name)="([^"]+)"', text)}


def link_problem(page: Path, href: str, site: Path) -> str | None:
    """Why a local link from page does not resolve inside the site, or None (links to other sites: None)."""
    parts = urlsplit(href)
    if parts.scheme or parts.netloc or href.startswith(("mailto:", "javascript:", "data:")):
        return None
    target = (page if not parts.path else page.parent / unquote(parts.path)).resolve()
    if not target.is_relative_to(site.resolve()):
        return f"{href}: leaves the site"
    if target.is_dir():
        target = target / "index.html"
    if not target.is_file():
        return f"{href}: no such file"
    anchors = anchors_of(target) if parts.fragment and target.suffix == ".html" else set()
    if parts.fragment and not {parts.fragment, unquote(parts.fragment)} & anchors:  # browsers try both
        return f"{href}: no #{parts.fragment} in {target.name}"
    return None


def check_page(driver, page: Path, site: Path) -> dict:
    """Open one page and judge it: loaded, its images drawn, its local links resolved."""
    started = time.monotonic()
    driver.get(page.resolve().as_uri())
    while (facts := driver.execute_script(_PAGE_FACTS))["ready"] != "complete":
        if time.monotonic() - started > PAGE_TIMEOUT_S:
            break
        time.sleep(0.2)
    problems = [] if facts["ready"] == "complete" else [f"did not finish loading in {PAGE_TIMEOUT_S} s"]
    for src, complete, width in facts["images"]:
        if not complete or width == 0:
            problems.append(f"image {src[:80]!r} shows nothing (naturalWidth {width})")
    external = 0
    for href in facts["links"]:
        if urlsplit(href).scheme in ("http", "https"):
            external += 1
        elif problem := link_problem(page, href, site):
            problems.append(f"link {problem}")
    return {
        "page": page.relative_to(site).as_posix(),
        "seconds": round(time.monotonic() - started, 2),
        "images": len(facts["images"]),
        "local_links": len(facts["links"]) - external,
        "external_links": external,
        "problems": problems,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("site", help="a run folder with book/ in it, or the site's folder")
    args = parser.parse_args(argv)
    site = Path(args.site)
    site = site / "book" if (site / "book" / "index.html").is_file() else site
    pages = sorted(site.rglob("*.html"))
    if not (site / "index.html").is_file():
        print(f"{site}: no index.html; build the site with `fer-study book RUN_DIR` first", file=sys.stderr)
        return 2
    chromium, chromedriver = ensure_chromium()
    ensure_selenium()
    log = site.parent / "book-check-chromium.log"
    with headless_chromium(chromium, chromedriver, site.parent / ".book-check-profile", log) as driver:
        results = [check_page(driver, page, site) for page in pages]
    failed = [result for result in results if result["problems"]]
    summary = {"site": str(site), "pages": len(results), "failed": len(failed), "results": results}
    (site.parent / "book-check.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    for result in results:
        verdict = "FAIL" if result["problems"] else "ok"
        print(
            f"{verdict:4} {result['page']}: {result['images']} image(s), {result['local_links']} local and "
            f"{result['external_links']} external link(s), {result['seconds']} s"
        )
        for problem in result["problems"]:
            print(f"     {problem}")
    print(f"{len(results) - len(failed)} of {len(results)} pages passed; details in {site.parent / 'book-check.json'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
