"""Write environment.yml from requirements.lock, so that conda installs the very versions `make setup` does.

    .venv/bin/python scripts/conda_env.py           # rewrite environment.yml after the lock changed
    .venv/bin/python scripts/conda_env.py --check   # exit 1 if environment.yml is not what the lock gives

Conda brings Python; pip installs every pinned package of the lock and the study itself. A package that only some
systems need (NVIDIA's CUDA libraries and Triton, which torch asks for on Linux alone) carries an environment marker
naming those systems, found by following the requirements of the installed packages from `fer-helpers[dev]` as
Linux, macOS and Windows would read them; so the same file installs on a Mac or a Windows laptop too. Run it from the
environment the lock was made from (`.venv`), whose installed packages are the lock's.
"""

from __future__ import annotations

import argparse
import sys
from importlib.metadata import PackageNotFoundError, requires
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[1]
LOCK = REPO / "requirements.lock"
ENVIRONMENT = REPO / "environment.yml"
PYTHON = "3.11"  # the Python the lock was resolved for
PLATFORMS = {  # sys_platform: the marker variables that differ between systems
    "linux": {"sys_platform": "linux", "platform_system": "Linux", "os_name": "posix", "platform_machine": "x86_64"},
    "darwin": {"sys_platform": "darwin", "platform_system": "Darwin", "os_name": "posix", "platform_machine": "arm64"},
    "win32": {"sys_platform": "win32", "platform_system": "Windows", "os_name": "nt", "platform_machine": "AMD64"},
}
HEADER = """\
# Generated from requirements.lock by scripts/conda_env.py (do not edit; run it again after the lock changes).
# Conda users: conda env create -f environment.yml && conda activate fer-study && jupyter lab notebooks/
# Conda gives Python; pip installs the lock's exact versions and the study, as `make setup` does.
"""


def read_lock(path: Path = LOCK) -> dict[str, str]:
    """requirements.lock as {name as written: pinned version}."""
    pins = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        if "==" not in line:
            raise ValueError(f"{path.name} line {number}: {line!r} is not an exact pin")
        name, version = line.split("==", 1)
        pins[name.strip()] = version.strip()
    return pins


def needed_on(platform: str) -> set[str]:
    """The packages (canonical names) that `fer-helpers[dev]` needs on a system, read from the installed metadata."""
    base = default_environment() | PLATFORMS[platform]
    seen: set[tuple[str, str]] = set()
    todo = [("fer-helpers", "dev"), ("fer-helpers", "")]
    while todo:
        name, extra = todo.pop()
        if (name, extra) in seen:
            continue
        seen.add((name, extra))
        try:
            lines = requires(name) or []
        except PackageNotFoundError:
            continue
        for line in lines:
            requirement = Requirement(line)
            if requirement.marker is None or requirement.marker.evaluate(base | {"extra": extra}):
                child = canonicalize_name(requirement.name)
                todo += [(child, "")] + [(child, e) for e in requirement.extras]
    return {name for name, _ in seen} - {"fer-helpers"}


def environment_yml(pins: dict[str, str]) -> str:
    """The text of environment.yml for these pins."""
    needed = {platform: needed_on(platform) for platform in PLATFORMS}
    lines = [HEADER + "name: fer-study", "channels:", "  - conda-forge", "dependencies:"]
    lines += [f"  - python={PYTHON}", "  - pip", "  - pip:"]
    for name, version in sorted(pins.items(), key=lambda item: canonicalize_name(item[0])):
        systems = [p for p in PLATFORMS if canonicalize_name(name) in needed[p]]
        marker = "" if len(systems) in (0, len(PLATFORMS)) else " or ".join(f'sys_platform == "{p}"' for p in systems)
        lines.append(f"      - {name}=={version}" + (f"; {marker}" if marker else ""))
    lines.append("      - -e .[dev]")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if environment.yml differs from the lock's")
    args = parser.parse_args(argv)
    text = environment_yml(read_lock())
    if args.check:
        same = ENVIRONMENT.exists() and ENVIRONMENT.read_text(encoding="utf-8") == text
        print("environment.yml matches requirements.lock" if same else "environment.yml is out of date: run it again")
        return 0 if same else 1
    ENVIRONMENT.write_text(text, encoding="utf-8")
    print(f"wrote {ENVIRONMENT.name}: {len(read_lock())} pins")
    return 0


if __name__ == "__main__":
    sys.exit(main())
