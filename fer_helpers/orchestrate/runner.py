"""The report run: execute the numbered notebooks in order with papermill, timing each and naming any failure, then
write the report (metrics.json, REPORT.md) from every result they saved, as its last step."""

from __future__ import annotations

import contextlib
import copy
import io
import json
import re
import sys
import tempfile
import time
import traceback
from pathlib import Path

import nbformat
import papermill
from papermill.exceptions import PapermillExecutionError
from papermill.execute import ERROR_MARKER_TAG
from traitlets.config import Config

from fer_helpers.core.paths import REPO, REPORT_STEP
from fer_helpers.core.profiles import get_profile
from fer_helpers.core.progress import follow
from fer_helpers.data.fer2013 import find_fer2013
from fer_helpers.orchestrate.study import SYNTHETIC, default_run_dir, setup, synthetic_warning

NOTEBOOK_DIR = REPO / "notebooks"
NOTEBOOK_PATTERN = "[0-9][0-9]_*.ipynb"
KERNEL_NAME = "python3"
TIMINGS_FILE = "timings.json"
PROGRESS_FILE = "progress.log"  # what the running notebook's training reports, in a temporary folder (`follow`)
VOTES_NOTEBOOK_PREFIXES = ("08_",)  # notebooks that need the FER+ crowd votes beside FER-2013
EXERCISE_TAG = "exercise"  # a notebook's exercise cells: run by a student, not by the report
TODO_TAG = "todo"  # an exercise cell with a line (marked TODO) for the student to complete
CHECK_TAG = "check"  # the exercise cell after a TODO cell that asserts whether the student's answer works
SOLUTION_TAG = "solution"  # a collapsed markdown cell after the check: the completed TODO cell, as a python block
_PYTHON_BLOCK = re.compile(r"```python\n(.*?)\n```", re.DOTALL)
# The kernel's sockets encrypted with CurveZMQ keys that jupyter_client provisions (the kernelspec declares support),
# instead of plain TCP, about which every kernel would print a warning to the terminal.
KERNEL_CONFIG = Config({"KernelManager": {"transport_encryption": "auto"}})


class ReportError(RuntimeError):
    """A notebook of the report run failed; the message names the notebook, the cell and the error."""


def list_notebooks(selection: list[str] | None = None, notebook_dir: str | Path | None = None) -> list[Path]:
    """The numbered notebooks in order, optionally only those whose name starts with one of `selection`."""
    notebook_dir = Path(notebook_dir) if notebook_dir is not None else NOTEBOOK_DIR
    found = sorted(notebook_dir.glob(NOTEBOOK_PATTERN))
    if not found:
        raise FileNotFoundError(f"no notebooks matching {NOTEBOOK_PATTERN} in {notebook_dir}")
    if not selection:
        return found
    chosen = [p for p in found if any(p.stem.startswith(str(s)) for s in selection)]
    unmatched = [s for s in selection if not any(p.stem.startswith(str(s)) for p in found)]
    if unmatched:
        raise ValueError(f"no notebook matches {unmatched}; available: {[p.stem for p in found]}")
    return chosen


def solution_code(cell: dict) -> str:
    """The code of a SOLUTION_TAG cell: its one python block."""
    blocks = _PYTHON_BLOCK.findall(cell["source"])
    if len(blocks) != 1:
        raise ValueError(
            f"a {SOLUTION_TAG!r} cell holds one python block, found {len(blocks)}: {cell['source'][:80]!r}"
        )
    return blocks[0]


