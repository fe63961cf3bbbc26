"""Run every notebook in a real JupyterLab, in headless Chromium, on synthetic faces, as a student without FER-2013 would.

    make lab-check                                   # all notebooks, in order
    .venv/bin/python scripts/lab_check.py --notebooks 01 03 --timeout-min 5

What it does, all under runs/lab-check/ (ignored by git; the user's data/ and runs/ are never touched):

1. copies the project's tracked files (`git ls-files`, as they are in the working tree) into
   runs/lab-check/project/, with no FER-2013 in its data/, and starts `jupyter lab` on that copy with
   FER2013_PATH and FERPLUS_PATH unset, so the notebooks' `smoke` profile runs on the synthetic faces (notebook
   08 simulates the crowd's votes); the kernel imports fer_helpers from the copy (PYTHONPATH), so every run
   folder and cache lands there;
2. opens each notebook in headless Chromium through JupyterLab's own commands (`docmanager:open`,
   `notebook:run-all-cells`), waits until the kernel is idle and no cell is queued, then reads every cell's
   outputs from the notebook model: an error output fails the check, stderr outputs are counted as warnings, and
   a notebook whose code draws (`plots.` or `plt.`) must show at least one rendered figure;
3. takes screenshots into runs/lab-check/screenshots/<notebook>/ (the top of the notebook, each figure, each
   stderr block and each error, scrolled into view at the browser's 1400x1000 window), saves the executed
   notebook into the copy, and writes runs/lab-check/summary.json and a table; the exit status is 1 when any
   notebook has an error, a cell that did not run, no figure where it draws, or ran past its time limit.

Needs: Debian's `chromium` and `chromium-driver` (installed with apt-get when absent; needs root or sudo) and
`selenium` from PyPI, which is no dependency of the study: this script installs it into its own environment with
pip when absent. JupyterLab and ipykernel come with `make setup`.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "runs" / "lab-check"
DEFAULT_TIMEOUT_MIN = 20.0
POLL_S = 2.0
QUIET_POLLS = 3  # consecutive polls with an idle kernel and no queued cell before a notebook counts as finished
CHROMIUM_FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1400,1000",
)
ENV_DROPPED = ("FER2013_PATH", "FERPLUS_PATH", "MPLBACKEND")  # a student's fresh shell sets none of them
DRAWS = re.compile(r"\b(plots|plt)\.")
# Without these settings JupyterLab asks, in a toast over the notebook, whether it may fetch Jupyter's news.
LAB_SETTINGS = {
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {"fetchNews": "false", "checkForUpdates": False}
}

OPEN_JS = """
const [path, done] = [arguments[0], arguments[arguments.length - 1]];
const app = window.jupyterapp;
(async () => {
  await app.restored;
  const widget = await app.commands.execute('docmanager:open', {path, factory: 'Notebook'});
  await widget.context.ready;
  await widget.sessionContext.ready;
  app.shell.activateById(widget.id);
  window.labCheck = widget;
  return 'ok';
})().then(done, error => done('error: ' + error));
"""
KERNEL_JS = """
const kernel = window.labCheck.sessionContext.session?.kernel;
return kernel ? {id: kernel.id, status: kernel.status} : null;
"""
RUN_ALL_JS = "window.jupyterapp.commands.execute('notebook:run-all-cells');"
QUEUED_JS = """
const widget = window.labCheck;
const cells = widget.content.widgets;
let queued = 0, current = null;
cells.forEach(cell => {
  const prompt = cell.node.querySelector('.jp-InputPrompt');
  if (prompt && prompt.textContent.includes('*')) {
    queued += 1;
    if (current === null) current = cell.model.sharedModel.getSource().split('\\n')[0];
  }
});
return {queued, current};
"""
CELLS_JS = """
const text = value => Array.isArray(value) ? value.join('') : (value || '');
return window.labCheck.content.widgets.map((cell, index) => {
  const model = cell.model;
  const source = model.sharedModel.getSource();
  const info = {index, type: model.type, first: source.split('\\n').find(line => line.trim()) || '',
                empty: !source.trim(), count: null, outputs: [], images: 0};
  if (model.type !== 'code') return info;
  info.count = model.executionCount;
  for (let k = 0; k < model.outputs.length; k++) {
    const output = model.outputs.get(k).toJSON();
    const body = text(output.text);
    info.outputs.push({type: output.output_type, name: output.name || null, ename: output.ename || null,
                       evalue: output.evalue || null, head: body.slice(0, 400), chars: body.length,
                       lines: body ? body.split('\\n').length : 0});
  }
  info.images = cell.node.querySelectorAll('.jp-RenderedImage img').length;
  return info;
});
"""
SCROLL_JS = """
const [index, image, done] = [arguments[0], arguments[1], arguments[arguments.length - 1]];
const cell = window.labCheck.content.widgets[index];
const target = image === null ? (cell.outputArea ? cell.outputArea.node : cell.node)
                              : cell.node.querySelectorAll('.jp-RenderedImage img')[image];
