"""Every name a docstring of the package writes in backticks exists: a reader who follows `registry.label` or
`fit_cnn` finds it, and a rename that leaves a docstring behind fails here."""

from __future__ import annotations

import ast
import builtins
import importlib
import inspect
import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "fer_helpers"
MODULES = sorted(p for p in PACKAGE.glob("*/*.py") if p.stem != "__init__")
# A Python name, dotted or called: `fit_cnn`, `registry.label`, `CNNConfig.experiment()`. Anything else in backticks
# (commands, file names, values, expressions) is left alone.
NAME = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*(\(\))?$")
FILE_SUFFIXES = ("py", "json", "zip", "csv", "md", "ipynb", "npz", "safetensors", "onnx", "ckpt", "txt", "sh", "yml")
# Names of other projects a docstring may point at: Lightning's Trainer, SLURM's srun.
EXTERNAL = {"Trainer", "srun"}


def _module_names() -> dict[str, object]:
    """Every module of the package by its short name, and every layer by its folder name."""
    names = {"fer_helpers": importlib.import_module("fer_helpers")}
    for path in MODULES:
        dotted = f"fer_helpers.{path.parent.name}.{path.stem}"
        names[path.stem] = importlib.import_module(dotted)
        names[path.parent.name] = importlib.import_module(f"fer_helpers.{path.parent.name}")
    return names


def _attribute_names(modules: dict[str, object]) -> set[str]:
    """Names of the package's classes' fields, methods and properties: a docstring may name a field alone."""
    names = set()
    for module in modules.values():
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if cls.__module__.startswith("fer_helpers"):
                names |= set(vars(cls)) | set(getattr(cls, "__annotations__", {}))
    return names


def _docstrings(tree: ast.Module):
    """(docstring, names local to where it stands: a function's parameters and locals, a class's attributes)."""
    yield ast.get_docstring(tree) or "", set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            local = {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}
            local |= {a.arg for n in ast.walk(node) if isinstance(n, ast.arguments) for a in [*n.args, *n.kwonlyargs]}
            local |= {n.attr for n in ast.walk(node) if isinstance(n, ast.Attribute)}
            local |= {k.arg for n in ast.walk(node) if isinstance(n, ast.Call) for k in n.keywords if k.arg}
            yield ast.get_docstring(node) or "", local


def _resolves(name: str, namespace: dict, local: set[str], modules: dict, attributes: set[str]) -> bool:
    first, *rest = name.removesuffix("()").split(".")
    if first in namespace:
        target = namespace[first]
    elif first in modules:
        target = modules[first]
    elif hasattr(builtins, first):
        target = getattr(builtins, first)
    else:
        return (first in local or first in attributes) and not rest or first in local
    for part in rest:
        if not hasattr(target, part):
            # a dataclass field without a default is not a class attribute, but it is an annotation
            if part in getattr(target, "__annotations__", {}) or part in getattr(target, "__dataclass_fields__", {}):
                return True
            return False
        target = getattr(target, part)
    return True


@pytest.mark.parametrize("path", MODULES, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_backticked_names_in_docstrings_exist(path):
    modules = _module_names()
    attributes = _attribute_names(modules)
    module = importlib.import_module(f"fer_helpers.{path.parent.name}.{path.stem}")
    namespace = vars(module)
    tree = ast.parse(path.read_text(encoding="utf-8"))
    missing = []
    for text, local in _docstrings(tree):
        for token in re.findall(r"(?<!`)`([^`\n]+)`(?!`)", text):
            if token.rsplit(".", 1)[-1] in FILE_SUFFIXES or token in EXTERNAL:
                continue
            if NAME.match(token) and not _resolves(token, namespace, local, modules, attributes):
                missing.append(token)
    assert not missing, f"{path.parent.name}/{path.name}: docstrings name what does not exist: {sorted(set(missing))}"