def with_solutions(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """A copy of a notebook whose TODO_TAG cells hold their solutions (the SOLUTION_TAG cell that follows each).

    Cells keep their places, so that a failure names the same cell as in the notebook.
    """
    nb = copy.deepcopy(nb)
    todo = None
    for cell in nb.cells:
        tags = cell.get("metadata", {}).get("tags", [])
        if TODO_TAG in tags:
            if todo is not None:
                raise ValueError(f"two {TODO_TAG!r} cells without a {SOLUTION_TAG!r} cell between them")
            todo = cell
        elif SOLUTION_TAG in tags:
            if todo is None:
                raise ValueError(f"a {SOLUTION_TAG!r} cell without a {TODO_TAG!r} cell before it")
            todo["source"], todo = solution_code(cell), None
    if todo is not None:
        raise ValueError(f"a {TODO_TAG!r} cell without its {SOLUTION_TAG!r} cell")
    return nb


def ensure_kernel() -> str:
    """The name of a Jupyter kernel that runs this interpreter, installing one into this environment if needed."""
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    try:
        spec = KernelSpecManager().get_kernel_spec(KERNEL_NAME)
    except NoSuchKernel:
        spec = None
    # jupyter_client runs a spec whose command is a bare "python", "python3" or "python3.X" with this interpreter.
    bare = {"python", f"python{sys.version_info[0]}", "python{}.{}".format(*sys.version_info[:2])}
    if spec is not None and (spec.argv[0] in bare or _same_file(spec.argv[0], sys.executable)):
        return KERNEL_NAME
    from ipykernel.kernelspec import install

    # A missing spec, or a user-wide one that runs another interpreter: register this one inside the environment.
    name = KERNEL_NAME if spec is None else "fer-study"
    install(kernel_name=name, prefix=sys.prefix, display_name=f"Python 3 ({Path(sys.prefix).name})")
    return name


def run_report(
    profile: str = "smoke",
    data_path: str | Path | None = None,
    run_dir: str | Path | None = None,
    notebooks: list[str] | None = None,
    fresh: bool = False,
    notebook_dir: str | Path | None = None,
    exercises: bool = False,
) -> Path:
    """Execute the notebooks into <run_dir>/executed/, print their times and write <run_dir>/timings.json.

    Cells tagged EXERCISE_TAG (a notebook's exercises) are left unexecuted unless `exercises` is set; then each
    exercise runs with its solution in place of the student's TODO cell (`with_solutions`), so that its check fails
    the run when the exercise or its solution is broken.
    """
    profile = get_profile(profile).name
    paths = list_notebooks(notebooks, notebook_dir)
    found = None if data_path == SYNTHETIC else find_fer2013(data_path)
    if found is None:
        reason = "synthetic faces were asked for" if data_path == SYNTHETIC else "no FER-2013 found"
        print(synthetic_warning(f"This report run uses synthetic faces: {reason}."), file=sys.stderr)
    if found is not None and notebooks is None:
        paths = without_vote_notebooks(paths, found)
    run_dir = Path(run_dir).expanduser().resolve() if run_dir is not None else default_run_dir(profile, found is None)
    # A lesson is timed from an empty run folder: any saved result would be loaded instead of trained.
    fresh_run_folder = not (run_dir / "results").exists() or not any((run_dir / "results").iterdir())
    executed_dir = run_dir / "executed"
    executed_dir.mkdir(parents=True, exist_ok=True)
    parameters = {
        "profile": profile,
        "data_path": SYNTHETIC if found is None else str(found.resolve()),
        "run_dir": str(run_dir),
        "fresh": bool(fresh),
    }
    kernel = ensure_kernel()
    print(f"Report run: profile {profile}, {len(paths)} notebook(s), results in {run_dir}")
    timings: list[dict] = []
    start = time.perf_counter()
    try:
        for i, path in enumerate(paths, 1):
            label = f"[{i}/{len(paths) + 1}] {path.stem}"
            _execute(path, executed_dir / path.name, parameters, kernel, label, timings, exercises)
        t0 = time.perf_counter()
        print(f"[{len(paths) + 1}/{len(paths) + 1}] {REPORT_STEP} ...", flush=True)
        try:
            written = write_report_step(profile, parameters["data_path"], run_dir)
        except ReportError:
            timings.append({"notebook": REPORT_STEP, "seconds": time.perf_counter() - t0, "status": "failed"})
            raise
        status = "ok" if written else "skipped"  # skipped: no saved result to report on
        timings.append({"notebook": REPORT_STEP, "seconds": time.perf_counter() - t0, "status": status})
    finally:
        whole = {"fresh_run_folder": fresh_run_folder, "every_notebook": notebooks is None}
        _write_timings(run_dir, parameters, timings, time.perf_counter() - start, whole)
    print(_summary(timings))
    if found is not None and all(whole.values()):  # every notebook on FER-2013 from an empty run folder
        from fer_helpers.publish.lesson import LESSON_PROFILE, RUN_RECORD, record_lesson, time_range  # imports torch

        if profile == LESSON_PROFILE:  # recorded in the run folder; the README changes only when published
            record = record_lesson(run_dir)
            print(
                f"{time_range(record['runs'])}; recorded in {run_dir / RUN_RECORD}. README.md and "
                f"reports/lesson.json are left as they were: `fer-study lesson --publish {_shown(run_dir)}` "
                "writes this lesson into both."
            )
    return run_dir


def _shown(path: Path) -> str:
    """A path as a user would type it: relative to the current folder where it lies inside it."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def write_report_step(profile: str, data_path: str | Path | None, run_dir: str | Path) -> list[Path]:
    """The report run's last step: metrics.json, REPORT.md, the tables and figures of the evaluation and (full profile
    on FER-2013) the README's blocks, from every result saved in the run folder (`evaluation.write_report`).

    A run folder without any result for its data writes nothing and says so. A failure raises ReportError, its
    traceback printed on stderr.
    """
    from fer_helpers.publish.evaluation import NoResultsError, write_report  # imports torch and matplotlib

    try:
        with contextlib.redirect_stdout(io.StringIO()):
            study = setup(profile, data_path, run_dir)  # its banner: the notebooks' first line says it
        written = write_report(study)
    except NoResultsError as err:
        print(f"{REPORT_STEP}: nothing written. {err}", flush=True)
        return []
    except Exception as err:
        traceback.print_exc()
        raise ReportError(f"Writing the report from {run_dir} failed: {type(err).__name__}: {err}") from err
    print(f"{REPORT_STEP}: wrote " + ", ".join(_shown(path) for path in written), flush=True)
    return written


def without_vote_notebooks(paths: list[Path], data_path: Path) -> list[Path]:
    """The notebooks, less those that need FER+ votes where none lie beside FER-2013 (said on the terminal).

    A report run on FER-2013 alone still renders everything else; asked for by number, such a notebook runs and
    says itself where the votes go.
    """
    from fer_helpers.core.paths import FERPLUS_ENV
    from fer_helpers.data.ferplus import find_ferplus

    if find_ferplus(None, data_path=data_path) is not None:
        return paths
    skipped = [p for p in paths if p.stem.startswith(VOTES_NOTEBOOK_PREFIXES)]
    for path in skipped:
        print(
            f"Skipping {path.stem}: no FER+ crowd votes found (put ferplus_votes.csv or fer2013new.csv beside "
            f"{data_path.name} or in data/, or set {FERPLUS_ENV}).",
            flush=True,
        )
    return [p for p in paths if p not in skipped]


def _execute(
    path: Path, output: Path, parameters: dict, kernel: str, label: str, timings: list[dict], exercises: bool = False
) -> None:
    """Run one notebook with papermill and record its time; a failure raises ReportError naming notebook and cell."""
    print(f"{label} ...", flush=True)
    t0 = time.perf_counter()
    try:
        with tempfile.TemporaryDirectory() as folder, follow(Path(folder) / PROGRESS_FILE, sys.stdout, f"{label} "):
            papermill.execute_notebook(
                with_solutions(nbformat.read(path, as_version=4)) if exercises else path,
                output,
                parameters=parameters,
                kernel_name=kernel,
                progress_bar=False,  # the training's own progress instead (`follow`), and the time on a terminal
                cwd=path.parent,
                # nbclient leaves the cells with this tag as they are (papermill passes it through)
                skip_cells_with_tag="never-skip" if exercises else EXERCISE_TAG,
                config=KERNEL_CONFIG,
            )
    except PapermillExecutionError as err:
        timings.append({"notebook": path.stem, "seconds": time.perf_counter() - t0, "status": "failed"})
        raise ReportError(_cell_failure(path, output, err)) from None
    except Exception as err:
        timings.append({"notebook": path.stem, "seconds": time.perf_counter() - t0, "status": "failed"})
        raise ReportError(_run_failure(path, output, err)) from err
    seconds = time.perf_counter() - t0
    timings.append({"notebook": path.stem, "seconds": seconds, "status": "ok"})
    print(f"{label} ... {seconds:.1f} s", flush=True)


def _cell_failure(path: Path, output: Path, err: PapermillExecutionError) -> str:
    """One paragraph: notebook, failing cell (index in the source notebook and first line), error, partial output."""
    cells = _executed_cells(output)
    return (
        f"Notebook {path.name} failed in cell {_source_index(cells, err.cell_index)} (execution count "
        f"[{err.exec_count}], starting `{_first_line(err.source or '')}`) with {err.ename}: {err.evalue}. "
        f"The partially executed notebook, with the traceback under that cell, is at {output}."
    )


def _run_failure(path: Path, output: Path, err: Exception) -> str:
    """One paragraph for a failure outside a cell (kernel died, timeout, unreadable notebook)."""
    where = ""
    if output.exists():
        cells = _executed_cells(output)
        running = [i for i, c in enumerate(cells) if c.metadata.get("papermill", {}).get("status") == "running"]
        if running:
            index = running[0]
            where = f" while running cell {_source_index(cells, index)} (`{_first_line(cells[index].source)}`)"
        where += f"; the partially executed notebook is at {output}"
    return f"Notebook {path.name} failed{where}: {type(err).__name__}: {err}"


def _executed_cells(output: Path) -> list:
    """The cells of a (partially) executed notebook as executed, without the error banners papermill adds after."""
    if not output.exists():
        return []
    cells = nbformat.read(output, as_version=4).cells
    return [c for c in cells if ERROR_MARKER_TAG not in c.metadata.get("tags", [])]


def _source_index(cells: list, executed_index: int) -> int:
    """Index of an executed cell in the source notebook, not counting the parameter cell papermill injects."""
    injected = sum(1 for c in cells[:executed_index] if "injected-parameters" in c.metadata.get("tags", []))
    return executed_index - injected


def _first_line(source: str) -> str:
    return next((line.strip() for line in source.splitlines() if line.strip()), "")


def _same_file(a: str, b: str) -> bool:
    try:
        return Path(a).resolve().samefile(Path(b).resolve())
    except OSError:
        return False


def _write_timings(run_dir: Path, parameters: dict, timings: list[dict], total: float, whole: dict) -> None:
    record = {
        "profile": parameters["profile"],
        "data_path": parameters["data_path"],
        "synthetic": parameters["data_path"] == SYNTHETIC,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "total_seconds": round(total, 2),
        "notebooks": [{**t, "seconds": round(t["seconds"], 2)} for t in timings],
        **whole,
    }
    (run_dir / TIMINGS_FILE).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")


def _summary(timings: list[dict]) -> str:
    width = max(len(t["notebook"]) for t in timings)
    lines = [f"{'notebook':<{width}}  seconds", *(f"{t['notebook']:<{width}}  {t['seconds']:7.1f}" for t in timings)]
    lines.append(f"{'total':<{width}}  {sum(t['seconds'] for t in timings):7.1f}")
    return "\n".join(lines)