const tall = target.getBoundingClientRect().height > 0.8 * window.innerHeight;
target.scrollIntoView({block: tall || index === 0 ? 'start' : 'center'});
const ready = image === null ? Promise.resolve() : target.decode().catch(() => null);
ready.then(() => requestAnimationFrame(() => requestAnimationFrame(() => done(image === null ? null :
  {natural: [target.naturalWidth, target.naturalHeight], shown: [target.clientWidth, target.clientHeight]}))));
"""
SAVE_AND_CLOSE_JS = """
const done = arguments[arguments.length - 1];
const widget = window.labCheck;
(async () => {
  await widget.context.save();
  await widget.sessionContext.shutdown();
  widget.close();
  return 'ok';
})().then(done, error => done('error: ' + error));
"""


@dataclass
class NotebookResult:
    """What one notebook showed in JupyterLab."""

    notebook: str
    code_cells: int = 0
    executed: int = 0
    errors: list[dict] = field(default_factory=list)  # cell, first line, ename, evalue
    stderr: list[dict] = field(default_factory=list)  # cell, first line, lines, head
    figures: list[dict] = field(default_factory=list)  # cell, natural and shown size in pixels
    not_run: list[str] = field(default_factory=list)  # first lines of code cells without an execution count
    draws: bool = True
    seconds: float = 0.0
    problem: str | None = None  # timeout, dead kernel, a notebook that would not open
    screenshots: list[str] = field(default_factory=list)

    @property
    def failures(self) -> list[str]:
        """Why this notebook fails the check, one line each (empty: it passes)."""
        found = [f"cell {e['cell']} `{e['first']}`: {e['ename']}: {e['evalue']}" for e in self.errors]
        if self.problem:
            found.append(self.problem)
        if self.not_run and not self.errors and not self.problem:
            found.append(f"{len(self.not_run)} code cells never ran, the first `{self.not_run[0]}`")
        if self.draws and not any(f["natural"][0] > 0 for f in self.figures) and not found:
            found.append("no figure rendered, though the notebook draws")
        found += [f"cell {f['cell']}: an image that did not render" for f in self.figures if f["natural"][0] == 0]
        return found


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--notebooks", nargs="*", metavar="NN", help="only these notebooks, by number or name prefix")
    parser.add_argument(
        "--timeout-min",
        type=float,
        default=DEFAULT_TIMEOUT_MIN,
        help=f"time limit per notebook in minutes (default {DEFAULT_TIMEOUT_MIN:g})",
    )
    parser.add_argument(
        "--keep",
        action="store_true",
        help="keep what earlier checks saved in the copy's runs/ (to check 05 without rerunning 02-04)",
    )
    return parser.parse_args(argv)


def ensure_chromium() -> tuple[str, str]:
    """Paths of chromium and chromedriver, installed with apt-get (Debian's packages) when absent."""
    if not (shutil.which("chromium") and shutil.which("chromedriver")):
        sudo = [] if os.geteuid() == 0 else ["sudo"]
        print("installing Debian's chromium and chromium-driver with apt-get", flush=True)
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run([*sudo, "apt-get", "update", "-q"], check=True, env=env)
        subprocess.run([*sudo, "apt-get", "install", "-y", "-q", "chromium", "chromium-driver"], check=True, env=env)
    return shutil.which("chromium"), shutil.which("chromedriver")


def ensure_selenium() -> None:
    """Install selenium into this interpreter's environment with pip when it is absent."""
    try:
        import selenium  # noqa: F401
    except ImportError:
        print("installing selenium into", sys.prefix, flush=True)
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "selenium"], check=True)


