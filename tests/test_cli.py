"""The `fer-study` command line: parsing, `data check`, and a failing report run's exit status and message."""

from __future__ import annotations

import json
import subprocess
import sys

import nbformat
import numpy as np
import pandas as pd
import pytest

from fer_helpers.core import paths
from fer_helpers.data.fer2013 import NUM_CLASSES, SPLITS
from fer_helpers.orchestrate import runner
from fer_helpers.orchestrate.cli import build_parser, main


def test_report_arguments():
    args = build_parser().parse_args(
        ["report", "--profile", "classroom", "--data", "x.zip", "--run-dir", "r", "--notebooks", "01", "02", "--fresh"]
    )
    assert (args.profile, args.data, args.run_dir, args.notebooks, args.fresh) == (
        "classroom",
        "x.zip",
        "r",
        ["01", "02"],
        True,
    )
    defaults = build_parser().parse_args(["report"])
    assert (defaults.profile, defaults.data, defaults.notebooks, defaults.fresh) == ("auto", None, None, False)


def test_auto_profile(monkeypatch, tmp_path):
    from fer_helpers.orchestrate.study import resolve_profile

    monkeypatch.delenv("FER2013_PATH", raising=False)
    monkeypatch.setattr(paths, "DATA_DIR", tmp_path)
    assert resolve_profile("auto", None)[0] == "smoke"
    assert resolve_profile("auto", "synthetic")[0] == "smoke"
    assert resolve_profile("classroom", None) == ("classroom", "chosen")
    fake = tmp_path / "fer2013.csv"
    fake.write_text("emotion,pixels,Usage\n")
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    assert resolve_profile("auto", str(fake))[0] == "classroom"
    monkeypatch.setattr("torch.cuda.is_available", lambda: True)  # a class on a GPU still gets the lesson
    assert resolve_profile("auto", str(fake))[0] == "classroom"
    assert resolve_profile("full", str(fake)) == ("full", "chosen")


def test_train_arguments():
    args = build_parser().parse_args(["train", "--profile", "full", "--only", "hog_svm", "baseline_cnn"])
    assert args.profile == "full" and args.only == ["hog_svm", "baseline_cnn"] and args.run_dir is None


@pytest.mark.parametrize("argv", [["report", "--profile", "huge"], ["data"], [], ["predict-everything"]])
def test_bad_command_lines_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    assert "usage: fer-study" in capsys.readouterr().err


def test_report_with_an_unknown_notebook_exits_2_listing_the_notebooks(capsys):
    assert main(["report", "--notebooks", "99"]) == 2
    assert "no notebook matches ['99']" in capsys.readouterr().err


def test_train_with_an_unknown_step_exits_2_naming_it(capsys):
    assert main(["train", "--only", "hog_svm", "transformer"]) == 2
    assert "transformer" in capsys.readouterr().err


def test_data_check_on_a_missing_path_exits_2_with_the_reason(tmp_path, capsys):
    missing = tmp_path / "fer2013.zip"
    assert main(["data", "check", str(missing)]) == 2
    err = capsys.readouterr().err
    assert str(missing) in err and "no such file" in err


