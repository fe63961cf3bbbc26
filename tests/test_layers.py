"""The package's layers: one folder each, in order; a module imports only modules of its own layer or of the layers
before it, and the README's Layout table shows the same folders and modules."""

from __future__ import annotations

import ast
import re
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "fer_helpers"

# The README's Layout table, in the same order: each layer's folder and its modules.
LAYERS: dict[str, tuple[str, ...]] = {
    "core": ("files", "boxes", "paths", "markdown", "profiles", "config", "hardware", "progress", "paper", "colab"),
    "data": ("classes", "fer2013", "results", "migrate", "synthetic", "features", "ferplus", "ferplus_join"),
    "scoring": ("statistics", "metrics", "runs", "label_noise"),
    "models": ("networks", "recipes", "registry"),
    "train": (
        "inference",
        "exported",
        "weights",
        "speed",
        "augment",
        "classical",
        "training",
        "distill",
        "plan",
        "bundle",
    ),
    "analysis": ("claims", "ablation", "explain", "cost", "fer_package", "tta", "robustness", "plots"),
    "publish": ("summary", "report", "evaluation", "readme", "ship", "lesson", "predict", "wild", "book"),
    "orchestrate": ("study", "steps", "estimate", "schedule", "campaign", "runner", "cli"),
}


def _imports(path: Path) -> set[str]:
    """The layers a module imports from (at its top or inside a function), as "layer.module" or "layer"."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path.name}: relative import (the package imports absolutely)"
            parts = (node.module or "").split(".")
            if parts[0] == "fer_helpers" and len(parts) > 1:
                found.add(parts[1])
        elif isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] == "fer_helpers" and len(parts) > 1:
                    found.add(parts[1])
    return found


def test_every_module_has_a_layer():
    found = {(p.parent.name, p.stem) for p in PACKAGE.glob("*/*.py") if p.stem != "__init__"}
    layered = {(layer, module) for layer, modules in LAYERS.items() for module in modules}
    assert found == layered, f"without a layer: {found - layered}; gone: {layered - found}"
    assert {p.name for p in PACKAGE.glob("*.py")} == {"__init__.py", "__main__.py"}, "a module outside the layers"


def test_imports_point_down_the_layers():
    order = {layer: i for i, layer in enumerate(LAYERS)}
    upward = [
        f"{layer}/{module} imports from {target}"
        for layer, modules in LAYERS.items()
        for module in modules
        for target in sorted(_imports(PACKAGE / layer / f"{module}.py"))
        if order[target] > order[layer]
    ]
    assert not upward, "imports that point up the layers: " + "; ".join(upward)


def test_the_readme_shows_the_same_layers():
    readme = (PACKAGE.parent / "README.md").read_text(encoding="utf-8")
    layout = readme.split("## Layout", 1)[1].split("\n## ", 1)[0]
    rows = [line.split("|")[1:3] for line in layout.splitlines() if line.startswith("| `")]
    shown = {re.findall(r"`(\w+)`", layer)[0]: tuple(re.findall(r"`(\w+)`", modules)) for layer, modules in rows}
    assert list(shown.items()) == list(LAYERS.items())