def copy_project(dest: Path, keep: bool) -> None:
    """The tracked files of the working tree in dest, with an empty data/; with keep, dest's run folders stay."""
    if dest.exists() and not keep:
        shutil.rmtree(dest)
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, check=True, capture_output=True, text=True).stdout
    for name in filter(None, listed.split("\0")):
        source = REPO / name
        if source.is_file():  # a tracked file deleted in the working tree is left out, as a student's checkout would
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name)
    (dest / "data").mkdir(exist_ok=True)


def lab_environment(project: Path, config_dir: Path) -> dict[str, str]:
    """JupyterLab's (and so the kernels') environment: no FER-2013, fer_helpers and caches from the copy."""
    env = {k: v for k, v in os.environ.items() if k not in ENV_DROPPED}
    env.update(
        PYTHONPATH=str(project),
        FER_CACHE_DIR=str(project / ".cache"),
        JUPYTER_CONFIG_DIR=str(config_dir),
        JUPYTER_RUNTIME_DIR=str(config_dir / "runtime"),
    )
    for name, settings in LAB_SETTINGS.items():
        path = config_dir / "lab" / "user-settings" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(settings), encoding="utf-8")
    return env


def check_kernel_setup(project: Path, env: dict[str, str]) -> None:
    """Fail early unless the python3 kernel runs this interpreter and imports fer_helpers from the copy."""
    probe = (
        "import json, fer_helpers; from jupyter_client.kernelspec import KernelSpecManager as K;"
        "print(json.dumps([K().get_kernel_spec('python3').argv[0], fer_helpers.__file__]))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], cwd=project / "notebooks", env=env, check=True, capture_output=True, text=True
    ).stdout
    kernel_python, helpers = json.loads(out.strip().splitlines()[-1])
    if Path(kernel_python).resolve() != Path(sys.executable).resolve():
        raise SystemExit(f"the python3 kernel runs {kernel_python}, not {sys.executable}: run `make setup`")
    if not Path(helpers).resolve().is_relative_to(project.resolve()):
        raise SystemExit(f"the kernel would import fer_helpers from {helpers}, not from the copy in {project}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class JupyterLab:
    """A JupyterLab server on the copy, reachable at url with a random token."""

    def __init__(self, project: Path, env: dict[str, str], log: Path):
        self.token, self.port = secrets.token_hex(16), free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        command = [
            sys.executable,
            "-m",
            "jupyterlab",
            "--no-browser",
            f"--IdentityProvider.token={self.token}",
            f"--ServerApp.port={self.port}",
            "--ServerApp.port_retries=0",
            "--ServerApp.ip=127.0.0.1",
            "--LabApp.expose_app_in_browser=True",
            f"--ServerApp.root_dir={project}",
        ]
        if os.geteuid() == 0:
            command.append("--allow-root")
        with open(log, "w", encoding="utf-8") as log_file:
            self.process = subprocess.Popen(
                command, env=env, stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True
            )
        self.log = log

    def api(self, path: str) -> object | None:
        """GET a REST endpoint of the server (None: not found)."""
        request = urllib.request.Request(self.url + path, headers={"Authorization": f"token {self.token}"})
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return json.load(response)
        except urllib.error.HTTPError as error:
            if error.code == 404:
                return None
            raise

    def wait_ready(self, timeout: float = 180) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"JupyterLab exited with {self.process.returncode}; see {self.log}")
            try:
                self.api("/api/status")
                return
            except (urllib.error.URLError, ConnectionError):
                time.sleep(1)
        raise SystemExit(f"JupyterLab did not answer within {timeout:.0f} s; see {self.log}")

    def execution_state(self, kernel_id: str) -> str:
        """The kernel's execution_state as the server sees it ('gone' once it no longer exists)."""
        kernel = self.api(f"/api/kernels/{kernel_id}")
        return kernel["execution_state"] if kernel else "gone"

    def stop(self) -> None:
        """Stop the server (it shuts its kernels down), then anything left in its process group."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


@contextmanager
def running_lab(project: Path, env: dict[str, str], log: Path) -> Iterator[JupyterLab]:
    lab = JupyterLab(project, env, log)
    try:
        lab.wait_ready()
        yield lab
    finally:
        lab.stop()


@contextmanager
def headless_chromium(chromium: str, chromedriver: str, profile_dir: Path, log: Path):
    """A selenium driver for a headless Chromium with a fresh profile."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    shutil.rmtree(profile_dir, ignore_errors=True)
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={profile_dir}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=chromedriver, log_output=str(log)), options=options)
    driver.set_script_timeout(300)
    try:
        yield driver
    finally:
        driver.quit()


