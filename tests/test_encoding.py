"""Every text file the study writes or reads is UTF-8, whatever the machine's locale (Windows' cp1252, a C locale):
each text open names its encoding, and the writers of tables, reports and README blocks, run under an ASCII
locale, put UTF-8 bytes on disk."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TEXT_METHODS = {"read_text", "write_text"}  # pathlib's; they take encoding= as open() does


def _mode(call: ast.Call) -> str | None:
    """The literal mode of an open() call, or None when it is not written as a literal."""
    position = 0 if isinstance(call.func, ast.Attribute) else 1  # path.open(mode) or open(path, mode)
    for keyword in call.keywords:
        if keyword.arg == "mode":
            return keyword.value.value if isinstance(keyword.value, ast.Constant) else None
    if len(call.args) > position and isinstance(call.args[position], ast.Constant):
        return call.args[position].value
    return "r" if len(call.args) <= position else None


def _text_opens_without_encoding(path: Path) -> list[str]:
    """The lines of a module that open a file as text without naming its encoding."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if not isinstance(node, ast.Call) or any(k.arg == "encoding" for k in node.keywords):
            continue
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else None
        if name in TEXT_METHODS or (name == "open" and "b" not in (_mode(node) or "b")):
            found.append(f"{path.relative_to(REPO) if REPO in path.parents else path}:{node.lineno}")
    return found


def test_every_text_open_names_its_encoding():
    """ruff's PLW1514 finds open() but not `(folder / name).write_text(...)`, whose receiver it cannot type."""
    sources = [*REPO.glob("fer_helpers/**/*.py"), *REPO.glob("scripts/*.py"), *REPO.glob("benchmarks/*.py")]
    assert sources
    missing = [line for path in sorted(sources) for line in _text_opens_without_encoding(path)]
    assert not missing, "text opened without encoding= (the locale's would be used): " + ", ".join(missing)


def test_the_check_finds_what_it_looks_for(tmp_path):
    module = tmp_path / "probe.py"
    source = 'open(p, "w")\nopen(p, "rb")\np.write_text(t)\np.read_text(encoding="utf-8")\np.open()\n'
    module.write_text(source, encoding="utf-8")
    found = _text_opens_without_encoding(module)
    assert [line.rsplit(":", 1)[1] for line in found] == ["1", "3", "5"]


WRITERS = """
import locale, sys
from pathlib import Path
import pandas as pd
from fer_helpers.core.files import atomic_write_text, rewrite_between
from fer_helpers.core.profiles import get_profile
from fer_helpers.data.synthetic import make_synthetic_fer
from fer_helpers.orchestrate.study import Study

assert locale.getpreferredencoding(False).lower().replace("-", "") in ("ansi_x3.41968", "ascii"), (
    locale.getpreferredencoding(False)
)
out = Path(sys.argv[1])
text = "Model B \\u2192 66.8 \\u00b1 0.5% (65.4\\u201368.1%)"  # the command line is ASCII here
data = make_synthetic_fer(n_train=14, n_public=7, n_private=7, seed=0)
study = Study(get_profile("smoke"), data, data, out / "run", out / "reports")
study.save_table(pd.DataFrame({"model": ["Model B"], "accuracy": [text]}), "comparison")
atomic_write_text(out / "REPORT.md", text + "\\n")
(out / "README.md").write_text("\\u00b1 <!-- a:start -->\\n<!-- a:end -->\\n", encoding="utf-8")
rewrite_between(out / "README.md", "<!-- a:start -->", "<!-- a:end -->", text)
"""


def test_writers_put_utf8_on_disk_under_an_ascii_locale(tmp_path):
    """The report's and tables' writers, run where Python's default text encoding is ASCII (LC_ALL=C without
    Python's UTF-8 mode, as close as Linux gets to Windows' cp1252): the files hold UTF-8 "→", "±" and "–"."""
    env = {**os.environ, "LC_ALL": "C", "LANG": "C", "PYTHONUTF8": "0", "PYTHONPATH": str(REPO)}
    env.pop("PYTHONIOENCODING", None)
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(WRITERS), str(tmp_path)],
        env=env,
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    for name in ("reports/tables/comparison.md", "reports/tables/comparison.csv", "REPORT.md", "README.md"):
        content = (tmp_path / name).read_bytes().decode("utf-8")  # raises on cp1252 or escaped bytes
        assert "→ 66.8 ± 0.5% (65.4–68.1%)" in content, name
