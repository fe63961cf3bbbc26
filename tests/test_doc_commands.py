"""Every command the README and the docs/ pages show exists: each `fer-study ...` (or `python -m fer_helpers ...`)
names a real subcommand whose --help exits 0, and each `make ...` a target of the Makefile."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

from fer_helpers.core import paths
from fer_helpers.orchestrate.cli import build_parser, main

PAGES = [paths.REPO / "README.md", *sorted((paths.REPO / "docs").glob("*.md"))]
_FENCE = re.compile(r"^```.*?^```", re.S | re.M)
_INDENTED = re.compile(r"(?:^(?: {4}|\t).*\n?)+", re.M)
_SPAN = re.compile(r"`([^`\n]+)`")
_STUDY = re.compile(r"(?:^|[\s/!(=;&])(?:fer-study|python3? -m fer_helpers)((?:\s+[a-z][a-z-]*(?=\s|$))*)")
_MAKE = re.compile(r"(?:^|[\s(=;&])make\s+([a-z][a-z-]*)(?=\s|$)")


def code_of(markdown: str) -> list[str]:
    """The code a Markdown page shows: its fenced and indented blocks and its inline code spans."""
    blocks = _FENCE.findall(markdown)
    prose = _FENCE.sub("", markdown)
    blocks += _INDENTED.findall(prose)
    return blocks + _SPAN.findall(_INDENTED.sub("", prose))


def shown_commands(markdown: str) -> tuple[set[tuple[str, ...]], set[str]]:
    """The fer-study commands (subcommand, then the action where it has actions) and make targets in a page's code."""
    study, make = set(), set()
    for code in code_of(markdown):
        for line in code.splitlines():
            study |= {tuple(match.split()) for match in _STUDY.findall(line) if match.strip()}  # not a bare name
            make |= set(_MAKE.findall(line))
    return study, make


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    actions = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(actions[0].choices) if actions else {}


def command_problem(words: tuple[str, ...]) -> str | None:
    """Why `fer-study <words...>` is not a command of the study (the words after it may be its arguments), or None."""
    commands = _subcommands(build_parser())
    if words[0] not in commands:
        return f"no subcommand {words[0]!r} (there are {', '.join(commands)})"
    actions = _subcommands(commands[words[0]])
    if actions and (len(words) < 2 or words[1] not in actions):
        return f"{words[0]} has no action {' '.join(words[1:2]) or 'given'} (there are {', '.join(actions)})"
    return None


def make_targets() -> set[str]:
    """The targets the Makefile defines."""
    text = (paths.REPO / "Makefile").read_text(encoding="utf-8")
    return set(re.findall(r"^([A-Za-z0-9_.-]+):(?!=)", text, re.M))


def _shown() -> dict[Path, tuple[set[tuple[str, ...]], set[str]]]:
    return {page: shown_commands(page.read_text(encoding="utf-8")) for page in PAGES}


def test_the_pages_show_the_commands_a_newcomer_needs():
    """The extraction finds what the README and docs/ do show (else the checks below would pass on nothing)."""
    study = set().union(*(s for s, _ in _shown().values()))
    make = set().union(*(m for _, m in _shown().values()))
    firsts = {words[:2] if words[0] in ("data", "ferplus") else words[:1] for words in study}
    assert {("report",), ("train",), ("predict",), ("evaluate",), ("data", "check"), ("ferplus", "join")} <= firsts
    assert {"report", "test", "campaign", "bench", "lab-check"} <= make


def test_every_fer_study_command_shown_exists_and_its_help_runs(capsys):
    problems, helped = [], set()
    for page, (study, _) in _shown().items():
        for words in sorted(study):
            if problem := command_problem(words):
                problems.append(f"{page.relative_to(paths.REPO)}: `fer-study {' '.join(words)}`: {problem}")
                continue
            name = words[:2] if _subcommands(_subcommands(build_parser())[words[0]]) else words[:1]
            if name in helped:
                continue
            with pytest.raises(SystemExit) as stop:
                main([*name, "--help"])
            assert stop.value.code == 0, f"fer-study {' '.join(name)} --help exited with {stop.value.code}"
            assert "usage: fer-study" in capsys.readouterr().out
            helped.add(name)
    assert not problems, "\n".join(problems)


def test_every_make_target_shown_is_in_the_makefile():
    targets = make_targets()
    missing = [
        f"{page.relative_to(paths.REPO)}: `make {target}`"
        for page, (_, make) in _shown().items()
        for target in sorted(make - targets)
    ]
    assert not missing, "make targets the Makefile lacks:\n" + "\n".join(missing)


def test_a_command_that_does_not_exist_is_found():
    page = (
        "Run `fer-study reprot --profile full`, then\n\n    make benhc\n    .venv/bin/fer-study data chekc x.zip\n\n"
        "and `python -m fer_helpers train --plan`; prose that says make report is not code."
    )
    study, make = shown_commands(page)
    assert study == {("reprot",), ("data", "chekc"), ("train",)} and make == {"benhc"}
    assert "no subcommand 'reprot'" in command_problem(("reprot",))
    assert "no action chekc" in command_problem(("data", "chekc"))
    assert command_problem(("predict", "photo")) is None  # a word after a command without actions is its argument
    assert command_problem(("train",)) is None and "benhc" not in make_targets()
