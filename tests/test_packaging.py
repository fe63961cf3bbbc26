"""The environment descriptions agree with each other and with the source notebooks' conventions."""

from __future__ import annotations

import json
import re
from pathlib import Path

import tomllib
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[1]


def _normalise(requirement: str) -> str:
    return re.sub(r"\s+", "", requirement).lower()


def test_environment_yml_installs_the_project_with_the_lock():
    """Conda brings Python; pip installs the project and its dev tools constrained by requirements.lock, as
    `make setup` does, so that no version floats."""
    env = yaml.safe_load((REPO / "environment.yml").read_text())
    python = next(d for d in env["dependencies"] if isinstance(d, str) and d.startswith("python="))
    requires = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["requires-python"]
    assert python == "python=3.11" and ">=3.10" in requires.replace(" ", "")
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    assert [_normalise(r) for r in pip_section] == ["-crequirements.lock", "-e.[dev]"]
    makefile = (REPO / "Makefile").read_text()
    assert "-c requirements.lock -e '.[dev]'" in makefile  # the same install as make setup


def _lock() -> dict[str, str]:
    """requirements.lock as {canonical name: pinned version}."""
    pins = {}
    for number, line in enumerate((REPO / "requirements.lock").read_text().splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        assert "==" in line, f"requirements.lock line {number}: {line!r} is not an exact pin"
        name, version = line.split("==", 1)
        pins[canonicalize_name(name.split("[", 1)[0])] = version.split(";", 1)[0].strip()
    return pins


def test_lock_pins_a_version_every_declared_requirement_allows():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    lock = _lock()
    for text in project["dependencies"] + project["optional-dependencies"]["dev"]:
        requirement = Requirement(text)
        name = canonicalize_name(requirement.name)
        assert name in lock, f"{requirement.name} is declared in pyproject.toml but not pinned in requirements.lock"
        assert requirement.specifier.contains(lock[name], prereleases=True), (
            f"requirements.lock pins {name}=={lock[name]}, which pyproject.toml's {text!r} does not allow"
        )


def test_torch_is_pinned_exactly():
    """The study's torch pair: the same pins on a laptop CPU and on a GPU host (which takes their CUDA builds)."""
    deps = [Requirement(r) for r in tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]]
    for requirement in deps:
        if requirement.name in ("torch", "torchvision"):
            assert str(requirement.specifier).startswith("=="), f"{requirement} must be an exact pin"


def test_source_notebooks_have_no_outputs_and_a_parameters_cell():
    notebooks = sorted((REPO / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    assert notebooks, "no notebooks found"
    for path in notebooks:
        nb = json.loads(path.read_text())
        code = [c for c in nb["cells"] if c["cell_type"] == "code"]
        assert not any(c.get("outputs") or c.get("execution_count") for c in code), f"{path.name} has outputs"
        tagged = [c for c in code if "parameters" in c.get("metadata", {}).get("tags", [])]
        assert len(tagged) == 1, f"{path.name} needs exactly one cell tagged 'parameters'"
