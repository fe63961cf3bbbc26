"""The package's layers: every module imports only modules of its own layer or of the layers before it."""

from __future__ import annotations

import ast
import re
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "fer_helpers"

# The README's Layout table, in the same order.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("files", "markdown", "profiles", "config", "progress"),
    ("data", "results", "migrate", "synthetic", "features"),
    ("statistics", "metrics", "ferplus"),
    ("models", "recipes", "registry"),
    ("inference", "exported", "weights", "speed", "classical", "training", "plan", "bundle"),
    ("claims", "explain", "cost", "plots"),
    (
        "study",
        "ship",
        "steps",
        "summary",
        "predict",
        "report",
        "readme",
        "lesson",
        "schedule",
        "campaign",
        "runner",
        "cli",
    ),
)


def _imports(path: Path) -> set[str]:
    """The package's modules that a module imports, at its top or inside a function."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if not isinstance(node, ast.ImportFrom):
            continue
        module = node.module or ""
        if node.level == 1:
            found |= {module.split(".")[0]} if module else {alias.name for alias in node.names}
        elif module == "fer_helpers":
            found |= {alias.name for alias in node.names}
        elif module.startswith("fer_helpers."):
            found.add(module.split(".")[1])
    return found - {path.stem}


def test_every_module_has_a_layer():
    modules = {p.stem for p in PACKAGE.glob("*.py")} - {"__init__", "__main__"}
    layered = [m for layer in LAYERS for m in layer]
    assert len(layered) == len(set(layered)), "a module is in two layers"
    assert modules == set(layered), f"without a layer: {modules - set(layered)}; gone: {set(layered) - modules}"


def test_imports_point_down_the_layers():
    level = {module: i for i, layer in enumerate(LAYERS) for module in layer}
    upward = [
        f"{module} imports {target}"
        for module in level
        for target in sorted(_imports(PACKAGE / f"{module}.py"))
        if level[target] > level[module]
    ]
    assert not upward, "imports that point up the layers: " + "; ".join(upward)


def test_the_readme_shows_the_same_layers():
    readme = (PACKAGE.parent / "README.md").read_text()
    layout = readme.split("## Layout", 1)[1].split("\n## ", 1)[0]
    rows = [line.split("|")[2] for line in layout.splitlines() if line.startswith("| ") and "`" in line]
    assert [tuple(re.findall(r"`(\w+)`", row)) for row in rows] == list(LAYERS)