def test_data_check_reports_a_small_csv(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("FER_CACHE_DIR", str(tmp_path / "cache"))
    rng = np.random.default_rng(0)
    rows = [
        {"emotion": label, "pixels": " ".join(map(str, rng.integers(0, 256, 48 * 48))), "Usage": split}
        for split in SPLITS
        for label in range(NUM_CLASSES)
    ]
    path = tmp_path / "fer2013.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    assert main(["data", "check", str(path)]) == 0
    out = capsys.readouterr().out
    assert "form: fer2013-csv" in out and "images: 21" in out


def test_failing_report_exits_1_naming_notebook_and_cell(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("FER2013_PATH", raising=False)
    monkeypatch.setattr(paths, "DATA_DIR", tmp_path)
    notebooks = tmp_path / "notebooks"
    notebooks.mkdir()
    params = nbformat.v4.new_code_cell(
        'profile = "smoke"\ndata_path = None\nrun_dir = None\nfresh = False', metadata={"tags": ["parameters"]}
    )
    nb = nbformat.v4.new_notebook(cells=[params, nbformat.v4.new_code_cell("1 / 0")])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, notebooks / "01_divide.ipynb")
    monkeypatch.setattr(runner, "NOTEBOOK_DIR", notebooks)
    assert main(["report", "--run-dir", str(tmp_path / "run")]) == 1
    err = capsys.readouterr().err
    assert "01_divide.ipynb failed in cell 1" in err and "ZeroDivisionError" in err


def test_python_dash_m_runs_the_same_command_line():
    done = subprocess.run([sys.executable, "-m", "fer_helpers", "--help"], capture_output=True, text=True)
    assert done.returncode == 0
    assert all(command in done.stdout for command in ("report", "data", "train"))


def test_the_synthetic_data_value_is_the_studys():
    from fer_helpers.orchestrate import cli, study

    assert cli.SYNTHETIC == study.SYNTHETIC


def _bad_command_lines(tmp_path) -> list[tuple[list[str], str]]:
    """Mistyped files and folders, a folder where a file belongs, a file where a folder belongs, unknown options
    and profiles: each with what its one-line answer says."""
    photo = tmp_path / "photo.png"
    photo.write_bytes(b"not read: the answer comes before")
    photo = str(photo)
    empty = tmp_path / "empty"
    empty.mkdir()
    return [
        (["predict", str(tmp_path / "astronuat.jpg")], "astronuat.jpg: no such file"),
        (["predict", str(empty)], "empty: a folder without files, nothing to predict"),
        (["predict", photo, "--weights", str(tmp_path / "w.safetensors")], "no such weights file"),
        (["predict", photo, "--weights", str(tmp_path)], "a folder, not a weights file"),
        (["predict", photo, "--weigths", "w"], "unrecognized arguments: --weigths"),
        (["evaluate", str(tmp_path / "faces")], "faces: no such folder"),
        (["evaluate", photo], "photo.png: a file, not a folder"),
        (["evaluate", str(tmp_path), "--weights", str(tmp_path / "w.safetensors")], "no such weights file"),
        (["data", "check", str(tmp_path / "fer2013.zip")], "fer2013.zip: no such file or folder"),
        (["report", "--data", str(tmp_path / "fer2013.zip")], "--data"),
        (["report", "--profile", "clasroom"], "invalid choice: 'clasroom'"),
        (["report", "--run-dir", photo], f"--run-dir {photo}: a file, not a run folder"),
        (["train", "--data", str(tmp_path / "fer2013.zip")], "no such file or folder"),
        (["ship", str(tmp_path / "runs" / "model_b-x")], "no such result folder"),
        (["unpack", str(tmp_path / "runs-01.tar.gz")], "runs-01.tar.gz: no such file"),
    ]


def test_argument_and_path_errors_answer_before_torch_is_imported(tmp_path):
    """Each mistake gets its one line and exit status 2 with neither torch nor Lightning, pandas nor OpenCV loaded."""
    cases = _bad_command_lines(tmp_path)
    code = (
        "import contextlib, io, json, sys\n"
        "from fer_helpers.orchestrate.cli import main\n"
        f"cases = {[argv for argv, _ in cases]!r}\n"
        "answers = []\n"
        "for argv in cases:\n"
        "    err = io.StringIO()\n"
        "    with contextlib.redirect_stderr(err):\n"
        "        try:\n"
        "            status = main(argv)\n"
        "        except SystemExit as exit:\n"
        "            status = exit.code\n"
        "    heavy = [m for m in ('torch', 'lightning', 'pandas', 'cv2') if m in sys.modules]\n"
        "    answers.append({'status': status, 'err': err.getvalue(), 'heavy': heavy})\n"
        "print(json.dumps(answers))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-3000:]
    for (argv, expected), answer in zip(cases, json.loads(done.stdout)):
        assert answer["status"] == 2, (argv, answer)
        assert expected in answer["err"], (argv, answer["err"])
        assert answer["heavy"] == [], (argv, answer["heavy"])


MAKE_TARGETS_AS_COMMANDS = {"test": "test", "test-fast": "test --fast", "lint": "lint", "lab": "lab"}


@pytest.mark.parametrize(("target", "command"), [*MAKE_TARGETS_AS_COMMANDS.items(), ("lab-check", "lab-check")])
def test_make_targets_are_fer_study_commands(target, command):
    """Each check and JupyterLab is a fer-study command that the Makefile calls, so make and Windows run the same."""
    makefile = (paths.REPO / "Makefile").read_text(encoding="utf-8")
    recipe = makefile.split(f"\n{target}: ", 1)[1].split("\n\n", 1)[0]
    assert f"-m fer_helpers {command}" in recipe, recipe


def test_tool_commands_pass_unknown_options_on(monkeypatch):
    from fer_helpers.orchestrate import cli

    seen = []
    monkeypatch.setattr(
        "subprocess.run", lambda command, cwd: seen.append(command) or subprocess.CompletedProcess(command, 0)
    )
    assert main(["lab-check", "--notebooks", "01", "03"]) == 0
    assert seen[-1][1:] == [str(paths.REPO / "scripts" / "lab_check.py"), "--notebooks", "01", "03"]
    monkeypatch.setattr("os.geteuid", lambda: 1000, raising=False)
    assert main(["lab", "--port", "8890"]) == 0
    assert seen[-1][1:] == ["-m", "jupyterlab", "notebooks", cli.KERNEL_ENCRYPTION, "--port", "8890"]
    monkeypatch.setattr("os.geteuid", lambda: 0, raising=False)  # as root (Docker, cloud notebooks)
    assert main(["lab"]) == 0 and "--allow-root" in seen[-1]
    seen.clear()
    assert main(["test", "-k", "encoding"]) == 0
    assert [c[2:4] for c in seen] == [["ruff", "check"], ["ruff", "format"], ["pytest", "-k"]]
    with pytest.raises(SystemExit):  # other commands still refuse options they do not know
        main(["report", "--port", "8890"])


def test_test_command_stops_at_the_first_failure(monkeypatch):
    runs = []
    monkeypatch.setattr(
        "subprocess.run", lambda command, cwd: runs.append(command) or subprocess.CompletedProcess(command, 3)
    )
    assert main(["test"]) == 3 and len(runs) == 1  # ruff check failed: no format check, no pytest


def test_fast_tests_run_through_python_m_fer_helpers():
    """`python -m fer_helpers test --fast` runs pytest for real (here only collecting one file's tests)."""
    result = subprocess.run(
        [sys.executable, "-m", "fer_helpers", "test", "--fast", "--collect-only", "-q", "tests/test_encoding.py"],
        cwd=paths.REPO,
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=120,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "tests/test_encoding.py: 3" in result.stdout  # -q twice (ours and the command's): counts per file


def test_readme_gives_every_make_target_without_make():
    """The README's table beside the make lines: each target of the Makefile with its command without make."""
    makefile = (paths.REPO / "Makefile").read_text(encoding="utf-8")
    targets = makefile.split(".PHONY:", 1)[1].split("\n", 1)[0].split()
    table = (paths.REPO / "README.md").read_text(encoding="utf-8").split("| with `make` | without `make` |", 1)[1]
    rows = table.split("\n\n", 1)[0]
    missing = [target for target in targets if f"`make {target}" not in rows]
    assert not missing, f"make targets without their command in the README: {missing}"
    for command in ("test", "test --fast", "lint", "lab", "lab-check", "report", "train"):
        assert f"`fer-study {command}" in rows
