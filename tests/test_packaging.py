"""The environment descriptions agree with each other and with the source notebooks' conventions."""

from __future__ import annotations

import importlib.util
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


def _conda_env():
    spec = importlib.util.spec_from_file_location("conda_env", REPO / "scripts" / "conda_env.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_environment_yml_is_generated_from_the_lock():
    """Conda brings Python; pip installs every version the lock pins, and the study, as `make setup` does: the file
    is what scripts/conda_env.py makes of requirements.lock today."""
    assert (REPO / "environment.yml").read_text(encoding="utf-8") == _conda_env().environment_yml(_lock_as_written()), (
        "environment.yml is out of date: run .venv/bin/python scripts/conda_env.py"
    )
    env = yaml.safe_load((REPO / "environment.yml").read_text(encoding="utf-8"))
    python = next(d for d in env["dependencies"] if isinstance(d, str) and d.startswith("python="))
    requires = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]["requires-python"]
    assert python == "python=3.11" and ">=3.10" in requires.replace(" ", "")
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    assert _normalise(pip_section[-1]) == "-e.[dev]"
    pinned = {canonicalize_name(Requirement(r).name): str(Requirement(r).specifier) for r in pip_section[:-1]}
    assert pinned == {name: f"=={version}" for name, version in _lock().items()}  # the same versions, every one
    markers = {canonicalize_name(Requirement(r).name): str(Requirement(r).marker) for r in pip_section[:-1] if ";" in r}
    assert markers["triton"] == 'sys_platform == "linux"' and markers["nvidia-cublas"] == 'sys_platform == "linux"'
    assert "torch" not in markers and "numpy" not in markers  # what every system needs carries no marker


def test_a_stale_environment_yml_is_caught(tmp_path):
    conda_env = _conda_env()
    lock = _lock_as_written()
    lock["numpy"] = "0.0.1"
    assert "numpy==0.0.1" in conda_env.environment_yml(lock)


def _lock_as_written() -> dict[str, str]:
    return _conda_env().read_lock(REPO / "requirements.lock")


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


def test_torch_is_a_range_in_pyproject_and_pinned_in_the_lock():
    """pyproject.toml's torch and torchvision are ranges, so that installing the study on Google Colab keeps Colab's
    own CUDA build; the lock pins the exact pair that `make setup` and conda install."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    deps = {Requirement(r).name: Requirement(r) for r in project["dependencies"]}
    lock = _lock()
    for name in ("torch", "torchvision"):
        assert not str(deps[name].specifier).startswith("=="), f"{deps[name]} must be a range"
        assert deps[name].specifier.contains(lock[name]), f"the lock's {name}=={lock[name]} is outside {deps[name]}"


def test_source_notebooks_have_no_outputs_and_a_parameters_cell():
    notebooks = sorted((REPO / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    assert notebooks, "no notebooks found"
    for path in notebooks:
        nb = json.loads(path.read_text())
        code = [c for c in nb["cells"] if c["cell_type"] == "code"]
        assert not any(c.get("outputs") or c.get("execution_count") for c in code), f"{path.name} has outputs"
        tagged = [c for c in code if "parameters" in c.get("metadata", {}).get("tags", [])]
        assert len(tagged) == 1, f"{path.name} needs exactly one cell tagged 'parameters'"