def open_lab(driver, lab: JupyterLab, timeout: float = 180) -> None:
    """Load JupyterLab in the browser and wait until it has restored its layout."""
    driver.get(f"{lab.url}/lab?token={lab.token}")
    deadline = time.monotonic() + timeout
    while not driver.execute_script("return !!window.jupyterapp"):
        if time.monotonic() > deadline:
            raise SystemExit("JupyterLab's page never exposed window.jupyterapp")
        time.sleep(1)
    driver.execute_async_script("window.jupyterapp.restored.then(() => arguments[arguments.length - 1](true));")


def wait_for_kernel(driver, timeout: float = 300) -> str:
    """The id of the notebook's kernel, once it has started and is idle."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        kernel = driver.execute_script(KERNEL_JS)
        if kernel and kernel["status"] == "idle":
            return kernel["id"]
        time.sleep(1)
    raise TimeoutError(f"the kernel did not start within {timeout:.0f} s")


def wait_for_run(driver, lab: JupyterLab, kernel_id: str, timeout: float) -> str | None:
    """Wait until the kernel is idle and no cell is queued; a problem (timeout, dead kernel) or None."""
    start = last_note = time.monotonic()
    quiet = 0
    while True:
        time.sleep(POLL_S)
        state = lab.execution_state(kernel_id)
        queued = driver.execute_script(QUEUED_JS)
        if state in ("dead", "gone"):
            return f"the kernel died while running `{queued['current']}`"
        quiet = quiet + 1 if state == "idle" and queued["queued"] == 0 else 0
        if quiet >= QUIET_POLLS:
            return None
        now = time.monotonic()
        if now - start > timeout:
            return f"timed out after {timeout / 60:g} min in `{queued['current']}`"
        if now - last_note > 60:
            print(
                f"    {now - start:4.0f} s, {queued['queued']} cells to go, running `{queued['current']}`", flush=True
            )
            last_note = now


def read_cells(driver, result: NotebookResult) -> list[dict]:
    """Fill result's counts, errors, stderr blocks and unrun cells from the notebook's model; return the cells."""
    cells = driver.execute_script(CELLS_JS)
    code = [c for c in cells if c["type"] == "code" and not c["empty"]]
    result.code_cells = len(code)
    result.executed = sum(c["count"] is not None for c in code)
    result.not_run = [c["first"] for c in code if c["count"] is None]
    for cell in code:
        for output in cell["outputs"]:
            where = {"cell": cell["index"], "first": cell["first"]}
            if output["type"] == "error":
                result.errors.append({**where, "ename": output["ename"], "evalue": output["evalue"]})
            elif output["type"] == "stream" and output["name"] == "stderr":
                result.stderr.append({**where, "lines": output["lines"], "head": output["head"]})
    return cells


def screenshot(driver, folder: Path, name: str, result: NotebookResult) -> None:
    path = folder / f"{name}.png"
    driver.save_screenshot(str(path))
    result.screenshots.append(str(path.relative_to(REPO)))


def inspect_and_capture(driver, cells: list[dict], folder: Path, result: NotebookResult) -> None:
    """Scroll to the top, to every figure, stderr block and error in turn: measure figures, take screenshots."""
    driver.execute_async_script(SCROLL_JS, 0, None)
    screenshot(driver, folder, "00-top", result)
    for cell in cells:
        kinds = {
            "error" if o["type"] == "error" else "stderr"
            for o in cell["outputs"]
            if o["type"] == "error" or o.get("name") == "stderr"
        }
        for kind in sorted(kinds):
            driver.execute_async_script(SCROLL_JS, cell["index"], None)
            screenshot(driver, folder, f"cell{cell['index']:02d}-{kind}", result)
        for image in range(cell["images"]):
            size = driver.execute_async_script(SCROLL_JS, cell["index"], image)
            result.figures.append({"cell": cell["index"], **size})
            screenshot(driver, folder, f"cell{cell['index']:02d}-figure{image + 1}", result)


def check_notebook(driver, lab: JupyterLab, project: Path, notebook: Path, timeout: float) -> NotebookResult:
    """Open one notebook, run all its cells, and check and photograph what it shows."""
    relative = notebook.relative_to(project).as_posix()
    result = NotebookResult(notebook.stem, draws=draws_figures(notebook))
    folder = OUT / "screenshots" / notebook.stem
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    opened = driver.execute_async_script(OPEN_JS, relative)
    if opened != "ok":
        result.problem = f"JupyterLab could not open it: {opened}"
        return result
    kernel_id = wait_for_kernel(driver)
    start = time.monotonic()
    driver.execute_script(RUN_ALL_JS)
    result.problem = wait_for_run(driver, lab, kernel_id, timeout)
    result.seconds = round(time.monotonic() - start - POLL_S * QUIET_POLLS * (result.problem is None), 1)
    cells = read_cells(driver, result)
    inspect_and_capture(driver, cells, folder, result)
    closed = driver.execute_async_script(SAVE_AND_CLOSE_JS)
    if closed != "ok":
        print(f"    could not save and close {relative}: {closed}", flush=True)
    return result


def draws_figures(notebook: Path) -> bool:
    """Whether any code cell of the notebook calls fer_helpers.analysis.plots or matplotlib.pyplot."""
    cells = json.loads(notebook.read_text(encoding="utf-8"))["cells"]
    return any(DRAWS.search("".join(c["source"])) for c in cells if c["cell_type"] == "code")


def summary_table(results: list[NotebookResult]) -> str:
    """A plain-text table: notebook, cells run, errors, stderr blocks, figures, seconds, verdict."""
    header = f"{'notebook':<22} {'cells':>7} {'errors':>6} {'stderr':>6} {'figures':>7} {'seconds':>8}  verdict"
    rows = [header, "-" * len(header)]
    for r in results:
        shown = sum(f["natural"][0] > 0 for f in r.figures)
        verdict = "ok" if not r.failures else "FAIL"
        rows.append(
            f"{r.notebook:<22} {f'{r.executed}/{r.code_cells}':>7} {len(r.errors):>6} {len(r.stderr):>6} "
            f"{shown:>7} {r.seconds:>8.1f}  {verdict}"
        )
    return "\n".join(rows)


def write_summary(results: list[NotebookResult], versions: dict[str, str]) -> Path:
    path = OUT / "summary.json"
    notebooks = [{**asdict(r), "failures": r.failures} for r in results]
    path.write_text(
        json.dumps({**versions, "profile": "smoke, synthetic faces", "notebooks": notebooks}, indent=1),
        encoding="utf-8",
    )
    return path


def versions(chromium: str) -> dict[str, str]:
    from jupyterlab import __version__ as lab_version

    browser = subprocess.run([chromium, "--version"], capture_output=True, text=True).stdout.strip()
    return {"jupyterlab": lab_version, "chromium": browser, "python": sys.version.split()[0]}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    chromium, chromedriver = ensure_chromium()
    ensure_selenium()
    from fer_helpers.orchestrate.runner import list_notebooks

    project = OUT / "project"
    copy_project(project, args.keep)
    notebooks = list_notebooks(args.notebooks, project / "notebooks")
    env = lab_environment(project, OUT / "jupyter-config")
    check_kernel_setup(project, env)
    print(f"checking {len(notebooks)} notebooks in JupyterLab on a copy in {project.relative_to(REPO)}", flush=True)
    results, found = [], versions(chromium)
    with (
        running_lab(project, env, OUT / "jupyterlab.log") as lab,
        headless_chromium(chromium, chromedriver, OUT / "chromium-profile", OUT / "chromedriver.log") as driver,
    ):
        open_lab(driver, lab)
        for notebook in notebooks:
            print(f"  {notebook.stem} ...", flush=True)
            result = check_notebook(driver, lab, project, notebook, args.timeout_min * 60)
            results.append(result)
            print(f"  {notebook.stem}: {'ok' if not result.failures else 'FAIL'} in {result.seconds:.0f} s", flush=True)
            write_summary(results, found)
    print("\n" + summary_table(results))
    print(
        f"\nsummary: {write_summary(results, found).relative_to(REPO)}; "
        f"screenshots: {(OUT / 'screenshots').relative_to(REPO)}/"
    )
    failed = [(r.notebook, line) for r in results for line in r.failures]
    for notebook, line in failed:
        print(f"FAIL {notebook}: {line}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
